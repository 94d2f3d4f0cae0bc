"""`make figures`: planning the runs, reusing current results, and drawing every figure."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import analysis.make_figures as make_figures
from analysis.io import load_frames
from analysis.make_figures import (
    COMMITTED_RD,
    ECHO_DELAY_FRAMES_FIELD,
    MAX_SCALES_FIELD,
    is_current,
    main,
    parse_overrides,
    plan_figures,
    psnr_vs_loss_figure,
    scenario_of,
)
from netsim.scenario import expected_model_id
from netsim.sweep import SweepError
from tests.analysis.synthetic_traces import write_synthetic_run
from tests.analysis.test_analysis_figures import legend_texts
from tests.analysis.test_analysis_io import write_rd

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
        "loss rate set to 20%",
        "loss rate set to 40%",
        "loss rate set to 60%",
        "loss rate set to 80%",
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
        "model": {"id": expected_model_id(scenario)},
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
    summary = json.loads((task.out_dir / "summary.json").read_text())
    made_by_other_weights = {**summary, "model": {"id": "tiny-0123456789abcdef"}}
    (task.out_dir / "summary.json").write_text(json.dumps(made_by_other_weights))
    assert not is_current(task)  # the weights the scenario loads have changed since
    write_matching_summary(task, frames=4)
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
    args += ["--scenarios", str(SCENARIOS), "--frames", "10", "--workers", "2", "--rd-eval", "2"]
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


FIGURES = ["loss_resilience", "progressive", "echo_delay", "rate_share", "rd_curves"]


@pytest.fixture
def current_results(tmp_path: Path) -> list[str]:
    """Synthetic results, current for every run of a tiny 8-frame plan; the CLI arguments
    that draw them into tmp_path/figures without running the simulator."""
    scenarios = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, scenarios)
    plan = plan_figures(scenarios, tmp_path / "results", frames=8, overrides=TINY)
    for run in plan.runs:
        write_matching_summary(run.task, frames=8)
    args = ["--out", str(tmp_path / "figures"), "--results", str(tmp_path / "results")]
    args += ["--scenarios", str(scenarios), "--frames", "8", "--workers", "1"]
    for field, value in TINY.items():
        args += ["--set", f"{field}={value}"]
    return args


@pytest.fixture
def drawn_rd(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Records what the RD figure is drawn from; fails any RD evaluation."""
    drawn: dict = {}
    real = make_figures.plot_rd

    def spy(rd, title=None):
        drawn.update(rd=rd, title=title, figure=real(rd, title=title))
        return drawn["figure"]

    def no_eval(*args, **kwargs):
        raise AssertionError("make figures ran an RD evaluation")

    monkeypatch.setattr(make_figures, "plot_rd", spy)
    monkeypatch.setattr(make_figures, "evaluate_rd", no_eval)
    return drawn


def test_rd_figure_is_drawn_from_the_committed_json_without_an_eval(
    tmp_path: Path, current_results: list[str], drawn_rd: dict
) -> None:
    result = CliRunner().invoke(app, current_results)
    assert result.exit_code == 0, result.output
    assert "0 to run" in result.output
    assert COMMITTED_RD == ROOT / "docs" / "rd_bikes.json"
    committed = json.loads(COMMITTED_RD.read_text())
    assert drawn_rd["rd"] == committed
    assert committed["frames"] == 96
    title = drawn_rd["title"]
    assert title.startswith("Rate-distortion (docs/rd_bikes.json, model base-")
    assert "sample:bikes, 640x272 px, 96 frames, lambda 64-8192 (6 values), GOP 32" in title
    assert str(ROOT) not in title  # nothing in the picture depends on where the clone is
    # the BD-rates in the legend are the ones docs/MODEL_CARD.md quotes
    card = (ROOT / "docs" / "MODEL_CARD.md").read_text()
    quoted = re.findall(r"[+-]\d+\.\d%", " ".join(legend_texts(drawn_rd["figure"])))
    expected = [
        f"{committed['bd_rate'][anchor][metric]:+.1f}%"
        for anchor in ("x264", "x265")
        for metric in ("psnr", "ms_ssim")
    ]
    assert sorted(quoted) == sorted(expected)
    for number in quoted:
        assert number in card, number
    for name in FIGURES:
        assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 1000


def test_make_figures_twice_writes_byte_identical_figures(
    tmp_path: Path, current_results: list[str], drawn_rd: dict
) -> None:
    first = CliRunner().invoke(app, current_results)
    assert first.exit_code == 0, first.output
    files = sorted((tmp_path / "figures").iterdir())
    assert [f.name for f in files] == sorted(f"{n}.{e}" for n in FIGURES for e in ("pdf", "png"))
    before = {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in files}
    shutil.copytree(tmp_path / "figures", tmp_path / "first")
    os.utime(tmp_path / "figures" / "rate_share.png", ns=(0, 0))  # an old file, same bytes
    again = CliRunner().invoke(app, current_results)
    assert again.exit_code == 0, again.output
    for name, (data, mtime) in before.items():
        path = tmp_path / "figures" / name
        assert path.read_bytes() == data, name
        if name != "rate_share.png":
            assert path.stat().st_mtime_ns == mtime, f"{name} was rewritten"


def test_rd_eval_runs_only_when_asked_and_excludes_rd(
    tmp_path: Path, current_results: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluations = []

    def fake_eval(clean, rd_path, frames, on_progress=None):
        evaluations.append(frames)
        rd_path.parent.mkdir(parents=True, exist_ok=True)
        write_rd(rd_path)

    monkeypatch.setattr(make_figures, "evaluate_rd", fake_eval)
    result = CliRunner().invoke(app, [*current_results, "--rd-eval", "8"])
    assert result.exit_code == 0, result.output
    assert evaluations == [8]
    assert (tmp_path / "results" / "rd" / "rd.json").is_file()
    again = CliRunner().invoke(app, [*current_results, "--rd-eval", "8"])
    assert again.exit_code == 0, again.output
    assert evaluations == [8]  # the 8-frame eval is current: reused
    both = CliRunner().invoke(app, [*current_results, "--rd-eval", "8", "--rd", str(COMMITTED_RD)])
    assert both.exit_code == 2
    assert "exclude each other" in both.output


def test_sweep_option_draws_psnr_against_loss(
    tmp_path: Path, current_results: list[str], drawn_rd: dict
) -> None:
    table = pd.DataFrame(
        {
            "run": [f"r{i}" for i in range(4)],
            "network.forward.loss.loss_rate": [0.2, 0.2, 0.4, 0.4],
            "seed": [0, 1, 0, 1],
            "mean_psnr_db": [30.0, 32.0, 27.0, 25.0],
            "packet_loss_rate": [0.1, 0.12, 0.25, 0.27],
            "summary.scenario.video.source": ["sample:bikes"] * 4,
        }
    )
    table.to_csv(tmp_path / "sweep_table.csv", index=False)
    result = CliRunner().invoke(
        app, [*current_results, "--sweep", str(tmp_path / "sweep_table.csv")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "figures" / "psnr_vs_loss.png").stat().st_size > 1000
    figure = psnr_vs_loss_figure(table)
    assert [t.get_text() for t in figure.axes[0].texts] == ["set 20%", "set 40%"]
    assert "sample:bikes, seeds 0, 1" in figure.get_suptitle()
    missing = CliRunner().invoke(app, [*current_results, "--sweep", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2
    assert "sweep table not found" in missing.output


def test_the_committed_rd_json_measured_the_shipped_weights() -> None:
    from codec.model.checkpoint import DEFAULT_CHECKPOINT

    committed = json.loads(COMMITTED_RD.read_text())
    assert committed["model"]["model_id"] == make_figures.checkpoint_model_id(DEFAULT_CHECKPOINT)
