"""``dhvc``: encode, decode, inspect, benchmark, train and evaluate the codec.

Thin Typer commands: each parses, calls one library function and renders the result. User errors
are one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from codec.config import DEFAULT_PRESET, PRESETS, get_preset
from codec.datapack import DEFAULT_PACK

app = typer.Typer(
    help="DHVC 2.0 hierarchical neural video codec.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

CheckpointOpt = Annotated[
    str,
    typer.Option(
        "--checkpoint",
        help="Weights: 'default' (shipped), 'none' (random, for tests/benchmarks) or a path.",
    ),
]
PresetOpt = Annotated[
    str | None, typer.Option("--preset", help=f"Model preset ({', '.join(PRESETS)}).")
]


def fail(message: str) -> typer.Exit:
    """Print one error line and return the exit to raise (code 2)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's typed errors into one line and exit code 2."""
    from codec.bitstream import BitstreamError
    from codec.checkpoint import CheckpointError
    from codec.video import VideoError

    try:
        yield
    except (BitstreamError, CheckpointError, VideoError, ValueError, OSError) as err:
        raise fail(str(err)) from None


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=not sys.stderr.isatty(),
    )


@app.command()
def encode(
    video: Annotated[Path, typer.Argument(help="Video file (mp4, mkv, y4m) or folder of PNGs.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output .dhvc file.")],
    lam: Annotated[float, typer.Option("--lambda", help="Rate parameter lambda.")] = 1024.0,
    frames: Annotated[int | None, typer.Option(help="Encode at most N frames.")] = None,
    gop: Annotated[int, typer.Option(help="Intra period in frames.")] = 32,
    preset: PresetOpt = None,
    checkpoint: CheckpointOpt = "default",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Encode a video into a .dhvc file."""
    from codec.api import encode_file

    with user_errors(), _progress() as progress:
        task = progress.add_task("encode", total=frames, info="")

        def on_frame(i: int, total: int, bits: int) -> None:
            progress.update(task, completed=i + 1, total=total, info=f"{bits} bits")

        summary = encode_file(video, output, lam, frames, gop, preset, checkpoint, device, on_frame)
    console.print(
        f"{summary.frames} frames, {summary.width}x{summary.height}, "
        f"{summary.bpp:.4f} bpp, {summary.bytes_total} bytes -> {output}"
    )


@app.command()
def decode(
    stream: Annotated[Path, typer.Argument(help="Input .dhvc file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder (PNG frames) or .mp4.")],
    scales: Annotated[
        int, typer.Option(help="Decode with scales 1..M only (progressive decoding).")
    ] = 4,
    checkpoint: CheckpointOpt = "default",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Decode a .dhvc file into PNG frames or an mp4."""
    from codec.api import decode_file

    with user_errors():
        summary = decode_file(stream, output, scales, checkpoint, device)
    console.print(
        f"{summary.frames} frames decoded with scales 1..{scales}; "
        f"{summary.frames_with_substitution} with substituted scales -> {output}"
    )
    if summary.frames_out_of_sync:
        typer.echo(
            f"warning: {summary.frames_out_of_sync} frame(s) lost entropy sync with no scale "
            "missing (sync-tag mismatch): the stream was coded by another platform or model "
            "build, or this is a bug",
            err=True,
        )


@app.command()
def info(stream: Annotated[Path, typer.Argument(help="Input .dhvc file.")]) -> None:
    """Print the stream header and per-frame sizes of a .dhvc file as JSON."""
    from codec.api import describe_file

    with user_errors():
        description = describe_file(stream)
    typer.echo(json.dumps(description, indent=2))


@app.command()
def bench(
    preset: Annotated[str, typer.Option(help="Model preset.")] = DEFAULT_PRESET,
    size: Annotated[str, typer.Option(help="Frame size WxH.")] = "448x256",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    frames: Annotated[int, typer.Option(help="Frames to time.")] = 8,
    checkpoint: CheckpointOpt = "none",
    macs_only: Annotated[bool, typer.Option(help="Count parameters and MACs only.")] = False,
) -> None:
    """Parameters, KMACs/pixel, encode/decode ms per frame and peak memory."""
    from codec.bench import run_bench

    with user_errors():
        try:
            width, height = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise fail(f"--size must look like 640x256, got {size!r}") from None
        result = run_bench(preset, width, height, device, frames, checkpoint, macs_only)
    typer.echo(json.dumps(result, indent=2))


@app.command()
def train(
    state: Annotated[Path, typer.Option(help="Training state file (resumed if present).")] = Path(
        "runs/train/state.pt"
    ),
    weights_out: Annotated[
        Path | None, typer.Option(help="Where fp16 EMA weights go (default: next to --state).")
    ] = None,
    resume: Annotated[
        Path | None, typer.Option(help="fp16 weights to warm-start from (no state file).")
    ] = None,
    data: Annotated[
        str, typer.Option(help="Training pack folder (make data), or 'sample' (no download).")
    ] = str(DEFAULT_PACK),
    preset: Annotated[str, typer.Option(help="Model preset.")] = DEFAULT_PRESET,
    intra_steps: Annotated[int, typer.Option(help="Last step of the intra phase.")] = 2000,
    p3_steps: Annotated[int, typer.Option(help="Last step of the 3-frame phase.")] = 4000,
    p7_steps: Annotated[int, typer.Option(help="Last step of the 7-frame phase.")] = 5000,
    batch_size: Annotated[int, typer.Option(help="Clips per step (3- and 7-frame phases).")] = 8,
    intra_batch_size: Annotated[int, typer.Option(help="Frames per intra step.")] = 24,
    crop: Annotated[int, typer.Option(help="Crop side in pixels (multiple of 64).")] = 128,
    lr: Annotated[float, typer.Option(help="Peak Adam learning rate.")] = 4e-4,
    lr_final_ratio: Annotated[
        float, typer.Option(help="Cosine decay ends at lr times this.")
    ] = 0.05,
    warmup_steps: Annotated[int, typer.Option(help="Linear learning-rate warm-up.")] = 100,
    synthetic_fraction: Annotated[
        float, typer.Option(help="Share of clips that are synthetic motion over photos.")
    ] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of every random stream.")] = 0,
    save_every: Annotated[int, typer.Option(help="Save state every N steps.")] = 200,
    log_every: Annotated[int, typer.Option(help="Read the losses back every N steps.")] = 10,
    max_minutes: Annotated[float | None, typer.Option(help="Stop after this wall time.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    compile_model: Annotated[
        bool, typer.Option("--compile/--no-compile", help="torch.compile the model.")
    ] = False,
) -> None:
    """Train a model (intra, then 3-frame, then 7-frame clips), resumable."""
    from codec.data import training_sources
    from codec.train import TrainConfig
    from codec.train import train as run_train

    with user_errors():
        cfg = TrainConfig(
            preset=preset,
            intra_steps=intra_steps,
            p3_steps=p3_steps,
            p7_steps=p7_steps,
            batch_size=batch_size,
            intra_batch_size=intra_batch_size,
            crop=crop,
            lr=lr,
            lr_final_ratio=lr_final_ratio,
            warmup_steps=warmup_steps,
            synthetic_fraction=synthetic_fraction,
            seed=seed,
            save_every=save_every,
            log_every=log_every,
            compile=compile_model,
        )
        get_preset(preset)
        sources = training_sources(data)
    weights_out = weights_out or state.with_name(f"dhvc-{preset}.pt")
    console.print(f"training data: {data}: {sources.describe()}")
    with user_errors(), _progress() as progress:
        task = progress.add_task("train", total=cfg.total_steps, info="")

        def on_step(s) -> None:
            progress.update(
                task,
                completed=s.step,
                info=f"T={s.frames} loss={s.loss:.3f} bpp={s.bpp:.4f} psnr={s.psnr:.2f}dB "
                f"{s.steps_per_s:.2f} steps/s skipped={s.skipped}",
            )

        result = run_train(
            cfg,
            state,
            sources,
            weights_out=weights_out,
            resume=resume,
            device=device,
            max_seconds=None if max_minutes is None else 60 * max_minutes,
            on_step=on_step,
        )
    last = result.history[-1] if result.history else {}
    console.print(f"stopped at step {result.step}: {last}")
    console.print(f"state -> {state}; weights -> {weights_out}")


@app.command(name="eval")
def evaluate_cmd(
    sources: Annotated[
        list[str],
        typer.Argument(
            help="Video files, PNG folders, sample:NAME or named sets set:val, set:val-stills.",
            show_default=False,
        ),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="rd.json to write.")] = Path(
        "rd.json"
    ),
    frames: Annotated[
        int | None, typer.Option(help="Frames per source (default 96; 16 for set:val).")
    ] = None,
    gop: Annotated[
        int | None,
        typer.Option(help="Intra period, also the anchors' keyint (default 32; 1 with --intra)."),
    ] = None,
    intra: Annotated[
        bool,
        typer.Option("--intra", help="Intra only: every frame an I frame (anchors: keyint 1)."),
    ] = False,
    lambdas: Annotated[
        str | None, typer.Option(help="Comma-separated lambdas (default: 6 over the range).")
    ] = None,
    anchors: Annotated[str, typer.Option(help="Comma-separated: x264,x265 or ''.")] = "x264,x265",
    qps: Annotated[str, typer.Option(help="Comma-separated anchor QPs.")] = "22,27,32,37,42",
    size: Annotated[
        str | None,
        typer.Option(help="Resize and centre-crop to WxH (set:val default 384x256)."),
    ] = None,
    pack: Annotated[
        Path, typer.Option(help="Training pack (from `make data`) that set:NAME reads.")
    ] = DEFAULT_PACK,
    checkpoint: CheckpointOpt = "default",
    preset: PresetOpt = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Rate-distortion of DHVC against x264/x265 (low delay, or --intra) over one or more
    sources: rd.json, rd.png, per-source and set-average BD-rates."""
    from codec.checkpoint import load_model
    from codec.eval import DEFAULT_GOP, evaluate, plot_rd

    def numbers(text: str | None, kind: type, name: str) -> list | None:
        if text is None:
            return None
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise fail(f"--{name} must be comma-separated numbers, got {text!r}") from None

    def bd_text(bd: dict) -> str:
        """``vs x264 PSNR +12.3 %, MS-SSIM n/a; ...``, with (k of n sources) for a mean."""

        def value(entry: dict, metric: str) -> str:
            v = entry[metric]
            text = "n/a" if v is None else f"{v:+.1f} %"
            left_out = entry.get("left_out", {}).get(metric)
            if left_out:
                used = entry["sources"][metric]
                text += f" ({used} of {used + len(left_out)} sources)"
            return text

        return "; ".join(
            f"vs {a} PSNR {value(e, 'psnr')}, MS-SSIM {value(e, 'ms_ssim')}" for a, e in bd.items()
        )

    if frames is not None and frames < 1:
        raise fail(f"--frames must be at least 1, got {frames}")
    if gop is not None and gop < 1:
        raise fail(f"--gop must be at least 1, got {gop}")
    if intra and gop not in (None, 1):
        raise fail(f"--intra codes every frame as an I frame: --gop must be 1, got {gop}")
    wh = None
    if size is not None:
        try:
            w, h = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise fail(f"--size must look like 640x256, got {size!r}") from None
        wh = (w, h)
    with user_errors(), _progress() as progress:
        model = load_model(checkpoint, preset=preset, device=device)
        task = progress.add_task("eval", total=None, info="")

        def on_progress(p) -> None:
            where = f"{p.source_index}/{p.sources_total} {p.source} " if p.sources_total > 1 else ""
            progress.update(
                task,
                completed=p.point,
                total=p.points_total,
                info=f"{where}{p.codec} {p.setting} frame {p.frames_done}/{p.frames_total}",
            )

        rd = evaluate(
            sources,
            frames,
            (1 if intra else DEFAULT_GOP) if gop is None else gop,
            numbers(lambdas, float, "lambdas"),
            [a for a in anchors.split(",") if a.strip()],
            model,
            output,
            size=wh,
            on_progress=on_progress,
            qps=numbers(qps, int, "qps"),
            intra=intra,
            pack_root=pack,
        )
        png = plot_rd(rd, output.with_suffix(".png"))

    def say(text: str) -> None:
        console.print(text, soft_wrap=True, markup=False, highlight=False)

    average = rd.get("set_average")
    for entry in rd.get("sources", [rd]):
        say(f"{entry['video']}: BD-rate {bd_text(entry['bd_rate'])}")
    if average is not None:
        count = average["sources"]
        say(f"set average of {count} sources, averaged curves: {bd_text(average['bd_rate'])}")
        say(f"mean of per-source BD-rates: {bd_text(average['bd_rate_mean_of_sources'])}")
    top = max(rd["codecs"]["dhvc"], key=lambda point: point["lambda"])
    say(
        f"DHVC at lambda {top['lambda']:g}{' (set average)' if average else ''}: "
        f"{top['bpp']:.4f} bpp, PSNR {top['psnr']:.2f} dB, MS-SSIM {top['ms_ssim']:.4f}"
    )
    console.print(f"-> {output}, {png}")


if __name__ == "__main__":
    app()
