"""Empirical loss statistics of a packet trace, to set against a loss model's analytic values."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from codec.types import NUM_SCALES
from netsim.trace import Fate, PacketRecord


def loss_runs(lost: Iterable[bool]) -> list[int]:
    """Lengths of the runs of consecutive True values, in order."""
    runs: list[int] = []
    current = 0
    for flag in lost:
        if flag:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    if current:
        runs.append(current)
    return runs


@dataclass(frozen=True)
class LossStatistics:
    """Loss rate (NaN for an empty sequence) and mean burst length (0 when nothing was lost)
    of a packet sequence."""

    packets: int
    lost: int
    bursts: int
    loss_rate: float
    mean_burst_packets: float

    @classmethod
    def of(cls, lost: Sequence[bool]) -> LossStatistics:
        """Statistics of a sequence of per-packet loss flags, in sending order."""
        runs = loss_runs(lost)
        count = sum(runs)
        return cls(
            packets=len(lost),
            lost=count,
            bursts=len(runs),
            loss_rate=count / len(lost) if lost else math.nan,
            mean_burst_packets=count / len(runs) if runs else 0.0,
        )


def channel_loss_statistics(records: Iterable[PacketRecord]) -> LossStatistics:
    """Losses by the forward link's loss model among the packets exposed to it, in seq order.

    This is what the model's ``analytic_loss_rate`` and ``analytic_mean_burst_packets``
    predict; queue drops and late packets are other causes and are not counted.
    """
    ordered = sorted((r for r in records if r.exposed_to_loss), key=lambda r: r.seq)
    return LossStatistics.of([r.channel_fate is Fate.LOST for r in ordered])


def fate_counts(records: Iterable[PacketRecord]) -> dict[str, dict[str, int]]:
    """Packet counts per final fate: ``{"all": {...}, "scale_1": {...}, ...}``."""
    totals: Counter[str] = Counter()
    per_scale: dict[int, Counter[str]] = {k: Counter() for k in range(1, NUM_SCALES + 1)}
    for r in records:
        totals[r.fate.value] += 1
        per_scale[r.scale][r.fate.value] += 1
    result = {"all": {fate.value: totals[fate.value] for fate in Fate}}
    for scale, counts in per_scale.items():
        result[f"scale_{scale}"] = {fate.value: counts[fate.value] for fate in Fate}
    return result
