"""The curves of one ``dhvc train`` run from its CSV log (``state.csv`` beside the state file):
training PSNR and bits per pixel against the step, one colour per phase (intra, 3-frame and
7-frame clips), steps the spike guard refused marked, and the step rate.

    python benchmarks/plot_training_log.py runs/campaign/state.csv --out docs/campaign_curve.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

PHASES = {
    1: ("intra", "tab:blue"),
    3: ("3-frame clips", "tab:orange"),
    7: ("7-frame clips", "tab:green"),
}


def plot_log(log: pd.DataFrame, title: str) -> plt.Figure:
    """Three panels (PSNR, bpp, steps/s) of the log's rows against ``step``."""
    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    for frames, (label, colour) in PHASES.items():
        part = log[log["frames"] == frames]
        if part.empty:
            continue
        axes[0].plot(part["step"], part["psnr"], ".", ms=3, color=colour, label=label)
        axes[1].semilogy(part["step"], part["bpp"], ".", ms=3, color=colour)
        axes[2].plot(part["step"], part["steps_per_s"], ".", ms=3, color=colour)
    refused = log[log["skipped"] > 0]
    for ax in axes[:2]:
        for step in refused["step"]:
            ax.axvline(step, color="tab:red", alpha=0.15, lw=1)
    axes[0].set_ylabel("training PSNR (dB)")
    axes[0].legend(loc="lower right")
    axes[1].set_ylabel("bits per pixel")
    axes[2].set_ylabel("steps/s")
    axes[2].set_xlabel("step (red: log windows with steps the spike guard refused)")
    axes[0].set_title(title)
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("log", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="dhvc train")
    args = parser.parse_args()
    log = pd.read_csv(args.log)
    plot_log(log, args.title).savefig(args.out, dpi=110)
    print(f"{len(log)} log rows, steps {log['step'].min()}-{log['step'].max()} -> {args.out}")


if __name__ == "__main__":
    main()
