"""Compare the DHVC curves of two ``dhvc eval`` results (e.g. two architectures trained with the
same budget): BD-PSNR (dB at matched bpp, pchip), BD-rate, the PSNR gain at each of B's rates,
and one figure with both curves.

    python benchmarks/compare_rd.py A/rd.json B/rd.json --labels small,base --out cmp.png \
        [--logs A/state.csv,B/state.csv]

``--logs`` adds a panel with each run's training loss against its wall-clock minutes (from the
``dhvc train`` logs), which is what an equal-budget comparison holds fixed.

With several sources the set-average curve of each file is compared (the top-level ``codecs``
of a set result hold it).
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from scipy.interpolate import PchipInterpolator

from codec.rd.eval import bd_quality, bd_rate


def _curve(rd: dict) -> tuple[np.ndarray, np.ndarray]:
    points = sorted(rd["codecs"]["dhvc"], key=lambda p: p["bpp"])
    return np.array([p["bpp"] for p in points]), np.array([p["psnr"] for p in points])


def compare(rd_a: dict, rd_b: dict) -> dict:
    """B against A: BD-PSNR and BD-rate (PSNR), and B's PSNR gain over A at each B rate that
    lies inside A's rate range (A interpolated with pchip in log bpp)."""
    a, b = rd_a["codecs"]["dhvc"], rd_b["codecs"]["dhvc"]
    bd_psnr, psnr_reason = bd_quality(a, b, "psnr")
    rate, rate_reason = bd_rate(a, b, "psnr")
    rate_a, psnr_a = _curve(rd_a)
    rate_b, psnr_b = _curve(rd_b)
    a_at = PchipInterpolator(np.log(rate_a), psnr_a, extrapolate=False)
    gains = [
        {"bpp": float(r), "psnr_b": float(q), "psnr_a": float(a_at(np.log(r)))}
        for r, q in zip(rate_b, psnr_b, strict=True)
        if rate_a[0] <= r <= rate_a[-1]
    ]
    for g in gains:
        g["gain_db"] = g["psnr_b"] - g["psnr_a"]
    return {
        "bd_psnr_db": bd_psnr,
        "bd_psnr_undefined_because": psnr_reason,
        "bd_rate_percent": rate,
        "bd_rate_undefined_because": rate_reason,
        "gain_at_matched_bpp": gains,
        "bpp_overlap": [float(max(rate_a[0], rate_b[0])), float(min(rate_a[-1], rate_b[-1]))],
    }


def _loss_by_minute(log: Path) -> tuple[np.ndarray, np.ndarray]:
    """(wall minutes, window-mean loss) of a ``dhvc train`` CSV log."""
    with log.open() as f:
        rows = list(csv.DictReader(f))
    steps = np.array([float(r["step"]) for r in rows])
    rates = np.array([float(r["steps_per_s"]) for r in rows])
    seconds = np.cumsum(np.diff(np.concatenate([[0.0], steps])) / rates)
    return seconds / 60.0, np.array([float(r["loss"]) for r in rows])


def plot(
    rd_a: dict,
    rd_b: dict,
    labels: tuple[str, str],
    title: str,
    path: Path,
    logs: tuple[Path, Path] | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1,
        2 if logs else 1,
        figsize=(11 if logs else 6, 4.2),
        constrained_layout=True,
        squeeze=False,
    )
    ax = axes[0, 0]
    for rd, label, marker in ((rd_a, labels[0], "s"), (rd_b, labels[1], "o")):
        rate, psnr = _curve(rd)
        ax.plot(rate, psnr, marker=marker, label=f"DHVC {label}")
    for name in ("x264", "x265"):
        points = sorted(rd_b["codecs"].get(name, []), key=lambda p: p["bpp"])
        if points:
            ax.plot(
                [p["bpp"] for p in points],
                [p["psnr"] for p in points],
                ls="--",
                marker=".",
                label=name,
            )
    ax.set_xscale("log")
    ax.set_xlabel("rate (bpp)")
    ax.set_ylabel("RGB PSNR (dB)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if logs:
        ax = axes[0, 1]
        for log, label in zip(logs, labels, strict=True):
            minutes, loss = _loss_by_minute(log)
            ax.plot(minutes, loss, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("training wall time (min)")
        ax.set_ylabel("training loss (bpp + lambda MSE), window means")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--labels", default="A,B")
    parser.add_argument("--title", default="")
    parser.add_argument("--out", type=Path, default=Path("compare_rd.png"))
    parser.add_argument("--logs", default=None, help="A.csv,B.csv: the runs' training logs")
    args = parser.parse_args()
    rd_a, rd_b = (json.loads(p.read_text()) for p in (args.a, args.b))
    labels = tuple(args.labels.split(",", 1))
    result = compare(rd_a, rd_b)
    print(json.dumps(result, indent=2))
    print(
        f"{labels[1]} vs {labels[0]}: BD-PSNR {result['bd_psnr_db']:+.2f} dB, "
        f"BD-rate {result['bd_rate_percent']}"
    )
    logs = tuple(Path(p) for p in args.logs.split(",", 1)) if args.logs else None
    plot(rd_a, rd_b, labels, args.title, args.out, logs)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
