"""Parameter sweeps over scenario fields and seeds, run on dask.distributed (``netsim sweep``).

A sweep file (YAML) names a base scenario, a grid of scenario fields given as dotted paths, and
seeds::

    base: ../scenarios/loss20.yaml      # relative to the sweep file
    grid:
      network.forward.loss.loss_rate: [0.2, 0.4, 0.6, 0.8]
    seeds: [0, 1, 2]
    frames: 16                          # optional: shorten every run
    save_video: false                   # optional: also keep each run's video.mp4
    out_dir: ../results/sweeps/loss_grid  # optional; relative to the sweep file

Every grid point x seed is one run with its own result folder named from its parameters
(``network.forward.loss.loss_rate_0.2__seed_1``). A run is finished when its ``summary.json``
exists (result folders are written whole, atomically), so a restarted sweep runs only the
missing runs. Without ``out_dir`` the runs go to ``results/sweeps/<sweep file stem>`` in the
working directory.

Before the first run, :func:`check_sweep` checks every input: the output folder can be written
and holds no run folder that is a file or holds foreign files; every run folder name is legal
and short enough on common file systems (portable characters, at most :data:`NAME_MAX_BYTES`
bytes, unique even where case is ignored, the whole path at most :data:`PATH_MAX_BYTES`);
every grid value is plain data of at most :data:`MAX_GRID_VALUE_BYTES` bytes and the grid has
at most :data:`MAX_RUNS` runs; and every run's scenario builds (and so validates).

Runs execute on a dask ``LocalCluster`` of ``workers`` single-threaded worker processes (one
torch thread per task), or on an existing cluster given by its scheduler address. Workers share
nothing with this process but the scheduler: each simulates into a scratch folder of its own
and sends the result files back as data (:class:`RunFiles`); this process writes them into the
run's folder (:func:`store_run`, ``codec.io.atomic.atomic_folder``) as each run finishes, so an
interrupted sweep keeps every run that finished. When no worker is connected for
``worker_wait_s`` seconds (none joined, or all left), the sweep stops with
:class:`NoWorkersError`. At the end the summary.json of every finished run is gathered into
``sweep_table.parquet`` and ``sweep_table.csv`` (:func:`gather`), one row per run, in grid
order:

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

import functools
import io
import itertools
import json
import logging
import math
import os
import re
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from netsim.scenario import MAX_FRAMES, MAX_SEED, load_scenario, scenario_error_from_validation
from netsim.summary import SUMMARY_FILE, flatten_summary
from netsim.trace import FRAMES_FILE, PACKETS_FILE

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

MAX_RUNS = 10_000
"""Most runs one sweep file may expand to."""
MAX_GRID_VALUE_BYTES = 1024
"""Largest grid value, as compact JSON (a scenario field's value, never a data set)."""
NAME_MAX_BYTES = 255
"""Longest run folder name: the limit of ext4, XFS, btrfs, APFS, NTFS and FAT long names."""
PATH_MAX_BYTES = 4095
"""Longest path of a run's result file (Linux's PATH_MAX less the terminating NUL)."""
DEFAULT_WORKER_WAIT_S = 60.0
"""How long a sweep waits for a dask worker when none is connected (none joined, all left)."""
REQUIRED_RESULT_FILES = (FRAMES_FILE, PACKETS_FILE, SUMMARY_FILE)
"""Files every finished run sends back (``video.mp4`` too with ``save_video``)."""
POLL_S = 0.5
"""How often the client looks at the cluster while runs are pending (s)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_PORTABLE_NAME = re.compile(r"[A-Za-z0-9._+-]+")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SweepError(ValueError):
    """A sweep file, one of the scenarios it derives, or one of its results is unusable
    (one line naming the file and field)."""


class NoWorkersError(SweepError):
    """No dask worker was connected for the sweep's whole worker wait (one line)."""


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
    save_video: bool = False
    out_dir: Path | None = None

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for path, values in grid.items():
            if not all(_FIELD_NAME.fullmatch(part) for part in path.split(".")):
                raise ValueError(f"'{path}' is not a dotted field path")
            if not values:
                raise ValueError(f"'{path}' has no values")
            for number, value in enumerate(values, start=1):
                _check_grid_value(path, number, value)
        return grid

    @model_validator(mode="after")
    def _bounded_runs(self) -> SweepSpec:
        runs = math.prod(len(values) for values in self.grid.values()) * len(self.seeds)
        if runs > MAX_RUNS:
            raise ValueError(f"the grid x seeds is {runs} runs, at most {MAX_RUNS}")
        return self

    @property
    def results_dir(self) -> Path:
        """Where the run folders and the table go."""
        return self.out_dir if self.out_dir is not None else DEFAULT_RESULTS / self.name


def _check_grid_value(path: str, number: int, value: Any) -> None:
    """A grid value must be plain data (what YAML's scalars, lists and mappings give, no dates)
    of at most :data:`MAX_GRID_VALUE_BYTES` bytes as compact JSON."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        raise ValueError(
            f"'{path}' value {number} is a {type(value).__name__}, not plain data"
        ) from None
    size = len(text.encode("utf-8"))
    if size > MAX_GRID_VALUE_BYTES:
        raise ValueError(
            f"'{path}' value {number} is {size} bytes as JSON, at most {MAX_GRID_VALUE_BYTES}"
        )


def load_sweep(path: Path) -> SweepSpec:
    """Read and validate a sweep file; raises :class:`SweepError` naming the file and field.
    ``base`` and ``out_dir`` are resolved against the sweep file's folder."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"{path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise SweepError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from error
    except RecursionError:
        raise SweepError(f"{path}: not valid YAML (nested too deeply)") from None
    except (ValueError, OverflowError) as error:  # e.g. an integer of more than 4300 digits
        raise SweepError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise SweepError(f"{path}: must hold a mapping with at least 'base'")
    data = {"name": path.stem, **data}
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise SweepError(f"{path}: field '{where}': {first['msg']}") from error
    except RecursionError:
        raise SweepError(f"{path}: a field is nested too deeply") from None
    base = spec.base if spec.base.is_absolute() else (path.parent / spec.base)
    if not base.is_file():
        raise SweepError(f"{path}: field 'base': scenario file {base} not found")
    update: dict[str, Any] = {"base": base.resolve()}
    if spec.out_dir is not None:
        update["out_dir"] = Path(os.path.abspath(path.parent / spec.out_dir))
    return spec.model_copy(update=update)


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
    save_video: bool = False

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
                    save_video=spec.save_video,
                )
            )
    seen: dict[str, RunTask] = {}
    for task in tasks:
        check_folder_name(spec.name, task)
        other = seen.get(task.run_id.casefold())
        if other is not None:
            raise SweepError(
                f"sweep '{spec.name}': runs {other.parameters} and {task.parameters} "
                f"map to the same folder name {task.run_id}"
                + ("" if other.run_id == task.run_id else " where case is ignored")
            )
        seen[task.run_id.casefold()] = task
    return tasks


def check_folder_name(sweep: str, task: RunTask) -> None:
    """Raise :class:`SweepError` unless the run's folder name is legal on common file systems
    (portable characters only, not ``.`` or ``..``, at most :data:`NAME_MAX_BYTES` bytes) and
    its longest result path fits in :data:`PATH_MAX_BYTES` bytes."""
    name = task.run_id
    size = len(name.encode("utf-8"))
    if not _PORTABLE_NAME.fullmatch(name) or name in (".", ".."):
        raise SweepError(f"sweep '{sweep}': run folder name {name!r} is not portable")
    if size > NAME_MAX_BYTES:
        raise SweepError(
            f"sweep '{sweep}': run folder name {name[:40]}... is {size} bytes, at most "
            f"{NAME_MAX_BYTES} (shorten the grid values)"
        )
    longest = max(REQUIRED_RESULT_FILES, key=len)
    path_size = len(os.fsencode(os.path.abspath(task.out_dir / longest)))
    if path_size > PATH_MAX_BYTES:
        raise SweepError(
            f"sweep '{sweep}': result path of run {name[:40]}... is {path_size} bytes, at most "
            f"{PATH_MAX_BYTES} (a shorter out_dir)"
        )


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


def build_scenario(task: RunTask, base: BaseModel | None = None) -> BaseModel:
    """The scenario of one run: the base scenario file with the run's overrides applied;
    ``base``: that file's scenario when the caller has already loaded it."""
    if base is None:
        base = load_scenario(task.base)
    if not task.overrides:
        return base
    return apply_overrides(base, dict(task.overrides), {"base_dir": task.base.parent})


def is_current(task: RunTask, base: BaseModel | None = None) -> bool:
    """True when ``task.out_dir`` holds a finished run that is exactly this run as it would run
    now: its summary.json records the same effective scenario (the base file with the run's
    overrides), frame count and seed, and the model id of the weights that scenario loads
    today (``netsim.scenario.expected_model_id``). A run made before its scenario file or the
    shipped weights changed is stale, and a sweep runs it again. ``base`` as in
    :func:`build_scenario`."""
    from netsim.scenario import expected_model_id

    if not task.finished:
        return False
    try:
        summary = read_summary(task.out_dir / SUMMARY_FILE)
    except SweepError:
        return False
    scenario = build_scenario(task, base)
    frames = scenario.video.frames if task.frames is None else task.frames
    seed = scenario.seed if task.seed is None else task.seed
    if (
        summary.get("scenario") != json.loads(scenario.model_dump_json())
        or summary.get("frames") != frames
        or summary.get("seed") != seed
    ):
        return False
    model_id = expected_model_id(scenario)
    recorded = summary.get("model")
    return model_id is None or (isinstance(recorded, dict) and recorded.get("id") == model_id)


Runner = Callable[[RunTask, Path], None]
"""Simulates one run and writes its result files into the given (new) folder."""


def simulate(task: RunTask, out_dir: Path) -> None:
    """Default runner: build the run's scenario and simulate it into ``out_dir``."""
    from netsim.runner import run_scenario

    run_scenario(
        build_scenario(task),
        out_dir,
        frames=task.frames,
        seed=task.seed,
        device=task.device,
        save_video=task.save_video,
    )


@dataclass(frozen=True)
class RunFiles:
    """A finished run as it travels from a worker to the client: its result files (name ->
    contents, e.g. ``frames.csv``) and the wall time of the run on the worker (s)."""

    run_id: str
    files: tuple[tuple[str, bytes], ...]
    wall_s: float


def execute(runner: Runner, task: RunTask) -> RunFiles:
    """Worker entry point: one torch thread, run the task into a scratch folder of this worker
    and return its result files as data (the worker's file system is never the sweep's)."""
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="netsim-sweep-") as scratch:
        folder = Path(scratch) / "run"
        runner(task, folder)
        files = tuple(
            (entry.name, entry.read_bytes())
            for entry in sorted(folder.iterdir())
            if entry.is_file() and not entry.name.startswith(".")
        )
    return RunFiles(task.run_id, files, time.perf_counter() - start)


def store_run(task: RunTask, result: RunFiles) -> Path:
    """Write a run's result files into ``task.out_dir`` as one folder, atomically
    (``codec.io.atomic.atomic_folder``); returns the folder. Raises :class:`SweepError` for
    results that are not a run's (a file name a run does not write, a required file missing,
    a summary.json that is not a JSON object) before anything is written; ``OSError`` when
    the folder cannot be written."""
    from codec.io.atomic import atomic_folder  # the codec package loads torch
    from netsim.runner import RESULT_FILES

    files = dict(result.files)
    if result.run_id != task.run_id:
        raise SweepError(f"{task.out_dir}: got the results of run {result.run_id}")
    unknown = sorted(set(files) - set(RESULT_FILES))
    missing = [name for name in REQUIRED_RESULT_FILES if name not in files]
    if unknown or missing:
        problem = f"unknown file {unknown[0]!r}" if unknown else f"no {missing[0]}"
        raise SweepError(f"{task.out_dir}: the run's results have {problem}")
    try:
        summary = json.loads(files[SUMMARY_FILE].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SweepError(
            f"{task.out_dir / SUMMARY_FILE}: not a readable summary ({error})"
        ) from None
    if not isinstance(summary, dict):
        raise SweepError(f"{task.out_dir / SUMMARY_FILE}: must hold a JSON object")

    def fill(folder: Path) -> None:
        for name, data in files.items():
            (folder / name).write_bytes(data)

    return atomic_folder(task.out_dir, fill)


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
    """What a sweep did: the table of every current run, where it was written, the runs that
    ran (``stale``: those of them that replaced an outdated result), were skipped, or failed
    (run id -> one-line error), and the sweep's wall time."""

    table: pd.DataFrame
    table_paths: tuple[Path, ...]
    ran: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: Mapping[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    stale: tuple[str, ...] = ()
    """Runs that had finished before, with another scenario or other weights, and ran again."""


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


def gather(
    tasks: Sequence[RunTask], out_dir: Path, current: Callable[[RunTask], bool]
) -> tuple[pd.DataFrame, tuple[Path, ...]]:
    """The sweep table of every run of ``tasks`` that is ``current`` (a row per run, in task
    order; see the module docstring), written to
    ``out_dir/sweep_table.parquet`` and ``.csv``, each atomically
    (``codec.io.atomic.write_bytes_atomic``)."""
    from codec.io.atomic import write_bytes_atomic  # the codec package loads torch

    rows = [
        table_row(task, read_summary(task.out_dir / SUMMARY_FILE))
        for task in tasks
        if current(task)
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


def _connect(address: Any, wait_s: float) -> Any:
    """A dask ``Client`` of ``address`` (a scheduler address or a ``LocalCluster``)."""
    from distributed import Client

    try:
        return Client(address, timeout=wait_s)
    except (OSError, TimeoutError) as error:
        raise SweepError(
            f"scheduler {address}: no connection within {wait_s:g} s ({_error_line(error)})"
        ) from None


def _worker_count(client: Any) -> int:
    """Workers connected to ``client``'s scheduler now (0 when it cannot be asked)."""
    try:
        return len(client.nthreads())
    except Exception:  # noqa: BLE001 - a scheduler that cannot answer has no usable workers
        return 0


@contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Start the local cluster's worker processes with SIGINT ignored (they inherit it), so
    that a terminal's Ctrl-C, which reaches the whole process group, stops only this process,
    which then closes the cluster itself. Without this the workers died of the
    KeyboardInterrupt and printed tracebacks under the sweep's one line. Only the main thread
    may set signal handlers; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_tasks(
    tasks: Sequence[RunTask],
    *,
    workers: int = 1,
    scheduler: str | None = None,
    runner: Runner = simulate,
    on_event: Callable[[RunEvent], None] | None = None,
    already_done: int = 0,
    total: int | None = None,
    worker_wait_s: float = DEFAULT_WORKER_WAIT_S,
) -> tuple[list[str], dict[str, str]]:
    """Execute ``tasks`` on dask; returns the run ids that finished and those that failed
    (run id -> one-line error). A run that raises does not stop the others.

    Runs go to a new ``LocalCluster(n_workers=workers, threads_per_worker=1)`` that is closed
    afterwards, or to the existing cluster whose scheduler listens at ``scheduler``. Each run
    executes in :func:`execute` on a worker and comes back as :class:`RunFiles`, which this
    process writes with :func:`store_run` as soon as the run settles. Events count
    ``already_done`` settled runs of ``total`` (default: ``len(tasks)``) before these.

    Raises :class:`NoWorkersError` when no worker is connected for ``worker_wait_s`` seconds
    while runs are pending, :class:`SweepError` when the scheduler cannot be reached in that
    time or a run's folder cannot be written; runs stored before are kept.
    """
    if workers < 1:
        raise SweepError(f"workers must be at least 1, not {workers}")
    if not worker_wait_s > 0:
        raise SweepError(f"the worker wait must be more than 0 s, not {worker_wait_s}")
    total = len(tasks) if total is None else total
    ran: list[str] = []
    failed: dict[str, str] = {}
    if not tasks:
        return ran, failed
    from distributed import LocalCluster, wait

    cluster = None
    if scheduler is None:
        with _workers_ignore_ctrl_c():
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address="127.0.0.1:0",  # HTTP server on a free local port: no clash
                silence_logs=logging.ERROR,
                env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
            )
    where = "the local cluster" if scheduler is None else f"scheduler {scheduler}"
    done = already_done
    try:
        with _connect(cluster if cluster is not None else scheduler, worker_wait_s) as client:
            sweep_key = uuid.uuid4().hex[:8]  # two sweeps on one cluster never share a key
            futures = {
                client.submit(
                    execute, runner, task, key=f"run-{sweep_key}-{task.run_id}", pure=False
                ): task
                for task in tasks
            }
            pending = set(futures)
            no_workers_since: float | None = None
            seen_workers = False
            while pending:
                try:
                    settled, pending = wait(pending, timeout=POLL_S, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    settled = set()
                except Exception as error:  # noqa: BLE001 - e.g. cancelled: the scheduler left
                    raise SweepError(
                        f"{where}: the runs were lost ({_error_line(error)}); "
                        "finished runs are kept"
                    ) from None
                for future in settled:
                    task = futures.pop(future)
                    done += 1
                    event = _settle(future, task, done, total, ran, failed)
                    if on_event is not None:
                        on_event(event)
                if not pending:
                    break
                if _worker_count(client) > 0:
                    seen_workers, no_workers_since = True, None
                    continue
                now = time.monotonic()
                no_workers_since = now if no_workers_since is None else no_workers_since
                if now - no_workers_since >= worker_wait_s:
                    what = (
                        "every worker left and none came back"
                        if seen_workers
                        else "no worker joined"
                    )
                    raise NoWorkersError(
                        f"{where}: {what} within {worker_wait_s:g} s; "
                        f"{len(pending)} runs not run, finished runs are kept"
                    )
    finally:
        if cluster is not None:
            cluster.close()
    return ran, failed


def _settle(
    future: Any, task: RunTask, done: int, total: int, ran: list[str], failed: dict[str, str]
) -> RunEvent:
    """Store the results of a settled run (or note its failure) and say what happened."""
    try:
        result = future.result()
        store_run(task, result)
    except SweepError as error:  # results that are not a run's: this run failed
        failed[task.run_id] = str(error)
    except OSError as error:  # the client cannot write: nothing else can be stored either
        detail = error.strerror or _error_line(error)
        raise SweepError(f"{task.out_dir}: cannot write the run's results ({detail})") from None
    except Exception as error:  # noqa: BLE001 - a failed run must not stop the others
        failed[task.run_id] = _error_line(error)
    else:
        ran.append(task.run_id)
        return RunEvent(task.run_id, RunStatus.FINISHED, done, total, result.wall_s)
    return RunEvent(task.run_id, RunStatus.FAILED, done, total, error=failed[task.run_id])


def check_output(spec: SweepSpec, tasks: Sequence[RunTask]) -> None:
    """Raise :class:`SweepError` unless ``spec``'s output folder can be written (it may not
    exist yet), its tables can be written, and no run folder is a file or holds anything but
    a run's results (a run's folder is replaced whole)."""
    from codec.io.atomic import TargetError, check_writable_target
    from netsim.runner import RESULT_FILES

    out_dir = spec.results_dir
    try:
        check_writable_target(out_dir)
        for suffix in (".parquet", ".csv"):
            check_writable_target(out_dir / f"{TABLE_STEM}{suffix}", folder=False)
    except TargetError as error:
        raise SweepError(f"sweep '{spec.name}': field 'out_dir': {error}") from None
    for task in tasks:
        if not os.path.lexists(task.out_dir):
            continue
        if not task.out_dir.is_dir():
            raise SweepError(f"sweep '{spec.name}': {task.out_dir}: exists and is not a folder")
        others = sorted(p.name for p in task.out_dir.iterdir() if p.name not in RESULT_FILES)
        if others:
            raise SweepError(
                f"sweep '{spec.name}': {task.out_dir}: holds files a run does not write "
                f"({', '.join(others[:3])})"
            )


def check_sweep(
    spec: SweepSpec, check: Callable[[RunTask], Any] | None = build_scenario
) -> list[RunTask]:
    """The runs of ``spec``, every input checked before any run starts: the grid expands to
    legal, distinct folder names (:func:`expand`), the output folder is usable
    (:func:`check_output`), and every run passes ``check`` (by default: build its scenario, so
    that a bad field path or value raises here)."""
    tasks = expand(spec)
    check_output(spec, tasks)
    if check is build_scenario:  # every run shares the base file: read it once, not per run
        check = functools.partial(build_scenario, base=load_scenario(spec.base))
    if check is not None:
        for task in tasks:
            check(task)
    return tasks


def run_sweep(
    spec: SweepSpec,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    runner: Runner = simulate,
    check: Callable[[RunTask], Any] | None = build_scenario,
    on_event: Callable[[RunEvent], None] | None = None,
    worker_wait_s: float = DEFAULT_WORKER_WAIT_S,
    current: Callable[[RunTask], bool] | None = None,
) -> SweepResult:
    """Run every run of ``spec`` that is not current (see :func:`run_tasks`) and gather the
    table.

    Every input is checked in this process before any cluster starts (:func:`check_sweep`;
    ``check=None`` where the caller has just built every scenario). ``current`` says whether a
    run's results can stand (default :func:`is_current`: finished, with today's scenario and
    weights); current runs are reported as skipped and not run again, and a finished run that
    is not current runs again (``SweepResult.stale``). ``on_event`` hears about every run as it
    settles. The table lists every current run, those of earlier sweeps included.
    """
    if workers < 1:
        raise SweepError(f"sweep '{spec.name}': workers must be at least 1, not {workers}")
    start = time.perf_counter()
    tasks = check_sweep(spec, check)
    if current is None:
        current = functools.partial(is_current, base=load_scenario(spec.base))
    done = {task.run_id for task in tasks if current(task)}
    todo = [task for task in tasks if task.run_id not in done]
    stale = tuple(task.run_id for task in todo if task.finished)
    skipped = tuple(task.run_id for task in tasks if task.run_id in done)
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
        worker_wait_s=worker_wait_s,
    )
    table, paths = gather(tasks, spec.results_dir, current)
    return SweepResult(
        table=table,
        table_paths=tuple(paths),
        ran=tuple(ran),
        skipped=skipped,
        failed=failed,
        wall_s=time.perf_counter() - start,
        stale=tuple(run_id for run_id in stale if run_id in ran),
    )
