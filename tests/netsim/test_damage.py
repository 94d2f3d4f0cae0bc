"""Damage accounting (issue 18 item 1): frame states, loss events, the run's summary."""

from __future__ import annotations

import math

import numpy as np
import pytest

from netsim.damage import (
    damage_summary,
    frame_state,
    loss_events,
    ssim_db,
)
from tests.netsim.fakes import scenario, simulate_fakes


def test_a_frame_state_names_concealment_first_then_the_desynchronised_scale() -> None:
    assert frame_state(5, "decoded") == "in_sync"
    assert frame_state(3, "decoded") == "desync_s3"
    assert frame_state(1, "repeated") == "concealed"
    assert frame_state(5, "blended") == "concealed"


def test_loss_events_count_frames_to_full_recovery_and_nan_when_never() -> None:
    d = [5, 5, 2, 2, 4, 5, 3, 3]
    assert loss_events(d).tolist()[:1] == [3.0]  # frame 2 -> in sync at frame 5
    assert math.isnan(loss_events(d)[1])  # frame 6 never recovers


def test_ssim_db_is_minus_ten_log_of_one_minus_ms_ssim_capped() -> None:
    assert ssim_db(0.9).item() == pytest.approx(10.0)
    assert ssim_db(1.0).item() == 100.0


def test_damage_summary_means_per_state_recovery_bits_and_shares() -> None:
    summary = damage_summary(
        states=["in_sync", "desync_s1", "concealed", "in_sync"],
        psnr_db=[40.0, 20.0, 24.0, 38.0],
        ms_ssim=[0.99, 0.9, 0.9, 0.99],
        first_desynced_scale=[5, 1, 1, 5],
        frame_types=["I", "P", "P", "R"],
        bits_total=[1000, 100, 300, 600],
        packets_sent=10,
    )
    assert summary.mean_psnr_db_by_state == {"in_sync": 39.0, "desync_s1": 20.0, "concealed": 24.0}
    assert summary.loss_events == 1 and summary.mean_frames_to_recovery == 2.0
    assert summary.recovery_frames == 1 and summary.recovery_bits == 600
    assert summary.mean_inter_frame_bits == 200.0
    assert summary.packets_per_frame == 2.5
    assert summary.frames_under_25db_share == 0.5
    assert summary.mean_ssim_db == pytest.approx(15.0)


def test_a_lossy_run_records_states_and_its_summary_counts_them() -> None:
    loss = {"kind": "explicit", "packets": [{"frame": 3, "scale": 2, "fragment": 0}]}
    s = scenario(network={"forward": {"kind": "unlimited", "loss": loss}})
    outcome, _ = simulate_fakes(s, 6)
    states = [record.state for record in outcome.frames]
    assert states[:3] == ["in_sync"] * 3 and states[3] == "desync_s2"
    assert np.all([r.shown == "decoded" for r in outcome.frames])
