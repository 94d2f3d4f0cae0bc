"""`netsim sweep` end to end: the command, real (tiny) simulator runs, kill and restart."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from netsim.cli import app
from netsim.sweep import expand, load_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[2]


def tiny_scenario(folder: Path) -> Path:
    """loss20.yaml with a random-weight tiny model on 64x64 frames: seconds per run."""
    data = yaml.safe_load((ROOT / "scenarios" / "loss20.yaml").read_text())
    data["codec"].update(checkpoint="none", preset="tiny")
    data["video"].update(width_px=64, height_px=64)
    path = folder / "tiny_loss.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def write_sweep(folder: Path, rates: list[float], seeds: list[int], frames: int = 6) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sweep = {
        "base": tiny_scenario(folder).name,
        "grid": {"network.forward.loss.loss_rate": rates},
        "seeds": seeds,
        "frames": frames,
        "out_dir": str(folder / "out"),
    }
    path = folder / "tiny_sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def start_sweep(path: Path, tasks: list, **popen: object) -> subprocess.Popen:
    """`netsim sweep` of ``path`` with one worker in a session of its own, returned once one
    of ``tasks`` has finished (the sweep still running); killed if that does not happen."""
    process = subprocess.Popen(
        [sys.executable, "-m", "netsim.cli", "sweep", str(path), "--workers", "1"],
        cwd=ROOT,
        start_new_session=True,
        **popen,
    )
    try:
        deadline = time.monotonic() + 240
        while not any(t.finished for t in tasks):
            assert process.poll() is None, "the sweep ended before a run finished"
            assert time.monotonic() < deadline, "no run finished in time"
            time.sleep(0.2)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    return process


def test_a_bad_field_path_exits_2_with_one_line_before_running(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, [0.2], [0])
    data = yaml.safe_load(path.read_text())
    data["grid"] = {"network.forward.loss.los_rate": [0.2]}
    path.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(app, ["sweep", str(path), "--workers", "1"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: scenario field 'network.forward.loss.los_rate': no field 'los_rate' at that level"
    ]
    assert not (tmp_path / "out").exists()


def test_a_missing_sweep_file_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sweep", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2
    assert "none.yaml: file not found" in result.output


@pytest.mark.slow
def test_sweep_command_runs_the_grid_and_writes_the_table(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, [0.2, 0.8], [0, 1])
    result = CliRunner().invoke(app, ["sweep", str(path), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "ran 4, skipped 0 finished, failed 0" in result.output
    table = pd.read_parquet(tmp_path / "out" / "sweep_table.parquet")
    assert len(table) == 4
    assert sorted(zip(table["network.forward.loss.loss_rate"], table["seed"], strict=True)) == [
        (0.2, 0),
        (0.2, 1),
        (0.8, 0),
        (0.8, 1),
    ]
    assert (table["summary.scenario.codec.preset"] == "tiny").all()
    assert table["summary.seed"].tolist() == table["seed"].tolist()
    assert (table["frames"] == 6).all()
    by_rate = table.groupby("network.forward.loss.loss_rate")["packet_loss_rate"].mean()
    assert by_rate[0.8] > by_rate[0.2]
    again = CliRunner().invoke(app, ["sweep", str(path), "--workers", "2"])
    assert again.exit_code == 0, again.output
    assert "ran 0, skipped 4 finished, failed 0" in again.output


@pytest.mark.slow
def test_a_killed_sweep_restarts_with_only_the_missing_runs(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, [0.2, 0.4, 0.6, 0.8], [0], frames=8)
    spec = load_sweep(path)
    tasks = expand(spec)
    process = start_sweep(path, tasks, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.killpg(process.pid, signal.SIGKILL)  # the sweep and its dask workers
    process.wait()
    finished = {t.run_id for t in tasks if t.finished}
    assert 0 < len(finished) < len(tasks)
    result = run_sweep(spec, workers=1)
    assert set(result.skipped) == finished
    assert set(result.ran) == {t.run_id for t in tasks} - finished
    assert len(result.table) == len(tasks)


def test_ctrl_c_ends_a_sweep_with_one_line_and_keeps_its_finished_runs(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, [0.2, 0.4, 0.6, 0.8], [0], frames=8)
    spec = load_sweep(path)
    tasks = expand(spec)
    process = start_sweep(path, tasks, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("interrupted: finished runs are kept"), err[-2000:]
    assert "Traceback" not in err and "Traceback" not in out
    finished = {t.run_id for t in tasks if t.finished}
    assert 0 < len(finished) < len(tasks)
    for task in tasks:  # a run folder is whole or absent: nothing half-written is left
        folder = spec.out_dir / task.run_id
        assert task.finished or not folder.exists(), task.run_id
    result = run_sweep(spec, workers=1)
    assert set(result.skipped) == finished
    assert set(result.ran) == {t.run_id for t in tasks} - finished


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"out_dir": "taken"}, r"field 'out_dir': .*taken: exists and is not a folder"),
        ({"grid": {"name": ["n" * 300]}}, "run folder name name_n.* is 313 bytes, at most 255"),
        ({"grid": {"name": ["n" * 1100]}}, "field 'grid': .*value 1 is 1102 bytes"),
        (
            {"grid": {"network.forward.loss.loss_rate": [0.2, 7.0]}},
            "scenario field 'network.forward.loss.loss_rate'",
        ),
    ],
)
def test_every_sweep_input_is_checked_before_the_first_run(
    tmp_path: Path, monkeypatch, change: dict, message: str
) -> None:
    path = write_sweep(tmp_path, [0.2], [0])
    data = {**yaml.safe_load(path.read_text()), **change}
    path.write_text(yaml.safe_dump(data))
    (tmp_path / "taken").write_text("a file")

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr("distributed.LocalCluster", no_cluster)
    result = CliRunner().invoke(app, ["sweep", str(path), "--workers", "1"])
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert re.match(f"error: .*{message}", line), line
    assert not (tmp_path / "out").exists()


def test_a_sweep_runs_again_what_other_weights_or_another_scenario_made(tmp_path: Path) -> None:
    import torch

    from codec.model.checkpoint import load_model, model_id_for, save_checkpoint
    from netsim.sweep import is_current

    weights = tmp_path / "tiny.pt"
    model = load_model("none", preset="tiny")
    save_checkpoint(model, weights)
    path = write_sweep(tmp_path, [0.2], [0], frames=3)
    scenario = yaml.safe_load((tmp_path / "tiny_loss.yaml").read_text())
    scenario["codec"].update(checkpoint=str(weights), preset=None)
    (tmp_path / "tiny_loss.yaml").write_text(yaml.safe_dump(scenario))
    spec = load_sweep(path)
    (task,) = expand(spec)

    first = run_sweep(spec, workers=1)
    assert first.ran == (task.run_id,) and first.stale == () and is_current(task)
    assert run_sweep(spec, workers=1).skipped == (task.run_id,)

    with torch.no_grad():  # new weights in the same file: the finished run is stale
        next(model.parameters()).add_(0.01)
    save_checkpoint(model, weights)
    assert task.finished and not is_current(task)
    second = run_sweep(spec, workers=1)
    assert second.ran == second.stale == (task.run_id,)
    assert second.table["summary.model.id"].tolist() == [model_id_for(model)]

    scenario["description"] = "edited"  # a changed scenario file: stale again
    (tmp_path / "tiny_loss.yaml").write_text(yaml.safe_dump(scenario))
    result = CliRunner().invoke(app, ["sweep", str(path), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "ran 1 (1 replacing stale results), skipped 0 finished" in result.output
    assert is_current(task)


def test_netsim_run_skip_current_reruns_only_a_stale_folder(tmp_path: Path) -> None:
    scenario = tiny_scenario(tmp_path)
    out = tmp_path / "run"
    command = ["run", str(scenario), "--frames", "2", "--out", str(out), "--skip-current"]
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 0, first.output
    made = (out / "summary.json").stat().st_mtime_ns
    again = CliRunner().invoke(app, command)
    assert again.exit_code == 0 and "current" in again.output and "not run" in again.output
    assert (out / "summary.json").stat().st_mtime_ns == made
    other_frames = CliRunner().invoke(app, [*command[:2], "--frames", "3", *command[4:]])
    assert other_frames.exit_code == 0 and "not run" not in other_frames.output
    assert (out / "summary.json").stat().st_mtime_ns != made
