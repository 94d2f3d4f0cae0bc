"""GPU codec benchmark (issue 14): frames/s at 1080p and 448x256, split into network time and
entropy-coding time, and peak GPU memory, for the default preset and ``paper``.

    python benchmarks/bench_gpu.py                    # on CUDA: the issue's numbers
    python benchmarks/bench_gpu.py --device cpu --sizes 448x256 --presets tiny   # a dry run

Each row is ``codec.stream.bench.run_bench``: real ``Encoder.encode`` / ``Decoder.decode`` of
P frames with bit-exact checking, entropy coding included (``EntropyTimer`` measures its part). The
paper's Table II numbers (DHVC 2.0 on one RTX 3090, 1080p) are printed beside ``paper``:
0.23 s to encode and 0.14 s to decode a frame. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import json

import torch

from codec.model.config import DEFAULT_PRESET
from codec.stream.bench import run_bench

PAPER_TABLE_II_S = {"encode": 0.23, "decode": 0.14}
"""DHVC 2.0, seconds per 1080p frame on one RTX 3090 (paper Table II)."""


def _size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes", default="1920x1080,448x256")
    parser.add_argument("--presets", default=f"{DEFAULT_PRESET},paper")
    parser.add_argument("--frames", type=int, default=8)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.exit(2, "bench_gpu: CUDA is not available (use --device cpu for a dry run)\n")
    rows = []
    for preset in args.presets.split(","):
        for size in args.sizes.split(","):
            width, height = _size(size)
            r = run_bench(preset, width, height, args.device, args.frames, "none")
            rows.append(r)
            enc_net = r["encode_ms_per_frame"] - r["encode_entropy_ms_per_frame"]
            dec_net = r["decode_ms_per_frame"] - r["decode_entropy_ms_per_frame"]
            line = (
                f"{preset:>6} {size:>9} on {args.device}: encode {r['encode_fps']:7.2f} fps "
                f"({enc_net:.1f} ms network + {r['encode_entropy_ms_per_frame']:.1f} ms entropy), "
                f"decode {r['decode_fps']:7.2f} fps ({dec_net:.1f} ms network + "
                f"{r['decode_entropy_ms_per_frame']:.1f} ms entropy), "
                f"peak memory {r['peak_memory_mb']} MB"
            )
            if preset == "paper" and (width, height) == (1920, 1080):
                line += (
                    f"; paper Table II: encode {PAPER_TABLE_II_S['encode']} s, "
                    f"decode {PAPER_TABLE_II_S['decode']} s per frame"
                )
            print(line, flush=True)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
