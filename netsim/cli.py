"""``netsim``: validate and run testbed scenarios (a thin Typer app over ``netsim.runner``).

Errors a user can cause print one line naming the file and field on stderr and exit with
code 2, without a traceback.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from netsim.runner import RunError, run_scenario
from netsim.scenario import ScenarioError, load_scenario

app = typer.Typer(
    help="Carry DHVC 2.0 bitstreams through a simulated lossy network.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

USER_ERROR_EXIT_CODE = 2


class Device(StrEnum):
    """Where the codec runs."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(USER_ERROR_EXIT_CODE)


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
) -> None:
    """Check a scenario file without running it."""
    try:
        scenario = load_scenario(file)
    except ScenarioError as err:
        _fail(str(err))
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
        Path | None, typer.Option("--out", help="Output folder (default: results/NAME).")
    ] = None,
    frames: Annotated[
        int | None, typer.Option("--frames", min=1, help="Frames to run (default: the scenario's).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", min=0, help="Random seed (default: the scenario's).")
    ] = None,
    device: Annotated[Device, typer.Option("--device", help="Where the codec runs.")] = (
        Device.AUTO
    ),
    save_video: Annotated[
        bool, typer.Option("--save-video", help="Also write video.mp4 (original | decoded).")
    ] = False,
) -> None:
    """Run a scenario; writes frames.csv, packets.csv and summary.json (and video.mp4)."""
    try:
        scenario = load_scenario(file)
    except ScenarioError as err:
        _fail(str(err))
    out_dir = out if out is not None else Path("results") / scenario.name
    console = Console(stderr=True)
    total = frames if frames is not None else scenario.video.frames
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
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
        _fail(str(err))
    except KeyboardInterrupt:
        typer.echo("interrupted: no results written", err=True)
        raise typer.Exit(130) from None
    _render_summary(Console(), summary, out_dir)


def _render_summary(console: Console, summary: dict, out_dir: Path) -> None:
    loss = summary["loss"]
    timing = summary["timing"]
    table = Table(title=f"{summary['scenario']['name']} -> {out_dir}", show_header=False)
    table.add_column("quantity")
    table.add_column("value", justify="right")

    def number(value: float | None, pattern: str) -> str:
        return "n/a" if value is None else format(value, pattern)

    table.add_row("frames", str(summary["frames"]))
    table.add_row("mean PSNR (dB)", number(summary["mean_psnr_db"], ".2f"))
    table.add_row("mean MS-SSIM", number(summary["mean_ms_ssim"], ".4f"))
    table.add_row("mean bpp", number(summary["mean_bpp"], ".4f"))
    table.add_row("packets sent", str(loss["packets_sent"]))
    table.add_row("packets not in time", number(loss["packet_loss_rate"], ".1%"))
    table.add_row(
        "echoes sent / re-sync frames",
        f"{summary['echoes']['sent']} / {summary['echoes']['resync_frames']}",
    )
    table.add_row("wall time (s)", number(timing["wall_time_s"], ".1f"))
    table.add_row("simulator overhead", number(timing["simulator_overhead_fraction"], ".1%"))
    console.print(table)
