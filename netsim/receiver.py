"""The receiving side: reassembly, playout deadlines, decoding, echoes (DESIGN 2-4, 4b).

The receiver drives any codec through its adapter (``netsim.codecs.CodecAdapter``): the
adapter's ``fits`` judges each packet on arrival, at the playout deadline its ``assemble``
turns the packets that agree into what its decoder takes, and its ``decode`` gives the
``ShownPicture`` with D and the echo to send, so the echo logic below serves every codec (for
x264/x265 the echo (f, 1) is the picture-loss indication).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from codec.types import IN_SYNC
from netsim.codecs.base import CodecAdapter, ShownPicture
from netsim.feedback import SIMULTANEITY_S, Echo, FeedbackLink
from netsim.packet import Packet, PacketFormatError
from netsim.packing import pieces_of
from netsim.reassembly import FrameAssembly
from netsim.sender import frame_capture_time_s
from netsim.trace import FrameTrace, PacketTrace, ShownFrame


class Receiver:
    """Collects packets, decodes each frame at its playout deadline, sends echoes.

    Frame i's deadline is its capture time i / fps plus ``playout_delay_s``. Packets that
    arrive by then (within ``SIMULTANEITY_S``) are in time; later ones count as lost. Decoding
    takes ``decode_time_s`` of simulated time (0 unless the scenario models it); the echo leaves
    when decoding ends. With ``decode_wait_s`` the receiver decodes a frame earlier:
    ``decode_wait_s`` after the first packet of it or of a later frame arrived (a reordering
    wait), when that comes before the deadline (and after the previous frame was decoded), so
    that its echo leaves sooner; packets of a frame that arrive after it was decoded are late.

    At the deadline, when every in-time packet of the frame is known, the frame's and each
    scale's header are decided by agreement of the packets (``netsim.reassembly``): a stray
    packet that disagrees is discarded, and recorded as ``rejected`` in the trace, without
    costing the genuine packets of its frame anything. ``rejected_packets`` counts the in-time
    packets not used (rejected ones and duplicates).

    A packed packet (``netsim.packing``) reaches the reassembly as its pieces, each a fragment
    of its scale; a piece that is discarded marks its packet ``rejected`` in the trace (the
    counts are per piece), and a packed packet whose pieces do not parse is rejected whole.

    Echoes (DESIGN 3): when the decoder reports that D dropped to j, the receiver echoes
    (frame, j). A re-sync frame that arrives unusable is covered by that rule: a frame with
    1 <= resync_from <= D puts the decoder back in sync (D = K + 1) before its scales are
    decoded, so any scale it lacks makes D drop again, and the receiver echoes again. While D
    stays below K + 1 without a new drop (no usable re-sync arrived, e.g. the echo or the whole
    re-sync frame was lost), the receiver repeats (frame, D) once ``echo_timeout_s`` has passed
    since its last echo (None: never). Each echo carries the decoder's mirrorable state when it
    has one (``ShownPicture.desynced_since``); a mirrored recovery frame the decoder refuses
    makes it echo again at once (its ``echo_scale``), one that arrives partly makes D drop.

    Each frame's receiver half (``ShownFrame``) goes to the frame trace ``frames`` as it is
    decoded; then ``on_frame`` gets the shown picture (e.g. to measure its quality).
    """

    def __init__(
        self,
        env: simpy.Environment,
        *,
        codec: CodecAdapter[Any, Any],
        feedback: FeedbackLink,
        trace: PacketTrace,
        frames: FrameTrace,
        frame_count: int,
        fps: float,
        playout_delay_s: float,
        decode_time_s: float = 0.0,
        echo_timeout_s: float | None = None,
        send_echoes: bool = True,
        on_frame: Callable[[ShownPicture], None] | None = None,
        decode_wait_s: float | None = None,
    ) -> None:
        if playout_delay_s < 0 or decode_time_s < 0:
            raise ValueError("playout_delay_s and decode_time_s must be >= 0")
        if decode_wait_s is not None and decode_wait_s < 0:
            raise ValueError("decode_wait_s must be >= 0")
        if echo_timeout_s is not None and echo_timeout_s <= 0:
            raise ValueError("echo_timeout_s must be positive")
        self.env = env
        self.codec = codec
        self.feedback = feedback
        self.trace = trace
        self.frames = frames
        self.frame_count = frame_count
        self.fps = fps
        self.playout_delay_s = playout_delay_s
        self.decode_time_s = decode_time_s
        self.echo_timeout_s = echo_timeout_s
        self.send_echoes = send_echoes
        self.on_frame = on_frame
        self.decode_wait_s = decode_wait_s
        self.next_frame = 0
        self._first_arrival_s: dict[int, float] = {}
        self._arrival: simpy.Event | None = None
        self.rejected_packets = 0
        self._assemblies: dict[int, FrameAssembly] = {}
        self._carriers: dict[int, dict[Packet, Packet]] = {}
        self._last_echo_s: float | None = None
        self.process = env.process(self.run())

    def deadline_s(self, frame_index: int) -> float:
        """Playout deadline of frame ``frame_index``."""
        return frame_capture_time_s(frame_index, self.fps) + self.playout_delay_s

    def deliver(self, packet: Packet) -> None:
        """A packet arrives now (called by the forward link). It is in time when its frame is
        still to be decoded and its playout deadline has not passed (within ``SIMULTANEITY_S``),
        even while the receiver, behind its clock, is still decoding an earlier frame."""
        frame_index = packet.frame_index
        in_time = (
            self.next_frame <= frame_index < self.frame_count
            and self.env.now <= self.deadline_s(frame_index) + SIMULTANEITY_S
        )
        self.trace.arrived(packet, self.env.now, in_time=in_time)
        if not in_time:
            return
        if frame_index not in self._first_arrival_s:
            self._first_arrival_s[frame_index] = self.env.now
            if frame_index >= self.next_frame and self._arrival is not None:
                self._arrival.succeed()
                self._arrival = None
        try:
            pieces = pieces_of(packet)
        except PacketFormatError:
            self.rejected_packets += 1
            self.trace.rejected(packet)
            return
        carriers = self._carriers.setdefault(frame_index, {})
        for piece in pieces:
            carriers.setdefault(piece, packet)
            assembly = self._assemblies.get(frame_index)
            if assembly is None:
                self._assemblies[frame_index] = FrameAssembly(piece, self.codec.fits)
            else:
                assembly.add(piece)  # judged with the frame's other packets at the deadline

    def run(self) -> Generator[simpy.Event, object, None]:
        """SimPy process. Wakes at each frame's playout deadline (plus ``SIMULTANEITY_S``, so
        that packets due at the deadline itself are counted in time), decodes the frame with
        the scales complete by then, waits ``decode_time_s``, and sends an echo if needed.
        Waits on the clock, and with ``decode_wait_s`` on each frame's first packet too;
        packets are pushed to ``deliver`` by the link."""
        for frame_index in range(self.frame_count):
            deadline_s = self.deadline_s(frame_index)
            wake_s = deadline_s + SIMULTANEITY_S
            early = False
            if self.decode_wait_s is not None:
                early = yield from self._wait_for_early_decode(frame_index, wake_s)
            if not early and wake_s > self.env.now:
                yield self.env.timeout(wake_s - self.env.now)
            # decoding starts now when early or behind the clock, else at the deadline
            start_s = self.env.now if early or self.env.now > wake_s else deadline_s
            self.next_frame = frame_index + 1
            self._first_arrival_s.pop(frame_index, None)
            assembly = self._assemblies.pop(frame_index, None)
            carriers = self._carriers.pop(frame_index, {})
            if assembly is not None:
                self.rejected_packets += assembly.rejected_packets
                for packet in assembly.discarded():
                    self.trace.rejected(carriers.get(packet, packet))
            assembled = self.codec.assemble(frame_index, assembly)
            for layer, fragment in assembled.recovered:
                self.trace.recovered(frame_index, layer, fragment)
            shown = self.codec.decode(assembled.received)
            if self.decode_time_s > 0:
                yield self.env.timeout(self.decode_time_s)
            done_s = start_s + self.decode_time_s
            echo_scale = self._echo_for(shown, done_s)
            if echo_scale is not None:
                self._last_echo_s = done_s
                if self.send_echoes:
                    self.feedback.send(Echo(frame_index, echo_scale, done_s, shown.desynced_since))
            self.frames.shown(
                frame_index,
                ShownFrame(
                    scales_received=shown.units_received,
                    scales_decoded=shown.units_decoded,
                    first_desynced_scale=shown.first_desynced_scale,
                    echo_sent=self.send_echoes and echo_scale is not None,
                    decode_time_s=self.decode_time_s,
                    concealed=shown.concealed,
                    frozen=shown.frozen,
                    shown=shown.shown,
                ),
            )
            if self.on_frame is not None:
                self.on_frame(shown)

    def _wait_for_early_decode(
        self, frame_index: int, wake_s: float
    ) -> Generator[simpy.Event, object, bool]:
        """Wait for the first packet of frame ``frame_index`` or of a later frame and then
        ``decode_wait_s`` (plus ``SIMULTANEITY_S``, so that packets due then are in time);
        True when that ends before ``wake_s`` and the frame is to be decoded now, False when it
        is decoded at its deadline (nothing arrived, or the wait would reach the deadline)."""
        assert self.decode_wait_s is not None
        while self.env.now < wake_s:
            first_s = min(
                (t for f, t in self._first_arrival_s.items() if f >= frame_index), default=None
            )
            if first_s is None:
                self._arrival = self.env.event()
                yield self.env.any_of([self._arrival, self.env.timeout(wake_s - self.env.now)])
                self._arrival = None
                continue
            ready_s = first_s + self.decode_wait_s + SIMULTANEITY_S
            if ready_s >= wake_s:
                return False
            if ready_s > self.env.now:
                yield self.env.timeout(ready_s - self.env.now)
            return True
        return False

    def _echo_for(self, decoded: ShownPicture, now_s: float) -> int | None:
        """The j of the echo to send after this frame (a new drop of D, or a repeat after the
        echo timeout), or None."""
        if decoded.echo_scale is not None:
            return decoded.echo_scale
        timed_out = (
            decoded.first_desynced_scale < IN_SYNC
            and self.echo_timeout_s is not None
            and self._last_echo_s is not None
            and now_s - self._last_echo_s >= self.echo_timeout_s - SIMULTANEITY_S
        )
        return decoded.first_desynced_scale if timed_out else None
