"""``python -m analysis.compare_figures``: DHVC against x264 and x265 under the same loss
(issue 13, DESIGN 4b).

Reads what the comparison runs wrote and writes, as .png and .pdf, into ``--out``:

* ``compare_psnr_vs_loss``: mean PSNR against the Bernoulli loss rate set, one line per codec,
  with t-intervals over seeds, from the sweeps ``sweeps/compare_{dhvc,x264,x265}.yaml``
  (run them first: ``netsim sweep sweeps/compare_x264.yaml --workers 2``), and DHVC's best
  configuration as its own line (``sweeps/compare_dhvc_best.yaml``) when its sweep is there;
* ``compare_unusable``: the share of frames frozen, and frozen or below 25 dB, from the same
  sweeps (each run's frames.csv);
* ``compare_traces``: per-frame PSNR of one loss case side by side, from
  ``results/compare/compare_{codec}_{case}`` (``netsim run scenarios/compare/...``);
* ``compare_damage_budget``: where the decibels go at ``--budget-loss`` (seed 1): the clean mean
  PSNR of each configuration and what each frame state costs (``analysis.damage``), from the
  sweeps' runs at that loss rate and at no loss;
* with ``--video``: ``compare_video.mp4``, original | dhvc | x264 of that case, decoded anew.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from analysis.damage import damage_budget
from analysis.figures import (
    plot_codec_psnr_vs_loss,
    plot_codec_traces,
    plot_codec_unusable,
    plot_damage_budget,
    save_figure,
)
from analysis.io import TraceError, load_frames, load_run
from analysis.metrics import (
    UNUSABLE_PSNR_DB,
    codec_comparison,
    codec_frame_fractions,
    describe_table,
)
from netsim.codecs.registry import DHVC, builtin_codec_kinds

CODECS = builtin_codec_kinds()
"""DHVC, then the standard codecs it is compared with (``netsim.codecs``)."""
LOSS_COLUMN = "network.forward.loss.loss_rate"
SWEEPS = Path("results") / "sweeps"
RUNS = Path("results") / "compare"
SCENARIOS = Path("scenarios") / "compare"


BEST = "dhvc_best"
"""DHVC's best configuration (issue 18), drawn beside the codecs when its sweep exists."""


def sweep_tables(sweeps: Path) -> dict[str, pd.DataFrame]:
    """Each codec's sweep table with the frame fractions of each run added
    (``analysis.metrics.codec_frame_fractions`` of the run's frames.csv); DHVC's best
    configuration as ``dhvc_best`` after DHVC when its sweep exists."""
    tables = {}
    names = [CODECS[0], BEST, *CODECS[1:]]
    for codec in names:
        folder = sweeps / f"compare_{codec}"
        path = folder / "sweep_table.parquet"
        if not path.is_file():
            if codec == BEST:
                continue
            raise TraceError(f"{path}: not found (netsim sweep sweeps/compare_{codec}.yaml)")
        table = pd.read_parquet(path)
        fractions = [codec_frame_fractions(load_frames(folder / run)) for run in table["run"]]
        tables[codec] = pd.concat([table, pd.DataFrame(fractions)], axis=1)
    return tables


def sweep_run(sweeps: Path, name: str, loss_rate: float, seed: int) -> Path:
    """The folder of one run of sweep ``compare_{name}``."""
    return sweeps / f"compare_{name}" / f"{LOSS_COLUMN}_{loss_rate}__seed_{seed}"


def damage_budgets(sweeps: Path, loss_rate: float, seed: int = 1) -> dict[str, pd.DataFrame]:
    """``analysis.damage.damage_budget`` of each configuration's sweep run at ``loss_rate``
    against its run without loss (same seed); configurations without a sweep are left out."""
    budgets = {}
    for name in (CODECS[0], BEST, *CODECS[1:]):
        lossy = sweep_run(sweeps, name, loss_rate, seed)
        clean = sweep_run(sweeps, name, 0.0, seed)
        if lossy.is_dir() and clean.is_dir():
            budgets[name] = damage_budget(load_run(lossy), load_run(clean))
    if not budgets:
        raise TraceError(f"{sweeps}: no sweep run at loss rate {loss_rate} with seed {seed}")
    return budgets


def trace_series(runs: Path, case: str) -> pd.DataFrame:
    """Per-frame rows of ``compare_{codec}_{case}`` for every codec (codec, frame, psnr,
    frozen, frame_type)."""
    parts = []
    for codec in CODECS:
        frames = load_frames(runs / f"compare_{codec}_{case}")
        parts.append(frames.assign(codec=codec)[["codec", "frame", "psnr", "frozen", "frame_type"]])
    return pd.concat(parts, ignore_index=True)


def write_comparison_video(case: str, out_path: Path) -> Path:
    """original | dhvc | x264 of ``compare_{codec}_{case}``, decoded anew (``netsim.runner``)."""
    from codec.io.video import write_mp4
    from netsim.runner import load_run_inputs, simulate_run
    from netsim.scenario import load_scenario

    columns = []
    fps = 25.0
    for codec in CODECS[:2]:  # DHVC and the first standard codec (x264)
        scenario = load_scenario(SCENARIOS / f"compare_{codec}_{case}.yaml")
        inputs = load_run_inputs(scenario)
        outcome = simulate_run(inputs, keep_pictures=True)
        if not columns:
            columns.append(inputs.originals)
        assert outcome.pictures is not None
        columns.append(outcome.pictures)
        fps = scenario.video.fps
    return write_mp4(out_path, np.concatenate(columns, axis=2), fps)


def main(
    out: Annotated[Path, typer.Option(help="Folder for the figures.")] = Path("figures"),
    sweeps: Annotated[Path, typer.Option(help="Folder of the compare sweeps.")] = SWEEPS,
    runs: Annotated[Path, typer.Option(help="Folder of the compare runs.")] = RUNS,
    case: Annotated[str, typer.Option(help="Loss case of the per-frame traces.")] = "loss10",
    video: Annotated[bool, typer.Option(help="Also write compare_video.mp4.")] = False,
    budget_loss: Annotated[float, typer.Option(help="Loss rate of the damage budget.")] = 0.1,
) -> None:
    """Draw the codec comparison figures from the compare sweeps and runs."""
    try:
        tables = sweep_tables(sweeps)
        comparison = codec_comparison(tables, LOSS_COLUMN)
        description = describe_table(tables[DHVC])
        written = [
            *save_figure(
                plot_codec_psnr_vs_loss(comparison, LOSS_COLUMN, description=description),
                out,
                "compare_psnr_vs_loss",
            ),
            *save_figure(
                plot_codec_unusable(
                    comparison, LOSS_COLUMN, UNUSABLE_PSNR_DB, description=description
                ),
                out,
                "compare_unusable",
            ),
            *save_figure(
                plot_codec_traces(
                    trace_series(runs, case), f"Per-frame PSNR, scenarios/compare/*_{case}"
                ),
                out,
                "compare_traces",
            ),
            *save_figure(
                plot_damage_budget(
                    damage_budgets(sweeps, budget_loss),
                    f"Where the decibels go at {budget_loss:.0%} loss (seed 1, bikes)",
                ),
                out,
                "compare_damage_budget",
            ),
        ]
        if video:
            written.append(write_comparison_video(case, out / "compare_video.mp4"))
    except TraceError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    comparison.to_csv(out / "compare_table.csv", index=False, float_format="%.6g")
    for path in written:
        typer.echo(str(path))


if __name__ == "__main__":
    typer.run(main)
