"""The ``.dhvc`` container and the frame header (DESIGN 1). Little-endian, versioned.

Stream header (``StreamHeader.SIZE`` bytes)::

    magic b"DHVC" | version u16 | model_id 32 bytes (ASCII, NUL-padded) | width u32 | height u32
    | fps_num u32 | fps_den u32 | gop u32

Frame header (``FrameHeader.SIZE`` bytes), then the K scale payloads back to back::

    sync b"FR" | frame_index u32 | frame_type u8 (b"I", b"P", b"R", b"M") | resync_from u8
    | mirror_age u8 | lambda f32 | K u8 | K x (length u32, crc32 u32, sync_tag u32)

``mirror_age`` is 0 except in an M frame (mirrored recovery, DESIGN 3), where it is the frame
index minus the frame f of the decoder state (f, resync_from) the frame assumes (resync_from
0: the state the decoder kept from before frame f).

Malformed input raises ``BitstreamError``; nothing is read past a declared length. The parser
refuses every value the encoder cannot write, and the writer refuses to write one (``pack``
checks the same rules as ``unpack``), so a stream that was written always parses:

* frame size: sides ``MIN_FRAME_SIDE`` .. ``MAX_FRAME_SIDE`` and at most ``MAX_FRAME_PIXELS``
  pixels, checked on the stream header before anything is allocated for a frame;
* frame rate: ``MIN_FPS`` .. ``MAX_FPS`` frames/s (``codec.io.video.write_mp4`` writes any rate
  in that range: it rounds the rate to a denominator of at most 1001, never to 0, and H.264 in
  mp4 takes the result);
* lambda: finite, ``MIN_LAMBDA`` .. ``MAX_LAMBDA`` (refuses NaN, infinities, zero, subnormals);
* frame type and ``resync_from`` as the encoder sets them (I: 1; P: 0; R: 1..K; M: 0..K); an M
  frame's ``mirror_age`` 1..``MAX_MIRROR_AGE`` and not beyond frame 0, every other frame's 0;
* scale payloads: whole 32-bit words, at least one (``check_payloads`` then bounds them by what
  the declared frame size can hold, scale 1's with its motion section, once the model is
  known; the entropy decoder checks the slice table inside,
  ``codec.entropy.gaussian.GaussianTable``).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

from codec.entropy.gaussian import slice_bounds, slice_count, slice_table_bytes
from codec.io.wire import WireField, wire_fields
from codec.model.config import MAX_LAMBDA, MIN_LAMBDA, ModelConfig, check_lambda
from codec.stream.motion import max_section_bytes
from codec.types import (
    MAX_MIRROR_AGE,
    NUM_SCALES,
    EncodedFrame,
    FrameType,
    ReceivedFrame,
    ScalePayload,
    coded_size,
)

MAGIC = b"DHVC"
FORMAT_VERSION = 5
"""5: scale 1's payload begins with the frame's block motion field (``codec.stream.motion``);
4: the frame header carries ``mirror_age`` and the frame type M (mirrored recovery); 3: each
scale payload is a slice table and independently coded slices
(``codec.entropy.gaussian.GaussianTable``), and q is computed in float64
(``codec.stream.coder``); 2: latent positions that cover only padding are not coded (1 coded
the whole padded grid)."""

MIN_FRAME_SIDE = 32
"""Smallest width or height accepted (frames are padded to multiples of 64 internally); the
encoder refuses smaller frames, so no stream declares one."""
MAX_FRAME_SIDE = 8192
"""Largest width or height of a stream (8K UHD is 7680 wide; DCI 8K 8192)."""
MAX_FRAME_PIXELS = 1 << 25
"""Largest width x height: 33,554,432 pixels (8192 x 4096, or 7680 x 4320). Decoding allocates
frame-sized float32 tensors (the picture, and 1/4-resolution features of ``width_patch``
channels: 0.5 GiB each at this size with ``base``, 1.3 GiB with ``paper``), so this caps the
memory and work of one frame."""

MIN_FPS = Fraction(1, 1000)
MAX_FPS = Fraction(1000)
"""Frame rates a stream may declare, frames/s."""

MAX_SCALE_BYTES = 1 << 28
"""Longest scale payload the parser reads (before the frame size bounds it more tightly)."""

WORD_BYTES = 4
"""The range coder (``constriction.stream.queue``) writes whole 32-bit words; a scale codes at
least one symbol, and sealing a coder that coded a symbol writes at least one word."""

MAX_BITS_PER_SYMBOL = 57
"""Most bits one symbol can add to a payload: the coder's probabilities are 24-bit fixed point
with every symbol at least 2^-24 (24 bits), an escaped symbol adds two uniform 16-bit halves
(32 bits), and the range coder's truncation costs under 0.006 bits per coded value (the range
is at least 2^32 before each of the three, so the lost fraction is below 2^-8); 56.02 rounded
up. ``tests/codec/test_hostile_inputs.py`` checks it against the worst symbols at every level."""

_U32_MAX = 0xFFFFFFFF


class BitstreamError(ValueError):
    """A .dhvc stream or frame header is malformed, truncated or of an unknown version."""


def frame_size_problem(width: int, height: int) -> str | None:
    """Why a ``width`` x ``height`` frame cannot be in a stream, or ``None`` if it can."""
    if not (
        MIN_FRAME_SIDE <= width <= MAX_FRAME_SIDE
        and MIN_FRAME_SIDE <= height <= MAX_FRAME_SIDE
        and width * height <= MAX_FRAME_PIXELS
    ):
        return (
            f"frame size {width}x{height} is outside the .dhvc limits (sides "
            f"{MIN_FRAME_SIDE}..{MAX_FRAME_SIDE}, at most {MAX_FRAME_PIXELS} pixels)"
        )
    return None


def fps_problem(fps: Fraction) -> str | None:
    """Why a stream cannot declare frame rate ``fps``, or ``None`` if it can."""
    if not (MIN_FPS <= fps <= MAX_FPS) or max(fps.numerator, fps.denominator) > _U32_MAX:
        return f"frame rate {fps} is outside the .dhvc limits ({MIN_FPS}..{MAX_FPS} frames/s)"
    return None


def lambda_problem(lam: float) -> str | None:
    """Why a frame header cannot carry ``lam``, or ``None`` if it can (NaN fails both tests)."""
    if not (MIN_LAMBDA <= lam <= MAX_LAMBDA):
        return f"lambda {lam} is outside the .dhvc limits ({MIN_LAMBDA:g}..{MAX_LAMBDA:g})"
    return None


def mirror_problem(frame_index: int, frame_type: FrameType, mirror_from: int | None) -> str | None:
    """Why a frame cannot carry ``mirror_from``, or None: an M frame assumes a state 1..
    ``MAX_MIRROR_AGE`` frames before it (and not before frame 0); no other frame names one.
    The packet header (``netsim.packet``) applies the same rule."""
    if frame_type is not FrameType.M:
        return None if mirror_from is None else f"a {frame_type.value} frame assumes no state"
    if mirror_from is None or not (
        mirror_from >= 0 and 1 <= frame_index - mirror_from <= MAX_MIRROR_AGE
    ):
        return (
            f"an M frame assumes the state of a frame 1..{MAX_MIRROR_AGE} before it, "
            f"not {mirror_from}"
        )
    return None


def mirror_age(frame_index: int, mirror_from: int | None) -> int:
    """What the headers carry for ``mirror_from``: frames back to it, 0 for None."""
    return 0 if mirror_from is None else frame_index - mirror_from


def max_payload_bytes(symbols: int) -> int:
    """Longest payload the entropy coder writes for ``symbols`` symbols: its slice table
    (``codec.entropy.gaussian.slice_table_bytes``), then for each slice of m symbols
    ``MAX_BITS_PER_SYMBOL`` bits each in whole words plus the (at most two) words that seal
    that slice's coder."""
    count = slice_count(symbols)
    sizes = np.diff(slice_bounds(symbols, count))
    words = -(-sizes * MAX_BITS_PER_SYMBOL // 32) + 2
    return slice_table_bytes(count) + WORD_BYTES * int(words.sum())


def scale_symbols(width: int, height: int, latent_channels: Sequence[int]) -> list[int]:
    """Symbols each scale codes for a ``width`` x ``height`` frame (``codec.model.dhvc.coded_size``
    positions times the scale's latent channels)."""
    return [
        math.prod(coded_size(height, width, k)) * z for k, z in enumerate(latent_channels, start=1)
    ]


@dataclass(frozen=True)
class StreamHeader:
    """What a decoder needs before the first frame. Construction checks every field
    (``BitstreamError``), so neither the parser nor the writer lets a hostile value through."""

    model_id: str
    width: int
    height: int
    fps: Fraction
    gop: int

    _STRUCT = struct.Struct("<4sH32sIIIII")
    SIZE = _STRUCT.size

    def __post_init__(self) -> None:
        problem = (
            self._model_id_problem()
            or frame_size_problem(self.width, self.height)
            or fps_problem(Fraction(self.fps))
            or (None if 1 <= self.gop <= _U32_MAX else f"GOP {self.gop} is outside 1..{_U32_MAX}")
        )
        if problem:
            raise BitstreamError(f"stream header: {problem}")

    def _model_id_problem(self) -> str | None:
        if not (
            isinstance(self.model_id, str)
            and self.model_id.isascii()
            and self.model_id.isprintable()
            and 0 < len(self.model_id) <= 32
        ):
            return f"model id {self.model_id!r} is not 1..32 printable ASCII characters"
        return None

    def pack(self) -> bytes:
        fps = Fraction(self.fps)
        return self._STRUCT.pack(
            MAGIC,
            FORMAT_VERSION,
            self.model_id.encode("ascii"),
            self.width,
            self.height,
            fps.numerator,
            fps.denominator,
            self.gop,
        )

    @classmethod
    def unpack(cls, data: bytes) -> StreamHeader:
        if len(data) < cls.SIZE:
            raise BitstreamError(f"stream header truncated: {len(data)} of {cls.SIZE} bytes")
        magic, version, model, width, height, num, den, gop = cls._STRUCT.unpack(data[: cls.SIZE])
        if magic != MAGIC:
            raise BitstreamError(f"not a .dhvc stream (magic {magic!r})")
        if version != FORMAT_VERSION:
            raise BitstreamError(f"unsupported .dhvc format version {version}")
        if den == 0:
            raise BitstreamError(f"stream header: frame rate {num}/0")
        try:
            model_id = model.rstrip(b"\0").decode("ascii")
        except UnicodeDecodeError:
            raise BitstreamError("stream header: model id is not ASCII") from None
        return cls(model_id, width, height, Fraction(num, den), gop)


@dataclass(frozen=True)
class FrameHeader:
    """Frame index, lambda, resync_from and per-scale (length, CRC32, sync tag); an M frame's
    ``mirror_from`` (f of the decoder state it assumes, else None).

    Construction checks every field (``BitstreamError``): the parser refuses, and the writer
    will not write, what the encoder never produces."""

    frame_index: int
    frame_type: FrameType
    resync_from: int
    lam: float
    lengths: tuple[int, ...]
    crcs: tuple[int, ...]
    sync_tags: tuple[int, ...]
    mirror_from: int | None = None

    _FIXED = struct.Struct("<2sIcBBfB")
    _SCALE = struct.Struct("<III")
    SIZE = _FIXED.size + NUM_SCALES * _SCALE.size

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise BitstreamError(f"frame {self.frame_index}: {problem}")

    def _problem(self) -> str | None:
        if not 0 <= self.frame_index <= _U32_MAX:
            return "frame index out of range"
        resync = self.resync_from
        expected = {
            FrameType.I: resync == 1,
            FrameType.P: resync == 0,
            FrameType.M: 0 <= resync <= NUM_SCALES,
        }
        if not expected.get(self.frame_type, 1 <= resync <= NUM_SCALES):
            return f"resync_from {resync} is impossible in a {self.frame_type.value} frame"
        if problem := mirror_problem(self.frame_index, self.frame_type, self.mirror_from):
            return problem
        if problem := lambda_problem(self.lam):
            return problem
        fields = (self.lengths, self.crcs, self.sync_tags)
        if any(len(f) != NUM_SCALES for f in fields):
            return f"a frame has {NUM_SCALES} scales"
        if not all(0 <= v <= _U32_MAX for f in fields[1:] for v in f):
            return "a CRC or sync tag is out of range"
        for k, n in enumerate(self.lengths, start=1):
            if not (WORD_BYTES <= n <= MAX_SCALE_BYTES and n % WORD_BYTES == 0):
                return (
                    f"scale {k} payload of {n} bytes: payloads are whole {WORD_BYTES}-byte "
                    f"words, {WORD_BYTES}..{MAX_SCALE_BYTES} bytes"
                )
        return None

    @classmethod
    def of(cls, frame: EncodedFrame) -> FrameHeader:
        return cls(
            frame.frame_index,
            frame.frame_type,
            frame.resync_from,
            frame.lam,
            tuple(len(s.data) for s in frame.scales),
            tuple(s.crc32 for s in frame.scales),
            tuple(s.sync_tag for s in frame.scales),
            frame.mirror_from,
        )

    def pack(self) -> bytes:
        out = [
            self._FIXED.pack(
                b"FR",
                self.frame_index,
                self.frame_type.value.encode(),
                self.resync_from,
                mirror_age(self.frame_index, self.mirror_from),
                self.lam,
                NUM_SCALES,
            )
        ]
        for length, crc, tag in zip(self.lengths, self.crcs, self.sync_tags, strict=True):
            out.append(self._SCALE.pack(length, crc, tag))
        return b"".join(out)

    @classmethod
    def unpack(cls, data: bytes) -> FrameHeader:
        if len(data) < cls.SIZE:
            raise BitstreamError(f"frame header truncated: {len(data)} of {cls.SIZE} bytes")
        sync, index, ftype, resync, age, lam, k = cls._FIXED.unpack_from(data, 0)
        if sync != b"FR":
            raise BitstreamError(f"frame header sync word missing (got {sync!r})")
        try:
            frame_type = FrameType(ftype.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise BitstreamError(f"frame {index}: unknown frame type {ftype!r}") from None
        if k != NUM_SCALES:
            raise BitstreamError(f"frame {index} declares {k} scales, expected {NUM_SCALES}")
        scales = [
            cls._SCALE.unpack_from(data, cls._FIXED.size + i * cls._SCALE.size)
            for i in range(NUM_SCALES)
        ]
        return cls(
            index,
            frame_type,
            resync,
            float(lam),
            tuple(s[0] for s in scales),
            tuple(s[1] for s in scales),
            tuple(s[2] for s in scales),
            index - age if age else None,  # a negative frame is refused as out of range
        )

    def received(self, payloads: list[bytes]) -> ReceivedFrame:
        """The frame as the decoder sees it, every scale present."""
        scales = {
            k + 1: ScalePayload(payloads[k], self.crcs[k], self.sync_tags[k])
            for k in range(NUM_SCALES)
        }
        return ReceivedFrame(
            self.frame_index, self.lam, self.resync_from, self.frame_type, scales, self.mirror_from
        )


STREAM_HEADER_FIELDS = wire_fields(
    StreamHeader._STRUCT.format,
    ("magic", "version", "model_id", "width", "height", "fps_num", "fps_den", "gop"),
)
"""The stream header's wire layout (module docstring), for tools and tests that damage it."""

FRAME_HEADER_FIELDS = wire_fields(
    FrameHeader._FIXED.format + FrameHeader._SCALE.format[1:] * NUM_SCALES,
    ("sync", "frame_index", "frame_type", "resync_from", "mirror_age", "lambda", "K")
    + tuple(
        f"scale{k}.{name}"
        for k in range(1, NUM_SCALES + 1)
        for name in ("length", "crc32", "sync_tag")
    ),
)
"""A frame header's wire layout, offsets from the header's first byte; the scale fields are
named ``scale{k}.length``, ``scale{k}.crc32`` and ``scale{k}.sync_tag`` (k = 1..K)."""


def frame_header_field(name: str) -> WireField:
    """The field ``name`` of ``FRAME_HEADER_FIELDS`` (``KeyError`` for an unknown name)."""
    for wire_field in FRAME_HEADER_FIELDS:
        if wire_field.name == name:
            return wire_field
    raise KeyError(name)


def with_scale_crc(frame_header: bytes, scale: int, payload: bytes) -> bytes:
    """``frame_header`` (a packed ``FrameHeader``, any other field as it is) with scale
    ``scale``'s (1..K) length and CRC32 set to those of ``payload``: a damaged or resized
    payload then passes the CRC check and reaches the entropy decoder."""
    out = bytearray(frame_header)
    frame_header_field(f"scale{scale}.length").write(out, len(payload))
    frame_header_field(f"scale{scale}.crc32").write(out, zlib.crc32(payload))
    return bytes(out)


def check_payloads(
    header: StreamHeader,
    frames: Sequence[tuple[FrameHeader, list[bytes]]],
    config: ModelConfig,
) -> None:
    """``BitstreamError`` unless every frame fits the model that is to decode it, checked
    before the decoder allocates anything for the declared frame size.

    * Each scale's payload is at most ``max_payload_bytes`` of the symbols the declared size
      codes at that scale (``scale_symbols``): a payload cannot hold more than the coder writes
      for them. This is the sound bound in that direction.
    * There is no useful sound bound the other way (a payload too short for a large declared
      size): the coder's most probable symbol has probability up to 1 - 93/2^24 (zero at the
      smallest sigma), so a symbol can cost as little as 8e-6 bits, and a whole frame within
      the size limits as little as one word per scale, which ``FrameHeader`` already demands.
      ``MAX_FRAME_SIDE`` and ``MAX_FRAME_PIXELS`` bound the work and memory of such a frame.
    * Lambda lies in the model's range (``codec.model.config.check_lambda``).
    """
    symbols = scale_symbols(header.width, header.height, config.latent_channels)
    for frame, payloads in frames:
        try:
            check_lambda(frame.lam, config)
        except ValueError as err:
            raise BitstreamError(f"frame {frame.frame_index}: {err}") from None
        for k, (n, payload) in enumerate(zip(symbols, payloads, strict=True), start=1):
            limit = max_payload_bytes(n)
            if k == 1:  # and the motion section
                limit += max_section_bytes(header.height, header.width)
            if len(payload) > limit:
                raise BitstreamError(
                    f"frame {frame.frame_index} scale {k}: a payload of {len(payload)} bytes "
                    f"cannot code the {n} symbols of a {header.width}x{header.height} frame "
                    f"(at most {limit} bytes)"
                )


def write_stream(f: BinaryIO, header: StreamHeader) -> None:
    """Write the stream header."""
    f.write(header.pack())


def write_frame(f: BinaryIO, frame: EncodedFrame) -> int:
    """Append one frame; returns the bytes written."""
    head = FrameHeader.of(frame).pack()
    f.write(head)
    for s in frame.scales:
        f.write(s.data)
    return len(head) + sum(len(s.data) for s in frame.scales)


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise BitstreamError(f"{what} truncated: {len(data)} of {n} bytes")
    return data


def read_stream(f: BinaryIO) -> tuple[StreamHeader, Iterator[tuple[FrameHeader, list[bytes]]]]:
    """Parse a .dhvc stream: its header and an iterator over (frame header, payloads)."""
    header = StreamHeader.unpack(_read_exact(f, StreamHeader.SIZE, "stream header"))

    def frames() -> Iterator[tuple[FrameHeader, list[bytes]]]:
        while True:
            first = f.read(FrameHeader.SIZE)
            if not first:
                return
            frame_header = FrameHeader.unpack(first)
            payloads = [
                _read_exact(f, n, f"frame {frame_header.frame_index} scale {k + 1}")
                for k, n in enumerate(frame_header.lengths)
            ]
            yield frame_header, payloads

    return header, frames()


def open_stream(path: Path) -> tuple[StreamHeader, list[tuple[FrameHeader, list[bytes]]]]:
    """Read a whole .dhvc file; ``BitstreamError`` naming ``path`` if it is malformed, OSError
    if unreadable. The stream header (and so the frame size) is checked before any frame is
    read."""
    if not path.is_file():
        raise BitstreamError(f"no such .dhvc file: {path}")
    try:
        with path.open("rb") as f:
            header, frames = read_stream(f)
            return header, list(frames)
    except BitstreamError as err:
        raise BitstreamError(f"{path}: {err}") from None
