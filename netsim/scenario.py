"""Scenario files: one YAML document that says everything about a run (DESIGN 4, STYLE 5).

A scenario is validated once by ``load_scenario`` into a frozen ``Scenario`` and passed down.
Unknown fields are errors; variants carry a ``kind`` tag (loss models, links); units are in the
field names. Paths in a scenario (video, trace, checkpoint) are relative to the scenario file;
videos may also be ``sample:NAME`` clips, and traces ``builtin:NAME`` files shipped in
``netsim/traces/``. ``load_scenario`` resolves them to absolute paths and checks that they exist.

Every user error becomes a ``ScenarioError`` whose message is one line naming the file and the
field, e.g. ``scenarios/x.yaml: network.forward.delay_ms: Input should be >= 0``.

Validation refuses every value the simulator cannot honour, so that a scenario that validates
also runs (issue 11): numbers are strict (``true`` or ``"12"`` is not a number) and finite, and
each has a bound that keeps the simulation finite (the ``MAX_*``/``MIN_*`` constants below); the
lambda must lie in the range of the model the scenario names (``check_lambda``), and the MTU
and FEC settings must be able to carry the largest scale the codec may produce at this frame
size (``check_packetization``). Scenario files are read up to ``MAX_SCENARIO_FILE_BYTES``.
"""

from __future__ import annotations

import functools
import math
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from codec.io.video import SAMPLE_PREFIX, VideoError, resolve_source
from codec.model.checkpoint import DEFAULT_CHECKPOINT, CheckpointError, read_checkpoint_header
from codec.model.config import DEFAULT_PRESET, ModelConfig, get_preset
from codec.types import NUM_SCALES, coded_size
from netsim.codecs.registry import DEFAULT_CODEC, codec_entry, codec_kinds
from netsim.loss import gilbert_parameters
from netsim.mahimahi import TraceFormatError, load_delivery_trace
from netsim.packet import HEADER_SIZE_BYTES, MAX_FRAGMENTS
from netsim.packing import PIECE_HEADER_BYTES, striped_layout
from netsim.queueing import QueueDiscipline

BUILTIN_PREFIX = "builtin:"
"""Prefix of trace files shipped with netsim (``netsim/traces/NAME``)."""

# ----------------------------------------------------------------------------- limits

MAX_SCENARIO_FILE_BYTES = 2**20
"""Largest scenario file read (1 MiB; a scenario is a few hundred bytes)."""

MAX_UDP_PAYLOAD_BYTES = 65507
"""Largest ``mtu_bytes``: the largest UDP payload over IPv4."""

MAX_DURATION_MS = 3_600_000.0
"""Longest delay, jitter, playout delay, encode, decode or echo time (one hour): keeps every
event time finite and exact to far below a microsecond."""

MIN_ECHO_TIMEOUT_MS = 1.0
"""Shortest echo timeout (1 ms): a tiny one becomes 0 s once converted, which the receiver
cannot wait for."""

MIN_FPS, MAX_FPS = 0.1, 1000.0
"""Frame rates accepted (frames per second)."""

MAX_FRAMES = 100_000
"""Most frames in one run (an hour at 25 frames/s is 90,000)."""

MAX_START_FRAME = 10_000_000
"""Latest first frame of the video to code (more than four days at 25 frames/s)."""

MAX_FRAME_INDEX = 2**32 - 1
"""Largest frame number a setting may name (loss windows, explicit losses, GOP length): the
packet header's 32-bit frame index."""

MIN_FRAME_SIDE_PX, MAX_FRAME_SIDE_PX = 16, 8192
"""Frame sides accepted (pixels); the codec pads each side to a multiple of 64."""

MIN_RATE_KBPS, MAX_RATE_KBPS = 1.0, 1e8
"""Bottleneck rates accepted: 1 kbit/s (a 1500-byte packet takes 12 s) to 100 Gbit/s."""

MAX_QUEUE_BYTES = 10**9
"""Largest bottleneck queue (1 GB)."""

MAX_SEED = 2**63 - 1
"""Largest random seed."""

MAX_CODED_BITS_PER_LATENT = 8
"""Bits per latent value that a scale's payload is budgeted at when checking that the MTU and
FEC settings can carry it (``check_packetization``).

A scale travels in at most ``MAX_FRAGMENTS`` packets, so a too small MTU fails only when a large
payload arrives. The range coder's hard worst case (a 24-bit tail symbol plus a 32-bit escape,
56 bits per value) would demand MTUs far above real ones, so the check budgets what coding
really produces, with margin: the shipped weights spend at most 1.3 bits per value at
``lambda_max`` on the sample clips and 5.2 on white noise; random weights about 2.9. A payload
beyond the budget still stops the run with one line naming ``sender.mtu_bytes``."""

RANGE_CODER_SLACK_BYTES = 8
"""Bytes a scale's payload may exceed its symbols' bits by (the coder writes whole 32-bit
words and flushes its state)."""

StrictInt = Annotated[int, Strict()]
"""An integer that is not a bool, a float or a string (``true``, ``1.0`` and ``"1"`` fail)."""

FiniteFloat = Annotated[float, Strict(), AllowInfNan(False)]
"""A finite number (an integer is accepted); not a bool or a string, never inf or NaN."""

StrictBool = Annotated[bool, Strict()]
"""``true`` or ``false``, not 0, 1 or a string."""

Scale = Annotated[StrictInt, Field(ge=1, le=NUM_SCALES)]
Duration = Annotated[FiniteFloat, Field(ge=0, le=MAX_DURATION_MS)]
FrameIndex = Annotated[StrictInt, Field(ge=0, le=MAX_FRAME_INDEX)]
Probability = Annotated[FiniteFloat, Field(ge=0, le=1)]
QueueBytes = Annotated[StrictInt, Field(ge=1, le=MAX_QUEUE_BYTES)]


class ScenarioError(ValueError):
    """A scenario that cannot be run; ``str()`` is one line naming the file and the field."""

    def __init__(self, path: Path | str | None, field: str | None, message: str) -> None:
        self.path = None if path is None else Path(path)
        self.field = field
        self.message = message
        where = [str(part) for part in (path, field) if part]
        line = ": ".join([*where, message])
        super().__init__(line.replace("\r", "\\r").replace("\n", "\\n"))


class FieldError(ValueError):
    """A check across sections that names the field at fault, ``field`` below the place where
    it is raised (a tuple of names, e.g. ``("codec", "lam")``)."""

    def __init__(self, field: tuple[str | int, ...], message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{'.'.join(str(part) for part in field)}: {message}")


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context or {}
    return Path(context.get("base_dir", Path.cwd()))


def _resolve_path(text: str, info: ValidationInfo) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (_base_dir(info) / path).resolve()


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# ----------------------------------------------------------------------------- video and codec


class VideoSpec(_Spec):
    """Which frames to code: ``frames`` frames of ``source`` from ``start_frame``, resized and
    centre-cropped to ``width_px`` x ``height_px``, shown at ``fps``."""

    source: str = "sample:bikes"
    width_px: StrictInt = Field(448, ge=MIN_FRAME_SIDE_PX, le=MAX_FRAME_SIDE_PX)
    height_px: StrictInt = Field(256, ge=MIN_FRAME_SIDE_PX, le=MAX_FRAME_SIDE_PX)
    frames: StrictInt = Field(32, ge=1, le=MAX_FRAMES)
    start_frame: StrictInt = Field(0, ge=0, le=MAX_START_FRAME)
    fps: FiniteFloat = Field(25.0, ge=MIN_FPS, le=MAX_FPS)

    @field_validator("source")
    @classmethod
    def _source_exists(cls, value: str, info: ValidationInfo) -> str:
        if not value.startswith(SAMPLE_PREFIX):
            value = str(_resolve_path(value, info))
        try:
            resolve_source(value)
        except VideoError as err:
            raise ValueError(str(err)) from None
        return value


X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)
"""Speed presets of x264 and x265 (both name them alike)."""

MAX_X265_SLICES = 64
"""Most slices per x265 picture (x265 cuts whole CTU rows; it clamps to the rows there are)."""

MIN_H26X_MTU_BYTES = HEADER_SIZE_BYTES + 1 + 2 + 64
"""Smallest ``mtu_bytes`` for x264/x265: the header, the framing byte, FEC's length field and
x264's smallest ``slice-max-size`` here (64 bytes)."""


class H26xSpec(_Spec):
    """x264/x265 settings (``codec.kind`` x264 or x265, DESIGN 4b): low delay (no B-frames,
    ``tune=zerolatency``), constant ``qp``, an I frame every ``codec.gop_frames`` frames and in
    answer to each picture-loss indication. ``x265_slices``: slices per x265 picture (x264's
    slices are sized to the MTU instead). ``intra_refresh`` (x264 only): a sweeping column of
    intra blocks instead of periodic I frames (a picture-loss indication is still answered
    with a whole I frame: libavcodec cannot start a sweep on request).
    ``matched_bitrate_kbps`` and ``matched_to`` record the rate matching: the DHVC run whose
    clean mean bitrate the QP was chosen to match and that bitrate (information only; a test
    checks the match)."""

    qp: StrictInt = Field(ge=0, le=51)
    preset: Literal[X264_PRESETS] = "medium"  # type: ignore[valid-type]
    x265_slices: StrictInt = Field(8, ge=1, le=MAX_X265_SLICES)
    intra_refresh: StrictBool = False
    matched_bitrate_kbps: FiniteFloat | None = Field(None, gt=0, le=MAX_RATE_KBPS)
    matched_to: str | None = Field(None, max_length=200)


class CodecSpec(_Spec):
    """The codec under test and its operating point. ``kind``: a codec of the registry
    (``netsim.codecs``): ``dhvc`` (the default), or ``x264``/``x265`` with their settings in
    ``h26x`` (DESIGN 4b); a kind's settings field is required for it and refused for the
    others. For DHVC, ``checkpoint``:
    ``default`` (shipped weights), ``none`` (random weights of ``preset``, for tests) or a path;
    ``lam`` is the paper's rate-distortion lambda, constant over the run, and must lie in the
    model's range (``check_lambda``). For every codec a frame whose index is a multiple of
    ``gop_frames`` is an I frame. ``recovery``: how the sender answers an echo, ``resync``
    (the paper's re-sync frame; x264/x265: an I frame) or ``mirror`` (DHVC: an ordinary inter
    frame coded against the decoder's state, rebuilt by the encoder, DESIGN 3). ``motion``:
    how DHVC's references follow the picture, ``blocks`` (its default: a block motion field
    per inter frame, DESIGN 3) or ``none`` (the paper's co-located references); x264 and x265
    compensate motion themselves and refuse the field."""

    kind: str = DEFAULT_CODEC
    h26x: H26xSpec | None = None
    checkpoint: str = "default"
    preset: str | None = None
    lam: FiniteFloat = Field(1024.0, gt=0)
    gop_frames: StrictInt = Field(32, ge=1, le=MAX_FRAME_INDEX)
    recovery: Literal["resync", "mirror"] = "resync"
    motion: Literal["blocks", "none"] | None = None

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint_exists(cls, value: str, info: ValidationInfo) -> str:
        if value in ("default", "none"):
            return value
        path = _resolve_path(value, info)
        if not path.is_file():
            raise ValueError(f"checkpoint file not found: {path}")
        return str(path)

    @field_validator("kind")
    @classmethod
    def _kind_is_registered(cls, value: str) -> str:
        if value not in codec_kinds():
            raise ValueError(f"unknown codec kind {value!r} (known: {', '.join(codec_kinds())})")
        return value

    @model_validator(mode="after")
    def _settings_match_kind(self) -> CodecSpec:
        entry = codec_entry(self.kind)
        for name in CODEC_SETTINGS_FIELDS:
            if getattr(self, name) is None or entry.settings_field == name:
                continue
            owners = [k for k in codec_kinds() if codec_entry(k).settings_field == name]
            raise FieldError((name,), f"only for kind {' or '.join(owners)}")
        if entry.settings_field is not None and getattr(self, entry.settings_field) is None:
            raise FieldError((entry.settings_field,), f"kind {self.kind} needs its settings")
        if self.recovery not in entry.recoveries:
            owners = [k for k in codec_kinds() if self.recovery in codec_entry(k).recoveries]
            raise FieldError(("recovery",), f"only for kind {' or '.join(owners)}")
        if self.motion is not None and self.motion not in entry.motions:
            owners = [k for k in codec_kinds() if self.motion in codec_entry(k).motions]
            raise FieldError(("motion",), f"only for kind {' or '.join(owners)}")
        entry.check_settings(self)
        return self


CODEC_SETTINGS_FIELDS = ("h26x",)
"""The fields of ``CodecSpec`` holding one kind's settings (``CodecEntry.settings_field``)."""


# ----------------------------------------------------------------------------- sender


class FecSpec(_Spec):
    """zfec protection of one scale: k data plus m parity packets (any k rebuild the scale)."""

    data_packets: StrictInt = Field(ge=1, le=MAX_FRAGMENTS)
    parity_packets: StrictInt = Field(ge=0, le=MAX_FRAGMENTS - 1)

    @model_validator(mode="after")
    def _fits_zfec(self) -> FecSpec:
        if self.data_packets + self.parity_packets > MAX_FRAGMENTS:
            raise ValueError(f"data_packets + parity_packets must be <= {MAX_FRAGMENTS}")
        return self


FEC_ALLOCATIONS = ("unequal", "striped")
"""How ``fec_budget`` spends its overhead: ``unequal`` (parity bytes per scale by importance,
``netsim.fec.allocate_unequal``) or ``striped`` (frame-level FEC in the packed layout,
``netsim.packing.pack_frame_striped``)."""


class FecBudgetSpec(_Spec):
    """One FEC overhead budget per frame (DESIGN 4). ``unequal``: parity bytes of at most
    ``overhead_fraction`` of each frame's payload bytes, spread over the scales by their
    importance (``netsim.fec.allocate_unequal``), assuming fragments are lost with
    ``design_loss_rate``. ``striped`` (needs ``packing: packed``): every scale striped over
    the frame's P data packets and ceil(``overhead_fraction`` * P) parity packets, the rule
    by which x264/x265 frames get theirs, so any that many lost packets are repaired
    (``netsim.packing.pack_frame_striped``; ``design_loss_rate`` unused)."""

    overhead_fraction: FiniteFloat = Field(gt=0, le=1)
    design_loss_rate: FiniteFloat = Field(0.1, gt=0, lt=1)
    allocation: Literal[FEC_ALLOCATIONS] = "unequal"  # type: ignore[valid-type]


PACKINGS = ("per_scale", "packed")
"""Packet layouts of DHVC: one scale per packet (the paper's Fig. 22) or scales packed in
order into as few packets as fit (``netsim.packing``)."""


class SenderSpec(_Spec):
    """Packetization. Scales above ``max_scales`` are never sent (progressive decoding,
    paper Fig. 11). ``encode_time_ms`` is the simulated encoding time (0: instantaneous).
    ``packing``: ``per_scale`` (the paper's layout, the default) or ``packed`` (DHVC only).
    FEC: per scale in ``fec``, or one budget spread over the scales by ``fec_budget`` (DHVC
    only), not both. ``mtu_bytes`` and ``fec`` must be able to carry every scale
    (``check_packetization``)."""

    mtu_bytes: StrictInt = Field(1200, ge=HEADER_SIZE_BYTES + 1, le=MAX_UDP_PAYLOAD_BYTES)
    max_scales: StrictInt = Field(NUM_SCALES, ge=1, le=NUM_SCALES)
    encode_time_ms: Duration = 0.0
    fec: dict[Scale, FecSpec] = Field(default_factory=dict)
    packing: Literal[PACKINGS] = "per_scale"  # type: ignore[valid-type]
    fec_budget: FecBudgetSpec | None = None

    @model_validator(mode="after")
    def _one_fec_setting(self) -> SenderSpec:
        if self.fec and self.fec_budget is not None:
            raise FieldError(("fec_budget",), "give fec or fec_budget, not both")
        budget = self.fec_budget
        if budget is not None and budget.allocation == "striped" and self.packing != "packed":
            raise FieldError(("fec_budget", "allocation"), "striped FEC needs packing: packed")
        return self


# ----------------------------------------------------------------------------- loss models


class NoLossSpec(_Spec):
    """A channel that loses nothing."""

    kind: Literal["none"] = "none"


class _WindowedLossSpec(_Spec):
    """Common to random loss models: frames ``first_frame``..``last_frame`` (inclusive; unset =
    open) are exposed, except packets of ``exempt_scales``."""

    first_frame: FrameIndex | None = None
    last_frame: FrameIndex | None = None
    exempt_scales: tuple[Scale, ...] = ()

    @model_validator(mode="after")
    def _window_ordered(self) -> _WindowedLossSpec:
        if (
            self.first_frame is not None
            and self.last_frame is not None
            and self.first_frame > self.last_frame
        ):
            first, last = self.first_frame, self.last_frame
            raise ValueError(f"first_frame {first} is after last_frame {last}")
        return self


class BernoulliLossSpec(_WindowedLossSpec):
    """Independent packet losses with probability ``loss_rate``."""

    kind: Literal["bernoulli"]
    loss_rate: Probability


class GilbertElliottLossSpec(_WindowedLossSpec):
    """netem's ``loss gemodel p r 1-h 1-k``: give ``p`` and ``r`` (optionally ``loss_in_bad`` =
    1-h, default 1, and ``loss_in_good`` = 1-k, default 0), or ``loss_rate`` with
    ``mean_burst_packets`` (the simple Gilbert model)."""

    kind: Literal["gilbert_elliott"]
    p: Probability | None = None
    r: Probability | None = None
    loss_in_bad: Probability | None = None
    loss_in_good: Probability | None = None
    loss_rate: FiniteFloat | None = Field(None, ge=0, lt=1)
    mean_burst_packets: FiniteFloat | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_parameterisation(self) -> GilbertElliottLossSpec:
        netem = (self.p, self.r, self.loss_in_bad, self.loss_in_good)
        simple = (self.loss_rate, self.mean_burst_packets)
        if any(v is not None for v in simple):
            if any(v is not None for v in netem):
                raise ValueError(
                    "give either p, r (, loss_in_bad, loss_in_good) or loss_rate "
                    "with mean_burst_packets, not both"
                )
            if self.loss_rate is None or self.mean_burst_packets is None:
                raise ValueError("loss_rate and mean_burst_packets go together")
            gilbert_parameters(self.loss_rate, self.mean_burst_packets)
        elif self.p is None or self.r is None:
            raise ValueError("needs p and r, or loss_rate and mean_burst_packets")
        return self


class ExplicitLossEntry(_Spec):
    """Lose the packets of ``scale`` of ``frame`` (only fragment ``fragment`` if given)."""

    frame: FrameIndex
    scale: Scale
    fragment: StrictInt | None = Field(None, ge=0, lt=MAX_FRAGMENTS)


class ExplicitLossSpec(_Spec):
    """Deterministic losses: exactly the listed packets (e.g. paper Fig. 13)."""

    kind: Literal["explicit"]
    packets: tuple[ExplicitLossEntry, ...] = Field(min_length=1)


LossSpec = Annotated[
    NoLossSpec | BernoulliLossSpec | GilbertElliottLossSpec | ExplicitLossSpec,
    Field(discriminator="kind"),
]


# ----------------------------------------------------------------------------- links


class _LinkSpec(_Spec):
    """Common to forward links: propagation delay, uniform jitter (+-), a loss model."""

    delay_ms: Duration = 0.0
    jitter_ms: Duration = 0.0
    loss: LossSpec = NoLossSpec()


class UnlimitedLinkSpec(_LinkSpec):
    """No bottleneck: every packet surviving the loss model arrives after the delay."""

    kind: Literal["unlimited"] = "unlimited"


class RateLinkSpec(_LinkSpec):
    """A bottleneck of constant ``rate_kbps`` behind a queue of ``queue_bytes``."""

    kind: Literal["rate"]
    rate_kbps: FiniteFloat = Field(ge=MIN_RATE_KBPS, le=MAX_RATE_KBPS)
    queue_bytes: QueueBytes = 64_000
    queue_discipline: QueueDiscipline = QueueDiscipline.HIGHEST_SCALE_FIRST


class TraceLinkSpec(_LinkSpec):
    """A bottleneck replaying a Mahimahi delivery trace (``builtin:NAME`` or a path)."""

    kind: Literal["trace"]
    trace_file: str
    queue_bytes: QueueBytes = 64_000
    queue_discipline: QueueDiscipline = QueueDiscipline.HIGHEST_SCALE_FIRST

    @field_validator("trace_file")
    @classmethod
    def _trace_usable(cls, value: str, info: ValidationInfo) -> str:
        path = resolve_trace_path(value, _base_dir(info))
        if not path.exists():
            raise ValueError(f"trace file not found: {path}")
        if path.is_dir():
            raise ValueError(f"trace file is a folder: {path}")
        try:
            load_delivery_trace(path)
        except (OSError, TraceFormatError) as err:
            raise ValueError(f"{path}: {err}") from None
        return str(path)


LinkSpec = Annotated[UnlimitedLinkSpec | RateLinkSpec | TraceLinkSpec, Field(discriminator="kind")]


def resolve_trace_path(value: str, base_dir: Path) -> Path:
    """``builtin:NAME`` -> ``netsim/traces/NAME``; a relative path -> under ``base_dir``."""
    if value.startswith(BUILTIN_PREFIX):
        name = value[len(BUILTIN_PREFIX) :]
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"{value!r}: a builtin trace is a plain file name")
        return Path(str(resources.files("netsim") / "traces" / name))
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base_dir / path).resolve()


class FeedbackSpec(_Spec):
    """The echo path. Its delay is ``delay_ms`` or ``delay_frames`` (frame periods), at most one
    of them (neither: 0). ``enabled: false`` means the receiver sends no echoes at all."""

    enabled: StrictBool = True
    delay_ms: Duration | None = None
    delay_frames: FiniteFloat | None = Field(None, ge=0, le=MAX_FRAMES)
    loss: LossSpec = NoLossSpec()

    @model_validator(mode="after")
    def _one_delay(self) -> FeedbackSpec:
        if self.delay_ms is not None and self.delay_frames is not None:
            raise ValueError("give delay_ms or delay_frames, not both")
        return self

    def delay_s(self, fps: float) -> float:
        """The echo delay in seconds at frame rate ``fps``."""
        if self.delay_frames is not None:
            return self.delay_frames / fps
        return (self.delay_ms or 0.0) / 1000.0


class NetworkSpec(_Spec):
    """The forward link (packets) and the feedback link (echoes)."""

    forward: LinkSpec = UnlimitedLinkSpec()
    feedback: FeedbackSpec = FeedbackSpec()


class ReceiverSpec(_Spec):
    """Frame i is decoded at i / fps + ``playout_delay_ms`` with what has arrived by then.
    ``decode_time_ms`` is the simulated decoding time; ``echo_timeout_ms`` (unset: never) is
    how long the receiver waits for a usable re-sync before repeating its echo.
    ``concealment``: ``off`` shows the decoder's picture (the paper); ``auto`` shows, where
    scale 1 was substituted, the last shown picture moved along the frame's own motion field
    (when scale 1 arrived but could not be decoded), the last decoded picture moved on along
    its motion (up to two frames) or the last shown picture (``netsim.concealment``, DESIGN 2;
    DHVC).
    ``decode_wait_ms`` (unset: the paper's rule, decode at the deadline) lets the receiver
    decode a frame, and send its echo, that long after the first packet of the frame or of a
    later one arrived, when that is before the deadline; packets of the frame that come later
    count as late. Every codec's receiver follows it."""

    playout_delay_ms: Duration = 100.0
    decode_time_ms: Duration = 0.0
    echo_timeout_ms: FiniteFloat | None = Field(None, ge=MIN_ECHO_TIMEOUT_MS, le=MAX_DURATION_MS)
    concealment: Literal["off", "auto"] = "off"
    decode_wait_ms: Duration | None = None


class Scenario(_Spec):
    """One run of the testbed: video, codec, sender, network and receiver settings, and the seed
    from which every random component draws its own generator."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)
    description: str = ""
    seed: StrictInt = Field(0, ge=0, le=MAX_SEED)
    video: VideoSpec = VideoSpec()
    codec: CodecSpec = CodecSpec()
    sender: SenderSpec = SenderSpec()
    network: NetworkSpec = NetworkSpec()
    receiver: ReceiverSpec = ReceiverSpec()

    _source_path: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _simulator_can_honour(self) -> Scenario:
        """Checks across sections: the echo delay in time, the lambda against the model, the
        MTU and FEC against the largest scale (each names the field at fault)."""
        feedback_delay_s = self.network.feedback.delay_s(self.video.fps)
        if feedback_delay_s * 1000.0 > MAX_DURATION_MS:
            field = "delay_frames" if self.network.feedback.delay_frames is not None else "delay_ms"
            raise FieldError(
                ("network", "feedback", field),
                f"an echo delay of {feedback_delay_s:g} s at {self.video.fps:g} frames/s is "
                f"longer than {MAX_DURATION_MS / 1000:g} s",
            )
        codec_entry(self.codec.kind).check_scenario(self)
        return self

    @property
    def source_path(self) -> Path | None:
        """The file this scenario was loaded from (None when built in code)."""
        return self._source_path


# ----------------------------------------------------------------------------- cross checks


def model_config_for(checkpoint: str, preset: str | None) -> ModelConfig:
    """The architecture a run with this ``codec.checkpoint`` and ``codec.preset`` will load
    (``codec.load_model``'s rules), read without building the model. Raises ``FieldError``
    naming ``checkpoint`` or ``preset``."""
    if checkpoint == "none":
        try:
            return get_preset(preset or DEFAULT_PRESET)
        except ValueError as err:
            raise FieldError(("preset",), str(err)) from None
    config, _ = _checkpoint_header(checkpoint)
    if preset is not None and preset != config.name:
        raise FieldError(
            ("preset",),
            f"checkpoint {_checkpoint_path(checkpoint)} holds preset {config.name!r}, "
            f"not {preset!r}",
        )
    return config


def expected_model_id(scenario: Scenario) -> str | None:
    """The model id a run of ``scenario`` records in its summary.json (``model.id``) when it
    loads the weights that are there now: the id stored in the checkpoint (``default``: the
    shipped file of today), ``<preset>-random`` for ``checkpoint: none``. ``None`` where the
    run's weights have no id to check against (x264/x265, a checkpoint that stores none).
    Raises ``FieldError`` naming ``checkpoint`` if the file cannot be read."""
    codec = scenario.codec
    if codec.kind != "dhvc":
        return None
    if codec.checkpoint == "none":
        return f"{codec.preset or DEFAULT_PRESET}-random"
    return _checkpoint_header(codec.checkpoint)[1]


def _checkpoint_path(checkpoint: str) -> Path:
    return DEFAULT_CHECKPOINT if checkpoint == "default" else Path(checkpoint)


def _checkpoint_header(checkpoint: str) -> tuple[ModelConfig, str | None]:
    """Config and model id of a scenario's checkpoint file (not ``none``); ``FieldError``."""
    path = _checkpoint_path(checkpoint)
    try:
        stat = path.stat()
        return _read_header(str(path), stat.st_mtime_ns, stat.st_size)
    except OSError as err:
        raise FieldError(("checkpoint",), f"{path}: {err.strerror or err}") from None
    except CheckpointError as err:
        raise FieldError(("checkpoint",), str(err)) from None


@functools.lru_cache(maxsize=16)
def _read_header(path: str, mtime_ns: int, size_bytes: int) -> tuple[ModelConfig, str | None]:
    """The config and model id stored in a checkpoint file, remembered per file version
    (reading one takes a tenth of a second, and sweeps check the same checkpoint many times)."""
    del mtime_ns, size_bytes  # part of the cache key only
    return read_checkpoint_header(Path(path))


def scale_budget_bytes(config: ModelConfig, width_px: int, height_px: int, scale: int) -> int:
    """Bytes scale ``scale`` of a ``width_px`` x ``height_px`` frame is budgeted at: its latent
    values at ``MAX_CODED_BITS_PER_LATENT`` bits each, plus ``RANGE_CODER_SLACK_BYTES``."""
    rows, columns = coded_size(height_px, width_px, scale)
    values = rows * columns * config.latent_channels[scale - 1]
    return math.ceil(values * MAX_CODED_BITS_PER_LATENT / 8) + RANGE_CODER_SLACK_BYTES


def check_h26x(sender: SenderSpec, video: VideoSpec) -> None:
    """``FieldError`` unless x264/x265 can run with these settings: even frame sides (4:2:0),
    ``mtu_bytes`` >= ``MIN_H26X_MTU_BYTES``, and FEC (if any) on layer 1 only, the one layer
    x264/x265 send."""
    for name, side in (("width_px", video.width_px), ("height_px", video.height_px)):
        if side % 2:
            raise FieldError(("video", name), f"x264/x265 need even frame sides, got {side}")
    if sender.mtu_bytes < MIN_H26X_MTU_BYTES:
        raise FieldError(
            ("sender", "mtu_bytes"),
            f"{sender.mtu_bytes} is too small for x264/x265 slices (at least {MIN_H26X_MTU_BYTES})",
        )
    if sender.packing != "per_scale":
        raise FieldError(("sender", "packing"), "x264/x265 send slice packets: per_scale only")
    if sender.fec_budget is not None:
        raise FieldError(("sender", "fec_budget"), "x264/x265 send one layer: use fec.1")
    for scale in sender.fec:
        if scale != 1:
            raise FieldError(
                ("sender", "fec", scale), "x264/x265 send one layer: protect layer 1 only"
            )


def check_packetization(sender: SenderSpec, video: VideoSpec, config: ModelConfig) -> None:
    """``FieldError`` naming ``mtu_bytes`` or ``fec.K`` unless every scale that is sent, at its
    budgeted size (``scale_budget_bytes``), fits the ``MAX_FRAGMENTS`` packets a scale may
    travel in, FEC parity included.

    The packetizer cuts a scale into ``ceil(bytes / (mtu_bytes - header))`` data packets; a
    k-of-(k+m) FEC code on a scale needing more than k of them grows its parity in proportion
    (``netsim.fec.FecParams.scaled_to``), which must still fit.
    """
    payload_bytes = sender.mtu_bytes - HEADER_SIZE_BYTES
    if sender.packing == "packed":
        payload_bytes -= PIECE_HEADER_BYTES
        if payload_bytes < 1:
            raise FieldError(("mtu_bytes",), f"{sender.mtu_bytes} leaves no room for a piece")
    size = f"{video.width_px}x{video.height_px}"
    scales = range(1, sender.max_scales + 1)
    budgets = {k: scale_budget_bytes(config, video.width_px, video.height_px, k) for k in scales}
    largest = max(scales, key=lambda k: budgets[k])
    if math.ceil(budgets[largest] / payload_bytes) > MAX_FRAGMENTS:
        needed = HEADER_SIZE_BYTES + math.ceil(budgets[largest] / MAX_FRAGMENTS)
        raise FieldError(
            ("mtu_bytes",),
            f"{sender.mtu_bytes} is too small for {size} frames: scale {largest} may carry up "
            f"to {budgets[largest]} bytes ({MAX_CODED_BITS_PER_LATENT} bits per latent value "
            f"of model {config.name!r}) and a scale travels in at most {MAX_FRAGMENTS} "
            f"packets; use mtu_bytes >= {needed} or smaller frames",
        )
    striped = sender.fec_budget is not None and sender.fec_budget.allocation == "striped"
    if (
        striped
        and striped_layout(
            list(budgets.values()), sender.mtu_bytes, sender.fec_budget.overhead_fraction
        )
        is None
    ):
        raise FieldError(
            ("mtu_bytes",),
            f"{sender.mtu_bytes} is too small for striped FEC on {size} frames: a frame may "
            f"carry up to {sum(budgets.values())} bytes and travels in at most "
            f"{MAX_FRAGMENTS} packets with its parity; raise mtu_bytes",
        )
    for scale in scales:
        budget = budgets[scale]
        data_packets = math.ceil(budget / payload_bytes)
        fec = sender.fec.get(scale)
        if fec is None or data_packets <= fec.data_packets:
            continue
        parity = math.ceil(fec.parity_packets * data_packets / fec.data_packets)
        if data_packets + parity > MAX_FRAGMENTS:
            code = f"{fec.data_packets}-of-{fec.data_packets + fec.parity_packets}"
            raise FieldError(
                ("fec", scale),
                f"scale {scale} of {size} frames may need {data_packets} data packets at "
                f"mtu_bytes {sender.mtu_bytes} (up to {budget} bytes), and the {code} code "
                f"then needs {parity} parity packets, more than {MAX_FRAGMENTS} in all; lower "
                "parity_packets relative to data_packets or raise mtu_bytes",
            )


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; raises ``ScenarioError`` (one line, file and field).

    At most ``MAX_SCENARIO_FILE_BYTES`` are read, so a device or a huge file is refused
    quickly. YAML is read with the safe loader plus two corrections: ``1e6`` is a number (as in
    YAML 1.2; YAML 1.1 makes it a string) and a key repeated in one mapping is an error (YAML
    1.1 silently keeps the last one).
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_SCENARIO_FILE_BYTES + 1)
        if len(raw) > MAX_SCENARIO_FILE_BYTES:
            raise ScenarioError(
                path, None, f"scenario file is larger than {MAX_SCENARIO_FILE_BYTES} bytes"
            )
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ScenarioError(path, None, f"cannot read scenario file: {reason}") from None
    try:
        data = yaml.load(text, Loader=_ScenarioLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(err, "problem", None) or "not valid YAML"
        raise ScenarioError(path, where, f"invalid YAML: {problem}") from None
    except RecursionError:
        raise ScenarioError(path, None, "invalid YAML: nested too deeply") from None
    except (ValueError, OverflowError) as err:  # e.g. an integer of more than 4300 digits
        raise ScenarioError(path, None, f"invalid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ScenarioError(path, None, "a scenario must be a YAML mapping of fields")
    try:
        scenario = Scenario.model_validate(data, context={"base_dir": path.parent.resolve()})
    except ValidationError as err:
        raise scenario_error_from_validation(path, err, data) from None
    except RecursionError:
        raise ScenarioError(path, None, "a field is nested too deeply") from None
    scenario._source_path = path
    return scenario


class _ScenarioLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads ``1e6`` as a number and refuses repeated keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue  # unhashable keys are the base class's; merged keys may be overridden
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_ScenarioLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def scenario_error_from_validation(
    path: Path | None, err: ValidationError, data: Any
) -> ScenarioError:
    """The first validation error as one line naming the field (``+N more`` if there are more).

    An unknown field is reported before any other error: a misspelt name (``los_rate``) also
    leaves the real field missing, and the misspelling is what the user must see.
    """
    errors = err.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(first["loc"])
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        loc, message = (*loc, *cause.field), cause.message
    else:
        message = _message(first)
    field = _field_name(loc, data) or None
    if err.error_count() > 1:
        message += f" (+{err.error_count() - 1} more)"
    return ScenarioError(path, field, message)


def _field_name(loc: tuple[int | str, ...], data: Any) -> str:
    """The dotted field path of ``loc`` as the user wrote it (union tags dropped)."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(node, dict) and item in node:
            parts.append(str(item))
            node = node[item]
        elif isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
            parts[-1:] = [f"{parts[-1]}[{item}]" if parts else f"[{item}]"]
            node = node[item]
        elif item == "[key]" or (isinstance(node, dict) and node.get("kind") == item):
            continue  # pydantic's marks for a mapping key or a tagged union's chosen variant
        else:
            parts.append(str(item))  # a missing field: absent from the data, still named
            node = None
    return ".".join(parts)


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_not_found":
        tag = str(error.get("ctx", {}).get("discriminator", "'kind'")).strip("'")
        return f"needs a '{tag}' field saying which variant this is (see docs/SCENARIOS.md)"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    value = error.get("input")
    if kind not in ("union_tag_invalid", "union_tag_not_found") and isinstance(
        value, int | float | str
    ):
        shown = repr(value) if not isinstance(value, int) or abs(value) < 10**30 else "a huge int"
        message += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
    return " ".join(message.split())
