"""Typed trace rows and the CSV files they become (DESIGN 5).

``PacketTrace`` records what happens to each packet while the simulation runs; ``records()``
turns that into one ``PacketRecord`` per packet with its final fate. ``FrameRecord`` is one row
of frames.csv. Values are written with fixed formats, so identical runs give identical bytes.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from codec.types import NUM_SCALES, FrameType
from netsim.packet import Packet


class Fate(StrEnum):
    """What became of a packet, as packets.csv reports it."""

    DELIVERED = "delivered"  # arrived before its frame's playout deadline
    LOST = "lost"  # dropped by the link's loss model
    QUEUE_DROP = "queue_drop"  # dropped by the bottleneck queue
    LATE = "late"  # arrived after its frame's playout deadline (counts as lost)
    FEC_RECOVERED = "fec_recovered"  # not there in time, rebuilt from other fragments by FEC
    REJECTED = "rejected"  # arrived in time, discarded by the receiver: its header disagreed with
    # what the other packets of its frame agree on, or its payload did not fit (never happens
    # to a packet the sender sent unless something damaged or forged packets on the way)


PACKET_COLUMNS = (
    "seq",
    "frame",
    "scale",
    "fragment",
    "size_bytes",
    "send_time_s",
    "arrival_time_s",
    "fate",
)

FRAME_COLUMNS = (
    "frame",
    "frame_type",
    "resync_from",
    "lambda",
    "scales_received",
    "scales_decoded",
    "first_desynced_scale",
    "echo_sent",
    "bits_total",
    *(f"bits_s{k}" for k in range(1, NUM_SCALES + 1)),
    "bpp",
    "psnr",
    "ms_ssim",
    "capture_time_s",
    "decode_time_s",
)


@dataclass(frozen=True)
class PacketRecord:
    """One packet's history. ``fate`` is final; ``channel_fate`` is the network's verdict before
    FEC (delivered, lost, queue_drop or late); ``exposed_to_loss`` says whether the forward
    link's loss model applied to the packet (frame window, exempt scales)."""

    seq: int
    frame: int
    scale: int
    fragment: int
    size_bytes: int
    send_time_s: float
    arrival_time_s: float | None
    fate: Fate
    channel_fate: Fate
    exposed_to_loss: bool


@dataclass(frozen=True)
class FrameRecord:
    """One row of frames.csv.

    ``frame_type``, ``resync_from`` and ``lam`` are what the sender encoded. ``bits_per_scale``
    are the payload bits of each scale that was sent (0 for scales above the sender's
    ``max_scales``); ``bpp`` is their sum over the frame's pixel count. ``scales_received``
    counts the scales complete at the playout deadline; ``first_desynced_scale`` is the
    decoder's D after the frame (K + 1 = in sync). ``decode_time_s`` is the *simulated* decode
    time (the scenario's ``receiver.decode_time_ms``, 0 unless modelled), so that the trace
    depends on the scenario and seed only; measured wall-clock times go to summary.json.
    """

    frame: int
    frame_type: FrameType
    resync_from: int
    lam: float
    scales_received: int
    scales_decoded: int
    first_desynced_scale: int
    echo_sent: bool
    bits_per_scale: tuple[int, ...]
    bpp: float
    psnr: float
    ms_ssim: float
    capture_time_s: float
    decode_time_s: float

    @property
    def bits_total(self) -> int:
        """Payload bits of the frame that were sent."""
        return sum(self.bits_per_scale)


@dataclass(frozen=True)
class _PacketMeta:
    """What the trace keeps of a sent packet (not its payload): its row fields, and a hash of
    the whole packet that tells the packet itself from another one under the same seq."""

    frame: int
    scale: int
    fragment: int
    size_bytes: int
    fingerprint: int


class PacketTrace:
    """Records each packet's journey while the simulation runs (components call it).

    One row per packet sent, keyed by its seq. Fates are decided once per packet:

    * the *channel fate* is decided by the first event that happens to the packet itself: a drop
      (lost, queue_drop), or its first arrival (delivered if its frame's deadline had not
      passed, else late); a packet still in flight when the run ends is late. A later event for
      the same packet, such as a duplicate arriving after the deadline, never rewrites it: it
      is counted in ``duplicate_arrivals``;
    * a packet that is not the one sent under its seq (a stray: forged, foreign or damaged
      behind a valid checksum, told apart by a hash of the whole packet) touches no row; it is
      counted in ``foreign_arrivals`` (and ``foreign_rejected`` when the receiver discards it);
    * the final fate is ``rejected`` when the receiver discarded the packet's in-time arrival
      (it calls ``rejected``), else ``fec_recovered`` when FEC rebuilt it, else the channel
      fate. A packet's row never changes with what happens to other packets, copies included.
    """

    def __init__(self) -> None:
        self._sent: dict[int, tuple[_PacketMeta, float, bool]] = {}
        self._dropped: dict[int, Fate] = {}
        self._arrivals: dict[int, tuple[float, bool]] = {}
        self._recovered: set[int] = set()
        self._rejected: set[int] = set()
        self._by_fragment: dict[tuple[int, int, int], int] = {}
        self.duplicate_arrivals = 0
        self.foreign_arrivals = 0
        self.foreign_rejected = 0

    def sent(self, packet: Packet, time_s: float, *, exposed_to_loss: bool) -> None:
        """``packet`` entered the forward link at ``time_s``."""
        meta = _PacketMeta(
            packet.frame_index,
            packet.scale,
            packet.fragment_index,
            packet.size_bytes,
            hash(packet),
        )
        self._sent[packet.seq] = (meta, time_s, exposed_to_loss)
        self._by_fragment[packet.frame_index, packet.scale, packet.fragment_index] = packet.seq

    def _own_seq(self, packet: Packet) -> int | None:
        """``packet.seq`` when ``packet`` is the packet sent under it, else None."""
        entry = self._sent.get(packet.seq)
        if entry is None or entry[0].fingerprint != hash(packet):
            return None
        return packet.seq

    def _decided(self, seq: int) -> bool:
        return seq in self._dropped or seq in self._arrivals

    def dropped(self, packet: Packet, fate: Fate) -> None:
        """The network dropped ``packet`` (``Fate.LOST`` or ``Fate.QUEUE_DROP``); ignored when
        the packet's channel fate was already decided (or it was never sent)."""
        seq = self._own_seq(packet)
        if seq is not None and not self._decided(seq):
            self._dropped[seq] = fate

    def arrived(self, packet: Packet, time_s: float, *, in_time: bool) -> None:
        """``packet`` reached the receiver at ``time_s``; ``in_time``: before its deadline.
        Only the packet's first arrival counts; see the class docstring."""
        seq = self._own_seq(packet)
        if seq is None:
            self.foreign_arrivals += 1
        elif self._decided(seq):
            self.duplicate_arrivals += 1
        else:
            self._arrivals[seq] = (time_s, in_time)

    def rejected(self, packet: Packet) -> None:
        """The receiver discarded ``packet``, which arrived in time (``netsim.reassembly``)."""
        seq = self._own_seq(packet)
        if seq is None:
            self.foreign_rejected += 1
        elif self._arrivals.get(seq, (None, False))[1]:
            self._rejected.add(seq)

    def recovered(self, frame_index: int, scale: int, fragment_index: int) -> None:
        """FEC rebuilt this data fragment, which was not there in time."""
        seq = self._by_fragment.get((frame_index, scale, fragment_index))
        if seq is not None:
            self._recovered.add(seq)

    def records(self) -> list[PacketRecord]:
        """One record per packet sent, in sequence order, with final fates."""
        rows = []
        for seq in sorted(self._sent):
            meta, send_time_s, exposed = self._sent[seq]
            arrival_time_s, in_time = self._arrivals.get(seq, (None, False))
            if seq in self._dropped:
                channel_fate = self._dropped[seq]
            elif arrival_time_s is not None and in_time:
                channel_fate = Fate.DELIVERED
            else:
                channel_fate = Fate.LATE  # arrived late, or still in flight when the run ended
            if seq in self._rejected:
                fate = Fate.REJECTED
            elif seq in self._recovered:
                fate = Fate.FEC_RECOVERED
            else:
                fate = channel_fate
            rows.append(
                PacketRecord(
                    seq=seq,
                    frame=meta.frame,
                    scale=meta.scale,
                    fragment=meta.fragment,
                    size_bytes=meta.size_bytes,
                    send_time_s=send_time_s,
                    arrival_time_s=arrival_time_s,
                    fate=fate,
                    channel_fate=channel_fate,
                    exposed_to_loss=exposed,
                )
            )
        return rows


def _time(value: float | None) -> str:
    return "" if value is None else f"{value:.9f}"


def _real(value: float, digits: int) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def write_packets_csv(path: Path, records: Iterable[PacketRecord]) -> None:
    """packets.csv: one row per packet (``PACKET_COLUMNS``)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(PACKET_COLUMNS)
        for r in records:
            writer.writerow(
                (
                    r.seq,
                    r.frame,
                    r.scale,
                    r.fragment,
                    r.size_bytes,
                    _time(r.send_time_s),
                    _time(r.arrival_time_s),
                    r.fate.value,
                )
            )


def write_frames_csv(path: Path, records: Iterable[FrameRecord]) -> None:
    """frames.csv: one row per frame (``FRAME_COLUMNS``)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(FRAME_COLUMNS)
        for r in records:
            writer.writerow(
                (
                    r.frame,
                    r.frame_type.value,
                    r.resync_from,
                    f"{r.lam:.10g}",
                    r.scales_received,
                    r.scales_decoded,
                    r.first_desynced_scale,
                    "True" if r.echo_sent else "False",
                    r.bits_total,
                    *r.bits_per_scale,
                    _real(r.bpp, 6),
                    _real(r.psnr, 4),
                    _real(r.ms_ssim, 6),
                    _time(r.capture_time_s),
                    _time(r.decode_time_s),
                )
            )
