"""Damage accounting from traces (issue 18 item 1): states of older traces, the budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.damage import budget_residual_db, damage_budget, damage_metrics
from analysis.figures import plot_damage_budget
from analysis.io import load_run
from tests.analysis.synthetic_traces import write_synthetic_run


@pytest.fixture
def runs(tmp_path: Path):  # noqa: ANN201 - fixture
    clean = load_run(write_synthetic_run(tmp_path / "clean", frames=16))
    lossy = load_run(write_synthetic_run(tmp_path / "lossy", frames=16, losses={4: 2, 10: 1}))
    return clean, lossy


def test_older_traces_without_a_state_column_get_it_derived_from_d(runs) -> None:  # noqa: ANN001
    _, lossy = runs
    states = lossy.frames.set_index("frame")["state"].astype(str)
    d = lossy.frames.set_index("frame")["first_desynced_scale"]
    assert (states[d == 5] == "in_sync").all()
    assert states[4] == f"desync_s{d[4]}" and states[10] == "desync_s1"


def test_the_budget_splits_the_gap_to_the_clean_run_by_state(runs) -> None:  # noqa: ANN001
    clean, lossy = runs
    budget = damage_budget(lossy, clean)
    assert budget["cause"].iloc[0] == "clean"
    assert budget_residual_db(budget, lossy) == pytest.approx(0.0, abs=1e-9)
    assert set(budget["cause"][1:]) <= {"in_sync", "desync_s1", "desync_s2", "concealed"}
    figure = plot_damage_budget({"lossy": budget})
    assert figure.axes


def test_damage_metrics_from_traces_count_events_and_packets(runs) -> None:  # noqa: ANN001
    _, lossy = runs
    metrics = damage_metrics(lossy)
    assert metrics.loss_events == 2
    assert metrics.packets_per_frame == len(lossy.packets) / 16
    assert metrics.recovery_frames == 2
