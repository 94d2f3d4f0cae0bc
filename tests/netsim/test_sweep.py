"""Sweeps: grid expansion, scenario overrides, dask execution, restart, and the run table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from netsim.sweep import (
    NoWorkersError,
    RunEvent,
    RunFiles,
    RunStatus,
    RunTask,
    SweepError,
    SweepResult,
    SweepSpec,
    apply_overrides,
    build_scenario,
    check_sweep,
    execute,
    expand,
    format_value,
    load_sweep,
    run_sweep,
    store_run,
)
from tests.analysis.synthetic_traces import write_synthetic_run


def synthetic_runner(task: RunTask, out_dir: Path) -> None:
    """Writes a synthetic run whose losses grow with the grid's loss rate (picklable)."""
    rate = dict(task.overrides).get("loss.loss_rate", 0.0)
    losses = {4 + i: 3 for i in range(int(rate * 10))}
    write_synthetic_run(out_dir, frames=12, losses=losses, seed=task.seed, name=task.run_id)


def finished(task: RunTask) -> bool:
    """Whether a synthetic run counts as done: its summary exists (its base is no scenario, so
    ``is_current`` has nothing to compare)."""
    return task.finished


def run_synthetic(spec: SweepSpec, runner=synthetic_runner, **options) -> SweepResult:
    """``run_sweep`` of a sweep whose base is no scenario: nothing to check before the runs,
    and a run counts as done when it finished (:func:`finished`)."""
    return run_sweep(spec, runner=runner, check=None, current=finished, **options)


def failing_runner(task: RunTask, out_dir: Path) -> None:
    """Fails the run with seed 1, like a run killed midway; the others succeed."""
    if task.seed == 1:
        raise RuntimeError("simulated crash\nsecond line")
    synthetic_runner(task, out_dir)


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
    result = run_synthetic(spec, workers=2, on_event=events.append)
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
    first = run_synthetic(spec, failing_runner, workers=2)
    assert sorted(first.failed) == ["loss.loss_rate_0.2__seed_1", "loss.loss_rate_0.4__seed_1"]
    assert first.failed["loss.loss_rate_0.2__seed_1"] == "RuntimeError: simulated crash"
    assert len(first.table) == 2  # only finished runs have rows
    events: list[RunEvent] = []
    second = run_synthetic(spec, workers=1, on_event=events.append)
    assert sorted(second.ran) == sorted(first.failed)
    assert sorted(second.skipped) == sorted(first.ran)
    assert [e.status for e in events[:2]] == [RunStatus.SKIPPED, RunStatus.SKIPPED]
    assert len(second.table) == 4


def test_a_finished_sweep_starts_no_cluster(tmp_path: Path, monkeypatch) -> None:
    spec = load_sweep(write_sweep(tmp_path))
    for task in expand(spec):
        synthetic_runner(task, task.out_dir)

    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr("distributed.LocalCluster", no_cluster)
    result = run_synthetic(spec, workers=2)
    assert result.ran == () and len(result.skipped) == 4 and len(result.table) == 4


def test_check_rejects_a_bad_run_before_any_run_starts(tmp_path: Path) -> None:
    spec = load_sweep(write_sweep(tmp_path))

    def check(task: RunTask) -> None:
        apply_overrides(Scenario(), {"loss.loss_rat": 0.1})

    with pytest.raises(SweepError, match="loss_rat"):
        run_sweep(spec, workers=2, runner=synthetic_runner, check=check)
    assert not (tmp_path / "out").exists()


def test_results_land_under_out_dir_relative_to_the_sweep_file(tmp_path: Path, monkeypatch) -> None:
    path = write_sweep(tmp_path / "sweeps", out_dir="out")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = load_sweep(path)
    assert spec.results_dir == tmp_path / "sweeps" / "out"
    result = run_synthetic(spec, workers=1)
    assert len(result.ran) == 4 and len(result.table) == 4
    for task in expand(spec):
        assert sorted(p.name for p in task.out_dir.iterdir()) == [
            "frames.csv",
            "packets.csv",
            "summary.json",
        ]
    assert list(elsewhere.iterdir()) == []


def test_a_run_comes_back_as_data_and_is_stored_whole(tmp_path: Path) -> None:
    (task,) = expand(load_sweep(write_sweep(tmp_path, grid={}, seeds=[3])))
    returned = execute(synthetic_runner, task)
    assert not task.out_dir.exists()  # the worker wrote into a scratch folder of its own
    assert [name for name, _ in returned.files] == ["frames.csv", "packets.csv", "summary.json"]
    store_run(task, returned)
    assert task.finished
    assert (task.out_dir / "frames.csv").read_bytes() == dict(returned.files)["frames.csv"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"frames.csv": b"", "packets.csv": b""}, "have no summary.json"),
        ({"summary.json": b"{}", "frames.csv": b"", "packets.csv": b"", "x.sh": b""}, "'x.sh'"),
        ({"summary.json": b"[1]", "frames.csv": b"", "packets.csv": b""}, "a JSON object"),
    ],
)
def test_results_that_are_not_a_runs_are_refused(tmp_path: Path, files: dict, message) -> None:
    (task,) = expand(load_sweep(write_sweep(tmp_path, grid={}, seeds=[0])))
    with pytest.raises(SweepError, match=message):
        store_run(task, RunFiles(task.run_id, tuple(files.items()), 1.0))
    assert not task.out_dir.exists()


def _forbid_clusters(monkeypatch) -> None:
    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr("distributed.LocalCluster", no_cluster)
    monkeypatch.setattr("distributed.Client", no_cluster)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"grid": {"loss/x.loss_rate": [1]}}, "'loss/x.loss_rate' is not a dotted field path"),
        ({"grid": {"name": ["x" * 2000]}}, "value 1 is 2002 bytes as JSON, at most 1024"),
        ({"grid": {"name": [{"a": list(range(600))}]}}, "at most 1024"),
        ({"grid": {"a": list(range(101)), "b": list(range(100))}}, "20200 runs, at most 10000"),
    ],
)
def test_oversized_or_odd_grids_are_refused_when_loaded(tmp_path: Path, fields, message) -> None:
    with pytest.raises(SweepError, match=message) as caught:
        load_sweep(write_sweep(tmp_path, **fields))
    assert "\n" not in str(caught.value) and "grid.yaml" in str(caught.value)


def test_a_grid_value_that_is_not_plain_data_is_refused(tmp_path: Path) -> None:
    path = write_sweep(tmp_path)
    path.write_text(path.read_text().replace("- 0.2", "- 2024-01-01"))
    with pytest.raises(SweepError, match="'loss.loss_rate' value 1 is a date, not plain data"):
        load_sweep(path)


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"name": ["x" * 300]}, "is 313 bytes, at most 255"),
        ({"name": ["Fast", "fast"]}, "same folder name name_fast__seed_0 where case is ignored"),
    ],
)
def test_run_folder_names_must_suit_common_file_systems(tmp_path: Path, grid, message) -> None:
    spec = load_sweep(write_sweep(tmp_path, grid=grid, seeds=[0]))
    with pytest.raises(SweepError, match=message):
        check_sweep(spec, check=None)


def test_a_result_path_longer_than_the_system_allows_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / "/".join(["d" * 200] * 21)
    spec = load_sweep(write_sweep(tmp_path, out_dir=str(deep)))
    with pytest.raises(SweepError, match="bytes, at most 4095"):
        check_sweep(spec, check=None)


def test_an_unusable_output_folder_stops_the_sweep_before_any_run(
    tmp_path: Path, monkeypatch
) -> None:
    (tmp_path / "out").write_text("a file")
    spec = load_sweep(write_sweep(tmp_path))
    _forbid_clusters(monkeypatch)
    with pytest.raises(SweepError, match=r"field 'out_dir': .*out: exists and is not a folder"):
        run_synthetic(spec, workers=2)


@pytest.mark.parametrize("kind", ["file", "foreign"])
def test_a_run_folder_that_a_run_cannot_replace_stops_the_sweep_before_any_run(
    tmp_path: Path, monkeypatch, kind: str
) -> None:
    spec = load_sweep(write_sweep(tmp_path))
    target = expand(spec)[2].out_dir
    target.parent.mkdir(parents=True)
    if kind == "file":
        target.write_text("a file")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("mine")
    _forbid_clusters(monkeypatch)
    message = "exists and is not a folder" if kind == "file" else r"holds files .*notes.txt"
    with pytest.raises(SweepError, match=message):
        run_synthetic(spec, workers=2)


def test_a_scheduler_without_workers_gives_one_line_after_the_wait(tmp_path: Path) -> None:
    from distributed import LocalCluster

    spec = load_sweep(write_sweep(tmp_path))
    with LocalCluster(
        n_workers=0, processes=False, dashboard_address=None, scheduler_port=0
    ) as cluster:
        start = time.monotonic()
        with pytest.raises(NoWorkersError, match=r"no worker joined within 1 s; 4 runs not run"):
            run_synthetic(spec, scheduler=cluster.scheduler_address, worker_wait_s=1.0)
        assert time.monotonic() - start < 20
    assert not any(task.finished for task in expand(spec))


@pytest.mark.parametrize(
    "text",
    [
        "base: base.yaml\ngrid: {a: " + "[" * 20_000 + "]" * 20_000 + "}\n",
        "base: base.yaml\nseeds: [" + "9" * 5000 + "]\n",
    ],
)
def test_a_sweep_nested_too_deeply_or_with_a_huge_integer_is_one_line(
    tmp_path: Path, text: str
) -> None:
    path = write_sweep(tmp_path)
    path.write_text(text)
    with pytest.raises(SweepError, match="grid.yaml") as caught:
        load_sweep(path)
    assert "\n" not in str(caught.value)


def test_checking_a_sweep_reads_its_base_scenario_once(tmp_path: Path, monkeypatch) -> None:
    import netsim.sweep

    base = Path(__file__).resolve().parents[2] / "scenarios" / "loss20.yaml"
    grid = {"network.forward.loss.loss_rate": [0.1, 0.2, 0.3]}
    spec = load_sweep(write_sweep(tmp_path, base=str(base), grid=grid, seeds=[0, 1]))
    loads = []
    real = netsim.sweep.load_scenario
    monkeypatch.setattr(netsim.sweep, "load_scenario", lambda p: loads.append(p) or real(p))
    assert len(check_sweep(spec)) == 6
    assert loads == [base.resolve()]


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[2] / "sweeps").glob("*.yaml")), ids=lambda p: p.stem
)
def test_every_shipped_sweep_builds_every_scenario_of_its_grid(path: Path) -> None:
    tasks = expand(load_sweep(path))
    assert tasks
    for task in tasks:
        build_scenario(task)
