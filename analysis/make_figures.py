"""``python -m analysis.make_figures --out figures`` (``make figures``): run what the figures need,
then draw them.

This module is the command-line composition root of the figures: it plans the simulator runs
(the scenario files of ``scenarios/`` and variants derived from them by field overrides), runs
those whose results are missing or older than their inputs with ``netsim.runner.run_scenario``
into ``results/<run>/``, and writes, as .png and .pdf:

* ``loss_resilience``: paper Fig. 22, loss20/40/60/80 against the clean run, each panel headed
  by the loss rate its scenario sets and the rates measured in packets.csv;
* ``progressive``: paper Fig. 11, progressive.yaml with ``sender.max_scales`` = 1..K;
* ``echo_delay``: paper Fig. 13, echo_delay.yaml with echo delays of 1, 3 and 6 frames;
* ``rate_share``: paper Fig. 21, the per-scale rate share of intra and inter frames (clean run);
* ``rd_curves``: PSNR and MS-SSIM against bpp for DHVC, x264 and x265, drawn from the committed
  ``docs/rd_bikes.json`` that docs/MODEL_CARD.md quotes (``--rd PATH`` for another rd.json;
  ``--rd-eval N`` runs a fresh N-frame ``codec.rd.eval.evaluate`` into ``results/rd/rd.json``);
* ``psnr_vs_loss`` (only with ``--sweep``): mean PSNR against measured packet loss with
  confidence intervals over seeds, from a sweep table (:func:`psnr_vs_loss_figure`).

Every title says what was measured (clip, size, frames, lambda, seed). A result is reused when
its summary.json is newer than the scenario file, the checkpoint, the video and any trace file,
and records the same effective scenario, frame count, seed and model id
(``netsim.sweep.is_current``). Simulator runs are deterministic per seed and figures are
saved without dates (``analysis.figures.save_figure``), so running
``make figures`` again, or on a fresh clone, writes the same bytes.
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
from matplotlib.figure import Figure
from rich.console import Console

from analysis.figures import (
    describe,
    plot_echo_delay,
    plot_loss_resilience,
    plot_progressive,
    plot_psnr_vs_loss,
    plot_rate_share,
    plot_rd,
    save_figure,
)
from analysis.io import SUMMARY_FILE, TraceError, load_run
from analysis.metrics import (
    annotate_frames,
    describe_rd,
    describe_runs,
    describe_table,
    frame_series,
    grid_columns,
    loss_table,
    rate_share_by_scale,
    seed_intervals,
)
from codec.cli.base import progress_bar
from codec.rd.results import RdFileError, read_rd
from netsim.runner import RunError
from netsim.scenario import Scenario, ScenarioError
from netsim.sweep import (
    TABLE_STEM,
    RunEvent,
    RunStatus,
    RunTask,
    SweepError,
    build_scenario,
    default_workers,
    load_sweep,
    run_tasks,
)
from netsim.sweep import is_current as records_this_run

LOSS_SCENARIOS = ("loss20", "loss40", "loss60", "loss80")
CLEAN_SCENARIO = "clean"
PROGRESSIVE_SCENARIO = "progressive"
ECHO_SCENARIO = "echo_delay"
MAX_SCALES_FIELD = "sender.max_scales"
ECHO_DELAY_FRAMES_FIELD = "network.feedback.delay_frames"
ECHO_DELAY_MS_FIELD = "network.feedback.delay_ms"
DEFAULT_ECHO_DELAYS = (1.0, 3.0, 6.0)
ROOT = Path(__file__).resolve().parents[1]
COMMITTED_RD = ROOT / "docs" / "rd_bikes.json"
"""The RD measurement docs/MODEL_CARD.md quotes for the shipped weights (bikes, 96 frames)."""
EVAL_RD = Path("rd") / "rd.json"
"""Where ``--rd-eval`` writes its fresh evaluation, under the results folder."""


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
    """The legend label of a loss run: the rate its scenario *sets* (what was lost is measured
    from its packets and shown beside it)."""
    rate = getattr(scenario.network.forward.loss, "loss_rate", None)
    return f"loss rate set to {rate:.0%}" if rate is not None else scenario.name


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
    from codec.model.checkpoint import DEFAULT_CHECKPOINT

    checkpoint = scenario.codec.checkpoint
    if checkpoint == "none":
        return None
    return DEFAULT_CHECKPOINT if checkpoint == "default" else Path(checkpoint)


def scenario_inputs(task: RunTask, scenario: Scenario) -> list[Path]:
    """Existing files a run's results depend on: scenario file, checkpoint, video, link trace."""
    from codec.io.video import VideoError, resolve_source

    inputs: list[Path | None] = [task.base, checkpoint_file(scenario)]
    with contextlib.suppress(VideoError):  # a missing video is the run's error to report
        inputs.append(resolve_source(scenario.video.source))
    trace = getattr(scenario.network.forward, "trace_file", None)
    inputs.append(Path(trace) if trace else None)
    return [path for path in inputs if path is not None and path.exists()]


def is_current(task: RunTask) -> bool:
    """True when ``task.out_dir`` holds results of exactly this run that are newer than every
    input and were made with the weights the scenario loads now (see module docstring)."""
    summary_path = task.out_dir / SUMMARY_FILE
    if not summary_path.is_file():
        return False
    scenario = scenario_of(task)
    newest_input = max(path.stat().st_mtime for path in scenario_inputs(task, scenario))
    return summary_path.stat().st_mtime > newest_input and records_this_run(task)


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


def rd_is_current(rd_path: Path, checkpoint: Path | None, frames: int | None = None) -> bool:
    """True when ``rd_path`` exists, is newer than the checkpoint it was computed with, and
    (when ``frames`` is given) measured that many frames."""
    if not rd_path.is_file():
        return False
    if checkpoint is not None and rd_path.stat().st_mtime <= checkpoint.stat().st_mtime:
        return False
    if frames is None:
        return True
    try:
        return json.loads(rd_path.read_text(encoding="utf-8")).get("frames") == frames
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def checkpoint_model_id(checkpoint: Path | None) -> str | None:
    """The ``model_id`` stored in a checkpoint file (None for random weights or none stored)."""
    from codec.model.checkpoint import read_checkpoint_header

    if checkpoint is None or not checkpoint.is_file():
        return None
    return read_checkpoint_header(checkpoint)[1]


def shown_path(path: Path) -> str:
    """``path`` as a figure title shows it: relative to the repository when inside it (so the
    figure's bytes do not depend on where the repository was cloned), else its name."""
    resolved = Path(path).resolve()
    if resolved.is_relative_to(ROOT):
        return resolved.relative_to(ROOT).as_posix()
    return resolved.name


def rd_title(rd: Mapping[str, Any], rd_path: Path) -> str:
    """The RD figure's title: the file it is drawn from, the model, and what was measured."""
    model = rd.get("model")
    model_id = model.get("model_id") if isinstance(model, Mapping) else None
    source = shown_path(rd_path) + (f", model {model_id}" if model_id else "")
    measured = describe(describe_rd(rd))
    if isinstance(rd.get("gop"), int):
        measured += f", GOP {rd['gop']}"
    return f"Rate-distortion ({source})\n{measured}"


def evaluate_rd(
    clean: RunTask,
    rd_path: Path,
    frames: int,
    on_progress: Callable[[Any], None] | None = None,
) -> None:
    """A small ``dhvc eval`` on the clean scenario's video, model and GOP: writes ``rd_path``."""
    import av

    from codec import load_model
    from codec.rd.eval import ANCHORS, evaluate

    scenario = scenario_of(clean)
    spec = scenario.codec
    video = scenario.video
    anchors = [a for a in ANCHORS if ANCHORS[a][0] in av.codecs_available]
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

    def loaded(runs: Sequence[FigureRun]) -> dict[str, Any]:
        return {run.label: load_run(run.task.out_dir) for run in runs}

    loss, progressive, echo = loaded(plan.loss), loaded(plan.progressive), loaded(plan.echo)
    echo_series = frame_series(echo)
    loss_figure = plot_loss_resilience(
        frame_series(loss),
        reference,
        losses=loss_table(loss),
        description=describe_runs([*loss.values(), clean]),
    )
    progressive_figure = plot_progressive(
        frame_series(progressive), description=describe_runs(progressive.values())
    )
    echo_figure = plot_echo_delay(
        echo_series,
        reference[reference["frame"] <= echo_series["frame"].max()],
        description=describe_runs(echo.values()),
    )
    share_figure = plot_rate_share(
        rate_share_by_scale(clean.frames), description=describe_runs([clean])
    )
    written = {
        "loss_resilience": save_figure(loss_figure, out_dir, "loss_resilience"),
        "progressive": save_figure(progressive_figure, out_dir, "progressive"),
        "echo_delay": save_figure(echo_figure, out_dir, "echo_delay"),
        "rate_share": save_figure(share_figure, out_dir, "rate_share"),
    }
    if rd_path is not None:
        rd = read_rd(rd_path)
        rd_figure = plot_rd(rd, title=rd_title(rd, rd_path))
        written["rd_curves"] = save_figure(rd_figure, out_dir, "rd_curves")
    return written


def load_sweep_table(path: Path) -> pd.DataFrame:
    """A sweep table (one row per run, ``netsim.sweep.gather``) from its .parquet or .csv
    file, or from the sweep file (.yaml) whose ``out_dir`` holds it."""
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        path = load_sweep(path).results_dir / f"{TABLE_STEM}.parquet"
    if not path.is_file():
        raise TraceError(f"{path}: sweep table not found (run the sweep first: netsim sweep)")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".csv":
        return pd.read_csv(path)
    raise TraceError(f"{path}: a sweep table is a .parquet or .csv file")


PSNR_COLUMN = "mean_psnr_db"
LOSS_COLUMNS = ("packet_loss_rate", "exposed_loss_rate")


def psnr_vs_loss_figure(table: pd.DataFrame, confidence: float = 0.95) -> Figure:
    """Mean PSNR against measured packet loss, with ``confidence`` t-intervals over seeds,
    from a sweep table (:func:`load_sweep_table`); the grid column whose name ends in
    ``loss_rate`` labels each point with the rate it sets, any other grid column gives one
    line per value. Returns the figure (usable from a notebook)."""
    if PSNR_COLUMN not in table.columns or LOSS_COLUMNS[0] not in table.columns:
        raise TraceError(f"the sweep table needs columns {PSNR_COLUMN!r} and {LOSS_COLUMNS[0]!r}")
    grid = grid_columns(table)
    values = [PSNR_COLUMN, *(c for c in LOSS_COLUMNS if c in table.columns)]
    intervals = seed_intervals(table, values=values, by=grid, confidence=confidence)
    set_column = next((c for c in grid if c.endswith("loss_rate")), None)
    return plot_psnr_vs_loss(
        intervals,
        set_column=set_column,
        line_columns=[c for c in grid if c != set_column],
        confidence=confidence,
        description=describe_table(table),
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
        typer.Option(
            help="rd.json to plot (default: docs/rd_bikes.json, the one the model card quotes)."
        ),
    ] = None,
    rd_eval: Annotated[
        int,
        typer.Option(
            min=0,
            help="Run a fresh N-frame RD eval of the clean scenario into results/rd/rd.json "
            "and plot it instead (0: plot the committed rd.json).",
        ),
    ] = 0,
    sweep: Annotated[
        Path | None,
        typer.Option(
            help="Sweep table (.parquet/.csv) or sweep file (.yaml): also draw psnr_vs_loss."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Run every scenario even if its results are current.")
    ] = False,
) -> None:
    """Run the scenarios the figures need (reusing current results) and write the figures."""
    console = Console(stderr=True)
    if rd is not None and rd_eval:
        typer.echo("error: --rd and --rd-eval exclude each other (plot a file, or run an eval)")
        raise typer.Exit(2)
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
        if rd_eval:
            rd_path = _rd_eval(plan, results / EVAL_RD, rd_eval, console)
        else:
            rd_path = COMMITTED_RD if rd is None else rd
            _check_rd_model(plan, rd_path, console)
        written = draw_figures(plan, out, rd_path)
        if sweep is not None:
            figure = psnr_vs_loss_figure(load_sweep_table(sweep))
            written["psnr_vs_loss"] = save_figure(figure, out, "psnr_vs_loss")
    except (SweepError, TraceError, ScenarioError, RunError, RdFileError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    for name, paths in written.items():
        console.print(f"{name}: " + ", ".join(str(p) for p in paths), highlight=False)


def _run_stale(stale: Sequence[RunTask], workers: int, console: Console) -> None:
    if not stale:
        return
    with progress_bar(console) as progress:
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


def _check_rd_model(plan: FigurePlan, rd_path: Path, console: Console) -> None:
    """A note when ``rd_path`` was measured with other weights than the scenarios load."""
    if not rd_path.is_file():
        raise TraceError(f"{rd_path}: file not found (--rd PATH, or --rd-eval N for a fresh eval)")
    model = read_rd(rd_path).get("model")
    measured = model.get("model_id") if isinstance(model, Mapping) else None
    current = checkpoint_model_id(checkpoint_file(scenario_of(plan.clean.task)))
    if measured and current and measured != current:
        console.print(
            f"note: {rd_path} measured model {measured}, the checkpoint is {current}; "
            "--rd-eval N draws a fresh evaluation",
            highlight=False,
        )


def _rd_eval(plan: FigurePlan, rd_path: Path, rd_frames: int, console: Console) -> Path:
    """``rd_path`` when it holds a current ``rd_frames``-frame eval; else a fresh eval there."""
    if rd_is_current(rd_path, checkpoint_file(scenario_of(plan.clean.task)), rd_frames):
        return rd_path
    with progress_bar(console) as progress:
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
