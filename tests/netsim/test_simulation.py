"""The whole network (sender, links, receiver, echoes) with a codec-free packet source."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from codec.types import IN_SYNC, FrameType
from netsim.simulation import build_loss_model
from netsim.stats import LossStatistics
from netsim.trace import FRAME_COLUMNS, Fate, write_frames_csv, write_packets_csv
from tests.netsim.fakes import scenario, simulate_fakes

FIG_13 = scenario(
    network={
        "forward": {
            "kind": "unlimited",
            "delay_ms": 15,
            "loss": {"kind": "explicit", "packets": [{"frame": 5, "scale": 4}]},
        },
        "feedback": {"delay_ms": 60},
    },
    receiver={"playout_delay_ms": 40, "decode_time_ms": 2},
)
"""Frame 5 loses scale 4; its echo, sent when frame 5 is decoded (0.242 s), arrives 60 ms
later, after frame 7 was captured (0.28 s): frame 8 re-syncs from scale 4 (paper Fig. 13)."""


def test_a_lost_scale_4_packet_is_repaired_by_the_echoed_resync_fig_13() -> None:
    outcome, _ = simulate_fakes(FIG_13, 12)
    frames = outcome.frames
    assert [f.first_desynced_scale for f in frames] == [IN_SYNC] * 5 + [4, 4, 4] + [IN_SYNC] * 4
    assert [f.frame for f in frames if f.echo_sent] == [5]
    types = [f.frame_type for f in frames]
    assert types[8] is FrameType.R and frames[8].resync_from == 4
    assert types.count(FrameType.R) == 1 and types[0] is FrameType.I
    assert outcome.echoes.sent == outcome.echoes.used == 1


def test_each_frames_csv_row_joins_the_senders_and_the_receivers_half_of_its_frame(
    tmp_path: Path,
) -> None:
    outcome, _ = simulate_fakes(FIG_13, 12)
    write_frames_csv(tmp_path / "frames.csv", outcome.frames)
    with (tmp_path / "frames.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == FRAME_COLUMNS
    bits = (8 * 40, 8 * 150, 8 * 600, 8 * 2500)
    for i, row in enumerate(rows):
        # the sender's half: what frame i was encoded as, and what it cost
        frame_type, resync_from = ("I", 1) if i == 0 else ("R", 4) if i == 8 else ("P", 0)
        sender_half = {
            "frame": str(i),
            "frame_type": frame_type,
            "resync_from": str(resync_from),
            "lambda": "1024",
            "bits_total": str(sum(bits)),
            **{f"bits_s{k}": str(b) for k, b in enumerate(bits, start=1)},
            "bpp": f"{sum(bits) / 64:.6f}",  # the fake frames are 8 x 8
            "capture_time_s": f"{i / 25:.9f}",
        }
        # the receiver's half: what arrived of frame i, what it decoded, whether it echoed
        lost = i == 5
        desynced = 5 <= i <= 7  # D = 4 from the loss until the re-sync frame 8
        receiver_half = {
            "scales_received": "3" if lost else "4",
            "scales_decoded": "3" if desynced else "4",
            "first_desynced_scale": "4" if desynced else "5",
            "echo_sent": "True" if lost else "False",
            "decode_time_s": "0.002000000",
        }
        assert {k: row[k] for k in sender_half} == sender_half, f"frame {i}"
        assert {k: row[k] for k in receiver_half} == receiver_half, f"frame {i}"
        assert row["psnr"] == row["ms_ssim"] == "nan"  # a codec-free run measures no quality


def test_bottleneck_queue_drops_fall_on_the_highest_scales_and_every_frame_is_shown() -> None:
    # 40 + 150 + 600 + 2500 payload bytes per frame at 25 frames/s is about 690 kbit/s.
    s = scenario(
        network={
            "forward": {
                "kind": "rate",
                "rate_kbps": 450,
                "queue_bytes": 3000,
                "delay_ms": 10,
            }
        },
        receiver={"playout_delay_ms": 150},
        sender={"mtu_bytes": 600},
    )
    outcome, decoder = simulate_fakes(s, 24)
    drops = [p for p in outcome.packets if p.fate is Fate.QUEUE_DROP]
    assert drops and {p.scale for p in drops} == {4}
    assert len(outcome.frames) == len(decoder.received) == 24
    assert all(1 in r.scales and 2 in r.scales for r in decoder.received)


def test_fec_recovers_scale_1_exposed_to_heavy_loss() -> None:
    s = scenario(
        sender={"fec": {1: {"data_packets": 2, "parity_packets": 10}}},
        network={
            "forward": {"kind": "unlimited", "loss": {"kind": "bernoulli", "loss_rate": 0.5}},
            "feedback": {"enabled": False},
        },
    )
    outcome, decoder = simulate_fakes(s, 40, sizes_bytes=(100, 10, 10, 10))
    scale_1 = [p for p in outcome.packets if p.scale == 1]
    assert len(scale_1) == 40 * 12
    recovered = [p for p in scale_1 if p.fate is Fate.FEC_RECOVERED]
    assert recovered and all(p.fragment < 2 and p.channel_fate is Fate.LOST for p in recovered)
    # P(fewer than 2 of 12 arrive) = 13 / 4096: scale 1 arrives in (nearly) every frame.
    assert sum(1 in r.scales for r in decoder.received) >= 38
    assert sum(f.scales_received >= 1 for f in outcome.frames) >= 38


@pytest.mark.parametrize(
    "loss",
    [
        {
            "kind": "bernoulli",
            "loss_rate": 0.3,
            "first_frame": 10,
            "last_frame": 589,
            "exempt_scales": [1],
        },
        {"kind": "gilbert_elliott", "loss_rate": 0.15, "mean_burst_packets": 3},
        {"kind": "gilbert_elliott", "p": 0.05, "r": 0.4, "loss_in_bad": 0.8, "loss_in_good": 0.01},
    ],
)
def test_packets_csv_loss_statistics_match_the_analytic_values(
    loss: dict[str, Any], tmp_path: Path
) -> None:
    # 600 frames x 13 packets from a codec-free source; statistics read back from packets.csv.
    # Small frames, so that the MTU check (a scale of the default model in at most 256 packets)
    # admits 300-byte packets.
    s = scenario(
        video={"fps": 25, "frames": 32, "width_px": 192, "height_px": 128},
        network={"forward": {"kind": "unlimited", "loss": loss}, "feedback": {"enabled": False}},
        sender={"mtu_bytes": 300},
    )
    outcome, _ = simulate_fakes(s, 600, sizes_bytes=(40, 200, 700, 2000), seed=11)
    write_packets_csv(tmp_path / "packets.csv", outcome.packets)
    with (tmp_path / "packets.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    model = build_loss_model(s.network.forward.loss, np.random.default_rng(0))
    exposed = [
        row["fate"] == "lost"
        for row in rows
        if model.applies_to(int(row["frame"]), int(row["scale"]))
    ]
    assert len(exposed) > 6000
    batches = 20
    size = len(exposed) // batches
    parts = [LossStatistics.of(exposed[i * size : (i + 1) * size]) for i in range(batches)]
    overall = LossStatistics.of(exposed)
    for name, analytic in (
        ("loss_rate", model.analytic_loss_rate()),
        ("mean_burst_packets", model.analytic_mean_burst_packets()),
    ):
        error = np.std([getattr(p, name) for p in parts], ddof=1) / math.sqrt(batches)
        assert abs(getattr(overall, name) - analytic) < 5 * error, name
    outside = [row for row in rows if not model.applies_to(int(row["frame"]), int(row["scale"]))]
    assert all(row["fate"] == "delivered" for row in outside)


def test_same_seed_gives_the_same_trace_and_another_seed_another() -> None:
    s = scenario(
        network={
            "forward": {
                "kind": "unlimited",
                "delay_ms": 10,
                "jitter_ms": 8,
                "loss": {"kind": "gilbert_elliott", "loss_rate": 0.2, "mean_burst_packets": 2},
            },
            "feedback": {"delay_ms": 20, "loss": {"kind": "bernoulli", "loss_rate": 0.3}},
        },
        receiver={"playout_delay_ms": 15, "echo_timeout_ms": 80},
    )
    first, _ = simulate_fakes(s, 30, seed=5)
    second, _ = simulate_fakes(s, 30, seed=5)
    other, _ = simulate_fakes(s, 30, seed=6)
    assert first.packets == second.packets and first.frames == second.frames
    assert first.packets != other.packets
