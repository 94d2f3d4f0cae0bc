"""Where the decibels go (issue 18): damage accounting from traces (pure functions, no I/O).

Every frame of a run is in one state (frames.csv's ``state``, ``netsim.damage``): in sync,
desynchronised from scale j, or concealed. ``damage_metrics`` gives a run's accounting as
summary.json holds it (``netsim.damage.DamageSummary``: mean PSNR per state, frames from each
loss event to full recovery, bits of recovery frames, packets per frame, share of frames under
25 dB, SSIM-dB), computed by the same definition from the trace DataFrames. ``damage_budget``
splits the gap between a clean run and a lossy run of the same frames into what each state
costs; ``analysis.figures.plot_damage_budget`` draws it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.io import Run
from analysis.metrics import num_scales
from netsim.damage import FRAME_STATES, DamageSummary, damage_summary, ssim_db

CLEAN = "clean"
"""The first row of a damage budget: the clean run's mean PSNR."""


def ssim_db_series(frames: pd.DataFrame) -> pd.Series:
    """Per frame: SSIM-dB, -10 log10(1 - MS-SSIM) (``netsim.damage.ssim_db``)."""
    return pd.Series(ssim_db(frames["ms_ssim"].to_numpy(dtype=float)), index=frames.index)


def damage_metrics(run: Run) -> DamageSummary:
    """The run's damage accounting from its traces (the same values as summary.json's
    ``damage``)."""
    frames = run.frames.sort_values("frame")
    return damage_summary(
        states=frames["state"].astype(str).tolist(),
        psnr_db=frames["psnr"].to_numpy(dtype=float),
        ms_ssim=frames["ms_ssim"].to_numpy(dtype=float),
        first_desynced_scale=frames["first_desynced_scale"].to_numpy(dtype=int),
        frame_types=frames["frame_type"].astype(str).tolist(),
        bits_total=frames["bits_total"].to_numpy(dtype=float),
        packets_sent=len(run.packets),
        num_scales=num_scales(frames),
    )


def packets_per_frame(packets: pd.DataFrame, frames: pd.DataFrame) -> float:
    """Packets sent per frame (FEC parity included)."""
    return len(packets) / len(frames) if len(frames) else float("nan")


def damage_budget(run: Run, clean: Run) -> pd.DataFrame:
    """Where the decibels go: one row ``clean`` with the clean run's mean PSNR, then one row per
    state of ``run`` with what its frames cost the mean: the sum over those frames of (clean
    PSNR - PSNR), over all frames (dB). ``clean`` minus every cost is ``run``'s mean PSNR.
    Columns ``cause``, ``db``, ``frames``. Both runs must cover the same frames."""
    lossy = run.frames.set_index("frame")
    reference = clean.frames.set_index("frame")["psnr"]
    if not lossy.index.equals(reference.index):
        raise ValueError(f"{run.name} and {clean.name} cover different frames")
    cost = reference - lossy["psnr"]
    state = lossy["state"].astype(str)
    rows = [{"cause": CLEAN, "db": float(reference.mean()), "frames": len(reference)}]
    for name in FRAME_STATES:
        mask = state == name
        if mask.any():
            rows.append(
                {
                    "cause": name,
                    "db": float(cost[mask].sum() / len(lossy)),
                    "frames": int(mask.sum()),
                }
            )
    return pd.DataFrame(rows, columns=["cause", "db", "frames"])


def budget_residual_db(budget: pd.DataFrame, run: Run) -> float:
    """``clean`` minus the costs minus ``run``'s mean PSNR (0 up to rounding)."""
    costs = budget.loc[budget["cause"] != CLEAN, "db"].sum()
    clean = budget.loc[budget["cause"] == CLEAN, "db"].iloc[0]
    return float(clean - costs - np.mean(run.frames["psnr"]))
