"""Trace DataFrames -> metrics and plot-ready tables (pure functions, no I/O).

Vocabulary (DESIGN 2-3): K is the number of scales; ``first_desynced_scale`` D is the decoder's
first desynchronised scale after a frame (K + 1 when in sync). A frame is *desynced* when
D <= K after decoding it. A *desync event* is a frame at which D drops below its previous value
(the decoder starts, or deepens, a desynchronisation); the event is *recovered* at the first
frame at or after it with D = K + 1, and ``frames_to_recover`` counts the frames in between.
A frame *had loss* when at least one of its packets did not reach the receiver in time
(fate lost, queue_drop or late; fec_recovered counts as delivered).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from analysis.io import USABLE_FATES, Run, flatten_summary, scale_bit_columns

INTRA = "intra"
INTER = "inter"


def num_scales(frames: pd.DataFrame) -> int:
    """K: the number of ``bits_s<k>`` columns of a frames table."""
    return len(scale_bit_columns(frames))


def frame_interval_s(frames: pd.DataFrame) -> float:
    """Seconds between consecutive captures (median of ``capture_time_s`` steps); NaN for a
    single frame."""
    steps = frames.sort_values("frame")["capture_time_s"].diff().dropna()
    steps = steps[steps > 0]
    return float(steps.median()) if len(steps) else float("nan")


def packet_losses(packets: pd.DataFrame) -> pd.DataFrame:
    """Per frame: ``packets_sent``, ``packets_lost`` (not usable at the receiver) and
    ``scales_hit`` (distinct scales with a lost packet). Indexed by frame."""
    lost = ~packets["fate"].astype(str).isin(USABLE_FATES)
    per_frame = pd.DataFrame(
        {
            "packets_sent": packets.groupby("frame").size(),
            "packets_lost": lost.groupby(packets["frame"]).sum(),
            "scales_hit": packets.loc[lost].groupby("frame")["scale"].nunique(),
        }
    )
    return per_frame.fillna(0).astype("int64")


def annotate_frames(frames: pd.DataFrame, packets: pd.DataFrame) -> pd.DataFrame:
    """frames.csv joined with per-frame packet losses and the flags the figures mark.

    Adds ``packets_sent``, ``packets_lost``, ``scales_hit``, ``loss`` (bool), ``resync``
    (frame_type R), ``desynced`` (D <= K after the frame), ``kbits`` (frame size in kbit), and
    marker columns ``psnr_at_loss``, ``bpp_at_loss``, ``psnr_at_resync``, ``bpp_at_resync``
    that hold the value on marked frames and NaN elsewhere.
    """
    k = num_scales(frames)
    out = frames.merge(packet_losses(packets), left_on="frame", right_index=True, how="left")
    for column in ("packets_sent", "packets_lost", "scales_hit"):
        out[column] = out[column].fillna(0).astype("int64")
    out["loss"] = out["packets_lost"] > 0
    out["resync"] = out["frame_type"].astype(str) == "R"
    out["desynced"] = out["first_desynced_scale"] <= k
    out["kbits"] = out["bits_total"] / 1000.0
    for flag in ("loss", "resync"):
        for value in ("psnr", "bpp"):
            out[f"{value}_at_{flag}"] = out[value].where(out[flag])
    return out


def desync_events(frames: pd.DataFrame) -> pd.DataFrame:
    """One row per desync event: ``frame``, ``desynced_scale`` (D after the event),
    ``recovered_frame`` (first frame at or after it back in sync; NaN if none),
    ``frames_to_recover`` (recovered_frame - frame; NaN if never recovered), ``recovered``."""
    in_sync = num_scales(frames) + 1
    ordered = frames.sort_values("frame")
    d = ordered["first_desynced_scale"].to_numpy()
    frame = ordered["frame"].to_numpy()
    previous = np.concatenate([[in_sync], d[:-1]])
    starts = np.flatnonzero(d < previous)
    synced = np.flatnonzero(d >= in_sync)
    rows = []
    for start in starts:
        later = synced[synced >= start]
        recovered = frame[later[0]] if len(later) else np.nan
        rows.append(
            {
                "frame": int(frame[start]),
                "desynced_scale": int(d[start]),
                "recovered_frame": recovered,
                "frames_to_recover": recovered - frame[start],
                "recovered": bool(len(later)),
            }
        )
    columns = ["frame", "desynced_scale", "recovered_frame", "frames_to_recover", "recovered"]
    events = pd.DataFrame(rows, columns=columns)
    return events.astype(
        {
            "frame": "int64",
            "desynced_scale": "int64",
            "recovered_frame": "float64",
            "frames_to_recover": "float64",
            "recovered": "bool",
        }
    )


@dataclass(frozen=True)
class RunMetrics:
    """Summary of one run computed from its traces.

    Qualities are means over all frames (``mean_psnr_db`` in dB); ``mean_bpp`` in bits per
    pixel; ``mean_rate_kbps`` the sent bitrate in kbit/s at the capture frame rate.
    ``frames_desynced`` counts frames decoded with D <= K; ``resyncs`` frames of type R;
    ``echoes`` frames after which the receiver sent an echo. Recovery figures are over
    desync events (module docstring); NaN when there were none.
    """

    name: str
    frames: int
    mean_psnr_db: float
    min_psnr_db: float
    mean_ms_ssim: float
    mean_bpp: float
    mean_rate_kbps: float
    frames_with_loss: int
    frames_desynced: int
    resyncs: int
    echoes: int
    desync_events: int
    unrecovered_events: int
    mean_frames_to_recover: float
    max_frames_to_recover: float
    packets: int
    packets_lost: int
    packet_loss_rate: float

    def as_dict(self) -> dict[str, Any]:
        """Field name -> value, for one table row."""
        return asdict(self)


def run_metrics(run: Run) -> RunMetrics:
    """Per-run summary of a loaded run (see :class:`RunMetrics`)."""
    frames = annotate_frames(run.frames, run.packets)
    events = desync_events(run.frames)
    recovered = events.loc[events["recovered"], "frames_to_recover"]
    interval = frame_interval_s(run.frames)
    lost = int(frames["packets_lost"].sum())
    sent = int(len(run.packets))
    return RunMetrics(
        name=run.name,
        frames=int(len(frames)),
        mean_psnr_db=float(frames["psnr"].mean()),
        min_psnr_db=float(frames["psnr"].min()),
        mean_ms_ssim=float(frames["ms_ssim"].mean()),
        mean_bpp=float(frames["bpp"].mean()),
        mean_rate_kbps=float(frames["bits_total"].mean() / interval / 1000.0),
        frames_with_loss=int(frames["loss"].sum()),
        frames_desynced=int(frames["desynced"].sum()),
        resyncs=int(frames["resync"].sum()),
        echoes=int((frames["echo_sent"] > 0).sum()),
        desync_events=int(len(events)),
        unrecovered_events=int((~events["recovered"]).sum()),
        mean_frames_to_recover=float(recovered.mean()) if len(recovered) else float("nan"),
        max_frames_to_recover=float(recovered.max()) if len(recovered) else float("nan"),
        packets=sent,
        packets_lost=lost,
        packet_loss_rate=lost / sent if sent else float("nan"),
    )


def summary_table(
    runs: Iterable[Run], parameters: Mapping[str, Mapping[str, Any]] | None = None
) -> pd.DataFrame:
    """One row per run: ``run`` (its name), the run's parameters (``parameters[run.name]``,
    e.g. sweep grid values and seed), its :class:`RunMetrics`, and its flattened summary.json
    under ``summary.`` column names. Columns of runs that lack a value hold NaN."""
    rows = []
    for run in runs:
        row: dict[str, Any] = {"run": run.name}
        row.update((parameters or {}).get(run.name, {}))
        metrics = run_metrics(run).as_dict()
        metrics.pop("name")
        row.update(metrics)
        row.update(flatten_summary(run.summary, prefix="summary."))
        rows.append(row)
    return pd.DataFrame(rows)


def frame_series(runs: Mapping[str, Run]) -> pd.DataFrame:
    """Annotated frames of several runs stacked into one long table with a ``label`` column
    (Categorical in the order of ``runs``); the input of the per-frame figures."""
    parts = [
        annotate_frames(run.frames, run.packets).assign(label=label) for label, run in runs.items()
    ]
    if not parts:
        raise ValueError("frame_series needs at least one run")
    series = pd.concat(parts, ignore_index=True)
    series["label"] = pd.Categorical(series["label"], categories=list(runs))
    return series


def rate_share_by_scale(frames: pd.DataFrame) -> pd.DataFrame:
    """Share of each scale in the bits of intra (type I) and inter (type P) frames, the data
    of paper Fig. 21. Re-sync frames (R) mix both and are left out.

    Long table, one row per (coding, scale): ``coding`` (intra/inter), ``scale`` (1..K),
    ``mean_bits`` per frame, ``share`` of the coding's mean frame size (0..1), and
    ``share_start`` (sum of the shares of lower scales, where its stacked bar segment begins).
    """
    columns = scale_bit_columns(frames)
    kinds = {INTRA: "I", INTER: "P"}
    rows = []
    for coding, frame_type in kinds.items():
        chosen = frames.loc[frames["frame_type"].astype(str) == frame_type, columns]
        if chosen.empty:
            continue
        mean_bits = chosen.mean().to_numpy(dtype=float)
        total = mean_bits.sum()
        share = mean_bits / total if total > 0 else np.zeros_like(mean_bits)
        start = np.concatenate([[0.0], np.cumsum(share)[:-1]])
        for index in range(len(columns)):
            rows.append(
                {
                    "coding": coding,
                    "scale": index + 1,
                    "mean_bits": float(mean_bits[index]),
                    "share": float(share[index]),
                    "share_start": float(start[index]),
                }
            )
    if not rows:
        raise ValueError("rate_share_by_scale needs at least one I or P frame")
    return pd.DataFrame(rows)
