"""Training-step benchmark: steps/s, frame-pixels/s and how busy the GPU is, for the real
``codec.train.trainer.train`` loop (device-side clip synthesis included).

Each configuration runs ``--steps`` warm-up steps (compilation, allocator, caches) and then
``--steps`` timed steps; the numbers are those of the timed window, which ``train`` measures
itself (one host sync per window). On CUDA, GPU busy is the mean of NVML's utilisation
(share of time a kernel was running) sampled every 50 ms over the timed window.

    python benchmarks/bench_train.py [--device cpu|cuda] [--preset base] [--compile]
        [--no-channels-last] [--no-cpu-bf16]
        [--crop 128] [--batch 8] [--intra-batch 24] [--frames 1,3,7] [--steps 10]
        [--threads 2] [--workers 1] [--data sample|data/pack]

The old trainer (before codec v2) reached 19 M frame-pixels/s on an H100 (1.3 steps/s of
16 x 7 x 128^2 with the ``small`` model); the codec v2 target is at least 10x that.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import torch

from codec.model.config import DEFAULT_PRESET
from codec.train.config import TrainConfig
from codec.train.data import training_sources
from codec.train.trainer import train

OLD_TRAINER_H100_FRAME_PIXELS_PER_S = 19e6


class _GpuBusy:
    """Samples the GPU's utilisation (percent) in a thread between start() and stop()."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> float | None:
        try:
            return float(torch.cuda.utilization())
        except Exception:  # no pynvml: ask nvidia-smi
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=True,
                )
                return float(out.stdout.split()[0])
            except Exception:
                return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            value = self._read()
            if value is not None:
                self.samples.append(value)
            time.sleep(self.interval_s)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> float | None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return sum(self.samples) / len(self.samples) if self.samples else None


def bench_one(args: argparse.Namespace, frames: int, sources) -> dict:
    steps = args.steps
    cfg = TrainConfig(
        preset=args.preset,
        intra_steps=2 * steps if frames == 1 else 0,
        p3_steps=2 * steps if frames <= 3 else 0,
        p7_steps=2 * steps,
        batch_size=args.batch,
        intra_batch_size=args.intra_batch,
        crop=args.crop,
        warmup_steps=1,
        log_every=steps,
        save_every=10**9,
        compile=args.compile,
        channels_last=args.channels_last,
        cpu_bf16=args.cpu_bf16,
    )
    busy = _GpuBusy() if args.device == "cuda" else None
    started = {"done": False}

    def on_step(stats) -> None:
        if busy is not None and not started["done"]:
            started["done"] = True
            busy.start()

    with tempfile.TemporaryDirectory() as tmp:
        state = train(
            cfg,
            Path(tmp) / "state.pt",
            sources,
            device=args.device,
            on_step=on_step,
            workers=args.workers,
        )
    timed = state.history[-1]
    batch = cfg.batch_at(0 if frames == 1 else cfg.total_steps - 1)
    result = {
        "frames": frames,
        "batch": batch,
        "crop": args.crop,
        "steps_per_s": round(timed["steps_per_s"], 3),
        "frame_pixels_per_s": round(timed["frame_pixels_per_s"]),
        "loss": round(timed["loss"], 4),
    }
    if busy is not None:
        result["gpu_busy_percent"] = busy.stop()
        result["vs_old_trainer_on_h100"] = round(
            timed["frame_pixels_per_s"] / OLD_TRAINER_H100_FRAME_PIXELS_PER_S, 2
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default=DEFAULT_PRESET)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the trainer's default; --no-channels-last is the NCHW path of before",
    )
    parser.add_argument(
        "--cpu-bf16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the trainer's default; --no-cpu-bf16 keeps the MLPs in float32",
    )
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--intra-batch", type=int, default=24)
    parser.add_argument("--frames", default="1,3,7")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="data-parallel CPU processes, sharing --threads and every batch",
    )
    parser.add_argument("--data", default="sample")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sources = training_sources(args.data)
    header = {
        "preset": args.preset,
        "device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "machine": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "workers": args.workers,
        "compile": args.compile,
        "channels_last": args.channels_last,
        "cpu_bf16": args.cpu_bf16,
        "data": f"{args.data}: {sources.describe()}",
    }
    print(json.dumps(header))
    for frames in (int(v) for v in args.frames.split(",")):
        r = bench_one(args, frames, sources)
        print(json.dumps(r))
        print(
            f"T={frames} batch {r['batch']} crop {args.crop}: {r['steps_per_s']} steps/s, "
            f"{r['frame_pixels_per_s'] / 1e6:.2f} M frame-pixels/s"
            + (f", GPU busy {r['gpu_busy_percent']}%" if "gpu_busy_percent" in r else "")
        )


if __name__ == "__main__":
    main()
