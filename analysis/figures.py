"""Figures of the paper reproduced from trace tables. These functions only draw.

Each takes tables made by :mod:`analysis.metrics` and returns
a :class:`matplotlib.figure.Figure` built with the object-oriented API (no pyplot state), with
titled axes, units on both axes and a legend. A :class:`analysis.metrics.RunDescription` given
as ``description`` becomes a second title line saying what was measured (clip, size, frames,
lambda, seeds). :func:`save_figure` writes a figure as .png and .pdf without the creation date
or software version, so that the same figure gives the same bytes on every run.
``plot_rd``, which draws an rd.json, is ``codec.rd.plot.plot_rd``, re-exported here.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.metrics import RunDescription
from netsim.codecs.registry import builtin_codec_kinds

FRAME_AXIS = "frame index (frames)"
PSNR_AXIS = "PSNR (dB)"
BPP_AXIS = "rate (bits per pixel)"
# Markers are black-edged and white or yellow inside, so they stand out on lines of any of
# the default colours, and drawn above every line.
LOSS_STYLE: dict[str, Any] = {
    "marker": "X",
    "markerfacecolor": "white",
    "markeredgecolor": "black",
    "markeredgewidth": 1.0,
    "linestyle": "none",
    "markersize": 7,
    "zorder": 4,
}
RESYNC_STYLE: dict[str, Any] = {
    "marker": "^",
    "markerfacecolor": "gold",
    "markeredgecolor": "black",
    "markeredgewidth": 1.0,
    "linestyle": "none",
    "markersize": 7,
    "zorder": 5,
}
REFERENCE_STYLE: dict[str, Any] = {"color": "0.55", "linestyle": "--", "linewidth": 1.2}
RECEIVED_STYLE: dict[str, Any] = {"linestyle": ":", "linewidth": 1.8}
FORMATS: tuple[str, ...] = ("png", "pdf")
METADATA: dict[str, dict[str, Any]] = {
    "png": {"Software": None},
    "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
}
"""What :func:`save_figure` leaves out of each format's metadata: dates and versions."""


def describe(description: RunDescription) -> str:
    """One line saying what was measured: ``bikes, 448x256 px, 32 frames, lambda 1024,
    seed 1`` (fields with several values list them; empty fields are left out)."""
    parts = [", ".join(Path(str(clip)).name for clip in description.clips)]
    if description.sizes_px:
        parts.append(", ".join(f"{w}x{h}" for w, h in description.sizes_px) + " px")
    if description.frames:
        word = "frame" if description.frames == (1,) else "frames"
        parts.append(", ".join(str(f) for f in description.frames) + f" {word}")
    lambdas = description.lambdas
    if len(lambdas) == 1:
        parts.append(f"lambda {lambdas[0]:g}")
    elif lambdas:
        parts.append(f"lambda {lambdas[0]:g}-{lambdas[-1]:g} ({len(lambdas)} values)")
    seeds = description.seeds
    if seeds:
        word = "seed" if len(seeds) == 1 else "seeds"
        parts.append(f"{word} " + ", ".join(str(s) for s in seeds))
    return ", ".join(part for part in parts if part)


def _title(title: str, description: RunDescription | None) -> str:
    return title if description is None else f"{title}\n{describe(description)}"


def save_figure(figure: Figure, out_dir: Path, stem: str, dpi: int = 150) -> list[Path]:
    """Write ``figure`` as ``out_dir/stem.png`` and ``.pdf``, each atomically
    (``codec.io.atomic.atomic_file``) and without dates or versions (:data:`METADATA`), so the
    same figure gives the same bytes; a file that already holds those bytes is not rewritten.
    Returns the paths."""
    from codec.io.atomic import write_bytes_atomic  # imported here: the codec package loads torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for extension in FORMATS:
        path = out_dir / f"{stem}.{extension}"
        buffer = io.BytesIO()
        figure.savefig(
            buffer, format=extension, dpi=dpi, bbox_inches="tight", metadata=METADATA[extension]
        )
        data = buffer.getvalue()
        if not (path.is_file() and path.read_bytes() == data):  # same bytes: leave the file be
            write_bytes_atomic(path, data)
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


def _scale_range(scales: Sequence[int]) -> str:
    scales = list(scales)
    if len(scales) == 1:
        return f"scale {scales[0]}"
    if scales == list(range(scales[0], scales[-1] + 1)):
        return f"scales {scales[0]}-{scales[-1]}"
    return "scales " + ", ".join(str(k) for k in scales)


def loss_panel_title(label: str, loss: Mapping[str, Any] | None) -> str:
    """A loss-resilience panel title: the run's label, then the measured loss rates of one
    :func:`analysis.metrics.loss_table` row (of all packets; of the exposed packets, with the
    loss window) when given."""
    if loss is None:
        return label
    lines = [label, f"lost: {loss['loss_rate']:.1%} of all packets"]
    exposed = loss.get("exposed_loss_rate")
    if isinstance(exposed, int | float) and not math.isnan(exposed):
        window = (
            f"{_scale_range(loss['exposed_scales'])}, "
            f"frames {loss['first_frame']}-{loss['last_frame']}"
        )
        lines.append(f"{exposed:.1%} of exposed ({window})")
    return "\n".join(lines)


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
    losses: pd.DataFrame | None = None,
    description: RunDescription | None = None,
) -> Figure:
    """Paper Fig. 22: one column per run (``label``), PSNR on top and rate below, against the
    frame index, frames with packet loss and re-sync frames marked. The rate panels show the
    rate sent (solid) and the rate received in time (dotted, ``bpp_received``).

    ``series`` is :func:`analysis.metrics.frame_series` of the loss runs; ``reference`` the
    annotated frames of a loss-free run drawn dashed in every panel; ``losses`` the
    :func:`analysis.metrics.loss_table` of the runs, whose measured loss rates head each
    column (:func:`loss_panel_title`).
    """
    groups = _groups(series)
    with_losses = losses is not None
    figure = Figure(
        figsize=(3.6 * len(groups) + 1.0, 6.8 if with_losses else 6.2), layout="constrained"
    )
    grid = figure.subplots(2, len(groups), sharex=True, sharey="row", squeeze=False)
    lines = []
    for column, (label, part) in enumerate(groups):
        color = f"C{column}"
        _frame_panel(grid[0, column], part, "psnr", label, color, reference)
        _frame_panel(grid[1, column], part, "bpp", label, color, reference)
        rate = grid[1, column]
        rate.plot(part["frame"], part["bpp_received"], color=color, **RECEIVED_STYLE)
        rate.fill_between(
            part["frame"], part["bpp_received"], part["bpp"], color=color, alpha=0.15, linewidth=0
        )
        row = losses.loc[label].to_dict() if with_losses and label in losses.index else None
        grid[0, column].set_title(loss_panel_title(label, row), fontsize="medium")
        grid[1, column].set_xlabel(FRAME_AXIS)
        lines.append(Line2D([], [], color=color, linewidth=1.6, label=label))
    grid[0, 0].set_ylabel(PSNR_AXIS)
    grid[1, 0].set_ylabel(BPP_AXIS)
    rates = [
        Line2D([], [], color="black", linewidth=1.6, label="rate sent"),
        Line2D([], [], color="black", label="rate received in time", **RECEIVED_STYLE),
    ]
    handles = lines + rates + _marker_handles(reference_label if reference is not None else None)
    figure.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 5))
    figure.suptitle(_title(title, description))
    return figure


def _overlaid(
    series: pd.DataFrame,
    values: Sequence[tuple[str, str]],
    title: str,
    legend_title: str,
    reference: pd.DataFrame | None,
    reference_label: str,
    markers: bool,
    description: RunDescription | None = None,
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
    figure.suptitle(_title(title, description))
    return figure


def plot_progressive(
    series: pd.DataFrame,
    title: str = "Progressive decoding: per-frame quality and rate decoding scales 1..m",
    description: RunDescription | None = None,
) -> Figure:
    """Paper Fig. 11: PSNR and rate per frame, one line per number of decoded scales
    (``label``); ``series`` from :func:`analysis.metrics.frame_series`."""
    values = [("psnr", PSNR_AXIS), ("bpp", BPP_AXIS)]
    return _overlaid(
        series, values, title, "scales decoded", None, "", markers=False, description=description
    )


def plot_echo_delay(
    series: pd.DataFrame,
    reference: pd.DataFrame | None = None,
    reference_label: str = "no loss",
    title: str = "Quality after a packet loss for several echo delays",
    description: RunDescription | None = None,
) -> Figure:
    """Paper Fig. 13: PSNR and rate per frame after a loss, one line per echo delay
    (``label``), the lossy frame and the re-sync frames marked; ``reference`` is drawn dashed."""
    values = [("psnr", PSNR_AXIS), ("bpp", BPP_AXIS)]
    return _overlaid(
        series, values, title, "echo delay", reference, reference_label, True, description
    )


def plot_rate_share(
    share: pd.DataFrame,
    title: str = "Share of each scale in the frame rate, intra vs inter frames",
    description: RunDescription | None = None,
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
    axes.set_title(_title(title, description))
    return figure


def __getattr__(name: str) -> Any:
    """``plot_rd`` is the project's one RD plot, ``codec.rd.plot.plot_rd`` (it draws an rd.json
    as ``codec.rd.results.read_rd`` returns it); it is re-exported here on first use, so that
    importing this module does not load the codec package (and torch)."""
    if name == "plot_rd":
        from codec.rd.plot import plot_rd

        return plot_rd
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


LOSS_RATE_AXES: dict[str, str] = {
    "packet_loss_rate": "packets lost, measured (% of all packets sent)",
    "exposed_loss_rate": "packets lost, measured (% of packets exposed to loss)",
}
"""x-axis labels of :func:`plot_psnr_vs_loss` for the measured loss-rate columns."""


def plot_psnr_vs_loss(
    intervals: pd.DataFrame,
    loss: str = "packet_loss_rate",
    set_column: str | None = None,
    line_columns: Sequence[str] = (),
    psnr: str = "mean_psnr_db",
    confidence: float = 0.95,
    title: str | None = None,
    description: RunDescription | None = None,
) -> Figure:
    """Mean PSNR against the measured loss rate, one point per grid point, with confidence
    intervals over seeds in both directions.

    ``intervals`` is :func:`analysis.metrics.seed_intervals` of a sweep table over ``psnr``
    and ``loss`` (``<value>_mean``, ``_ci_low``, ``_ci_high``, ``seeds``); ``set_column`` the
    grid column of the loss rate the scenarios set, written beside each point; one line per
    combination of ``line_columns``. Points of a single seed have no error bars.
    """
    figure = Figure(figsize=(7.2, 5.0), layout="constrained")
    axes = figure.subplots()
    groups = (
        [(str(key), part) for key, part in intervals.groupby(list(line_columns), sort=True)]
        if line_columns
        else [("", intervals)]
    )
    for index, (key, part) in enumerate(groups):
        part = part.sort_values(f"{loss}_mean")
        x = part[f"{loss}_mean"] * 100.0
        y = part[f"{psnr}_mean"]
        xerr = [x - part[f"{loss}_ci_low"] * 100.0, part[f"{loss}_ci_high"] * 100.0 - x]
        yerr = [y - part[f"{psnr}_ci_low"], part[f"{psnr}_ci_high"] - y]
        seeds = sorted(set(part["seeds"]))
        label = f"mean over {'/'.join(str(n) for n in seeds)} seeds, {confidence:.0%} t-interval"
        if key:
            label = f"{', '.join(line_columns)} = {key}: {label}"
        axes.errorbar(
            x, y, xerr=xerr, yerr=yerr, marker="o", color=f"C{index}", capsize=3, label=label
        )
        if set_column is not None:
            for set_rate, x_at, y_at in zip(part[set_column], x, y, strict=True):
                axes.annotate(
                    f"set {set_rate:.0%}",
                    (x_at, y_at),
                    textcoords="offset points",
                    xytext=(6, 6),
                    fontsize="small",
                )
    axes.set_xlabel(LOSS_RATE_AXES.get(loss, f"{loss} (%)"))
    axes.set_ylabel(f"mean {PSNR_AXIS}")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small", loc="best")
    if title is None:
        title = "Mean PSNR against packet loss"
    figure.suptitle(_title(title, description))
    return figure


CODEC_COLOURS: dict[str, str] = {
    kind: f"C{index}" for index, kind in enumerate(builtin_codec_kinds())
}
"""One colour per codec in the comparison figures (issue 13), in the registry's order."""


def codec_colour(codec: str) -> str:
    """The colour of ``codec`` in the comparison figures: the registry's, or for a variant row
    such as ``dhvc_best`` one of the colours after them, fixed by its name."""
    if codec in CODEC_COLOURS:
        return CODEC_COLOURS[codec]
    return f"C{len(CODEC_COLOURS) + zlib.crc32(codec.encode()) % (10 - len(CODEC_COLOURS))}"


def plot_codec_psnr_vs_loss(
    comparison: pd.DataFrame,
    loss_column: str,
    confidence: float = 0.95,
    description: RunDescription | None = None,
) -> Figure:
    """Mean PSNR against the loss rate the scenarios set, one line per codec, with
    ``confidence`` t-intervals over seeds (``analysis.metrics.codec_comparison``)."""
    figure = Figure(figsize=(7.2, 5.0), layout="constrained")
    axes = figure.subplots()
    for codec, part in comparison.groupby("codec", sort=False):
        part = part.sort_values(loss_column)
        x = part[loss_column] * 100.0
        y = part["mean_psnr_db_mean"]
        yerr = [y - part["mean_psnr_db_ci_low"], part["mean_psnr_db_ci_high"] - y]
        seeds = "/".join(str(n) for n in sorted(set(part["seeds"])))
        axes.errorbar(
            x,
            y,
            yerr=yerr,
            marker="o",
            capsize=3,
            color=codec_colour(str(codec)),
            label=f"{codec} (mean over {seeds} seeds, {confidence:.0%} t-interval)",
        )
    axes.set_xlabel("packet loss rate set, Bernoulli, every packet exposed (%)")
    axes.set_ylabel(f"mean {PSNR_AXIS}")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small", loc="best")
    figure.suptitle(_title("DHVC, x264 and x265 under the same loss", description))
    return figure


def plot_codec_traces(
    series: pd.DataFrame, title: str, description: RunDescription | None = None
) -> Figure:
    """Per-frame PSNR of one loss case, one panel per codec side by side (shared PSNR axis):
    ``series`` has columns ``codec``, ``frame``, ``psnr``, ``frozen`` and ``frame_type``;
    frozen frames are marked with an X, I frames sent in answer to feedback (R) with a
    triangle."""
    codecs = list(dict.fromkeys(series["codec"]))
    figure = Figure(figsize=(4.0 * len(codecs), 3.8), layout="constrained")
    panels = figure.subplots(1, len(codecs), sharey=True, squeeze=False)[0]
    for axes, codec in zip(panels, codecs, strict=True):
        part = series[series["codec"] == codec].sort_values("frame")
        axes.plot(part["frame"], part["psnr"], color=codec_colour(str(codec)), linewidth=1.4)
        frozen = part[part["frozen"].astype(bool)]
        axes.plot(frozen["frame"], frozen["psnr"], **LOSS_STYLE)
        resync = part[part["frame_type"].astype(str) == "R"]
        axes.plot(resync["frame"], resync["psnr"], **RESYNC_STYLE)
        axes.set_title(codec)
        axes.set_xlabel(FRAME_AXIS)
        axes.grid(True, alpha=0.3)
    panels[0].set_ylabel(PSNR_AXIS)
    handles = [
        Line2D([], [], label="frozen (nothing decodable)", **LOSS_STYLE),
        Line2D([], [], label="re-sync / IDR answering feedback", **RESYNC_STYLE),
    ]
    panels[-1].legend(handles=handles, fontsize="small", loc="lower right")
    figure.suptitle(_title(title, description))
    return figure


def plot_codec_unusable(
    comparison: pd.DataFrame,
    loss_column: str,
    threshold_db: float,
    description: RunDescription | None = None,
) -> Figure:
    """Two panels against the loss rate set, one line per codec, means over seeds: the share
    of frames frozen, and the share unusable (frozen or below ``threshold_db``)."""
    figure = Figure(figsize=(10.0, 4.2), layout="constrained")
    panels = figure.subplots(1, 2, sharey=True)
    for axes, value, name in (
        (panels[0], "frozen_fraction", "frozen frames (nothing decodable)"),
        (panels[1], "unusable_fraction", f"frozen or below {threshold_db:g} dB"),
    ):
        for codec, part in comparison.groupby("codec", sort=False):
            part = part.sort_values(loss_column)
            axes.plot(
                part[loss_column] * 100.0,
                part[f"{value}_mean"] * 100.0,
                marker="o",
                color=codec_colour(str(codec)),
                label=str(codec),
            )
        axes.set_title(name)
        axes.set_xlabel("packet loss rate set (%)")
        axes.grid(True, alpha=0.3)
    panels[0].set_ylabel("share of frames (%)")
    panels[0].legend(fontsize="small", loc="best")
    figure.suptitle(_title("Frames the viewer cannot use", description))
    return figure


def plot_damage_budget(budgets: Mapping[str, pd.DataFrame], title: str = "") -> Figure:
    """Where the decibels go (issue 18): per run (``budgets``: label -> ``analysis.damage
    .damage_budget`` table) a bar of the clean mean PSNR and, stacked down from its top, what
    each frame state costs; the bar's bottom is the run's mean PSNR."""
    figure = Figure(figsize=(1.6 + 1.8 * max(1, len(budgets)), 4.5), layout="constrained")
    axes = figure.subplots()
    causes: list[str] = []
    for budget in budgets.values():
        causes += [c for c in budget["cause"] if c != "clean" and c not in causes]
    colours = {cause: f"C{i}" for i, cause in enumerate(causes)}
    for x, budget in enumerate(budgets.values()):
        clean = float(budget.loc[budget["cause"] == "clean", "db"].iloc[0])
        axes.bar(x, clean, color="0.85", edgecolor="0.5", width=0.6)
        top = clean
        for _, row in budget[budget["cause"] != "clean"].iterrows():
            axes.bar(x, -row["db"], bottom=top, color=colours[row["cause"]], width=0.6)
            top -= row["db"]
        axes.text(x, top, f"{top:.1f}", ha="center", va="top", fontsize="small")
        axes.text(x, clean, f"{clean:.1f}", ha="center", va="bottom", fontsize="small")
    axes.set_xticks(range(len(budgets)), list(budgets), fontsize="small")
    axes.set_ylabel(PSNR_AXIS)
    handles = [Line2D([], [], color=colours[c], lw=8) for c in causes]
    axes.legend(handles, [f"cost: {c}" for c in causes], fontsize="small", loc="lower right")
    axes.grid(True, axis="y", alpha=0.3)
    figure.suptitle(title or "Where the decibels go: clean mean PSNR and what each state costs")
    return figure
