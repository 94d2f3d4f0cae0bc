"""Full-reference picture quality: RGB PSNR and MS-SSIM of one decoded frame against its original.

Both functions take an original ``x`` and a reconstruction ``x_hat`` of the same shape H x W x 3,
each either uint8 (0..255) or floating point in [0, 1]. Everything is converted to float in
[0, 1] first (uint8 divided by 255; floats clipped to [0, 1]), so the peak signal is 1.0 and a
uint8 frame compares equal to its float copy.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F

from codec.threads import intra_op_threads

PSNR_CAP_DB = 100.0
"""PSNR returned for identical (or numerically indistinguishable) frames, in dB.

Mean squared error 0 gives an infinite PSNR; a finite cap keeps averages and plots finite.
Any PSNR above the cap is reported as the cap (MSE < 1e-10 on the [0, 1] scale).
"""

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Per-scale exponents of Wang et al. (2003), finest scale first (the pytorch_msssim default)."""

MS_SSIM_WINDOW = 11
"""Side of the Gaussian window (sigma 1.5) of every SSIM evaluation, in pixels."""


def _as_unit_tensor(x: np.ndarray, name: str) -> torch.Tensor:
    """``x`` (... x H x W x 3, uint8 or float in [0, 1]) as float32 in [0, 1], N x 3 x H x W."""
    a = np.asarray(x)
    if a.ndim not in (3, 4) or a.shape[-1] != 3:
        raise ValueError(f"{name} must be H x W x 3 or N x H x W x 3, got shape {a.shape}")
    if a.dtype == np.uint8:
        t = torch.from_numpy(np.ascontiguousarray(a)).float().div_(255.0)
    elif np.issubdtype(a.dtype, np.floating):
        t = torch.from_numpy(np.clip(a, 0.0, 1.0).astype(np.float32, copy=False))
    else:
        raise ValueError(f"{name} must be uint8 or floating point, got {a.dtype}")
    return t.reshape(-1, *a.shape[-3:]).permute(0, 3, 1, 2)


def _pair(x: np.ndarray, x_hat: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    if np.shape(x) != np.shape(x_hat):
        raise ValueError(f"x and x_hat differ in shape: {np.shape(x)} vs {np.shape(x_hat)}")
    return _as_unit_tensor(x, "x"), _as_unit_tensor(x_hat, "x_hat")


def _one_frame(x: np.ndarray) -> None:
    if np.ndim(x) != 3:
        raise ValueError(f"x must be one H x W x 3 frame, got shape {np.shape(x)}")


def _mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-frame mean squared error of (N, 3, H, W) pairs, accumulated in float64: (N,)."""
    return (a - b).double().pow(2).mean(dim=(1, 2, 3))


def _psnr_of_mse(mse: torch.Tensor) -> np.ndarray:
    """dB values of float64 MSEs, ``PSNR_CAP_DB`` for 0 and anything above the cap."""
    mse = mse.numpy()
    with np.errstate(divide="ignore"):
        db = 10.0 * np.log10(1.0 / mse)
    return np.minimum(db, PSNR_CAP_DB)


def frame_quality(
    x: np.ndarray, x_hat: np.ndarray, batch_frames: int = 4, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """RGB PSNR (dB) and MS-SSIM of every frame of two N x H x W x 3 stacks (uint8 or float).

    The same values as ``psnr`` and ``ms_ssim`` frame by frame, computed ``batch_frames`` frames
    per pass (larger batches were slower on a 2-core CPU: cache-bound). ``threads``: torch's
    intra-op threads while measuring (None: as set); on a loaded 2-core machine one thread
    measured 32 frames of 448x256 in 0.9 s where two took 2.6 to 7 s (the small convolutions
    spend their time waiting for each other). Returns two float64 arrays of length N.
    """
    a, b = _pair(x, x_hat)
    levels = ms_ssim_levels(a.shape[2], a.shape[3])
    psnrs, ssims = [], []
    pinned = nullcontext() if threads is None else intra_op_threads(threads)
    with pinned, torch.no_grad():
        for i in range(0, a.shape[0], batch_frames):
            ta, tb = a[i : i + batch_frames], b[i : i + batch_frames]
            psnrs.append(_psnr_of_mse(_mse(ta, tb)))
            ssims.append(_ms_ssim_levels(ta, tb, levels).double().numpy())
    return np.concatenate(psnrs), np.concatenate(ssims)


def psnr(x: np.ndarray, x_hat: np.ndarray) -> float:
    """RGB PSNR in dB: 10 log10(1 / MSE), the MSE taken over all pixels and the three channels.

    ``x``, ``x_hat``: H x W x 3, uint8 or float in [0, 1] (peak 1.0 after conversion).
    Identical frames return ``PSNR_CAP_DB`` (100 dB), as does anything above it.
    """
    _one_frame(x)
    a, b = _pair(x, x_hat)
    return float(_psnr_of_mse(_mse(a, b))[0])


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


def _gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps, (1, 1, size) float32, computed as
    pytorch-msssim computes its window (its ``_fspecial_gauss_1d`` is private), so that
    ``ms_ssim`` equals the library's to the last bit (``tests/codec/test_metrics.py``)."""
    coords = torch.arange(size, dtype=torch.float)
    coords -= size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g /= g.sum()
    return g.unsqueeze(0).unsqueeze(0)


def _window(channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable Gaussian window (sigma 1.5) as horizontal and vertical grouped conv kernels."""
    g = _gaussian_1d(MS_SSIM_WINDOW, 1.5)  # (1, 1, 11)
    horizontal = g.repeat(channels, 1, 1, 1)
    return horizontal, horizontal.transpose(2, 3)


def _ssim_terms(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel SSIM and contrast-structure of (N, C, H, W) maps, as ``pytorch_msssim._ssim``
    computes them (valid filtering, K1 = 0.01, K2 = 0.03, data range 1), but with the five local
    moments filtered in one grouped convolution per direction instead of ten."""
    c = a.shape[1]
    horizontal, vertical = _window(5 * c)
    # channels-last: PyTorch's CPU depthwise convolution is about 10x faster in that layout
    stacked = torch.cat([a, b, a * a, b * b, a * b], dim=1).contiguous(
        memory_format=torch.channels_last
    )
    moments = F.conv2d(F.conv2d(stacked, horizontal, groups=5 * c), vertical, groups=5 * c)
    mu1, mu2, e11, e22, e12 = moments.split(c, dim=1)
    c1, c2 = 0.01**2, 0.03**2
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    cs_map = (2 * (e12 - mu12) + c2) / ((e11 - mu1_sq) + (e22 - mu2_sq) + c2)
    ssim_map = ((2 * mu12 + c1) / (mu1_sq + mu2_sq + c1)) * cs_map
    return ssim_map.flatten(2).mean(-1), cs_map.flatten(2).mean(-1)


def _ms_ssim_levels(a: torch.Tensor, b: torch.Tensor, levels: int) -> torch.Tensor:
    """MS-SSIM of each of N (N, C, H, W) pairs over ``levels`` scales, the first weights
    renormalised to sum 1: shape (N,), the mean over channels."""
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
    return torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean(dim=1)


def ms_ssim(x: np.ndarray, x_hat: np.ndarray) -> float:
    """RGB MS-SSIM in [0, 1] (Wang et al. 2003), the mean of the three channels' values.

    ``x``, ``x_hat``: H x W x 3, uint8 or float in [0, 1]; data range 1.0, window 11, sigma 1.5.
    Frames with the smaller side above 160 px use pytorch_msssim's five scales unchanged.
    Smaller frames use fewer scales (``ms_ssim_levels``) with the first weights renormalised to
    sum 1, so values of frames below 161 px are comparable among themselves, not with 5-scale
    values. Sides of 10 px or less raise ``ValueError``.
    """
    _one_frame(x)
    return float(frame_quality(x, x_hat)[1][0])
