"""File-level operations behind ``dhvc encode``, ``dhvc decode`` and ``dhvc info``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from codec.io.atomic import (
    TargetError,
    atomic_file,
    atomic_folder,
    check_writable_target,
    naming_target,
)
from codec.io.video import check_frame_size, probe_video, read_frames, write_mp4, write_png_frames
from codec.model.checkpoint import load_model
from codec.model.config import PRESETS
from codec.model.device import resolve_device
from codec.stream.bitstream import (
    MIN_FRAME_SIDE,
    BitstreamError,
    StreamHeader,
    check_payloads,
    fps_problem,
    frame_size_problem,
    open_stream,
    write_frame,
    write_stream,
)
from codec.stream.coder import Decoder, Encoder
from codec.stream.motion import MotionError, unpack_motion
from codec.types import NUM_SCALES, ScaleOutcome

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


def _check_decode_output(output: Path, overwrite: bool) -> None:
    """Refuse, before decoding, an output that cannot be written, or a folder that holds other
    files unless ``overwrite`` (the folder is then replaced whole, so no old frame remains)."""
    is_mp4 = output.suffix.lower() == ".mp4"
    try:
        check_writable_target(output, folder=not is_mp4)
    except TargetError as err:
        raise ValueError(str(err)) from None
    if is_mp4 or not output.is_dir():
        return
    entries = list(output.iterdir())
    if entries and not overwrite:
        raise ValueError(
            f"{output}: output folder holds {len(entries)} other file(s); "
            "pass --overwrite to replace it"
        )
    folders = [e.name for e in entries if e.is_dir()]
    if folders:
        raise ValueError(
            f"{output}: output folder holds subfolders ({', '.join(sorted(folders)[:3])}), "
            "so it is not decoded frames and is not replaced; choose another folder"
        )


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
    motion: bool = True,
) -> EncodeSummary:
    """Encode ``video`` into ``output`` (.dhvc), written atomically; ``motion``: block motion
    of the references (off: every field zero)."""
    if frames is not None and frames < 1:
        raise ValueError(f"--frames must be >= 1, got {frames}")
    if gop < 1:
        raise ValueError(f"--gop must be >= 1, got {gop}")
    device = resolve_device(device)
    info = probe_video(video)
    check_frame_size(info.width, info.height, video, MIN_FRAME_SIDE)
    fps = info.fps or DEFAULT_FPS
    if problem := frame_size_problem(info.width, info.height) or fps_problem(fps):
        raise ValueError(f"{video}: {problem}")  # a stream could not carry it
    pictures = read_frames(video, max_frames=frames)
    if frames is not None and len(pictures) < frames:
        raise ValueError(
            f"{video}: --frames {frames} requested, the clip has {len(pictures)} frames"
        )
    model = load_model(checkpoint, preset=preset, device=device)
    height, width = pictures.shape[1:3]
    header = StreamHeader(model.model_id, width, height, fps, gop)
    encoder = Encoder(model, gop=gop, device=device, motion=motion)
    total = 0
    with naming_target(output), atomic_file(output) as tmp, tmp.open("wb") as f:
        write_stream(f, header)
        total += StreamHeader.SIZE
        for i, picture in enumerate(pictures):
            written = write_frame(f, encoder.encode(picture, lam))
            total += written
            if on_frame is not None:
                on_frame(i, len(pictures), 8 * written)
    return EncodeSummary(
        len(pictures), width, height, total, 8 * total / (len(pictures) * width * height)
    )


def decode_file(
    stream: Path,
    output: Path,
    scales: int,
    checkpoint: str,
    device: str,
    *,
    overwrite: bool = False,
) -> DecodeSummary:
    """Decode ``stream`` with scales 1..``scales`` into PNG frames (folder) or an .mp4 file.

    The output appears whole or not at all. A folder that holds other files is refused unless
    ``overwrite``; then it is replaced as a whole (``codec.io.atomic.atomic_folder``).
    """
    if not 1 <= scales <= NUM_SCALES:
        raise ValueError(f"--scales must be in 1..{NUM_SCALES}, got {scales}")
    device = resolve_device(device)
    # The header's frame size is checked against the limits while parsing, and the payloads
    # against what that size can hold once the model is known, before any frame is allocated.
    header, frames = open_stream(stream)
    # Random weights are rebuilt from the preset named in the stream's model id.
    preset = header.model_id.split("-")[0] if checkpoint == "none" else None
    if preset is not None and preset not in PRESETS:
        raise BitstreamError(
            f"{stream}: model id {header.model_id!r} names no preset to rebuild random weights "
            f"from ({', '.join(PRESETS)})"
        )
    model = load_model(checkpoint, preset=preset, device=device)
    if model.model_id != header.model_id:
        raise BitstreamError(
            f"{stream} was encoded with model {header.model_id!r}, "
            f"but the checkpoint is {model.model_id!r}"
        )
    cfg = model.config
    check_payloads(header, frames, cfg)
    decoder = Decoder(model, header.height, header.width, device=device)
    _check_decode_output(output, overwrite)
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
        with naming_target(output):
            write_mp4(output, array, header.fps)
    else:  # frames are written into a staging folder that replaces ``output`` whole
        with naming_target(output, folder=True):
            atomic_folder(output, lambda staging: write_png_frames(staging, array))
    return DecodeSummary(len(pictures), substituted, out_of_sync)


def _moved_blocks(scale_1: bytes, height: int, width: int) -> int | None:
    """How many blocks a frame's motion field moves (None: its section does not parse)."""
    try:
        field, _ = unpack_motion(scale_1, height, width)
    except MotionError:
        return None
    return int(field.any(axis=-1).sum())


def describe_file(stream: Path) -> dict:
    """Stream header and per-frame sizes of a .dhvc file, as plain data; ``moved_blocks`` is
    how many 64x64 blocks the frame's motion field moves (None: a malformed section)."""
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
                "moved_blocks": _moved_blocks(payloads[0], header.height, header.width),
            }
            for h, payloads in frames
        ],
    }
