"""Rate matching and slice cost of the x264/x265 comparison scenarios (issue 13, DESIGN 4b).

For each standard codec: the constant QP whose clean bitrate on the comparison clip (the
frames of ``scenarios/compare/compare_dhvc_loss00.yaml``) is nearest the DHVC run's measured
clean bitrate (``codec.h26x.realtime.match_qp``, bisection over integer QPs), the sliced
encoder's clean PSNR there, and the PSNR of ``dhvc eval``'s anchor (the same encoder, one
slice per picture, ``codec.rd.anchors``) interpolated at the same bits per pixel: the
difference is what slicing to the MTU costs. Usage::

    python benchmarks/h26x_rate_match.py DHVC_BITRATE_KBPS [--mtu 1200]

``DHVC_BITRATE_KBPS`` is ``mean_bitrate_kbps`` of a clean DHVC run's summary.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from codec.h26x.realtime import H26xSettings, encode_clip, match_qp
from codec.rd.anchors import evaluate_anchor
from codec.rd.dhvc import mean_quality
from netsim.codecs.slices import payload_budget_bytes
from netsim.scenario import load_scenario

SCENARIO = Path(__file__).parents[1] / "scenarios" / "compare" / "compare_dhvc_loss00.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dhvc_kbps", type=float)
    parser.add_argument("--mtu", type=int, default=1200)
    args = parser.parse_args()
    from codec.io.video import read_frames

    scenario = load_scenario(SCENARIO)
    video = scenario.video
    frames = read_frames(
        video.source, max_frames=video.frames, size=(video.width_px, video.height_px)
    )
    pixels = frames.shape[1] * frames.shape[2]
    report = {}
    for codec in ("x264", "x265"):
        settings = H26xSettings(
            codec=codec,
            qp=30,
            gop_frames=scenario.codec.gop_frames,
            slice_max_bytes=payload_budget_bytes(args.mtu),
            fps=round(video.fps),
        )
        match = match_qp(settings, frames, args.dhvc_kbps)
        pictures = encode_clip(H26xSettings(**{**settings.__dict__, "qp": match.qp}), frames)
        bits = 8 * sum(p.size_bytes for p in pictures)
        bpp = bits / (len(frames) * pixels)
        sliced_psnr = _sliced_psnr(codec, pictures, frames)
        anchors = [
            evaluate_anchor(codec, frames, scenario.codec.gop_frames, qp)[0]
            for qp in (match.qp - 2, match.qp, match.qp + 2)
        ]
        anchor_bpp = np.array([a["bpp"] for a in anchors])[::-1]
        anchor_psnr = np.array([a["psnr"] for a in anchors])[::-1]
        anchor_at_bpp = float(np.interp(np.log(bpp), np.log(anchor_bpp), anchor_psnr))
        report[codec] = {
            "qp": match.qp,
            "bitrate_kbps": match.bitrate_kbps,
            "dhvc_bitrate_kbps": args.dhvc_kbps,
            "ratio": match.ratio,
            "bpp": bpp,
            "sliced_psnr_db": sliced_psnr,
            "anchor_same_qp": anchors[1],
            "anchor_psnr_at_same_bpp_db": anchor_at_bpp,
            "slice_cost_db": anchor_at_bpp - sliced_psnr,
        }
    print(json.dumps(report, indent=2))


def _sliced_psnr(codec: str, pictures: list, frames: np.ndarray) -> float:
    from codec.h26x.realtime import H26xDecoder

    decoder = H26xDecoder(codec, width=frames.shape[2], height=frames.shape[1])
    decoded = [decoder.decode(p.nal_units).rgb for p in pictures]
    return mean_quality(frames, decoded)[0]


if __name__ == "__main__":
    main()
