"""Codec speed/size benchmark: prints the numbers the codec issue's targets are checked against.

Targets: the default preset (``base``) at 448x256 encodes and decodes at >= 5 frames/s each on
2 CPU cores (the first ``small`` is measured beside it); the ``paper`` preset is about 100M
parameters and about 400 KMACs/pixel.

    python benchmarks/bench_codec.py [--checkpoint default|none] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json

import torch

from codec.model.config import DEFAULT_PRESET
from codec.stream.bench import run_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="none")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = run_bench(DEFAULT_PRESET, 448, 256, args.device, 16, args.checkpoint)
    small = run_bench("small", 448, 256, args.device, 16, "none")
    paper = run_bench("paper", 640, 256, args.device, 1, "none", macs_only=True)
    print(json.dumps({DEFAULT_PRESET: base, "small": small, "paper": paper}, indent=2))
    for name, r in ((DEFAULT_PRESET, base), ("small", small)):
        ok = r["encode_fps"] >= 5 and r["decode_fps"] >= 5
        print(
            f"{name} 448x256: encode {r['encode_fps']} fps, decode {r['decode_fps']} fps, "
            f"{r['encode_kmacs_per_pixel']}/{r['decode_kmacs_per_pixel']} KMACs/px "
            f"({'meets' if ok else 'misses'} the 5 fps target; coding runs on "
            f"{r['coding_threads']} of the process's {args.threads} threads)"
        )
    print(
        f"paper: {paper['parameters'] / 1e6:.1f}M parameters, "
        f"{paper['encode_kmacs_per_pixel']} KMACs/pixel encode, "
        f"{paper['decode_kmacs_per_pixel']} decode"
    )


if __name__ == "__main__":
    main()
