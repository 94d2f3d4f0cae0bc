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

Besides, a packet is discarded on arrival when it belongs to another frame, when the codec's
packet layout could not have produced it (the codec adapter's ``fits``: another layout, or a
payload length impossible under its scale header), or when a different payload for the same
fragment (same headers) arrived before it; an exact copy of a fragment already held is a
duplicate, counted and dropped. The receiver asks for the agreement at the playout deadline,
when every in-time packet is known, so the outcome does not depend on when it asks.

What the agreed packets mean is the codec's business: ``FrameAssembly.agreed`` gives the agreed
frame header and, per scale (layer), the fragments that agree on its header; the codec adapter
turns those into what its decoder takes (``netsim.codecs``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from codec.types import FrameType
from netsim.packet import Packet, PacketLayout

FrameHeader = tuple[float, int, FrameType, PacketLayout, int | None]
"""The frame-header fields every packet repeats: (rate parameter, resync_from, frame type,
layout, an M frame's mirror_from)."""

ScaleHeader = tuple[int, int, int, int, int]
"""The scale-header fields every packet repeats: (fragment count, parity count, scale length,
scale CRC32, sync tag)."""


def frame_header(packet: Packet) -> FrameHeader:
    """The frame-header fields ``packet`` carries."""
    return (
        packet.rate_parameter,
        packet.resync_from,
        packet.frame_type,
        packet.layout,
        packet.mirror_from,
    )


def scale_header(packet: Packet) -> ScaleHeader:
    """The scale-header fields ``packet`` carries."""
    return (
        packet.fragment_count,
        packet.parity_count,
        packet.scale_length_bytes,
        packet.scale_crc32,
        packet.sync_tag,
    )


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

    @property
    def template(self) -> Packet:
        """The first packet kept: its scale-header fields are those of every packet kept."""
        return self._template

    def payloads(self) -> dict[int, bytes]:
        """The payloads kept, by fragment index (data and parity fragments)."""
        return {i: packet.payload for i, (_, packet) in self.fragments.items()}


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


@dataclass(frozen=True)
class AgreedFrame:
    """The packets of a frame that agree: the frame header, and per scale (layer) the
    fragments that agree on its scale header."""

    header: FrameHeader
    scales: dict[int, ScaleAssembly]


class FrameAssembly:
    """Everything received of one frame; its header is decided by agreement (module docstring).

    ``fits`` is the codec's packet layout rule (a packet it refuses is discarded on arrival).
    ``add`` answers provisionally (whether the packet agrees with the values agreed so far);
    ``agreed``, ``discarded`` and ``rejected_packets`` give the verdict on all packets added.
    """

    def __init__(self, first: Packet, fits: Callable[[Packet], bool]) -> None:
        self.frame_index = first.frame_index
        self._fits = fits
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
        if packet.frame_index != self.frame_index or not self._fits(packet):
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

    def agreed(self) -> AgreedFrame | None:
        """The agreed frame header and each scale's agreed fragments; None when every packet
        was discarded on arrival."""
        if not self._candidates:
            return None
        agreed = self._agreed()
        return AgreedFrame(
            header=agreed.header,
            scales={scale: agreed.agreed_scale(scale) for scale in sorted(agreed.scales)},
        )
