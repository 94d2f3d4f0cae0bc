"""Putting a frame back together from whichever of its packets arrived (DESIGN 2, 4).

A scale is *complete* when all its data fragments arrived, or, with FEC, any ``fragment_count``
of its data and parity fragments. Packets whose header disagrees with the first packet seen for
the same scale (a corrupt or foreign packet) are counted and ignored, never trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

from codec.types import FrameType, ReceivedFrame, ScalePayload
from netsim.fec import FecError, FecParams, fec_decode
from netsim.packet import Packet


@dataclass(frozen=True)
class AssembledScale:
    """A complete scale: its payload and the data fragments that FEC rebuilt (not received)."""

    scale: int
    payload: ScalePayload
    recovered_fragments: tuple[int, ...]


class ScaleAssembly:
    """The fragments of one scale of one frame received so far."""

    def __init__(self, first: Packet) -> None:
        self._template = first
        self._fragments: dict[int, bytes] = {}
        self.rejected_packets = 0
        self.add(first)

    def add(self, packet: Packet) -> bool:
        """Keep ``packet``'s fragment; False when it is a duplicate or inconsistent."""
        t = self._template
        consistent = (
            packet.frame_index == t.frame_index
            and packet.scale == t.scale
            and packet.fragment_count == t.fragment_count
            and packet.parity_count == t.parity_count
            and packet.scale_length_bytes == t.scale_length_bytes
            and packet.scale_crc32 == t.scale_crc32
            and packet.sync_tag == t.sync_tag
        )
        if not consistent or packet.fragment_index in self._fragments:
            self.rejected_packets += 1
            return False
        self._fragments[packet.fragment_index] = packet.payload
        return True

    @property
    def complete(self) -> bool:
        """Whether enough fragments arrived to rebuild the scale."""
        t = self._template
        if t.parity_count == 0:
            return all(i in self._fragments for i in range(t.fragment_count))
        return len(self._fragments) >= t.fragment_count

    def assemble(self) -> AssembledScale | None:
        """The scale's payload, or None while it is incomplete or cannot be rebuilt."""
        if not self.complete:
            return None
        t = self._template
        data_indexes = range(t.fragment_count)
        missing = tuple(i for i in data_indexes if i not in self._fragments)
        if not missing:
            data = b"".join(self._fragments[i] for i in data_indexes)[: t.scale_length_bytes]
        else:
            params = FecParams(t.fragment_count, t.parity_count)
            try:
                data = fec_decode(self._fragments, params, t.scale_length_bytes)
            except FecError:
                return None
        if len(data) != t.scale_length_bytes:
            return None
        payload = ScalePayload(data=data, crc32=t.scale_crc32, sync_tag=t.sync_tag)
        return AssembledScale(scale=t.scale, payload=payload, recovered_fragments=missing)


class FrameAssembly:
    """Everything received of one frame; the frame header comes from its first packet."""

    def __init__(self, first: Packet) -> None:
        self.frame_index = first.frame_index
        self.lam = first.lam
        self.resync_from = first.resync_from
        self.frame_type: FrameType = first.frame_type
        self._scales: dict[int, ScaleAssembly] = {}
        self.rejected_packets = 0
        self.add(first)

    def add(self, packet: Packet) -> bool:
        """Keep ``packet``; False when it is a duplicate or disagrees with the frame header."""
        header_agrees = (
            packet.frame_index == self.frame_index
            and packet.lam == self.lam
            and packet.resync_from == self.resync_from
            and packet.frame_type == self.frame_type
        )
        if not header_agrees:
            self.rejected_packets += 1
            return False
        assembly = self._scales.get(packet.scale)
        if assembly is None:
            self._scales[packet.scale] = ScaleAssembly(packet)
            return True
        kept = assembly.add(packet)
        if not kept:
            self.rejected_packets += 1
        return kept

    def assemble(self) -> tuple[ReceivedFrame, tuple[AssembledScale, ...]]:
        """What to hand the decoder, and the complete scales (with their FEC recoveries)."""
        complete: list[AssembledScale] = []
        for scale in sorted(self._scales):
            assembled = self._scales[scale].assemble()
            if assembled is not None:
                complete.append(assembled)
        received = ReceivedFrame(
            frame_index=self.frame_index,
            lam=self.lam,
            resync_from=self.resync_from,
            frame_type=self.frame_type,
            scales={a.scale: a.payload for a in complete},
        )
        return received, tuple(complete)
