"""File-level operations behind ``dhvc encode``, ``dhvc decode`` and ``dhvc info``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from codec.bitstream import BitstreamError, StreamHeader, open_stream, write_frame, write_stream
from codec.checkpoint import load_model
from codec.coder import Decoder, Encoder
from codec.types import NUM_SCALES, ScaleOutcome
from codec.video import check_frame_size, probe_video, read_frames, write_mp4, write_png_frames

MIN_FRAME_SIDE = 32
"""Smallest width or height accepted (frames are padded to multiples of 64 internally)."""

DEFAULT_FPS = Fraction(25)


@dataclass(frozen=True)
class EncodeSummary:
    frames: int
    width: int
    height: int
    bytes_total: int
    bpp: float


@dataclass(frozen=True)
class DecodeSummary:
    """``frames_out_of_sync``: frames with a scale whose sync tag disagreed with the decoder's
    own table indexes although its payload was there and intact: the stream was coded by
    another platform or model build, or this is a bug; never normal (DESIGN 1)."""

    frames: int
    frames_with_substitution: int
    frames_out_of_sync: int = 0


def _atomic_target(output: Path) -> tuple[int, Path]:
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    return fd, Path(tmp)


def encode_file(
    video: Path,
    output: Path,
    lam: float,
    frames: int | None,
    gop: int,
    preset: str | None,
    checkpoint: str,
    device: str,
    on_frame: Callable[[int, int, int], None] | None = None,
) -> EncodeSummary:
    """Encode ``video`` into ``output`` (.dhvc), written atomically."""
    if frames is not None and frames < 1:
        raise ValueError(f"--frames must be >= 1, got {frames}")
    if gop < 1:
        raise ValueError(f"--gop must be >= 1, got {gop}")
    info = probe_video(video)
    check_frame_size(info.width, info.height, video, MIN_FRAME_SIDE)
    pictures = read_frames(video, max_frames=frames)
    model = load_model(checkpoint, preset=preset, device=device)
    height, width = pictures.shape[1:3]
    header = StreamHeader(model.model_id, width, height, info.fps or DEFAULT_FPS, gop)
    encoder = Encoder(model, gop=gop, device=device)
    fd, tmp = _atomic_target(output)
    total = 0
    try:
        with os.fdopen(fd, "wb") as f:
            write_stream(f, header)
            total += StreamHeader.SIZE
            for i, picture in enumerate(pictures):
                written = write_frame(f, encoder.encode(picture, lam))
                total += written
                if on_frame is not None:
                    on_frame(i, len(pictures), 8 * written)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    return EncodeSummary(
        len(pictures), width, height, total, 8 * total / (len(pictures) * width * height)
    )


def decode_file(
    stream: Path, output: Path, scales: int, checkpoint: str, device: str
) -> DecodeSummary:
    """Decode ``stream`` with scales 1..``scales`` into PNG frames (folder) or an .mp4 file."""
    if not 1 <= scales <= NUM_SCALES:
        raise ValueError(f"--scales must be in 1..{NUM_SCALES}, got {scales}")
    header, frames = open_stream(stream)
    # Random weights are rebuilt from the preset named in the stream's model id.
    preset = header.model_id.split("-")[0] if checkpoint == "none" else None
    model = load_model(checkpoint, preset=preset, device=device)
    if model.model_id != header.model_id:
        raise BitstreamError(
            f"{stream} was encoded with model {header.model_id!r}, "
            f"but the checkpoint is {model.model_id!r}"
        )
    decoder = Decoder(model, header.height, header.width, device=device)
    pictures = []
    substituted = out_of_sync = 0
    for frame_header, payloads in frames:
        received = frame_header.received(payloads)
        if scales < NUM_SCALES:
            kept = {k: v for k, v in received.scales.items() if k <= scales}
            received = replace(received, scales=kept)
        decoded = decoder.decode(received)
        substituted += any(o is not ScaleOutcome.DECODED for o in decoded.outcomes)
        out_of_sync += ScaleOutcome.SYNC_MISMATCH in decoded.outcomes
        pictures.append(decoded.x_hat)
    if not pictures:
        raise BitstreamError(f"{stream} holds no frames")
    array = np.stack(pictures)
    if output.suffix.lower() == ".mp4":
        write_mp4(output, array, header.fps)
    else:
        write_png_frames(output, array)
    return DecodeSummary(len(pictures), substituted, out_of_sync)


def describe_file(stream: Path) -> dict:
    """Stream header and per-frame sizes of a .dhvc file, as plain data."""
    header, frames = open_stream(stream)
    return {
        "model_id": header.model_id,
        "width": header.width,
        "height": header.height,
        "fps": str(header.fps),
        "gop": header.gop,
        "frames": [
            {
                "frame": h.frame_index,
                "type": h.frame_type.value,
                "resync_from": h.resync_from,
                "lambda": h.lam,
                "bytes_per_scale": list(h.lengths),
            }
            for h, _ in frames
        ],
    }
