"""What a recovery frame costs: mirrored recovery against the paper's re-sync (DESIGN 3).

Runs the DHVC compare scenarios (``scenarios/compare/compare_dhvc_loss*.yaml``, or with
``--config best`` DHVC's best configuration, ``compare_dhvc_best_loss*.yaml``) with
``codec.recovery`` resync and mirror over a few seeds, and the clean one once, and prints:

* per recovery mode, averaged over every recovery frame (R or M) of every run, and over those
  that arrived whole (the decoder in sync after them): its bits over the clean run's mean inter
  (P) frame (the issue's measure), its bits over those of the same frame in the clean run
  (paired: bikes changes scene at frame 30, after which every frame costs about twice as much,
  so the first ratio mixes the recovery's price with the content's), its PSNR minus that of
  the same frame in the clean run, and the same PSNR
  difference two frames later (when the frame's temporal references hold no substituted
  frame any more);
* the mean PSNR of each loss rate per recovery mode, over the seeds.

    .venv/bin/python benchmarks/recovery_cost.py [--seeds 0 1 2] [--frames 64] [--config best]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import torch
import yaml

from codec.types import IN_SYNC, FrameType
from netsim.runner import load_run_inputs, simulate_run
from netsim.scenario import Scenario
from netsim.trace import FrameRecord

ROOT = Path(__file__).resolve().parents[1]
COMPARE = ROOT / "scenarios" / "compare"
LOSSES = (5, 10, 20)
CONFIGS = {"paper": "compare_dhvc", "best": "compare_dhvc_best"}
"""``--config``: the paper-faithful scenarios (one scale per packet, the decoder's picture
shown) or DHVC's best configuration (packed packets, concealment)."""
RECOVERY_TYPES = {"resync": FrameType.R, "mirror": FrameType.M}


def scenario(name: str, *, seed: int, recovery: str) -> Scenario:
    """The compare scenario ``name`` with this seed and ``codec.recovery``."""
    path = COMPARE / name
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    data["seed"] = seed
    data["codec"] = {**data["codec"], "recovery": recovery}
    return Scenario.model_validate(data, context={"base_dir": path.parent.resolve()})


def run(s: Scenario, frames: int) -> list[FrameRecord]:
    return list(simulate_run(load_run_inputs(s, frames=frames)).simulation.frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--losses", type=int, nargs="+", choices=LOSSES, default=list(LOSSES))
    parser.add_argument("--config", choices=sorted(CONFIGS), default="paper")
    args = parser.parse_args()
    torch.set_num_threads(1)

    prefix = CONFIGS[args.config]
    clean = run(scenario(f"{prefix}_loss00.yaml", seed=0, recovery="resync"), args.frames)
    clean_inter_bits = statistics.mean(f.bits_total for f in clean if f.frame_type is FrameType.P)
    clean_psnr = {f.frame: f.psnr for f in clean}
    clean_bits = {f.frame: f.bits_total for f in clean}
    print(
        f"clean: mean PSNR {statistics.mean(clean_psnr.values()):.2f} dB, "
        f"mean inter frame {clean_inter_bits / 1000:.1f} kbit"
    )

    mean_psnr: dict[tuple[int, str], list[float]] = {}
    cost: dict[str, list[float]] = {}
    paired: dict[str, list[float]] = {}
    delta: dict[str, list[float]] = {}
    later: dict[str, list[float]] = {}
    for loss in args.losses:
        for mode, frame_type in RECOVERY_TYPES.items():
            for seed in args.seeds:
                name = f"{prefix}_loss{loss:02d}.yaml"
                frames = run(scenario(name, seed=seed, recovery=mode), args.frames)
                mean_psnr.setdefault((loss, mode), []).append(
                    statistics.mean(f.psnr for f in frames)
                )
                for f in frames:
                    if f.frame_type is not frame_type:
                        continue
                    groups = [mode]
                    if f.first_desynced_scale == IN_SYNC:
                        groups.append(f"{mode} whole")
                    for group in groups:
                        cost.setdefault(group, []).append(f.bits_total / clean_inter_bits)
                        paired.setdefault(group, []).append(f.bits_total / clean_bits[f.frame])
                        delta.setdefault(group, []).append(f.psnr - clean_psnr[f.frame])
                        if f.frame + 2 < len(frames):
                            after = frames[f.frame + 2].psnr - clean_psnr[f.frame + 2]
                            later.setdefault(group, []).append(after)

    print(
        "\nrecovery frames (all runs): bits / clean mean inter frame, bits / clean same frame, "
        "PSNR - clean same frame"
    )
    for group in sorted(cost):
        print(
            f"  {group:12s} n={len(cost[group]):3d}  cost {statistics.mean(cost[group]):.2f}x  "
            f"paired {statistics.mean(paired[group]):.2f}x  "
            f"PSNR delta {statistics.mean(delta[group]):+.2f} dB "
            f"(median {statistics.median(delta[group]):+.2f}), two frames later "
            f"{statistics.mean(later.get(group, [float('nan')])):+.2f} dB"
        )
    print(f"\nmean PSNR over seeds {args.seeds}, {args.frames} frames")
    print("  loss    resync   mirror")
    for loss in args.losses:
        row = [statistics.mean(mean_psnr[(loss, mode)]) for mode in RECOVERY_TYPES]
        print(f"  {loss:3d}%  {row[0]:7.2f}  {row[1]:7.2f}")


if __name__ == "__main__":
    main()
