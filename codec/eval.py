"""Rate-distortion evaluation: DHVC against x264 and x265 on the same frames (``dhvc eval``).

``evaluate`` codes the first N frames of a video with DHVC at several lambdas and with libx264
and libx265 (through PyAV) at several QPs, measures every point in bits per pixel of the
original frames and RGB PSNR / MS-SSIM of the decoded frames (means over frames,
``codec.metrics``), computes BD-rates (``bjontegaard``, pchip) and writes ``rd.json``.
``plot_rd`` draws that file's curves and computes nothing.

Bit accounting, stated in the JSON as well:

* DHVC: per frame, the payload bytes of the four scales plus the frame header exactly as a
  ``.dhvc`` file stores it (``codec.bitstream.FrameHeader``: frame index, type, lambda,
  resync_from, and per scale its length, CRC32 and sync tag). The stream header, written once
  per file, is not counted.
* Anchors: the bytes of every encoded packet (Annex B: parameter sets and slices) except SEI
  NAL units, which carry the encoder's version and option strings and are not needed to decode;
  the decoded frames come from exactly the counted bytes.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import bjontegaard
import numpy as np
from matplotlib.figure import Figure

from codec.bitstream import FrameHeader
from codec.coder import Decoder, Encoder
from codec.metrics import PSNR_CAP_DB, frame_quality
from codec.model import DHVC
from codec.types import NUM_SCALES, EncodedFrame, FrameType
from codec.video import check_frame_size, read_frames

MIN_SIDE = 64
"""Smallest frame side (pixels) ``evaluate`` accepts: one 64 x 64 coding unit of the codec."""

DEFAULT_QPS = (22, 27, 32, 37, 42)
"""Constant QPs of the anchors, best quality first."""

DEFAULT_NUM_LAMBDAS = 6
"""Lambdas drawn log-spaced over the model's range when none are given."""

ANCHORS = {"x264": ("libx264", "h264"), "x265": ("libx265", "hevc")}
"""Anchor name -> (PyAV encoder, PyAV decoder)."""

FPS = Fraction(25)
"""Frame rate the anchors are told (constant QP makes it irrelevant to their bits)."""

SEI_NAL_TYPES = {"x264": {6}, "x265": {39, 40}}
"""NAL unit types of SEI messages: H.264 type 6; HEVC prefix 39 and suffix 40."""


@dataclass(frozen=True)
class EvalProgress:
    """One step of ``evaluate``: ``frames_done`` of ``frames_total`` coded at ``setting``.

    ``codec`` is ``dhvc``, ``x264`` or ``x265``; ``setting`` names the point (``lambda=256``,
    ``qp=32``); ``point`` and ``points_total`` count the points of all codecs together.
    """

    codec: str
    setting: str
    frames_done: int
    frames_total: int
    point: int
    points_total: int


FRAME_HEADER_BYTES = FrameHeader.SIZE
"""Frame header bytes counted per DHVC frame: ``codec.bitstream.FrameHeader`` as written."""


def frame_header_bytes(encoded: EncodedFrame) -> int:
    """Bytes of ``encoded``'s frame header as ``codec.bitstream.write_frame`` writes it.

    Sync marker, frame index, frame type, resync_from, lambda, scale count, and per scale the
    payload length, CRC32 and sync tag (``FrameHeader``).
    """
    return len(FrameHeader.of(encoded).pack())


def default_lambdas(model: DHVC, count: int = DEFAULT_NUM_LAMBDAS) -> list[float]:
    """``count`` lambdas log-spaced from the model's ``lambda_min`` to ``lambda_max``."""
    low, high = model.config.lambda_min, model.config.lambda_max
    return [float(v) for v in np.geomspace(low, high, count)]


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on a dB scale, -10 log10(1 - MS-SSIM), capped at ``PSNR_CAP_DB``."""
    if value >= 1.0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, -10.0 * math.log10(1.0 - value))


def _quality(originals: np.ndarray, decoded: Sequence[np.ndarray]) -> tuple[float, float]:
    """Mean per-frame RGB PSNR (dB) and MS-SSIM of ``decoded`` against ``originals``."""
    psnrs, ssims = frame_quality(originals, np.stack(decoded))
    return float(np.mean(psnrs)), float(np.mean(ssims))


def evaluate_dhvc(
    model: DHVC,
    originals: np.ndarray,
    gop: int,
    lam: float,
    on_frame: Callable[[int], None] | None = None,
) -> dict:
    """One DHVC rate point: encode every frame at ``lam``, decode with all scales received.

    ``originals``: N x H x W x 3 uint8. Returns lambda, bpp (payload + header bits over
    N * H * W), mean RGB PSNR and MS-SSIM of the decoder's frames, mean bits of I frames and
    of P frames and their ratio (``None`` where a frame kind does not occur).
    """
    count, height, width = originals.shape[:3]
    encoder = Encoder(model, gop=gop)
    decoder = Decoder(model, height=height, width=width)
    bits: list[int] = []
    kinds: list[FrameType] = []
    decoded: list[np.ndarray] = []
    for index, frame in enumerate(originals):
        encoded = encoder.encode(frame, lam=lam)
        payload = sum(len(s.data) for s in encoded.scales)
        bits.append(8 * (payload + frame_header_bytes(encoded)))
        kinds.append(encoded.frame_type)
        decoded.append(decoder.decode(encoded.received()).x_hat)
        if on_frame is not None:
            on_frame(index + 1)
    mean_psnr, mean_ms_ssim = _quality(originals, decoded)
    intra = [b for b, k in zip(bits, kinds, strict=True) if k is FrameType.I]
    inter = [b for b, k in zip(bits, kinds, strict=True) if k is FrameType.P]
    bits_intra = float(np.mean(intra)) if intra else None
    bits_inter = float(np.mean(inter)) if inter else None
    ratio = bits_inter / bits_intra if bits_intra and bits_inter is not None else None
    return {
        "lambda": float(lam),
        "bpp": sum(bits) / (count * height * width),
        "psnr": mean_psnr,
        "ms_ssim": mean_ms_ssim,
        "bits_intra": bits_intra,
        "bits_inter_mean": bits_inter,
        "inter_intra_ratio": ratio,
    }


def nal_units(annex_b: bytes) -> list[bytes]:
    """Split an Annex B byte stream at its start codes; each unit keeps its own start code."""
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", annex_b)]
    units: list[bytes] = []
    for i, start in enumerate(starts):
        begin = start - 1 if start > 0 and annex_b[start - 1] == 0 else start
        end = len(annex_b) if i + 1 == len(starts) else starts[i + 1]
        if i + 1 < len(starts) and annex_b[end - 1] == 0:
            end -= 1  # the next unit's four-byte start code
        units.append(annex_b[begin:end])
    return units


def _nal_type(unit: bytes, anchor: str) -> int:
    header = unit[unit.index(b"\x00\x00\x01") + 3]
    return header & 0x1F if anchor == "x264" else (header >> 1) & 0x3F


def strip_sei(annex_b: bytes, anchor: str) -> bytes:
    """``annex_b`` without its SEI NAL units (``SEI_NAL_TYPES``)."""
    sei = SEI_NAL_TYPES[anchor]
    return b"".join(u for u in nal_units(annex_b) if _nal_type(u, anchor) not in sei)


def anchor_settings(anchor: str, gop: int, qps: Sequence[int]) -> dict:
    """Every setting the anchor encoder runs with, as written to ``rd.json``."""
    params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0"
    if anchor == "x264":
        options = {"preset": "medium", "tune": "zerolatency", "x264-params": params}
    else:
        options = {
            "preset": "medium",
            "tune": "zerolatency",
            "x265-params": f"{params}:log-level=error",
        }
    return {
        "encoder": ANCHORS[anchor][0],
        "encoder_version": None,
        "pyav": av.__version__,
        "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
        "options": options,
        "rate_control": "constant QP (qp per point; default I/P QP offsets)",
        "qps": [int(q) for q in qps],
        "preset": "medium",
        "tune": "zerolatency",
        "keyint": gop,
        "min_keyint": gop,
        "bframes": 0,
        "scenecut": 0,
        "low_delay": "I frame every keyint frames, then P frames only, no lookahead",
        "pix_fmt": "yuv420p",
        "color": "RGB -> yuv420p and back with swscale defaults (BT.601, limited range); "
        "odd sides padded by edge repetition and cropped after decoding",
        "bits": "Annex B packet bytes without SEI NAL units (parameter sets included)",
    }


def _encoder_version(annex_b: bytes, anchor: str) -> str | None:
    pattern = (
        rb"x264 - core \d+(?: r\d+ [0-9a-f]+)?"
        if anchor == "x264"
        else rb"x265 \(build \d+\) - [\w.+-]+"
    )
    found = re.search(pattern, annex_b)
    return found.group().decode("ascii", "replace") if found else None


def encode_anchor(
    anchor: str, originals: np.ndarray, gop: int, qp: int
) -> tuple[list[bytes], list[np.ndarray], str | None]:
    """Code ``originals`` (N x H x W x 3 uint8) with ``anchor`` at constant ``qp``.

    Returns the per-frame coded bytes without SEI, the decoded RGB frames (uint8, original size)
    and the encoder's version string found in its SEI (``None`` if absent).
    """
    encoder_name, decoder_name = ANCHORS[anchor]
    count, height, width = originals.shape[:3]
    frames = np.pad(originals, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    settings = anchor_settings(anchor, gop, [qp])["options"]
    options = dict(settings)
    if anchor == "x264":
        options["qp"] = str(qp)
    else:
        options["x265-params"] = f"qp={qp}:{options['x265-params']}"
    encoder = av.CodecContext.create(encoder_name, "w")
    encoder.width, encoder.height, encoder.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    encoder.time_base = 1 / FPS
    encoder.framerate = FPS
    encoder.options = options
    packets = []
    for index, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    raw = [bytes(p) for p in packets]
    version = _encoder_version(b"".join(raw), anchor)
    coded = [strip_sei(data, anchor) for data in raw]
    decoder = av.CodecContext.create(decoder_name, "r")
    decoded: list[np.ndarray] = []
    for data in coded:
        decoded += [f.to_ndarray(format="rgb24") for f in decoder.decode(av.Packet(data))]
    decoded += [f.to_ndarray(format="rgb24") for f in decoder.decode(None)]
    if len(decoded) != count:
        raise RuntimeError(f"{anchor} qp {qp}: {count} frames in, {len(decoded)} decoded")
    return coded, [d[:height, :width] for d in decoded], version


def evaluate_anchor(
    anchor: str, originals: np.ndarray, gop: int, qp: int
) -> tuple[dict, str | None]:
    """One anchor rate point (qp, bpp, psnr, ms_ssim) and the encoder's version string."""
    count, height, width = originals.shape[:3]
    coded, decoded, version = encode_anchor(anchor, originals, gop, qp)
    mean_psnr, mean_ms_ssim = _quality(originals, decoded)
    bpp = 8 * sum(len(c) for c in coded) / (count * height * width)
    return {"qp": int(qp), "bpp": bpp, "psnr": mean_psnr, "ms_ssim": mean_ms_ssim}, version


def bd_rate(
    anchor: Sequence[dict], test: Sequence[dict], metric: str
) -> tuple[float | None, str | None]:
    """BD-rate (%) of ``test`` against ``anchor`` on ``metric`` (``psnr`` or ``ms_ssim``).

    Points are dicts with ``bpp`` and the metric; MS-SSIM is compared in dB (``ms_ssim_db``).
    Uses ``bjontegaard.bd_rate`` with pchip interpolation over the overlapping quality range.
    Returns (value, None), or (None, reason) when it is undefined: fewer than two points, a
    non-positive or non-finite value, a curve whose quality does not rise strictly with rate,
    or quality ranges that do not overlap. Negative means ``test`` needs fewer bits.
    """
    curves = []
    for name, points in (("anchor", anchor), ("test", test)):
        if len(points) < 2:
            return None, f"{name} curve has {len(points)} point(s); at least 2 are needed"
        rate = np.array([p["bpp"] for p in points], dtype=np.float64)
        quality = np.array([p[metric] for p in points], dtype=np.float64)
        if metric == "ms_ssim":
            quality = np.array([ms_ssim_db(q) for q in quality])
        if not (np.all(np.isfinite(rate)) and np.all(np.isfinite(quality)) and np.all(rate > 0)):
            return None, f"{name} curve has a non-positive or non-finite value"
        order = np.argsort(rate)
        rate, quality = rate[order], quality[order]
        if np.any(np.diff(rate) <= 0) or np.any(np.diff(quality) <= 0):
            return None, f"{name} curve is not monotone ({metric} must rise strictly with bpp)"
        curves.append((rate, quality))
    (rate_a, quality_a), (rate_t, quality_t) = curves
    low, high = max(quality_a[0], quality_t[0]), min(quality_a[-1], quality_t[-1])
    if low >= high:
        return None, (
            f"{metric} ranges do not overlap: anchor {quality_a[0]:.2f}-{quality_a[-1]:.2f} dB, "
            f"test {quality_t[0]:.2f}-{quality_t[-1]:.2f} dB"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = bjontegaard.bd_rate(
            rate_a,
            quality_a,
            rate_t,
            quality_t,
            method="pchip",
            require_matching_points=False,
            min_overlap=0.0,
        )
    if not math.isfinite(value):
        return None, f"BD-rate on {metric} is not finite"
    return float(value), None


def _overlap(anchor: Sequence[dict], test: Sequence[dict], metric: str) -> float | None:
    """Share of the joint quality range that both curves cover (bjontegaard's overlap)."""
    if not anchor or not test:
        return None
    convert = ms_ssim_db if metric == "ms_ssim" else float
    qa = [convert(p[metric]) for p in anchor]
    qt = [convert(p[metric]) for p in test]
    total = max(max(qa), max(qt)) - min(min(qa), min(qt))
    if total <= 0:
        return None
    return max(0.0, min(max(qa), max(qt)) - max(min(qa), min(qt))) / total


def _monotone(points: Sequence[dict]) -> bool:
    ordered = sorted(points, key=lambda p: p["bpp"])
    return all(
        b["bpp"] > a["bpp"] and b["psnr"] > a["psnr"] and b["ms_ssim"] > a["ms_ssim"]
        for a, b in zip(ordered, ordered[1:], strict=False)
    )


def _write_json_atomically(path: Path, content: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(content, indent=2, allow_nan=False) + "\n")
    partial.replace(path)


def evaluate(
    video: str | os.PathLike[str],
    frames: int,
    gop: int,
    lambdas: Sequence[float] | None,
    anchors: Sequence[str],
    model: DHVC,
    out_json: Path,
    size: tuple[int, int] | None = None,
    on_progress: Callable[[EvalProgress], None] | None = None,
    qps: Sequence[int] = DEFAULT_QPS,
) -> dict:
    """Rate-distortion points of DHVC and the anchors on the first ``frames`` frames of ``video``.

    ``lambdas``: DHVC rate points (``None``: ``default_lambdas(model)``). ``anchors``: any of
    ``x264``, ``x265``. ``size`` = (width, height) resizes and centre-crops the frames first
    (``codec.video.read_frames``). Writes the returned dict to ``out_json`` atomically
    (keys: video, frames, gop, width, height, model, codecs, anchor_settings, bd_rate, and
    dhvc_settings, metrics, summary that describe them). Raises ``VideoError`` for an unusable
    video or frames below ``MIN_SIDE``; ``ValueError`` for bad arguments.
    """
    unknown = [a for a in anchors if a not in ANCHORS]
    if unknown:
        raise ValueError(f"unknown anchor(s) {unknown}; choose from {sorted(ANCHORS)}")
    if frames < 1 or gop < 1:
        raise ValueError(f"frames and gop must be >= 1, got frames={frames}, gop={gop}")
    if not qps:
        raise ValueError("qps must name at least one QP")
    lam_values = default_lambdas(model) if lambdas is None else [float(v) for v in lambdas]
    if not lam_values:
        raise ValueError("lambdas must name at least one value")
    originals = read_frames(video, max_frames=frames, size=size)
    count, height, width = originals.shape[:3]
    check_frame_size(width, height, video, MIN_SIDE, who="dhvc eval")

    points_total = len(lam_values) + len(anchors) * len(qps)
    point = 0

    def report(codec: str, setting: str, done: int) -> None:
        if on_progress is not None:
            on_progress(EvalProgress(codec, setting, done, count, point, points_total))

    dhvc_points = []
    for lam in sorted(lam_values):
        point += 1
        setting = f"lambda={lam:g}"
        dhvc_points.append(
            evaluate_dhvc(
                model, originals, gop, lam, lambda done, s=setting: report("dhvc", s, done)
            )
        )

    codecs: dict[str, list[dict]] = {"dhvc": dhvc_points}
    settings: dict[str, dict] = {}
    for anchor in anchors:
        settings[anchor] = anchor_settings(anchor, gop, qps)
        codecs[anchor] = []
        for qp in qps:
            point += 1
            result, version = evaluate_anchor(anchor, originals, gop, qp)
            settings[anchor]["encoder_version"] = version or settings[anchor]["encoder_version"]
            codecs[anchor].append(result)
            report(anchor, f"qp={qp}", count)

    bd: dict[str, dict] = {}
    for anchor in anchors:
        entry: dict = {"reasons": {}, "overlap": {}}
        for metric in ("psnr", "ms_ssim"):
            value, reason = bd_rate(codecs[anchor], dhvc_points, metric)
            entry[metric] = value
            entry["reasons"][metric] = reason
            entry["overlap"][metric] = _overlap(codecs[anchor], dhvc_points, metric)
        bd[anchor] = entry

    rates = [p["bpp"] for p in dhvc_points]
    rd = {
        "video": os.fspath(video),
        "frames": int(count),
        "gop": int(gop),
        "width": int(width),
        "height": int(height),
        "model": {
            "model_id": getattr(model, "model_id", None),
            "preset": model.config.name,
            "lambda_min": model.config.lambda_min,
            "lambda_max": model.config.lambda_max,
            "aux_refinement": model.config.aux_refinement,
        },
        "codecs": codecs,
        "dhvc_settings": {
            "lambdas": sorted(lam_values),
            "gop": int(gop),
            "bits": f"payload bytes of the {NUM_SCALES} scales + frame header "
            f"({FRAME_HEADER_BYTES} bytes/frame); .dhvc stream header not counted",
            "decoding": "Decoder with every scale received",
            "frame_kinds": "I at multiples of gop, P otherwise; inter_intra_ratio = "
            "mean P-frame bits / mean I-frame bits",
        },
        "anchor_settings": settings,
        "metrics": {
            "bpp": "bits / (frames * width * height) of the original frames",
            "psnr": "mean over frames of RGB PSNR in dB, peak 1.0 "
            f"(identical frames count as {PSNR_CAP_DB:g} dB)",
            "ms_ssim": "mean over frames of RGB MS-SSIM (pytorch_msssim, 5 scales; fewer on "
            "frames below 161 px)",
            "bd_rate": "percent bitrate change of dhvc against the anchor at equal quality, "
            "bjontegaard pchip; MS-SSIM compared as -10 log10(1 - MS-SSIM) dB",
        },
        "summary": {
            "dhvc_monotone": _monotone(dhvc_points),
            "dhvc_bpp_span": max(rates) / min(rates) if min(rates) > 0 else None,
        },
        "bd_rate": bd,
    }
    _write_json_atomically(Path(out_json), rd)
    return rd


def plot_rd(rd: dict, path_png: Path) -> Path:
    """Draw ``rd`` (an ``evaluate`` result) as PSNR-rate and MS-SSIM-rate curves into a PNG.

    Uses only values already in ``rd`` (BD-rates go into the legend as written there).
    """
    figure = Figure(figsize=(11, 4.5), layout="constrained")
    axes = figure.subplots(1, 2)
    styles = {"dhvc": ("o-", "DHVC"), "x264": ("s--", "x264"), "x265": ("^--", "x265")}
    for name, points in rd["codecs"].items():
        marker, label = styles.get(name, (".-", name))
        ordered = sorted(points, key=lambda p: p["bpp"])
        bpp = [p["bpp"] for p in ordered]
        for ax, metric in zip(axes, ("psnr", "ms_ssim"), strict=True):
            text = label
            entry = rd.get("bd_rate", {}).get(name)
            if entry is not None:
                value = entry.get(metric)
                text += f" (DHVC BD-rate {value:+.1f} %)" if value is not None else " (BD-rate n/a)"
            ax.plot(bpp, [p[metric] for p in ordered], marker, label=text)
    axes[0].set_ylabel("RGB PSNR (dB)")
    axes[1].set_ylabel("RGB MS-SSIM (0-1)")
    for ax in axes:
        ax.set_xlabel("rate (bits per pixel)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    figure.suptitle(
        f"{Path(rd['video']).name}: {rd['frames']} frames, {rd['width']}x{rd['height']}, "
        f"GOP {rd['gop']}, model {rd['model'].get('model_id')}"
    )
    path = Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
