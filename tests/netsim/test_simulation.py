"""The whole network (sender, links, receiver, echoes) with a codec-free packet source."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy

from codec.types import IN_SYNC, FrameType
from netsim.feedback import Echo, FeedbackLink
from netsim.link import ForwardLink
from netsim.loss import NoLoss
from netsim.receiver import ReceivedFrameReport
from netsim.scenario import Scenario
from netsim.sender import Sender, SentFrame
from netsim.simulation import SimulationResult, build_loss_model, simulate
from netsim.stats import LossStatistics
from netsim.trace import Fate, PacketTrace, write_packets_csv
from tests.netsim.fakes import FakeDecoder, FakeEncoder


def scenario(**sections: Any) -> Scenario:
    data: dict[str, Any] = {"name": "test", "video": {"fps": 25, "frames": 32}}
    data.update(sections)
    return Scenario.model_validate(data)


def run(
    s: Scenario, frames: int, *, sizes=(40, 150, 600, 2500), seed: int = 0
) -> tuple[SimulationResult, list[ReceivedFrameReport], FakeEncoder]:
    reports: list[ReceivedFrameReport] = []
    encoder = FakeEncoder(sizes, gop=s.codec.gop_frames)
    result = simulate(
        s,
        encoder=encoder,
        decoder=FakeDecoder(),
        frame_count=frames,
        seed=seed,
        on_frame=reports.append,
    )
    return result, reports, encoder


def test_a_lost_scale_4_packet_is_repaired_by_the_echoed_resync_fig_13() -> None:
    s = scenario(
        network={
            "forward": {
                "kind": "unlimited",
                "delay_ms": 15,
                "loss": {"kind": "explicit", "packets": [{"frame": 5, "scale": 4}]},
            },
            "feedback": {"delay_ms": 60},
        },
        receiver={"playout_delay_ms": 40},
    )
    result, reports, _ = run(s, 12)
    d = [r.decoded.first_desynced_scale for r in reports]
    assert d == [IN_SYNC] * 5 + [4, 4, 4] + [IN_SYNC] * 4
    assert [r.echo_scale for r in reports if r.echo_scale] == [4]
    types = [f.frame_type for f in result.sent_frames]
    assert types[8] is FrameType.R and result.sent_frames[8].resync_from == 4
    assert types.count(FrameType.R) == 1 and types[0] is FrameType.I
    assert result.echoes_sent == result.echoes_used == 1


def test_echo_due_exactly_at_a_capture_instant_is_applied_to_that_frame() -> None:
    # Frame 5 is decoded at 5/25 + 1/25 s; the echo takes 2 frame periods: due at 8/25 s.
    s = scenario(
        network={
            "forward": {
                "kind": "unlimited",
                "loss": {"kind": "explicit", "packets": [{"frame": 5, "scale": 3}]},
            },
            "feedback": {"delay_frames": 2},
        },
        receiver={"playout_delay_ms": 40},
    )
    result, _, _ = run(s, 10)
    assert [f.frame_index for f in result.sent_frames if f.frame_type is FrameType.R] == [8]


def test_sender_ignores_echoes_older_than_the_resync_that_covers_them() -> None:
    env = simpy.Environment()
    feedback = FeedbackLink(delay_s=0.0, loss=NoLoss())
    for frame, scale, due_s in ((2, 3, 0.15), (3, 3, 0.23), (5, 2, 0.31), (7, 4, 0.39)):
        feedback.send(Echo(frame, scale, due_s))
    link = ForwardLink(
        env,
        loss=NoLoss(),
        delay_s=0.0,
        jitter_s=0.0,
        jitter_rng=np.random.default_rng(0),
        trace=PacketTrace(),
        deliver=lambda _packet: None,
    )
    sent: list[SentFrame] = []
    sender = Sender(
        env,
        encoder=FakeEncoder(),
        link=link,
        feedback=feedback,
        frame_count=12,
        fps=25,
        mtu_bytes=1200,
        on_sent=sent.append,
    )
    env.run()
    # (2, 3) -> frame 4 re-syncs from 3; (3, 3) is older than frame 4: stale;
    # (5, 2) -> frame 8 re-syncs from 2; (7, 4) is covered by frame 8 (2 <= 4): stale.
    assert [(f.frame_index, f.resync_from) for f in sent if f.frame_type is FrameType.R] == [
        (4, 3),
        (8, 2),
    ]
    assert sender.echoes_used == 2 and sender.echoes_stale == 2


def test_receiver_repeats_a_lost_echo_after_the_echo_timeout() -> None:
    s = scenario(
        network={
            "forward": {
                "kind": "unlimited",
                "loss": {"kind": "explicit", "packets": [{"frame": 5, "scale": 2}]},
            },
            "feedback": {
                "delay_ms": 20,
                "loss": {"kind": "explicit", "packets": [{"frame": 5, "scale": 2}]},
            },
        },
        receiver={"playout_delay_ms": 30, "echo_timeout_ms": 100},
    )
    result, reports, _ = run(s, 16)
    echoes = [(r.frame_index, r.echo_scale, r.repeated_echo) for r in reports if r.echo_scale]
    # 100 ms = 2.5 frame periods after frame 5's echo: repeated at frame 8.
    assert echoes == [(5, 2, False), (8, 2, True)]
    assert (result.echoes_sent, result.echoes_lost) == (2, 1)
    resyncs = [f.frame_index for f in result.sent_frames if f.frame_type is FrameType.R]
    assert resyncs == [10]
    assert reports[9].decoded.first_desynced_scale == 2
    assert all(r.decoded.first_desynced_scale == IN_SYNC for r in reports[10:])


def test_receiver_echoes_again_when_the_resync_frame_arrives_unusable() -> None:
    # Frame 4 loses scale 3 (D = 3); its echo makes frame 6 a re-sync from 3, which loses
    # scale 3 too: the receiver echoes again and frame 8 re-syncs successfully.
    s = scenario(
        network={
            "forward": {
                "kind": "unlimited",
                "loss": {
                    "kind": "explicit",
                    "packets": [{"frame": 4, "scale": 3}, {"frame": 6, "scale": 3}],
                },
            },
            "feedback": {"delay_ms": 30},
        },
        receiver={"playout_delay_ms": 30},
    )
    result, reports, _ = run(s, 14)
    assert [(r.frame_index, r.echo_scale) for r in reports if r.echo_scale] == [(4, 3), (6, 3)]
    resyncs = [(f.frame_index, f.resync_from) for f in result.sent_frames if f.resync_from]
    assert resyncs == [(0, 1), (6, 3), (8, 3)]
    assert [r.decoded.first_desynced_scale for r in reports[4:8]] == [3] * 4
    assert all(r.decoded.first_desynced_scale == IN_SYNC for r in reports[8:])


def test_every_frame_is_decoded_even_when_all_packets_are_late() -> None:
    s = scenario(
        network={"forward": {"kind": "unlimited", "delay_ms": 200}},
        receiver={"playout_delay_ms": 100},
    )
    result, reports, _ = run(s, 6)
    assert [r.frame_index for r in reports] == list(range(6))
    assert all(not r.received.scales for r in reports)
    assert {p.fate for p in result.packets} == {Fate.LATE}
    assert all(p.arrival_time_s is not None for p in result.packets)


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
    result, reports, _ = run(s, 24)
    drops = [p for p in result.packets if p.fate is Fate.QUEUE_DROP]
    assert drops and {p.scale for p in drops} == {4}
    assert len(reports) == 24
    assert all(1 in r.received.scales and 2 in r.received.scales for r in reports)


def test_fec_recovers_scale_1_exposed_to_heavy_loss() -> None:
    s = scenario(
        sender={"fec": {1: {"data_packets": 2, "parity_packets": 10}}},
        network={
            "forward": {"kind": "unlimited", "loss": {"kind": "bernoulli", "loss_rate": 0.5}},
            "feedback": {"enabled": False},
        },
    )
    result, reports, _ = run(s, 40, sizes=(100, 10, 10, 10))
    scale_1 = [p for p in result.packets if p.scale == 1]
    assert len(scale_1) == 40 * 12
    recovered = [p for p in scale_1 if p.fate is Fate.FEC_RECOVERED]
    assert recovered and all(p.fragment < 2 and p.channel_fate is Fate.LOST for p in recovered)
    # P(fewer than 2 of 12 arrive) = 13 / 4096: scale 1 arrives in (nearly) every frame.
    assert sum(1 in r.received.scales for r in reports) >= 38
    for r in reports:
        if 1 in r.received.scales:
            assert r.received.scales[1].data == bytes(r.received.scales[1].data)


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
    s = scenario(
        network={"forward": {"kind": "unlimited", "loss": loss}, "feedback": {"enabled": False}},
        sender={"mtu_bytes": 300},
    )
    result, _, _ = run(s, 600, sizes=(40, 200, 700, 2000), seed=11)
    write_packets_csv(tmp_path / "packets.csv", result.packets)
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
    first, _, _ = run(s, 30, seed=5)
    second, _, _ = run(s, 30, seed=5)
    other, _, _ = run(s, 30, seed=6)
    assert first.packets == second.packets and first.sent_frames == second.sent_frames
    assert first.packets != other.packets
