"""``netsim``: validate, run and sweep testbed scenarios, and print the scenario reference.

A thin Typer app: ``validate`` and ``run`` call ``netsim.scenario`` and ``netsim.runner``,
``sweep`` calls ``netsim.sweep.run_sweep``, ``schema`` prints ``netsim.schema.scenario_reference``
(docs/SCENARIOS.md). The ``netsim`` console script is :func:`main`, which runs ``app``.

Every error a user can cause prints one line on stderr and exits with code 2, without a
traceback: a scenario problem names the file and the field; a command line that does not parse
(unknown option, missing argument, ``--frames abc``) is one ``error:`` line instead of a usage
box. Ctrl-C prints one line and exits with 130. Errors, exit codes, the Typer group and the
progress bar are those of every command line of the testbed (``codec.cli.base``). The
scenario and runner modules, which import torch, are imported inside the commands, so that an
interrupt while they load is caught like any other.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import TextColumn
from rich.table import Table

from codec.cli import base
from codec.cli.base import Device, fail, interrupted, progress_bar

if TYPE_CHECKING:
    from netsim.scenario import Scenario
    from netsim.summary import RunSummary

RUNS_FAILED_EXIT_CODE = 1
"""Exit code of a sweep in which some runs failed (user errors exit with 2, Ctrl-C with 130:
``codec.cli.base``)."""
MAX_WORKERS = 256
"""Most local dask workers ``netsim sweep --workers`` starts."""
MAX_WORKER_WAIT_S = 24 * 3600.0
"""Longest ``netsim sweep --worker-wait``."""
SWEEP_COLUMNS = ("run", "mean_psnr_db", "mean_bpp", "packet_loss_rate", "resyncs")
"""Columns of the sweep table that ``netsim sweep`` prints."""


app = base.make_app("Carry DHVC 2.0 bitstreams through a simulated lossy network.")


def main() -> None:
    """The ``netsim`` console script: ``app``, with a Ctrl-C outside a command (while the
    command line is parsed) also one line and exit code 130."""
    base.run(app)


def _unexpected(file: Path, err: BaseException) -> NoReturn:
    """The last line of defence: an error nobody classified is still one line, exit code 2."""
    fail(f"{file}: unexpected {type(err).__name__}: {err}")


def _check_range(option: str, value: int | None, low: int, high: int) -> None:
    if value is None:
        return
    if value < low:
        fail(f"{option} must be >= {low} (got {value})")
    if value > high:
        fail(f"{option} must be <= {high} (got {value})")


def _load_scenario(file: Path) -> Scenario:
    """The scenario in ``file``; any problem is one line and exit code 2 (130 on Ctrl-C)."""
    try:
        from netsim.scenario import ScenarioError, load_scenario
    except KeyboardInterrupt:
        interrupted()
    try:
        return load_scenario(file)
    except ScenarioError as err:
        fail(str(err))
    except KeyboardInterrupt:
        interrupted()
    except Exception as err:  # noqa: BLE001 - one line, never a traceback
        _unexpected(file, err)


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
) -> None:
    """Check a scenario file without running it."""
    scenario = _load_scenario(file)
    forward = scenario.network.forward
    typer.echo(
        f"{file}: valid scenario {scenario.name!r}: {scenario.video.frames} frames of "
        f"{scenario.video.source} at {scenario.video.width_px}x{scenario.video.height_px}, "
        f"{forward.kind} link, {forward.loss.kind} loss"
    )


@app.command()
def run(
    file: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help=(
                "Output folder (default: results/NAME, or results/NAME-seedS, results/NAME-fF, "
                "results/NAME-seedS-fF when --seed or --frames differ from the scenario's)."
            ),
        ),
    ] = None,
    frames: Annotated[
        int | None, typer.Option("--frames", help="Frames to run (default: the scenario's).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Random seed (default: the scenario's).")
    ] = None,
    device: Annotated[Device, typer.Option("--device", help="Where the codec runs.")] = (
        Device.AUTO
    ),
    save_video: Annotated[
        bool, typer.Option("--save-video", help="Also write video.mp4 (original | decoded).")
    ] = False,
    skip_current: Annotated[
        bool,
        typer.Option(
            "--skip-current",
            help=(
                "Do nothing when the output folder already holds this run, made with today's "
                "scenario and weights (as `netsim sweep` skips a finished run)."
            ),
        ),
    ] = False,
) -> None:
    """Run a scenario; writes frames.csv, packets.csv and summary.json (and video.mp4)."""
    try:
        from netsim.packetizer import PacketizationError
        from netsim.runner import RunError, default_output_folder, run_scenario
        from netsim.scenario import MAX_FRAMES, MAX_SEED, ScenarioError
    except KeyboardInterrupt:
        interrupted()
    _check_range("--frames", frames, 1, MAX_FRAMES)
    _check_range("--seed", seed, 0, MAX_SEED)
    scenario = _load_scenario(file)
    out_dir = out if out is not None else default_output_folder(scenario, frames=frames, seed=seed)
    console = Console(stderr=True)
    if skip_current and _holds_current_run(file, scenario, out_dir, frames, seed, device.value):
        console.print(f"{out_dir}: current (same scenario, seed, frames and weights); not run")
        return
    total = frames if frames is not None else scenario.video.frames
    progress = progress_bar(console, transient=True)
    try:
        with progress:
            task = progress.add_task(f"{scenario.name}: loading", total=total)

            def on_frame(done: int, frame_total: int) -> None:
                progress.update(task, completed=done, total=frame_total, description=scenario.name)

            summary = run_scenario(
                scenario,
                out_dir,
                frames=frames,
                seed=seed,
                device=device.value,
                save_video=save_video,
                on_frame=on_frame,
            )
    except (ScenarioError, RunError) as err:
        fail(str(err))
    except PacketizationError as err:
        fail(str(ScenarioError(file, f"sender.{err.setting}", str(err))))
    except KeyboardInterrupt:
        interrupted("interrupted: no results written")
    except Exception as err:  # noqa: BLE001 - one line, never a traceback
        _unexpected(file, err)
    _render_summary(Console(), summary, out_dir)


def _render_summary(console: Console, summary: RunSummary, out_dir: Path) -> None:
    table = Table(title=f"{summary.scenario.name} -> {out_dir}", show_header=False)
    table.add_column("quantity")
    table.add_column("value", justify="right")

    def number(value: float | None, pattern: str) -> str:
        return "n/a" if value is None or not math.isfinite(value) else format(value, pattern)

    table.add_row("frames", str(summary.frames))
    table.add_row("mean PSNR (dB)", number(summary.mean_psnr_db, ".2f"))
    table.add_row("mean MS-SSIM", number(summary.mean_ms_ssim, ".4f"))
    table.add_row("mean bpp", number(summary.mean_bpp, ".4f"))
    table.add_row("packets sent", str(summary.loss.packets_sent))
    table.add_row("packets not in time", number(summary.loss.packet_loss_rate, ".1%"))
    table.add_row(
        "echoes sent / re-sync frames",
        f"{summary.echoes.sent} / {summary.echoes.resync_frames}",
    )
    timing = summary.timing
    table.add_row("wall time (s)", number(timing.wall_time_s, ".1f"))
    for label, seconds in timing.breakdown():
        share = seconds / timing.wall_time_s if timing.wall_time_s > 0 else math.nan
        table.add_row(f"  {label} (s)", f"{number(seconds, '.1f')} ({number(share, '.1%')})")
    console.print(table)


@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep file (YAML): base, grid, seeds.")],
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", "-w", help="Local dask workers, one thread each (default: one per core)."
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="Address of an existing dask scheduler, e.g. tcp://host:8786."),
    ] = None,
    worker_wait: Annotated[
        float | None,
        typer.Option(
            "--worker-wait",
            help="Seconds to wait for a dask worker while none is connected (none joined, or "
            "all left) before giving up (default: 60).",
        ),
    ] = None,
) -> None:
    """Run a grid of scenario variants x seeds on dask, skipping finished runs.

    Writes one result folder per run under the sweep's out_dir (on this machine, whichever
    machines the workers run on), and sweep_table.parquet and .csv with a row per run.
    """
    try:
        from netsim.scenario import ScenarioError
        from netsim.sweep import (
            DEFAULT_WORKER_WAIT_S,
            RunEvent,
            RunStatus,
            SweepError,
            check_sweep,
            default_workers,
            load_sweep,
            run_sweep,
        )
    except KeyboardInterrupt:
        interrupted()
    _check_range("--workers", workers, 1, MAX_WORKERS)
    if worker_wait is not None and not 0 < worker_wait <= MAX_WORKER_WAIT_S:
        fail(f"--worker-wait must be more than 0 and at most {MAX_WORKER_WAIT_S:g} s")
    console = Console(stderr=True)
    progress = progress_bar(console, TextColumn("{task.fields[last]}"))
    try:
        spec = load_sweep(sweep_file)
        check_sweep(spec)  # every run's scenario builds, before the progress bar or a cluster
        with progress:
            bar = progress.add_task(f"sweep {spec.name}", total=None, last="")

            def report(event: RunEvent) -> None:
                note = f"{event.status.value} {event.run_id}"
                if event.status is RunStatus.FINISHED:
                    note += f" ({event.wall_s:.1f} s)"
                elif event.status is RunStatus.FAILED:
                    progress.console.print(
                        f"failed {event.run_id}: {event.error}", markup=False, highlight=False
                    )
                progress.update(bar, total=event.total, completed=event.done, last=note)

            with _quiet_dask_logs():
                result = run_sweep(
                    spec,
                    workers=workers if workers is not None else default_workers(),
                    scheduler=scheduler,
                    check=None,
                    on_event=report,
                    worker_wait_s=worker_wait if worker_wait is not None else DEFAULT_WORKER_WAIT_S,
                )
    except (SweepError, ScenarioError) as err:
        fail(str(err))
    except KeyboardInterrupt:
        interrupted("interrupted: finished runs are kept; run the sweep again to finish it")
    except Exception as err:  # noqa: BLE001 - one line, never a traceback
        _unexpected(sweep_file, err)
    _render_sweep(Console(), spec.name, result)
    if result.failed:
        raise typer.Exit(RUNS_FAILED_EXIT_CODE)


@contextmanager
def _quiet_dask_logs() -> Iterator[None]:
    """Keep dask's own log lines (connection retries, closing workers) off the terminal for
    the block: the sweep reports every problem in one line of its own."""
    names = ["distributed", "dask", *logging.root.manager.loggerDict]
    loggers = [
        logging.getLogger(name)
        for name in dict.fromkeys(names)
        if name.split(".")[0] in ("distributed", "dask")
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _render_sweep(console: Console, name: str, result: Any) -> None:
    """The table of a ``netsim.sweep.SweepResult`` and a line of what ran."""
    table = Table(title=f"sweep {name}: {len(result.table)} runs")
    shown = [c for c in SWEEP_COLUMNS if c in result.table.columns]
    for column in shown:
        table.add_column(column, justify="left" if column == "run" else "right")

    def cell(value: Any) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return "n/a"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    for row in result.table[shown].itertuples(index=False):
        table.add_row(*(cell(value) for value in row))
    console.print(table)
    console.print(
        f"ran {len(result.ran)}"
        + (f" ({len(result.stale)} replacing stale results)" if result.stale else "")
        + f", skipped {len(result.skipped)} finished, "
        f"failed {len(result.failed)} in {result.wall_s:.1f} s; table: "
        + ", ".join(str(p) for p in result.table_paths),
        highlight=False,
    )


def _holds_current_run(
    file: Path, scenario: Any, out_dir: Path, frames: int | None, seed: int | None, device: str
) -> bool:
    from netsim.sweep import RunTask, is_current

    task = RunTask(out_dir.name, file, (), seed, frames, device, out_dir)
    return is_current(task, base=scenario)


@app.command()
def schema() -> None:
    """Print the scenario file reference (Markdown) generated from the scenario models.

    Every field with its type, unit, default and limits; docs/SCENARIOS.md is this output.
    """
    try:
        from netsim.schema import scenario_reference
    except KeyboardInterrupt:
        interrupted()
    typer.echo(scenario_reference(), nl=False)


if __name__ == "__main__":
    main()
