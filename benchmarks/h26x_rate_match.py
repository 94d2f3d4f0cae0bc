"""Rate matching and slice cost of the x264/x265 comparison scenarios (issue 13, DESIGN 4b).

For each standard codec: the constant QP whose clean bitrate on the comparison clip (the
frames of ``scenarios/compare/compare_dhvc_loss00.yaml``) is nearest the DHVC run's measured
clean bitrate (``codec.h26x.realtime.match_qp``, bisection over integer QPs), the sliced
encoder's clean PSNR there, and the PSNR of ``dhvc eval``'s anchor (the same encoder, one
slice per picture, ``codec.rd.anchors``) interpolated at the same bits per pixel: the
difference is what slicing to the MTU costs. Usage::

    python benchmarks/h26x_rate_match.py DHVC [--mtu 1200] [--write]

``DHVC`` is the clean DHVC run's bitrate in kbit/s, or its summary.json (whose
``mean_bitrate_kbps`` is taken). ``--write`` puts the result into the comparison scenarios:
the matched QP and rate of every ``compare_x264_*`` / ``compare_x265_*`` file and the rates
their descriptions and those of the DHVC files quote (``make retarget`` runs the clean DHVC
scenario and then this, after the shipped weights change).
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
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
    parser.add_argument("dhvc", help="DHVC's clean bitrate (kbit/s) or its run's summary.json")
    parser.add_argument("--mtu", type=int, default=1200)
    parser.add_argument("--write", action="store_true", help="update scenarios/compare/*.yaml")
    args = parser.parse_args()
    args.dhvc_kbps = dhvc_bitrate(args.dhvc)
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
    if args.write:
        for path in write_scenarios(SCENARIO.parent, args.dhvc_kbps, report):
            print(f"updated {path}")


def dhvc_bitrate(value: str) -> float:
    """A bitrate given as a number, or the ``mean_bitrate_kbps`` of a summary.json."""
    try:
        return float(value)
    except ValueError:
        return float(json.loads(Path(value).read_text())["mean_bitrate_kbps"])


DHVC_RATE = re.compile(r"its clean mean bitrate, [0-9.]+ kbit/s,")
H26X_RATE = re.compile(
    r"at constant QP \d+, the integer QP whose clean bitrate \([0-9.]+ kbit/s\) is nearest "
    r"DHVC's [0-9.]+ kbit/s"
)
QP_LINE = re.compile(r"^(\s+qp: )\d+$", re.MULTILINE)
MATCHED_LINE = re.compile(r"^(\s+matched_bitrate_kbps: )[0-9.]+$", re.MULTILINE)


def write_scenarios(folder: Path, dhvc_kbps: float, report: dict) -> list[Path]:
    """Put a rate match into the comparison scenarios of ``folder`` (their text edited in
    place, comments and layout kept); returns the files changed. Each file is checked to
    load as a scenario before it is written."""
    changed = []
    for path in sorted(folder.glob("compare_*.yaml")):
        codec = path.stem.split("_")[1]
        text = path.read_text()
        new = DHVC_RATE.sub(f"its clean mean bitrate, {dhvc_kbps:.1f} kbit/s,", text)
        if codec in report:
            match = report[codec]
            new = H26X_RATE.sub(
                f"at constant QP {match['qp']}, the integer QP whose clean bitrate "
                f"({match['bitrate_kbps']:.1f} kbit/s) is nearest DHVC's {dhvc_kbps:.1f} kbit/s",
                new,
            )
            new = QP_LINE.sub(rf"\g<1>{match['qp']}", new)
            new = MATCHED_LINE.sub(rf"\g<1>{round(dhvc_kbps, 4)!r}", new)
        if new != text:
            with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".yaml") as tmp:
                tmp.write(new)
                tmp.flush()
                load_scenario(Path(tmp.name))  # refuse to write a file that does not load
            path.write_text(new)
            changed.append(path)
    return changed


def _sliced_psnr(codec: str, pictures: list, frames: np.ndarray) -> float:
    from codec.h26x.realtime import H26xDecoder

    decoder = H26xDecoder(codec, width=frames.shape[2], height=frames.shape[1])
    decoded = [decoder.decode(p.nal_units).rgb for p in pictures]
    return mean_quality(frames, decoded)[0]


if __name__ == "__main__":
    main()
