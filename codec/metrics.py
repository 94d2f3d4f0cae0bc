"""Full-reference picture quality: RGB PSNR and MS-SSIM of one decoded frame against its original.

Both functions take an original ``x`` and a reconstruction ``x_hat`` of the same shape H x W x 3,
each either uint8 (0..255) or floating point in [0, 1]. Everything is converted to float in
[0, 1] first (uint8 divided by 255; floats clipped to [0, 1]), so the peak signal is 1.0 and a
uint8 frame compares equal to its float copy.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_msssim.ssim import _fspecial_gauss_1d

PSNR_CAP_DB = 100.0
"""PSNR returned for identical (or numerically indistinguishable) frames, in dB.

Mean squared error 0 gives an infinite PSNR; a finite cap keeps averages and plots finite.
Any PSNR above the cap is reported as the cap (MSE < 1e-10 on the [0, 1] scale).
"""

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Per-scale exponents of Wang et al. (2003), finest scale first (the pytorch_msssim default)."""

MS_SSIM_WINDOW = 11
"""Side of the Gaussian window (sigma 1.5) of every SSIM evaluation, in pixels."""


def _as_unit_float(x: np.ndarray, name: str) -> np.ndarray:
    """``x`` (H x W x 3, uint8 or float in [0, 1]) as float64 in [0, 1]."""
    a = np.asarray(x)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"{name} must be H x W x 3, got shape {a.shape}")
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if np.issubdtype(a.dtype, np.floating):
        return np.clip(a.astype(np.float64), 0.0, 1.0)
    raise ValueError(f"{name} must be uint8 or floating point, got {a.dtype}")


def _pair(x: np.ndarray, x_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = _as_unit_float(x, "x")
    b = _as_unit_float(x_hat, "x_hat")
    if a.shape != b.shape:
        raise ValueError(f"x and x_hat differ in shape: {a.shape} vs {b.shape}")
    return a, b


def psnr(x: np.ndarray, x_hat: np.ndarray) -> float:
    """RGB PSNR in dB: 10 log10(1 / MSE), the MSE taken over all pixels and the three channels.

    ``x``, ``x_hat``: H x W x 3, uint8 or float in [0, 1] (peak 1.0 after conversion).
    Identical frames return ``PSNR_CAP_DB`` (100 dB), as does anything above it.
    """
    a, b = _pair(x, x_hat)
    mse = float(np.mean((a - b) ** 2))
    if mse <= 0.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, 10.0 * math.log10(1.0 / mse))


def ms_ssim_levels(height: int, width: int) -> int:
    """Number of MS-SSIM scales a frame of this size supports (1..5).

    pytorch_msssim needs the smaller side above (window - 1) * 2**4 = 160 px for its five scales.
    The same rule per scale count L, side > (window - 1) * 2**(L - 1), keeps the coarsest scale at
    least one 11 x 11 window: 81..160 px -> 4 scales, 41..80 -> 3, 21..40 -> 2, 11..20 -> 1.
    """
    side = min(height, width)
    if side <= MS_SSIM_WINDOW - 1:
        raise ValueError(
            f"MS-SSIM needs both sides above {MS_SSIM_WINDOW - 1} px, got {width}x{height}"
        )
    levels = 1
    while levels < len(MS_SSIM_WEIGHTS) and side > (MS_SSIM_WINDOW - 1) * 2**levels:
        levels += 1
    return levels


def _window(channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable Gaussian window (sigma 1.5) as horizontal and vertical grouped conv kernels."""
    g = _fspecial_gauss_1d(MS_SSIM_WINDOW, 1.5)  # (1, 1, 1, 11)
    horizontal = g.repeat(channels, 1, 1, 1)
    return horizontal, horizontal.transpose(2, 3)


def _ssim_terms(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel SSIM and contrast-structure of (1, C, H, W) maps, as ``pytorch_msssim._ssim``
    computes them (valid filtering, K1 = 0.01, K2 = 0.03, data range 1), but with the five local
    moments filtered in one grouped convolution per direction instead of ten."""
    c = a.shape[1]
    horizontal, vertical = _window(5 * c)
    stacked = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    moments = F.conv2d(F.conv2d(stacked, horizontal, groups=5 * c), vertical, groups=5 * c)
    mu1, mu2, e11, e22, e12 = moments.split(c, dim=1)
    c1, c2 = 0.01**2, 0.03**2
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    cs_map = (2 * (e12 - mu12) + c2) / ((e11 - mu1_sq) + (e22 - mu2_sq) + c2)
    ssim_map = ((2 * mu12 + c1) / (mu1_sq + mu2_sq + c1)) * cs_map
    return ssim_map.flatten(2).mean(-1), cs_map.flatten(2).mean(-1)


def _ms_ssim_levels(a: torch.Tensor, b: torch.Tensor, levels: int) -> float:
    """MS-SSIM over ``levels`` scales, the first weights renormalised to sum 1."""
    weights = torch.tensor(MS_SSIM_WEIGHTS[:levels], dtype=a.dtype)
    weights = weights / weights.sum()
    mcs = []
    for i in range(levels):
        ssim_per_channel, cs = _ssim_terms(a, b)
        if i < levels - 1:
            mcs.append(torch.relu(cs))
            padding = [s % 2 for s in a.shape[2:]]
            a = F.avg_pool2d(a, kernel_size=2, padding=padding)
            b = F.avg_pool2d(b, kernel_size=2, padding=padding)
    stacked = torch.stack([*mcs, torch.relu(ssim_per_channel)], dim=0)
    return float(torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean())


def ms_ssim(x: np.ndarray, x_hat: np.ndarray) -> float:
    """RGB MS-SSIM in [0, 1] (Wang et al. 2003), the mean of the three channels' values.

    ``x``, ``x_hat``: H x W x 3, uint8 or float in [0, 1]; data range 1.0, window 11, sigma 1.5.
    Frames with the smaller side above 160 px use pytorch_msssim's five scales unchanged.
    Smaller frames use fewer scales (``ms_ssim_levels``) with the first weights renormalised to
    sum 1, so values of frames below 161 px are comparable among themselves, not with 5-scale
    values. Sides of 10 px or less raise ``ValueError``.
    """
    a, b = _pair(x, x_hat)
    levels = ms_ssim_levels(a.shape[0], a.shape[1])
    ta = torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1).unsqueeze(0)
    tb = torch.from_numpy(b.astype(np.float32)).permute(2, 0, 1).unsqueeze(0)
    with torch.no_grad():
        return _ms_ssim_levels(ta, tb, levels)
