"""Entropy-coding speed benchmark (issue 14, item 2): prints symbols/s, it asserts nothing.

For the symbols of one 1920x1080 frame of the default preset (``base``: the four scales'
``codec.stream.bitstream.scale_symbols``, Gaussian symbols at table entries spread like a coded
frame's, a few escapes), it times ``GaussianTable.encode`` and ``decode`` (sliced payloads,
``SLICE_SYMBOLS`` per slice) serially, with 2 worker threads and with 2 processes (this one and
a helper, ``parallel="process"``), and the whole-scale coder of format 2 (one range coder per
scale, one pass over the symbols per table entry) as the baseline: best of ``--repeats``, the
coders taking turns. Also the start-up cost of the helper-process pool. Then, unless
``--no-codec``, frames/s of a full ``Encoder`` and ``Decoder`` (random-weight ``base``, 448x256
P frames) with serial, 2-thread and 2-process entropy coding (no scale of that size is large
enough for helper processes: the last row shows their cost when unused).

    python benchmarks/bench_entropy.py [--width 1920] [--height 1080] [--repeats 7]
        [--no-codec]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import constriction
import numpy as np
import torch

from codec import Decoder, Encoder, load_model
from codec.entropy.gaussian import (
    NUM_LEVELS,
    PROCESS_MIN_SYMBOLS,
    SLICE_SYMBOLS,
    GaussianTable,
    Parallel,
    sigma_levels,
    slice_count,
)
from codec.model.config import DEFAULT_PRESET, get_preset
from codec.stream.bitstream import scale_symbols

MODES: tuple[tuple[str, int, Parallel], ...] = (
    ("serial", 1, "thread"),
    ("2 threads", 2, "thread"),
    ("2 processes", 2, "process"),
)
"""(name, workers, parallel) of the ways to code slices that are timed."""


def frame_symbols(width: int, height: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(symbols int64, indexes uint8) of each scale of one frame of the default preset."""
    rng = np.random.default_rng(seed)
    scales = []
    for n in scale_symbols(width, height, get_preset(DEFAULT_PRESET).latent_channels):
        indexes = np.clip(np.round(rng.normal(20, 8, n)), 0, NUM_LEVELS - 1).astype(np.uint8)
        symbols = np.round(rng.normal(0, 0.9 * sigma_levels()[indexes])).astype(np.int64)
        symbols[::10_007] = 100_000  # escapes
        scales.append((symbols, indexes))
    return scales


def whole_scale_encode(table: GaussianTable, symbols: np.ndarray, indexes: np.ndarray) -> bytes:
    """The format-2 coder: one range coder per scale, one boolean mask per table entry."""
    encoder = constriction.stream.queue.RangeEncoder()
    for level_index in np.unique(indexes):
        level = table.levels[int(level_index)]
        s = symbols[indexes == level_index]
        escaped = np.abs(s) > level.radius
        categories = np.where(escaped, 2 * level.radius + 1, s + level.radius)
        encoder.encode(categories.astype(np.int32), level.model)  # escapes: rare, not timed
    return encoder.get_compressed().tobytes()


def whole_scale_decode(table: GaussianTable, data: bytes, indexes: np.ndarray) -> np.ndarray:
    """Inverse of ``whole_scale_encode`` (categories only), the format-2 decoder's passes."""
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype=np.uint32).copy())
    symbols = np.empty(indexes.shape, dtype=np.int64)
    for level_index in np.unique(indexes):
        level = table.levels[int(level_index)]
        where = np.flatnonzero(indexes == level_index)
        symbols[where] = decoder.decode(level.model, len(where)).astype(np.int64) - level.radius
    return symbols


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def codec_fps(workers: int, parallel: Parallel, frames: int = 6) -> tuple[float, float]:
    """(encode, decode) frames/s of random-weight ``base`` at 448x256, P frames."""
    model = load_model("none", preset=DEFAULT_PRESET)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(256, 448, 3), dtype=np.uint8)
    pictures = [np.roll(base, 2 * i, axis=1) for i in range(frames + 1)]
    encoder = Encoder(model, gop=64, entropy_workers=workers, entropy_parallel=parallel)
    decoder = Decoder(model, 256, 448, entropy_workers=workers, entropy_parallel=parallel)
    decoder.decode(encoder.encode(pictures[0], 1024.0).received())
    encode_s = decode_s = 0.0
    for picture in pictures[1:]:
        start = time.perf_counter()
        encoded = encoder.encode(picture, 1024.0)
        encode_s += time.perf_counter() - start
        start = time.perf_counter()
        decoder.decode(encoded.received())
        decode_s += time.perf_counter() - start
    return frames / encode_s, frames / decode_s


Coder = tuple[Callable[[np.ndarray, np.ndarray], bytes], Callable[[bytes, np.ndarray], np.ndarray]]
"""(encode, decode) of one scale."""


def coder_rates(
    coders: dict[str, Coder],
    scales: list[tuple[np.ndarray, np.ndarray]],
    repeats: int,
) -> dict[str, tuple[float, float]]:
    """(encode, decode) symbols/s of one frame's scales by each coder, best of ``repeats``.
    The coders take turns within each repeat, so that a slower spell of the machine (other
    work on it) slows all of them, not just the one that happened to run then."""
    n = sum(len(symbols) for symbols, _ in scales)
    best = {name: [float("inf"), float("inf")] for name in coders}
    payloads = {name: [encode(s, i) for s, i in scales] for name, (encode, _) in coders.items()}
    for _ in range(repeats):
        for name, (encode, decode) in coders.items():
            start = time.perf_counter()
            for symbols, indexes in scales:
                encode(symbols, indexes)
            middle = time.perf_counter()
            for data, (_, indexes) in zip(payloads[name], scales, strict=True):
                decode(data, indexes)
            end = time.perf_counter()
            best[name] = [min(best[name][0], middle - start), min(best[name][1], end - middle)]
    return {name: (n / encode_s, n / decode_s) for name, (encode_s, decode_s) in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-codec", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    table = GaussianTable.build()
    scales = frame_symbols(args.width, args.height)
    sizes = [len(symbols) for symbols, _ in scales]
    print(
        f"{DEFAULT_PRESET} {args.width}x{args.height}: {sum(sizes)} symbols per frame, scales "
        f"{sizes}, slices {[slice_count(n) for n in sizes]} (at most {SLICE_SYMBOLS} symbols each)"
    )
    start = time.perf_counter()  # the first call starts the table's helper processes
    table.encode(*scales[-1], workers=2, parallel="process")
    first_s = time.perf_counter() - start
    second_s = best_seconds(
        lambda: table.encode(*scales[-1], workers=2, parallel="process"), args.repeats
    )
    coders: dict[str, Coder] = {
        "format 2, whole scale": (
            partial(whole_scale_encode, table),
            partial(whole_scale_decode, table),
        )
    }
    for name, workers, parallel in MODES:
        coders[f"sliced, {name}"] = (
            partial(table.encode, workers=workers, parallel=parallel),
            partial(table.decode, workers=workers, parallel=parallel),
        )
    rates = coder_rates(coders, scales, args.repeats)
    for name, (encode_rate, decode_rate) in rates.items():
        print(
            f"{name:24s} encode {encode_rate / 1e6:6.1f} M symbols/s, "
            f"decode {decode_rate / 1e6:6.1f} M symbols/s"
        )
    old, one, threads, processes = rates.values()
    print(
        f"2 threads over serial: encode {threads[0] / one[0]:.2f}x, decode "
        f"{threads[1] / one[1]:.2f}x; 2 processes over serial: encode "
        f"{processes[0] / one[0]:.2f}x, decode {processes[1] / one[1]:.2f}x; sliced (serial) "
        f"over format 2: encode {one[0] / old[0]:.2f}x, decode {one[1] / old[1]:.2f}x"
    )
    print(
        f"helper-process pool start-up: first 2-process encode of the largest scale "
        f"{first_s:.2f} s, later ones {1e3 * second_s:.0f} ms; scales of one slice or under "
        f"{PROCESS_MIN_SYMBOLS} symbols stay serial"
    )
    whole = GaussianTable.build(slice_symbols=2**40)  # one slice per scale
    extra = sum(len(table.encode(s, i)) - len(whole.encode(s, i)) for s, i in scales)
    total = sum(len(whole.encode(s, i)) for s, i in scales)
    print(f"slice tables and flushes: +{extra} bytes per frame (+{extra / total:.3%})")
    if not args.no_codec:
        for name, workers, parallel in MODES:
            encode_fps, decode_fps = codec_fps(workers, parallel)
            print(
                f"{DEFAULT_PRESET} 448x256 random weights, entropy {name}: "
                f"encode {encode_fps:.2f} frames/s, decode {decode_fps:.2f} frames/s"
            )


if __name__ == "__main__":
    main()
