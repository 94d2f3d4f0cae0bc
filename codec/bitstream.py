"""The ``.dhvc`` container and the frame header (DESIGN 1). Little-endian, versioned.

Stream header (``StreamHeader.SIZE`` bytes)::

    magic b"DHVC" | version u16 | model_id 32 bytes (ASCII, NUL-padded) | width u32 | height u32
    | fps_num u32 | fps_den u32 | gop u32

Frame header (``FrameHeader.SIZE`` bytes), then the K scale payloads back to back::

    sync b"FR" | frame_index u32 | frame_type u8 (b"I", b"P", b"R") | resync_from u8 | lambda f32
    | K u8 | K x (length u32, crc32 u32, sync_tag u32)

Malformed input raises ``BitstreamError``; nothing is read past a declared length.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

from codec.types import NUM_SCALES, EncodedFrame, FrameType, ReceivedFrame, ScalePayload

MAGIC = b"DHVC"
FORMAT_VERSION = 2
"""2: latent positions that cover only padding are not coded (1 coded the whole padded grid)."""
MAX_SCALE_BYTES = 1 << 28
MAX_DIMENSION = 1 << 15


class BitstreamError(ValueError):
    """A .dhvc stream or frame header is malformed, truncated or of an unknown version."""


@dataclass(frozen=True)
class StreamHeader:
    """What a decoder needs before the first frame."""

    model_id: str
    width: int
    height: int
    fps: Fraction
    gop: int

    _STRUCT = struct.Struct("<4sH32sIIIII")
    SIZE = _STRUCT.size

    def pack(self) -> bytes:
        model = self.model_id.encode("ascii")[:32]
        return self._STRUCT.pack(
            MAGIC,
            FORMAT_VERSION,
            model,
            self.width,
            self.height,
            self.fps.numerator,
            self.fps.denominator,
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
        if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
            raise BitstreamError(f"invalid frame size {width}x{height} in stream header")
        if num == 0 or den == 0 or gop == 0:
            raise BitstreamError("invalid frame rate or GOP in stream header")
        try:
            model_id = model.rstrip(b"\0").decode("ascii")
        except UnicodeDecodeError:
            raise BitstreamError("model id in stream header is not ASCII") from None
        return cls(model_id, width, height, Fraction(num, den), gop)


@dataclass(frozen=True)
class FrameHeader:
    """Frame index, lambda, resync_from and per-scale (length, CRC32, sync tag)."""

    frame_index: int
    frame_type: FrameType
    resync_from: int
    lam: float
    lengths: tuple[int, ...]
    crcs: tuple[int, ...]
    sync_tags: tuple[int, ...]

    _FIXED = struct.Struct("<2sIcBfB")
    _SCALE = struct.Struct("<III")
    SIZE = _FIXED.size + NUM_SCALES * _SCALE.size

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
        )

    def pack(self) -> bytes:
        out = [
            self._FIXED.pack(
                b"FR",
                self.frame_index,
                self.frame_type.value.encode(),
                self.resync_from,
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
        sync, index, ftype, resync, lam, k = cls._FIXED.unpack_from(data, 0)
        if sync != b"FR":
            raise BitstreamError(f"frame header sync word missing (got {sync!r})")
        try:
            frame_type = FrameType(ftype.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise BitstreamError(f"unknown frame type {ftype!r}") from None
        if k != NUM_SCALES:
            raise BitstreamError(f"frame declares {k} scales, expected {NUM_SCALES}")
        if resync > NUM_SCALES:
            raise BitstreamError(f"resync_from {resync} out of range")
        if not (lam == lam and 0 < lam < 1e7):  # NaN check included
            raise BitstreamError(f"invalid lambda {lam}")
        scales = [
            cls._SCALE.unpack_from(data, cls._FIXED.size + i * cls._SCALE.size)
            for i in range(NUM_SCALES)
        ]
        if any(length > MAX_SCALE_BYTES for length, _, _ in scales):
            raise BitstreamError("a scale declares an implausible length")
        return cls(
            index,
            frame_type,
            resync,
            float(lam),
            tuple(s[0] for s in scales),
            tuple(s[1] for s in scales),
            tuple(s[2] for s in scales),
        )

    def received(self, payloads: list[bytes]) -> ReceivedFrame:
        """The frame as the decoder sees it, every scale present."""
        scales = {
            k + 1: ScalePayload(payloads[k], self.crcs[k], self.sync_tags[k])
            for k in range(NUM_SCALES)
        }
        return ReceivedFrame(self.frame_index, self.lam, self.resync_from, self.frame_type, scales)


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
    """Read a whole .dhvc file; ``BitstreamError`` if it is malformed, OSError if unreadable."""
    if not path.is_file():
        raise BitstreamError(f"no such .dhvc file: {path}")
    with path.open("rb") as f:
        header, frames = read_stream(f)
        return header, list(frames)
