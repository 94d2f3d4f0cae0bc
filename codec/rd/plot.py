"""The rate-distortion figure of an ``rd.json``: the project's one RD plot.

``dhvc eval`` saves it next to rd.json; ``analysis.figures`` re-exports it for ``make figures``
(codec is the lower layer, so the function lives here). It only draws: every value, BD-rates
included, is read from the result as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

_STYLES = {"dhvc": "o-", "x264": "s--", "x265": "^--", "jpeg": "d:"}
"""Line style per codec; others get ``.-``."""

_PANELS = (("psnr", "PSNR", "RGB PSNR (dB)"), ("ms_ssim", "MS-SSIM", "RGB MS-SSIM (0-1)"))


def plot_rd(rd: Mapping[str, Any], title: str | None = None) -> Figure:
    """PSNR-rate and MS-SSIM-rate curves of ``rd`` (``codec.rd.eval.evaluate``'s result, or
    ``codec.rd.results.read_rd`` of its file), one line per codec, sorted by bpp.

    One source: its curves. Several: the set-average curves (the top-level ``codecs`` of such a
    result). Each anchor's legend entry quotes DHVC's BD-rate against it from ``rd["bd_rate"]``
    (percent; ``n/a`` where it is null). ``title`` replaces the default, which names the
    video, size, frames, GOP and model where ``rd`` gives them.
    """
    figure = Figure(figsize=(11.0, 4.5), layout="constrained")
    axes = figure.subplots(1, 2)
    bd_rate = rd.get("bd_rate") or {}
    for name, points in rd["codecs"].items():
        ordered = sorted(points, key=lambda p: p["bpp"])
        bpp = [p["bpp"] for p in ordered]
        for ax, (metric, _, _) in zip(axes, _PANELS, strict=True):
            label = str(name)
            entry = bd_rate.get(name)
            if isinstance(entry, Mapping):
                value = entry.get(metric)
                label += f" (DHVC BD-rate {value:+.1f}%)" if value is not None else " (BD-rate n/a)"
            ax.plot(bpp, [p[metric] for p in ordered], _STYLES.get(name, ".-"), label=label)
    for ax, (_, name, unit) in zip(axes, _PANELS, strict=True):
        ax.set_title(f"{name} vs rate")
        ax.set_xlabel("rate (bits per pixel)")
        ax.set_ylabel(unit)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", loc="lower right")
    figure.suptitle(title if title is not None else _default_title(rd))
    return figure


def _default_title(rd: Mapping[str, Any]) -> str:
    average = rd.get("set_average")
    video = str(rd.get("video", "video"))
    if average is None:
        where = Path(video).name
    else:
        where = f"set average of {average['sources']} sources"
        if len(video) <= 40:
            where = f"{video}: {where}"
    if "width" in rd and "height" in rd:
        size = f"{rd['width']}x{rd['height']}"
        where = f"{where} {size}" if average is None else f"{where}, {size}"
    parts = [f"Rate-distortion on {where}"]
    if "frames" in rd:
        parts.append(f"{rd['frames']} frames")
    if rd.get("intra"):
        parts.append("intra only")
    elif "gop" in rd:
        parts.append(f"GOP {rd['gop']}")
    model = rd.get("model")
    model_id = model.get("model_id") if isinstance(model, Mapping) else model
    if model_id:
        parts.append(f"model {model_id}")
    return ", ".join(parts)
