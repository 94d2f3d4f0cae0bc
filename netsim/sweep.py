"""Parameter sweeps over scenario fields and seeds, run on dask.distributed (``netsim sweep``).

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
exists (the runner writes its result folder atomically), so a restarted sweep runs only the
missing runs. Every run's scenario is built (and so validated) before any run starts.

Runs execute on a dask ``LocalCluster`` of ``workers`` single-threaded worker processes (one
torch thread per task), or on an existing cluster given by its scheduler address. At the end
the summary.json of every finished run is gathered into ``sweep_table.parquet`` and
``sweep_table.csv`` (:func:`gather`), one row per run, in grid order:

* ``run`` (the folder name), the grid fields (one column per dotted path) and ``seed``;
* the headline results of :data:`RESULT_COLUMNS`, under the names and with the meaning of
  ``analysis.metrics.RunMetrics`` (e.g. ``mean_psnr_db``, ``packet_loss_rate``);
* the whole summary.json, flattened, under ``summary.`` column names
  (``summary.scenario.codec.lam``, ``summary.loss.packets_sent``).

``analysis`` reads this table (``python -m analysis.make_figures --sweep``; its
``analysis.metrics.grid_columns`` and ``seed_intervals`` aggregate over seeds). Measures that
need the per-frame and per-packet traces (desync events, exposed-packet loss) are computed by
``analysis.metrics.summary_table`` from the run folders.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from netsim.scenario import MAX_FRAMES, MAX_SEED, scenario_error_from_validation
from netsim.summary import SUMMARY_FILE, flatten_summary

TABLE_STEM = "sweep_table"
"""The table is ``<out_dir>/sweep_table.parquet`` and ``.csv``."""
DEFAULT_RESULTS = Path("results") / "sweeps"
"""Where a sweep without ``out_dir`` writes: ``results/sweeps/<sweep file stem>``."""
SUMMARY_PREFIX = "summary."
"""Prefix of the table's columns that hold the flattened summary.json."""

RESULT_COLUMNS: Mapping[str, str] = {
    "frames": "frames",
    "mean_psnr_db": "mean_psnr_db",
    "min_psnr_db": "min_psnr_db",
    "mean_ms_ssim": "mean_ms_ssim",
    "mean_bpp": "mean_bpp",
    "mean_rate_kbps": "mean_bitrate_kbps",
    "packets": "loss.packets_sent",
    "packets_lost": "loss.packets_not_in_time",
    "packet_loss_rate": "loss.packet_loss_rate",
    "resyncs": "echoes.resync_frames",
}
"""Headline table column -> dotted key of summary.json it is copied from. The column names
are those of ``analysis.metrics.RunMetrics`` with the same meaning (a packet is lost when it
did not reach the receiver in time), so that ``analysis.metrics.grid_columns`` tells them from
grid fields."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


class SweepError(ValueError):
    """A sweep file, one of the scenarios it derives, or one of its results is unusable
    (one line naming the file and field)."""


def default_workers() -> int:
    """One worker per CPU core this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]


class SweepSpec(BaseModel):
    """A validated sweep file. ``base`` is resolved against the sweep file's folder."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    base: Path
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1)
    frames: int | None = Field(None, ge=1, le=MAX_FRAMES)
    device: Literal["auto", "cpu", "cuda"] = "cpu"
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
    except (yaml.YAMLError, UnicodeDecodeError) as error:
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
        """True when the run's summary.json exists (result folders are written atomically)."""
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
    validation rejects, in one line naming the field as the user writes it
    (``netsim.scenario.scenario_error_from_validation``):
    ``scenario field 'codec.lam': lambda 1e+06 is outside ...``.
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
        problem = scenario_error_from_validation(None, error, data)
        where = f"scenario field '{problem.field}'" if problem.field else "scenario"
        raise SweepError(f"{where}: {problem.message}") from None


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


def read_summary(path: Path) -> dict[str, Any]:
    """A run's summary.json as a mapping; :class:`SweepError` naming the file if unreadable."""
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SweepError(f"{path}: not a readable summary ({error})") from None
    if not isinstance(summary, dict):
        raise SweepError(f"{path}: must hold a JSON object")
    return summary


def table_row(task: RunTask, summary: Mapping[str, Any]) -> dict[str, Any]:
    """One row of the sweep table (module docstring): the run's name and parameters, the
    :data:`RESULT_COLUMNS` (None where summary.json lacks the key), then the summary."""
    flat = flatten_summary(summary)
    row: dict[str, Any] = {"run": task.run_id, **task.parameters}
    row.update({column: flat.get(key) for column, key in RESULT_COLUMNS.items()})
    row.update({f"{SUMMARY_PREFIX}{key}": value for key, value in flat.items()})
    return row


def _parquet_bytes(table: pd.DataFrame) -> bytes:
    """``table`` as Parquet; object columns of mixed types are JSON-encoded (Parquet needs one
    type per column)."""
    storable = table.copy()
    for column in storable.columns:
        if storable[column].dtype == object and storable[column].map(type).nunique() > 1:
            storable[column] = storable[column].map(
                lambda v: v if isinstance(v, str) or v is None else json.dumps(v)
            )
    buffer = io.BytesIO()
    storable.to_parquet(buffer, index=False)
    return buffer.getvalue()


def gather(tasks: Sequence[RunTask], out_dir: Path) -> tuple[pd.DataFrame, tuple[Path, ...]]:
    """The sweep table of every finished run of ``tasks`` (a row per run, in task order; see
    the module docstring), written to ``out_dir/sweep_table.parquet`` and ``.csv``, each
    atomically (``codec.fileio.write_bytes_atomic``)."""
    from codec.fileio import write_bytes_atomic  # the codec package loads torch

    rows = [
        table_row(task, read_summary(task.out_dir / SUMMARY_FILE))
        for task in tasks
        if task.finished
    ]
    columns = ["run", *(tasks[0].parameters if tasks else {}), *RESULT_COLUMNS]
    table = pd.DataFrame(rows, columns=None if rows else columns)
    out_dir.mkdir(parents=True, exist_ok=True)
    parquet = write_bytes_atomic(out_dir / f"{TABLE_STEM}.parquet", _parquet_bytes(table))
    csv = write_bytes_atomic(
        out_dir / f"{TABLE_STEM}.csv", table.to_csv(index=False).encode("utf-8")
    )
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
        table_paths=tuple(paths),
        ran=tuple(ran),
        skipped=skipped,
        failed=failed,
        wall_s=time.perf_counter() - start,
    )
