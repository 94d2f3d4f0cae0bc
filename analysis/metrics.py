"""Trace DataFrames -> metrics and plot-ready tables (pure functions, no I/O).

Vocabulary (DESIGN 2-3): K is the number of scales; ``first_desynced_scale`` D is the decoder's
first desynchronised scale after a frame (K + 1 when in sync). A frame is *desynced* when
D <= K after decoding it. A *desync event* is a frame at which D drops below its previous value
(the decoder starts, or deepens, a desynchronisation); the event is *recovered* at the first
frame at or after it with D = K + 1, and ``frames_to_recover`` counts the frames in between.
A frame *had loss* when at least one of its packets did not reach the receiver in time
(fate lost, queue_drop or late; fec_recovered counts as delivered).

A packet is *exposed* when the run's random loss model may drop it: its frame lies in the loss
window ``first_frame..last_frame`` and its scale is not exempt (scenario
``network.forward.loss``, recorded in summary.json). Measured loss rates are counted from
packets.csv: of all packets sent, and of the exposed packets; the rate a scenario sets applies
to exposed packets only, so the fraction of all packets lost is smaller.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from analysis.io import USABLE_FATES, Run, scale_bit_columns
from netsim.codecs.registry import DHVC
from netsim.summary import flatten_summary

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


def received_bits(frames: pd.DataFrame, packets: pd.DataFrame) -> pd.Series:
    """Per frame (indexed by ``frame``): the bits of the frame's scale payloads that reached
    the receiver in time.

    Scale k contributes ``bits_s<k>`` times the share of its packets' bytes whose fate is
    usable (delivered or fec_recovered): all of it when every packet arrived, none when every
    packet was lost. A partly received scale is counted by wire bytes, so its 46-byte packet
    headers weigh in (a small bias, only on such scales). A scale with bits but no packet rows
    counts as not received.
    """
    columns = scale_bit_columns(frames)
    bits = frames.set_index("frame")[columns].astype(float)
    bits.columns = range(1, len(columns) + 1)
    size = packets["size_bytes"].astype(float)
    usable = packets["fate"].astype(str).isin(USABLE_FATES)
    keys = [packets["frame"], packets["scale"]]
    share = size.where(usable, 0.0).groupby(keys).sum() / size.groupby(keys).sum()
    share = share.unstack().reindex(index=bits.index, columns=bits.columns).fillna(0.0)
    return (bits * share).sum(axis=1).rename("bits_received")


def annotate_frames(frames: pd.DataFrame, packets: pd.DataFrame) -> pd.DataFrame:
    """frames.csv joined with per-frame packet losses and the flags the figures mark.

    Adds ``packets_sent``, ``packets_lost``, ``scales_hit``, ``loss`` (bool), ``resync``
    (frame_type R), ``desynced`` (D <= K after the frame), ``kbits`` (frame size in kbit),
    ``bits_received`` and ``bpp_received`` (the part of ``bits_total`` and ``bpp`` that
    arrived in time, :func:`received_bits`), and marker columns ``psnr_at_loss``,
    ``bpp_at_loss``, ``psnr_at_resync``, ``bpp_at_resync`` that hold the value on marked
    frames and NaN elsewhere.
    """
    k = num_scales(frames)
    out = frames.merge(packet_losses(packets), left_on="frame", right_index=True, how="left")
    for column in ("packets_sent", "packets_lost", "scales_hit"):
        out[column] = out[column].fillna(0).astype("int64")
    out["bits_received"] = out["frame"].map(received_bits(frames, packets)).astype(float)
    total = out["bits_total"].astype(float)
    fraction = (out["bits_received"] / total.where(total > 0)).fillna(1.0)
    out["bpp_received"] = out["bpp"] * fraction
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
class LossExposure:
    """Which packets a run's random loss model may drop (module docstring): frames
    ``first_frame``..``last_frame`` (inclusive; None = open), scales ``exposed_scales``."""

    first_frame: int | None
    last_frame: int | None
    exposed_scales: tuple[int, ...]


def _loss_spec(summary: Mapping[str, Any]) -> Mapping[str, Any] | None:
    scenario = summary.get("scenario")
    if not isinstance(scenario, Mapping):
        return None
    loss = scenario.get("network", {}).get("forward", {}).get("loss")
    return loss if isinstance(loss, Mapping) else None


def loss_exposure(summary: Mapping[str, Any], scales: int) -> LossExposure | None:
    """The loss window of the scenario recorded in a run's summary.json, for a run of
    ``scales`` scales; None when the run has no windowed random loss model (no loss, an
    explicit loss list) or its summary does not record the scenario."""
    loss = _loss_spec(summary)
    if loss is None or "exempt_scales" not in loss:
        return None
    exempt = {int(scale) for scale in loss.get("exempt_scales") or ()}
    first, last = loss.get("first_frame"), loss.get("last_frame")
    return LossExposure(
        first_frame=None if first is None else int(first),
        last_frame=None if last is None else int(last),
        exposed_scales=tuple(k for k in range(1, scales + 1) if k not in exempt),
    )


def exposed_packets(packets: pd.DataFrame, exposure: LossExposure) -> pd.Series:
    """Boolean mask of the packets (rows of packets.csv) the loss model may drop."""
    mask = packets["scale"].isin(exposure.exposed_scales)
    if exposure.first_frame is not None:
        mask &= packets["frame"] >= exposure.first_frame
    if exposure.last_frame is not None:
        mask &= packets["frame"] <= exposure.last_frame
    return mask


def set_loss_rate(summary: Mapping[str, Any]) -> float:
    """The loss rate a run's scenario sets (``network.forward.loss.loss_rate``; for other
    models the analytic rate the simulator recorded under ``loss.loss_model``); NaN if none."""
    loss = _loss_spec(summary)
    if loss is not None and isinstance(loss.get("loss_rate"), int | float):
        return float(loss["loss_rate"])
    model = summary.get("loss", {}).get("loss_model", {})
    rate = model.get("analytic_loss_rate") if isinstance(model, Mapping) else None
    return float(rate) if isinstance(rate, int | float) else math.nan


@dataclass(frozen=True)
class MeasuredLoss:
    """Packet loss of one run, counted from packets.csv (module docstring).

    ``set_loss_rate`` is what the scenario asks for (0..1, NaN if none); ``loss_rate`` is
    ``packets_lost / packets_sent`` over all packets; ``exposed_loss_rate`` the same over the
    exposed packets (NaN when the run has no loss window). ``first_frame``, ``last_frame`` and
    ``exposed_scales`` describe the window (the run's own frame range where it is open).
    A packet is lost when it did not reach the receiver in time (lost, queue_drop, late).
    """

    set_loss_rate: float
    packets_sent: int
    packets_lost: int
    loss_rate: float
    exposed_packets: int
    exposed_packets_lost: int
    exposed_loss_rate: float
    first_frame: int | None
    last_frame: int | None
    exposed_scales: tuple[int, ...]


def measured_loss(run: Run) -> MeasuredLoss:
    """Set and measured loss rates of a loaded run (see :class:`MeasuredLoss`)."""
    packets = run.packets
    lost = ~packets["fate"].astype(str).isin(USABLE_FATES)
    sent = int(len(packets))
    exposure = loss_exposure(run.summary, run.num_scales)
    if exposure is None:
        exposed, exposed_lost = 0, 0
        exposed_rate = math.nan
        first = last = None
        scales: tuple[int, ...] = ()
    else:
        mask = exposed_packets(packets, exposure)
        exposed, exposed_lost = int(mask.sum()), int((lost & mask).sum())
        exposed_rate = exposed_lost / exposed if exposed else math.nan
        frames = run.frames["frame"]
        first = int(frames.min()) if exposure.first_frame is None else exposure.first_frame
        last = int(frames.max()) if exposure.last_frame is None else exposure.last_frame
        scales = exposure.exposed_scales
    return MeasuredLoss(
        set_loss_rate=set_loss_rate(run.summary),
        packets_sent=sent,
        packets_lost=int(lost.sum()),
        loss_rate=int(lost.sum()) / sent if sent else math.nan,
        exposed_packets=exposed,
        exposed_packets_lost=exposed_lost,
        exposed_loss_rate=exposed_rate,
        first_frame=first,
        last_frame=last,
        exposed_scales=scales,
    )


def loss_table(runs: Mapping[str, Run]) -> pd.DataFrame:
    """:class:`MeasuredLoss` of several runs, one row per label (index ``label``, in the
    order of ``runs``); what :func:`analysis.figures.plot_loss_resilience` quotes per panel."""
    rows = [{"label": label, **asdict(measured_loss(run))} for label, run in runs.items()]
    columns = ["label", *(f.name for f in fields(MeasuredLoss))]
    return pd.DataFrame(rows, columns=columns).set_index("label")


@dataclass(frozen=True)
class RunDescription:
    """What a set of runs (or an RD evaluation) measured, for figure titles: the distinct
    values over the runs of the clip (video source), picture size in pixels, frame count,
    lambda and seed, each sorted; an empty tuple where nothing is recorded."""

    clips: tuple[str, ...]
    sizes_px: tuple[tuple[int, int], ...]
    frames: tuple[int, ...]
    lambdas: tuple[float, ...]
    seeds: tuple[int, ...]


def _distinct(values: Iterable[Any]) -> tuple[Any, ...]:
    kept = []
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        kept.append(value)
    return tuple(sorted(set(kept)))


def describe_runs(runs: Iterable[Run]) -> RunDescription:
    """The :class:`RunDescription` of loaded runs: clip and size from the scenario in
    summary.json, frames and lambdas from frames.csv, seeds from summary.json."""
    clips, sizes, frames, lambdas, seeds = [], [], [], [], []
    for run in runs:
        scenario = run.summary.get("scenario")
        video = scenario.get("video", {}) if isinstance(scenario, Mapping) else {}
        clips.append(video.get("source"))
        if "width_px" in video and "height_px" in video:
            sizes.append((int(video["width_px"]), int(video["height_px"])))
        frames.append(int(len(run.frames)))
        lambdas.extend(float(lam) for lam in run.frames["lambda"].dropna().unique())
        seed = run.summary.get("seed")
        seeds.append(int(seed) if isinstance(seed, int | float) else None)
    return RunDescription(
        _distinct(clips), _distinct(sizes), _distinct(frames), _distinct(lambdas), _distinct(seeds)
    )


def describe_table(table: pd.DataFrame) -> RunDescription:
    """The :class:`RunDescription` of a sweep table (:func:`summary_table` rows): clip, size
    and lambda from the ``summary.scenario.`` columns, frames and seeds from ``frames`` and
    ``seed`` (or ``summary.seed``)."""

    def column(*names: str) -> list[Any]:
        name = next((n for n in names if n in table.columns), None)
        return [] if name is None else table[name].tolist()

    widths = column("summary.scenario.video.width_px")
    heights = column("summary.scenario.video.height_px")
    sizes = [(int(w), int(h)) for w, h in zip(widths, heights, strict=True) if w == w and h == h]
    return RunDescription(
        clips=_distinct(column("summary.scenario.video.source")),
        sizes_px=_distinct(sizes),
        frames=_distinct(int(f) for f in column("frames", "summary.frames") if f == f),
        lambdas=_distinct(float(lam) for lam in column("summary.scenario.codec.lam")),
        seeds=_distinct(int(s) for s in column("seed", "summary.seed") if s == s),
    )


def describe_rd(rd: Mapping[str, Any], codec: str = DHVC) -> RunDescription:
    """The :class:`RunDescription` of an rd.json as read (``codec.rd.results.read_rd``): its
    video, size and frame count, and the lambdas of ``codec``'s rate points."""
    points = rd.get("codecs", {}).get(codec) or []
    lambdas = [p.get("lambda") for p in points if isinstance(p, Mapping)]
    size = ((int(rd["width"]), int(rd["height"])),) if "width" in rd and "height" in rd else ()
    frames = rd.get("frames")
    return RunDescription(
        clips=_distinct([rd.get("video")]),
        sizes_px=size,
        frames=(int(frames),) if isinstance(frames, int | float) else (),
        lambdas=_distinct(float(lam) for lam in lambdas if isinstance(lam, int | float)),
        seeds=(),
    )


@dataclass(frozen=True)
class RunMetrics:
    """Summary of one run computed from its traces.

    Qualities are means over all frames (``mean_psnr_db`` in dB); ``mean_bpp`` in bits per
    pixel; ``mean_rate_kbps`` the sent bitrate in kbit/s at the capture frame rate.
    ``frames_desynced`` counts frames decoded with D <= K; ``resyncs`` frames of type R;
    ``echoes`` frames after which the receiver sent an echo. Recovery figures are over
    desync events (module docstring); NaN when there were none. ``packet_loss_rate`` is the
    fraction of all packets lost; ``exposed_loss_rate`` that of the packets the loss model
    may drop (:class:`MeasuredLoss`; NaN without a loss window).
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
    exposed_packets: int
    exposed_packets_lost: int
    exposed_loss_rate: float

    def as_dict(self) -> dict[str, Any]:
        """Field name -> value, for one table row."""
        return asdict(self)


def run_metrics(run: Run) -> RunMetrics:
    """Per-run summary of a loaded run (see :class:`RunMetrics`)."""
    frames = annotate_frames(run.frames, run.packets)
    events = desync_events(run.frames)
    recovered = events.loc[events["recovered"], "frames_to_recover"]
    interval = frame_interval_s(run.frames)
    loss = measured_loss(run)
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
        packets=loss.packets_sent,
        packets_lost=loss.packets_lost,
        packet_loss_rate=loss.loss_rate,
        exposed_packets=loss.exposed_packets,
        exposed_packets_lost=loss.exposed_packets_lost,
        exposed_loss_rate=loss.exposed_loss_rate,
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


RUN_METRIC_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RunMetrics) if f.name != "name")
"""The :class:`RunMetrics` columns of a :func:`summary_table`."""


def grid_columns(table: pd.DataFrame) -> list[str]:
    """The parameter columns of a sweep table (:func:`summary_table`): every column but
    ``run``, ``seed``, the :class:`RunMetrics` columns and the ``summary.`` columns."""
    skip = {"run", "seed", *RUN_METRIC_COLUMNS}
    return [c for c in table.columns if c not in skip and not str(c).startswith("summary.")]


def seed_intervals(
    table: pd.DataFrame,
    values: Sequence[str] = ("mean_psnr_db", "packet_loss_rate"),
    by: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Mean and Student-t confidence interval over seeds of each of ``values``, per grid point.

    ``table`` has one row per run (a sweep table: parameters, ``seed``, metrics); ``by`` are
    the columns that define a grid point (default :func:`grid_columns`). One row per grid
    point, sorted by ``by``: the ``by`` columns, ``seeds`` (rows in the group), and for each
    value ``<value>_mean``, ``<value>_std`` (sample standard deviation),
    ``<value>_ci_low`` and ``<value>_ci_high``: mean -/+ t(1 - (1 - confidence) / 2, n - 1)
    * std / sqrt(n), over the n rows where the value is present. With n = 1 there is no
    interval: std and both bounds are NaN.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie between 0 and 1, not {confidence}")
    keys = list(grid_columns(table) if by is None else by)
    missing = [c for c in [*keys, *values] if c not in table.columns]
    if missing:
        raise ValueError(f"the table has no column {missing[0]!r}")
    rows = []
    groups = table.groupby(keys, sort=True, dropna=False) if keys else [((), table)]
    for key, group in groups:
        row: dict[str, Any] = dict(
            zip(keys, key if isinstance(key, tuple) else (key,), strict=True)
        )
        row["seeds"] = int(len(group))
        for value in values:
            present = pd.to_numeric(group[value], errors="coerce").dropna().to_numpy(dtype=float)
            n = len(present)
            mean = float(present.mean()) if n else math.nan
            std = float(present.std(ddof=1)) if n > 1 else math.nan
            half = (
                float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * std / math.sqrt(n)
                if n > 1
                else math.nan
            )
            row[f"{value}_mean"] = mean
            row[f"{value}_std"] = std
            row[f"{value}_ci_low"] = mean - half
            row[f"{value}_ci_high"] = mean + half
        rows.append(row)
    return pd.DataFrame(rows)


UNUSABLE_PSNR_DB = 25.0
"""PSNR below which :func:`codec_frame_fractions` counts a shown frame as unusable (dB)."""


def codec_frame_fractions(frames: pd.DataFrame, threshold_db: float = UNUSABLE_PSNR_DB) -> dict:
    """What share of a run's frames the viewer could not use (issue 13): ``frozen_fraction``
    (nothing decodable, the last picture repeated), ``concealed_fraction`` (shown with a part
    concealed) and ``unusable_fraction`` (frozen, or PSNR below ``threshold_db``)."""
    count = len(frames)
    frozen = frames["frozen"].astype(bool)
    low = pd.to_numeric(frames["psnr"], errors="coerce") < threshold_db
    return {
        "frozen_fraction": float(frozen.sum()) / count if count else math.nan,
        "concealed_fraction": float(frames["concealed"].astype(bool).sum()) / count
        if count
        else math.nan,
        "unusable_fraction": float((frozen | low).sum()) / count if count else math.nan,
    }


CODEC_COMPARISON_VALUES: tuple[str, ...] = (
    "mean_psnr_db",
    "packet_loss_rate",
    "frozen_fraction",
    "concealed_fraction",
    "unusable_fraction",
)
"""The values :func:`codec_comparison` aggregates over seeds."""


def codec_comparison(
    tables: Mapping[str, pd.DataFrame], loss_column: str, confidence: float = 0.95
) -> pd.DataFrame:
    """One sweep table per codec (one row per run with ``loss_column``, ``seed`` and the
    values of :data:`CODEC_COMPARISON_VALUES`) -> mean and t-interval over seeds per codec and
    loss rate (:func:`seed_intervals`), with a ``codec`` column."""
    parts = []
    for codec, table in tables.items():
        intervals = seed_intervals(
            table, values=CODEC_COMPARISON_VALUES, by=[loss_column], confidence=confidence
        )
        intervals.insert(0, "codec", codec)
        parts.append(intervals)
    return pd.concat(parts, ignore_index=True)
