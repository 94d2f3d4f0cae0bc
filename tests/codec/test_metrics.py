import math

import numpy as np
import pytest
import torch
from pytorch_msssim import ms_ssim as library_ms_ssim

from codec.metrics import (
    MS_SSIM_WEIGHTS,
    PSNR_CAP_DB,
    _ms_ssim_levels,
    frame_quality,
    ms_ssim,
    ms_ssim_levels,
    psnr,
)


def _frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # smooth content plus texture, so SSIM is not dominated by noise
    yy, xx = np.mgrid[0:height, 0:width]
    base = 0.5 + 0.3 * np.sin(xx / 7.0)[..., None] * np.cos(yy / 5.0)[..., None]
    x = base + 0.1 * rng.random((height, width, 3))
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def test_psnr_matches_the_mse_formula_on_a_known_error():
    x = np.full((8, 8, 3), 0.5, np.float32)
    x_hat = x + np.float32(0.1)
    assert psnr(x, x_hat) == pytest.approx(20.0, abs=1e-4)  # 10 log10(1 / 0.01)


def test_psnr_of_identical_frames_is_the_finite_cap():
    x = _frame(16, 16)
    assert psnr(x, x) == PSNR_CAP_DB
    assert math.isfinite(psnr(x, x))


def test_psnr_treats_uint8_as_0_to_255_and_floats_as_0_to_1():
    x8 = np.random.default_rng(1).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    y8 = np.clip(x8.astype(int) + 3, 0, 255).astype(np.uint8)
    mixed = psnr(x8, y8.astype(np.float32) / 255.0)
    assert psnr(x8, y8) == pytest.approx(mixed, abs=1e-5)
    mse = np.mean(((x8.astype(float) - y8.astype(float)) / 255.0) ** 2)
    assert psnr(x8, y8) == pytest.approx(10 * math.log10(1 / mse), abs=1e-6)


def test_psnr_rejects_mismatched_shapes_and_non_rgb_input():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(np.zeros((4, 4, 3), np.float32), np.zeros((4, 5, 3), np.float32))
    with pytest.raises(ValueError, match="H x W x 3"):
        psnr(np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="uint8 or floating"):
        psnr(np.zeros((4, 4, 3), np.int32), np.zeros((4, 4, 3), np.int32))


def test_ms_ssim_equals_pytorch_msssim_on_frames_above_160_pixels():
    x = _frame(176, 192)
    x_hat = np.clip(x + 0.05 * np.random.default_rng(2).standard_normal(x.shape), 0, 1)
    tx = torch.from_numpy(x).permute(2, 0, 1)[None]
    ty = torch.from_numpy(x_hat.astype(np.float32)).permute(2, 0, 1)[None]
    expected = float(library_ms_ssim(tx, ty, data_range=1.0))
    assert ms_ssim(x, x_hat) == pytest.approx(expected, abs=1e-5)
    # the reduced-scale loop with all five (renormalised) weights is the library's computation
    weights = [w / sum(MS_SSIM_WEIGHTS) for w in MS_SSIM_WEIGHTS]
    renormalised = float(library_ms_ssim(tx, ty, data_range=1.0, weights=weights))
    assert float(_ms_ssim_levels(tx, ty, 5)[0]) == pytest.approx(renormalised, abs=1e-6)


@pytest.mark.parametrize(
    ("side", "levels"), [(11, 1), (20, 1), (21, 2), (64, 3), (81, 4), (160, 4), (161, 5)]
)
def test_ms_ssim_uses_fewer_scales_below_161_pixels(side, levels):
    assert ms_ssim_levels(side, 1000) == levels
    assert ms_ssim_levels(1000, side) == levels


def test_ms_ssim_on_a_small_frame_is_one_for_identical_and_drops_with_noise():
    x = _frame(64, 96)
    rng = np.random.default_rng(3)
    slight = np.clip(x + 0.02 * rng.standard_normal(x.shape), 0, 1)
    strong = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    assert ms_ssim(x, x) == pytest.approx(1.0, abs=1e-6)
    assert 0.0 < ms_ssim(x, strong) < ms_ssim(x, slight) < 1.0


def test_ms_ssim_refuses_frames_smaller_than_one_window():
    with pytest.raises(ValueError, match="above 10 px"):
        ms_ssim(np.zeros((10, 40, 3), np.uint8), np.zeros((10, 40, 3), np.uint8))


def test_frame_quality_of_a_stack_equals_the_per_frame_functions():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (5, 176, 200, 3), dtype=np.uint8)
    x_hat = np.clip(x + rng.normal(0, 8, x.shape), 0, 255).astype(np.uint8)
    x_hat[2] = x[2]  # an identical frame: PSNR at the cap, MS-SSIM 1
    psnrs, ssims = frame_quality(x, x_hat, batch_frames=2)
    assert psnrs == pytest.approx([psnr(a, b) for a, b in zip(x, x_hat, strict=True)], abs=1e-9)
    assert ssims == pytest.approx([ms_ssim(a, b) for a, b in zip(x, x_hat, strict=True)], abs=1e-6)
    assert psnrs[2] == PSNR_CAP_DB and ssims[2] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="differ in shape"):
        frame_quality(x, x_hat[:4])
