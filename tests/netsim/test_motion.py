"""Motion-extrapolated concealment (``netsim.motion``): the field follows a moving texture, the
extrapolated picture beats repeating the last one, and a still or unpredictable scene is left
to repetition."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from netsim.motion import BLOCK, MIN_FIT_GAIN_DB, estimate_motion, extrapolate


def texture(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth random colour texture, larger than the frames cut from it."""
    noise = np.random.default_rng(seed).random((height + 64, width + 64, 3)).astype(np.float32)
    return np.stack([ndimage.gaussian_filter(noise[..., c], 2.0) for c in range(3)], -1) * 2 - 0.5


def frame(scene: np.ndarray, dy: int, dx: int, height: int = 96, width: int = 128) -> np.ndarray:
    """The window of ``scene`` at offset (32 - dy, 32 - dx): the content moves by (dy, dx)."""
    return np.clip(scene[32 - dy : 32 - dy + height, 32 - dx : 32 - dx + width], 0, 1)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


def test_a_panning_scene_is_followed_and_extrapolated_better_than_repeated() -> None:
    scene = texture()
    older, newer, nxt = (frame(scene, 0, 3 * t) for t in range(3))  # 3 px right per frame
    field = estimate_motion(older, newer)
    assert field.vectors.shape == (96 // BLOCK, 128 // BLOCK, 2)
    inner = field.vectors[1:-1, 1:-1]
    assert np.all(inner[..., 0] == 0) and np.all(inner[..., 1] == -3)
    assert field.usable and field.fit_gain_db >= MIN_FIT_GAIN_DB
    moved = extrapolate(newer, field, 1)
    assert psnr(moved, nxt) > psnr(newer, nxt) + 3
    # two frames on moves twice as far (damped), which beats one frame's move for frame t + 2
    later = frame(scene, 0, 9)
    assert psnr(extrapolate(newer, field, 2), later) > psnr(moved, later)


def test_a_still_scene_has_no_motion_and_is_not_extrapolated() -> None:
    still = frame(texture(seed=1), 0, 0)
    field = estimate_motion(still, still + np.float32(0.001))
    assert not np.any(field.vectors)
    assert not field.usable


def test_unrelated_pictures_give_an_unusable_field() -> None:
    field = estimate_motion(frame(texture(seed=2), 0, 0), frame(texture(seed=3), 0, 0))
    assert not field.usable


def test_sizes_that_are_not_whole_blocks_work() -> None:
    scene = texture(90, 120)
    older, newer = frame(scene, 1, 0, 90, 120), frame(scene, 2, 0, 90, 120)
    field = estimate_motion(older, newer)
    assert field.vectors.shape == (6, 8, 2)
    assert extrapolate(newer, field, 1).shape == (90, 120, 3)


def test_bad_inputs_are_refused() -> None:
    picture = np.zeros((32, 32, 3), np.float32)
    with pytest.raises(ValueError, match="one size"):
        estimate_motion(picture, np.zeros((32, 48, 3), np.float32))
    field = estimate_motion(picture, picture)
    with pytest.raises(ValueError, match="frames_ahead"):
        extrapolate(picture, field, 0)
    with pytest.raises(ValueError, match="does not fit"):
        extrapolate(np.zeros((64, 64, 3), np.float32), field, 1)
