"""Sweeps: grid expansion, scenario overrides, dask execution, restart, and the run table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from netsim.sweep import (
    RunEvent,
    RunStatus,
    RunTask,
    SweepError,
    apply_overrides,
    expand,
    format_value,
    load_sweep,
    run_sweep,
)
from tests.analysis.synthetic_traces import write_synthetic_run


def synthetic_runner(task: RunTask) -> None:
    """Writes a synthetic run whose losses grow with the grid's loss rate (picklable)."""
    rate = dict(task.overrides).get("loss.loss_rate", 0.0)
    losses = {4 + i: 3 for i in range(int(rate * 10))}
    write_synthetic_run(task.out_dir, frames=12, losses=losses, seed=task.seed, name=task.run_id)


def failing_runner(task: RunTask) -> None:
    """Fails the run with seed 1, like a run killed midway; the others succeed."""
    if task.seed == 1:
        raise RuntimeError("simulated crash\nsecond line")
    synthetic_runner(task)


def write_sweep(folder: Path, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.yaml").write_text("name: base\n")
    data = {
        "base": "base.yaml",
        "grid": {"loss.loss_rate": [0.2, 0.4]},
        "seeds": [0, 1],
        "out_dir": str(folder / "out"),
        **fields,
    }
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_expand_is_the_grid_times_the_seeds(tmp_path: Path) -> None:
    spec = load_sweep(write_sweep(tmp_path, grid={"a.b": [1, 2, 3], "c": ["x", "y"]}))
    tasks = expand(spec)
    assert len(tasks) == 3 * 2 * 2
    assert tasks[0].run_id == "a.b_1__c_x__seed_0"
    assert tasks[-1].parameters == {"a.b": 3, "c": "y", "seed": 1}
    assert len({t.out_dir for t in tasks}) == len(tasks)
    assert all(t.out_dir.parent == tmp_path / "out" for t in tasks)
    assert spec.base == (tmp_path / "base.yaml").resolve()


def test_folder_names_are_filesystem_safe() -> None:
    assert format_value(0.1) == "0.1"
    assert format_value(True) == "true"
    assert format_value("a b/c") == "a_b_c"
    assert format_value({"kind": "bernoulli", "p": 0.5}) == "kind_bernoulli_p_0.5"


def test_colliding_folder_names_are_rejected(tmp_path: Path) -> None:
    spec = load_sweep(write_sweep(tmp_path, grid={"video": ["a/b", "a b"]}))
    with pytest.raises(SweepError, match="same folder name"):
        expand(spec)


def test_default_output_folder_is_named_after_the_sweep(tmp_path: Path) -> None:
    path = write_sweep(tmp_path)
    data = yaml.safe_load(path.read_text())
    del data["out_dir"]
    path.write_text(yaml.safe_dump(data))
    assert load_sweep(path).results_dir == Path("results/sweeps/grid")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"gird": {}}, "field 'gird': Extra inputs are not permitted"),
        ({"seeds": []}, "field 'seeds'"),
        ({"grid": {"loss..rate": [1]}}, "not a dotted field path"),
        ({"grid": {"loss.rate": []}}, "has no values"),
        ({"base": "missing.yaml"}, "field 'base': scenario file .*missing.yaml not found"),
        ({"frames": 0}, "field 'frames'"),
    ],
)
def test_bad_sweep_files_fail_with_one_line(tmp_path: Path, fields: dict, message: str) -> None:
    with pytest.raises(SweepError, match=message) as caught:
        load_sweep(write_sweep(tmp_path, **fields))
    assert "\n" not in str(caught.value)
    assert "grid.yaml" in str(caught.value)


class Loss(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["bernoulli"] = "bernoulli"
    loss_rate: float = 0.0


class NoLoss(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["none"] = "none"


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "s"
    loss: Annotated[Loss | NoLoss, Field(discriminator="kind")] = Loss()


def test_overrides_replace_nested_fields_and_revalidate() -> None:
    scenario = Scenario()
    changed = apply_overrides(scenario, {"loss.loss_rate": "0.4", "name": "x"})
    assert isinstance(changed, Scenario)
    assert changed.loss.loss_rate == 0.4  # validated: the string became a float
    assert changed.name == "x"
    assert scenario.loss.loss_rate == 0.0  # the base scenario is untouched


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"loss.los_rate": 0.2}, "'loss.los_rate': no field 'los_rate'"),
        ({"los.loss_rate": 0.2}, "no field 'los'"),
        ({"loss.loss_rate": "high"}, "^scenario field 'loss.loss_rate': Input should be a valid"),
        ({"loss": {"kind": "none", "x": 1}}, "^scenario field 'loss.x': unknown field"),
    ],
)
def test_bad_overrides_name_the_field(overrides: dict, message: str) -> None:
    with pytest.raises(SweepError, match=message):
        apply_overrides(Scenario(), overrides)


def test_sweep_runs_on_two_workers_and_gathers_one_row_per_run(tmp_path: Path) -> None:
    spec = load_sweep(write_sweep(tmp_path))
    events: list[RunEvent] = []
    result = run_sweep(spec, workers=2, runner=synthetic_runner, check=None, on_event=events.append)
    assert sorted(result.ran) == sorted(t.run_id for t in expand(spec))
    assert result.skipped == () and not result.failed
    assert [e.done for e in events] == [1, 2, 3, 4]
    assert all(e.status is RunStatus.FINISHED and e.wall_s > 0 for e in events)
    table = pd.read_parquet(tmp_path / "out" / "sweep_table.parquet")
    assert len(table) == 4
    assert table["loss.loss_rate"].tolist() == [0.2, 0.2, 0.4, 0.4]
    assert table["seed"].tolist() == [0, 1, 0, 1]
    lost = table["packets_lost"].tolist()  # gathered from each run's summary.json
    assert lost[0] == lost[1] < lost[2] == lost[3]
    csv = pd.read_csv(tmp_path / "out" / "sweep_table.csv")
    assert csv["run"].tolist() == table["run"].tolist()


def test_restart_runs_only_the_missing_runs(tmp_path: Path) -> None:
    spec = load_sweep(write_sweep(tmp_path))
    first = run_sweep(spec, workers=2, runner=failing_runner, check=None)
    assert sorted(first.failed) == ["loss.loss_rate_0.2__seed_1", "loss.loss_rate_0.4__seed_1"]
    assert first.failed["loss.loss_rate_0.2__seed_1"] == "RuntimeError: simulated crash"
    assert len(first.table) == 2  # only finished runs have rows
    events: list[RunEvent] = []
    second = run_sweep(spec, workers=1, runner=synthetic_runner, check=None, on_event=events.append)
    assert sorted(second.ran) == sorted(first.failed)
    assert sorted(second.skipped) == sorted(first.ran)
    assert [e.status for e in events[:2]] == [RunStatus.SKIPPED, RunStatus.SKIPPED]
    assert len(second.table) == 4


def test_a_finished_sweep_starts_no_cluster(tmp_path: Path, monkeypatch) -> None:
    spec = load_sweep(write_sweep(tmp_path))
    for task in expand(spec):
        synthetic_runner(task)

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr("distributed.LocalCluster", no_cluster)
    result = run_sweep(spec, workers=2, runner=synthetic_runner, check=None)
    assert result.ran == () and len(result.skipped) == 4 and len(result.table) == 4


def test_check_rejects_a_bad_run_before_any_run_starts(tmp_path: Path) -> None:
    spec = load_sweep(write_sweep(tmp_path))

    def check(task: RunTask) -> None:
        apply_overrides(Scenario(), {"loss.loss_rat": 0.1})

    with pytest.raises(SweepError, match="loss_rat"):
        run_sweep(spec, workers=2, runner=synthetic_runner, check=check)
    assert not (tmp_path / "out").exists()
