"""What a recovery frame costs by the state it is coded against (DESIGN 3, mirrored recovery).

On the compare clip (bikes, 448x256, the first 64 frames, lambda 1024, one GOP), for a loss at
frame f and a recovery frame three frames later (the echo's round trip in the compare
scenarios), the recovery frame is coded against each state a decoder could hold: (f, j) for
j = 1..K (scales >= j substituted by their means from f on) and (f, 0) (the state the decoder
kept from before f). Printed per state: its bits over those of the same frame in the clean run,
and its PSNR minus the clean frame's, averaged over the loss frames (skipping the scene cut at
frame 30).

    .venv/bin/python benchmarks/recovery_reference.py [--checkpoint default] [--lam 1024]
"""

from __future__ import annotations

import argparse
import copy
import statistics
from pathlib import Path

import torch
import yaml

from codec import Encoder, load_model
from codec.metrics import psnr
from codec.types import NUM_SCALES
from netsim.runner import load_run_inputs
from netsim.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "compare" / "compare_dhvc_loss00.yaml"
LOSS_FRAMES = (4, 8, 12, 16, 20, 24, 40, 44, 48, 52, 56)
ROUND_TRIP_FRAMES = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--lam", type=float, default=1024.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    scenario = Scenario.model_validate(
        yaml.safe_load(SCENARIO.read_text()), context={"base_dir": SCENARIO.parent}
    )
    frames = load_run_inputs(scenario, frames=64).originals
    enc = Encoder(load_model(args.checkpoint), gop=len(frames))
    recoveries = {f + ROUND_TRIP_FRAMES: f for f in LOSS_FRAMES}
    states = [*range(1, NUM_SCALES + 1), 0]
    trial: dict[int, dict[int, tuple[int, float]]] = {}
    clean: list[tuple[int, float]] = []
    for t, frame in enumerate(frames):
        if t in recoveries:
            saved = (enc._ctx.state.copy(), enc.frame_index, copy.copy(enc._history))
            trial[t] = {}
            for j in states:
                encoded = enc.encode(frame, args.lam, mirror=(recoveries[t], j))
                trial[t][j] = (sum(encoded.payload_bits), psnr(frame, encoded.x_hat))
                enc._ctx.state, enc.frame_index = saved[0].copy(), saved[1]
                enc._history = copy.copy(saved[2])
        encoded = enc.encode(frame, args.lam)
        clean.append((sum(encoded.payload_bits), psnr(frame, encoded.x_hat)))
    print(
        f"recovery {ROUND_TRIP_FRAMES} frames after a loss, {len(trial)} losses, lambda "
        f"{args.lam:g}: bits / the clean run's same frame, PSNR - the clean frame's"
    )
    for j in states:
        cost = statistics.mean(trial[t][j][0] / clean[t][0] for t in trial)
        delta = statistics.mean(trial[t][j][1] - clean[t][1] for t in trial)
        name = "(f, 0), kept state" if j == 0 else f"(f, {j}), mirrored"
        print(f"  {name:20s} {cost:.2f}x  {delta:+.2f} dB")


if __name__ == "__main__":
    main()
