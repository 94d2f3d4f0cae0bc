"""Codec speed/size benchmark: prints the numbers the codec issue's targets are checked against.

Targets: ``small`` at 640x256 encodes and decodes at >= 4 frames/s each on 2 CPU cores; the
``paper`` preset is about 100M parameters and about 400 KMACs/pixel.

    python benchmarks/bench_codec.py [--checkpoint default|none] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json

import torch

from codec.bench import run_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default="none")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    small = run_bench("small", 640, 256, args.device, 16, args.checkpoint)
    paper = run_bench("paper", 640, 256, args.device, 1, "none", macs_only=True)
    print(json.dumps({"small": small, "paper": paper}, indent=2))
    ok = small["encode_fps"] >= 4 and small["decode_fps"] >= 4
    print(
        f"small 640x256: encode {small['encode_fps']} fps, decode {small['decode_fps']} fps "
        f"({'meets' if ok else 'misses'} the 4 fps target on {args.threads} threads)"
    )
    print(
        f"paper: {paper['parameters'] / 1e6:.1f}M parameters, "
        f"{paper['encode_kmacs_per_pixel']} KMACs/pixel encode, "
        f"{paper['decode_kmacs_per_pixel']} decode"
    )


if __name__ == "__main__":
    main()
