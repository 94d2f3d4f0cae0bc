"""The ``sweep`` command: parse, call :func:`analysis.sweep.run_sweep`, render.

``register(app)`` adds the command to another Typer app; ``netsim_main`` serves ``netsim``'s
commands plus ``sweep`` (``netsim sweep SWEEP.yaml``); ``app`` is a stand-alone app with the same
command (``python -m analysis.cli sweep SWEEP.yaml``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from analysis.io import TraceError
from analysis.sweep import RunEvent, RunStatus, SweepError, check_sweep, load_sweep, run_sweep

EXIT_USAGE = 2
EXIT_RUNS_FAILED = 1
TABLE_COLUMNS = (
    "run",
    "mean_psnr_db",
    "mean_bpp",
    "packet_loss_rate",
    "frames_desynced",
    "resyncs",
)


def default_workers() -> int:
    """One worker per CPU core this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def _user_errors() -> tuple[type[Exception], ...]:
    errors: tuple[type[Exception], ...] = (SweepError, TraceError)
    try:
        from netsim.scenario import ScenarioError
    except ImportError:
        return errors
    return (*errors, ScenarioError)


def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="Sweep file (YAML): base, grid, seeds.")],
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, help="Local dask workers (one thread each).")
    ] = default_workers(),
    scheduler: Annotated[
        str | None,
        typer.Option(help="Address of an existing dask scheduler, e.g. tcp://host:8786."),
    ] = None,
) -> None:
    """Run a grid of scenario variants x seeds on dask; finished runs are skipped."""
    console = Console(stderr=True)
    try:
        spec = load_sweep(sweep_file)
        check_sweep(spec)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[last]}"),
            console=console,
        ) as progress:
            bar = progress.add_task(f"sweep {spec.name}", total=None, last="")

            def report(event: RunEvent) -> None:
                note = f"{event.status.value} {event.run_id}"
                if event.status is RunStatus.FINISHED:
                    note += f" ({event.wall_s:.1f} s)"
                elif event.status is RunStatus.FAILED:
                    progress.console.print(f"[red]failed[/red] {event.run_id}: {event.error}")
                progress.update(bar, total=event.total, completed=event.done, last=note)

            result = run_sweep(spec, workers=workers, scheduler=scheduler, on_event=report)
    except _user_errors() as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    table = Table(title=f"sweep {spec.name}: {len(result.table)} runs")
    shown = [c for c in TABLE_COLUMNS if c in result.table.columns]
    for column in shown:
        table.add_column(column, justify="left" if column == "run" else "right")
    for _, row in result.table.iterrows():
        table.add_row(
            *(f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in shown)
        )
    out = Console()
    out.print(table)
    out.print(
        f"ran {len(result.ran)}, skipped {len(result.skipped)} finished, "
        f"failed {len(result.failed)} in {result.wall_s:.1f} s; table: "
        + ", ".join(str(p) for p in result.table_paths),
        highlight=False,
    )
    if result.failed:
        raise typer.Exit(EXIT_RUNS_FAILED)


def register(app: typer.Typer) -> None:
    """Add the ``sweep`` command to ``app``."""
    app.command("sweep")(sweep)


def netsim_main() -> None:
    """Console entry point serving ``netsim``'s commands plus ``sweep``.

    ``analysis`` depends on ``netsim``, never the reverse, so the command is added here, in a
    composition root: point the ``netsim`` script at ``analysis.cli:netsim_main``.
    """
    from netsim.cli import app as netsim_app

    register(netsim_app)
    netsim_app()


app = typer.Typer(add_completion=False, no_args_is_help=True, help="Analysis commands.")
register(app)


@app.callback()
def _main() -> None:
    """Analysis commands of the DHVC testbed."""


if __name__ == "__main__":
    app()
