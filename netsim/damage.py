"""Where the decibels go: each frame's state and a run's damage accounting (issue 18, DESIGN 5).

A shown frame is in one of these states (``FrameState``, frames.csv's ``state``):

* ``in_sync``: the decoder's picture is shown and its references are sound after the frame
  (D = K + 1);
* ``desync_sJ``: the decoder's picture is shown and the decoder is desynchronised from scale J
  after the frame (D = J <= K: scales >= J were substituted by their means, DESIGN 2; for
  x264/x265 D = 1 while the references are damaged);
* ``concealed``: the receiver showed something else than the decoder's picture: the last
  shown picture again, a blend of it, the last decoded picture moved on along its motion, or
  the last shown picture moved along the frame's own motion field (``ShownKind``, DESIGN 2's
  concealment), or, for
  x264/x265, a frozen frame.

The damage accounting of a run (``DamageSummary``, in summary.json and, from traces, in
``analysis.damage``): mean PSNR per state, loss events (frames at which D drops) and the frames
from each to full recovery, the bits of recovery frames next to the mean inter frame, packets
per frame, the share of frames under ``LOW_PSNR_DB``, and SSIM-dB. The functions here take
plain arrays, so that summary.json (from trace records) and ``analysis`` (from DataFrames)
share one definition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from codec.types import NUM_SCALES

LOW_PSNR_DB = 25.0
"""PSNR under which a shown frame counts as badly damaged (dB; issue 18's share of frames)."""

SSIM_DB_CAP = 100.0
"""SSIM-dB of a frame with MS-SSIM 1 (or within 1e-10 of it)."""


class ShownKind(StrEnum):
    """What the receiver showed for a frame (frames.csv's ``shown``)."""

    DECODED = "decoded"  # the decoder's picture (mean-substituted where scales were missing)
    REPEATED = "repeated"  # the last shown picture again
    BLENDED = "blended"  # a blend of the decoder's picture and the last shown one
    EXTRAPOLATED = "extrapolated"  # the last decoded picture moved on (netsim.motion)
    MOVED = "moved"  # the last shown picture moved along the frame's own sent motion field


IN_SYNC_STATE = "in_sync"
CONCEALED_STATE = "concealed"


def desync_state(scale: int) -> str:
    """The state of a frame shown as decoded with D = ``scale`` (1..K) after it."""
    return f"desync_s{scale}"


FRAME_STATES: tuple[str, ...] = (
    IN_SYNC_STATE,
    *(desync_state(k) for k in range(1, NUM_SCALES + 1)),
    CONCEALED_STATE,
)
"""frames.csv's ``state`` labels (module docstring), in the order figures list them."""


def frame_state(first_desynced_scale: int, shown: str, num_scales: int = NUM_SCALES) -> str:
    """The state of one frame from D after it and what was shown (module docstring)."""
    if shown != ShownKind.DECODED:
        return CONCEALED_STATE
    if first_desynced_scale <= num_scales:
        return desync_state(first_desynced_scale)
    return IN_SYNC_STATE


def ssim_db(ms_ssim: np.ndarray | float) -> np.ndarray:
    """-10 log10(1 - MS-SSIM) in dB (the metric GRACE and Salsify report), capped at
    ``SSIM_DB_CAP``; NaN stays NaN."""
    value = np.asarray(ms_ssim, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        db = -10.0 * np.log10(np.maximum(1.0 - value, 0.0))
    return np.minimum(db, SSIM_DB_CAP)


def loss_events(first_desynced_scale: Sequence[int], num_scales: int = NUM_SCALES) -> np.ndarray:
    """For each loss event (a frame at which D drops below its value after the frame before;
    D starts at K + 1), the frames from it to the first frame at or after it that is back in
    sync (D = K + 1), NaN when the run ends first. Frame positions, in order."""
    d = np.asarray(first_desynced_scale, dtype=int)
    in_sync = num_scales + 1
    previous = np.concatenate([[in_sync], d[:-1]])
    starts = np.flatnonzero(d < previous)
    synced = np.flatnonzero(d >= in_sync)
    out = np.full(len(starts), np.nan)
    for i, start in enumerate(starts):
        later = synced[synced >= start]
        if len(later):
            out[i] = later[0] - start
    return out


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else math.nan


@dataclass(frozen=True)
class DamageSummary:
    """A run's damage accounting (module docstring).

    ``frames_by_state`` and ``mean_psnr_db_by_state`` (dB) for the states that occur;
    ``loss_events``, ``unrecovered_events`` (still desynchronised at the end) and
    ``mean_frames_to_recovery`` over the recovered ones; ``recovery_frames`` (re-sync frames,
    type R, and any other recovery type) with their ``recovery_bits`` and mean, beside
    ``mean_inter_frame_bits`` (type P); ``packets_per_frame`` sent (parity included);
    ``frames_under_25db_share``; ``mean_ssim_db`` (mean of the frames' SSIM-dB).
    """

    frames_by_state: Mapping[str, int]
    mean_psnr_db_by_state: Mapping[str, float]
    loss_events: int
    unrecovered_events: int
    mean_frames_to_recovery: float
    recovery_frames: int
    recovery_bits: int
    mean_recovery_frame_bits: float
    mean_inter_frame_bits: float
    packets_per_frame: float
    frames_under_25db_share: float
    mean_ssim_db: float


INTER_FRAME_TYPE = "P"
"""The frame type of an ordinary inter frame; I frames are neither inter nor recovery frames,
every other type (R, and types added for other recoveries) is a recovery frame."""


def damage_summary(
    *,
    states: Sequence[str],
    psnr_db: Sequence[float],
    ms_ssim: Sequence[float],
    first_desynced_scale: Sequence[int],
    frame_types: Sequence[str],
    bits_total: Sequence[float],
    packets_sent: int,
    num_scales: int = NUM_SCALES,
) -> DamageSummary:
    """The damage accounting of a run's frames (in frame order) and its packet count."""
    state = np.asarray(states, dtype=object)
    psnr = np.asarray(psnr_db, dtype=float)
    types = np.asarray([str(t) for t in frame_types], dtype=object)
    bits = np.asarray(bits_total, dtype=float)
    to_recovery = loss_events(first_desynced_scale, num_scales)
    recovered = to_recovery[np.isfinite(to_recovery)]
    recovery = (types != INTER_FRAME_TYPE) & (types != "I")
    inter = types == INTER_FRAME_TYPE
    present = [s for s in FRAME_STATES if (state == s).any()]
    count = len(psnr)
    finite = np.isfinite(psnr)
    return DamageSummary(
        frames_by_state={s: int((state == s).sum()) for s in present},
        mean_psnr_db_by_state={s: _mean(psnr[state == s]) for s in present},
        loss_events=len(to_recovery),
        unrecovered_events=int(len(to_recovery) - len(recovered)),
        mean_frames_to_recovery=float(recovered.mean()) if len(recovered) else math.nan,
        recovery_frames=int(recovery.sum()),
        recovery_bits=int(bits[recovery].sum()),
        mean_recovery_frame_bits=_mean(bits[recovery]),
        mean_inter_frame_bits=_mean(bits[inter]),
        packets_per_frame=packets_sent / count if count else math.nan,
        frames_under_25db_share=(
            float((psnr[finite] < LOW_PSNR_DB).sum() / finite.sum()) if finite.any() else math.nan
        ),
        mean_ssim_db=_mean(ssim_db(np.asarray(ms_ssim, dtype=float))),
    )
