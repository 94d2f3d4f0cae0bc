"""Entropy-coding speed benchmark (issue 14, item 2): prints symbols/s, it asserts nothing.

For the symbols of one 1920x1080 frame of the default preset (``base``: the four scales'
``codec.bitstream.scale_symbols``, Gaussian symbols at table entries spread like a coded
frame's, a few escapes), it times ``GaussianTable.encode`` and ``decode`` (sliced payloads,
``SLICE_SYMBOLS`` per slice) with 1 and 2 worker threads, best of ``--repeats``, and the
whole-scale coder of format 2 (one range coder per scale, one pass over the symbols per table
entry) as the baseline. Then, unless ``--no-codec``, frames/s of a full ``Encoder`` and
``Decoder`` (random-weight ``base``, 448x256 P frames) with 1 and 2 entropy workers.

    python benchmarks/bench_entropy.py [--width 1920] [--height 1080] [--repeats 5]
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
from codec.bitstream import scale_symbols
from codec.config import DEFAULT_PRESET, get_preset
from codec.entropy import NUM_LEVELS, SLICE_SYMBOLS, GaussianTable, sigma_levels, slice_count


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


def codec_fps(workers: int, frames: int = 6) -> tuple[float, float]:
    """(encode, decode) frames/s of random-weight ``base`` at 448x256, P frames."""
    model = load_model("none", preset=DEFAULT_PRESET)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(256, 448, 3), dtype=np.uint8)
    pictures = [np.roll(base, 2 * i, axis=1) for i in range(frames + 1)]
    encoder = Encoder(model, gop=64, entropy_workers=workers)
    decoder = Decoder(model, 256, 448, entropy_workers=workers)
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


def coder_rates(
    encode: Callable[[np.ndarray, np.ndarray], bytes],
    decode: Callable[[bytes, np.ndarray], np.ndarray],
    scales: list[tuple[np.ndarray, np.ndarray]],
    repeats: int,
) -> tuple[float, float]:
    """(encode, decode) symbols/s of one frame's scales, best of ``repeats``."""
    n = sum(len(symbols) for symbols, _ in scales)
    payloads = [encode(symbols, indexes) for symbols, indexes in scales]
    pairs = list(zip(payloads, (indexes for _, indexes in scales), strict=True))
    encode_s = best_seconds(lambda: [encode(s, i) for s, i in scales], repeats)
    decode_s = best_seconds(lambda: [decode(d, i) for d, i in pairs], repeats)
    return n / encode_s, n / decode_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--repeats", type=int, default=5)
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
    rates = {
        "format 2, whole scale": coder_rates(
            lambda s, i: whole_scale_encode(table, s, i),
            lambda d, i: whole_scale_decode(table, d, i),
            scales,
            args.repeats,
        )
    }
    for workers in (1, 2):
        rates[f"sliced, {workers} worker(s)"] = coder_rates(
            partial(table.encode, workers=workers),
            partial(table.decode, workers=workers),
            scales,
            args.repeats,
        )
    for name, (encode_rate, decode_rate) in rates.items():
        print(
            f"{name:24s} encode {encode_rate / 1e6:6.1f} M symbols/s, "
            f"decode {decode_rate / 1e6:6.1f} M symbols/s"
        )
    old, one, two = rates.values()
    print(
        f"2 workers over 1: encode {two[0] / one[0]:.2f}x, decode {two[1] / one[1]:.2f}x; "
        f"sliced (1 worker) over format 2: encode {one[0] / old[0]:.2f}x, "
        f"decode {one[1] / old[1]:.2f}x"
    )
    whole = GaussianTable.build(slice_symbols=2**40)  # one slice per scale
    extra = sum(len(table.encode(s, i)) - len(whole.encode(s, i)) for s, i in scales)
    total = sum(len(whole.encode(s, i)) for s, i in scales)
    print(f"slice tables and flushes: +{extra} bytes per frame (+{extra / total:.3%})")
    if not args.no_codec:
        for workers in (1, 2):
            encode_fps, decode_fps = codec_fps(workers)
            print(
                f"{DEFAULT_PRESET} 448x256 random weights, {workers} entropy worker(s): "
                f"encode {encode_fps:.2f} frames/s, decode {decode_fps:.2f} frames/s"
            )


if __name__ == "__main__":
    main()
