"""Would a smarter FEC layout close DHVC's FEC gap? Striped against priority-encoded FEC.

``fec_budget.allocation: striped`` cuts every scale of a frame into the same P data pieces and
adds m = ceil(P/4) parity packets, so a frame survives any m losses and loses every scale
beyond that. Priority-encoded transmission (PET, Albanese et al. 1996) gives each scale j its
own k_j-of-n code over the frame's n packets (k_1 <= ... <= k_K): scale j survives whenever at
least k_j packets arrive, so the coarse scales can outlive a loss that takes the fine ones.

This benchmark measures, without simulating anything new, what PET could gain on the compare
set at the same bytes on the wire:

* what a loss event costs by the scale it starts at (a concealed frame counts as scale 1): the
  sum over the event's frames, until the decoder is back in sync, of (clean PSNR - PSNR), in
  dB x frames, averaged over the events of the best configuration's Bernoulli runs
  (``results/sweeps/compare_dhvc_best``, written by ``make compare``);
* per frame of the clean run (its per-scale bytes), the expected cost at the design loss rate
  of the striped layout, and of the best PET layout (any n and k_j whose packets fit the MTU)
  that sends no more bytes than striped, and the best one allowed the striped layout's
  packet count whatever its bytes.

    .venv/bin/python benchmarks/fec_allocation.py [--loss-rate 0.1] [--results results/sweeps]
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from codec.types import NUM_SCALES
from netsim.damage import loss_events
from netsim.packet import HEADER_SIZE_BYTES
from netsim.packing import PIECE_HEADER_BYTES, striped_layout

ROOT = Path(__file__).resolve().parents[1]
SWEEP = "compare_dhvc_best"
PAPER_SWEEP = "compare_dhvc"
MTU_BYTES = 1200  # the compare scenarios' sender.mtu_bytes
PARITY_FRACTION = 0.25  # their fec_budget.overhead_fraction (x264's code rate 4/5)
EXTRA_PACKETS = 3  # PET layouts tried with up to this many packets more than striped


def run_dirs(results: Path, loss_rate: float, sweep: str = SWEEP) -> list[Path]:
    return sorted((results / sweep).glob(f"network.forward.loss.loss_rate_{loss_rate}__seed_*"))


def event_costs(results: Path, sweep: str, clean: pd.DataFrame) -> dict[int, list[float]]:
    """The costs (dB x frames) of the loss events of ``sweep``'s lossy Bernoulli runs, by the
    scale they start at (module docstring)."""
    reference = clean.set_index("frame")["psnr"]
    by_scale: dict[int, list[float]] = {j: [] for j in range(1, NUM_SCALES + 1)}
    for loss_rate in (0.05, 0.1, 0.2):
        for directory in run_dirs(results, loss_rate, sweep):
            frames = pd.read_csv(directory / "frames.csv").sort_values("frame")
            d = frames["first_desynced_scale"].to_numpy(dtype=int)
            deficit = (reference.to_numpy() - frames["psnr"].to_numpy()).clip(min=0.0)
            previous = np.concatenate([[NUM_SCALES + 1], d[:-1]])
            starts = np.flatnonzero(d < previous)
            for start, length in zip(starts, loss_events(d), strict=True):
                if math.isnan(length):
                    continue
                by_scale[int(d[start])].append(float(deficit[start : start + int(length)].sum()))
    return by_scale


def mean_event_costs(results: Path, clean: pd.DataFrame) -> tuple[dict[int, float], list[int]]:
    """Mean event cost by starting scale in the best configuration; a scale at which none of
    its events starts (packed packets rarely lose scale 2 alone) takes the paper layout's
    (``PAPER_SWEEP``, one scale per packet). Also returns those scales."""
    best = event_costs(results, SWEEP, clean)
    missing = [j for j, costs in best.items() if not costs]
    paper = event_costs(results, PAPER_SWEEP, clean) if missing else {}
    out = {}
    for j, costs in best.items():
        costs = costs or paper.get(j, [])
        if not costs:
            sys.exit(f"fec_allocation: no loss event starts at scale {j} under {results}")
        out[j] = statistics.mean(costs)
    return out, missing


def expected_cost(n: int, ks: tuple[int, ...], loss_rate: float, cost: dict[int, float]) -> float:
    """Expected event cost of one frame sent as n packets, scale j needing k_j of them."""
    total = 0.0
    for arrived in range(n + 1):
        p = math.comb(n, arrived) * (1 - loss_rate) ** arrived * loss_rate ** (n - arrived)
        first_lost = next((j for j, k in enumerate(ks, start=1) if arrived < k), None)
        total += p * (cost[first_lost] if first_lost is not None else 0.0)
    return total


def packet_bytes(sizes: list[int], ks: tuple[int, ...]) -> int:
    """Bytes of one packet of a PET layout: header, and one piece of every scale."""
    return HEADER_SIZE_BYTES + sum(
        PIECE_HEADER_BYTES + math.ceil(s / k) for s, k in zip(sizes, ks, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loss-rate", type=float, default=0.1, help="design loss rate")
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "sweeps")
    args = parser.parse_args()
    clean_dirs = run_dirs(args.results, 0.0)
    if not clean_dirs:
        sys.exit(f"fec_allocation: no clean run under {args.results / SWEEP}; run make compare")
    clean = pd.read_csv(clean_dirs[0] / "frames.csv").sort_values("frame")
    cost, from_paper = mean_event_costs(args.results, clean)
    print("loss event cost by first lost scale (dB x frames, best configuration, 5/10/20%):")
    print("  " + "  ".join(f"scale {j}: {c:.1f}" for j, c in cost.items()))
    if from_paper:
        print(f"  (scales {from_paper} from the paper layout's runs: no event starts there)")

    totals = {"striped": [0.0, 0], "pet, same bytes": [0.0, 0], "pet, same packets": [0.0, 0]}
    for _, row in clean.iterrows():
        sizes = [int(row[f"bits_s{j}"]) // 8 for j in range(1, NUM_SCALES + 1)]
        layout = striped_layout(sizes, MTU_BYTES, PARITY_FRACTION)
        if layout is None:
            sys.exit(f"fec_allocation: frame {row['frame']} does not fit striped FEC")
        data, parity = layout
        n = data + parity
        striped_ks = (data,) * NUM_SCALES
        budget = n * packet_bytes(sizes, striped_ks)
        striped = expected_cost(n, striped_ks, args.loss_rate, cost)
        best_bytes, best_packets = (striped, budget), (striped, budget)
        for packets in range(2, n + EXTRA_PACKETS + 1):
            for ks in itertools.combinations_with_replacement(range(1, packets + 1), NUM_SCALES):
                if packet_bytes(sizes, ks) > MTU_BYTES:
                    continue
                wire = packets * packet_bytes(sizes, ks)
                value = expected_cost(packets, ks, args.loss_rate, cost)
                if wire <= budget and value < best_bytes[0]:
                    best_bytes = (value, wire)
                if packets == n and value < best_packets[0]:
                    best_packets = (value, wire)
        for name, (value, wire) in zip(
            totals, ((striped, budget), best_bytes, best_packets), strict=True
        ):
            totals[name][0] += value
            totals[name][1] += wire
    frames = len(clean)
    payload = clean["bits_total"].sum() / 8
    print(f"\nexpected loss-event cost per frame at {args.loss_rate:.0%} loss ({frames} frames):")
    for name, (value, wire) in totals.items():
        print(
            f"  {name:18s} {value / frames:.3f} dB x frames  "
            f"({wire / payload:.2f}x the payload on the wire)"
        )


if __name__ == "__main__":
    main()
