"""Cross-device determinism, measured on the CPU (issue 14, item 5): prints numbers, asserts
nothing.

A stream decoded on another device meets entropy parameters (mu, sigma) that differ from the
encoder's in their last bits. Without a GPU, this script makes such a decoder on the CPU and
counts what the sync tag (DESIGN 1) does about it. One stream (the bikes clip, GOP
``--gop``) is encoded once; it is then decoded under each condition:

* ``same``: an identical decoder (the control: nothing may differ);
* ``threads-2``: decoding without the ``coding_threads`` pin, on 2 intra-op threads;
* ``mu,sigma +-1 ulp`` / ``+-2`` / ``+-16``: the decoder's mu_k and sigma_k of every scale
  moved by 1, 2 or 16 float32 ulps (random sign per value) before it picks table entries and y_hat;
* ``weights +-1 ulp``: every weight of the decoder's model moved by 1 ulp: noise that enters
  every layer and grows through the network, as another device's kernels make it.

Per condition, over the scales whose sync tag was checked (every lower scale decoded, k < D):
the fraction whose table indexes differ from the encoder's, the fraction of those the sync tag
caught (``SYNC_MISMATCH``; anything short of 100% is a CRC32 collision), false alarms, the
symbols whose index differs, and the scales decoded with equal indexes but a different mu
(undetected: the symbols are right, since they are coded relative to mu, but y_hat = mu + q s
differs by the mu difference), with the largest such difference and the largest picture
difference of frames that decoded every scale.

Then, on 4M symbol scales spread over the table's range, how often k ulps of noise move a
table index, as it is chosen now (``bucketize`` of the float32 scale) and after snapping the
scale to a fixed-point grid of the log scale first: a grid only moves the boundaries that
noise can cross.

    python benchmarks/bench_cross_device.py [--checkpoint none|default] [--preset tiny]
        [--frames 8] [--gop 4] [--width 448] [--height 256]
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

import codec.stream.coder as coder
from codec import Decoder, Encoder, ScaleOutcome, load_model
from codec.entropy.gaussian import SIGMA_MAX, SIGMA_MIN, sigma_boundaries
from codec.io.video import read_frames
from codec.types import coded_size

LAM = 512.0
CHECKED = (ScaleOutcome.DECODED, ScaleOutcome.SYNC_MISMATCH)


@dataclass
class ScaleRecord:
    """What one side saw of scale k of one frame (flat numpy, coded region only)."""

    indexes: np.ndarray
    mu: np.ndarray
    sigma_s: np.ndarray  # the symbols' scale sigma / q, bounded (float32)


@dataclass
class Recorder:
    """Scale records of one coding pass, in coding order."""

    records: list[ScaleRecord] = field(default_factory=list)


def ulp_noise(ulps: int, seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Moves each float32 value by ``ulps`` ulps, towards +inf or -inf at random."""
    gen = torch.Generator().manual_seed(seed)

    def perturb(t: torch.Tensor) -> torch.Tensor:
        up = torch.rand(t.shape, generator=gen) < 0.5
        target = torch.where(up, torch.full_like(t, np.inf), torch.full_like(t, -np.inf))
        for _ in range(ulps):
            t = torch.nextafter(t, target)
        return t

    return perturb


def recording_picker(base: type, recorder: Recorder, noise: Callable | None) -> type:
    """``base`` (``EncodingPicker`` or ``DecodingPicker``) that records every scale's
    indexes, mu and symbol scale, after moving mu and sigma by ``noise`` (if any)."""

    class Picker(base):  # type: ignore[misc, valid-type]
        def y_hat(self, k, y, mu, sigma, q):  # noqa: ANN001, ANN202
            if noise is not None:
                mu, sigma = noise(mu), noise(sigma)
            rows, cols = coded_size(self.height, self.width, k)
            em = self.entropy
            region = sigma[..., :rows, :cols]
            recorder.records.append(
                ScaleRecord(
                    em.table_indexes(region, q),
                    mu[..., :rows, :cols].flatten().numpy().copy(),
                    em.symbol_sigma(region, q).flatten().numpy().copy(),
                )
            )
            return super().y_hat(k, y, mu, sigma, q)

    return Picker


def encode(model, frames: np.ndarray, gop: int) -> tuple[list, Recorder]:  # noqa: ANN001
    recorder = Recorder()
    original = coder.EncodingPicker
    coder.EncodingPicker = recording_picker(original, recorder, None)
    try:
        encoder = Encoder(model, gop=gop)
        stream = [encoder.encode(frame, LAM) for frame in frames]
    finally:
        coder.EncodingPicker = original
    return stream, recorder


def decode(model, stream: list, noise: Callable | None, threads: int | None) -> tuple:  # noqa: ANN001
    recorder = Recorder()
    original_picker, original_threads = coder.DecodingPicker, coder.CODING_THREADS
    coder.DecodingPicker = recording_picker(original_picker, recorder, noise)
    before = torch.get_num_threads()
    if threads is not None:
        coder.CODING_THREADS = threads
    try:
        decoder = Decoder(model, stream[0].height, stream[0].width)
        decoded = [decoder.decode(frame.received()) for frame in stream]
    finally:
        coder.DecodingPicker, coder.CODING_THREADS = original_picker, original_threads
        torch.set_num_threads(before)
    return decoded, recorder


def perturbed_weights(model, seed: int):  # noqa: ANN001, ANN201
    other = copy.deepcopy(model)
    noise = ulp_noise(1, seed)
    with torch.no_grad():
        for p in other.parameters():
            p.copy_(noise(p.detach()))
    return other


def report(name: str, stream: list, decoded: list, enc: Recorder, dec: Recorder) -> None:
    """One line of numbers for one condition."""
    checked = mismatched = caught = false_alarms = undetected = 0
    symbols_moved = symbols_in_mismatched = 0
    worst_mu, worst_picture = 0.0, 0.0
    for t, frame in enumerate(decoded):
        for k, outcome in enumerate(frame.outcomes):
            e, d = enc.records[4 * t + k], dec.records[4 * t + k]
            if outcome not in CHECKED:
                continue
            checked += 1
            differ = e.indexes != d.indexes
            if differ.any():
                mismatched += 1
                caught += outcome is ScaleOutcome.SYNC_MISMATCH
                symbols_moved += int(differ.sum())
                symbols_in_mismatched += differ.size
            elif outcome is ScaleOutcome.SYNC_MISMATCH:
                false_alarms += 1
            elif not np.array_equal(e.mu, d.mu):
                undetected += 1
                worst_mu = max(worst_mu, float(np.abs(e.mu - d.mu).max()))
        if all(o is ScaleOutcome.DECODED for o in frame.outcomes):
            difference = float(np.abs(frame.x_hat - stream[t].x_hat).max())
            worst_picture = max(worst_picture, difference)
    share = symbols_moved / symbols_in_mismatched if symbols_in_mismatched else 0.0
    print(
        f"{name:18s} scales checked {checked:3d}, indexes differ {mismatched:3d} "
        f"({mismatched / max(checked, 1):6.1%}), caught by the sync tag {caught}/{mismatched}, "
        f"false alarms {false_alarms}, symbols with another index {share:.2e} of a mismatched "
        f"scale; decoded with equal indexes but another mu: {undetected} scales "
        f"(max |d mu| {worst_mu:.1e}); max picture difference of fully decoded frames "
        f"{worst_picture:.1e}"
    )


def boundary_flips(ulps: int, grid_steps_per_level: int | None, count: int = 4_000_000) -> float:
    """Fraction of symbol scales whose table index moves under ``ulps`` ulps of noise, for
    ``count`` float32 scales log-uniform over the table's range; with ``grid_steps_per_level``
    each scale is first snapped to a fixed-point grid of that many steps per table level in
    the log domain (the index then read from the grid)."""
    rng = np.random.default_rng(1)
    sigma = np.exp(rng.uniform(np.log(SIGMA_MIN), np.log(SIGMA_MAX), count)).astype(np.float32)
    away = np.where(rng.random(count) < 0.5, np.inf, -np.inf).astype(np.float32)
    noisy = sigma
    for _ in range(ulps):
        noisy = np.nextafter(noisy, away)
    boundaries = sigma_boundaries()
    if grid_steps_per_level is None:
        return float(
            np.mean(np.searchsorted(boundaries, sigma) != np.searchsorted(boundaries, noisy))
        )
    log_b = np.log(boundaries.astype(np.float64))
    step = (log_b[1] - log_b[0]) / grid_steps_per_level
    grid_b = np.round(log_b / step)

    def pick(s: np.ndarray) -> np.ndarray:
        return np.searchsorted(grid_b, np.round(np.log(s.astype(np.float64)) / step))

    return float(np.mean(pick(sigma) != pick(noisy)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="none")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--gop", type=int, default=4)
    parser.add_argument("--width", type=int, default=448)
    parser.add_argument("--height", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    preset = args.preset if args.checkpoint == "none" else None
    model = load_model(args.checkpoint, preset=preset)
    frames = read_frames("sample:bikes", max_frames=args.frames, size=(args.width, args.height))
    stream, enc = encode(model, frames, args.gop)
    symbols = sum(r.indexes.size for r in enc.records)
    print(
        f"{model.model_id}, {args.frames} frames {args.width}x{args.height}, GOP {args.gop}, "
        f"lambda {LAM:g}: {len(enc.records)} scales, {symbols} symbols"
    )
    conditions = {
        "same": (model, None, None),
        "threads-2": (model, None, 2),
        "mu,sigma +-1 ulp": (model, ulp_noise(1, 0), None),
        "mu,sigma +-2 ulp": (model, ulp_noise(2, 0), None),
        "mu,sigma +-16 ulp": (model, ulp_noise(16, 0), None),
        "weights +-1 ulp": (perturbed_weights(model, 0), None, None),
    }
    for name, (decoder_model, noise, threads) in conditions.items():
        decoded, dec = decode(decoder_model, stream, noise, threads)
        report(name, stream, decoded, enc, dec)
    for ulps in (1, 2, 16):
        now = boundary_flips(ulps, None)
        grids = {g: boundary_flips(ulps, g) for g in (16, 256)}
        print(
            f"index moved by +-{ulps} ulp of the symbol scale: {now:.2e} of scales as chosen "
            f"now; snapped to a log grid of 16 / 256 steps per level first: "
            f"{grids[16]:.2e} / {grids[256]:.2e}"
        )


if __name__ == "__main__":
    main()
