"""The DHVC codec adapter (DESIGN 1-3, 4b): four scales, one bitstream each.

``DhvcAdapter`` drives any ``FrameEncoder`` (``DhvcFrameEncoder`` over ``codec.Encoder`` in a
run, codec-free stand-ins in tests) and ``FrameDecoder`` (``codec.Decoder``). Its frames travel
as scale packets (``netsim.packetizer``): every fragment of a scale must arrive (or FEC rebuild
it) for the scale to count as received; the decoder substitutes the mean for what is missing
and reports D; an echo (f, j) asks for a re-sync from scale j (``EchoRecovery``), or with
``codec.recovery: mirror`` for a mirrored recovery frame against the decoder's state
(``MirrorRecovery``, DESIGN 3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

import numpy as np

from codec import DHVC as DhvcModel
from codec import CheckpointError, Decoder, Encoder, load_model
from codec.model.config import check_lambda
from codec.types import (
    NUM_SCALES,
    DecodedFrame,
    EncodedFrame,
    FrameType,
    ReceivedFrame,
    ScaleOutcome,
)
from netsim.codecs.base import Assembled, EchoRecovery, ModelInfo, ShownPicture
from netsim.codecs.registry import DHVC, CodecEntry, register_codec
from netsim.concealment import Concealment
from netsim.damage import ShownKind
from netsim.fec import FecParams, allocate_unequal
from netsim.packet import HEADER_SIZE_BYTES, MAX_FRAGMENTS, Packet
from netsim.packetizer import assemble_scale, fits_scale_header, max_payload_bytes, packetize
from netsim.packing import (
    PIECE_HEADER_BYTES,
    fits_piece,
    pack_frame,
    pack_frame_striped,
    piece_payload_bytes,
)
from netsim.reassembly import FrameAssembly
from netsim.trace import SentFrame

if TYPE_CHECKING:
    from netsim.scenario import CodecSpec, Scenario


if TYPE_CHECKING:
    from netsim.feedback import Echo


class MirrorRequest(NamedTuple):
    """Ask for a mirrored recovery frame against the decoder state (``frame_index``,
    ``scale``) or the state it kept from before frame ``frame_index`` (DESIGN 3)."""

    frame_index: int
    scale: int


class MirrorRecovery(EchoRecovery):
    """The sender's answer to feedback under ``codec.recovery: mirror`` (DESIGN 3).

    An echo that names a mirrorable state (f, j) (``Echo.desynced_since``) asks for an M frame
    (``MirrorRequest``: ``DhvcFrameEncoder`` codes it against the state the decoder kept from
    before f when it can, else against (f, j)); the encoder falls back to a re-sync from j when
    it can rebuild neither. An echo without one (D dropped twice, or the decoder refused an M
    frame while in sync) asks for a re-sync as ``EchoRecovery`` does. An echo is stale when a
    re-sync covering its scale was encoded after its frame; an echo naming a state also when it
    left the receiver before the last M frame was decoded (its frame is before that M frame:
    the receiver echoes again after an M frame that did not help); and any echo that left
    before the last M frame against a kept state (f, 0), which a decoder accepts whatever it
    lost after f. The newest usable echo decides.
    ``mirrored(frame_index)`` tells it which frames the encoder coded as M frames.
    """

    def __init__(self) -> None:
        super().__init__()
        self.request: int | MirrorRequest | None = None  # type: ignore[assignment]
        self._last_mirror = -1
        self._last_kept_mirror = -1

    def consider(self, echo: Echo) -> bool:
        if (
            not 1 <= echo.scale <= NUM_SCALES
            or echo.frame_index < self._last_cover[echo.scale]
            or (echo.desynced_since is not None and echo.frame_index < self._last_mirror)
            or echo.frame_index < self._last_kept_mirror
        ):
            return False
        if echo.desynced_since is not None:
            self.request = MirrorRequest(echo.desynced_since, echo.scale)
        elif not isinstance(self.request, int) or echo.scale < self.request:
            self.request = echo.scale
        return True

    def mirrored(self, frame_index: int, kept: bool = False) -> None:
        """Frame ``frame_index`` was encoded as an M frame; ``kept``: against the state kept from
        before a frame, (f, 0), which a decoder accepts after any further drop of D, so that
        every echo that left before it is stale."""
        self._last_mirror = frame_index
        if kept:
            self._last_kept_mirror = frame_index

    def encoded(self, frame_index: int, resync_from: int) -> None:
        if frame_index == self._last_mirror:
            self.request = None
            return
        if resync_from < 1:
            return
        for scale in range(resync_from, NUM_SCALES + 1):
            self._last_cover[scale] = frame_index
        pending = self.request.scale if isinstance(self.request, MirrorRequest) else self.request
        if pending is not None and resync_from <= pending:
            self.request = None


class FrameEncoder(Protocol):
    """Produces the encoded frame ``frame_index`` (frames are requested in order, once each);
    ``request`` None for a regular frame (the encoder decides I or P), j in 1..K for a
    re-sync frame, or a ``MirrorRequest`` (DESIGN 3). An encoder with a true ``mirrors``
    attribute answers feedback by mirrored recovery."""

    def encode(self, frame_index: int, request: int | MirrorRequest | None) -> EncodedFrame: ...


class FrameDecoder(Protocol):
    """Decodes frames in order, one call per frame, from whatever of each frame arrived."""

    def decode(self, received: ReceivedFrame) -> DecodedFrame: ...


class DhvcFrameEncoder:
    """``FrameEncoder`` over ``codec.Encoder``, the video's frames (N x H x W x 3 uint8) and
    the scenario's constant lambda; ``mirrors``: answer feedback by mirrored recovery. An echo
    (f, j) is answered by an M frame against the state the decoder kept from before frame f,
    (f, 0), when the encoder can rebuild it, else against (f, j): (f, 0) costs more bits than
    (f, j) for j = 4 (``benchmarks/recovery_reference.py``), but a decoder accepts it whatever
    it lost after the echo left, where (f, j) is refused after any further drop of D (DESIGN 3:
    over 10 seeds at 10% loss, +0.8 dB mean PSNR in the paper layout and +0.4 dB in the best
    configuration against coding each M frame against the cheaper of the two)."""

    def __init__(
        self, encoder: Encoder, frames: np.ndarray, lam: float, *, mirrors: bool = False
    ) -> None:
        self._encoder = encoder
        self._frames = frames
        self._lam = lam
        self.mirrors = mirrors

    def encode(self, frame_index: int, request: int | MirrorRequest | None) -> EncodedFrame:
        frame = self._frames[frame_index]
        if isinstance(request, MirrorRequest):
            f, echoed = request
            kept = self._encoder.mirrored_state(f, 0, echoed=echoed) is not None
            scale = 0 if kept else echoed
            return self._encoder.encode(frame, lam=self._lam, mirror=(f, scale), echoed=echoed)
        return self._encoder.encode(frame, lam=self._lam, resync_from=request)


def assemble_scales(frame_index: int, assembly: FrameAssembly | None) -> Assembled[ReceivedFrame]:
    """What to hand the DHVC decoder: the agreed frame header and the complete scales, with the
    (scale, fragment) pairs FEC rebuilt (nothing of the frame: ``ReceivedFrame.nothing``)."""
    agreed = None if assembly is None else assembly.agreed()
    if agreed is None:
        return Assembled(ReceivedFrame.nothing(frame_index))
    complete = [
        assembled
        for scale_assembly in agreed.scales.values()
        if (assembled := assemble_scale(scale_assembly)) is not None
    ]
    rate_parameter, resync_from, frame_type, _, mirror_from = agreed.header
    received = ReceivedFrame(
        frame_index=frame_index,
        lam=rate_parameter,
        resync_from=resync_from,
        frame_type=frame_type,
        scales={a.scale: a.payload for a in complete},
        mirror_from=mirror_from,
    )
    recovered = tuple((a.scale, f) for a in complete for f in a.recovered_fragments)
    return Assembled(received, recovered)


@dataclass(frozen=True)
class FecBudget:
    """One FEC budget for every frame (``netsim.scenario.FecBudgetSpec``): ``unequal``, parity
    bytes of at most ``overhead_fraction`` of the frame's payload spread over the scales at an
    assumed ``design_loss_rate`` (``netsim.fec.allocate_unequal``); ``striped``, frame-level
    FEC over the packed packets (``netsim.packing.pack_frame_striped``)."""

    overhead_fraction: float
    design_loss_rate: float
    allocation: str = "unequal"


class DhvcAdapter:
    """``CodecAdapter`` of DHVC: scales 1..``max_scales`` as scale packets, one scale per
    packet or ``packed`` (``netsim.packing``); FEC per scale as the sender gives it, or
    allocated per frame by ``fec_budget``; the decoder's D and echo as they are; a frame is
    concealed when a scale was substituted, and with ``concealment`` the receiver shows the
    last shown picture instead where its rule says so (``netsim.concealment``)."""

    def __init__(
        self,
        encoder: FrameEncoder,
        decoder: FrameDecoder,
        *,
        packing: str = "per_scale",
        fec_budget: FecBudget | None = None,
        concealment: Concealment | None = None,
    ) -> None:
        self.encoder = encoder
        self.decoder = decoder
        self.packing = packing
        self.fec_budget = fec_budget
        self.concealment = concealment

    def encode(self, frame_index: int, resync_from: int | MirrorRequest | None) -> EncodedFrame:
        frame = self.encoder.encode(frame_index, resync_from)
        if frame.frame_type is FrameType.M and self._mirror is not None:
            self._mirror.mirrored(frame.frame_index, kept=frame.resync_from == 0)
        return frame

    def packetize(
        self,
        frame: EncodedFrame,
        *,
        first_seq: int,
        mtu_bytes: int,
        max_scales: int,
        fec: Mapping[int, FecParams],
    ) -> list[Packet]:
        if self.fec_budget is not None and self.fec_budget.allocation == "striped":
            return pack_frame_striped(
                frame,
                first_seq=first_seq,
                mtu_bytes=mtu_bytes,
                max_scales=max_scales,
                parity_fraction=self.fec_budget.overhead_fraction,
            )
        if self.fec_budget is not None:
            fec = self._allocate(frame, mtu_bytes=mtu_bytes, max_scales=max_scales)
        if self.packing == "packed":
            return pack_frame(
                frame, first_seq=first_seq, mtu_bytes=mtu_bytes, max_scales=max_scales, fec=fec
            )
        return packetize(
            frame, first_seq=first_seq, mtu_bytes=mtu_bytes, max_scales=max_scales, fec=fec
        )

    def _allocate(
        self, frame: EncodedFrame, *, mtu_bytes: int, max_scales: int
    ) -> dict[int, FecParams]:
        """This frame's unequal protection under ``fec_budget``: each scale's fragments at
        most as many as the frame's packets (so that no packet holds two of one scale)."""
        assert self.fec_budget is not None
        sizes = [len(frame.scales[k].data) for k in range(max_scales)]
        packed = self.packing == "packed"
        room = piece_payload_bytes(mtu_bytes) if packed else max_payload_bytes(mtu_bytes)
        budget = self.fec_budget
        total = sum(sizes) * (1 + budget.overhead_fraction)
        packets = max(2, math.ceil(total / (mtu_bytes - HEADER_SIZE_BYTES)))
        return allocate_unequal(
            sizes,
            overhead_fraction=budget.overhead_fraction,
            fragment_bytes=room,
            loss_rate=budget.design_loss_rate,
            max_fragments_per_scale=packets if packed else MAX_FRAGMENTS,
            piece_overhead_bytes=PIECE_HEADER_BYTES if packed else HEADER_SIZE_BYTES,
        )

    def describe_sent(
        self, frame: EncodedFrame, *, capture_time_s: float, max_scales: int
    ) -> SentFrame:
        """The bits of the scales sent (0 above ``max_scales``); the units are the scales."""
        return SentFrame(
            frame_type=frame.frame_type,
            resync_from=frame.resync_from,
            lam=frame.lam,
            bits_per_scale=tuple(
                bits if k < max_scales else 0 for k, bits in enumerate(frame.payload_bits)
            ),
            pixels=frame.width * frame.height,
            capture_time_s=capture_time_s,
            codec=DHVC,
            units_sent=min(max_scales, len(frame.scales)),
        )

    _mirror: MirrorRecovery | None = None

    def recovery(self) -> EchoRecovery:
        """``MirrorRecovery`` when the encoder mirrors, else the paper's re-sync."""
        if getattr(self.encoder, "mirrors", False):
            self._mirror = MirrorRecovery()
            return self._mirror
        return EchoRecovery()

    def fits(self, packet: Packet) -> bool:
        return fits_piece(packet) if self.packing == "packed" else fits_scale_header(packet)

    def assemble(
        self, frame_index: int, assembly: FrameAssembly | None
    ) -> Assembled[ReceivedFrame]:
        return assemble_scales(frame_index, assembly)

    def decode(self, received: ReceivedFrame) -> ShownPicture:
        decoded = self.decoder.decode(received)
        substituted = [
            k for k, o in enumerate(decoded.outcomes, start=1) if o is not ScaleOutcome.DECODED
        ]
        x_hat, shown = decoded.x_hat, ShownKind.DECODED
        if self.concealment is not None:
            x_hat, shown = self.concealment.show(
                x_hat, min(substituted, default=None), decoded.motion
            )
        return ShownPicture(
            frame_index=decoded.frame_index,
            x_hat=x_hat,
            first_desynced_scale=decoded.first_desynced_scale,
            echo_scale=decoded.echo_scale,
            desynced_since=decoded.desynced_since,
            units_received=len(received.scales),
            units_decoded=decoded.scales_decoded,
            concealed=bool(substituted),
            shown=shown,
        )


@dataclass(frozen=True)
class LoadedDhvc:
    """DHVC set up for a run: the model, its encoder and decoder on ``device``, the video and
    the scenario's lambda."""

    model: DhvcModel
    encoder: Encoder
    decoder: Decoder
    originals: np.ndarray
    lam: float
    device: str
    recovery: str = "resync"
    packing: str = "per_scale"
    fec_budget: FecBudget | None = None
    concealment: bool = False

    @property
    def model_info(self) -> ModelInfo:
        config = self.model.config
        return ModelInfo(
            id=getattr(self.model, "model_id", None),
            preset=config.name,
            lambda_min=config.lambda_min,
            lambda_max=config.lambda_max,
        )

    def adapter(self) -> DhvcAdapter:
        return DhvcAdapter(
            DhvcFrameEncoder(
                self.encoder, self.originals, self.lam, mirrors=self.recovery == "mirror"
            ),
            self.decoder,
            packing=self.packing,
            fec_budget=self.fec_budget,
            concealment=Concealment() if self.concealment else None,
        )


def load_dhvc(scenario: Scenario, originals: np.ndarray, device: str) -> LoadedDhvc:
    """``CodecEntry.load`` of DHVC: load the model (``ScenarioError`` naming
    ``codec.checkpoint`` or ``codec.lam``), then its encoder and decoder."""
    from netsim.scenario import ScenarioError  # netsim.scenario reads this module's registry

    spec = scenario.codec
    try:
        model = load_model(checkpoint=spec.checkpoint, preset=spec.preset, device=device)
    except (CheckpointError, ValueError) as err:
        raise ScenarioError(scenario.source_path, "codec.checkpoint", str(err)) from None
    try:
        check_lambda(spec.lam, model.config)
    except ValueError as err:
        raise ScenarioError(scenario.source_path, "codec.lam", str(err)) from None
    height, width = originals.shape[1:3]
    return LoadedDhvc(
        model=model,
        encoder=Encoder(model, gop=spec.gop_frames, device=device, motion=spec.motion != "none"),
        decoder=Decoder(model, height=height, width=width, device=device),
        originals=originals,
        lam=spec.lam,
        device=device,
        recovery=spec.recovery,
        packing=scenario.sender.packing,
        fec_budget=(
            None
            if (budget := scenario.sender.fec_budget) is None
            else FecBudget(budget.overhead_fraction, budget.design_loss_rate, budget.allocation)
        ),
        concealment=scenario.receiver.concealment == "auto",
    )


def check_dhvc_scenario(scenario: Scenario) -> None:
    """``CodecEntry.check_scenario``: the lambda against the model's range, the MTU and FEC
    against the largest scale (``netsim.scenario.check_packetization``)."""
    from netsim.scenario import FieldError, check_packetization, model_config_for

    spec: CodecSpec = scenario.codec
    try:
        config = model_config_for(spec.checkpoint, spec.preset)
    except FieldError as err:
        raise FieldError(("codec", *err.field), err.message) from None
    try:
        check_lambda(spec.lam, config)
    except ValueError as err:
        raise FieldError(("codec", "lam"), str(err)) from None
    try:
        check_packetization(scenario.sender, scenario.video, config)
    except FieldError as err:
        raise FieldError(("sender", *err.field), err.message) from None


register_codec(
    CodecEntry(
        kind=DHVC,
        load=load_dhvc,
        check_scenario=check_dhvc_scenario,
        recoveries=("resync", "mirror"),
        motions=("blocks", "none"),
    )
)
