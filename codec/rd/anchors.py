"""The anchors of ``dhvc eval``: libx264 and libx265 through PyAV, low delay at constant QP,
and, for intra-only evaluations, baseline JPEG through Pillow at fixed qualities.

Bit accounting: the bytes of every encoded packet (Annex B: parameter sets and slices) except
SEI NAL units, which carry the encoder's version and option strings and are not needed to
decode; the decoded frames come from exactly the counted bytes. Every encoder setting is stated
in ``anchor_settings``, as written to rd.json.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from fractions import Fraction

import av
import numpy as np
from PIL import Image

from codec.h26x.nal import STANDARD_CODECS, strip_sei
from codec.rd.dhvc import mean_quality

DEFAULT_QPS = (22, 27, 32, 37, 42)
"""Constant QPs of the anchors, best quality first."""

ANCHORS = STANDARD_CODECS
"""Anchor name -> (PyAV encoder, PyAV decoder): the standard codecs (``codec.h26x.nal``)."""

FPS = Fraction(25)
"""Frame rate the anchors are told (constant QP makes it irrelevant to their bits)."""

JPEG = "jpeg"
"""The still-image anchor of intra-only evaluations (Pillow's libjpeg, baseline JPEG)."""

JPEG_QUALITIES = (95, 85, 75, 60, 45, 30)
"""Pillow JPEG qualities of the JPEG anchor, best first."""

KNOBS = {JPEG: "quality"}
"""Each anchor's rate setting as it appears in its rate points (the video anchors': ``qp``)."""


def knob(codec: str) -> str:
    """The rate setting that names ``codec``'s points: ``lambda``, ``qp`` or ``quality``."""
    return "lambda" if codec == "dhvc" else KNOBS.get(codec, "qp")


def jpeg_settings(qualities: Sequence[int] = JPEG_QUALITIES) -> dict:
    """Every setting the JPEG anchor runs with, as written to ``rd.json``."""
    return {
        "encoder": "Pillow JPEG (libjpeg)",
        "pillow": Image.__version__,
        "qualities": [int(q) for q in qualities],
        "subsampling": "4:2:0 (Pillow's default)",
        "optimize": False,
        "progressive": False,
        "bits": "the whole JPEG file (headers and default Huffman tables included)",
        "color": "RGB -> YCbCr and back inside libjpeg (JFIF, full range)",
    }


def evaluate_jpeg(originals: np.ndarray, quality: int) -> dict:
    """One JPEG rate point (quality, bpp, psnr, ms_ssim): every frame of ``originals``
    (N x H x W x 3 uint8) a baseline JPEG file at ``quality`` (1..95)."""
    if not 1 <= quality <= 95:
        raise ValueError(f"JPEG quality must be 1..95, got {quality}")
    count, height, width = originals.shape[:3]
    decoded, bits = [], 0
    for frame in originals:
        buffer = io.BytesIO()
        Image.fromarray(frame, "RGB").save(buffer, "JPEG", quality=int(quality))
        bits += 8 * buffer.tell()
        buffer.seek(0)
        decoded.append(np.array(Image.open(buffer).convert("RGB")))
    mean_psnr, mean_ms_ssim = mean_quality(originals, decoded)
    bpp = bits / (count * height * width)
    return {"quality": int(quality), "bpp": bpp, "psnr": mean_psnr, "ms_ssim": mean_ms_ssim}


def anchor_settings(anchor: str, gop: int, qps: Sequence[int], intra: bool = False) -> dict:
    """Every setting the anchor encoder runs with, as written to ``rd.json``.

    ``intra``: intra-only mode, where ``gop`` is 1 and every frame is an I frame.
    """
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
        "intra_only": intra,
        "low_delay": "intra only: keyint 1, every frame an I frame"
        if intra
        else "I frame every keyint frames, then P frames only, no lookahead",
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
    mean_psnr, mean_ms_ssim = mean_quality(originals, decoded)
    bpp = 8 * sum(len(c) for c in coded) / (count * height * width)
    return {"qp": int(qp), "bpp": bpp, "psnr": mean_psnr, "ms_ssim": mean_ms_ssim}, version
