"""The datagram that carries one fragment of one scale of one frame (DESIGN 4).

Every packet repeats the frame-header fields a receiver needs to use it on its own (frame
index, rate parameter, resync_from, frame type) and the header fields of its scale (length,
CRC32, sync tag), so that any subset of packets can be reassembled and decoded.

Wire format, little-endian, ``HEADER_SIZE_BYTES`` = 46 bytes followed by the payload::

    offset size field
         0    2 magic b"DP"
         2    1 format version (1)
         3    1 frame type          (low 2 bits: 0 = I, 1 = P, 2 = R, 3 = M; high 6 bits:
                                    an M frame's mirror age, 0 for the other types)
         4    4 seq                 (u32)
         8    4 frame index         (u32)
        12    1 scale               (1..K)
        13    1 resync_from         (0..K)
        14    2 fragment index      (u16; < fragment_count are data, the rest FEC parity)
        16    2 fragment count      (u16; data fragments of the scale, FEC's k)
        18    2 parity count        (u16; FEC parity fragments of the scale, m; 0 without FEC)
        20    8 rate parameter      (f64; the codec's: DHVC's lambda, x264/x265's QP)
        28    4 scale length bytes  (u32; the scale's payload length before fragmentation)
        32    4 scale CRC32         (u32; covers the whole scale payload)
        36    4 sync tag            (u32; DESIGN 1)
        40    2 payload length      (u16)
        42    4 packet checksum     (u32; CRC32 of header, with this field zero, and payload)

Construction and parsing check the same rules (``PacketFormatError``), so a packet that was
built always parses, and a datagram that parses carries nothing absurd:

* every field fits its wire width; scale 1..K; resync_from 0..K; a known frame type;
* an M frame (mirrored recovery, DESIGN 3) names the decoder state (f, resync_from) it assumes
  by its mirror age, frame index - f, 1..``MAX_MIRROR_AGE`` and not beyond frame 0 (the rule of
  the ``.dhvc`` frame header); no other frame names one. The field uses bits of the frame type
  byte that were always 0, so the header keeps its 46 bytes and the version byte its value:
  packets without an M frame are byte for byte what they were, and an older parser refuses an
  M packet (an unknown frame type code);
* fragment count >= 1, fragment count + parity count <= ``MAX_FRAGMENTS``, fragment index below
  their sum;
* the rate parameter, for DHVC its lambda: finite, ``MIN_LAMBDA`` .. ``MAX_LAMBDA`` (refuses
  NaN, infinities, zero, subnormals and absurdly large values);
* the scale length can be carried by its data fragments (at most ``fragment_count`` x
  ``MAX_PAYLOAD_BYTES``), and an FEC-protected scale is never empty.

``from_bytes`` raises ``PacketFormatError`` for any damage (truncation at any length, bad magic,
version, checksum or field), never another exception; the receiver treats every such datagram
as lost.

Two layouts share the header (``PacketLayout``), told apart by the version byte:

* version 1, ``SCALES`` (DHVC): ``scale`` is the scale 1..K, and the fragments of a scale are
  equal slices of its payload (or FEC fragments of equal length), as above;
* version 2, ``SLICES`` (x264/x265, DESIGN 4b): ``scale`` is the layer (1: the codecs have one),
  the fragment index numbers the frame's packets, ``fragment count`` is the number of its data
  packets and ``parity count`` its FEC parity packets; data payloads have any length (each is a
  one-byte framing header plus whole NAL units or a piece of one, ``netsim.codecs.slices``);
  ``scale length`` and ``scale CRC32`` cover the concatenated data payloads; the rate
  parameter is the encoder's constant QP (an integer 0..``MAX_QP``); the sync tag is 0.

* version 3, ``PACKED`` (DHVC, ``netsim.packing``): the payload is a sequence of *pieces*, each
  a fragment of one scale behind that scale's own header; ``scale`` is the first piece's scale,
  the fragment index and count number the frame's packets, ``scale length`` and ``scale
  CRC32`` cover the payload, the sync tag is 0.

The rate parameter is one neutral field: each codec adapter (``netsim.codecs``) writes and reads
it in its own terms (``lam=packet.rate_parameter``, ``qp=int(packet.rate_parameter)``).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from codec.io.wire import wire_fields
from codec.model.config import MAX_LAMBDA, MIN_LAMBDA
from codec.types import MAX_MIRROR_AGE, NUM_SCALES, FrameType

MAGIC = b"DP"


class PacketLayout(IntEnum):
    """What a packet's fragments are (its version byte on the wire): fragments of a DHVC
    scale (1), packets of an x264/x265 frame's NAL units (2), or packets of DHVC scales packed
    in order, several to a packet (3, ``netsim.packing``)."""

    SCALES = 1
    SLICES = 2
    PACKED = 3


FORMAT_VERSION = PacketLayout.SCALES.value
"""Version byte of a DHVC packet (``PacketLayout.SCALES``)."""

MAX_QP = 51
"""Largest QP a slice packet's ``rate_parameter`` may carry (H.264 and HEVC, 8 bits)."""
_HEADER = struct.Struct("<2sBBIIBBHHHdIIIHI")
HEADER_SIZE_BYTES = _HEADER.size
"""Bytes of header in front of every payload."""

PACKET_HEADER_FIELDS = wire_fields(
    _HEADER.format,
    (
        "magic",
        "version",
        "frame_type",
        "seq",
        "frame_index",
        "scale",
        "resync_from",
        "fragment_index",
        "fragment_count",
        "parity_count",
        "rate_parameter",
        "scale_length_bytes",
        "scale_crc32",
        "sync_tag",
        "payload_length",
        "checksum",
    ),
)
"""The header's wire layout (module docstring), for tools and tests that damage packets."""
_CHECKSUM = PACKET_HEADER_FIELDS[-1]

MAX_FRAGMENTS = 256
"""Most fragments (data + parity) one scale may be split into (zfec's limit on n)."""

MAX_PAYLOAD_BYTES = 0xFFFF
"""Longest payload one packet can carry (its length field is 16 bits)."""


_LAYOUTS = {layout.value: layout for layout in PacketLayout}
_FRAME_TYPE_CODES = {FrameType.I: 0, FrameType.P: 1, FrameType.R: 2, FrameType.M: 3}
_TYPE_BITS = 2
"""Low bits of the frame type byte holding the type code; the rest hold the mirror age."""
_FRAME_TYPES = {code: frame_type for frame_type, code in _FRAME_TYPE_CODES.items()}
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


class PacketFormatError(ValueError):
    """Bytes that are not a valid packet (truncated, corrupt, or inconsistent)."""


@dataclass(frozen=True)
class Packet:
    """One datagram: exactly the fields that travel on the wire, nothing added per hop.

    ``fragment_index`` < ``fragment_count`` is a data fragment (a slice of the scale payload);
    higher indexes are FEC parity fragments (``parity_count`` of them). Without FEC the last data
    fragment may be shorter than the others; with FEC all fragments of a scale have equal length
    and the reassembled payload is cut back to ``scale_length_bytes``. ``rate_parameter`` is
    the codec's rate setting of the frame (module docstring). ``mirror_from``: an M frame's
    assumed state frame f (``codec.EncodedFrame``), None for the other types.
    """

    seq: int
    frame_index: int
    scale: int
    fragment_index: int
    fragment_count: int
    parity_count: int
    rate_parameter: float
    resync_from: int
    frame_type: FrameType
    scale_length_bytes: int
    scale_crc32: int
    sync_tag: int
    payload: bytes
    layout: PacketLayout = PacketLayout.SCALES
    mirror_from: int | None = None

    def __post_init__(self) -> None:
        problem = _field_problem(
            seq=self.seq,
            frame_index=self.frame_index,
            scale=self.scale,
            fragment_index=self.fragment_index,
            fragment_count=self.fragment_count,
            parity_count=self.parity_count,
            rate_parameter=self.rate_parameter,
            resync_from=self.resync_from,
            frame_type=self.frame_type,
            scale_length_bytes=self.scale_length_bytes,
            scale_crc32=self.scale_crc32,
            sync_tag=self.sync_tag,
            payload_length=len(self.payload),
            layout=self.layout,
            mirror_from=self.mirror_from,
        )
        if problem:
            raise PacketFormatError(problem)

    @property
    def size_bytes(self) -> int:
        """Size of the datagram on the wire: header plus payload."""
        return HEADER_SIZE_BYTES + len(self.payload)

    @property
    def is_parity(self) -> bool:
        """True for an FEC parity fragment."""
        return self.fragment_index >= self.fragment_count

    def to_bytes(self) -> bytes:
        """The datagram as sent; ``Packet.from_bytes`` reverses it."""
        return with_valid_checksum(self._header(checksum=0) + self.payload)

    def _header(self, checksum: int) -> bytes:
        return _HEADER.pack(
            MAGIC,
            int(self.layout),
            _FRAME_TYPE_CODES[self.frame_type] | self._mirror_age() << _TYPE_BITS,
            self.seq,
            self.frame_index,
            self.scale,
            self.resync_from,
            self.fragment_index,
            self.fragment_count,
            self.parity_count,
            self.rate_parameter,
            self.scale_length_bytes,
            self.scale_crc32,
            self.sync_tag,
            len(self.payload),
            checksum,
        )

    def _mirror_age(self) -> int:
        return 0 if self.mirror_from is None else self.frame_index - self.mirror_from

    @classmethod
    def from_bytes(cls, data: bytes) -> Packet:
        """Parse one datagram (any bytes-like object); raises ``PacketFormatError``, never
        another exception, and never reads past a length."""
        data = bytes(data)
        if len(data) < HEADER_SIZE_BYTES:
            raise PacketFormatError(
                f"truncated packet: {len(data)} bytes, the header alone is {HEADER_SIZE_BYTES}"
            )
        (
            magic,
            version,
            type_code,
            seq,
            frame_index,
            scale,
            resync_from,
            fragment_index,
            fragment_count,
            parity_count,
            rate_parameter,
            scale_length_bytes,
            scale_crc32,
            sync_tag,
            payload_length,
            checksum,
        ) = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise PacketFormatError(f"bad magic {magic!r}, expected {MAGIC!r}")
        if version not in _LAYOUTS:
            raise PacketFormatError(f"unsupported packet format version {version}")
        if len(data) != HEADER_SIZE_BYTES + payload_length:
            raise PacketFormatError(
                f"payload length field says {payload_length} bytes, "
                f"the datagram carries {len(data) - HEADER_SIZE_BYTES}"
            )
        if packet_checksum(data) != checksum:
            raise PacketFormatError("packet checksum mismatch (corrupt packet)")
        mirror_age, type_code = type_code >> _TYPE_BITS, type_code & ((1 << _TYPE_BITS) - 1)
        if type_code not in _FRAME_TYPES:
            raise PacketFormatError(f"unknown frame type code {type_code}")
        return cls(  # __post_init__ checks every field (PacketFormatError)
            seq=seq,
            frame_index=frame_index,
            scale=scale,
            fragment_index=fragment_index,
            fragment_count=fragment_count,
            parity_count=parity_count,
            rate_parameter=rate_parameter,
            resync_from=resync_from,
            frame_type=_FRAME_TYPES[type_code],
            scale_length_bytes=scale_length_bytes,
            scale_crc32=scale_crc32,
            sync_tag=sync_tag,
            payload=bytes(data[HEADER_SIZE_BYTES:]),
            layout=_LAYOUTS[version],
            mirror_from=frame_index - mirror_age if mirror_age else None,
        )


def packet_checksum(datagram: bytes | bytearray) -> int:
    """The checksum a datagram (at least a header long) must carry: CRC32 of its header, with
    the checksum field zero, then its payload."""
    zeroed = bytearray(datagram[:HEADER_SIZE_BYTES])
    _CHECKSUM.write(zeroed, 0)
    return zlib.crc32(bytes(datagram[HEADER_SIZE_BYTES:]), zlib.crc32(zeroed))


def with_valid_checksum(datagram: bytes | bytearray) -> bytes:
    """``datagram`` with its checksum field set to ``packet_checksum``, any other damage kept
    (shorter than a header: unchanged), so that the damage reaches the field checks."""
    out = bytearray(datagram)
    if len(out) >= HEADER_SIZE_BYTES:
        _CHECKSUM.write(out, packet_checksum(out))
    return bytes(out)


def _field_problem(
    *,
    seq: int,
    frame_index: int,
    scale: int,
    fragment_index: int,
    fragment_count: int,
    parity_count: int,
    rate_parameter: float,
    resync_from: int,
    frame_type: FrameType,
    scale_length_bytes: int,
    scale_crc32: int,
    sync_tag: int,
    payload_length: int,
    layout: PacketLayout = PacketLayout.SCALES,
    mirror_from: int | None = None,
) -> str | None:
    """The first field that cannot be sent in the wire format, as a message; None if all can."""
    for name, value, limit in (
        ("seq", seq, _U32),
        ("frame_index", frame_index, _U32),
        ("scale_length_bytes", scale_length_bytes, _U32),
        ("scale_crc32", scale_crc32, _U32),
        ("sync_tag", sync_tag, _U32),
        ("payload length", payload_length, _U16),
    ):
        if not 0 <= value <= limit:
            return f"{name} {value} does not fit the packet header (0..{limit})"
    if not 1 <= scale <= NUM_SCALES:
        return f"scale {scale} outside 1..{NUM_SCALES}"
    if not 0 <= resync_from <= NUM_SCALES:
        return f"resync_from {resync_from} outside 0..{NUM_SCALES}"
    if frame_type not in _FRAME_TYPE_CODES:
        return f"frame type {frame_type!r} is not a FrameType"
    if frame_type is not FrameType.M and mirror_from is not None:
        return f"a {frame_type.value} frame assumes no state (mirror_from {mirror_from})"
    if frame_type is FrameType.M and (
        mirror_from is None
        or mirror_from < 0
        or not 1 <= frame_index - mirror_from <= MAX_MIRROR_AGE
    ):
        return (
            f"an M frame assumes the state (f, j) of a frame f 1..{MAX_MIRROR_AGE} before it, "
            f"not ({mirror_from}, {resync_from})"
        )
    if fragment_count < 1 or parity_count < 0 or fragment_count + parity_count > MAX_FRAGMENTS:
        return (
            f"fragment count {fragment_count} + parity count {parity_count} "
            f"outside 1..{MAX_FRAGMENTS}"
        )
    if not 0 <= fragment_index < fragment_count + parity_count:
        return f"fragment index {fragment_index} outside 0..{fragment_count + parity_count - 1}"
    if layout not in _LAYOUTS.values():
        return f"packet layout {layout!r} is not a PacketLayout"
    if layout is PacketLayout.SLICES:
        if not (0 <= rate_parameter <= MAX_QP and float(rate_parameter).is_integer()):  # NaN too
            return f"QP {rate_parameter!r} of a slice packet outside 0..{MAX_QP}"
    elif not MIN_LAMBDA <= rate_parameter <= MAX_LAMBDA:  # NaN fails too
        return f"lambda {rate_parameter!r} outside {MIN_LAMBDA:g}..{MAX_LAMBDA:g}"
    if scale_length_bytes > fragment_count * MAX_PAYLOAD_BYTES:
        return (
            f"scale length {scale_length_bytes} cannot be carried by {fragment_count} "
            f"fragments of at most {MAX_PAYLOAD_BYTES} bytes"
        )
    if parity_count > 0 and scale_length_bytes == 0:
        return "an FEC-protected scale cannot be empty"
    return None
