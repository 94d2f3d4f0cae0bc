"""``dhvc``: encode, decode, inspect, benchmark, train and evaluate the codec.

Thin Typer commands: each parses, calls one library function and renders the result. User errors
are one line on stderr and exit code 2; Ctrl-C is one line and exit code 130 (``main``, the
console entry point, also covers the time before a command runs).
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, TextColumn, TimeRemainingColumn

from codec.cli import base
from codec.cli.base import fail
from codec.model.config import DEFAULT_PRESET, PRESETS, get_preset
from codec.pack.load import DEFAULT_PACK
from codec.train.config import TrainConfig

app = base.make_app("DHVC 2.0 hierarchical neural video codec.")
console = Console(stderr=True)
command = functools.partial(base.command, app)

TRAIN = TrainConfig()
"""``dhvc train``'s option defaults: the ``TrainConfig`` defaults."""

CheckpointOpt = Annotated[
    str,
    typer.Option(
        "--checkpoint",
        help="Weights: 'default' (shipped), 'none' (random, for tests/benchmarks) or a path.",
    ),
]
MotionOpt = Annotated[
    bool,
    typer.Option(
        "--motion/--no-motion",
        help="Block motion of the references (off: the paper's co-located references).",
    ),
]
PresetOpt = Annotated[
    str | None, typer.Option("--preset", help=f"Model preset ({', '.join(PRESETS)}).")
]
DeviceOpt = Annotated[
    str, typer.Option("--device", help="auto, cpu or cuda (cuda:N for one of several GPUs).")
]


def main() -> None:
    """The ``dhvc`` console entry point: ``app``, with a Ctrl-C outside a command (while
    arguments are parsed) also one line and exit code 130."""
    base.run(app)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's typed errors into one line and exit code 2."""
    from codec.io.video import VideoError
    from codec.model.checkpoint import CheckpointError
    from codec.model.device import DeviceError
    from codec.stream.bitstream import BitstreamError

    with base.user_errors(
        BitstreamError, CheckpointError, DeviceError, VideoError, ValueError, OSError
    ):
        yield


def _progress() -> Progress:
    return base.progress_bar(
        console,
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        disable=not sys.stderr.isatty(),
    )


@command()
def encode(
    video: Annotated[Path, typer.Argument(help="Video file (mp4, mkv, y4m) or folder of PNGs.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output .dhvc file.")],
    lam: Annotated[float, typer.Option("--lambda", help="Rate parameter lambda.")] = 1024.0,
    frames: Annotated[int | None, typer.Option(help="Encode at most N frames.")] = None,
    gop: Annotated[int, typer.Option(help="Intra period in frames.")] = 32,
    preset: PresetOpt = None,
    checkpoint: CheckpointOpt = "default",
    device: DeviceOpt = "cpu",
    motion: MotionOpt = True,
) -> None:
    """Encode a video into a .dhvc file."""
    from codec.stream.files import encode_file

    with user_errors(), _progress() as progress:
        task = progress.add_task("encode", total=frames, info="")

        def on_frame(i: int, total: int, bits: int) -> None:
            progress.update(task, completed=i + 1, total=total, info=f"{bits} bits")

        summary = encode_file(
            video, output, lam, frames, gop, preset, checkpoint, device, on_frame, motion
        )
    console.print(
        f"{summary.frames} frames, {summary.width}x{summary.height}, "
        f"{summary.bpp:.4f} bpp, {summary.bytes_total} bytes -> {output}"
    )


@command()
def decode(
    stream: Annotated[Path, typer.Argument(help="Input .dhvc file.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder (PNG frames) or .mp4.")],
    scales: Annotated[
        int, typer.Option(help="Decode with scales 1..M only (progressive decoding).")
    ] = 4,
    checkpoint: CheckpointOpt = "default",
    device: DeviceOpt = "cpu",
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Replace an output folder that holds files (e.g. older frames)."
        ),
    ] = False,
) -> None:
    """Decode a .dhvc file into PNG frames or an mp4."""
    from codec.stream.files import decode_file

    with user_errors():
        summary = decode_file(stream, output, scales, checkpoint, device, overwrite=overwrite)
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


@command()
def info(stream: Annotated[Path, typer.Argument(help="Input .dhvc file.")]) -> None:
    """Print the format version, stream header and per-frame sizes of a .dhvc file as JSON."""
    from codec.stream.bitstream import FORMAT_VERSION
    from codec.stream.files import describe_file

    with user_errors():
        description = describe_file(stream)
    # open_stream refuses every other version, so a file described here has this one
    typer.echo(json.dumps({"format_version": FORMAT_VERSION, **description}, indent=2))


@command()
def bench(
    preset: Annotated[str, typer.Option(help="Model preset.")] = DEFAULT_PRESET,
    size: Annotated[str, typer.Option(help="Frame size WxH.")] = "448x256",
    device: DeviceOpt = "cpu",
    frames: Annotated[int, typer.Option(help="Frames to time.")] = 8,
    checkpoint: CheckpointOpt = "none",
    macs_only: Annotated[bool, typer.Option(help="Count parameters and MACs only.")] = False,
) -> None:
    """Parameters, KMACs/pixel, encode/decode ms per frame and peak memory."""
    from codec.model.device import resolve_device
    from codec.stream.bench import run_bench
    from codec.stream.bitstream import frame_size_problem

    with user_errors():
        try:
            width, height = (int(v) for v in size.lower().split("x"))
        except ValueError:
            fail(f"--size must look like 640x256, got {size!r}")
        if problem := frame_size_problem(width, height):
            fail(f"--size: {problem}")
        device = resolve_device(device)
        result = run_bench(preset, width, height, device, frames, checkpoint, macs_only)
    typer.echo(json.dumps(result, indent=2))


@command()
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
    preset: Annotated[str, typer.Option(help="Model preset.")] = TRAIN.preset,
    intra_steps: Annotated[
        int, typer.Option(help="Last step of the intra phase.")
    ] = TRAIN.intra_steps,
    p3_steps: Annotated[int, typer.Option(help="Last step of the 3-frame phase.")] = TRAIN.p3_steps,
    p7_steps: Annotated[int, typer.Option(help="Last step of the 7-frame phase.")] = TRAIN.p7_steps,
    batch_size: Annotated[
        int, typer.Option(help="Clips per step (3- and 7-frame phases).")
    ] = TRAIN.batch_size,
    intra_batch_size: Annotated[
        int, typer.Option(help="Frames per intra step.")
    ] = TRAIN.intra_batch_size,
    crop: Annotated[int, typer.Option(help="Crop side in pixels (multiple of 64).")] = TRAIN.crop,
    lr: Annotated[float, typer.Option(help="Peak Adam learning rate.")] = TRAIN.lr,
    lr_final_ratio: Annotated[
        float, typer.Option(help="Cosine decay ends at lr times this.")
    ] = TRAIN.lr_final_ratio,
    warmup_steps: Annotated[
        int, typer.Option(help="Linear learning-rate warm-up.")
    ] = TRAIN.warmup_steps,
    lr_restart: Annotated[
        int,
        typer.Option(
            help="Warm restart: from this step a new cosine from lr to p7-steps (0: none)."
        ),
    ] = TRAIN.lr_restart_step,
    synthetic_fraction: Annotated[
        float, typer.Option(help="Share of clips that are synthetic motion over photos.")
    ] = TRAIN.synthetic_fraction,
    still_fraction: Annotated[
        float, typer.Option(help="Share of synthetic clips whose camera stands still.")
    ] = TRAIN.still_fraction,
    slow_fraction: Annotated[
        float, typer.Option(help="Share of synthetic clips that pan at 0-1 px/frame.")
    ] = TRAIN.slow_fraction,
    procedural_pictures: Annotated[
        int, typer.Option(help="Dead-leaves and text pictures generated to join the photos.")
    ] = TRAIN.procedural_pictures,
    loss_aware_fraction: Annotated[
        float,
        typer.Option(help="Share of clips that lose upper scales in a frame and recover."),
    ] = TRAIN.loss_aware_fraction,
    intra_every: Annotated[
        int,
        typer.Option(help="In the clip phases every N-th step is an intra step (0: never)."),
    ] = TRAIN.intra_every,
    seed: Annotated[int, typer.Option(help="Seed of every random stream.")] = TRAIN.seed,
    save_every: Annotated[int, typer.Option(help="Save state every N steps.")] = TRAIN.save_every,
    log_every: Annotated[
        int, typer.Option(help="Read the losses back every N steps.")
    ] = TRAIN.log_every,
    max_minutes: Annotated[float | None, typer.Option(help="Stop after this wall time.")] = None,
    workers: Annotated[
        int,
        typer.Option(
            help="CPU data-parallel processes, each on its share of the threads and of every "
            "batch (1: one process)."
        ),
    ] = 1,
    device: DeviceOpt = "cpu",
    compile_model: Annotated[
        bool, typer.Option("--compile/--no-compile", help="torch.compile the model.")
    ] = TRAIN.compile,
    cpu_bf16: Annotated[
        bool,
        typer.Option(
            "--cpu-bf16/--no-cpu-bf16",
            help="On the CPU, run the blocks' 1x1 MLPs in bfloat16 (AMX); the rest stays float32.",
        ),
    ] = TRAIN.cpu_bf16,
) -> None:
    """Train a model (intra, then 3-frame, then 7-frame clips), resumable."""
    from codec.cli.tables import train_table
    from codec.model.device import resolve_device
    from codec.train.data import training_sources
    from codec.train.trainer import train as run_train

    with user_errors():
        device = resolve_device(device)
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
            lr_restart_step=lr_restart,
            synthetic_fraction=synthetic_fraction,
            still_fraction=still_fraction,
            slow_fraction=slow_fraction,
            procedural_pictures=procedural_pictures,
            loss_aware_fraction=loss_aware_fraction,
            intra_every=intra_every,
            seed=seed,
            save_every=save_every,
            log_every=log_every,
            compile=compile_model,
            cpu_bf16=cpu_bf16,
        )
        get_preset(preset)
        sources = training_sources(data)
    weights_out = weights_out or state.with_name(f"dhvc-{preset}.pt")
    console.print(f"training data: {data}: {sources.describe()}")
    stop = _StopRequest()
    with user_errors(), _progress() as progress, stop.on_signals():
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
            should_stop=stop.requested,
            workers=workers,
        )
    console.print(f"stopped at step {result.step}" + (" (signal)" if stop.requested() else ""))
    if result.history:
        console.print(train_table(result.history[-1]))
    console.print(f"state -> {state}; weights -> {weights_out}")


class _StopRequest:
    """Turns SIGTERM and SIGINT into a request that the trainer reads between steps, so that
    ``kill PID`` ends a detached run after its current step with its state saved (a detached
    process may have SIGINT ignored, hence SIGTERM too)."""

    def __init__(self) -> None:
        self._requested = False

    def requested(self) -> bool:
        return self._requested

    def _handle(self, signum, frame) -> None:
        self._requested = True

    @contextmanager
    def on_signals(self) -> Iterator[None]:
        previous = {
            sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


@command(name="eval")
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
    anchors: Annotated[
        str, typer.Option(help="Comma-separated: x264,x265, jpeg (with --intra) or ''.")
    ] = "x264,x265",
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
    device: DeviceOpt = "cpu",
    motion: MotionOpt = True,
) -> None:
    """Rate-distortion of DHVC against x264/x265 (low delay, or --intra) over one or more
    sources: rd.json, rd.png, per-source and set-average BD-rates."""
    from codec.cli.tables import bd_rate_table, rate_points_table
    from codec.io.atomic import atomic_file
    from codec.model.checkpoint import load_model
    from codec.model.device import resolve_device
    from codec.rd.eval import DEFAULT_GOP, evaluate
    from codec.rd.plot import plot_rd
    from codec.stream.bitstream import frame_size_problem

    def numbers(text: str | None, kind: type, name: str) -> list | None:
        if text is None:
            return None
        try:
            return [kind(v) for v in text.split(",") if v.strip()]
        except ValueError:
            fail(f"--{name} must be comma-separated numbers, got {text!r}")

    if frames is not None and frames < 1:
        fail(f"--frames must be at least 1, got {frames}")
    if gop is not None and gop < 1:
        fail(f"--gop must be at least 1, got {gop}")
    if intra and gop not in (None, 1):
        fail(f"--intra codes every frame as an I frame: --gop must be 1, got {gop}")
    wh = None
    if size is not None:
        try:
            w, h = (int(v) for v in size.lower().split("x"))
        except ValueError:
            fail(f"--size must look like 640x256, got {size!r}")
        if problem := frame_size_problem(w, h):
            fail(f"--size: {problem}")
        wh = (w, h)
    with user_errors():
        device = resolve_device(device)
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
            [a.strip() for a in anchors.split(",") if a.strip()],
            model,
            output,
            size=wh,
            on_progress=on_progress,
            qps=numbers(qps, int, "qps"),
            intra=intra,
            pack_root=pack,
            motion=motion,
        )
        png = output.with_suffix(".png")
        with atomic_file(png) as temporary:
            plot_rd(rd).savefig(temporary, format="png", dpi=120)

    console.print(rate_points_table(rd))
    if rd["bd_rate"]:
        console.print(bd_rate_table(rd))
    console.print(f"-> {output}, {png}")


if __name__ == "__main__":
    main()
