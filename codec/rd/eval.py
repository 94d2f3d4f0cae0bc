"""Rate-distortion evaluation: DHVC against x264 and x265 on the same frames (``dhvc eval``).

``evaluate`` codes the first N frames of each source (``codec.rd.sources``: a video, a PNG
folder, ``sample:NAME`` or every member of a named set ``set:NAME``) with DHVC at several
lambdas (``codec.rd.dhvc``) and with libx264 and libx265 at several QPs (``codec.rd.anchors``),
measures every point in bits per pixel of the original frames and RGB PSNR / MS-SSIM of the
decoded frames, computes BD-rates (``codec.rd.bdrate``) and writes ``rd.json``
(``codec.rd.results``). With several sources it also averages the curves as codec papers do (per
lambda and per QP, the mean bpp, PSNR and MS-SSIM over sources), takes the BD-rates of the
averaged curves and the mean of the per-source BD-rates. Low delay by default (an I frame every
GOP, then P frames); ``intra=True`` codes every frame as an I frame with DHVC and the anchors.
``codec.rd.plot.plot_rd`` draws the result.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from codec.metrics import PSNR_CAP_DB
from codec.model.dhvc import DHVC
from codec.pack.load import DEFAULT_PACK
from codec.rd.anchors import (
    ANCHORS,
    DEFAULT_QPS,
    JPEG,
    JPEG_QUALITIES,
    anchor_settings,
    evaluate_anchor,
    evaluate_jpeg,
    jpeg_settings,
    knob,
)
from codec.rd.bdrate import METRICS, MIN_OVERLAP, bd_quality, bd_rate, bd_rates, monotone
from codec.rd.dhvc import default_lambdas, dhvc_settings, evaluate_dhvc
from codec.rd.results import write_rd
from codec.rd.sources import load_sources

__all__ = [
    "ANCHORS",
    "DEFAULT_GOP",
    "EvalProgress",
    "bd_quality",
    "bd_rate",
    "evaluate",
    "set_average",
]
"""``ANCHORS``, ``bd_rate`` and ``bd_quality`` are also importable from here, where scripts
(``benchmarks/compare_rd.py``, ``analysis.make_figures``) have always found them."""

DEFAULT_GOP = 32
"""Intra period of the low-delay mode when none is given (the CLI's default)."""


@dataclass(frozen=True)
class EvalProgress:
    """One step of ``evaluate``: ``frames_done`` of ``frames_total`` coded at ``setting``.

    ``codec`` is ``dhvc``, ``x264`` or ``x265``; ``setting`` names the point (``lambda=256``,
    ``qp=32``); ``point`` and ``points_total`` count the points of all codecs and all sources
    together. ``source`` names the source being coded, the ``source_index``-th (from 1) of
    ``sources_total``.
    """

    codec: str
    setting: str
    frames_done: int
    frames_total: int
    point: int
    points_total: int
    source: str = ""
    source_index: int = 1
    sources_total: int = 1


def _summary(dhvc_points: Sequence[dict]) -> dict:
    rates = [p["bpp"] for p in dhvc_points]
    return {
        "dhvc_monotone": monotone(dhvc_points),
        "dhvc_bpp_span": max(rates) / min(rates) if min(rates) > 0 else None,
    }


def set_average(entries: Sequence[dict], anchors: Sequence[str]) -> dict:
    """The set-average RD curves of per-source results, as codec papers report them.

    ``entries``: per-source results (``video``, ``codecs`` with the same lambdas and QPs in the
    same order, ``bd_rate``). Per lambda and per QP, the mean bpp, PSNR and MS-SSIM over the
    sources; then the BD-rates of the averaged curves (``bd_rate``) and, per anchor and metric,
    the mean of the per-source BD-rates over the sources where it is defined
    (``bd_rate_mean_of_sources``, with how many sources it covers and which were left out).
    """
    codecs: dict[str, list[dict]] = {}
    for codec in entries[0]["codecs"]:
        setting = knob(codec)
        curves = [e["codecs"][codec] for e in entries]
        codecs[codec] = [
            {setting: points[0][setting]}
            | {key: float(np.mean([p[key] for p in points])) for key in ("bpp", *METRICS)}
            for points in zip(*curves, strict=True)
        ]
    mean_bd: dict[str, dict] = {}
    for anchor in anchors:
        entry: dict = {"sources": {}, "left_out": {}}
        for metric in METRICS:
            values = [e["bd_rate"][anchor][metric] for e in entries]
            defined = [v for v in values if v is not None]
            entry[metric] = float(np.mean(defined)) if defined else None
            entry["sources"][metric] = len(defined)
            entry["left_out"][metric] = [
                e["video"] for e, v in zip(entries, values, strict=True) if v is None
            ]
        mean_bd[anchor] = entry
    return {
        "sources": len(entries),
        "codecs": codecs,
        "summary": _summary(codecs["dhvc"]),
        "bd_rate": bd_rates(codecs, anchors),
        "bd_rate_mean_of_sources": mean_bd,
    }


def evaluate(
    video: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    frames: int | None,
    gop: int,
    lambdas: Sequence[float] | None,
    anchors: Sequence[str],
    model: DHVC,
    out_json: Path,
    size: tuple[int, int] | None = None,
    on_progress: Callable[[EvalProgress], None] | None = None,
    qps: Sequence[int] = DEFAULT_QPS,
    intra: bool = False,
    pack_root: str | os.PathLike[str] = DEFAULT_PACK,
    motion: bool = True,
) -> dict:
    """Rate-distortion points of DHVC and the anchors on one source or a set of sources.

    ``video``: one source or a sequence of them (video file, PNG folder, ``sample:NAME``,
    ``set:NAME``; see ``load_sources``, which reads ``frames`` frames of each, resized to
    ``size`` = (width, height) when given). A single source is a set of one. ``lambdas``: DHVC
    rate points (``None``: ``default_lambdas(model)``). ``anchors``: any of ``x264``, ``x265``.
    ``intra``: every frame an I frame for DHVC and the anchors (``gop`` must be 1).
    ``motion``: DHVC's block motion of the references (``codec.stream.motion``), or none.

    Writes the returned dict to ``out_json`` atomically. For one source its keys are video,
    frames, gop, intra, width, height, model, codecs, anchor_settings, bd_rate, and
    dhvc_settings, metrics, summary that describe them. For several, ``sources`` lists each
    source's video, frames, width, height, codecs, summary and bd_rate, ``set_average`` holds
    the averaged curves (``set_average``), and the top-level codecs, summary and bd_rate repeat
    the set average's (``video`` lists the sources, ``frames`` is their total, width and height
    appear when all sources share them). Raises ``VideoError`` for an unusable source or frames
    below ``MIN_SIDE``; ``ValueError`` for bad arguments. Nothing is written on an error.
    """
    unknown = [a for a in anchors if a not in ANCHORS and a != JPEG]
    if unknown:
        raise ValueError(f"unknown anchor(s) {unknown}; choose from {sorted([*ANCHORS, JPEG])}")
    if JPEG in anchors and not intra:
        raise ValueError("the jpeg anchor codes stills: it needs intra-only mode (--intra)")
    if (frames is not None and frames < 1) or gop < 1:
        raise ValueError(f"frames and gop must be >= 1, got frames={frames}, gop={gop}")
    if intra and gop != 1:
        raise ValueError(
            f"intra-only mode codes every frame as an I frame: gop must be 1, got {gop}"
        )
    if not qps:
        raise ValueError("qps must name at least one QP")
    lam_values = sorted(default_lambdas(model) if lambdas is None else [float(v) for v in lambdas])
    if not lam_values:
        raise ValueError("lambdas must name at least one value")
    specs = [video] if isinstance(video, str | os.PathLike) else list(video)
    sources = load_sources(specs, frames, size, pack_root)

    rates = {anchor: JPEG_QUALITIES if anchor == JPEG else qps for anchor in anchors}
    points_per_source = len(lam_values) + sum(len(r) for r in rates.values())
    points_total = points_per_source * len(sources)
    point = 0
    settings = {
        anchor: jpeg_settings(JPEG_QUALITIES)
        if anchor == JPEG
        else anchor_settings(anchor, gop, qps, intra)
        for anchor in anchors
    }

    def report(index: int, codec: str, setting: str, done: int) -> None:
        if on_progress is not None:
            source = sources[index - 1]
            on_progress(
                EvalProgress(
                    codec=codec,
                    setting=setting,
                    frames_done=done,
                    frames_total=len(source.frames),
                    point=point,
                    points_total=points_total,
                    source=source.name,
                    source_index=index,
                    sources_total=len(sources),
                )
            )

    entries: list[dict] = []
    for index, source in enumerate(sources, start=1):
        originals = source.frames
        count, height, width = originals.shape[:3]
        codecs: dict[str, list[dict]] = {"dhvc": []}
        for lam in lam_values:
            point += 1
            on_frame = partial(report, index, "dhvc", f"lambda={lam:g}")
            codecs["dhvc"].append(evaluate_dhvc(model, originals, gop, lam, on_frame, motion))
        for anchor in anchors:
            codecs[anchor] = []
            for rate in rates[anchor]:
                point += 1
                if anchor == JPEG:
                    result = evaluate_jpeg(originals, rate)
                else:
                    result, version = evaluate_anchor(anchor, originals, gop, rate)
                    found = version or settings[anchor]["encoder_version"]
                    settings[anchor]["encoder_version"] = found
                codecs[anchor].append(result)
                report(index, anchor, f"{knob(anchor)}={rate}", count)
        entries.append(
            {
                "video": source.name,
                "frames": int(count),
                "width": int(width),
                "height": int(height),
                "codecs": codecs,
                "summary": _summary(codecs["dhvc"]),
                "bd_rate": bd_rates(codecs, anchors),
            }
        )

    common = {
        "gop": int(gop),
        "intra": bool(intra),
        "model": {
            "model_id": getattr(model, "model_id", None),
            "preset": model.config.name,
            "lambda_min": model.config.lambda_min,
            "lambda_max": model.config.lambda_max,
            "aux_refinement": model.config.aux_refinement,
        },
        "dhvc_settings": dhvc_settings(lam_values, gop, intra, motion),
        "anchor_settings": settings,
        "metrics": {
            "bpp": "bits / (frames * width * height) of the original frames",
            "psnr": "mean over frames of RGB PSNR in dB, peak 1.0 "
            f"(identical frames count as {PSNR_CAP_DB:g} dB)",
            "ms_ssim": "mean over frames of RGB MS-SSIM (pytorch_msssim, 5 scales; fewer on "
            "frames below 161 px)",
            "bd_rate": "percent bitrate change of dhvc against the anchor at equal quality, "
            "bjontegaard pchip; MS-SSIM compared as -10 log10(1 - MS-SSIM) dB; null (with "
            f"the reason) where the curves overlap over less than {MIN_OVERLAP:.0%} of the "
            "joint quality range",
        },
    }
    if len(entries) == 1:
        entry = entries[0]
        rd = {
            "video": entry["video"],
            "frames": entry["frames"],
            "gop": common["gop"],
            "intra": common["intra"],
            "width": entry["width"],
            "height": entry["height"],
            "model": common["model"],
            "codecs": entry["codecs"],
            "dhvc_settings": common["dhvc_settings"],
            "anchor_settings": common["anchor_settings"],
            "metrics": common["metrics"],
            "summary": entry["summary"],
            "bd_rate": entry["bd_rate"],
        }
    else:
        average = set_average(entries, anchors)
        common["metrics"]["set_average"] = (
            "per lambda and per QP the mean over sources of bpp, PSNR (dB) and MS-SSIM (0-1); "
            "bd_rate: BD-rates of the averaged curves; bd_rate_mean_of_sources: mean of the "
            "per-source BD-rates where defined"
        )
        sizes = {(e["width"], e["height"]) for e in entries}
        shared = dict(zip(("width", "height"), sizes.pop(), strict=True)) if len(sizes) == 1 else {}
        rd = {
            "video": ", ".join(os.fspath(v) for v in specs),
            "frames": sum(e["frames"] for e in entries),
            **shared,
            **common,
            "codecs": average["codecs"],
            "summary": average["summary"],
            "bd_rate": average["bd_rate"],
            "sources": entries,
            "set_average": average,
        }
    write_rd(Path(out_json), rd)
    return rd
