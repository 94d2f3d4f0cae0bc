"""Packed packetization: a frame's scales in order in as few MTU-sized packets as fit (DESIGN 4).

The paper's layout sends every scale in packets of its own, so a DHVC frame exposes about five
packets to loss, its tiny low scales one each. Here the scales are packed in order instead:
small whole scales share a packet, a large scale fills the rest of one and continues in the
next. Each packet (``PacketLayout.PACKED``) carries *pieces*: a piece is one fragment of one
scale with that scale's own header (``PIECE_HEADER``: scale, fragment index, fragment count,
parity count, scale length, CRC32, sync tag, piece length) in front of its bytes, and the
packet header repeats the frame header as every packet does, so each packet is usable on its
own. On arrival ``pieces_of`` turns a packed packet back into its pieces, ``Packet`` values of
the same layout that the receiver's reassembly treats as fragments of their scales
(``netsim.reassembly``); losing the packet loses them all.

The packet header of a packed packet: ``scale`` is its first piece's scale, ``fragment index``
its place among the frame's packets and ``fragment count`` their number, ``parity count`` 0,
``scale length`` and ``scale CRC32`` those of its payload (the pieces), ``sync tag`` 0.

Without FEC a scale's pieces may differ in length (the first fills the room left in a packet).
A scale with FEC (k data plus m parity fragments of equal length, ``netsim.fec``) never has two
pieces in one packet, so one lost packet costs it one fragment at most; its parity pieces follow
all data pieces, each in the first packet with room that holds nothing of its scale.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from codec.types import EncodedFrame, ScalePayload
from netsim.fec import FecError, FecParams, fec_encode
from netsim.packet import (
    HEADER_SIZE_BYTES,
    MAX_FRAGMENTS,
    Packet,
    PacketFormatError,
    PacketLayout,
)
from netsim.packetizer import PacketizationError

PIECE_HEADER = struct.Struct("<BHHHIIIH")
"""A piece's header in a packed packet: scale (u8), fragment index, fragment count, parity
count (u16 each), scale length, scale CRC32, sync tag (u32 each), piece length (u16)."""

PIECE_HEADER_BYTES = PIECE_HEADER.size

MIN_SPLIT_BYTES = 64
"""A scale without FEC starts in the current packet only when at least this much of it (or
all of it) fits there; a smaller remainder of room is left empty."""


class PackingError(PacketizationError):
    """A frame that cannot be packed at this MTU (a scale needs more than ``MAX_FRAGMENTS``
    pieces, or an MTU too small for one piece); ``setting`` names the sender field."""


def piece_payload_bytes(mtu_bytes: int) -> int:
    """The most bytes of one scale a packed packet of ``mtu_bytes`` carries in one piece."""
    room = mtu_bytes - HEADER_SIZE_BYTES - PIECE_HEADER_BYTES
    if room < 1:
        raise PackingError(
            f"mtu_bytes {mtu_bytes} leaves no room for a piece after the "
            f"{HEADER_SIZE_BYTES}-byte header and the {PIECE_HEADER_BYTES}-byte piece header"
        )
    return room


@dataclass(frozen=True)
class _Piece:
    scale: int
    fragment_index: int
    fragment_count: int
    parity_count: int
    payload: ScalePayload
    data: bytes

    @property
    def size_bytes(self) -> int:
        return PIECE_HEADER_BYTES + len(self.data)

    @property
    def protected(self) -> bool:
        return self.parity_count > 0

    def encode(self) -> bytes:
        header = PIECE_HEADER.pack(
            self.scale,
            self.fragment_index,
            self.fragment_count,
            self.parity_count,
            len(self.payload.data),
            self.payload.crc32,
            self.payload.sync_tag,
            len(self.data),
        )
        return header + self.data


def _plain_pieces(scale: int, payload: ScalePayload, first_room: int, room: int) -> list[_Piece]:
    """A scale without FEC: a first piece of up to ``first_room`` bytes (skipped when 0), then
    pieces of up to ``room`` bytes; one empty piece for an empty scale."""
    data = payload.data
    cuts = [min(len(data), first_room)] if first_room > 0 else []
    done = sum(cuts)
    while done < len(data) or not cuts:
        cuts.append(min(room, len(data) - done))
        done += cuts[-1]
    if len(cuts) > MAX_FRAGMENTS:
        raise PackingError(
            f"scale {scale} ({len(data)} bytes) needs {len(cuts)} pieces, more than "
            f"{MAX_FRAGMENTS}; raise mtu_bytes"
        )
    pieces, offset = [], 0
    for index, cut in enumerate(cuts):
        pieces.append(_Piece(scale, index, len(cuts), 0, payload, data[offset : offset + cut]))
        offset += cut
    return pieces


def _fec_pieces(scale: int, payload: ScalePayload, params: FecParams, room: int) -> list[_Piece]:
    """A scale with FEC: k data and m parity pieces of equal length (k grown so each fits)."""
    needed = max(1, math.ceil(len(payload.data) / room))
    try:
        params = params.scaled_to(needed)
    except FecError as err:
        raise PackingError(f"scale {scale}: {err}", f"fec.{scale}") from None
    fragments = fec_encode(payload.data, params)
    k, m = params.data_packets, params.parity_packets
    return [_Piece(scale, i, k, m, payload, fragment) for i, fragment in enumerate(fragments)]


def pack_frame(
    frame: EncodedFrame,
    *,
    first_seq: int,
    mtu_bytes: int,
    max_scales: int,
    fec: Mapping[int, FecParams],
) -> list[Packet]:
    """The packed packets of scales 1..``max_scales`` of ``frame`` (module docstring),
    numbered from ``first_seq``, each at most ``mtu_bytes`` long. ``fec`` maps a scale to its
    FEC parameters (an empty scale travels unprotected). Raises ``PackingError``."""
    capacity = mtu_bytes - HEADER_SIZE_BYTES
    room = piece_payload_bytes(mtu_bytes)
    packets: list[list[_Piece]] = [[]]
    parity: list[_Piece] = []

    def used(group: list[_Piece]) -> int:
        return sum(p.size_bytes for p in group)

    for scale in range(1, max_scales + 1):
        payload = frame.scales[scale - 1]
        params = fec.get(scale)
        if params is not None and payload.data:
            pieces = _fec_pieces(scale, payload, params, room)
            for piece in pieces[: piece_count_data(pieces)]:
                current = packets[-1]
                full = used(current) + piece.size_bytes > capacity
                if full or any(p.scale == scale for p in current):
                    packets.append(current := [])
                current.append(piece)
            parity += pieces[piece_count_data(pieces) :]
            continue
        left = capacity - used(packets[-1]) - PIECE_HEADER_BYTES
        fits_whole = left >= len(payload.data)
        first_room = left if fits_whole or left >= MIN_SPLIT_BYTES else 0
        if not fits_whole and first_room == 0 and packets[-1]:
            packets.append([])
            first_room = room
        pieces = _plain_pieces(scale, payload, first_room, room)
        packets[-1].append(pieces[0])
        for piece in pieces[1:]:
            packets.append([piece])
    parity.sort(key=lambda p: (p.fragment_index - p.fragment_count, p.scale))
    for piece in parity:
        target = next(
            (
                group
                for group in packets
                if used(group) + piece.size_bytes <= capacity
                and all(p.scale != piece.scale for p in group)
            ),
            None,
        )
        if target is None:
            packets.append(target := [])
        target.append(piece)
    return _packets(frame, [group for group in packets if group], first_seq)


def striped_layout(
    scale_bytes: Sequence[int], mtu_bytes: int, parity_fraction: float
) -> tuple[int, int] | None:
    """(P, m) of ``pack_frame_striped`` for scales of these sizes: the fewest data packets P
    whose share of every scale (one piece each, header included) fits a packet, and
    m = ceil(``parity_fraction`` * P) parity packets; None when P + m would pass
    ``MAX_FRAGMENTS``."""
    capacity = mtu_bytes - HEADER_SIZE_BYTES
    for data_packets in range(1, MAX_FRAGMENTS):
        parity_packets = max(1, math.ceil(parity_fraction * data_packets))
        if data_packets + parity_packets > MAX_FRAGMENTS:
            return None
        shares = (math.ceil(n / data_packets) for n in scale_bytes)
        if sum(PIECE_HEADER_BYTES + share for share in shares) <= capacity:
            return data_packets, parity_packets
    return None


def pack_frame_striped(
    frame: EncodedFrame,
    *,
    first_seq: int,
    mtu_bytes: int,
    max_scales: int,
    parity_fraction: float,
) -> list[Packet]:
    """Frame-level FEC in the packed layout: every scale is cut into P data pieces of equal
    length, piece i of every scale in data packet i, and its m parity pieces in the m parity
    packets after them, m = ceil(``parity_fraction`` * P) (the rule by which x264/x265 frames
    get parity: one packet per 1/``parity_fraction`` data packets, rounded up). P is the
    fewest data packets that hold the frame. Any m lost packets of the frame are repaired,
    whatever scales they held; an empty scale travels as one empty piece in packet 0 and in
    every parity packet (the receiver drops the copies).
    Raises ``PackingError``."""
    sizes = [len(frame.scales[k].data) for k in range(max_scales)]
    layout = striped_layout(sizes, mtu_bytes, parity_fraction)
    if layout is None:
        raise PackingError(
            f"frame {frame.frame_index} ({sum(sizes)} bytes) does not fit {MAX_FRAGMENTS} "
            f"packets of {mtu_bytes} bytes with parity; raise mtu_bytes"
        )
    data_packets, parity_packets = layout
    params = FecParams(data_packets, parity_packets)
    groups: list[list[_Piece]] = [[] for _ in range(data_packets + parity_packets)]
    for scale in range(1, max_scales + 1):
        payload = frame.scales[scale - 1]
        if not payload.data:  # in packet 0 and in every parity packet: any m losses keep it
            empty = _Piece(scale, 0, 1, 0, payload, b"")
            for index in (0, *range(data_packets, data_packets + parity_packets)):
                groups[index].append(empty)
            continue
        fragments = fec_encode(payload.data, params)
        for index, fragment in enumerate(fragments):
            groups[index].append(
                _Piece(scale, index, data_packets, parity_packets, payload, fragment)
            )
    return _packets(frame, groups, first_seq)


def _packets(frame: EncodedFrame, packets: list[list[_Piece]], first_seq: int) -> list[Packet]:
    """The packed packets that carry ``packets`` (lists of pieces), numbered from
    ``first_seq``."""
    out = []
    for index, group in enumerate(packets):
        body = b"".join(piece.encode() for piece in group)
        out.append(
            Packet(
                seq=first_seq + index,
                frame_index=frame.frame_index,
                scale=group[0].scale,
                fragment_index=index,
                fragment_count=len(packets),
                parity_count=0,
                rate_parameter=frame.lam,
                resync_from=frame.resync_from,
                frame_type=frame.frame_type,
                mirror_from=frame.mirror_from,
                scale_length_bytes=len(body),
                scale_crc32=zlib.crc32(body),
                sync_tag=0,
                payload=body,
                layout=PacketLayout.PACKED,
            )
        )
    return out


def piece_count_data(pieces: list[_Piece]) -> int:
    """How many of a scale's pieces are data pieces (the rest are parity)."""
    return pieces[0].fragment_count


def pieces_of(packet: Packet) -> tuple[Packet, ...]:
    """What the receiver's reassembly takes from ``packet``: the packet itself, or for a
    packed packet its pieces as packets of their scales (same seq and frame header). Raises
    ``PacketFormatError`` for a packed payload that does not parse into whole pieces or
    does not match its header's length and CRC32."""
    if packet.layout is not PacketLayout.PACKED:
        return (packet,)
    body = packet.payload
    if len(body) != packet.scale_length_bytes or zlib.crc32(body) != packet.scale_crc32:
        raise PacketFormatError("packed payload does not match its length or CRC32")
    pieces, offset = [], 0
    while offset < len(body):
        if len(body) - offset < PIECE_HEADER_BYTES:
            raise PacketFormatError("truncated piece header in a packed packet")
        scale, index, count, parity, length, crc32, sync_tag, size = PIECE_HEADER.unpack_from(
            body, offset
        )
        offset += PIECE_HEADER_BYTES
        if size > len(body) - offset:
            raise PacketFormatError("a piece runs past the end of its packed packet")
        pieces.append(
            Packet(  # __post_init__ checks every field (PacketFormatError)
                seq=packet.seq,
                frame_index=packet.frame_index,
                scale=scale,
                fragment_index=index,
                fragment_count=count,
                parity_count=parity,
                rate_parameter=packet.rate_parameter,
                resync_from=packet.resync_from,
                frame_type=packet.frame_type,
                mirror_from=packet.mirror_from,
                scale_length_bytes=length,
                scale_crc32=crc32,
                sync_tag=sync_tag,
                payload=body[offset : offset + size],
                layout=PacketLayout.PACKED,
            )
        )
        offset += size
    if not pieces:
        raise PacketFormatError("a packed packet without pieces")
    return tuple(pieces)


def fits_piece(packet: Packet) -> bool:
    """Whether ``pack_frame`` could have made the piece ``packet``: an FEC piece is
    ``ceil(length / k)`` bytes; without FEC a single piece is the whole scale and each of
    several is 1..length bytes (their sum is checked when the scale is assembled)."""
    if packet.layout is not PacketLayout.PACKED:
        return False
    length, count, size = packet.scale_length_bytes, packet.fragment_count, len(packet.payload)
    if packet.parity_count > 0:
        return length > 0 and size == -(-length // count)
    if count == 1:
        return size == length
    return 1 <= size <= length
