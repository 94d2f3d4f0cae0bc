"""The sources ``dhvc eval`` codes: video files, PNG folders, ``sample:NAME`` clips and the
named sets ``set:val`` (held-out clips and synthetic motion over held-out photos) and
``set:val-stills`` (held-out photos, one frame each), read from a training pack."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec.io.video import VideoError, check_frame_size, read_frames
from codec.pack.load import DEFAULT_PACK
from codec.train.synth import MOTION_KINDS, motion_clip

MIN_SIDE = 64
"""Smallest frame side (pixels) ``evaluate`` accepts: one 64 x 64 coding unit of the codec."""

DEFAULT_FRAMES = 96
"""Frames ``evaluate`` codes of a video, PNG folder or sample clip when none are asked for."""

SET_PREFIX = "set:"
"""Prefix of a named set of sources (``set:val``, ``set:val-stills``; see ``SETS``)."""


SET_FRAMES = 16
"""Frames per member of ``set:val`` when none are asked for (keeps the set cheap on a CPU)."""

SET_SIZE = (384, 256)
"""(width, height) of every ``set:val`` member when no size is asked for."""

STILL_MAX_SIZE = (512, 384)
"""Largest (width, height) of a ``set:val-stills`` frame; sides are cut to multiples of 64."""

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")
"""File types of the validation photos (any case)."""


@dataclass(frozen=True)
class EvalSource:
    """One clip ``evaluate`` codes: its ``name`` (as written to rd.json) and its frames.

    ``frames``: N x H x W x 3 uint8 RGB.
    """

    name: str
    frames: np.ndarray


SetBuilder = Callable[[Path, int | None, tuple[int, int] | None], list[tuple[str, np.ndarray]]]
"""Builds a named set: (pack root, frames or ``None``, (width, height) or ``None``) -> members,
each (name, N x H x W x 3 uint8 frames)."""


def _val_dir(pack_root: Path, set_name: str) -> Path:
    val = Path(pack_root) / "val"
    if not val.is_dir():
        raise VideoError(
            f"{SET_PREFIX}{set_name}: no validation pack at {val} (run `make data` first)"
        )
    return val


def _files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Files of ``folder`` whose suffix is one of ``suffixes`` (any case), sorted by name."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes]
    return sorted(found, key=lambda p: p.name)


def _read_photo(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """One photo (png or jpg) as H x W x 3 uint8, resized and centre-cropped to ``size``."""
    return read_frames(path, max_frames=1, size=size)[0]


def val_set(
    pack_root: Path, frames: int | None, size: tuple[int, int] | None
) -> list[tuple[str, np.ndarray]]:
    """``set:val``: the held-out clips and synthetic motion over the held-out photos.

    Every ``val/clips/*.mp4`` (first ``frames`` frames), then for the i-th ``val/photos/`` photo
    (png or jpg, sorted by name) ``codec.train.synth.motion_clip`` with motion kind
    ``MOTION_KINDS[i % len(MOTION_KINDS)]`` and seed i. All members are ``size`` (width, height;
    clips resized and centre-cropped); ``frames`` and ``size`` default to ``SET_FRAMES`` and
    ``SET_SIZE``. ``VideoError`` when the pack is missing or holds neither.
    """
    count = SET_FRAMES if frames is None else frames
    width, height = SET_SIZE if size is None else size
    val = _val_dir(pack_root, "val")
    clips = _files(val / "clips", (".mp4",))
    photos = _files(val / "photos", PHOTO_SUFFIXES)
    if not clips and not photos:
        raise VideoError(
            f"{SET_PREFIX}val: {val} holds no clips/*.mp4 and no photos (run `make data` first)"
        )
    members = [
        (f"{SET_PREFIX}val/clips/{path.name}", read_frames(path, count, (width, height)))
        for path in clips
    ]
    for index, path in enumerate(photos):
        kind = MOTION_KINDS[index % len(MOTION_KINDS)]
        photo = _read_photo(path)
        try:
            clip = motion_clip(photo, kind, count, (width, height), seed=index)
        except ValueError as err:
            raise VideoError(f"{path}: {err}") from None
        members.append((f"{SET_PREFIX}val/photos/{path.name}@{kind}", np.asarray(clip)))
    return members


def still_crop(photo: np.ndarray) -> np.ndarray:
    """The centre of ``photo`` with sides cut to multiples of 64, at most ``STILL_MAX_SIZE``."""
    height, width = photo.shape[:2]
    crop_w = min(STILL_MAX_SIZE[0], width // MIN_SIDE * MIN_SIDE)
    crop_h = min(STILL_MAX_SIZE[1], height // MIN_SIDE * MIN_SIDE)
    if crop_w == 0 or crop_h == 0:
        raise ValueError(f"photo is {width}x{height}; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return np.ascontiguousarray(photo[top : top + crop_h, left : left + crop_w])


def val_stills_set(
    pack_root: Path, frames: int | None, size: tuple[int, int] | None
) -> list[tuple[str, np.ndarray]]:
    """``set:val-stills``: each held-out photo as a clip of one frame, for intra-only runs.

    A photo is centre-cropped by ``still_crop`` or, with ``size``, resized and centre-cropped to
    it. ``frames`` does not apply (a still is one frame). ``VideoError`` when there are no photos.
    """
    del frames
    val = _val_dir(pack_root, "val-stills")
    photos = _files(val / "photos", PHOTO_SUFFIXES)
    if not photos:
        raise VideoError(
            f"{SET_PREFIX}val-stills: {val / 'photos'} holds no png or jpg photos "
            "(run `make data` first)"
        )
    members = []
    for path in photos:
        still = _read_photo(path, size)
        if size is None:
            try:
                still = still_crop(still)
            except ValueError as err:
                raise VideoError(f"{path}: {err}") from None
        members.append((f"{SET_PREFIX}val-stills/{path.name}", still[np.newaxis]))
    return members


SETS: dict[str, SetBuilder] = {"val": val_set, "val-stills": val_stills_set}
"""Named sets of sources: ``set:NAME`` -> builder (see ``SetBuilder``)."""


def load_sources(
    sources: Sequence[str | os.PathLike[str]],
    frames: int | None = None,
    size: tuple[int, int] | None = None,
    pack_root: str | os.PathLike[str] = DEFAULT_PACK,
) -> list[EvalSource]:
    """Decode every source: a video file, a PNG folder, ``sample:NAME`` or ``set:NAME``.

    A video, folder or sample gives its first ``frames`` frames (default ``DEFAULT_FRAMES``),
    resized and centre-cropped to ``size`` = (width, height) when given; a named set gives its
    members (``SETS``, built from ``pack_root``). Raises ``VideoError`` naming the source when
    one is missing, unreadable, an unknown set, or has frames below ``MIN_SIDE``;
    ``ValueError`` for ``frames`` < 1 or an empty ``sources``.
    """
    if not sources:
        raise ValueError("name at least one source")
    if frames is not None and frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    loaded: list[EvalSource] = []
    for source in sources:
        text = os.fspath(source)
        if text.startswith(SET_PREFIX):
            name = text[len(SET_PREFIX) :]
            if name not in SETS:
                known = ", ".join(f"{SET_PREFIX}{k}" for k in sorted(SETS))
                raise VideoError(f"{text}: unknown set (known: {known})")
            members = SETS[name](Path(pack_root), frames, size)
            loaded += [EvalSource(member, clip) for member, clip in members]
        else:
            count = DEFAULT_FRAMES if frames is None else frames
            loaded.append(EvalSource(text, read_frames(text, max_frames=count, size=size)))
    for item in loaded:
        height, width = item.frames.shape[1:3]
        check_frame_size(width, height, item.name, MIN_SIDE, who="dhvc eval")
    return loaded
