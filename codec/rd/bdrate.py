"""Bjontegaard deltas between two rate-distortion curves: BD-rate and BD-quality (BD-PSNR).

A curve is a sequence of rate points: mappings with ``bpp`` and the quality metric, ``psnr`` (dB)
or ``ms_ssim`` (0-1, compared in dB as ``ms_ssim_db``). ``bjontegaard`` with pchip interpolation
integrates over the interval that both curves cover: BD-rate integrates log rate over quality,
BD-quality integrates quality over log rate. Where that interval is less than ``MIN_OVERLAP`` of
the joint range of the two curves, the delta would rest on one curve's ends alone, so it is not
reported: the functions return ``None`` with the reason.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import bjontegaard
import numpy as np

from codec.metrics import PSNR_CAP_DB

METRICS = ("psnr", "ms_ssim")
"""Quality metrics of every rate point and BD-rate."""

MIN_OVERLAP = 0.5
"""Smallest share of the joint range (quality for BD-rate, log rate for BD-quality) that both
curves must cover for a Bjontegaard delta to be reported."""

Point = Mapping[str, float]
Delta = tuple[float | None, str | None]
"""(value, None), or (None, the reason it is not reported)."""


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, -10 log10(1 - MS-SSIM), capped at ``PSNR_CAP_DB``."""
    if value >= 1.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, -10.0 * math.log10(1.0 - value))


def range_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the joint range of ``a`` and ``b`` that both cover (0 to 1; bjontegaard's
    overlap): length of the intersection of their ranges over the length of the union, 0
    when both are one and the same value."""
    total = max(a.max(), b.max()) - min(a.min(), b.min())
    if total <= 0:
        return 0.0
    return max(0.0, min(a.max(), b.max()) - max(a.min(), b.min())) / total


def quality_overlap(anchor: Sequence[Point], test: Sequence[Point], metric: str) -> float | None:
    """``range_overlap`` of the two curves' quality values (MS-SSIM in dB), the share that
    decides whether a BD-rate is reported; ``None`` when a curve is empty."""
    if not anchor or not test:
        return None
    convert = ms_ssim_db if metric == "ms_ssim" else float
    return range_overlap(
        np.array([convert(p[metric]) for p in anchor]),
        np.array([convert(p[metric]) for p in test]),
    )


def bd_rate(anchor: Sequence[Point], test: Sequence[Point], metric: str) -> Delta:
    """BD-rate (%) of ``test`` against ``anchor`` on ``metric`` (``psnr`` or ``ms_ssim``).

    Negative means ``test`` needs fewer bits for the same quality. ``None`` with the reason
    when a curve has fewer than two points, a non-positive or non-finite value, or a quality
    that does not rise strictly with rate, or when the curves overlap over less than
    ``MIN_OVERLAP`` of their joint quality range.
    """
    return _delta(bjontegaard.bd_rate, anchor, test, metric, "quality")


def bd_quality(anchor: Sequence[Point], test: Sequence[Point], metric: str) -> Delta:
    """BD-PSNR (dB; BD-MS-SSIM in dB for ``ms_ssim``) of ``test`` against ``anchor``: the mean
    quality gain at matched rate. Positive means ``test`` is better. Undefined as ``bd_rate``
    is, with the overlap taken over the joint log-rate range."""
    return _delta(bjontegaard.bd_psnr, anchor, test, metric, "log-rate")


def _curve(points: Sequence[Point], metric: str, name: str) -> tuple[np.ndarray, ...] | str:
    """(rate, quality) of ``points`` sorted by rate, or why they do not make a curve."""
    if len(points) < 2:
        return f"{name} curve has {len(points)} point(s); at least 2 are needed"
    rate = np.array([p["bpp"] for p in points], dtype=np.float64)
    quality = np.array([p[metric] for p in points], dtype=np.float64)
    if metric == "ms_ssim":
        quality = np.array([ms_ssim_db(q) for q in quality])
    if not (np.all(np.isfinite(rate)) and np.all(np.isfinite(quality)) and np.all(rate > 0)):
        return f"{name} curve has a non-positive or non-finite value"
    order = np.argsort(rate)
    rate, quality = rate[order], quality[order]
    if np.any(np.diff(rate) <= 0) or np.any(np.diff(quality) <= 0):
        return f"{name} curve is not monotone ({metric} must rise strictly with bpp)"
    return rate, quality


def _delta(
    function: Callable, anchor: Sequence[Point], test: Sequence[Point], metric: str, axis: str
) -> Delta:
    """``function`` (a bjontegaard delta) of the two curves, integrated along ``axis``
    (``quality`` or ``log-rate``), or (None, reason)."""
    curves = []
    for name, points in (("anchor", anchor), ("test", test)):
        curve = _curve(points, metric, name)
        if isinstance(curve, str):
            return None, curve
        curves.append(curve)
    (rate_a, quality_a), (rate_t, quality_t) = curves
    if axis == "quality":
        base_a, base_t, unit = quality_a, quality_t, f"{metric} dB"
    else:
        base_a, base_t, unit = np.log10(rate_a), np.log10(rate_t), "log10 bpp"
    share = range_overlap(base_a, base_t)
    if share == 0:
        return None, (
            f"{axis} ranges do not overlap: anchor {base_a[0]:.2f}-{base_a[-1]:.2f}, "
            f"test {base_t[0]:.2f}-{base_t[-1]:.2f} ({unit})"
        )
    if share < MIN_OVERLAP:
        return None, (
            f"curves overlap over {share:.0%} of the {axis} range "
            f"(at least {MIN_OVERLAP:.0%} is needed)"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = function(
            rate_a,
            quality_a,
            rate_t,
            quality_t,
            method="pchip",
            require_matching_points=False,
            min_overlap=0.0,
        )
    if not math.isfinite(value):
        return None, f"{metric} delta along {axis} is not finite"
    return float(value), None


def monotone(points: Sequence[Point]) -> bool:
    """Whether bpp, PSNR and MS-SSIM all rise strictly along the curve sorted by bpp."""
    ordered = sorted(points, key=lambda p: p["bpp"])
    return all(
        b["bpp"] > a["bpp"] and b["psnr"] > a["psnr"] and b["ms_ssim"] > a["ms_ssim"]
        for a, b in zip(ordered, ordered[1:], strict=False)
    )


def bd_rates(codecs: Mapping[str, Sequence[Point]], anchors: Sequence[str]) -> dict[str, dict]:
    """BD-rates of ``codecs["dhvc"]`` against each anchor's curve, per metric, with the
    reason where one is not reported and the quality overlap (``quality_overlap``)."""
    result: dict[str, dict] = {}
    for anchor in anchors:
        entry: dict = {"reasons": {}, "overlap": {}}
        for metric in METRICS:
            value, reason = bd_rate(codecs[anchor], codecs["dhvc"], metric)
            entry[metric] = value
            entry["reasons"][metric] = reason
            entry["overlap"][metric] = quality_overlap(codecs[anchor], codecs["dhvc"], metric)
        result[anchor] = entry
    return result
