"""Empirical loss statistics of packet traces, against hand-computed values."""

from __future__ import annotations

import math

import pytest

from netsim.stats import LossStatistics, channel_loss_statistics, fate_counts, loss_runs
from netsim.trace import Fate, PacketRecord

T, F = True, False


@pytest.mark.parametrize(
    ("lost", "runs"),
    [
        ([], []),
        ([F, F, F], []),
        ([T], [1]),
        ([T, T, T], [3]),
        ([F, T, T, F, T], [2, 1]),
        ([T, F, F, T, T, T, F, T, T], [1, 3, 2]),
    ],
)
def test_loss_runs_are_the_lengths_of_consecutive_losses_in_order(
    lost: list[bool], runs: list[int]
) -> None:
    assert loss_runs(lost) == runs
    assert loss_runs(iter(lost)) == runs  # any iterable, read once


def test_loss_statistics_of_a_mixed_sequence() -> None:
    # runs 2, 1, 3: 6 losses of 10 packets in 3 bursts
    stats = LossStatistics.of([T, T, F, T, F, F, T, T, T, F])
    assert stats == LossStatistics(
        packets=10, lost=6, bursts=3, loss_rate=0.6, mean_burst_packets=2.0
    )


def test_loss_statistics_without_a_loss_have_rate_and_burst_zero() -> None:
    assert LossStatistics.of([F, F, F, F]) == LossStatistics(4, 0, 0, 0.0, 0.0)


def test_loss_statistics_of_nothing_have_a_nan_rate_and_no_bursts() -> None:
    stats = LossStatistics.of([])
    assert (stats.packets, stats.lost, stats.bursts) == (0, 0, 0)
    assert math.isnan(stats.loss_rate)
    assert stats.mean_burst_packets == 0.0


def record(
    seq: int,
    channel_fate: Fate,
    *,
    fate: Fate | None = None,
    scale: int = 1,
    exposed: bool = True,
) -> PacketRecord:
    return PacketRecord(
        seq=seq,
        frame=seq // 4,
        scale=scale,
        fragment=0,
        size_bytes=100,
        send_time_s=seq / 100,
        arrival_time_s=None,
        fate=channel_fate if fate is None else fate,
        channel_fate=channel_fate,
        exposed_to_loss=exposed,
    )


def test_channel_loss_counts_model_losses_of_exposed_packets_in_seq_order() -> None:
    records = [
        record(4, Fate.LOST),
        record(0, Fate.LOST),
        record(2, Fate.DELIVERED, exposed=False),  # not exposed: left out, joins 1 and 3
        record(1, Fate.LOST),
        record(3, Fate.LOST, fate=Fate.FEC_RECOVERED),  # lost on the channel all the same
        record(5, Fate.QUEUE_DROP),  # another cause: not a loss, ends the run
        record(6, Fate.LOST),
        record(7, Fate.LATE),
        record(8, Fate.DELIVERED),
    ]
    # exposed, in seq order: 0 L, 1 L, 3 L, 4 L, 5 -, 6 L, 7 -, 8 -  -> runs 4, 1
    assert channel_loss_statistics(records) == LossStatistics(
        packets=8, lost=5, bursts=2, loss_rate=5 / 8, mean_burst_packets=2.5
    )


def test_channel_loss_of_no_exposed_packet_has_a_nan_rate() -> None:
    stats = channel_loss_statistics([record(0, Fate.LOST, exposed=False)])
    assert (stats.packets, stats.lost) == (0, 0) and math.isnan(stats.loss_rate)


def test_fate_counts_count_final_fates_overall_and_per_scale() -> None:
    records = [
        record(0, Fate.DELIVERED, scale=1),
        record(1, Fate.DELIVERED, scale=1),
        record(2, Fate.LOST, scale=2),
        record(3, Fate.LOST, fate=Fate.FEC_RECOVERED, scale=2),
        record(4, Fate.QUEUE_DROP, scale=4),
        record(5, Fate.LATE, scale=4),
        record(6, Fate.DELIVERED, fate=Fate.REJECTED, scale=4),
    ]
    zero = dict.fromkeys(
        ["delivered", "lost", "queue_drop", "late", "fec_recovered", "rejected"], 0
    )
    assert fate_counts(records) == {
        "all": {
            **zero,
            "delivered": 2,
            "lost": 1,
            "queue_drop": 1,
            "late": 1,
            "fec_recovered": 1,
            "rejected": 1,
        },
        "scale_1": {**zero, "delivered": 2},
        "scale_2": {**zero, "lost": 1, "fec_recovered": 1},
        "scale_3": zero,
        "scale_4": {**zero, "queue_drop": 1, "late": 1, "rejected": 1},
    }
    assert list(fate_counts(records)) == ["all", "scale_1", "scale_2", "scale_3", "scale_4"]
    assert list(fate_counts(records)["all"]) == [fate.value for fate in Fate]


def test_fate_counts_of_no_packets_are_all_zero() -> None:
    counts = fate_counts([])
    assert set(counts) == {"all", "scale_1", "scale_2", "scale_3", "scale_4"}
    assert all(n == 0 for per_fate in counts.values() for n in per_fate.values())
