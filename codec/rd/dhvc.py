"""DHVC's rate points for ``dhvc eval``: encode a clip at one lambda, decode it with every
scale received, and measure bits per pixel and quality (RGB PSNR and MS-SSIM, means over
frames, ``codec.metrics``).

Bit accounting: per frame, the payload bytes of the four scales plus the frame header exactly
as a ``.dhvc`` file stores it (``codec.stream.bitstream.FrameHeader``: frame index, type, lambda,
resync_from, and per scale its length, CRC32 and sync tag). The stream header, written once per
file, is not counted. ``dhvc_settings`` states it in rd.json.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from codec.metrics import frame_quality
from codec.model.dhvc import DHVC
from codec.stream.bitstream import FrameHeader
from codec.stream.coder import Decoder, Encoder
from codec.types import NUM_SCALES, EncodedFrame, FrameType

DEFAULT_NUM_LAMBDAS = 6
"""Lambdas drawn log-spaced over the model's range when none are given."""

FRAME_HEADER_BYTES = FrameHeader.SIZE
"""Frame header bytes counted per DHVC frame: ``codec.stream.bitstream.FrameHeader`` as written."""


def frame_header_bytes(encoded: EncodedFrame) -> int:
    """Bytes of ``encoded``'s frame header as ``codec.stream.bitstream.write_frame`` writes it.

    Sync marker, frame index, frame type, resync_from, lambda, scale count, and per scale the
    payload length, CRC32 and sync tag (``FrameHeader``).
    """
    return len(FrameHeader.of(encoded).pack())


def default_lambdas(model: DHVC, count: int = DEFAULT_NUM_LAMBDAS) -> list[float]:
    """``count`` lambdas log-spaced from the model's ``lambda_min`` to ``lambda_max``."""
    low, high = model.config.lambda_min, model.config.lambda_max
    return [float(v) for v in np.geomspace(low, high, count)]


def mean_quality(originals: np.ndarray, decoded: Sequence[np.ndarray]) -> tuple[float, float]:
    """Mean per-frame RGB PSNR (dB) and MS-SSIM of ``decoded`` against ``originals``, the
    quality of a rate point of any codec."""
    psnrs, ssims = frame_quality(originals, np.stack(decoded))
    return float(np.mean(psnrs)), float(np.mean(ssims))


def evaluate_dhvc(
    model: DHVC,
    originals: np.ndarray,
    gop: int,
    lam: float,
    on_frame: Callable[[int], None] | None = None,
    motion: bool = True,
) -> dict:
    """One DHVC rate point: encode every frame at ``lam`` (with block motion of the
    references unless ``motion`` is off), decode with all scales received.

    ``originals``: N x H x W x 3 uint8. Returns lambda, bpp (payload + header bits over
    N * H * W), mean RGB PSNR and MS-SSIM of the decoder's frames, mean bits of I frames and
    of P frames and their ratio (``None`` where a frame kind does not occur).
    """
    count, height, width = originals.shape[:3]
    encoder = Encoder(model, gop=gop, motion=motion)
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
    mean_psnr, mean_ms_ssim = mean_quality(originals, decoded)
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


def dhvc_settings(lambdas: Sequence[float], gop: int, intra: bool, motion: bool = True) -> dict:
    """How the DHVC points were coded and counted, as written to rd.json."""
    return {
        "lambdas": [float(v) for v in lambdas],
        "gop": int(gop),
        "intra_only": bool(intra),
        "motion": "blocks" if motion else "none",
        "bits": f"payload bytes of the {NUM_SCALES} scales + frame header "
        f"({FRAME_HEADER_BYTES} bytes/frame); .dhvc stream header not counted",
        "decoding": "Decoder with every scale received",
        "frame_kinds": "every frame I (intra only, gop 1); inter_intra_ratio is null"
        if intra
        else "I at multiples of gop, P otherwise; inter_intra_ratio = "
        "mean P-frame bits / mean I-frame bits",
    }
