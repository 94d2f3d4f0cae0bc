"""Scenario files: one YAML document that says everything about a run (DESIGN 4, STYLE 5).

A scenario is validated once by ``load_scenario`` into a frozen ``Scenario`` and passed down.
Unknown fields are errors; variants carry a ``kind`` tag (loss models, links); units are in the
field names. Paths in a scenario (video, trace, checkpoint) are relative to the scenario file;
videos may also be ``sample:NAME`` clips, and traces ``builtin:NAME`` files shipped in
``netsim/traces/``. ``load_scenario`` resolves them to absolute paths and checks that they exist.

Every user error becomes a ``ScenarioError`` whose message is one line naming the file and the
field, e.g. ``scenarios/x.yaml: network.forward.delay_ms: Input should be >= 0``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from codec.types import NUM_SCALES
from codec.video import SAMPLE_PREFIX, VideoError, resolve_source
from netsim.loss import gilbert_parameters
from netsim.mahimahi import TraceFormatError, load_delivery_trace
from netsim.packet import HEADER_SIZE_BYTES, MAX_FRAGMENTS
from netsim.queueing import QueueDiscipline

BUILTIN_PREFIX = "builtin:"
"""Prefix of trace files shipped with netsim (``netsim/traces/NAME``)."""

MAX_UDP_PAYLOAD_BYTES = 65507

Scale = Annotated[int, Field(ge=1, le=NUM_SCALES)]


class ScenarioError(ValueError):
    """A scenario that cannot be run; ``str()`` is one line naming the file and the field."""

    def __init__(self, path: Path | str | None, field: str | None, message: str) -> None:
        self.path = None if path is None else Path(path)
        self.field = field
        self.message = message
        where = [str(part) for part in (path, field) if part]
        super().__init__(": ".join([*where, message]))


def _base_dir(info: ValidationInfo) -> Path:
    context = info.context or {}
    return Path(context.get("base_dir", Path.cwd()))


def _resolve_path(text: str, info: ValidationInfo) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (_base_dir(info) / path).resolve()


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ----------------------------------------------------------------------------- video and codec


class VideoSpec(_Spec):
    """Which frames to code: ``frames`` frames of ``source`` from ``start_frame``, resized and
    centre-cropped to ``width_px`` x ``height_px``, shown at ``fps``."""

    source: str = "sample:bikes"
    width_px: int = Field(448, ge=16)
    height_px: int = Field(256, ge=16)
    frames: int = Field(32, ge=1)
    start_frame: int = Field(0, ge=0)
    fps: float = Field(25.0, gt=0)

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


class CodecSpec(_Spec):
    """The model and its operating point. ``checkpoint``: ``default`` (shipped weights),
    ``none`` (random weights of ``preset``, for tests) or a path; ``lam`` is the paper's
    rate-distortion lambda, constant over the run; a frame whose index is a multiple of
    ``gop_frames`` is an I frame."""

    checkpoint: str = "default"
    preset: str | None = None
    lam: float = Field(1024.0, gt=0)
    gop_frames: int = Field(32, ge=1)

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint_exists(cls, value: str, info: ValidationInfo) -> str:
        if value in ("default", "none"):
            return value
        path = _resolve_path(value, info)
        if not path.is_file():
            raise ValueError(f"checkpoint file not found: {path}")
        return str(path)


# ----------------------------------------------------------------------------- sender


class FecSpec(_Spec):
    """zfec protection of one scale: k data plus m parity packets (any k rebuild the scale)."""

    data_packets: int = Field(ge=1)
    parity_packets: int = Field(ge=0)

    @model_validator(mode="after")
    def _fits_zfec(self) -> FecSpec:
        if self.data_packets + self.parity_packets > MAX_FRAGMENTS:
            raise ValueError(f"data_packets + parity_packets must be <= {MAX_FRAGMENTS}")
        return self


class SenderSpec(_Spec):
    """Packetization. Scales above ``max_scales`` are never sent (progressive decoding,
    paper Fig. 11). ``encode_time_ms`` is the simulated encoding time (0: instantaneous)."""

    mtu_bytes: int = Field(1200, ge=HEADER_SIZE_BYTES + 1, le=MAX_UDP_PAYLOAD_BYTES)
    max_scales: int = Field(NUM_SCALES, ge=1, le=NUM_SCALES)
    encode_time_ms: float = Field(0.0, ge=0)
    fec: dict[Scale, FecSpec] = Field(default_factory=dict)


# ----------------------------------------------------------------------------- loss models


class NoLossSpec(_Spec):
    """A channel that loses nothing."""

    kind: Literal["none"] = "none"


class _WindowedLossSpec(_Spec):
    """Common to random loss models: frames ``first_frame``..``last_frame`` (inclusive; unset =
    open) are exposed, except packets of ``exempt_scales``."""

    first_frame: int | None = Field(None, ge=0)
    last_frame: int | None = Field(None, ge=0)
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
    loss_rate: float = Field(ge=0, le=1)


class GilbertElliottLossSpec(_WindowedLossSpec):
    """netem's ``loss gemodel p r 1-h 1-k``: give ``p`` and ``r`` (optionally ``loss_in_bad`` =
    1-h, default 1, and ``loss_in_good`` = 1-k, default 0), or ``loss_rate`` with
    ``mean_burst_packets`` (the simple Gilbert model)."""

    kind: Literal["gilbert_elliott"]
    p: float | None = Field(None, ge=0, le=1)
    r: float | None = Field(None, ge=0, le=1)
    loss_in_bad: float | None = Field(None, ge=0, le=1)
    loss_in_good: float | None = Field(None, ge=0, le=1)
    loss_rate: float | None = Field(None, ge=0, lt=1)
    mean_burst_packets: float | None = Field(None, ge=1)

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

    frame: int = Field(ge=0)
    scale: Scale
    fragment: int | None = Field(None, ge=0)


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

    delay_ms: float = Field(0.0, ge=0)
    jitter_ms: float = Field(0.0, ge=0)
    loss: LossSpec = NoLossSpec()


class UnlimitedLinkSpec(_LinkSpec):
    """No bottleneck: every packet surviving the loss model arrives after the delay."""

    kind: Literal["unlimited"] = "unlimited"


class RateLinkSpec(_LinkSpec):
    """A bottleneck of constant ``rate_kbps`` behind a queue of ``queue_bytes``."""

    kind: Literal["rate"]
    rate_kbps: float = Field(gt=0)
    queue_bytes: int = Field(64_000, ge=1)
    queue_discipline: QueueDiscipline = QueueDiscipline.HIGHEST_SCALE_FIRST


class TraceLinkSpec(_LinkSpec):
    """A bottleneck replaying a Mahimahi delivery trace (``builtin:NAME`` or a path)."""

    kind: Literal["trace"]
    trace_file: str
    queue_bytes: int = Field(64_000, ge=1)
    queue_discipline: QueueDiscipline = QueueDiscipline.HIGHEST_SCALE_FIRST

    @field_validator("trace_file")
    @classmethod
    def _trace_usable(cls, value: str, info: ValidationInfo) -> str:
        path = resolve_trace_path(value, _base_dir(info))
        if not path.is_file():
            raise ValueError(f"trace file not found: {path}")
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

    enabled: bool = True
    delay_ms: float | None = Field(None, ge=0)
    delay_frames: float | None = Field(None, ge=0)
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
    how long the receiver waits for a usable re-sync before repeating its echo."""

    playout_delay_ms: float = Field(100.0, ge=0)
    decode_time_ms: float = Field(0.0, ge=0)
    echo_timeout_ms: float | None = Field(None, gt=0)


class Scenario(_Spec):
    """One run of the testbed: video, codec, sender, network and receiver settings, and the seed
    from which every random component draws its own generator."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)
    description: str = ""
    seed: int = Field(0, ge=0)
    video: VideoSpec = VideoSpec()
    codec: CodecSpec = CodecSpec()
    sender: SenderSpec = SenderSpec()
    network: NetworkSpec = NetworkSpec()
    receiver: ReceiverSpec = ReceiverSpec()

    _source_path: Path | None = PrivateAttr(default=None)

    @property
    def source_path(self) -> Path | None:
        """The file this scenario was loaded from (None when built in code)."""
        return self._source_path


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; raises ``ScenarioError`` (one line, file and field)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ScenarioError(path, None, f"cannot read scenario file: {reason}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        problem = getattr(err, "problem", None) or "not valid YAML"
        raise ScenarioError(path, where, f"invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ScenarioError(path, None, "a scenario must be a YAML mapping of fields")
    try:
        scenario = Scenario.model_validate(data, context={"base_dir": path.parent.resolve()})
    except ValidationError as err:
        raise scenario_error_from_validation(path, err, data) from None
    scenario._source_path = path
    return scenario


def scenario_error_from_validation(
    path: Path | None, err: ValidationError, data: Any
) -> ScenarioError:
    """The first validation error as one line naming the field (``+N more`` if there are more)."""
    first = err.errors()[0]
    field = _field_name(first["loc"], data) or None
    message = _message(first)
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
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    value = error.get("input")
    if kind not in ("union_tag_invalid", "union_tag_not_found") and isinstance(
        value, int | float | str
    ):
        message += f" (got {value!r})"
    return " ".join(message.split())
