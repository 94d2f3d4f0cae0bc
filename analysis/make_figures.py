"""``python -m analysis.make_figures --out figures`` (``make figures``): run what the figures need,
then draw them.

This module is the command-line composition root of the figures: it plans the simulator runs
(the scenario files of ``scenarios/`` and variants derived from them by field overrides), runs
those whose results are missing or older than their inputs with ``netsim.runner.run_scenario``
into ``results/<run>/``, gets an ``rd.json`` (reuses ``results/rd/rd.json`` or runs a small
``codec.eval.evaluate``), and writes, as .png and .pdf:

* ``loss_resilience``: paper Fig. 22, loss20/40/60/80 against the clean run;
* ``progressive``: paper Fig. 11, progressive.yaml with ``sender.max_scales`` = 1..K;
* ``echo_delay``: paper Fig. 13, echo_delay.yaml with echo delays of 1, 3 and 6 frames;
* ``rate_share``: paper Fig. 21, the per-scale rate share of intra and inter frames (clean run);
* ``rd_curves``: PSNR and MS-SSIM against bpp for DHVC, x264 and x265.

A result is reused when its summary.json is newer than the scenario file, the checkpoint, the
video and any trace file, and records the same effective scenario, frame count and seed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast

import pandas as pd
import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from analysis.cli import default_workers
from analysis.figures import (
    plot_echo_delay,
    plot_loss_resilience,
    plot_progressive,
    plot_rate_share,
    plot_rd,
    save_figure,
)
from analysis.io import SUMMARY_FILE, TraceError, load_rd, load_run, load_summary
from analysis.metrics import annotate_frames, frame_series, rate_share_by_scale
from analysis.sweep import RunEvent, RunStatus, RunTask, SweepError, build_scenario, run_tasks
from netsim.runner import RunError
from netsim.scenario import Scenario, ScenarioError

LOSS_SCENARIOS = ("loss20", "loss40", "loss60", "loss80")
CLEAN_SCENARIO = "clean"
PROGRESSIVE_SCENARIO = "progressive"
ECHO_SCENARIO = "echo_delay"
MAX_SCALES_FIELD = "sender.max_scales"
ECHO_DELAY_FRAMES_FIELD = "network.feedback.delay_frames"
ECHO_DELAY_MS_FIELD = "network.feedback.delay_ms"
DEFAULT_ECHO_DELAYS = (1.0, 3.0, 6.0)
RD_ANCHORS = ("x264", "x265")


@dataclass(frozen=True)
class FigureRun:
    """One simulator run a figure needs, and the legend label it gets."""

    task: RunTask
    label: str

    @property
    def name(self) -> str:
        return self.task.run_id


@dataclass(frozen=True)
class FigurePlan:
    """Every run the figures need, grouped by figure."""

    loss: tuple[FigureRun, ...]
    clean: FigureRun
    progressive: tuple[FigureRun, ...]
    echo: tuple[FigureRun, ...]

    @property
    def runs(self) -> tuple[FigureRun, ...]:
        """All runs, each once."""
        return (*self.loss, self.clean, *self.progressive, *self.echo)


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["codec.lam=512", "codec.checkpoint=none"]`` -> ``{"codec.lam": 512, ...}`` (values
    parsed as YAML scalars)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        path, sep, text = pair.partition("=")
        if not sep or not path.strip():
            raise SweepError(f"--set {pair!r}: expected FIELD=VALUE, e.g. codec.lam=512")
        overrides[path.strip()] = yaml.safe_load(text)
    return overrides


def _task(
    name: str,
    scenario_file: Path,
    results_dir: Path,
    overrides: Mapping[str, Any],
    frames: int | None,
    device: str,
) -> RunTask:
    changes = {**overrides}
    if changes:
        changes["name"] = name
    return RunTask(
        run_id=name,
        base=scenario_file.resolve(),
        overrides=tuple(changes.items()),
        seed=None,
        frames=frames,
        device=device,
        out_dir=results_dir / name,
    )


def scenario_of(task: RunTask) -> Scenario:
    """The effective scenario of a run (its file with the run's overrides)."""
    return cast(Scenario, build_scenario(task))


def _loss_label(scenario: Scenario) -> str:
    rate = getattr(scenario.network.forward.loss, "loss_rate", None)
    return f"{rate:.0%} packet loss" if rate is not None else scenario.name


def plan_figures(
    scenarios_dir: Path,
    results_dir: Path,
    *,
    frames: int | None = None,
    echo_delays: Sequence[float] = DEFAULT_ECHO_DELAYS,
    overrides: Mapping[str, Any] | None = None,
    device: str = "cpu",
) -> FigurePlan:
    """The runs of every figure. ``overrides`` (dotted field -> value) apply to every run, e.g.
    a smaller video for a quick look; ``frames`` shortens every run."""
    from codec.types import NUM_SCALES

    common = dict(overrides or {})

    def run(name: str, scenario: str, extra: Mapping[str, Any], label: str | None) -> FigureRun:
        path = scenarios_dir / f"{scenario}.yaml"
        task = _task(name, path, results_dir, {**common, **extra}, frames, device)
        return FigureRun(task, label if label is not None else _loss_label(scenario_of(task)))

    loss = tuple(run(name, name, {}, None) for name in LOSS_SCENARIOS)
    clean = run(CLEAN_SCENARIO, CLEAN_SCENARIO, {}, "no loss")
    progressive = tuple(
        run(
            f"{PROGRESSIVE_SCENARIO}_m{m}",
            PROGRESSIVE_SCENARIO,
            {MAX_SCALES_FIELD: m},
            f"scales 1..{m}" if m > 1 else "scale 1",
        )
        for m in range(1, NUM_SCALES + 1)
    )
    echo = []
    for delay in echo_delays:
        task = _task(
            f"{ECHO_SCENARIO}_{delay:g}f",
            scenarios_dir / f"{ECHO_SCENARIO}.yaml",
            results_dir,
            {**common, ECHO_DELAY_FRAMES_FIELD: delay, ECHO_DELAY_MS_FIELD: None},
            frames,
            device,
        )
        fps = scenario_of(task).video.fps
        unit = "frame" if delay == 1 else "frames"
        echo.append(FigureRun(task, f"{delay:g} {unit} ({1000 * delay / fps:.0f} ms)"))
    return FigurePlan(loss=loss, clean=clean, progressive=progressive, echo=tuple(echo))


def checkpoint_file(scenario: Scenario) -> Path | None:
    """The weights file a scenario's codec loads (None for random weights)."""
    from codec.checkpoint import DEFAULT_CHECKPOINT

    checkpoint = scenario.codec.checkpoint
    if checkpoint == "none":
        return None
    return DEFAULT_CHECKPOINT if checkpoint == "default" else Path(checkpoint)


def scenario_inputs(task: RunTask, scenario: Scenario) -> list[Path]:
    """Existing files a run's results depend on: scenario file, checkpoint, video, link trace."""
    from codec.video import VideoError, resolve_source

    inputs: list[Path | None] = [task.base, checkpoint_file(scenario)]
    with contextlib.suppress(VideoError):  # a missing video is the run's error to report
        inputs.append(resolve_source(scenario.video.source))
    trace = getattr(scenario.network.forward, "trace_file", None)
    inputs.append(Path(trace) if trace else None)
    return [path for path in inputs if path is not None and path.exists()]


def is_current(task: RunTask) -> bool:
    """True when ``task.out_dir`` holds results of exactly this run that are newer than every
    input (see module docstring)."""
    summary_path = task.out_dir / SUMMARY_FILE
    if not summary_path.is_file():
        return False
    scenario = scenario_of(task)
    newest_input = max(path.stat().st_mtime for path in scenario_inputs(task, scenario))
    if summary_path.stat().st_mtime <= newest_input:
        return False
    try:
        summary = load_summary(summary_path)
    except TraceError:
        return False
    frames = scenario.video.frames if task.frames is None else task.frames
    seed = scenario.seed if task.seed is None else task.seed
    return (
        summary.get("scenario") == json.loads(scenario.model_dump_json())
        and summary.get("frames") == frames
        and summary.get("seed") == seed
    )


def run_in_process(task: RunTask, on_frame: Callable[[int, int], None] | None = None) -> None:
    """Simulate one run in this process (all torch threads), reporting each decoded frame."""
    from netsim.runner import run_scenario

    run_scenario(
        scenario_of(task),
        task.out_dir,
        frames=task.frames,
        seed=task.seed,
        device=task.device,
        on_frame=on_frame,
    )


def rd_is_current(rd_path: Path, checkpoint: Path | None) -> bool:
    """True when ``rd_path`` exists and is newer than the checkpoint it was computed with."""
    if not rd_path.is_file():
        return False
    return checkpoint is None or rd_path.stat().st_mtime > checkpoint.stat().st_mtime


def evaluate_rd(
    clean: RunTask,
    rd_path: Path,
    frames: int,
    on_progress: Callable[[Any], None] | None = None,
) -> None:
    """A small ``dhvc eval`` on the clean scenario's video, model and GOP: writes ``rd_path``."""
    import av

    from codec import load_model
    from codec.eval import ANCHORS, evaluate

    scenario = scenario_of(clean)
    spec = scenario.codec
    video = scenario.video
    anchors = [a for a in RD_ANCHORS if ANCHORS[a][0] in av.codecs_available]
    model = load_model(checkpoint=spec.checkpoint, preset=spec.preset, device=clean.device)
    evaluate(
        video.source,
        frames=frames,
        gop=spec.gop_frames,
        lambdas=None,
        anchors=anchors,
        model=model,
        out_json=rd_path,
        size=(video.width_px, video.height_px),
        on_progress=on_progress,
    )


def draw_figures(plan: FigurePlan, out_dir: Path, rd_path: Path | None) -> dict[str, list[Path]]:
    """Load the plan's results and write every figure; returns figure name -> files."""
    clean = load_run(plan.clean.task.out_dir)
    reference = annotate_frames(clean.frames, clean.packets)

    def series(runs: Sequence[FigureRun]) -> pd.DataFrame:
        return frame_series({run.label: load_run(run.task.out_dir) for run in runs})

    echo = series(plan.echo)
    written = {
        "loss_resilience": save_figure(
            plot_loss_resilience(series(plan.loss), reference), out_dir, "loss_resilience"
        ),
        "progressive": save_figure(
            plot_progressive(series(plan.progressive)), out_dir, "progressive"
        ),
        "echo_delay": save_figure(
            plot_echo_delay(echo, reference[reference["frame"] <= echo["frame"].max()]),
            out_dir,
            "echo_delay",
        ),
        "rate_share": save_figure(
            plot_rate_share(rate_share_by_scale(clean.frames)), out_dir, "rate_share"
        ),
    }
    if rd_path is not None:
        written["rd_curves"] = save_figure(plot_rd(*load_rd(rd_path)), out_dir, "rd_curves")
    return written


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def main(
    out: Annotated[Path, typer.Option(help="Folder for the figures (.png and .pdf).")] = Path(
        "figures"
    ),
    results: Annotated[Path, typer.Option(help="Folder of the run results.")] = Path("results"),
    scenarios: Annotated[Path, typer.Option(help="Folder of the scenario files.")] = Path(
        "scenarios"
    ),
    frames: Annotated[
        int | None, typer.Option(min=1, help="Frames per run (default: each scenario's).")
    ] = None,
    set_fields: Annotated[
        list[str] | None,
        typer.Option("--set", help="FIELD=VALUE applied to every scenario (repeatable)."),
    ] = None,
    echo_delays: Annotated[
        list[float] | None, typer.Option("--echo-delay", help="Echo delays in frames (repeatable).")
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Parallel runs (dask workers, one thread each).")
    ] = default_workers(),
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
    rd: Annotated[
        Path | None,
        typer.Option(help="rd.json to plot (default: results/rd/rd.json, made if stale)."),
    ] = None,
    rd_frames: Annotated[
        int, typer.Option(min=0, help="Frames of the eval run when rd.json is missing (0: skip).")
    ] = 8,
    force: Annotated[
        bool, typer.Option(help="Run every scenario even if its results are current.")
    ] = False,
) -> None:
    """Run the scenarios the figures need (reusing current results) and write the figures."""
    console = Console(stderr=True)
    try:
        plan = plan_figures(
            scenarios,
            results,
            frames=frames,
            echo_delays=echo_delays or DEFAULT_ECHO_DELAYS,
            overrides=parse_overrides(set_fields or []),
            device=device,
        )
        stale = [run.task for run in plan.runs if force or not is_current(run.task)]
        reused = len(plan.runs) - len(stale)
        console.print(f"{len(plan.runs)} runs needed: {reused} current, {len(stale)} to run")
        _run_stale(stale, workers, console)
        rd_path = (
            rd if rd is not None else _rd(plan, results / "rd" / "rd.json", rd_frames, console)
        )
        written = draw_figures(plan, out, rd_path)
    except (SweepError, TraceError, ScenarioError, RunError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    for name, paths in written.items():
        console.print(f"{name}: " + ", ".join(str(p) for p in paths), highlight=False)


def _run_stale(stale: Sequence[RunTask], workers: int, console: Console) -> None:
    if not stale:
        return
    with _progress(console) as progress:
        if workers == 1 or len(stale) == 1:
            for task in stale:
                bar = progress.add_task(task.run_id, total=None)
                run_in_process(
                    task,
                    lambda done, total, bar=bar: progress.update(bar, completed=done, total=total),
                )
            return
        bar = progress.add_task(f"{len(stale)} runs on {workers} workers", total=len(stale))

        def report(event: RunEvent) -> None:
            progress.update(bar, completed=event.done)
            word = "done" if event.status is RunStatus.FINISHED else f"FAILED: {event.error}"
            progress.console.print(f"{event.run_id} {word}", markup=False, highlight=False)

        _, failed = run_tasks(stale, workers=workers, on_event=report)
    if failed:
        first = next(iter(failed.items()))
        raise SweepError(f"{len(failed)} run(s) failed, e.g. {first[0]}: {first[1]}")


def _rd(plan: FigurePlan, rd_path: Path, rd_frames: int, console: Console) -> Path | None:
    """``rd_path`` when current; otherwise a fresh small eval there, or None (no RD figure)."""
    if rd_is_current(rd_path, checkpoint_file(scenario_of(plan.clean.task))):
        return rd_path
    if rd_frames == 0:
        console.print(f"note: {rd_path} is missing or stale and --rd-frames is 0: no RD figure")
        return None
    with _progress(console) as progress:
        bar = progress.add_task(f"rate-distortion eval ({rd_frames} frames)", total=None)

        def report(step: Any) -> None:
            progress.update(bar, completed=step.point - 1, total=step.points_total)

        evaluate_rd(plan.clean.task, rd_path, rd_frames, report)
    return rd_path


def cli() -> None:
    """Entry point of ``python -m analysis.make_figures``."""
    typer.run(main)


if __name__ == "__main__":
    cli()
