"""Putting a frame back together from whichever of its packets arrived (DESIGN 2, 4).

A scale is *complete* when all its data fragments arrived, or, with FEC, any ``fragment_count``
of its data and parity fragments.

Every packet repeats its frame's header (lambda, resync_from, frame type) and its scale's header
(fragment count, parity count, length, CRC32, sync tag). A stray packet (damaged behind a valid
checksum, foreign, forged) may carry other values than the genuine packets of its frame, so the
headers are decided by *agreement* of the packets, never by whichever packet came first:

1. The frame header is the value carried by the most packets of the frame (distinct fragments;
   an exact duplicate counts once). Ties go to the value whose packets form more complete
   scales, then to the value that arrived first.
2. Among the packets that carry the agreed frame header, each scale's header is the value
   carried by the most of that scale's fragments; ties go to the value that forms a complete
   scale, then to the value that arrived first.
3. Only the packets that disagree with the agreed values are discarded; the frame is assembled
   from the others as if the strays had never arrived (unless a stray outvotes the genuine
   packets, which no rule can tell from the genuine case).

Besides, a packet is discarded on arrival when it belongs to another frame, when its payload
length is impossible for its scale header (``fits_scale_header``), or when a different payload
for the same fragment (same headers) arrived before it; an exact copy of a fragment already held
is a duplicate, counted and dropped. The receiver asks for the agreement at the playout
deadline, when every in-time packet is known, so the outcome does not depend on when it asks.

Slice packets (x264/x265, layout ``SLICES``, ``netsim.slices``) go through the same agreement
(the layout is part of the frame header, so a DHVC stray never mixes into an x264 frame); they
are not cut equally, so a data payload fits its header when it is 1 to ``scale length`` bytes
long, and ``assemble_slices`` hands over every data payload that arrived instead of waiting
for the whole frame: each slice is usable on its own.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from codec.types import FrameType, ReceivedFrame, ScalePayload
from netsim.fec import FecError, FecParams, fec_decode, slice_fec_decode
from netsim.packet import Packet, PacketLayout
from netsim.slices import ReceivedSlices

FrameHeader = tuple[float, int, FrameType, PacketLayout]
"""The frame-header fields every packet repeats: (lambda, resync_from, frame type, layout)."""

ScaleHeader = tuple[int, int, int, int, int]
"""The scale-header fields every packet repeats: (fragment count, parity count, scale length,
scale CRC32, sync tag)."""


def frame_header(packet: Packet) -> FrameHeader:
    """The frame-header fields ``packet`` carries."""
    return (packet.lam, packet.resync_from, packet.frame_type, packet.layout)


def scale_header(packet: Packet) -> ScaleHeader:
    """The scale-header fields ``packet`` carries."""
    return (
        packet.fragment_count,
        packet.parity_count,
        packet.scale_length_bytes,
        packet.scale_crc32,
        packet.sync_tag,
    )


def fits_scale_header(packet: Packet) -> bool:
    """Whether the packetizer could have sent ``packet``'s payload under its scale header.

    With FEC every fragment is ``ceil(length / fragment_count)`` bytes. Without FEC the scale
    is cut into ``fragment_count`` slices of one length, the last one shorter or equal and not
    empty (a single fragment, possibly empty, when the scale fits one packet): a fragment before
    the last is at least ``ceil(length / count)`` bytes and leaves at least one byte for the
    last; the last is at most ``length // count`` bytes.
    """
    length, count, size = packet.scale_length_bytes, packet.fragment_count, len(packet.payload)
    if packet.layout is PacketLayout.SLICES:
        return packet.is_parity or 1 <= size <= length
    if packet.parity_count > 0:
        return length > 0 and size == -(-length // count)
    if count == 1:
        return size == length
    if packet.fragment_index < count - 1:
        return size >= -(-length // count) and size * (count - 1) < length
    return 1 <= size <= length // count


@dataclass(frozen=True)
class AssembledScale:
    """A complete scale: its payload and the data fragments that FEC rebuilt (not received)."""

    scale: int
    payload: ScalePayload
    recovered_fragments: tuple[int, ...]


class ScaleAssembly:
    """The fragments received of one scale of one frame that agree on one scale header."""

    def __init__(self, template: Packet, first_arrival: int) -> None:
        self._template = template
        self.header = scale_header(template)
        self.first_arrival = first_arrival
        self.fragments: dict[int, tuple[int, Packet]] = {}

    def held(self, fragment_index: int) -> Packet | None:
        """The packet kept for ``fragment_index``, if any."""
        entry = self.fragments.get(fragment_index)
        return None if entry is None else entry[1]

    def add(self, packet: Packet, arrival: int) -> None:
        """Keep ``packet`` (same scale header, a fragment index not held yet)."""
        self.fragments[packet.fragment_index] = (arrival, packet)

    @property
    def complete(self) -> bool:
        """Whether enough fragments arrived to rebuild the scale."""
        t = self._template
        if t.parity_count == 0:
            return all(i in self.fragments for i in range(t.fragment_count))
        return len(self.fragments) >= t.fragment_count

    def vote(self) -> tuple[int, bool, int]:
        """Sort key of this header among its scale's candidates: the largest wins."""
        return (len(self.fragments), self.complete, -self.first_arrival)

    def slice_payloads(self) -> tuple[dict[int, bytes], tuple[int, ...]]:
        """Slice layout: the data payloads that arrived or FEC rebuilt, by index, and the
        indexes FEC rebuilt."""
        t = self._template
        data = {i: p.payload for i, (_, p) in self.fragments.items() if i < t.fragment_count}
        if len(data) == t.fragment_count or len(self.fragments) < t.fragment_count:
            return data, ()
        parity = {i: p.payload for i, (_, p) in self.fragments.items() if i >= t.fragment_count}
        try:
            rebuilt = slice_fec_decode(data, parity, FecParams(t.fragment_count, t.parity_count))
        except FecError:
            return data, ()
        joined = b"".join(rebuilt[i] for i in range(t.fragment_count))
        if len(joined) != t.scale_length_bytes or zlib.crc32(joined) != t.scale_crc32:
            return data, ()
        return rebuilt, tuple(i for i in range(t.fragment_count) if i not in data)

    def assemble(self) -> AssembledScale | None:
        """The scale's payload, or None while it is incomplete or cannot be rebuilt."""
        if not self.complete:
            return None
        t = self._template
        payloads = {i: packet.payload for i, (_, packet) in self.fragments.items()}
        data_indexes = range(t.fragment_count)
        missing = tuple(i for i in data_indexes if i not in payloads)
        if not missing:
            data = b"".join(payloads[i] for i in data_indexes)[: t.scale_length_bytes]
        else:
            params = FecParams(t.fragment_count, t.parity_count)
            try:
                data = fec_decode(payloads, params, t.scale_length_bytes)
            except FecError:
                return None
        if len(data) != t.scale_length_bytes:
            return None
        payload = ScalePayload(data=data, crc32=t.scale_crc32, sync_tag=t.sync_tag)
        return AssembledScale(scale=t.scale, payload=payload, recovered_fragments=missing)


@dataclass
class _FrameCandidate:
    """The packets of one frame that carry one frame header, by scale and scale header."""

    header: FrameHeader
    first_arrival: int
    fragments: int = 0
    scales: dict[int, dict[ScaleHeader, ScaleAssembly]] = field(default_factory=dict)

    def agreed_scale(self, scale: int) -> ScaleAssembly:
        """The scale header its fragments agree on (module docstring, rule 2)."""
        candidates = self.scales[scale]
        if len(candidates) == 1:
            return next(iter(candidates.values()))
        return max(candidates.values(), key=ScaleAssembly.vote)

    def vote(self) -> tuple[int, int, int]:
        """Sort key of this header among its frame's candidates: the largest wins (rule 1)."""
        complete = sum(self.agreed_scale(scale).complete for scale in self.scales)
        return (self.fragments, complete, -self.first_arrival)


class FrameAssembly:
    """Everything received of one frame; its header is decided by agreement (module docstring).

    ``add`` answers provisionally (whether the packet agrees with the values agreed so far);
    ``assemble``, ``discarded`` and ``rejected_packets`` give the verdict on all packets added.
    """

    def __init__(self, first: Packet) -> None:
        self.frame_index = first.frame_index
        self.duplicate_packets = 0
        self._arrivals = 0
        self._candidates: dict[FrameHeader, _FrameCandidate] = {}
        self._discarded_at_once: list[tuple[int, Packet]] = []
        self.add(first)

    def add(self, packet: Packet) -> bool:
        """Take ``packet``; False when it is discarded (another frame, a payload that does not
        fit its scale header, a duplicate, or a different payload for a fragment already held)
        or disagrees with the headers agreed so far."""
        arrival = self._arrivals
        self._arrivals += 1
        if packet.frame_index != self.frame_index or not fits_scale_header(packet):
            self._discarded_at_once.append((arrival, packet))
            return False
        header = frame_header(packet)
        candidate = self._candidates.get(header)
        if candidate is None:
            candidate = self._candidates[header] = _FrameCandidate(header, arrival)
        by_header = candidate.scales.setdefault(packet.scale, {})
        key = scale_header(packet)
        assembly = by_header.get(key)
        if assembly is None:
            assembly = by_header[key] = ScaleAssembly(packet, arrival)
        held = assembly.held(packet.fragment_index)
        if held is not None:
            if held.payload == packet.payload:
                self.duplicate_packets += 1
            else:
                self._discarded_at_once.append((arrival, packet))
            return False
        assembly.add(packet, arrival)
        candidate.fragments += 1
        agreed = self._agreed()
        return candidate is agreed and assembly is agreed.agreed_scale(packet.scale)

    def _agreed(self) -> _FrameCandidate:
        """The frame header its packets agree on (module docstring, rule 1)."""
        if len(self._candidates) == 1:
            return next(iter(self._candidates.values()))
        return max(self._candidates.values(), key=_FrameCandidate.vote)

    def discarded(self) -> list[Packet]:
        """The packets discarded so far, in arrival order (duplicates not included): those
        discarded on arrival and those that disagree with the agreed headers."""
        out = list(self._discarded_at_once)
        agreed = self._agreed() if self._candidates else None
        for candidate in self._candidates.values():
            for scale, by_header in candidate.scales.items():
                kept = agreed.agreed_scale(scale) if candidate is agreed else None
                for assembly in by_header.values():
                    if assembly is not kept:
                        out.extend(assembly.fragments.values())
        return [packet for _, packet in sorted(out, key=lambda entry: entry[0])]

    @property
    def rejected_packets(self) -> int:
        """Packets not used: duplicates plus ``discarded()``."""
        return self.duplicate_packets + len(self.discarded())

    def assemble(self) -> tuple[ReceivedFrame, tuple[AssembledScale, ...]]:
        """What to hand the decoder, and the complete scales (with their FEC recoveries), from
        the packets that agree on the frame's and each scale's header."""
        if not self._candidates:
            return ReceivedFrame.nothing(self.frame_index), ()
        agreed = self._agreed()
        complete: list[AssembledScale] = []
        for scale in sorted(agreed.scales):
            assembled = agreed.agreed_scale(scale).assemble()
            if assembled is not None:
                complete.append(assembled)
        lam, resync_from, frame_type, _ = agreed.header
        received = ReceivedFrame(
            frame_index=self.frame_index,
            lam=lam,
            resync_from=resync_from,
            frame_type=frame_type,
            scales={a.scale: a.payload for a in complete},
        )
        return received, tuple(complete)

    def assemble_slices(self) -> tuple[ReceivedSlices, tuple[int, ...]]:
        """Slice layout: what to hand an x264/x265 decoder (every data payload of the agreed
        headers that arrived, or that FEC rebuilt), and the data packet indexes FEC rebuilt.
        A frame whose agreed packets are not slice packets counts as nothing received."""
        if not self._candidates:
            return ReceivedSlices.nothing(self.frame_index), ()
        agreed = self._agreed()
        lam, _, frame_type, layout = agreed.header
        layer = agreed.scales.get(1)
        if layout is not PacketLayout.SLICES or layer is None:
            return ReceivedSlices.nothing(self.frame_index), ()
        assembly = agreed.agreed_scale(1)
        payloads, recovered = assembly.slice_payloads()
        received = ReceivedSlices(
            frame_index=self.frame_index,
            frame_type=frame_type,
            qp=int(lam),
            packet_count=assembly.header[0],
            payloads=payloads,
        )
        return received, recovered
