"""x264 and x265 as real-time codecs, one picture at a time, through PyAV (DESIGN 4b).

``dhvc eval`` runs the two as clean RD anchors (``codec.rd.anchors``); this module runs them as a
video call would, so that netsim can send them through the same lossy network as DHVC:

* **Low delay.** Every ``encode`` call returns the whole coded picture at once: no B-frames,
  ``tune=zerolatency`` (no lookahead, no frame threads), constant QP, an I frame every
  ``gop_frames`` frames and on request (``force_idr``; x264 and libavcodec's libx265 wrapper
  both with ``forced-idr=1``, so a requested I frame is an IDR that cuts every reference).
* **Slices sized to the network.** x264 closes a slice once it would exceed ``slice_max_bytes``
  (``slice-max-size``), so each slice NAL unit fits one packet. x265 has no such option: it
  cuts each picture into ``x265_slices`` slices of whole CTU rows (CTU 32, so a 256-line
  picture has 8 rows); netsim then splits a NAL unit that is larger than a packet over several
  packets, and losing one of them loses the NAL unit (``netsim.slices``).
* **Byte-deterministic.** One thread everywhere (x264 ``threads=1``; x265 ``pools=1``,
  ``frame-threads=1``: wavefront decoding is bit-exact whatever the thread count, and with
  ``pools=none`` libx265 delays its output by one picture), no SEI in the output (its option
  strings are not needed to decode), fixed settings listed by ``H26xSettings.options``.
* **Decoding what arrived.** ``H26xDecoder.decode`` takes whatever NAL units of a picture
  arrived, in order, and lets FFmpeg decode them: the H.264 decoder conceals missing slices
  (``error_concealment`` guess_mvs + deblock: motion vectors of neighbours, or the co-located
  pixels of the previous picture); FFmpeg's HEVC decoder has no concealment, so missing CTUs
  of an HEVC picture keep what its frame buffer held. When no slice of a picture can be
  decoded (none arrived, or the parameter sets they need never did) ``decode`` returns None and
  the caller repeats the last picture (a freeze).

Colour: RGB -> yuv420p and back with swscale's defaults, as the anchors do; frames must have
even sides (netsim scenarios do).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

import av
import numpy as np

from codec.h26x.nal import SEI_NAL_TYPES, STANDARD_CODECS, nal_units
from codec.h26x.nal import nal_type as annex_b_nal_type

MIN_QP, MAX_QP = 0, 51
"""Constant QPs accepted (H.264 and HEVC 8-bit range)."""

X265_CTU_PX = 32
"""x265's CTU size here: slices are whole CTU rows, so smaller CTUs allow more slices."""

START_CODE = b"\x00\x00\x00\x01"

_SEI_TYPES = SEI_NAL_TYPES
_PARAMETER_SET_TYPES = {"x264": {7, 8}, "x265": {32, 33, 34}}
_IDR_TYPES = {"x264": {5}, "x265": {19, 20}}


class H26xError(ValueError):
    """Settings the encoder cannot run with (unknown codec, odd frame sides, bad QP)."""


@dataclass(frozen=True)
class H26xSettings:
    """Everything an x264/x265 encoder of this module runs with.

    ``qp``: constant QP (the rate knob; netsim matches it to a DHVC run's bitrate).
    ``gop_frames``: an I frame every that many frames (IDR). ``slice_max_bytes``: x264's
    ``slice-max-size`` (bytes of a slice NAL unit; netsim sets it to the packet payload minus
    its framing byte). ``x265_slices``: slices per x265 picture (CTU rows are split evenly).
    ``intra_refresh``: x264 only: periodic intra refresh (a column of intra macroblocks that
    sweeps the picture every ``gop_frames`` frames) instead of periodic IDR frames. A forced
    I frame is still a whole I frame then: libavcodec offers no call to start a refresh
    sweep on request (x264's ``x264_encoder_intra_refresh``), so a PLI is answered alike.
    """

    codec: str
    qp: int
    gop_frames: int = 32
    slice_max_bytes: int = 1150
    x265_slices: int = 8
    intra_refresh: bool = False
    preset: str = "medium"
    fps: int = 25

    def __post_init__(self) -> None:
        if self.codec not in STANDARD_CODECS:
            raise H26xError(f"unknown codec {self.codec!r} (x264 or x265)")
        if not MIN_QP <= self.qp <= MAX_QP:
            raise H26xError(f"qp {self.qp} outside {MIN_QP}..{MAX_QP}")
        if self.gop_frames < 1 or self.slice_max_bytes < 64 or self.x265_slices < 1:
            raise H26xError("need gop_frames >= 1, slice_max_bytes >= 64, x265_slices >= 1")
        if self.intra_refresh and self.codec != "x264":
            raise H26xError("intra refresh is an x264 option here")

    def options(self) -> dict[str, str]:
        """The PyAV (libavcodec) options the encoder is opened with."""
        keyint = f"keyint={self.gop_frames}:min-keyint={self.gop_frames}:scenecut=0:bframes=0"
        if self.codec == "x264":
            params = f"{keyint}:slice-max-size={self.slice_max_bytes}:threads=1:repeat-headers=1"
            if self.intra_refresh:
                params += ":intra-refresh=1"
            return {
                "preset": self.preset,
                "tune": "zerolatency",
                "qp": str(self.qp),
                "forced-idr": "1",
                "x264-params": params,
            }
        params = (
            f"qp={self.qp}:{keyint}:slices={self.x265_slices}:ctu={X265_CTU_PX}"
            ":repeat-headers=1:pools=1:frame-threads=1:log-level=error"
        )
        return {
            "preset": self.preset,
            "tune": "zerolatency",
            "forced-idr": "1",
            "x265-params": params,
        }


@dataclass(frozen=True)
class CodedPicture:
    """One coded picture: its NAL units in decoding order (each with a 4-byte start code;
    parameter sets first on I frames, SEI removed) and whether it is an I frame (IDR, or a
    also under intra refresh)."""

    frame_index: int
    intra: bool
    nal_units: tuple[bytes, ...]

    @property
    def size_bytes(self) -> int:
        """Bytes of the picture's NAL units (start codes included: 4 per unit)."""
        return sum(len(unit) for unit in self.nal_units)


def split_nal_units(annex_b: bytes) -> list[bytes]:
    """The NAL units of an Annex B stream (``codec.h26x.nal.nal_units``), each re-prefixed with
    a 4-byte start code, with trailing zero bytes between units dropped."""
    units = nal_units(annex_b)
    bodies = [unit[unit.index(b"\x00\x00\x01") + 3 :] for unit in units]
    last = len(bodies) - 1
    return [START_CODE + (b if i == last else b.rstrip(b"\x00")) for i, b in enumerate(bodies)]


def nal_type(codec: str, unit: bytes) -> int:
    """The NAL unit type of ``unit`` (which starts with a start code)."""
    return annex_b_nal_type(unit, codec)


def is_parameter_set(codec: str, unit: bytes) -> bool:
    """Whether ``unit`` is a VPS, SPS or PPS."""
    return nal_type(codec, unit) in _PARAMETER_SET_TYPES[codec]


class H26xEncoder:
    """Codes RGB pictures (H x W x 3 uint8, even sides) one at a time, in order."""

    def __init__(self, settings: H26xSettings, *, width: int, height: int) -> None:
        if width % 2 or height % 2:
            raise H26xError(f"frame sides must be even, got {width}x{height}")
        self.settings = settings
        self.width, self.height = width, height
        self._context = av.CodecContext.create(STANDARD_CODECS[settings.codec][0], "w")
        self._context.width, self._context.height = width, height
        self._context.pix_fmt = "yuv420p"
        self._context.time_base = Fraction(1, settings.fps)
        self._context.framerate = Fraction(settings.fps)
        self._context.thread_count = 1
        self._context.options = settings.options()
        self._submitted = 0
        self._released_count = 0
        self._forced: dict[int, bool] = {}

    @property
    def delay_pictures(self) -> int:
        """Pictures the encoder holds back: libx265 with several slices returns picture i only
        once picture i + 1 was submitted (with ``pools=none`` too); x264 returns each at once."""
        return 1 if self.settings.codec == "x265" and self.settings.x265_slices > 1 else 0

    def encode(self, rgb: np.ndarray, *, force_idr: bool = False) -> list[CodedPicture]:
        """Submit the next picture; ``force_idr`` makes it an I frame. Returns the pictures
        the encoder released (picture i itself when ``delay_pictures`` is 0; the one before
        it, or nothing at first, when it is 1)."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(format="yuv420p")
        frame.pts = self._submitted
        if force_idr:
            frame.pict_type = av.video.frame.PictureType.I
        self._forced[self._submitted] = force_idr
        self._submitted += 1
        return self._released(self._context.encode(frame))

    def flush(self) -> list[CodedPicture]:
        """End the stream: the pictures still held back."""
        return self._released(self._context.encode(None))

    def _released(self, packets: list[av.Packet]) -> list[CodedPicture]:
        codec = self.settings.codec
        pictures = []
        for packet in packets:
            units = [
                u
                for u in split_nal_units(bytes(packet))
                if nal_type(codec, u) not in _SEI_TYPES[codec]
            ]
            idr = any(nal_type(codec, u) in _IDR_TYPES[codec] for u in units)
            index = self._released_count
            intra = bool(packet.is_keyframe) or idr or self._forced.pop(index, False)
            pictures.append(CodedPicture(index, intra, tuple(units)))
            self._released_count += 1
        return pictures


@dataclass(frozen=True)
class DecodedPicture:
    """What ``H26xDecoder.decode`` made of one picture's NAL units: the picture (H x W x 3
    uint8), or None when nothing of it could be decoded."""

    rgb: np.ndarray | None


class H26xDecoder:
    """Decodes pictures one at a time from whichever of their NAL units arrived."""

    def __init__(self, codec: str, *, width: int, height: int) -> None:
        if codec not in STANDARD_CODECS:
            raise H26xError(f"unknown codec {codec!r} (x264 or x265)")
        self.codec = codec
        self.width, self.height = width, height
        self._context = av.CodecContext.create(STANDARD_CODECS[codec][1], "r")
        self._context.thread_count = 1
        self._context.flags |= av.codec.context.Flags.low_delay

    def decode(self, nal_units: Sequence[bytes]) -> DecodedPicture:
        """Decode the NAL units that arrived of one picture (in decoding order, each with its
        start code). Returns the picture FFmpeg made of them, or ``rgb=None`` when it made
        none; never raises for damaged or incomplete input."""
        if not nal_units:
            return DecodedPicture(None)
        try:
            frames = self._context.decode(av.Packet(b"".join(nal_units)))
        except (av.error.FFmpegError, ValueError):
            return DecodedPicture(None)
        if not frames:
            return DecodedPicture(None)
        rgb = frames[-1].to_ndarray(format="rgb24")
        if rgb.shape[:2] != (self.height, self.width):
            return DecodedPicture(None)
        return DecodedPicture(rgb)


def encode_clip(settings: H26xSettings, originals: np.ndarray) -> list[CodedPicture]:
    """Code every frame of ``originals`` (N x H x W x 3 uint8) without loss or requests."""
    height, width = originals.shape[1:3]
    encoder = H26xEncoder(settings, width=width, height=height)
    pictures = [picture for rgb in originals for picture in encoder.encode(rgb)]
    return pictures + encoder.flush()


def clip_bitrate_kbps(pictures: Sequence[CodedPicture], fps: float) -> float:
    """Mean bitrate of coded pictures (NAL unit bytes, start codes included) in kbit/s."""
    return 8 * sum(p.size_bytes for p in pictures) / len(pictures) * fps / 1000.0


@dataclass(frozen=True)
class RateMatch:
    """The QP whose clean bitrate is nearest a target, found by ``match_qp``."""

    qp: int
    bitrate_kbps: float
    target_kbps: float

    @property
    def ratio(self) -> float:
        """Matched bitrate over the target."""
        return self.bitrate_kbps / self.target_kbps


def match_qp(
    settings: H26xSettings,
    originals: np.ndarray,
    target_kbps: float,
    *,
    bitrate: Callable[[H26xSettings, np.ndarray], float] | None = None,
) -> RateMatch:
    """The constant QP whose clean mean bitrate over ``originals`` is nearest ``target_kbps``.

    Bitrate falls monotonically with QP (for these settings), so a bisection over the integer
    QPs finds the pair that brackets the target; the nearer of the two (in log rate) wins.
    ``bitrate(settings, originals)`` measures one QP (default: ``encode_clip`` and
    ``clip_bitrate_kbps`` at ``settings.fps``).
    """
    if not math.isfinite(target_kbps) or target_kbps <= 0:
        raise ValueError(f"target bitrate must be positive, got {target_kbps}")
    if bitrate is None:

        def bitrate(s: H26xSettings, clip: np.ndarray) -> float:
            return clip_bitrate_kbps(encode_clip(s, clip), s.fps)

    measured: dict[int, float] = {}

    def rate(qp: int) -> float:
        if qp not in measured:
            measured[qp] = bitrate(replace(settings, qp=qp), originals)
        return measured[qp]

    low, high = MIN_QP, MAX_QP  # rate(low) >= target >= rate(high) unless outside the range
    if rate(high) >= target_kbps:
        return RateMatch(high, rate(high), target_kbps)
    if rate(low) <= target_kbps:
        return RateMatch(low, rate(low), target_kbps)
    while high - low > 1:
        middle = (low + high) // 2
        if rate(middle) >= target_kbps:
            low = middle
        else:
            high = middle
    best = min((low, high), key=lambda qp: abs(math.log(rate(qp) / target_kbps)))
    return RateMatch(best, rate(best), target_kbps)
