"""Parameter sweeps over scenario fields and seeds, run on dask.distributed.

A sweep file (YAML) names a base scenario, a grid of scenario fields given as dotted paths, and
seeds::

    base: ../scenarios/loss20.yaml      # relative to the sweep file
    grid:
      network.forward.loss.loss_rate: [0.2, 0.4, 0.6, 0.8]
    seeds: [0, 1, 2]
    frames: 16                          # optional: shorten every run
    out_dir: results/sweeps/loss_grid   # optional; relative to the working directory

Every grid point x seed is one run with its own result folder named from its parameters
(``network.forward.loss.loss_rate_0.2__seed_1``). A run is finished when its ``summary.json``
exists (the simulator writes its result files atomically), so a restarted sweep runs only the
missing runs.
Runs execute on a dask ``LocalCluster`` of ``workers`` single-threaded worker processes (one
torch thread per task), or on an existing cluster given by its scheduler address. At the end
every finished run is loaded and summarised into ``sweep_table.parquet`` and ``sweep_table.csv``
(one row per run: parameters, :class:`analysis.metrics.RunMetrics`, flattened summary.json).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator

from analysis.io import SUMMARY_FILE, load_run
from analysis.metrics import summary_table

TABLE_STEM = "sweep_table"
DEFAULT_RESULTS = Path("results") / "sweeps"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


class SweepError(ValueError):
    """A sweep file or one of the scenarios it derives is invalid (one line: file and field)."""


class SweepSpec(BaseModel):
    """A validated sweep file. ``base`` is resolved against the sweep file's folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    base: Path
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    frames: PositiveInt | None = None
    device: str = "cpu"
    out_dir: Path | None = None

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for path, values in grid.items():
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"'{path}' is not a dotted field path")
            if not values:
                raise ValueError(f"'{path}' has no values")
        return grid

    @property
    def results_dir(self) -> Path:
        """Where the run folders and the table go."""
        return self.out_dir if self.out_dir is not None else DEFAULT_RESULTS / self.name


def load_sweep(path: Path) -> SweepSpec:
    """Read and validate a sweep file; raises :class:`SweepError` naming the file and field."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SweepError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from error
    if not isinstance(data, dict):
        raise SweepError(f"{path}: must hold a mapping with at least 'base'")
    data = {"name": path.stem, **data}
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise SweepError(f"{path}: field '{where}': {first['msg']}") from error
    base = spec.base if spec.base.is_absolute() else (path.parent / spec.base)
    if not base.is_file():
        raise SweepError(f"{path}: field 'base': scenario file {base} not found")
    return spec.model_copy(update={"base": base.resolve()})


def format_value(value: Any) -> str:
    """A parameter value as it appears in a folder name: short, filesystem-safe."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, str | int):
        text = str(value)
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return _UNSAFE.sub("_", text).strip("_") or "_"


@dataclass(frozen=True)
class RunTask:
    """One run: what a worker needs to execute it. ``overrides`` maps dotted scenario field
    paths to values; ``seed`` and ``frames`` replace the scenario's unless None; ``out_dir`` is
    the run's own result folder."""

    run_id: str
    base: Path
    overrides: tuple[tuple[str, Any], ...]
    seed: int | None
    frames: int | None
    device: str
    out_dir: Path

    @property
    def parameters(self) -> dict[str, Any]:
        """Grid values and seed, as table columns."""
        return {**dict(self.overrides), "seed": self.seed}

    @property
    def finished(self) -> bool:
        """True when the run's summary.json exists (result files are written atomically)."""
        return (self.out_dir / SUMMARY_FILE).is_file()


def expand(spec: SweepSpec) -> list[RunTask]:
    """All runs of a sweep: the cartesian product of the grid (in file order) and the seeds."""
    paths = list(spec.grid)
    tasks = []
    for values in itertools.product(*(spec.grid[p] for p in paths)):
        for seed in spec.seeds:
            overrides = tuple(zip(paths, values, strict=True))
            parts = [f"{p}_{format_value(v)}" for p, v in overrides] + [f"seed_{seed}"]
            run_id = "__".join(parts)
            tasks.append(
                RunTask(
                    run_id=run_id,
                    base=spec.base,
                    overrides=overrides,
                    seed=seed,
                    frames=spec.frames,
                    device=spec.device,
                    out_dir=spec.results_dir / run_id,
                )
            )
    seen: dict[str, RunTask] = {}
    for task in tasks:
        if task.run_id in seen:
            raise SweepError(
                f"sweep '{spec.name}': runs {seen[task.run_id].parameters} and {task.parameters} "
                f"map to the same folder name {task.run_id}"
            )
        seen[task.run_id] = task
    return tasks


def set_path(data: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of nested mapping ``data`` with the field at dotted ``path`` set to ``value``;
    every component of the path must already exist (KeyError names the first missing one)."""
    head, _, rest = path.partition(".")
    if not isinstance(data, Mapping) or head not in data:
        raise KeyError(head)
    copy = dict(data)
    copy[head] = set_path(data[head], rest, value) if rest else value
    return copy


def apply_overrides(
    scenario: BaseModel, overrides: Mapping[str, Any], context: Mapping[str, Any] | None = None
) -> BaseModel:
    """A copy of a pydantic scenario with fields at dotted paths replaced, re-validated (with
    validation ``context``, e.g. the folder that relative paths are resolved against).

    Raises :class:`SweepError` for a path that names no field or a value the scenario's
    validation rejects.
    """
    data = scenario.model_dump(by_alias=True)
    for path, value in overrides.items():
        try:
            data = set_path(data, path, value)
        except KeyError as error:
            raise SweepError(
                f"scenario field '{path}': no field '{error.args[0]}' at that level"
            ) from None
    try:
        return type(scenario).model_validate(data, context=dict(context or {}))
    except ValidationError as error:
        first = error.errors()[0]
        where = _field_path(first["loc"], data)
        raise SweepError(f"scenario field '{where}': {first['msg']}") from error


def _field_path(loc: Sequence[int | str], data: Any) -> str:
    """A validation error's location as the dotted path the user writes: pydantic's names of
    tagged-union variants (``bernoulli`` in ``loss.bernoulli.loss_rate``) are left out."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(node, Mapping) and item in node:
            node = node[item]
        elif isinstance(node, Mapping) and node.get("kind") == item:
            continue
        else:
            node = None
        parts.append(str(item))
    return ".".join(parts)


def build_scenario(task: RunTask) -> BaseModel:
    """The scenario of one run: the base scenario file with the run's overrides applied."""
    from netsim.scenario import load_scenario

    base = load_scenario(task.base)
    if not task.overrides:
        return base
    return apply_overrides(base, dict(task.overrides), {"base_dir": task.base.parent})


def simulate(task: RunTask) -> None:
    """Default runner: build the run's scenario and simulate it into ``task.out_dir``."""
    from netsim.runner import run_scenario

    run_scenario(
        build_scenario(task), task.out_dir, frames=task.frames, seed=task.seed, device=task.device
    )


def execute(runner: Callable[[RunTask], None], task: RunTask) -> float:
    """Worker entry point: one torch thread, run the task; returns its wall time in seconds."""
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    runner(task)
    return time.perf_counter() - start


class RunStatus(StrEnum):
    """How a run of a sweep settled."""

    SKIPPED = "skipped"  # already finished before this sweep started
    FINISHED = "finished"
    FAILED = "failed"


@dataclass(frozen=True)
class RunEvent:
    """Reported once per run as it settles; ``done`` of ``total`` runs have settled."""

    run_id: str
    status: RunStatus
    done: int
    total: int
    wall_s: float = float("nan")
    error: str = ""


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did: the table of every finished run, where it was written, the runs that
    ran, were skipped, or failed (run id -> one-line error), and the sweep's wall time."""

    table: pd.DataFrame
    table_paths: tuple[Path, ...]
    ran: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: Mapping[str, str] = field(default_factory=dict)
    wall_s: float = 0.0


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(temporary)``, then rename it to ``path`` (``codec.fileio.atomic_file``)."""
    from codec.fileio import atomic_file  # imported here: the codec package loads torch

    with atomic_file(path) as temporary:
        write(temporary)


def gather(tasks: Sequence[RunTask], out_dir: Path) -> tuple[pd.DataFrame, tuple[Path, ...]]:
    """Summarise every finished run of ``tasks`` into one table (a row per run, in task
    order) and write it to ``out_dir/sweep_table.parquet`` and ``.csv`` atomically."""
    finished = [task for task in tasks if task.finished]
    runs = [load_run(task.out_dir, name=task.run_id) for task in finished]
    table = summary_table(runs, {task.run_id: task.parameters for task in finished})
    out_dir.mkdir(parents=True, exist_ok=True)
    parquet = out_dir / f"{TABLE_STEM}.parquet"
    csv = out_dir / f"{TABLE_STEM}.csv"
    # Parquet needs one type per column: JSON-encode object columns of mixed types.
    storable = table.copy()
    for column in storable.columns:
        if storable[column].dtype == object and storable[column].map(type).nunique() > 1:
            storable[column] = storable[column].map(
                lambda v: v if isinstance(v, str) or v is None else json.dumps(v)
            )
    _write_atomically(parquet, lambda p: storable.to_parquet(p, index=False))
    _write_atomically(csv, lambda p: table.to_csv(p, index=False))
    return table, (parquet, csv)


def _error_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def run_tasks(
    tasks: Sequence[RunTask],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    runner: Callable[[RunTask], None] = simulate,
    on_event: Callable[[RunEvent], None] | None = None,
    already_done: int = 0,
    total: int | None = None,
) -> tuple[list[str], dict[str, str]]:
    """Execute ``tasks`` on dask; returns the run ids that finished and those that failed
    (run id -> one-line error). A run that raises does not stop the others.

    Runs go to a new ``LocalCluster(n_workers=workers, threads_per_worker=1)`` that is closed
    afterwards, or to the existing cluster whose scheduler listens at ``scheduler``. Events
    count ``already_done`` settled runs of ``total`` (default: ``len(tasks)``) before these.
    """
    if workers < 1:
        raise SweepError(f"workers must be at least 1, not {workers}")
    total = len(tasks) if total is None else total
    ran: list[str] = []
    failed: dict[str, str] = {}
    if not tasks:
        return ran, failed
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address="127.0.0.1:0",  # HTTP server on a free local port: no clash
            silence_logs=logging.ERROR,
            env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        )
    done = already_done
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            futures = {
                client.submit(execute, runner, task, key=f"run-{task.run_id}", pure=False): task
                for task in tasks
            }
            for future in as_completed(futures):
                task = futures[future]
                done += 1
                try:
                    wall_s = float(future.result())
                except Exception as error:  # a failed run must not stop the others
                    failed[task.run_id] = _error_line(error)
                    event = RunEvent(
                        task.run_id, RunStatus.FAILED, done, total, error=failed[task.run_id]
                    )
                else:
                    ran.append(task.run_id)
                    event = RunEvent(task.run_id, RunStatus.FINISHED, done, total, wall_s)
                if on_event is not None:
                    on_event(event)
    finally:
        if cluster is not None:
            cluster.close()
    return ran, failed


def check_sweep(
    spec: SweepSpec, check: Callable[[RunTask], Any] | None = build_scenario
) -> list[RunTask]:
    """The runs of ``spec``, each passed through ``check`` (by default: build its scenario, so
    that a bad field path or value raises here, before anything runs)."""
    tasks = expand(spec)
    if check is not None:
        for task in tasks:
            check(task)
    return tasks


def run_sweep(
    spec: SweepSpec,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    runner: Callable[[RunTask], None] = simulate,
    check: Callable[[RunTask], Any] | None = build_scenario,
    on_event: Callable[[RunEvent], None] | None = None,
) -> SweepResult:
    """Run every unfinished run of ``spec`` (see :func:`run_tasks`) and gather the table.

    ``check`` is applied to every run in this process before any cluster starts (by default it
    builds each run's scenario, so a bad field path fails fast). Runs already finished are
    reported as skipped and not run again. ``on_event`` hears about every run as it settles.
    """
    if workers < 1:
        raise SweepError(f"sweep '{spec.name}': workers must be at least 1, not {workers}")
    start = time.perf_counter()
    tasks = check_sweep(spec, check)
    todo = [task for task in tasks if not task.finished]
    skipped = tuple(task.run_id for task in tasks if task.finished)
    for done, run_id in enumerate(skipped, start=1):
        if on_event is not None:
            on_event(RunEvent(run_id, RunStatus.SKIPPED, done, len(tasks)))
    ran, failed = run_tasks(
        todo,
        workers=workers,
        scheduler=scheduler,
        runner=runner,
        on_event=on_event,
        already_done=len(skipped),
        total=len(tasks),
    )
    table, paths = gather(tasks, spec.results_dir)
    return SweepResult(
        table=table,
        table_paths=paths,
        ran=tuple(ran),
        skipped=skipped,
        failed=failed,
        wall_s=time.perf_counter() - start,
    )
