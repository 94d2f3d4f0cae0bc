"""How much a temporal reference saves, by motion speed: DHVC's inter frames against x264's.

Each held-out validation photo (``data/pack/val/photos``, never trained on) becomes a clip of
``--frames`` frames of ``--size`` px panning right at v whole pixels per frame (v = 0 is a
still picture: every frame the same). Both codecs code it as one I frame and P frames: DHVC
at ``--lam`` and x264 (low-delay, ``codec.h26x.realtime``) at ``--qp``; DHVC twice, with block
motion of the references (its default, ``codec.stream.motion``) and with the paper's co-located
references. Printed per speed, means over the photos: P-frame bits over I-frame bits (how
much of an intra frame an inter frame still costs; 1 means the reference saves nothing), and
the P frames' PSNR minus the I frame's. An inter coder that compensates motion keeps its
ratio low at every speed; a prior that predicts only from co-located features pays more the
faster the picture moves.

    .venv/bin/python benchmarks/temporal_prediction.py [--pack data/pack] [--speeds 0 1 2 4 8 16]
        [--lam 1024] [--qp 27] [--checkpoint default] [--photos N]

Takes about 70 seconds on one thread (12 photos, 6 speeds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from codec import Encoder, load_model
from codec.h26x.realtime import H26xSettings, encode_clip
from codec.io.video import read_frames
from codec.metrics import psnr

ROOT = Path(__file__).resolve().parents[1]


def pan_clip(photo: np.ndarray, speed: int, frames: int, size: tuple[int, int]) -> np.ndarray:
    """``frames`` x H x W x 3 crops of ``photo`` moving right by ``speed`` px per frame."""
    width, height = size
    need_w, need_h = width + speed * (frames - 1), height
    if photo.shape[0] < need_h or photo.shape[1] < need_w:
        raise ValueError(f"photo {photo.shape[1]}x{photo.shape[0]} too small for {need_w}x{need_h}")
    top = (photo.shape[0] - height) // 2
    left = (photo.shape[1] - need_w) // 2
    return np.stack(
        [
            photo[top : top + height, left + speed * t : left + speed * t + width]
            for t in range(frames)
        ]
    )


def dhvc_costs(
    encoder_model, clip: np.ndarray, lam: float, motion: bool = True
) -> tuple[float, float, float, float]:
    """(P bits / I bits, P PSNR - I PSNR, I bpp, mean P bpp) of DHVC on one clip, with block
    motion of the references or (``motion`` off) co-located references."""
    enc = Encoder(encoder_model, gop=len(clip), motion=motion)
    bits, quality = [], []
    for frame in clip:
        coded = enc.encode(frame, lam)
        bits.append(sum(coded.payload_bits))
        quality.append(psnr(frame, coded.x_hat))
    pixels = clip.shape[1] * clip.shape[2]
    p_bits = statistics.mean(bits[1:])
    return (
        p_bits / bits[0],
        statistics.mean(quality[1:]) - quality[0],
        bits[0] / pixels,
        p_bits / pixels,
    )


def x264_cost_ratio(clip: np.ndarray, qp: int) -> float:
    """P bytes / I bytes of x264 at constant ``qp`` on one clip."""
    pictures = encode_clip(H26xSettings("x264", qp=qp, gop_frames=len(clip)), clip)
    sizes = [p.size_bytes for p in pictures]
    return statistics.mean(sizes[1:]) / sizes[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pack", type=Path, default=ROOT / "data" / "pack")
    parser.add_argument("--speeds", type=int, nargs="+", default=[0, 1, 2, 4, 8, 16])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", default="448x256")
    parser.add_argument("--lam", type=float, default=1024.0)
    parser.add_argument("--qp", type=int, default=27)
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--photos", type=int, default=0, help="use the first N photos (0: all)")
    args = parser.parse_args()
    folder = args.pack / "val" / "photos"
    paths = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not paths:
        print(f"error: no validation photos in {folder} (run `make data` first)", file=sys.stderr)
        return 2
    if args.frames < 2 or min(args.speeds) < 0:
        print("error: need --frames >= 2 and speeds >= 0", file=sys.stderr)
        return 2
    try:
        width, height = (int(v) for v in args.size.split("x"))
    except ValueError:
        parser.error(f"--size must be WIDTHxHEIGHT, got {args.size!r}")
    if width < 64 or height < 64 or width % 2 or height % 2:
        parser.error(f"--size needs even sides of at least 64 px, got {args.size!r}")
    paths = paths[: args.photos] if args.photos > 0 else paths
    torch.set_num_threads(1)
    model = load_model(args.checkpoint)
    photos = [read_frames(p, max_frames=1)[0] for p in paths]
    reach = width + max(args.speeds) * (args.frames - 1)
    photos = [p for p in photos if p.shape[1] >= reach and p.shape[0] >= height]
    if not photos:
        print(f"error: no photo is {reach}x{height} px or larger", file=sys.stderr)
        return 2
    print(
        f"{len(photos)} held-out photos panning right, {args.frames} frames of {width}x{height}, "
        f"DHVC lambda {args.lam:g} ({args.checkpoint}), x264 QP {args.qp}; means over the photos"
    )
    print(
        "px/frame | DHVC P/I bits: block motion | P - I PSNR | co-located | P - I PSNR "
        "| I / P bpp (motion) | x264 P/I bits"
    )
    for speed in args.speeds:
        rows = []
        for photo in photos:
            clip = pan_clip(photo, speed, args.frames, (width, height))
            rows.append(
                (
                    *dhvc_costs(model, clip, args.lam),
                    *dhvc_costs(model, clip, args.lam, motion=False)[:2],
                    x264_cost_ratio(clip, args.qp),
                )
            )
        ratio, delta, i_bpp, p_bpp, plain, plain_delta, anchor = (
            statistics.mean(c) for c in zip(*rows, strict=True)
        )
        print(
            f"{speed:8d} | {ratio:26.3f} | {delta:+7.2f} dB | {plain:10.3f} | "
            f"{plain_delta:+7.2f} dB | {i_bpp:8.3f} / {p_bpp:5.3f} | {anchor:13.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
