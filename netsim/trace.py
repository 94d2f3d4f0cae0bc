"""Typed trace rows and the CSV files they become (DESIGN 5).

``PacketTrace`` records what happens to each packet while the simulation runs; ``records()``
turns that into one ``PacketRecord`` per packet with its final fate. ``FrameTrace`` does the
same for frames: the sender records its half of each frame where it encodes, the receiver its
half where it decodes, a quality observer the frame's PSNR and MS-SSIM, all keyed by frame
index; ``records()`` joins them into one ``FrameRecord`` per frame (a row of frames.csv).

``PACKET_SCHEMA`` and ``FRAME_SCHEMA`` are the one definition of both CSV files: column names,
the kind of value each holds (how ``analysis.io`` parses it) and how it is written. Values are
written with fixed formats, so identical runs give identical bytes.

Every codec under test writes the same files (DESIGN 4b): frames.csv's ``codec`` column says
which one; for x264/x265 the "scales" of a row are NAL units (``units_sent``,
``scales_received``, ``scales_decoded``), all bits are layer 1's (``bits_s1``), ``lambda`` is
empty (NaN) and ``first_desynced_scale`` is 1 while the decoder's references are damaged;
packets.csv's ``scale`` is the layer (1) and ``fragment`` the packet's index in its frame.
``concealed`` marks a frame shown with part of it filled in (DHVC: a scale mean-substituted;
x264/x265: a slice missing, concealed by FFmpeg) and ``frozen`` one of which nothing could be
decoded, so the last picture was shown again (never for DHVC, which always decodes one).
``shown`` says what the receiver showed (the decoder's picture, the last shown one repeated, a
blend, or the last decoded one moved on along its motion: DHVC's concealment, DESIGN 2) and
``state`` the frame's state for the damage accounting (in sync, desynchronised from scale j,
concealed; ``netsim.damage``).
Columns added after the first traces carry a ``default`` that readers assume when an older
trace lacks them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

from codec.types import NUM_SCALES, FrameType
from netsim.codecs.registry import DEFAULT_CODEC, codec_kinds
from netsim.damage import FRAME_STATES, ShownKind, frame_state
from netsim.packet import Packet
from netsim.packing import pieces_of


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


class ColumnKind(StrEnum):
    """What a CSV column holds, which says how a reader parses and checks it (``analysis.io``
    reads each kind into the pandas type in brackets)."""

    INT = "int"  # integral, no missing values (int64)
    FLOAT = "float"  # a number, missing allowed: an empty cell or nan (float64)
    FLAG = "flag"  # True or False; readers also take a non-negative integer, 0 = no (int64)
    LABEL = "label"  # one of the column's ``labels`` (Categorical)


@dataclass(frozen=True)
class Column:
    """One column of a trace file: its name, its kind, the labels a ``LABEL`` column allows,
    the ``format`` spec its values are written with (None is written as an empty cell) and,
    for a column added later, the ``default`` cell a reader assumes when a trace lacks it."""

    name: str
    kind: ColumnKind
    format_spec: str = ""
    labels: tuple[str, ...] = ()
    default: str | None = None

    def cell(self, value: object) -> str:
        """``value`` as this column writes it."""
        if value is None:
            return ""
        if isinstance(value, StrEnum):
            return value.value
        return format(value, self.format_spec)


CODEC_COLUMN = "codec"
"""frames.csv's column naming the codec under test (DESIGN 4b)."""


def column_labels(column: Column) -> tuple[str, ...]:
    """The values a ``LABEL`` column allows now: for ``codec`` every kind of the codec
    registry (``netsim.codecs``, which may have grown since this module was loaded), else
    the column's ``labels``."""
    return codec_kinds() if column.name == CODEC_COLUMN else column.labels


def _time(name: str) -> Column:
    return Column(name, ColumnKind.FLOAT, ".9f")


def scale_bits_column(scale: int) -> str:
    """Name of the frames.csv column with the payload bits of ``scale`` (1..K)."""
    return f"bits_s{scale}"


PACKET_SCHEMA: tuple[Column, ...] = (
    Column("seq", ColumnKind.INT),
    Column("frame", ColumnKind.INT),
    Column("scale", ColumnKind.INT),
    Column("fragment", ColumnKind.INT),
    Column("size_bytes", ColumnKind.INT),
    _time("send_time_s"),
    _time("arrival_time_s"),  # empty for a packet that never arrived
    Column("fate", ColumnKind.LABEL, labels=tuple(fate.value for fate in Fate)),
)
"""packets.csv, one row per packet (``PacketRecord``)."""

FRAME_SCHEMA: tuple[Column, ...] = (
    Column("frame", ColumnKind.INT),
    Column("frame_type", ColumnKind.LABEL, labels=tuple(t.value for t in FrameType)),
    Column("resync_from", ColumnKind.INT),
    Column("lambda", ColumnKind.FLOAT, ".10g"),
    Column("scales_received", ColumnKind.INT),
    Column("scales_decoded", ColumnKind.INT),
    Column("first_desynced_scale", ColumnKind.INT),
    Column("echo_sent", ColumnKind.FLAG),
    Column("bits_total", ColumnKind.FLOAT),  # written as an integer
    *(Column(scale_bits_column(k), ColumnKind.FLOAT) for k in range(1, NUM_SCALES + 1)),
    Column("bpp", ColumnKind.FLOAT, ".6f"),
    Column("psnr", ColumnKind.FLOAT, ".4f"),
    Column("ms_ssim", ColumnKind.FLOAT, ".6f"),
    _time("capture_time_s"),
    _time("decode_time_s"),
    Column(CODEC_COLUMN, ColumnKind.LABEL, labels=codec_kinds(), default=DEFAULT_CODEC),
    Column("units_sent", ColumnKind.INT, default=str(NUM_SCALES)),
    Column("concealed", ColumnKind.FLAG, default="0"),
    Column("frozen", ColumnKind.FLAG, default="0"),
    Column(
        "shown",
        ColumnKind.LABEL,
        labels=tuple(kind.value for kind in ShownKind),
        default=ShownKind.DECODED.value,
    ),
    Column("state", ColumnKind.LABEL, labels=FRAME_STATES),  # readers derive it when absent
)
"""frames.csv, one row per frame (``FrameRecord``); ``bits_s1..bits_sK`` for K scales."""

FRAMES_FILE = "frames.csv"
"""The frame trace's file name in a run folder."""
PACKETS_FILE = "packets.csv"
"""The packet trace's file name in a run folder."""

PACKET_COLUMNS: tuple[str, ...] = tuple(c.name for c in PACKET_SCHEMA)
FRAME_COLUMNS: tuple[str, ...] = tuple(c.name for c in FRAME_SCHEMA)


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

    def cells(self) -> Mapping[str, object]:
        """The row's values by packets.csv column."""
        return {
            "seq": self.seq,
            "frame": self.frame,
            "scale": self.scale,
            "fragment": self.fragment,
            "size_bytes": self.size_bytes,
            "send_time_s": self.send_time_s,
            "arrival_time_s": self.arrival_time_s,
            "fate": self.fate,
        }


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
        for piece in pieces_of(packet):  # a packed packet carries several scales' fragments
            self._by_fragment[piece.frame_index, piece.scale, piece.fragment_index] = packet.seq

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


@dataclass(frozen=True)
class SentFrame:
    """The sender's half of a frames.csv row, recorded where it encodes the frame.

    ``bits_per_scale`` counts the payload bits of each scale that was sent (0 for scales above
    the sender's ``max_scales``); ``pixels`` is the frame's width times height; ``codec`` is
    a kind of the codec registry (``netsim.codecs``); ``units_sent`` counts the scales (DHVC)
    or NAL units (x264/x265) sent.
    """

    frame_type: FrameType
    resync_from: int
    lam: float
    bits_per_scale: tuple[int, ...]
    pixels: int
    capture_time_s: float
    codec: str = DEFAULT_CODEC
    units_sent: int = NUM_SCALES


@dataclass(frozen=True)
class ShownFrame:
    """The receiver's half of a frames.csv row, recorded where it decodes the frame.

    ``scales_received`` counts the scales complete at the playout deadline;
    ``first_desynced_scale`` is the decoder's D after the frame (K + 1 = in sync); ``echo_sent``
    says an echo left after the frame; ``decode_time_s`` is the *simulated* decode time;
    ``concealed`` and ``frozen`` as in frames.csv (module docstring).
    """

    scales_received: int
    scales_decoded: int
    first_desynced_scale: int
    echo_sent: bool
    decode_time_s: float
    concealed: bool = False
    frozen: bool = False
    shown: ShownKind = ShownKind.DECODED


@dataclass(frozen=True)
class FrameQuality:
    """PSNR (dB) and MS-SSIM of a decoded frame against the original."""

    psnr: float
    ms_ssim: float


NOT_MEASURED = FrameQuality(psnr=float("nan"), ms_ssim=float("nan"))
"""The quality of a frame in a run that measures none (a run without pictures)."""


@dataclass(frozen=True)
class FrameRecord:
    """One row of frames.csv: a frame's ``SentFrame``, ``ShownFrame`` and ``FrameQuality``.

    ``frame_type``, ``resync_from`` and ``lam`` are what the sender encoded; ``bpp`` is the
    sent payload bits over the frame's pixel count. ``decode_time_s`` is the *simulated*
    decode time (the scenario's ``receiver.decode_time_ms``, 0 unless modelled), so that the
    trace depends on the scenario and seed only; measured wall-clock times go to summary.json.
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
    codec: str = DEFAULT_CODEC
    units_sent: int = NUM_SCALES
    concealed: bool = False
    frozen: bool = False
    shown: ShownKind = ShownKind.DECODED

    @classmethod
    def join(
        cls, frame: int, sent: SentFrame, shown: ShownFrame, quality: FrameQuality
    ) -> FrameRecord:
        """The row of frame ``frame`` from its three parts."""
        return cls(
            frame=frame,
            frame_type=sent.frame_type,
            resync_from=sent.resync_from,
            lam=sent.lam,
            scales_received=shown.scales_received,
            scales_decoded=shown.scales_decoded,
            first_desynced_scale=shown.first_desynced_scale,
            echo_sent=shown.echo_sent,
            bits_per_scale=sent.bits_per_scale,
            bpp=sum(sent.bits_per_scale) / sent.pixels,
            psnr=quality.psnr,
            ms_ssim=quality.ms_ssim,
            capture_time_s=sent.capture_time_s,
            decode_time_s=shown.decode_time_s,
            codec=sent.codec,
            units_sent=sent.units_sent,
            concealed=shown.concealed,
            frozen=shown.frozen,
            shown=shown.shown,
        )

    @property
    def state(self) -> str:
        """The frame's state for the damage accounting (``netsim.damage.frame_state``)."""
        return frame_state(self.first_desynced_scale, self.shown, len(self.bits_per_scale))

    @property
    def bits_total(self) -> int:
        """Payload bits of the frame that were sent."""
        return sum(self.bits_per_scale)

    def cells(self) -> Mapping[str, object]:
        """The row's values by frames.csv column."""
        return {
            "frame": self.frame,
            "frame_type": self.frame_type,
            "resync_from": self.resync_from,
            "lambda": self.lam,
            "scales_received": self.scales_received,
            "scales_decoded": self.scales_decoded,
            "first_desynced_scale": self.first_desynced_scale,
            "echo_sent": self.echo_sent,
            "bits_total": self.bits_total,
            **{scale_bits_column(k): b for k, b in enumerate(self.bits_per_scale, start=1)},
            "bpp": self.bpp,
            "psnr": self.psnr,
            "ms_ssim": self.ms_ssim,
            "capture_time_s": self.capture_time_s,
            "decode_time_s": self.decode_time_s,
            "codec": self.codec,
            "units_sent": self.units_sent,
            "concealed": self.concealed,
            "frozen": self.frozen,
            "shown": self.shown,
            "state": self.state,
        }


_Part = TypeVar("_Part")


class FrameTrace:
    """Records each frame while the simulation runs, keyed by frame index (never by position).

    The sender calls ``sent`` where it encodes a frame, the receiver ``shown`` where it decodes
    it, and, in a run that measures quality (``measures_quality``), a quality observer
    ``measured`` (``netsim.quality``). Each part is recorded once per frame. ``records()``
    joins the parts into one ``FrameRecord`` per frame and refuses a frame with a part missing.
    """

    def __init__(self, *, measures_quality: bool = False) -> None:
        self.measures_quality = measures_quality
        self._sent: dict[int, SentFrame] = {}
        self._shown: dict[int, ShownFrame] = {}
        self._quality: dict[int, FrameQuality] = {}

    @staticmethod
    def _record(parts: dict[int, _Part], frame_index: int, part: _Part, what: str) -> None:
        if frame_index in parts:
            raise ValueError(f"frame {frame_index}: {what} recorded twice")
        parts[frame_index] = part

    def sent(self, frame_index: int, frame: SentFrame) -> None:
        """The sender encoded and sent frame ``frame_index``."""
        self._record(self._sent, frame_index, frame, "sender half")

    def shown(self, frame_index: int, frame: ShownFrame) -> None:
        """The receiver decoded frame ``frame_index`` at its playout deadline."""
        self._record(self._shown, frame_index, frame, "receiver half")

    def measured(self, frame_index: int, quality: FrameQuality) -> None:
        """The decoded frame ``frame_index`` was compared with the original."""
        if not self.measures_quality:
            raise ValueError("this frame trace does not measure quality")
        self._record(self._quality, frame_index, quality, "quality")

    @property
    def sent_frames(self) -> Mapping[int, SentFrame]:
        """The sender halves recorded so far, by frame index."""
        return dict(self._sent)

    def records(self) -> list[FrameRecord]:
        """One record per frame, in frame order. Raises ``RuntimeError`` when a frame lacks its
        sender half, its receiver half or (in a run that measures quality) its quality."""
        rows = []
        for frame in sorted(self._sent.keys() | self._shown.keys() | self._quality.keys()):
            sent = self._sent.get(frame)
            shown = self._shown.get(frame)
            quality = self._quality.get(frame) if self.measures_quality else NOT_MEASURED
            missing = [
                what
                for what, part in (("sender", sent), ("receiver", shown), ("quality", quality))
                if part is None
            ]
            if sent is None or shown is None or quality is None:
                raise RuntimeError(f"frame {frame}: no {' or '.join(missing)} record")
            rows.append(FrameRecord.join(frame, sent, shown, quality))
        return rows


def _write_csv(
    path: Path, schema: tuple[Column, ...], rows: Iterable[Mapping[str, object]]
) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(column.name for column in schema)
        for row in rows:
            writer.writerow(column.cell(row[column.name]) for column in schema)


def write_packets_csv(path: Path, records: Iterable[PacketRecord]) -> None:
    """packets.csv: one row per packet (``PACKET_SCHEMA``)."""
    _write_csv(path, PACKET_SCHEMA, (r.cells() for r in records))


def write_frames_csv(path: Path, records: Iterable[FrameRecord]) -> None:
    """frames.csv: one row per frame (``FRAME_SCHEMA``)."""
    _write_csv(path, FRAME_SCHEMA, (r.cells() for r in records))
