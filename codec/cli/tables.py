"""Rich tables that ``dhvc eval`` and ``dhvc train`` print. They only lay out values already
computed (an ``evaluate`` result, a training log row); the CLI prints them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

from codec.rd.anchors import knob

_METRICS = (("psnr", "PSNR"), ("ms_ssim", "MS-SSIM"))


def _bd_cell(entry: Mapping[str, Any], metric: str) -> str:
    """``-12.3%``, ``n/a: <reason>``, or for a mean of sources ``+4.0% (2 of 3 sources)``."""
    value = entry.get(metric)
    if value is None:
        reason = (entry.get("reasons") or {}).get(metric)
        text = f"n/a: {reason}" if reason else "n/a"
    else:
        text = f"{value:+.1f}%"
    left_out = (entry.get("left_out") or {}).get(metric)
    if left_out:
        used = entry["sources"][metric]
        text += f" ({used} of {used + len(left_out)} sources)"
    return text


def bd_rate_table(rd: Mapping[str, Any]) -> Table:
    """DHVC's BD-rate against each anchor, per source and, for a set, of the averaged curves
    and as the mean of the per-source values (negative: DHVC needs fewer bits)."""
    table = Table(title="BD-rate of DHVC against each anchor (negative: fewer bits)")
    table.add_column("source", overflow="fold")
    table.add_column("anchor")
    for _, name in _METRICS:
        table.add_column(name, overflow="fold")
    rows: list[tuple[str, Mapping[str, Any]]] = [
        (str(entry["video"]), entry["bd_rate"]) for entry in rd.get("sources", [rd])
    ]
    average = rd.get("set_average")
    if average is not None:
        count = average["sources"]
        rows.append((f"set average of {count} sources (averaged curves)", average["bd_rate"]))
        rows.append(("mean of per-source BD-rates", average["bd_rate_mean_of_sources"]))
    for source, by_anchor in rows:
        for anchor, entry in by_anchor.items():
            table.add_row(source, anchor, *(_bd_cell(entry, metric) for metric, _ in _METRICS))
    return table


def rate_points_table(rd: Mapping[str, Any]) -> Table:
    """Every rate point of ``rd["codecs"]`` (the set average for several sources)."""
    what = "set average" if rd.get("set_average") is not None else str(rd.get("video", ""))
    table = Table(title=f"Rate points ({what})")
    table.add_column("codec")
    table.add_column("setting")
    for name in ("bpp", "PSNR (dB)", "MS-SSIM"):
        table.add_column(name, justify="right")
    for codec, points in rd["codecs"].items():
        for point in sorted(points, key=lambda p: p["bpp"]):
            setting = knob(codec)
            table.add_row(
                codec,
                f"{setting} {point[setting]:g}",
                f"{point['bpp']:.4f}",
                f"{point['psnr']:.2f}",
                f"{point['ms_ssim']:.4f}",
            )
    return table


_TRAIN_COLUMNS: Sequence[tuple[str, str, str]] = (
    ("step", "step", "d"),
    ("frames", "frames", "d"),
    ("loss", "loss", ".4f"),
    ("bpp", "bpp", ".4f"),
    ("mse", "MSE", ".6f"),
    ("psnr", "PSNR (dB)", ".2f"),
    ("grad_norm", "grad norm", ".3g"),
    ("skipped", "skipped", "d"),
    ("steps_per_s", "steps/s", ".2f"),
    ("lr", "lr", ".3g"),
)


def train_table(row: Mapping[str, Any]) -> Table:
    """One log window of a training run (a ``TrainState.history`` row: means over the
    window's steps); a column the row lacks (older logs) is left empty."""
    table = Table(title="dhvc train: last log window (means over its steps)")
    for _, name, _ in _TRAIN_COLUMNS:
        table.add_column(name, justify="right")
    table.add_row(
        *(
            format(row[key], spec) if row.get(key) is not None else ""
            for key, _, spec in _TRAIN_COLUMNS
        )
    )
    return table
