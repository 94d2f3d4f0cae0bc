"""Rate-distortion evaluation: DHVC against x264 and x265 on the same frames (``dhvc eval``).

``evaluate`` codes the first N frames of each source (a video, a PNG folder, ``sample:NAME`` or
every member of a named set ``set:NAME``, see ``SETS``) with DHVC at several lambdas and with
libx264 and libx265 (through PyAV) at several QPs, measures every point in bits per pixel of the
original frames and RGB PSNR / MS-SSIM of the decoded frames (means over frames,
``codec.metrics``), computes BD-rates (``bjontegaard``, pchip) and writes ``rd.json``. With
several sources it also averages the curves as codec papers do (per lambda and per QP, the mean
bpp, PSNR and MS-SSIM over sources), takes the BD-rates of the averaged curves and the mean of the
per-source BD-rates. Low delay by default (an I frame every GOP, then P frames); ``intra=True``
codes every frame as an I frame with DHVC and the anchors. ``plot_rd`` draws that file's curves
and computes nothing.

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
from functools import partial
from pathlib import Path

import av
import bjontegaard
import numpy as np
from matplotlib.figure import Figure

from codec.bitstream import FrameHeader
from codec.coder import Decoder, Encoder
from codec.datapack import DEFAULT_PACK
from codec.metrics import PSNR_CAP_DB, frame_quality
from codec.model import DHVC
from codec.synth import MOTION_KINDS, motion_clip
from codec.types import NUM_SCALES, EncodedFrame, FrameType
from codec.video import VideoError, check_frame_size, read_frames

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

DEFAULT_FRAMES = 96
"""Frames ``evaluate`` codes of a video, PNG folder or sample clip when none are asked for."""

DEFAULT_GOP = 32
"""Intra period of the low-delay mode when none is given (the CLI's default)."""

SET_PREFIX = "set:"
"""Prefix of a named set of sources (``set:val``, ``set:val-stills``; see ``SETS``)."""


SET_FRAMES = 16
"""Frames per member of ``set:val`` when none are asked for (keeps the set cheap on a CPU)."""

SET_SIZE = (384, 256)
"""(width, height) of every ``set:val`` member when no size is asked for."""

STILL_MAX_SIZE = (512, 384)
"""Largest (width, height) of a ``set:val-stills`` frame; sides are cut to multiples of 64."""

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg")
"""File types of the validation photos (any case)."""


@dataclass(frozen=True)
class EvalProgress:
    """One step of ``evaluate``: ``frames_done`` of ``frames_total`` coded at ``setting``.

    ``codec`` is ``dhvc``, ``x264`` or ``x265``; ``setting`` names the point (``lambda=256``,
    ``qp=32``); ``point`` and ``points_total`` count the points of all codecs and all sources
    together. ``source`` names the source being coded, the ``source_index``-th (from 1) of
    ``sources_total``.
    """

    codec: str
    setting: str
    frames_done: int
    frames_total: int
    point: int
    points_total: int
    source: str = ""
    source_index: int = 1
    sources_total: int = 1


@dataclass(frozen=True)
class EvalSource:
    """One clip ``evaluate`` codes: its ``name`` (as written to rd.json) and its frames.

    ``frames``: N x H x W x 3 uint8 RGB.
    """

    name: str
    frames: np.ndarray


SetBuilder = Callable[[Path, int | None, tuple[int, int] | None], list[tuple[str, np.ndarray]]]
"""Builds a named set: (pack root, frames or ``None``, (width, height) or ``None``) -> members,
each (name, N x H x W x 3 uint8 frames)."""


def _val_dir(pack_root: Path, set_name: str) -> Path:
    val = Path(pack_root) / "val"
    if not val.is_dir():
        raise VideoError(
            f"{SET_PREFIX}{set_name}: no validation pack at {val} (run `make data` first)"
        )
    return val


def _files(folder: Path, suffixes: Sequence[str]) -> list[Path]:
    """Files of ``folder`` whose suffix is one of ``suffixes`` (any case), sorted by name."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes]
    return sorted(found, key=lambda p: p.name)


def _read_photo(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """One photo (png or jpg) as H x W x 3 uint8, resized and centre-cropped to ``size``."""
    return read_frames(path, max_frames=1, size=size)[0]


def val_set(
    pack_root: Path, frames: int | None, size: tuple[int, int] | None
) -> list[tuple[str, np.ndarray]]:
    """``set:val``: the held-out clips and synthetic motion over the held-out photos.

    Every ``val/clips/*.mp4`` (first ``frames`` frames), then for the i-th ``val/photos/`` photo
    (png or jpg, sorted by name) ``codec.synth.motion_clip`` with motion kind
    ``MOTION_KINDS[i % len(MOTION_KINDS)]`` and seed i. All members are ``size`` (width, height;
    clips resized and centre-cropped); ``frames`` and ``size`` default to ``SET_FRAMES`` and
    ``SET_SIZE``. ``VideoError`` when the pack is missing or holds neither.
    """
    count = SET_FRAMES if frames is None else frames
    width, height = SET_SIZE if size is None else size
    val = _val_dir(pack_root, "val")
    clips = _files(val / "clips", (".mp4",))
    photos = _files(val / "photos", PHOTO_SUFFIXES)
    if not clips and not photos:
        raise VideoError(
            f"{SET_PREFIX}val: {val} holds no clips/*.mp4 and no photos (run `make data` first)"
        )
    members = [
        (f"{SET_PREFIX}val/clips/{path.name}", read_frames(path, count, (width, height)))
        for path in clips
    ]
    for index, path in enumerate(photos):
        kind = MOTION_KINDS[index % len(MOTION_KINDS)]
        photo = _read_photo(path)
        try:
            clip = motion_clip(photo, kind, count, (width, height), seed=index)
        except ValueError as err:
            raise VideoError(f"{path}: {err}") from None
        members.append((f"{SET_PREFIX}val/photos/{path.name}@{kind}", np.asarray(clip)))
    return members


def still_crop(photo: np.ndarray) -> np.ndarray:
    """The centre of ``photo`` with sides cut to multiples of 64, at most ``STILL_MAX_SIZE``."""
    height, width = photo.shape[:2]
    crop_w = min(STILL_MAX_SIZE[0], width // MIN_SIDE * MIN_SIDE)
    crop_h = min(STILL_MAX_SIZE[1], height // MIN_SIDE * MIN_SIDE)
    if crop_w == 0 or crop_h == 0:
        raise ValueError(f"photo is {width}x{height}; at least {MIN_SIDE}x{MIN_SIDE} is needed")
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    return np.ascontiguousarray(photo[top : top + crop_h, left : left + crop_w])


def val_stills_set(
    pack_root: Path, frames: int | None, size: tuple[int, int] | None
) -> list[tuple[str, np.ndarray]]:
    """``set:val-stills``: each held-out photo as a clip of one frame, for intra-only runs.

    A photo is centre-cropped by ``still_crop`` or, with ``size``, resized and centre-cropped to
    it. ``frames`` does not apply (a still is one frame). ``VideoError`` when there are no photos.
    """
    del frames
    val = _val_dir(pack_root, "val-stills")
    photos = _files(val / "photos", PHOTO_SUFFIXES)
    if not photos:
        raise VideoError(
            f"{SET_PREFIX}val-stills: {val / 'photos'} holds no png or jpg photos "
            "(run `make data` first)"
        )
    members = []
    for path in photos:
        still = _read_photo(path, size)
        if size is None:
            try:
                still = still_crop(still)
            except ValueError as err:
                raise VideoError(f"{path}: {err}") from None
        members.append((f"{SET_PREFIX}val-stills/{path.name}", still[np.newaxis]))
    return members


SETS: dict[str, SetBuilder] = {"val": val_set, "val-stills": val_stills_set}
"""Named sets of sources: ``set:NAME`` -> builder (see ``SetBuilder``)."""


def load_sources(
    sources: Sequence[str | os.PathLike[str]],
    frames: int | None = None,
    size: tuple[int, int] | None = None,
    pack_root: str | os.PathLike[str] = DEFAULT_PACK,
) -> list[EvalSource]:
    """Decode every source: a video file, a PNG folder, ``sample:NAME`` or ``set:NAME``.

    A video, folder or sample gives its first ``frames`` frames (default ``DEFAULT_FRAMES``),
    resized and centre-cropped to ``size`` = (width, height) when given; a named set gives its
    members (``SETS``, built from ``pack_root``). Raises ``VideoError`` naming the source when
    one is missing, unreadable, an unknown set, or has frames below ``MIN_SIDE``;
    ``ValueError`` for ``frames`` < 1 or an empty ``sources``.
    """
    if not sources:
        raise ValueError("name at least one source")
    if frames is not None and frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    loaded: list[EvalSource] = []
    for source in sources:
        text = os.fspath(source)
        if text.startswith(SET_PREFIX):
            name = text[len(SET_PREFIX) :]
            if name not in SETS:
                known = ", ".join(f"{SET_PREFIX}{k}" for k in sorted(SETS))
                raise VideoError(f"{text}: unknown set (known: {known})")
            members = SETS[name](Path(pack_root), frames, size)
            loaded += [EvalSource(member, clip) for member, clip in members]
        else:
            count = DEFAULT_FRAMES if frames is None else frames
            loaded.append(EvalSource(text, read_frames(text, max_frames=count, size=size)))
    for item in loaded:
        height, width = item.frames.shape[1:3]
        check_frame_size(width, height, item.name, MIN_SIDE, who="dhvc eval")
    return loaded


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
    mean_psnr, mean_ms_ssim = _quality(originals, decoded)
    bpp = 8 * sum(len(c) for c in coded) / (count * height * width)
    return {"qp": int(qp), "bpp": bpp, "psnr": mean_psnr, "ms_ssim": mean_ms_ssim}, version


def _bd_curves(
    anchor: Sequence[dict], test: Sequence[dict], metric: str
) -> tuple[list[tuple[np.ndarray, np.ndarray]] | None, str | None]:
    """The (rate, quality) arrays of both curves, sorted by rate, or (None, reason) when a
    Bjontegaard delta is undefined (see ``bd_rate``)."""
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
    (_, quality_a), (_, quality_t) = curves
    low, high = max(quality_a[0], quality_t[0]), min(quality_a[-1], quality_t[-1])
    if low >= high:
        return None, (
            f"{metric} ranges do not overlap: anchor {quality_a[0]:.2f}-{quality_a[-1]:.2f} dB, "
            f"test {quality_t[0]:.2f}-{quality_t[-1]:.2f} dB"
        )
    return curves, None


def _bd_delta(
    function: Callable, anchor: Sequence[dict], test: Sequence[dict], metric: str, what: str
) -> tuple[float | None, str | None]:
    curves, reason = _bd_curves(anchor, test, metric)
    if curves is None:
        return None, reason
    (rate_a, quality_a), (rate_t, quality_t) = curves
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = function(
            rate_a,
            quality_a,
            rate_t,
            quality_t,
            method="pchip",
            require_matching_points=False,
            min_overlap=0.0,
        )
    if not math.isfinite(value):
        return None, f"{what} on {metric} is not finite"
    return float(value), None


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
    return _bd_delta(bjontegaard.bd_rate, anchor, test, metric, "BD-rate")


def bd_quality(
    anchor: Sequence[dict], test: Sequence[dict], metric: str
) -> tuple[float | None, str | None]:
    """BD-PSNR (dB; BD-MS-SSIM in dB for ``ms_ssim``) of ``test`` against ``anchor``: the mean
    quality gain at matched rate (``bjontegaard.bd_psnr``, pchip), undefined as ``bd_rate``.
    Positive means ``test`` is better."""
    return _bd_delta(bjontegaard.bd_psnr, anchor, test, metric, "BD-quality")


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


METRICS = ("psnr", "ms_ssim")
"""Quality metrics of every rate point and BD-rate."""


def _bd_rates(codecs: dict[str, list[dict]], anchors: Sequence[str]) -> dict[str, dict]:
    """BD-rates of ``codecs["dhvc"]`` against each anchor's curve, with reasons and overlaps."""
    bd: dict[str, dict] = {}
    for anchor in anchors:
        entry: dict = {"reasons": {}, "overlap": {}}
        for metric in METRICS:
            value, reason = bd_rate(codecs[anchor], codecs["dhvc"], metric)
            entry[metric] = value
            entry["reasons"][metric] = reason
            entry["overlap"][metric] = _overlap(codecs[anchor], codecs["dhvc"], metric)
        bd[anchor] = entry
    return bd


def _summary(dhvc_points: Sequence[dict]) -> dict:
    rates = [p["bpp"] for p in dhvc_points]
    return {
        "dhvc_monotone": _monotone(dhvc_points),
        "dhvc_bpp_span": max(rates) / min(rates) if min(rates) > 0 else None,
    }


def set_average(entries: Sequence[dict], anchors: Sequence[str]) -> dict:
    """The set-average RD curves of per-source results, as codec papers report them.

    ``entries``: per-source results (``video``, ``codecs`` with the same lambdas and QPs in the
    same order, ``bd_rate``). Per lambda and per QP, the mean bpp, PSNR and MS-SSIM over the
    sources; then the BD-rates of the averaged curves (``bd_rate``) and, per anchor and metric,
    the mean of the per-source BD-rates over the sources where it is defined
    (``bd_rate_mean_of_sources``, with how many sources it covers and which were left out).
    """
    codecs: dict[str, list[dict]] = {}
    for codec in entries[0]["codecs"]:
        knob = "lambda" if codec == "dhvc" else "qp"
        curves = [e["codecs"][codec] for e in entries]
        codecs[codec] = [
            {knob: points[0][knob]}
            | {key: float(np.mean([p[key] for p in points])) for key in ("bpp", *METRICS)}
            for points in zip(*curves, strict=True)
        ]
    mean_bd: dict[str, dict] = {}
    for anchor in anchors:
        entry: dict = {"sources": {}, "left_out": {}}
        for metric in METRICS:
            values = [e["bd_rate"][anchor][metric] for e in entries]
            defined = [v for v in values if v is not None]
            entry[metric] = float(np.mean(defined)) if defined else None
            entry["sources"][metric] = len(defined)
            entry["left_out"][metric] = [
                e["video"] for e, v in zip(entries, values, strict=True) if v is None
            ]
        mean_bd[anchor] = entry
    return {
        "sources": len(entries),
        "codecs": codecs,
        "summary": _summary(codecs["dhvc"]),
        "bd_rate": _bd_rates(codecs, anchors),
        "bd_rate_mean_of_sources": mean_bd,
    }


def evaluate(
    video: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    frames: int | None,
    gop: int,
    lambdas: Sequence[float] | None,
    anchors: Sequence[str],
    model: DHVC,
    out_json: Path,
    size: tuple[int, int] | None = None,
    on_progress: Callable[[EvalProgress], None] | None = None,
    qps: Sequence[int] = DEFAULT_QPS,
    intra: bool = False,
    pack_root: str | os.PathLike[str] = DEFAULT_PACK,
) -> dict:
    """Rate-distortion points of DHVC and the anchors on one source or a set of sources.

    ``video``: one source or a sequence of them (video file, PNG folder, ``sample:NAME``,
    ``set:NAME``; see ``load_sources``, which reads ``frames`` frames of each, resized to
    ``size`` = (width, height) when given). A single source is a set of one. ``lambdas``: DHVC
    rate points (``None``: ``default_lambdas(model)``). ``anchors``: any of ``x264``, ``x265``.
    ``intra``: every frame an I frame for DHVC and the anchors (``gop`` must be 1).

    Writes the returned dict to ``out_json`` atomically. For one source its keys are video,
    frames, gop, intra, width, height, model, codecs, anchor_settings, bd_rate, and
    dhvc_settings, metrics, summary that describe them. For several, ``sources`` lists each
    source's video, frames, width, height, codecs, summary and bd_rate, ``set_average`` holds
    the averaged curves (``set_average``), and the top-level codecs, summary and bd_rate repeat
    the set average's (``video`` lists the sources, ``frames`` is their total, width and height
    appear when all sources share them). Raises ``VideoError`` for an unusable source or frames
    below ``MIN_SIDE``; ``ValueError`` for bad arguments. Nothing is written on an error.
    """
    unknown = [a for a in anchors if a not in ANCHORS]
    if unknown:
        raise ValueError(f"unknown anchor(s) {unknown}; choose from {sorted(ANCHORS)}")
    if (frames is not None and frames < 1) or gop < 1:
        raise ValueError(f"frames and gop must be >= 1, got frames={frames}, gop={gop}")
    if intra and gop != 1:
        raise ValueError(
            f"intra-only mode codes every frame as an I frame: gop must be 1, got {gop}"
        )
    if not qps:
        raise ValueError("qps must name at least one QP")
    lam_values = sorted(default_lambdas(model) if lambdas is None else [float(v) for v in lambdas])
    if not lam_values:
        raise ValueError("lambdas must name at least one value")
    specs = [video] if isinstance(video, str | os.PathLike) else list(video)
    sources = load_sources(specs, frames, size, pack_root)

    points_per_source = len(lam_values) + len(anchors) * len(qps)
    points_total = points_per_source * len(sources)
    point = 0
    settings = {anchor: anchor_settings(anchor, gop, qps, intra) for anchor in anchors}

    def report(index: int, codec: str, setting: str, done: int) -> None:
        if on_progress is not None:
            source = sources[index - 1]
            on_progress(
                EvalProgress(
                    codec=codec,
                    setting=setting,
                    frames_done=done,
                    frames_total=len(source.frames),
                    point=point,
                    points_total=points_total,
                    source=source.name,
                    source_index=index,
                    sources_total=len(sources),
                )
            )

    entries: list[dict] = []
    for index, source in enumerate(sources, start=1):
        originals = source.frames
        count, height, width = originals.shape[:3]
        codecs: dict[str, list[dict]] = {"dhvc": []}
        for lam in lam_values:
            point += 1
            on_frame = partial(report, index, "dhvc", f"lambda={lam:g}")
            codecs["dhvc"].append(evaluate_dhvc(model, originals, gop, lam, on_frame))
        for anchor in anchors:
            codecs[anchor] = []
            for qp in qps:
                point += 1
                result, version = evaluate_anchor(anchor, originals, gop, qp)
                settings[anchor]["encoder_version"] = version or settings[anchor]["encoder_version"]
                codecs[anchor].append(result)
                report(index, anchor, f"qp={qp}", count)
        entries.append(
            {
                "video": source.name,
                "frames": int(count),
                "width": int(width),
                "height": int(height),
                "codecs": codecs,
                "summary": _summary(codecs["dhvc"]),
                "bd_rate": _bd_rates(codecs, anchors),
            }
        )

    common = {
        "gop": int(gop),
        "intra": bool(intra),
        "model": {
            "model_id": getattr(model, "model_id", None),
            "preset": model.config.name,
            "lambda_min": model.config.lambda_min,
            "lambda_max": model.config.lambda_max,
            "aux_refinement": model.config.aux_refinement,
        },
        "dhvc_settings": {
            "lambdas": lam_values,
            "gop": int(gop),
            "intra_only": bool(intra),
            "bits": f"payload bytes of the {NUM_SCALES} scales + frame header "
            f"({FRAME_HEADER_BYTES} bytes/frame); .dhvc stream header not counted",
            "decoding": "Decoder with every scale received",
            "frame_kinds": "every frame I (intra only, gop 1); inter_intra_ratio is null"
            if intra
            else "I at multiples of gop, P otherwise; inter_intra_ratio = "
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
    }
    if len(entries) == 1:
        entry = entries[0]
        rd = {
            "video": entry["video"],
            "frames": entry["frames"],
            "gop": common["gop"],
            "intra": common["intra"],
            "width": entry["width"],
            "height": entry["height"],
            "model": common["model"],
            "codecs": entry["codecs"],
            "dhvc_settings": common["dhvc_settings"],
            "anchor_settings": common["anchor_settings"],
            "metrics": common["metrics"],
            "summary": entry["summary"],
            "bd_rate": entry["bd_rate"],
        }
    else:
        average = set_average(entries, anchors)
        common["metrics"]["set_average"] = (
            "per lambda and per QP the mean over sources of bpp, PSNR (dB) and MS-SSIM (0-1); "
            "bd_rate: BD-rates of the averaged curves; bd_rate_mean_of_sources: mean of the "
            "per-source BD-rates where defined"
        )
        sizes = {(e["width"], e["height"]) for e in entries}
        shared = dict(zip(("width", "height"), sizes.pop(), strict=True)) if len(sizes) == 1 else {}
        rd = {
            "video": ", ".join(os.fspath(v) for v in specs),
            "frames": sum(e["frames"] for e in entries),
            **shared,
            **common,
            "codecs": average["codecs"],
            "summary": average["summary"],
            "bd_rate": average["bd_rate"],
            "sources": entries,
            "set_average": average,
        }
    _write_json_atomically(Path(out_json), rd)
    return rd


def plot_rd(rd: dict, path_png: Path) -> Path:
    """Draw ``rd`` (an ``evaluate`` result) as PSNR-rate and MS-SSIM-rate curves into a PNG.

    One source: its curves. Several: the set-average curves (the top-level ``codecs`` of such a
    result). Uses only values already in ``rd`` (BD-rates go into the legend as written there).
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
    mode = "intra only" if rd.get("intra") else f"GOP {rd['gop']}"
    model = rd["model"].get("model_id")
    average = rd.get("set_average")
    if average is None:
        title = f"{Path(rd['video']).name}: {rd['frames']} frames, {rd['width']}x{rd['height']}"
    else:
        title = f"set average of {average['sources']} sources, {rd['frames']} frames"
        if len(rd["video"]) <= 40:
            title = f"{rd['video']}: {title}"
    figure.suptitle(f"{title}, {mode}, model {model}")
    path = Path(path_png)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
