"""Figures of the paper reproduced from trace tables. These functions only draw.

Each takes tables made by :mod:`analysis.metrics` (or :func:`analysis.io.load_rd`) and returns
a :class:`matplotlib.figure.Figure` built with the object-oriented API (no pyplot state), with
titled axes, units on both axes and a legend. :func:`save_figure` writes it as .png and .pdf.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

FRAME_AXIS = "frame index (frames)"
PSNR_AXIS = "PSNR (dB)"
BPP_AXIS = "rate (bits per pixel)"
LOSS_STYLE: dict[str, Any] = {
    "marker": "x",
    "color": "tab:red",
    "linestyle": "none",
    "markersize": 6,
    "zorder": 4,
}
RESYNC_STYLE: dict[str, Any] = {
    "marker": "^",
    "color": "tab:green",
    "markerfacecolor": "none",
    "linestyle": "none",
    "markersize": 7,
    "zorder": 5,
}
REFERENCE_STYLE: dict[str, Any] = {"color": "0.55", "linestyle": "--", "linewidth": 1.2}
FORMATS: tuple[str, ...] = ("png", "pdf")


def save_figure(figure: Figure, out_dir: Path, stem: str, dpi: int = 150) -> list[Path]:
    """Write ``figure`` as ``out_dir/stem.png`` and ``.pdf``; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for extension in FORMATS:
        path = out_dir / f"{stem}.{extension}"
        figure.savefig(path, dpi=dpi, bbox_inches="tight")
        paths.append(path)
    return paths


def _groups(series: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    return [(str(label), part) for label, part in series.groupby("label", observed=True, sort=True)]


def _marker_handles(reference_label: str | None) -> list[Line2D]:
    handles = [
        Line2D([], [], label="frame with packet loss", **LOSS_STYLE),
        Line2D([], [], label="re-sync frame", **RESYNC_STYLE),
    ]
    if reference_label is not None:
        handles.insert(0, Line2D([], [], label=reference_label, **REFERENCE_STYLE))
    return handles


def _frame_panel(
    axes: Axes,
    part: pd.DataFrame,
    value: str,
    label: str,
    color: Any,
    reference: pd.DataFrame | None,
) -> None:
    if reference is not None:
        axes.plot(reference["frame"], reference[value], **REFERENCE_STYLE)
    axes.plot(part["frame"], part[value], color=color, linewidth=1.6, label=label)
    axes.plot(part["frame"], part[f"{value}_at_loss"], **LOSS_STYLE)
    axes.plot(part["frame"], part[f"{value}_at_resync"], **RESYNC_STYLE)
    axes.grid(True, alpha=0.3)


def plot_loss_resilience(
    series: pd.DataFrame,
    reference: pd.DataFrame | None = None,
    reference_label: str = "no loss",
    title: str = "Loss resilience: per-frame quality and rate under random packet loss",
) -> Figure:
    """Paper Fig. 22: one column per run (``label``), PSNR on top and rate below, against the
    frame index, frames with packet loss and re-sync frames marked.

    ``series`` is :func:`analysis.metrics.frame_series` of the loss runs; ``reference`` the
    annotated frames of a loss-free run drawn dashed in every panel.
    """
    groups = _groups(series)
    figure = Figure(figsize=(3.6 * len(groups) + 1.0, 6.2), layout="constrained")
    grid = figure.subplots(2, len(groups), sharex=True, sharey="row", squeeze=False)
    lines = []
    for column, (label, part) in enumerate(groups):
        color = f"C{column}"
        _frame_panel(grid[0, column], part, "psnr", label, color, reference)
        _frame_panel(grid[1, column], part, "bpp", label, color, reference)
        grid[0, column].set_title(label)
        grid[1, column].set_xlabel(FRAME_AXIS)
        lines.append(Line2D([], [], color=color, linewidth=1.6, label=label))
    grid[0, 0].set_ylabel(PSNR_AXIS)
    grid[1, 0].set_ylabel(BPP_AXIS)
    handles = lines + _marker_handles(reference_label if reference is not None else None)
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 7))
    figure.suptitle(title)
    return figure


def _overlaid(
    series: pd.DataFrame,
    values: Sequence[tuple[str, str]],
    title: str,
    legend_title: str,
    reference: pd.DataFrame | None,
    reference_label: str,
    markers: bool,
) -> Figure:
    figure = Figure(figsize=(8.0, 3.0 * len(values) + 0.6), layout="constrained")
    grid = figure.subplots(len(values), 1, sharex=True, squeeze=False)[:, 0]
    for row, (value, axis_label) in enumerate(values):
        axes = grid[row]
        if reference is not None:
            axes.plot(
                reference["frame"], reference[value], label=reference_label, **REFERENCE_STYLE
            )
        groups = _groups(series)
        for index, (label, part) in enumerate(groups):
            # earlier lines wider, so that identical stretches of several runs stay visible
            width = 1.4 + 1.0 * (len(groups) - 1 - index)
            axes.plot(part["frame"], part[value], color=f"C{index}", linewidth=width, label=label)
            if markers:
                axes.plot(part["frame"], part[f"{value}_at_loss"], **LOSS_STYLE)
                axes.plot(part["frame"], part[f"{value}_at_resync"], **RESYNC_STYLE)
        axes.set_ylabel(axis_label)
        axes.grid(True, alpha=0.3)
    grid[-1].set_xlabel(FRAME_AXIS)
    handles, _ = grid[0].get_legend_handles_labels()
    if markers:
        handles += _marker_handles(None)
    grid[0].legend(handles=handles, title=legend_title, fontsize="small", loc="best")
    figure.suptitle(title)
    return figure


def plot_progressive(
    series: pd.DataFrame,
    title: str = "Progressive decoding: per-frame quality and rate decoding scales 1..m",
) -> Figure:
    """Paper Fig. 11: PSNR and rate per frame, one line per number of decoded scales
    (``label``); ``series`` from :func:`analysis.metrics.frame_series`."""
    values = [("psnr", PSNR_AXIS), ("bpp", BPP_AXIS)]
    return _overlaid(series, values, title, "scales decoded", None, "", markers=False)


def plot_echo_delay(
    series: pd.DataFrame,
    reference: pd.DataFrame | None = None,
    reference_label: str = "no loss",
    title: str = "Quality after a packet loss for several echo delays",
) -> Figure:
    """Paper Fig. 13: PSNR and rate per frame after a loss, one line per echo delay
    (``label``), the lossy frame and the re-sync frames marked; ``reference`` is drawn dashed."""
    values = [("psnr", PSNR_AXIS), ("bpp", BPP_AXIS)]
    return _overlaid(series, values, title, "echo delay", reference, reference_label, True)


def plot_rate_share(
    share: pd.DataFrame,
    title: str = "Share of each scale in the frame rate, intra vs inter frames",
) -> Figure:
    """Paper Fig. 21: stacked bars of each scale's share of a frame's bits, one bar per coding
    (intra, inter); ``share`` from :func:`analysis.metrics.rate_share_by_scale`."""
    figure = Figure(figsize=(6.4, 4.6), layout="constrained")
    axes = figure.subplots()
    codings = list(dict.fromkeys(share["coding"]))
    positions = {coding: index for index, coding in enumerate(codings)}
    for scale, part in share.groupby("scale", sort=True):
        x = [positions[c] for c in part["coding"]]
        bars = axes.bar(
            x,
            part["share"] * 100.0,
            bottom=part["share_start"] * 100.0,
            width=0.55,
            color=f"C{int(scale) - 1}",
            edgecolor="white",
            label=f"scale {scale}",
        )
        labels = [f"{v * 100.0:.0f}%" if v >= 0.04 else "" for v in part["share"]]
        axes.bar_label(bars, labels=labels, label_type="center", fontsize="small", color="white")
    axes.set_xticks(range(len(codings)), [f"{c} frames" for c in codings])
    axes.set_xlabel("frame coding")
    axes.set_ylabel("share of frame bits (%)")
    axes.set_ylim(0, 100)
    handles, labels = axes.get_legend_handles_labels()
    axes.legend(
        handles[::-1],
        labels[::-1],
        title="scale (1 = smallest)",
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
    )
    axes.set_title(title)
    return figure


def plot_rd(
    points: pd.DataFrame,
    info: Mapping[str, Any],
    title: str | None = None,
) -> Figure:
    """Rate-distortion curves from ``dhvc eval``: PSNR and MS-SSIM against bpp, one line per
    codec; ``points, info`` from :func:`analysis.io.load_rd`. BD-rates found in
    ``info["bd_rate"]`` (percent, relative to each anchor) are quoted in the legend."""
    figure = Figure(figsize=(11.0, 4.4), layout="constrained")
    grid = figure.subplots(1, 2, squeeze=False)[0]
    bd_rate = info.get("bd_rate") or {}
    for index, (codec, part) in enumerate(points.groupby("codec", sort=False)):
        for axes, value in zip(grid, ("psnr", "ms_ssim"), strict=True):
            label = str(codec)
            quoted = bd_rate.get(codec, {}) if isinstance(bd_rate, Mapping) else {}
            if isinstance(quoted, Mapping) and isinstance(quoted.get(value), int | float):
                label += f" (DHVC BD-rate vs {codec}: {quoted[value]:+.1f}%)"
            axes.plot(part["bpp"], part[value], marker="o", color=f"C{index}", label=label)
    grid[0].set_ylabel(PSNR_AXIS)
    grid[1].set_ylabel("MS-SSIM (0-1, higher is better)")
    for axes, name in zip(grid, ("PSNR", "MS-SSIM"), strict=True):
        axes.set_xlabel(BPP_AXIS)
        axes.set_title(f"{name} vs rate")
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small", loc="lower right")
    if title is None:
        video = info.get("video", "video")
        size = f"{info['width']}x{info['height']}" if "width" in info and "height" in info else ""
        title = f"Rate-distortion on {Path(str(video)).name} {size}".strip()
    figure.suptitle(title)
    return figure
