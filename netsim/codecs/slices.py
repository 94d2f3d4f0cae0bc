"""x264/x265 frames on the wire: NAL units in packets, and back (DESIGN 4b).

A ``SlicedFrame`` is what the x264/x265 adapter's encoder gives the sender: one picture's NAL
units (slices, and parameter sets on I frames). ``packetize_slices`` puts them into packets of
at most ``mtu_bytes`` (``netsim.packet`` layout ``SLICES``), the way RTP carries H.264/HEVC
(RFC 6184, RFC 7798):

* each payload starts with a one-byte framing header, ``START`` | ``END`` bits as in an RTP
  fragmentation unit's header, then Annex B bytes (start codes included);
* whole NAL units are packed greedily into a packet while they fit (an aggregation packet:
  in practice the parameter sets with the first slice, or x265's small slices of a P frame);
  x264's slices are at most ``slice-max-size`` = payload budget bytes, so each fits one packet;
* a NAL unit larger than a packet (x265: slices are CTU rows, not sized to the MTU) is cut
  into fragments, ``START`` on the first, ``END`` on the last; losing one loses the NAL unit;
* with FEC, ``ceil(m * d / k)`` parity packets follow the frame's d data packets
  (``netsim.fec.slice_fec_encode``), whatever their lengths.

The way back: ``fits_slice_header`` is the layout's rule for a packet on arrival, and
``received_slices`` what the receiver hands the decoder at the playout deadline
(``ReceivedSlices``: the data payloads that arrived, or FEC rebuilt, by packet index: each
slice is usable on its own, so nothing waits for the whole frame); ``usable_nal_units`` turns
them into the Annex B NAL units that are whole.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from codec.h26x.realtime import split_nal_units
from codec.types import FrameType
from netsim.fec import FecError, FecParams, slice_fec_decode, slice_fec_encode, slice_fec_params
from netsim.packet import HEADER_SIZE_BYTES, MAX_FRAGMENTS, Packet, PacketLayout
from netsim.packetizer import PacketizationError
from netsim.reassembly import FrameAssembly

START = 0x01
"""Framing bit: the payload begins with a NAL unit's start code."""
END = 0x02
"""Framing bit: the payload ends where a NAL unit ends."""
FRAMING_BYTES = 1
"""Bytes of the framing header in front of each slice packet's Annex B bytes."""

SLICE_LAYER = 1
"""The ``scale`` field of slice packets: x264 and x265 send one layer."""


@dataclass(frozen=True)
class SlicedFrame:
    """One x264/x265 picture as the sender gets it from the codec adapter.

    ``frame_type``: I (periodic I frame), R (an I frame that answers a picture-loss
    indication) or P. ``nal_units`` in decoding order, each with its 4-byte start code.
    ``qp`` is the constant QP it was coded with; ``codec`` ``x264`` or ``x265``.
    """

    frame_index: int
    frame_type: FrameType
    codec: str
    qp: int
    nal_units: tuple[bytes, ...]
    width: int
    height: int

    @property
    def resync_from(self) -> int:
        """1 for an I or R frame (every reference refreshed), 0 for a P frame."""
        return 0 if self.frame_type is FrameType.P else 1

    @property
    def payload_bits(self) -> int:
        """Bits of the NAL units (start codes included), as the rate is counted."""
        return 8 * sum(len(unit) for unit in self.nal_units)


def payload_budget_bytes(mtu_bytes: int) -> int:
    """Annex B bytes one slice packet can carry: the MTU less header and framing byte."""
    budget = mtu_bytes - HEADER_SIZE_BYTES - FRAMING_BYTES
    if budget < 8:
        raise PacketizationError(
            f"mtu_bytes {mtu_bytes} leaves {budget} bytes for NAL units after the "
            f"{HEADER_SIZE_BYTES}-byte header and the framing byte"
        )
    return budget


def slice_payloads(nal_units: tuple[bytes, ...], budget_bytes: int) -> list[bytes]:
    """The data payloads (framing byte + Annex B bytes) of a frame's NAL units: whole units
    packed greedily, a unit larger than ``budget_bytes`` cut into fragments."""
    payloads: list[bytes] = []
    packed = b""
    for unit in nal_units:
        if packed and len(packed) + len(unit) > budget_bytes:
            payloads.append(bytes([START | END]) + packed)
            packed = b""
        if len(unit) <= budget_bytes:
            packed += unit
            continue
        pieces = [unit[i : i + budget_bytes] for i in range(0, len(unit), budget_bytes)]
        for i, piece in enumerate(pieces):
            flags = (START if i == 0 else 0) | (END if i == len(pieces) - 1 else 0)
            payloads.append(bytes([flags]) + piece)
    if packed or not payloads:
        payloads.append(bytes([START | END]) + packed)
    return payloads


def data_checksum(payloads: Sequence[bytes]) -> tuple[int, int]:
    """(``scale length``, ``scale CRC32``) that a frame's slice packets carry for its data
    payloads in packet order: their total length and the CRC32 of their concatenation."""
    joined = b"".join(payloads)
    return len(joined), zlib.crc32(joined)


def packetize_slices(
    frame: SlicedFrame, *, first_seq: int, mtu_bytes: int, fec: FecParams | None = None
) -> list[Packet]:
    """The packets of ``frame``, data packets in decoding order, then FEC parity packets.

    Every packet is at most ``mtu_bytes`` long (parity packets are as long as the longest data
    packet plus two bytes of framing, so ``mtu_bytes`` must leave room for those two).
    Raises ``PacketizationError`` when a frame needs more than ``MAX_FRAGMENTS`` packets.
    """
    budget = payload_budget_bytes(mtu_bytes) - (2 if fec is not None else 0)
    payloads = slice_payloads(frame.nal_units, budget)
    parity: list[bytes] = []
    if fec is not None and fec.parity_packets > 0:
        try:
            params = slice_fec_params(fec, len(payloads))
        except FecError as err:
            raise PacketizationError(f"frame {frame.frame_index}: {err}", "fec.1") from None
        parity = slice_fec_encode(payloads, params)
    if len(payloads) + len(parity) > MAX_FRAGMENTS:
        raise PacketizationError(
            f"frame {frame.frame_index} ({frame.payload_bits // 8} bytes) needs "
            f"{len(payloads) + len(parity)} packets, more than {MAX_FRAGMENTS}; raise mtu_bytes"
        )
    length, crc = data_checksum(payloads)
    return [
        Packet(
            seq=first_seq + index,
            frame_index=frame.frame_index,
            scale=SLICE_LAYER,
            fragment_index=index,
            fragment_count=len(payloads),
            parity_count=len(parity),
            rate_parameter=float(frame.qp),
            resync_from=frame.resync_from,
            frame_type=frame.frame_type,
            scale_length_bytes=length,
            scale_crc32=crc,
            sync_tag=0,
            payload=payload,
            layout=PacketLayout.SLICES,
        )
        for index, payload in enumerate([*payloads, *parity])
    ]


def fits_slice_header(packet: Packet) -> bool:
    """Whether ``packetize_slices`` could have sent ``packet``: a slice packet whose data
    payload is 1 to ``scale length`` bytes long (slice packets are not cut equally), or a
    parity packet."""
    if packet.layout is not PacketLayout.SLICES:
        return False
    return packet.is_parity or 1 <= len(packet.payload) <= packet.scale_length_bytes


@dataclass(frozen=True)
class ReceivedSlices:
    """What the receiver hands an x264/x265 decoder for one frame at its playout deadline.

    ``payloads`` maps a data packet's index to its payload (arrived in time, or rebuilt by
    FEC); ``packet_count`` is the frame's number of data packets (0 when nothing of the frame
    arrived, then ``frame_type`` and ``qp`` are None too).
    """

    frame_index: int
    frame_type: FrameType | None
    qp: int | None
    packet_count: int
    payloads: Mapping[int, bytes]

    @classmethod
    def nothing(cls, frame_index: int) -> ReceivedSlices:
        """A frame of which no packet arrived."""
        return cls(frame_index, None, None, 0, {})

    @property
    def complete(self) -> bool:
        """Whether every data packet is there."""
        return self.packet_count > 0 and len(self.payloads) == self.packet_count


def usable_nal_units(received: ReceivedSlices) -> list[bytes]:
    """The NAL units (each with its start code) that arrived whole: those in a run of packets
    from one with ``START`` to one with ``END``, none missing in between. Malformed framing (a
    run that never starts or ends) is dropped, never an error."""
    units: list[bytes] = []
    run: list[bytes] | None = None
    for index in range(received.packet_count):
        payload = received.payloads.get(index)
        if not payload:
            run = None
            continue
        flags, body = payload[0], payload[FRAMING_BYTES:]
        if flags & START:
            run = [body]
        elif run is not None:
            run.append(body)
        if flags & END and run is not None:
            units += split_nal_units(b"".join(run))
            run = None
    return units


def received_slices(
    frame_index: int, assembly: FrameAssembly | None
) -> tuple[ReceivedSlices, tuple[int, ...]]:
    """What to hand an x264/x265 decoder from the agreed packets of a frame (every data
    payload that arrived, or that FEC rebuilt) and the data packet indexes FEC rebuilt. A
    frame whose agreed packets are not slice packets counts as nothing received."""
    agreed = None if assembly is None else assembly.agreed()
    if agreed is None:
        return ReceivedSlices.nothing(frame_index), ()
    rate_parameter, _, frame_type, layout, _ = agreed.header
    layer = agreed.scales.get(SLICE_LAYER)
    if layout is not PacketLayout.SLICES or layer is None:
        return ReceivedSlices.nothing(frame_index), ()
    t = layer.template
    kept = layer.payloads()
    data = {i: payload for i, payload in kept.items() if i < t.fragment_count}
    recovered: tuple[int, ...] = ()
    if len(data) < t.fragment_count and len(kept) >= t.fragment_count:
        parity = {i: payload for i, payload in kept.items() if i >= t.fragment_count}
        try:
            rebuilt = slice_fec_decode(data, parity, FecParams(t.fragment_count, t.parity_count))
        except FecError:
            rebuilt = None
        if rebuilt is not None:
            rebuilt_data = [rebuilt[i] for i in range(t.fragment_count)]
            if data_checksum(rebuilt_data) == (t.scale_length_bytes, t.scale_crc32):
                recovered = tuple(i for i in range(t.fragment_count) if i not in data)
                data = rebuilt
    received = ReceivedSlices(
        frame_index=frame_index,
        frame_type=frame_type,
        qp=int(rate_parameter),
        packet_count=t.fragment_count,
        payloads=data,
    )
    return received, recovered
