"""Mutators of binary inputs: .dhvc streams (``DhvcMutator``), DHVC packets
(``PacketMutator``), x264/x265 slice packets (``SlicePacketMutator``) and loader files
(``FileMutator``). Offsets and checksums come from the formats' own modules
(``codec.stream.bitstream``, ``netsim.packet``, ``netsim.codecs.slices``), so a mutation can
set a field and re-seal its CRC without a copy of the layout. Every mutator is deterministic
in the ``random.Random`` it is given."""

from __future__ import annotations

import math
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from codec.io.wire import WireField
from codec.stream.bitstream import (
    FRAME_HEADER_FIELDS,
    STREAM_HEADER_FIELDS,
    FrameHeader,
    StreamHeader,
    frame_header_field,
    with_scale_crc,
)
from codec.types import NUM_SCALES
from netsim.codecs.slices import END, START, data_checksum
from netsim.packet import HEADER_SIZE_BYTES, PACKET_HEADER_FIELDS, with_valid_checksum

_SH = StreamHeader.SIZE
_FH = FrameHeader.SIZE
STREAM_FIELDS = tuple(f for f in STREAM_HEADER_FIELDS if f.name not in ("magic", "model_id"))
"""Stream header fields set to extreme values (magic and model id have their own mutations)."""
FRAME_FIELDS = tuple(f for f in FRAME_HEADER_FIELDS if f.name != "sync")
_MODEL_ID = next(f for f in STREAM_HEADER_FIELDS if f.name == "model_id")
_WIDTH = next(f for f in STREAM_HEADER_FIELDS if f.name == "width")
_HEIGHT = next(f for f in STREAM_HEADER_FIELDS if f.name == "height")

EXTREMES = {
    "B": (0, 1, 2, 4, 5, 0x7F, 0x80, 0xFF),
    "H": (0, 1, 2, 3, 0x7FFF, 0x8000, 0xFFFF),
    "I": (
        0,
        1,
        2,
        0xFF,
        0xFFFF,
        0x7FFF,
        0x8000,
        0x8001,
        1 << 28,
        (1 << 28) + 1,
        0x7FFFFFFF,
        0x80000000,
        0xFFFFFFFF,
    ),
    "f": (
        0.0,
        -0.0,
        -1.0,
        1e-45,
        63.9,
        64.0,
        8192.0,
        8192.5,
        9999999.0,
        1e7,
        3.4e38,
        math.inf,
        -math.inf,
        math.nan,
    ),
    "d": (
        0.0,
        -0.0,
        -1.0,
        5e-324,
        1e-300,
        63.9,
        64.0,
        1024.0,
        8192.0,
        8192.5,
        1e7,
        1e308,
        math.inf,
        -math.inf,
        math.nan,
    ),
}
FRAME_SIZES = (
    (1, 1),
    (1, 64),
    (64, 1),
    (17, 33),
    (65, 63),
    (129, 64),
    (1 << 15, 1 << 15),
    (1 << 14, 1 << 14),
)
"""(width, height) pairs for the ``size`` mutation; the last two are allocation bombs."""
MODEL_IDS = (
    b"",
    b"tiny",
    b"tiny-random",
    b"tiny-randoM",
    b"small-random",
    b"base-random",
    b"nosuchpreset-random",
    b"-random",
    b"\xff\xfe-random",
    b"tiny-random\x00garbage",
    b"A" * 32,
    b"../../etc/passwd",
)


@dataclass
class SplitStream:
    header: bytes
    frames: list[tuple[bytearray, list[bytes]]]

    def to_bytes(self) -> bytes:
        out = [self.header]
        for head, payloads in self.frames:
            out.append(bytes(head))
            out.extend(payloads)
        return b"".join(out)


def split_stream(data: bytes) -> SplitStream | None:
    """Stream header and frames by the declared lengths; None unless the bytes split cleanly."""
    if len(data) < _SH:
        return None
    frames = []
    pos = _SH
    while pos < len(data):
        if pos + _FH > len(data):
            return None
        head = bytearray(data[pos : pos + _FH])
        pos += _FH
        lengths = [
            frame_header_field(f"scale{k}.length").read(head) for k in range(1, NUM_SCALES + 1)
        ]
        payloads = []
        for n in lengths:
            if pos + n > len(data):
                return None
            payloads.append(data[pos : pos + n])
            pos += n
        frames.append((head, payloads))
    return SplitStream(data[:_SH], frames)


def _header_positions(data: bytes) -> list[int]:
    """Byte offsets inside the stream header and frame headers of ``data``."""
    split = split_stream(data)
    positions = list(range(min(_SH, len(data))))
    if split is not None:
        pos = _SH
        for _, payloads in split.frames:
            positions.extend(range(pos, pos + _FH))
            pos += _FH + sum(len(p) for p in payloads)
    return positions


def _position(rng: random.Random, data: bytes) -> int:
    if rng.random() < 0.5:
        return rng.choice(_header_positions(data))
    return rng.randrange(len(data))


def _pack_value(code: str, value: float | int) -> bytes:
    """``value`` as a field of struct ``code`` (a ``c`` field takes a byte value)."""
    if code == "c":
        return bytes([int(value) & 0xFF])
    return struct.pack("<" + code, value)


def _extremes_of(field: WireField) -> tuple[Any, ...]:
    return EXTREMES["B" if field.code == "c" else field.code]


class DhvcMutator:
    """Damaged versions of a valid .dhvc ``stream``; ``foreign_stream`` (another frame size)
    provides frames and a header to splice in."""

    def __init__(self, stream: bytes, foreign_stream: bytes) -> None:
        self.stream = stream
        self.foreign_stream = foreign_stream
        self.ops: list[tuple[str, Callable[[random.Random, bytes], tuple[str, bytes]], float]] = [
            ("flip", self.flip, 2),
            ("overwrite", self.overwrite, 1.5),
            ("truncate", self.truncate, 1),
            ("insert", self.insert, 1),
            ("delete", self.delete, 1),
            ("header_field", self.header_field, 3),
            ("raw_int", self.raw_int, 1),
            ("model_id", self.model_id, 0.4),
            ("payload_crc", self.payload_crc, 2),
            ("payload_resize", self.payload_resize, 1.5),
            ("frames", self.frames, 1.5),
            ("size", self.size, 0.05),
        ]

    def mutate(self, rng: random.Random) -> tuple[str, bytes]:
        data = self.stream
        steps = rng.choices((1, 2, 3), weights=(6, 3, 1))[0]
        described = []
        for _ in range(steps):
            name, op, _ = rng.choices(self.ops, weights=[w for *_, w in self.ops])[0]
            if not data:
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
                described.append(f"random {len(data)} bytes")
                continue
            what, data = op(rng, data)
            described.append(f"{name}: {what}")
        return "; ".join(described), data

    def flip(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        out = bytearray(data)
        spots = []
        for _ in range(rng.randint(1, 8)):
            pos, bit = _position(rng, out), rng.randrange(8)
            out[pos] ^= 1 << bit
            spots.append(f"{pos}.{bit}")
        return "bits " + ",".join(spots), bytes(out)

    def overwrite(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        out = bytearray(data)
        spots = []
        for _ in range(rng.randint(1, 8)):
            pos, value = _position(rng, out), rng.randrange(256)
            out[pos] = value
            spots.append(f"[{pos}]={value:#04x}")
        return " ".join(spots), bytes(out)

    def truncate(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        cut = rng.randrange(len(data))
        return f"to {cut} of {len(data)} bytes", data[:cut]

    def insert(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        pos = rng.randrange(len(data) + 1)
        n = rng.choice((1, 2, 4, rng.randint(1, 64), rng.randint(64, 4096)))
        kind = rng.choice(("random", "zero", "ff", "copy"))
        if kind == "random":
            run = bytes(rng.randrange(256) for _ in range(n))
        elif kind == "copy":
            start = rng.randrange(len(data))
            run = data[start : start + n]
        else:
            run = (b"\x00" if kind == "zero" else b"\xff") * n
        return f"{len(run)} {kind} bytes at {pos}", data[:pos] + run + data[pos:]

    def delete(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        pos = rng.randrange(len(data))
        n = rng.choice((1, 2, 4, rng.randint(1, 64)))
        return f"{n} bytes at {pos}", data[:pos] + data[pos + n :]

    def header_field(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        split = split_stream(data)
        out = bytearray(data)
        if split is None or not split.frames or rng.random() < 0.35:
            field = rng.choice(STREAM_FIELDS)
            offset, where = field.offset, "stream"
        else:
            i = rng.randrange(len(split.frames))
            field = rng.choice(FRAME_FIELDS)
            before = sum(_FH + sum(len(p) for p in f[1]) for f in split.frames[:i])
            offset = field.offset + _SH + before
            where = f"frame {i}"
        value = rng.choice(_extremes_of(field))
        packed = _pack_value(field.code, value)
        if offset + len(packed) > len(out):
            return f"{where} {field.name} past the end", data
        out[offset : offset + len(packed)] = packed
        return f"{where} {field.name}={value!r}", bytes(out)

    def raw_int(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        fmt = rng.choice("HI")
        value = rng.choice((0, 0xFFFF, 0xFFFFFFFF) if fmt == "I" else (0, 0xFFFF))
        packed = _pack_value(fmt, value)
        positions = [p for p in _header_positions(data) if p + len(packed) <= len(data)]
        if not positions:
            return "no room", data
        pos = rng.choice(positions)
        out = bytearray(data)
        out[pos : pos + len(packed)] = packed
        return f"u{8 * len(packed)} {value:#x} at {pos}", bytes(out)

    def model_id(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        if len(data) < _SH:
            return "no header", data
        value = rng.choice(MODEL_IDS)
        start, size = _MODEL_ID.offset, _MODEL_ID.size
        out = bytearray(data)
        out[start : start + size] = value[:size].ljust(size, b"\x00")
        return f"{value!r}", bytes(out)

    def size(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        """Width and height together: tiny, odd, or as large as the header allows."""
        if len(data) < _SH:
            return "no header", data
        width, height = rng.choice(FRAME_SIZES)
        out = bytearray(data)
        _WIDTH.write(out, width)
        _HEIGHT.write(out, height)
        return f"stream {width}x{height}", bytes(out)

    def payload_crc(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        """Damage a scale payload and recompute its CRC: the entropy decoder sees garbage."""
        split = split_stream(data)
        if split is None or not split.frames:
            return self.flip(rng, data)
        i = rng.randrange(len(split.frames))
        k = rng.randrange(NUM_SCALES)
        head, payloads = split.frames[i]
        payload = bytearray(payloads[k])
        kind = rng.choice(("flip", "random", "zero", "ff"))
        if not payload:
            payload = bytearray(b"\x00")
        if kind == "flip":
            for _ in range(rng.randint(1, 4)):
                payload[rng.randrange(len(payload))] ^= 1 << rng.randrange(8)
        elif kind == "random":
            payload = bytearray(rng.randrange(256) for _ in payload)
        else:
            payload = bytearray((b"\x00" if kind == "zero" else b"\xff") * len(payload))
        payloads[k] = bytes(payload)
        head[:] = with_scale_crc(head, k + 1, payloads[k])
        return f"frame {i} scale {k + 1} {kind} (CRC fixed)", split.to_bytes()

    def payload_resize(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        """Make a scale payload shorter or longer with a matching length and CRC."""
        split = split_stream(data)
        if split is None or not split.frames:
            return self.truncate(rng, data)
        i = rng.randrange(len(split.frames))
        k = rng.randrange(NUM_SCALES)
        head, payloads = split.frames[i]
        old = payloads[k]
        n = rng.choice((0, 1, max(0, len(old) - 1), len(old) + 1, 2 * len(old), 1000, 65536))
        if n <= len(old):
            new = old[:n]
        else:
            new = old + bytes(rng.randrange(256) for _ in range(min(n - len(old), 4096)))
            new = new.ljust(n, b"\x00")
        payloads[k] = new
        head[:] = with_scale_crc(head, k + 1, new)
        return f"frame {i} scale {k + 1} {len(old)} -> {n} bytes (CRC fixed)", split.to_bytes()

    def frames(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        split = split_stream(data)
        if split is None:
            return self.delete(rng, data)
        foreign = split_stream(self.foreign_stream)
        assert foreign is not None
        fr = split.frames
        kind = rng.choice(
            ("duplicate", "drop", "swap", "reverse", "repeat", "splice", "foreign_header", "none")
        )
        if kind == "none" or not fr:
            split.frames = []
            return "no frames at all", split.to_bytes()
        i = rng.randrange(len(fr))
        if kind == "duplicate":
            fr.insert(i, (bytearray(fr[i][0]), list(fr[i][1])))
        elif kind == "drop":
            del fr[i]
        elif kind == "swap":
            j = rng.randrange(len(fr))
            fr[i], fr[j] = fr[j], fr[i]
            kind = f"swap with {j}"
        elif kind == "reverse":
            fr.reverse()
        elif kind == "repeat":
            copies = rng.choice((10, 50))
            fr[i + 1 : i + 1] = [(bytearray(fr[i][0]), list(fr[i][1])) for _ in range(copies)]
            kind = f"repeat x{copies}"
        elif kind == "splice":
            fr.insert(i, rng.choice(foreign.frames))
            kind = "splice a 96x64 frame before"
        else:
            split.header = foreign.header
            kind = "header of a 96x64 stream"
        return f"{kind} frame {i}", split.to_bytes()


_PF: dict[str, WireField] = {f.name: f for f in PACKET_HEADER_FIELDS}
PACKET_FIELD_NAMES = tuple(_PF)
PACKET_FRAME_FIELDS = ("frame_type", "frame_index", "resync_from", "rate_parameter")
"""Fields every packet of a frame repeats (a forgery changes them in all packets alike)."""
SCALE_FIELDS = ("fragment_count", "parity_count", "scale_length_bytes", "scale_crc32", "sync_tag")


def set_field(data: bytes, name: str, value: Any) -> bytes:
    """``data`` with packet header field ``name`` set to ``value`` (unchanged when too short);
    the checksum is not recomputed (``with_valid_checksum``)."""
    field = _PF[name]
    if len(data) < field.offset + field.size:
        return bytes(data)
    out = bytearray(data)
    field.write(out, value)
    return bytes(out)


def get_field(data: bytes, name: str) -> Any:
    return _PF[name].read(data)


def set_payload(data: bytes, payload: bytes) -> bytes:
    """Replace the payload, keeping the payload length field and checksum consistent."""
    out = set_field(data[:HEADER_SIZE_BYTES], "payload_length", len(payload) & 0xFFFF) + payload
    return with_valid_checksum(out)


def _extreme(rng: random.Random, name: str) -> Any:
    fmt = _PF[name].code
    if fmt == "2s":
        return bytes(rng.randrange(256) for _ in range(2))
    if fmt == "B" and rng.random() < 0.5:
        return rng.randrange(7)
    if fmt == "H" and rng.random() < 0.3:
        return rng.randrange(300)
    if fmt in "HI" and rng.random() < 0.1:
        return rng.randrange(1 << (8 * struct.calcsize(fmt)))
    return rng.choice(EXTREMES[fmt])


class PacketMutator:
    """Damaged sets of the datagrams of one frame. ``packet_sets`` maps a packetization (MTU,
    FEC) to each frame's valid datagrams, in sending order."""

    whole_stream = False
    """Whether a case delivers the other frames' packets too (so that the damaged frame is
    decoded with its references), or only the damaged frame's."""

    def __init__(self, packet_sets: dict[str, list[list[bytes]]]) -> None:
        self.packet_sets = packet_sets
        self.ops: list[tuple[str, Callable, float]] = [
            ("flip", self.flip, 1.5),
            ("field", self.field, 4),
            ("truncate", self.truncate, 1),
            ("extend", self.extend, 1),
            ("payload", self.payload, 1),
            ("forge_scale", self.forge_scale, 2),
            ("forge_frame", self.forge_frame, 1.5),
            ("duplicate", self.duplicate, 1),
            ("foreign", self.foreign, 0.7),
            ("garbage", self.garbage, 0.5),
        ]

    def mutate(self, rng: random.Random) -> tuple[str, list[bytes], int]:
        config = rng.choice(sorted(self.packet_sets))
        frame = rng.randrange(len(self.packet_sets[config]))
        packets = list(self.packet_sets[config][frame])
        described = [f"{config} frame {frame} ({len(packets)} packets)"]
        damaged = 0
        for _ in range(rng.choices((1, 2, 3), weights=(6, 3, 1))[0]):
            name, op, _ = rng.choices(self.ops, weights=[w for *_, w in self.ops])[0]
            what, packets, n = op(rng, packets)
            described.append(f"{name}: {what}")
            damaged += n
        if rng.random() < 0.3:
            rng.shuffle(packets)
            described.append("shuffled")
        if rng.random() < 0.2 and len(packets) > 1:
            del packets[rng.randrange(len(packets))]
            described.append("one dropped")
        if self.whole_stream:
            others = self.packet_sets[config][:frame] + self.packet_sets[config][frame + 1 :]
            packets = [p for other in others for p in other] + packets
        return "; ".join(described), packets, damaged

    @staticmethod
    def _pick(rng: random.Random, packets: list[bytes]) -> int:
        return rng.randrange(len(packets)) if packets else -1

    def flip(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        i = self._pick(rng, packets)
        if i < 0:
            return "none left", packets, 0
        out = bytearray(packets[i])
        if not out:
            return "empty packet", packets, 0
        spots = []
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(
                min(HEADER_SIZE_BYTES, len(out)) if rng.random() < 0.6 else len(out)
            )
            out[pos] ^= 1 << rng.randrange(8)
            spots.append(str(pos))
        fixed = rng.random() < 0.7
        packets[i] = with_valid_checksum(out) if fixed else bytes(out)
        return f"packet {i} bytes {','.join(spots)}{' (checksum fixed)' * fixed}", packets, 1

    def field(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        i = self._pick(rng, packets)
        if i < 0:
            return "none left", packets, 0
        name = rng.choice(PACKET_FIELD_NAMES)
        value = _extreme(rng, name)
        out = set_field(packets[i], name, value)
        fixed = name != "checksum" and rng.random() < 0.9
        packets[i] = with_valid_checksum(out) if fixed else out
        return f"packet {i} {name}={value!r}{' (checksum fixed)' * fixed}", packets, 1

    def truncate(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        i = self._pick(rng, packets)
        if i < 0:
            return "none left", packets, 0
        data = packets[i]
        if not data:
            return "empty packet", packets, 0
        if rng.random() < 0.5 and len(data) > HEADER_SIZE_BYTES:
            cut = rng.randrange(len(data) - HEADER_SIZE_BYTES)
            packets[i] = set_payload(data, data[HEADER_SIZE_BYTES : HEADER_SIZE_BYTES + cut])
            return f"packet {i} payload cut to {cut} bytes (consistent)", packets, 1
        cut = rng.randrange(len(data))
        packets[i] = data[:cut]
        return f"packet {i} cut to {cut} bytes", packets, 1

    def extend(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        i = self._pick(rng, packets)
        if i < 0:
            return "none left", packets, 0
        n = rng.choice((1, 7, 100, 1500, 0xFFFF - (len(packets[i]) - HEADER_SIZE_BYTES)))
        extra = bytes(rng.randrange(256) for _ in range(min(n, 2000))).ljust(n, b"\x00")
        data = packets[i]
        if rng.random() < 0.6 and len(data) >= HEADER_SIZE_BYTES:
            packets[i] = set_payload(data, data[HEADER_SIZE_BYTES:] + extra)
            return f"packet {i} payload +{n} bytes (consistent)", packets, 1
        packets[i] = data + extra
        return f"packet {i} +{n} trailing bytes", packets, 1

    def payload(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        i = self._pick(rng, packets)
        if i < 0 or len(packets[i]) <= HEADER_SIZE_BYTES:
            return "no payload", packets, 0
        body = bytearray(packets[i][HEADER_SIZE_BYTES:])
        body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
        packets[i] = set_payload(packets[i], bytes(body))
        return f"packet {i} payload bit flipped (checksum fixed)", packets, 1

    def forge_scale(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        """Every packet of one scale agrees on a forged scale field (checksums fixed)."""
        scales = sorted({get_field(p, "scale") for p in packets if len(p) >= HEADER_SIZE_BYTES})
        if not scales:
            return "no scale", packets, 0
        scale = rng.choice(scales)
        name = rng.choice(SCALE_FIELDS)
        value = _extreme(rng, name)
        if name == "scale_crc32" and rng.random() < 0.5:
            value = zlib.crc32(b"")
        n = 0
        for i, p in enumerate(packets):
            if len(p) >= HEADER_SIZE_BYTES and get_field(p, "scale") == scale:
                packets[i] = with_valid_checksum(set_field(p, name, value))
                n += 1
        return f"scale {scale} {name}={value!r} in {n} packets", packets, n

    def forge_frame(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        """Every packet agrees on a forged frame-header field (checksums fixed)."""
        name = rng.choice(PACKET_FRAME_FIELDS + ("scale",))
        value = _extreme(rng, name)
        if name == "frame_index" and rng.random() < 0.5:
            value = rng.randrange(len(next(iter(self.packet_sets.values()))))
        packets = [
            with_valid_checksum(set_field(p, name, value)) if len(p) >= HEADER_SIZE_BYTES else p
            for p in packets
        ]
        return f"all packets {name}={value!r}", packets, len(packets)

    def duplicate(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        i = self._pick(rng, packets)
        if i < 0:
            return "none left", packets, 0
        copy = packets[i]
        what = "exact"
        if len(copy) >= HEADER_SIZE_BYTES and rng.random() < 0.7:
            name = rng.choice(("fragment_index", "seq", "scale", "fragment_count"))
            value = _extreme(rng, name)
            copy = with_valid_checksum(set_field(copy, name, value))
            what = f"{name}={value}"
        packets.insert(rng.randrange(len(packets) + 1), copy)
        return f"packet {i} duplicated ({what})", packets, 1

    def foreign(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        """A packet of another frame or packetization, relabelled as this frame's."""
        config = rng.choice(sorted(self.packet_sets))
        other = rng.choice(rng.choice(self.packet_sets[config]))
        target = [get_field(p, "frame_index") for p in packets if len(p) >= HEADER_SIZE_BYTES]
        if target:
            other = with_valid_checksum(set_field(other, "frame_index", target[0]))
        packets.insert(rng.randrange(len(packets) + 1), other)
        return f"one {config} packet of another frame relabelled", packets, 1

    def garbage(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        n = rng.choice((0, 1, 45, 46, 47, 200))
        kind = rng.choice(("zero", "random", "header"))
        if kind == "zero":
            data = bytes(n)
        elif kind == "random":
            data = bytes(rng.randrange(256) for _ in range(n))
        else:
            version = bytes([rng.choice((1, 2, 3))])
            noise = bytes(rng.randrange(256) for _ in range(HEADER_SIZE_BYTES - 3))
            data = with_valid_checksum(b"DP" + version + noise)
        packets.insert(rng.randrange(len(packets) + 1), data)
        return f"{n}-byte {kind} datagram", packets, 1


def seal_slices(packets: list[bytes]) -> list[bytes]:
    """Slice packets whose ``scale length`` and ``scale CRC32`` cover their data payloads as
    they now are (``netsim.codecs.slices.data_checksum``), checksums fixed: damage inside the
    payloads then reaches the NAL unit framing and the decoder."""
    data: dict[int, bytes] = {}
    for p in packets:
        if len(p) >= HEADER_SIZE_BYTES:
            index = get_field(p, "fragment_index")
            if index < get_field(p, "fragment_count"):
                data.setdefault(index, p[HEADER_SIZE_BYTES:])
    length, crc = data_checksum([data[i] for i in sorted(data)])
    return [
        with_valid_checksum(
            set_field(set_field(p, "scale_length_bytes", length), "scale_crc32", crc)
        )
        if len(p) >= HEADER_SIZE_BYTES
        else p
        for p in packets
    ]


START_CODE = b"\x00\x00\x00\x01"


class SlicePacketMutator(PacketMutator):
    """Damaged sets of an x264/x265 frame's slice packets: the packet mutations, and damage
    inside the Annex B payloads (framing bits, NAL headers, start codes, slice data) with the
    frame's data CRC re-sealed, a forged QP, or another layout's version byte."""

    whole_stream = True

    def __init__(self, packet_sets: dict[str, list[list[bytes]]]) -> None:
        super().__init__(packet_sets)
        self.ops += [
            ("framing", self.framing, 2),
            ("nal", self.nal, 3),
            ("qp", self.qp, 1),
            ("layout", self.layout, 0.5),
        ]

    def _data_packet(self, rng: random.Random, packets: list[bytes]) -> int:
        data = [
            i
            for i, p in enumerate(packets)
            if len(p) > HEADER_SIZE_BYTES
            and get_field(p, "fragment_index") < get_field(p, "fragment_count")
        ]
        return rng.choice(data) if data else -1

    def framing(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        """A data packet's framing byte: START/END bits changed or garbage (CRC re-sealed)."""
        i = self._data_packet(rng, packets)
        if i < 0:
            return "no data packet", packets, 0
        flags = rng.choice((0, START, END, START | END, 0xFC, 0xFF))
        body = bytes([flags]) + packets[i][HEADER_SIZE_BYTES + 1 :]
        packets[i] = set_payload(packets[i], body)
        return f"packet {i} framing {flags:#04x} (sealed)", seal_slices(packets), 1

    def nal(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        """Damage inside a data packet's Annex B bytes, the frame's CRC re-sealed."""
        i = self._data_packet(rng, packets)
        if i < 0:
            return "no data packet", packets, 0
        body = bytearray(packets[i][HEADER_SIZE_BYTES:])
        kind = rng.choice(("nal_header", "flip", "random", "zero", "start_code", "cut", "grow"))
        codes = [j + len(START_CODE) for j in range(len(body)) if body.startswith(START_CODE, j)]
        if kind == "nal_header" and codes:
            at = rng.choice(codes)
            if at < len(body):
                body[at] = rng.randrange(256)
        elif kind == "flip":
            for _ in range(rng.randint(1, 8)):
                body[rng.randrange(1, len(body)) if len(body) > 1 else 0] ^= 1 << rng.randrange(8)
        elif kind == "random":
            start = rng.randrange(1, max(2, len(body)))
            body[start:] = bytes(rng.randrange(256) for _ in range(len(body) - start))
        elif kind == "zero":
            start = rng.randrange(1, max(2, len(body)))
            body[start:] = bytes(len(body) - start)
        elif kind == "start_code":
            at = rng.randrange(1, len(body) + 1)
            body[at:at] = rng.choice((START_CODE, b"\x00\x00\x01", START_CODE * 3))
        elif kind == "cut":
            del body[rng.randrange(1, max(2, len(body))) :]
        else:
            body += bytes(rng.randrange(256) for _ in range(rng.choice((1, 16, 400))))
        packets[i] = set_payload(packets[i], bytes(body))
        return f"packet {i} {kind} (sealed)", seal_slices(packets), 1

    def qp(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        """Every packet carries another QP: in range, fractional, negative or NaN."""
        value = rng.choice((0.0, 1.0, 51.0, 52.0, 30.5, -1.0, 255.0, math.nan, math.inf))
        packets = [
            with_valid_checksum(set_field(p, "rate_parameter", value))
            if len(p) >= HEADER_SIZE_BYTES
            else p
            for p in packets
        ]
        return f"all packets QP {value!r}", packets, len(packets)

    def layout(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        """Every packet claims another layout (DHVC scales or packed)."""
        version = rng.choice((1, 3))
        packets = [
            with_valid_checksum(set_field(p, "version", version))
            if len(p) >= HEADER_SIZE_BYTES
            else p
            for p in packets
        ]
        return f"all packets version {version}", packets, len(packets)


class FileMutator:
    """Damaged versions of a loader's file (any bytes: a torch zip, JSON, CSV, PNG): bit
    flips, byte overwrites, truncation, inserted and deleted runs, damage next to a zip
    record (``PK`` signatures) or inside a text line."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, Callable[[random.Random, bytes], tuple[str, bytes]], float]] = [
            ("flip", self.flip, 2),
            ("overwrite", self.overwrite, 1),
            ("truncate", self.truncate, 1.5),
            ("insert", self.insert, 1),
            ("delete", self.delete, 1),
            ("zip_record", self.zip_record, 1.5),
            ("line", self.line, 1),
        ]

    def mutate(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        described = []
        for _ in range(rng.choices((1, 2, 3), weights=(6, 3, 1))[0]):
            name, op, _ = rng.choices(self.ops, weights=[w for *_, w in self.ops])[0]
            if not data:
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
                described.append(f"random {len(data)} bytes")
                continue
            what, data = op(rng, data)
            described.append(f"{name}: {what}")
        return "; ".join(described), data

    def flip(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        out = bytearray(data)
        spots = []
        for _ in range(rng.randint(1, 8)):
            pos, bit = rng.randrange(len(out)), rng.randrange(8)
            out[pos] ^= 1 << bit
            spots.append(f"{pos}.{bit}")
        return "bits " + ",".join(spots), bytes(out)

    def overwrite(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        pos = rng.randrange(len(data))
        n = rng.choice((1, 4, 8, 64))
        run = rng.choice((b"\x00", b"\xff", bytes([rng.randrange(256)]))) * n
        return f"{n} bytes at {pos}", data[:pos] + run + data[pos + n :]

    def truncate(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        cut = rng.randrange(len(data))
        return f"to {cut} of {len(data)} bytes", data[:cut]

    def insert(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        pos = rng.randrange(len(data) + 1)
        n = rng.choice((1, 4, rng.randint(1, 64), 4096))
        run = bytes(rng.randrange(256) for _ in range(min(n, 256))) * max(1, n // 256)
        return f"{len(run)} bytes at {pos}", data[:pos] + run + data[pos:]

    def delete(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        pos = rng.randrange(len(data))
        n = rng.choice((1, 4, rng.randint(1, 64)))
        return f"{n} bytes at {pos}", data[:pos] + data[pos + n :]

    def zip_record(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        """Damage just after a zip signature (record headers: sizes, offsets, names)."""
        spots = [i for i in range(len(data) - 1) if data[i : i + 2] == b"PK"]
        if not spots:
            return self.flip(rng, data)
        at = rng.choice(spots) + rng.randrange(2, 46)
        out = bytearray(data)
        if at >= len(out):
            return "past the end", data
        value = rng.choice((0, 0xFF, rng.randrange(256)))
        out[at] = value
        return f"[{at}]={value:#04x} after PK", bytes(out)

    def line(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        """A text line replaced, duplicated many times or deleted."""
        lines = data.split(b"\n")
        i = rng.randrange(len(lines))
        kind = rng.choice(("garbage", "repeat", "delete", "cells"))
        if kind == "garbage":
            lines[i] = rng.choice((b"", b"\xff\xfe", b",,,,", b"nan,inf,-inf", b"x" * 100_000))
        elif kind == "repeat":
            lines[i:i] = [lines[i]] * 1000
        elif kind == "delete":
            del lines[i]
        else:
            cells = lines[i].split(b",")
            j = rng.randrange(len(cells))
            cells[j] = rng.choice(
                (b"", b"nan", b"inf", b"-1", b"1e400", b"True", b"'", b'"', b"9" * 400, b"0x10")
            )
            lines[i] = b",".join(cells)
        return f"line {i} {kind}", b"\n".join(lines)
