"""Motion-extrapolated concealment: the next picture from the last two (issue 18 item 3).

When a frame cannot be decoded, the receiver's best guess of it, from what it holds, is the
last decoded picture moved on by the motion between the last two decoded pictures (constant
velocity, as FFmpeg's error concealment guesses lost macroblocks' motion from their
neighbours). ``estimate_motion`` finds, for each ``BLOCK`` x ``BLOCK`` block of the newer
picture, where it came from in the older one (block matching on luma by the mean absolute
difference: an exhaustive search over +-``COARSE_RADIUS`` x ``COARSE`` pixels at 1/``COARSE``
resolution, refined over +-``REFINE_RADIUS`` pixels at full resolution). Three guards keep the
guess from being worse than repeating the last picture, which is what concealment showed before:

* a block keeps its vector only where matching beats standing still clearly (cost under
  ``GATE`` of the zero vector's); a 3 x 3 median then removes lone vectors;
* the field must predict the newer picture from the older one at least ``MIN_FIT_GAIN_DB``
  better than repeating the older one does, or it is not used at all (``MotionField.usable``);
* ``extrapolate`` moves ``DAMPING`` of the way the field says, per frame ahead, because a wrong
  vector costs more than a short one.

The constants were chosen by measurement (``benchmarks/concealment_rule.py``; on bikes and on
the validation clip, predicting frame t + k - 1 from frames t - 2 and t - 1 with the
originals: repeating gave 22.99 / 20.13 / 18.35 dB at k = 1 / 2 / 3 on bikes, extrapolation
26.37 / 22.48 / 20.21, worse than repeating on 3-7% of the frames; on the slow validation clip
both gave 37.1 / 32.7 / 30.1 dB). Everything is numpy and scipy on one thread, in a fixed
order, so the pictures do not depend on the machine's thread count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

BLOCK = 16
"""Block size of the motion field (pixels)."""

COARSE = 4
"""Downscaling of the coarse search."""

COARSE_RADIUS = 6
"""Coarse search range (coarse pixels each way: 24 full-resolution pixels)."""

REFINE_RADIUS = 3
"""Full-resolution refinement around the coarse vector (pixels each way)."""

GATE = 0.7
"""A block keeps its vector only where its matching cost is under this share of standing
still's."""

MIN_FIT_GAIN_DB = 3.0
"""How much better (dB of luma PSNR) the field must predict the newer picture from the older
than repeating the older one does, to be used."""

DAMPING = 0.8
"""Share of the measured motion applied per frame extrapolated."""

_LUMA = (np.float32(0.299), np.float32(0.587), np.float32(0.114))


@dataclass(frozen=True)
class MotionField:
    """Per block of the newer picture, where it came from in the older one: ``vectors`` is
    h x w x 2 (dy, dx) in pixels for blocks of ``BLOCK`` pixels; ``fit_gain_db`` how much
    better it predicts the newer picture from the older than repeating the older does."""

    vectors: np.ndarray
    fit_gain_db: float

    @property
    def usable(self) -> bool:
        """Whether the field predicts well enough to extrapolate with (``MIN_FIT_GAIN_DB``)."""
        return self.fit_gain_db >= MIN_FIT_GAIN_DB


def _luma(picture: np.ndarray) -> np.ndarray:
    """H x W luma of an H x W x 3 picture, edge-padded to whole blocks."""
    rgb = np.asarray(picture, np.float32)
    y = _LUMA[0] * rgb[..., 0] + _LUMA[1] * rgb[..., 1] + _LUMA[2] * rgb[..., 2]
    height, width = y.shape
    pad_h, pad_w = -height % BLOCK, -width % BLOCK
    return np.pad(y, ((0, pad_h), (0, pad_w)), mode="edge") if pad_h or pad_w else y


def _block_mean(values: np.ndarray, block: int) -> np.ndarray:
    height, width = values.shape
    return values.reshape(height // block, block, width // block, block).mean(axis=(1, 3))


def _offsets(radius: int) -> list[tuple[int, int]]:
    """Every (dy, dx) within +-radius, nearest first (so that ties keep the shorter vector)."""
    pairs = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    return sorted(pairs, key=lambda d: (d[0] ** 2 + d[1] ** 2, d))


def _coarse_search(older: np.ndarray, newer: np.ndarray) -> np.ndarray:
    """Integer vectors (full-resolution pixels) per block from the coarse exhaustive search."""
    small_old, small_new = _block_mean(older, COARSE), _block_mean(newer, COARSE)
    block, radius = BLOCK // COARSE, COARSE_RADIUS
    padded = np.pad(small_old, radius, mode="edge")
    height, width = small_new.shape
    best = np.full((height // block, width // block), np.inf, np.float32)
    vectors = np.zeros((*best.shape, 2), np.int64)
    for dy, dx in _offsets(radius):
        shifted = padded[radius + dy : radius + dy + height, radius + dx : radius + dx + width]
        cost = _block_mean(np.abs(shifted - small_new), block)
        better = cost < best
        best[better] = cost[better]
        vectors[better] = (dy, dx)
    return vectors * COARSE


def _refine(older: np.ndarray, newer: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, ...]:
    """Full-resolution vectors around ``start``, their costs and standing still's costs."""
    height, width = newer.shape
    rows = np.arange(height)[:, None]
    cols = np.arange(width)[None, :]
    best = np.full(start.shape[:2], np.inf, np.float32)
    vectors = start.copy()
    for ey, ex in _offsets(REFINE_RADIUS):
        candidate = start + (ey, ex)
        per_pixel = np.repeat(np.repeat(candidate, BLOCK, axis=0), BLOCK, axis=1)
        src_rows = np.clip(rows + per_pixel[..., 0], 0, height - 1)
        src_cols = np.clip(cols + per_pixel[..., 1], 0, width - 1)
        cost = _block_mean(np.abs(older[src_rows, src_cols] - newer), BLOCK)
        better = cost < best
        best[better] = cost[better]
        vectors[better] = candidate[better]
    return vectors, best, _block_mean(np.abs(older - newer), BLOCK)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2, dtype=np.float64))
    return 10.0 * math.log10(1.0 / max(mse, 1e-12))


def estimate_motion(older: np.ndarray, newer: np.ndarray) -> MotionField:
    """The motion field from ``older`` to ``newer`` (H x W x 3 float pictures in [0, 1] of one
    size): per block of ``newer``, the displacement to where it was in ``older``."""
    if older.shape != newer.shape or older.ndim != 3 or older.shape[2] != 3:
        raise ValueError(
            f"two H x W x 3 pictures of one size needed, got {older.shape} and {newer.shape}"
        )
    y_old, y_new = _luma(older), _luma(newer)
    vectors, cost, still = _refine(y_old, y_new, _coarse_search(y_old, y_new))
    vectors[~(cost < GATE * still)] = 0
    smooth = np.stack(
        [ndimage.median_filter(vectors[..., c], size=3, mode="nearest") for c in range(2)], -1
    ).astype(np.float32)
    height, width = y_new.shape
    predicted = _warp(y_old[..., None], smooth, 1.0)[..., 0]
    gain = _psnr(predicted[:height, :width], y_new) - _psnr(y_old, y_new)
    return MotionField(vectors=smooth, fit_gain_db=gain)


def _warp(picture: np.ndarray, vectors: np.ndarray, scale: float) -> np.ndarray:
    """``picture`` (H x W x C) sampled at p + scale * v(p), v interpolated bilinearly between
    block centres; positions outside take the nearest edge pixel."""
    height, width = picture.shape[:2]
    # block-grid coordinates of every pixel centre (block i's centre: i * BLOCK + BLOCK/2 - 1/2)
    grid_rows = (np.arange(height, dtype=np.float32) + 0.5) / BLOCK - 0.5
    grid_cols = (np.arange(width, dtype=np.float32) + 0.5) / BLOCK - 0.5
    at = np.meshgrid(grid_rows, grid_cols, indexing="ij")
    flow = [ndimage.map_coordinates(vectors[..., c], at, order=1, mode="nearest") for c in range(2)]
    rows = np.arange(height, dtype=np.float32)[:, None] + scale * flow[0]
    cols = np.arange(width, dtype=np.float32)[None, :] + scale * flow[1]
    channels = [
        ndimage.map_coordinates(picture[..., c], [rows, cols], order=1, mode="nearest")
        for c in range(picture.shape[2])
    ]
    return np.stack(channels, axis=-1).astype(np.float32)


def extrapolate(picture: np.ndarray, field: MotionField, frames_ahead: int) -> np.ndarray:
    """``picture`` moved on ``frames_ahead`` frames along ``field`` (damped by ``DAMPING``)."""
    if frames_ahead < 1:
        raise ValueError(f"frames_ahead must be >= 1, got {frames_ahead}")
    height, width = picture.shape[:2]
    rows, cols = field.vectors.shape[:2]
    if (rows, cols) != (math.ceil(height / BLOCK), math.ceil(width / BLOCK)):
        raise ValueError(f"a {rows} x {cols} block field does not fit a {height} x {width} picture")
    return _warp(np.asarray(picture, np.float32), field.vectors, DAMPING * frames_ahead)
