"""The sending side: frame clock, encoding, packetization, re-sync on echoes (DESIGN 3, 4, 4b).

The sender drives any codec through ``FrameEncoder`` (DESIGN 4b): DHVC's encoder returns an
``EncodedFrame`` (four scales, packetized by ``netsim.packetizer.packetize``); the x264/x265
adapters return a ``SlicedFrame`` (NAL units, packetized by ``netsim.slices.packetize_slices``).
Feedback is the same for both: an echo (f, j) asks for a re-sync from scale j; for x264/x265
the receiver's picture-loss indication is the echo (f, 1), answered with an I frame.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Protocol

import simpy

from codec.types import NUM_SCALES, EncodedFrame
from netsim.fec import FecParams
from netsim.feedback import Echo, FeedbackLink
from netsim.link import ForwardLink
from netsim.packet import Packet
from netsim.packetizer import packetize
from netsim.slices import SlicedFrame, packetize_slices
from netsim.trace import FrameTrace, SentFrame


class FrameEncoder(Protocol):
    """Produces the encoded frame ``frame_index`` (frames are requested in order, once each).

    ``resync_from`` is None for a regular frame (the encoder decides I or P) or j in 1..K for a
    re-sync frame (DESIGN 3; for x264/x265 any j asks for an I frame). DHVC returns an
    ``EncodedFrame``, the x264/x265 adapters a ``SlicedFrame``.
    """

    def encode(self, frame_index: int, resync_from: int | None) -> EncodedFrame | SlicedFrame: ...


def frame_capture_time_s(frame_index: int, fps: float) -> float:
    """Frame i is captured at i / fps."""
    return frame_index / fps


class Sender:
    """Encodes and sends ``frame_count`` frames at ``fps``; acts on echoes by re-sync.

    Echo handling (DESIGN 3): at each capture instant the sender collects the echoes that have
    arrived. An echo (f, j) is stale, and ignored, when a frame after f was already encoded
    with a re-sync that covers scale j (resync_from <= j; an I frame covers every scale); a
    repeated echo carries the frame at which the receiver repeated it, so it is never stale
    against the re-sync it complains about. Otherwise the next frame is encoded with
    resync_from = the smallest j among the pending echoes.

    Each frame's sender half (``SentFrame``) goes to the frame trace ``frames`` as it is
    encoded; ``echoes_used`` and ``echoes_stale`` count the echoes acted on and ignored.
    """

    def __init__(
        self,
        env: simpy.Environment,
        *,
        encoder: FrameEncoder,
        link: ForwardLink,
        feedback: FeedbackLink,
        frames: FrameTrace,
        frame_count: int,
        fps: float,
        mtu_bytes: int,
        max_scales: int = NUM_SCALES,
        fec: Mapping[int, FecParams] | None = None,
        encode_time_s: float = 0.0,
    ) -> None:
        if fps <= 0 or frame_count < 0 or encode_time_s < 0:
            raise ValueError("need fps > 0, frame_count >= 0 and encode_time_s >= 0")
        self.env = env
        self.encoder = encoder
        self.link = link
        self.feedback = feedback
        self.frames = frames
        self.frame_count = frame_count
        self.fps = fps
        self.mtu_bytes = mtu_bytes
        self.max_scales = max_scales
        self.fec = dict(fec or {})
        self.encode_time_s = encode_time_s
        self.next_seq = 0
        self.echoes_used = 0
        self.echoes_stale = 0
        self._pending_scale: int | None = None
        self._last_cover = dict.fromkeys(range(1, NUM_SCALES + 1), -1)
        self.process = env.process(self.run())

    def run(self) -> Generator[simpy.Event, object, None]:
        """SimPy process. Wakes at each capture instant i / fps; then waits ``encode_time_s``
        (the modelled encoding time, 0 by default) and emits all packets of the frame at that
        instant, in scale order. Waits on nothing else; echoes are read from the feedback
        mailbox at the capture instant."""
        for frame_index in range(self.frame_count):
            capture_s = frame_capture_time_s(frame_index, self.fps)
            if capture_s > self.env.now:
                yield self.env.timeout(capture_s - self.env.now)
            for echo in self.feedback.take_arrived(capture_s):
                self._consider(echo)
            encoded = self.encoder.encode(frame_index, self._pending_scale)
            if encoded.frame_index != frame_index:
                raise RuntimeError(
                    f"encoder returned frame {encoded.frame_index} for frame {frame_index}"
                )
            self._note_resync(encoded)
            packets = self._packetize(encoded)
            self.frames.sent(frame_index, self._sent_frame(encoded, capture_s))
            if self.encode_time_s > 0:
                yield self.env.timeout(self.encode_time_s)
            self.next_seq += len(packets)
            for packet in packets:
                self.link.send(packet)

    def _packetize(self, encoded: EncodedFrame | SlicedFrame) -> list[Packet]:
        """The frame's packets, numbered from ``next_seq``, in sending order."""
        if isinstance(encoded, SlicedFrame):
            return packetize_slices(
                encoded, first_seq=self.next_seq, mtu_bytes=self.mtu_bytes, fec=self.fec.get(1)
            )
        return packetize(
            encoded,
            first_seq=self.next_seq,
            mtu_bytes=self.mtu_bytes,
            max_scales=self.max_scales,
            fec=self.fec,
        )

    def _sent_frame(self, encoded: EncodedFrame | SlicedFrame, capture_s: float) -> SentFrame:
        """The sender's half of the frame's trace row: what it encoded and sends. For x264/x265
        all bits are layer 1's (``bits_s1``), ``lambda`` is not defined (NaN; the QP is in the
        scenario) and the units are the NAL units; for DHVC the units are the scales sent."""
        if isinstance(encoded, SlicedFrame):
            return SentFrame(
                frame_type=encoded.frame_type,
                resync_from=encoded.resync_from,
                lam=float("nan"),
                bits_per_scale=(encoded.payload_bits,) + (0,) * (NUM_SCALES - 1),
                pixels=encoded.width * encoded.height,
                capture_time_s=capture_s,
                codec=encoded.codec,
                units_sent=len(encoded.nal_units),
            )
        return SentFrame(
            frame_type=encoded.frame_type,
            resync_from=encoded.resync_from,
            lam=encoded.lam,
            bits_per_scale=tuple(
                bits if k < self.max_scales else 0 for k, bits in enumerate(encoded.payload_bits)
            ),
            pixels=encoded.width * encoded.height,
            capture_time_s=capture_s,
            units_sent=min(self.max_scales, len(encoded.scales)),
        )

    def _consider(self, echo: Echo) -> None:
        if not 1 <= echo.scale <= NUM_SCALES or echo.frame_index < self._last_cover[echo.scale]:
            self.echoes_stale += 1
            return
        self.echoes_used += 1
        if self._pending_scale is None or echo.scale < self._pending_scale:
            self._pending_scale = echo.scale

    def _note_resync(self, encoded: EncodedFrame) -> None:
        """Remember which scales this frame re-synchronised; clear requests it satisfied."""
        if encoded.resync_from < 1:
            return
        for scale in range(encoded.resync_from, NUM_SCALES + 1):
            self._last_cover[scale] = encoded.frame_index
        if self._pending_scale is not None and encoded.resync_from <= self._pending_scale:
            self._pending_scale = None
