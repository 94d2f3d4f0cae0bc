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
    str | None, typer.Option("--preset", help="Model preset (tiny, small, paper).")
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


@app.command()
def info(stream: Annotated[Path, typer.Argument(help="Input .dhvc file.")]) -> None:
    """Print the stream header and per-frame sizes of a .dhvc file as JSON."""
    from codec.api import describe_file

    with user_errors():
        description = describe_file(stream)
    typer.echo(json.dumps(description, indent=2))


@app.command()
def bench(
    preset: Annotated[str, typer.Option(help="Model preset.")] = "small",
    size: Annotated[str, typer.Option(help="Frame size WxH.")] = "640x256",
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
    weights_out: Annotated[Path, typer.Option(help="Where fp16 EMA weights are written.")] = Path(
        "runs/train/dhvc-small.pt"
    ),
    resume: Annotated[
        Path | None, typer.Option(help="fp16 weights to warm-start from (no state file).")
    ] = None,
    preset: Annotated[str, typer.Option(help="Model preset.")] = "small",
    intra_steps: Annotated[int, typer.Option(help="Last step of the intra phase.")] = 2000,
    p3_steps: Annotated[int, typer.Option(help="Last step of the 3-frame phase.")] = 4000,
    p7_steps: Annotated[int, typer.Option(help="Last step of the 7-frame phase.")] = 5000,
    batch_size: Annotated[int, typer.Option(help="Clips per step.")] = 8,
    crop: Annotated[int, typer.Option(help="Crop side in pixels (multiple of 64).")] = 128,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 4e-4,
    seed: Annotated[int, typer.Option(help="Seed of every random stream.")] = 0,
    save_every: Annotated[int, typer.Option(help="Save state every N steps.")] = 200,
    max_minutes: Annotated[float | None, typer.Option(help="Stop after this wall time.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    workers: Annotated[
        int, typer.Option(help="DataLoader processes drawing clips (0: in the training loop).")
    ] = 0,
) -> None:
    """Train a model (intra, then 3-frame, then 7-frame sequences), resumable."""
    from codec.train import TrainConfig
    from codec.train import train as run_train

    if crop % 64:
        raise fail(f"--crop must be a multiple of 64, got {crop}")
    cfg = TrainConfig(
        preset=preset,
        intra_steps=intra_steps,
        p3_steps=p3_steps,
        p7_steps=p7_steps,
        batch_size=batch_size,
        crop=crop,
        lr=lr,
        seed=seed,
        save_every=save_every,
        workers=workers,
    )
    with user_errors(), _progress() as progress:
        task = progress.add_task("train", total=cfg.total_steps, info="")

        def on_step(s) -> None:
            progress.update(
                task,
                completed=s.step,
                info=f"T={s.frames} loss={s.loss:.3f} bpp={s.bpp:.4f} "
                f"psnr={s.psnr:.2f}dB {s.steps_per_s:.2f} steps/s",
            )

        result = run_train(
            cfg,
            state,
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
    video: Annotated[Path, typer.Argument(help="Video file, PNG folder or sample:NAME.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="rd.json to write.")] = Path(
        "rd.json"
    ),
    frames: Annotated[int, typer.Option(help="Frames to code.")] = 96,
    gop: Annotated[int, typer.Option(help="Intra period (also the anchors' keyint).")] = 32,
    lambdas: Annotated[
        str | None, typer.Option(help="Comma-separated lambdas (default: 6 over the range).")
    ] = None,
    anchors: Annotated[str, typer.Option(help="Comma-separated: x264,x265 or ''.")] = "x264,x265",
    qps: Annotated[str, typer.Option(help="Comma-separated anchor QPs.")] = "22,27,32,37,42",
    size: Annotated[str | None, typer.Option(help="Resize and centre-crop to WxH.")] = None,
    checkpoint: CheckpointOpt = "default",
    preset: PresetOpt = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
) -> None:
    """Rate-distortion of DHVC against x264/x265 (low delay): rd.json, rd.png, BD-rates."""
    from codec.checkpoint import load_model
    from codec.eval import evaluate, plot_rd

    def numbers(text: str | None, kind: type, name: str) -> list | None:
        if text is None:
            return None
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise fail(f"--{name} must be comma-separated numbers, got {text!r}") from None

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
            progress.update(
                task,
                completed=p.point,
                total=p.points_total,
                info=f"{p.codec} {p.setting} frame {p.frames_done}/{p.frames_total}",
            )

        rd = evaluate(
            str(video),
            frames,
            gop,
            numbers(lambdas, float, "lambdas"),
            [a for a in anchors.split(",") if a.strip()],
            model,
            output,
            size=wh,
            on_progress=on_progress,
            qps=numbers(qps, int, "qps"),
        )
        png = plot_rd(rd, output.with_suffix(".png"))
    for name, values in rd.get("bd_rate", {}).items():
        console.print(f"BD-rate vs {name}: {values}")
    console.print(f"-> {output}, {png}")


if __name__ == "__main__":
    app()
