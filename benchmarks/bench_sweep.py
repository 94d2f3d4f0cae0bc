"""Time a sweep of 4 loss rates x 3 seeds on 1 and on 2 dask workers; print the speed-up.

    .venv/bin/python benchmarks/bench_sweep.py [--frames 8] [--workers 1 2]

Each worker is one process with one torch thread. Every timing starts from an empty output
folder, so no run is skipped, and includes starting the local cluster (what a user waits for).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from netsim.sweep import SweepSpec, expand, load_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def timed_sweep(spec: SweepSpec, workers: int, out_dir: Path) -> tuple[float, int]:
    spec = spec.model_copy(update={"out_dir": out_dir, "name": f"bench_{workers}w"})
    start = time.perf_counter()
    result = run_sweep(spec, workers=workers)
    wall_s = time.perf_counter() - start
    if result.failed:
        raise SystemExit(f"runs failed: {dict(result.failed)}")
    return wall_s, len(result.ran)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", type=Path, default=ROOT / "sweeps" / "loss_grid.yaml")
    parser.add_argument("--frames", type=int, default=8, help="frames per run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    spec = load_sweep(args.sweep).model_copy(update={"frames": args.frames})
    runs = len(expand(spec))
    print(f"sweep {args.sweep.name}: {runs} runs of {args.frames} frames, grid {spec.grid}")
    walls: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as scratch:
        for workers in args.workers:
            wall_s, ran = timed_sweep(spec, workers, Path(scratch) / f"{workers}w")
            walls[workers] = wall_s
            load = os.getloadavg()[0]
            print(
                f"{workers} worker(s): {ran} runs in {wall_s:.1f} s ({wall_s / ran:.2f} s/run); "
                f"load average {load:.1f} on {os.cpu_count()} CPUs"
            )
    base = min(walls)
    for workers, wall_s in walls.items():
        if workers != base:
            print(f"speed-up {base} -> {workers} workers: {walls[base] / wall_s:.2f}x")


if __name__ == "__main__":
    main()
