"""`make figures`: planning the runs, reusing current results, and drawing every figure."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from analysis.io import load_frames
from analysis.make_figures import (
    ECHO_DELAY_FRAMES_FIELD,
    MAX_SCALES_FIELD,
    is_current,
    main,
    parse_overrides,
    plan_figures,
    scenario_of,
)
from analysis.sweep import SweepError
from tests.analysis.synthetic_traces import write_synthetic_run

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
TINY = {
    "codec.checkpoint": "none",
    "codec.preset": "tiny",
    "video.width_px": 64,
    "video.height_px": 64,
}

app = typer.Typer()
app.command()(main)


def test_overrides_parse_as_yaml_values() -> None:
    assert parse_overrides(["codec.lam=512", "codec.checkpoint=none", "a.b=[1, 2]"]) == {
        "codec.lam": 512,
        "codec.checkpoint": "none",
        "a.b": [1, 2],
    }
    with pytest.raises(SweepError, match="expected FIELD=VALUE"):
        parse_overrides(["codec.lam"])


def test_plan_derives_progressive_and_echo_variants(tmp_path: Path) -> None:
    plan = plan_figures(SCENARIOS, tmp_path, frames=8, echo_delays=[1, 3])
    assert [r.name for r in plan.loss] == ["loss20", "loss40", "loss60", "loss80"]
    assert [r.label for r in plan.loss] == [
        "20% packet loss",
        "40% packet loss",
        "60% packet loss",
        "80% packet loss",
    ]
    assert [r.name for r in plan.progressive] == [f"progressive_m{m}" for m in (1, 2, 3, 4)]
    assert [scenario_of(r.task).sender.max_scales for r in plan.progressive] == [1, 2, 3, 4]
    assert [r.name for r in plan.echo] == ["echo_delay_1f", "echo_delay_3f"]
    echo = scenario_of(plan.echo[1].task)
    assert echo.network.feedback.delay_frames == 3 and echo.network.feedback.delay_ms is None
    assert echo.name == "echo_delay_3f"
    assert plan.echo[1].label == "3 frames (120 ms)"
    assert dict(plan.progressive[0].task.overrides)[MAX_SCALES_FIELD] == 1
    assert dict(plan.echo[0].task.overrides)[ECHO_DELAY_FRAMES_FIELD] == 1
    assert all(r.task.frames == 8 and r.task.out_dir.parent == tmp_path for r in plan.runs)
    assert len({r.name for r in plan.runs}) == len(plan.runs)
    # unchanged scenarios keep their own name, so `netsim run` results are reusable
    assert plan.clean.task.overrides == ()


def write_matching_summary(task, frames: int) -> None:
    scenario = scenario_of(task)
    write_synthetic_run(task.out_dir, frames=frames)
    summary = {
        "scenario": json.loads(scenario.model_dump_json()),
        "seed": scenario.seed,
        "frames": frames,
    }
    (task.out_dir / "summary.json").write_text(json.dumps(summary))


def test_results_are_reused_only_when_current(tmp_path: Path) -> None:
    scenarios = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, scenarios)
    plan = plan_figures(scenarios, tmp_path / "results", frames=4, overrides=TINY)
    task = plan.loss[0].task
    assert not is_current(task)  # nothing there yet
    write_matching_summary(task, frames=4)
    assert is_current(task)
    other = plan_figures(scenarios, tmp_path / "results", frames=5, overrides=TINY).loss[0].task
    assert not is_current(other)  # another frame count
    lam = plan_figures(
        scenarios, tmp_path / "results", frames=4, overrides={**TINY, "codec.lam": 512}
    )
    assert not is_current(lam.loss[0].task)  # another scenario
    summary = task.out_dir / "summary.json"
    newer = summary.stat().st_mtime + 10
    os.utime(task.base, (newer, newer))
    assert not is_current(task)  # the scenario file changed after the run


@pytest.mark.slow
def test_make_figures_runs_the_scenarios_and_writes_every_figure(tmp_path: Path) -> None:
    args = ["--out", str(tmp_path / "figures"), "--results", str(tmp_path / "results")]
    args += ["--scenarios", str(SCENARIOS), "--frames", "10", "--workers", "2", "--rd-frames", "2"]
    for field, value in TINY.items():
        args += ["--set", f"{field}={value}"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    names = ["loss_resilience", "progressive", "echo_delay", "rate_share", "rd_curves"]
    for name in names:
        for extension in ("png", "pdf"):
            assert (tmp_path / "figures" / f"{name}.{extension}").stat().st_size > 1000
    assert "12 runs needed: 0 current, 12 to run" in first.output
    # the scale-4 loss of frame 5 is echoed; with a 3-frame echo delay frame 9 re-syncs
    echo = load_frames(tmp_path / "results" / "echo_delay_3f")
    assert echo.loc[echo["frame_type"] == "R", "frame"].tolist() == [9]
    assert echo.loc[echo["echo_sent"] > 0, "frame"].tolist() == [5]
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "12 runs needed: 12 current, 0 to run" in again.output
