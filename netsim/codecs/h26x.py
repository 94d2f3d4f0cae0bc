"""The x264/x265 codec adapters (DESIGN 4b), one registry entry per standard codec.

``H26xAdapter`` drives ``H26xFrameEncoder`` and ``H26xFrameDecoder`` over
``codec.h26x.realtime`` and carries their frames as slice packets (``netsim.codecs.slices``);
together they behave as a real-time H.264/HEVC call:

* **Picture-loss indication -> I frame.** The receiver's echo (f, 1) is the PLI; the sender
  passes it on as ``resync_from`` and the encoder answers with an I frame (``frame_type`` R:
  an IDR; with ``intra_refresh`` too, since libavcodec cannot start a refresh sweep on
  request). libx265 with several slices holds one picture back
  (``H26xEncoder.delay_pictures``): the adapter then submits picture i + 1 as soon as
  picture i is asked for, so that every picture still leaves at its capture instant; a PLI
  then reaches the picture after the next one, one frame later than with x264 (the frame
  trace shows where the I frame landed).
* **Decoding what arrived.** The decoder gets the NAL units that arrived whole
  (``netsim.codecs.slices.usable_nal_units``) and FFmpeg conceals the rest. A frame of which nothing
  decodes is *frozen*: the last picture is shown again (grey before the first one).
* **Reference state as D.** The decoder's references are *damaged* (D = 1) from the first
  frame shown with anything missing (concealed or frozen) until an I frame arrives whole
  (D = K + 1 again). A frame that damages clean references reports ``echo_scale`` 1, so the
  receiver sends a PLI; an I frame that arrives incomplete damages them again, and the
  receiver's echo timeout repeats the PLI while nothing usable comes (DESIGN 3's rules).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from codec.h26x.realtime import (
    STANDARD_CODECS,
    X265_CTU_PX,
    H26xDecoder,
    H26xEncoder,
    H26xSettings,
)
from codec.types import IN_SYNC, NUM_SCALES, FrameType
from netsim.codecs.base import Assembled, EchoRecovery, ModelInfo, ShownPicture
from netsim.codecs.registry import CodecEntry, register_codec
from netsim.codecs.slices import (
    SLICE_LAYER,
    ReceivedSlices,
    SlicedFrame,
    fits_slice_header,
    packetize_slices,
    payload_budget_bytes,
    received_slices,
    usable_nal_units,
)
from netsim.damage import ShownKind
from netsim.fec import FecParams
from netsim.packet import Packet
from netsim.reassembly import FrameAssembly
from netsim.trace import SentFrame

if TYPE_CHECKING:
    from netsim.scenario import CodecSpec, Scenario

DAMAGED = 1
"""D of an x264/x265 decoder whose references are damaged (the PLI's scale)."""


class H26xFrameEncoder:
    """Encodes the video's frames (N x H x W x 3 uint8) with ``codec.h26x.realtime.H26xEncoder``."""

    def __init__(self, settings: H26xSettings, frames: np.ndarray) -> None:
        self.settings = settings
        self._frames = frames
        height, width = frames.shape[1:3]
        self._encoder = H26xEncoder(settings, width=width, height=height)
        self._pictures: dict[int, tuple[bool, tuple[bytes, ...]]] = {}
        self._forced: set[int] = set()
        self._submitted = 0
        self._wants_intra = False

    def encode(self, frame_index: int, resync_from: int | None) -> SlicedFrame:
        """Picture ``frame_index``; any ``resync_from`` asks for an I frame (unless one that
        was asked for is already submitted and not yet sent)."""
        if resync_from is not None and not any(i >= frame_index for i in self._forced):
            self._wants_intra = True
        while frame_index not in self._pictures:
            if self._submitted < len(self._frames) and self._submitted <= frame_index + (
                self._encoder.delay_pictures
            ):
                forced = self._wants_intra
                if forced:
                    self._forced.add(self._submitted)
                    self._wants_intra = False
                released = self._encoder.encode(self._frames[self._submitted], force_idr=forced)
                self._submitted += 1
            else:
                released = self._encoder.flush()
                if not released:
                    raise RuntimeError(f"{self.settings.codec}: picture {frame_index} never came")
            for picture in released:
                self._pictures[picture.frame_index] = (picture.intra, picture.nal_units)
        intra, units = self._pictures.pop(frame_index)
        if frame_index in self._forced:
            frame_type = FrameType.R
        elif intra:
            frame_type = FrameType.I
        else:
            frame_type = FrameType.P
        height, width = self._frames.shape[1:3]
        return SlicedFrame(
            frame_index=frame_index,
            frame_type=frame_type,
            codec=self.settings.codec,
            qp=self.settings.qp,
            nal_units=units,
            width=width,
            height=height,
        )


class H26xFrameDecoder:
    """Decodes the slices that arrived with ``codec.h26x.realtime.H26xDecoder``; tracks the
    reference state (module docstring). ``units_received`` of its pictures: NAL units (or
    aggregates of whole ones) that arrived whole; ``units_decoded``: those handed to the
    decoder for a picture it made (0 when frozen); ``concealed``: FFmpeg filled part of the
    picture."""

    def __init__(self, codec: str, *, width: int, height: int) -> None:
        self._decoder = H26xDecoder(codec, width=width, height=height)
        self._last = np.full((height, width, 3), 0.5, np.float32)
        self.first_desynced_scale = IN_SYNC

    def decode(self, received: ReceivedSlices) -> ShownPicture:
        """The picture to show for ``received`` and what happened to it."""
        units = usable_nal_units(received)
        picture = self._decoder.decode(units)
        frozen = picture.rgb is None
        concealed = not frozen and not received.complete
        if not frozen:
            self._last = picture.rgb.astype(np.float32) / 255.0
        damaged_now = frozen or concealed
        was_clean = self.first_desynced_scale == IN_SYNC
        intra = received.frame_type in (FrameType.I, FrameType.R)
        if damaged_now:
            self.first_desynced_scale = DAMAGED
        elif intra:
            self.first_desynced_scale = IN_SYNC
        echo = DAMAGED if damaged_now and (was_clean or intra) else None
        return ShownPicture(
            frame_index=received.frame_index,
            x_hat=self._last,
            units_received=len(units),
            units_decoded=0 if frozen else len(units),
            concealed=concealed,
            frozen=frozen,
            first_desynced_scale=self.first_desynced_scale,
            echo_scale=echo,
            shown=ShownKind.REPEATED if frozen else ShownKind.DECODED,
        )


class H26xAdapter:
    """``CodecAdapter`` of x264 or x265: one layer of slice packets, whatever ``max_scales``
    says; FEC from the settings of layer 1; the picture-loss indication is the echo (f, 1)
    and an I frame (resync_from 1) answers it (``EchoRecovery``)."""

    def __init__(self, encoder: H26xFrameEncoder, decoder: H26xFrameDecoder) -> None:
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, frame_index: int, resync_from: int | None) -> SlicedFrame:
        return self.encoder.encode(frame_index, resync_from)

    def packetize(
        self,
        frame: SlicedFrame,
        *,
        first_seq: int,
        mtu_bytes: int,
        max_scales: int,
        fec: Mapping[int, FecParams],
    ) -> list[Packet]:
        del max_scales  # one layer
        return packetize_slices(
            frame, first_seq=first_seq, mtu_bytes=mtu_bytes, fec=fec.get(SLICE_LAYER)
        )

    def describe_sent(
        self, frame: SlicedFrame, *, capture_time_s: float, max_scales: int
    ) -> SentFrame:
        """All bits are layer 1's (``bits_s1``), ``lambda`` is not defined (NaN; the QP is in
        the scenario) and the units are the NAL units."""
        del max_scales
        return SentFrame(
            frame_type=frame.frame_type,
            resync_from=frame.resync_from,
            lam=float("nan"),
            bits_per_scale=(frame.payload_bits,) + (0,) * (NUM_SCALES - 1),
            pixels=frame.width * frame.height,
            capture_time_s=capture_time_s,
            codec=frame.codec,
            units_sent=len(frame.nal_units),
        )

    def recovery(self) -> EchoRecovery:
        return EchoRecovery()

    def fits(self, packet: Packet) -> bool:
        return fits_slice_header(packet)

    def assemble(
        self, frame_index: int, assembly: FrameAssembly | None
    ) -> Assembled[ReceivedSlices]:
        received, recovered = received_slices(frame_index, assembly)
        return Assembled(received, tuple((SLICE_LAYER, i) for i in recovered))

    def decode(self, received: ReceivedSlices) -> ShownPicture:
        return self.decoder.decode(received)


def h26x_settings(scenario: Scenario) -> H26xSettings:
    """The x264/x265 encoder settings of a scenario whose codec is x264 or x265: its
    ``codec.h26x`` and ``gop_frames``, the frame rate (rounded; constant QP makes it
    irrelevant to the bits) and x264's ``slice-max-size`` = the NAL bytes one packet carries
    (``netsim.codecs.slices.payload_budget_bytes``, less FEC's 2-byte length field when the
    layer is protected)."""
    spec = scenario.codec
    if spec.h26x is None or spec.kind not in STANDARD_CODECS:
        raise ValueError("not an x264/x265 scenario")
    budget = payload_budget_bytes(scenario.sender.mtu_bytes)
    if SLICE_LAYER in scenario.sender.fec:
        budget -= 2
    return H26xSettings(
        codec=spec.kind,
        qp=spec.h26x.qp,
        gop_frames=min(spec.gop_frames, 2**31 - 1),
        slice_max_bytes=budget,
        x265_slices=spec.h26x.x265_slices,
        intra_refresh=spec.h26x.intra_refresh,
        preset=spec.h26x.preset,
        fps=max(1, round(scenario.video.fps)),
    )


@dataclass(frozen=True)
class LoadedH26x:
    """x264 or x265 set up for a run: the encoder settings and the video; runs on the CPU."""

    settings: H26xSettings
    originals: np.ndarray
    preset: str
    device: str = "cpu"

    @property
    def model_info(self) -> ModelInfo:
        """The encoder library and its speed preset; no lambda range (NaN)."""
        encoder_name = STANDARD_CODECS[self.settings.codec][0]
        return ModelInfo(id=encoder_name, preset=self.preset, lambda_min=np.nan, lambda_max=np.nan)

    def adapter(self) -> H26xAdapter:
        height, width = self.originals.shape[1:3]
        return H26xAdapter(
            H26xFrameEncoder(self.settings, self.originals),
            H26xFrameDecoder(self.settings.codec, width=width, height=height),
        )


def load_h26x(scenario: Scenario, originals: np.ndarray, device: str) -> LoadedH26x:
    """``CodecEntry.load`` of x264/x265 (``device`` is ignored: they run on the CPU)."""
    del device
    settings = h26x_settings(scenario)
    assert scenario.codec.h26x is not None  # h26x_settings checked it
    return LoadedH26x(settings, originals, scenario.codec.h26x.preset)


MAX_X264_WIDTH_PX = 4096
"""Widest x264 picture: libx264's ``slice-max-size`` mode reads past its buffers (a crash, not
an error) on wider ones here (seen at 7168 and 8192 pixels)."""


X265_MULTISLICE_LIMITS = (128, 1024, 8)
"""(least width px, greatest height px, most slices) for x265 with more than one slice per
picture: outside them libx265 aborted or crashed (not an error) in probes on this build:
64x512 with 2 slices, 96x4096 and 128x4096 with 64, 128x4096 with 16, 448x2048 with 16;
inside them every probe ran (128x512 with 2, 448x256 with 8)."""


def check_h26x_scenario(scenario: Scenario) -> None:
    """``CodecEntry.check_scenario``: ``netsim.scenario.check_h26x``, then the picture sizes
    the encoders run: x265 needs at least one CTU (``X265_CTU_PX``) each way and, with several
    slices, ``X265_MULTISLICE_LIMITS``; x264 at most ``MAX_X264_WIDTH_PX`` across."""
    from netsim.scenario import FieldError, check_h26x  # it reads this module's registry

    check_h26x(scenario.sender, scenario.video)
    video, kind = scenario.video, scenario.codec.kind
    loss = scenario.network.forward.loss
    for index, entry in enumerate(getattr(loss, "packets", ()) if loss.kind == "explicit" else ()):
        if entry.scale != 1:
            raise FieldError(
                ("network", "forward", "loss", "packets", index, "scale"),
                f"{kind} sends one layer (its slices are layer 1, fragment i the i-th slice "
                f"packet): an explicit loss must name scale 1, got {entry.scale}",
            )
    for name, side in (("width_px", video.width_px), ("height_px", video.height_px)):
        if kind == "x265" and side < X265_CTU_PX:
            raise FieldError(
                ("video", name), f"x265 needs at least one {X265_CTU_PX}-pixel CTU, got {side}"
            )
    slices = scenario.codec.h26x.x265_slices if scenario.codec.h26x is not None else 1
    if kind == "x265" and slices > 1:
        least_width, greatest_height, most_slices = X265_MULTISLICE_LIMITS
        if slices > most_slices:
            raise FieldError(
                ("codec", "h26x", "x265_slices"),
                f"x265 runs at most {most_slices} slices per picture here, got {slices}",
            )
        if video.width_px < least_width:
            raise FieldError(
                ("video", "width_px"),
                f"x265 with {slices} slices needs pictures at least {least_width} pixels wide "
                f"here (libx265 crashes on narrower ones), got {video.width_px}",
            )
        if video.height_px > greatest_height:
            raise FieldError(
                ("video", "height_px"),
                f"x265 with {slices} slices runs pictures up to {greatest_height} pixels tall "
                f"here (libx265 crashes on taller ones), got {video.height_px}",
            )
    if kind == "x264" and video.width_px > MAX_X264_WIDTH_PX:
        raise FieldError(
            ("video", "width_px"),
            f"x264 runs pictures up to {MAX_X264_WIDTH_PX} pixels wide here, got {video.width_px}",
        )


INTRA_REFRESH_ENCODERS = frozenset({"libx264"})
"""The PyAV encoders whose periodic intra refresh ``codec.h26x.realtime`` can switch on."""


DHVC_ONLY_FIELDS = ("checkpoint", "preset", "lam")
"""Fields of the ``codec`` section that only DHVC reads; x264/x265 refuse a value other than
the default (compared with it, not with what was given: sweeps rebuild scenarios whole)."""


def check_h26x_settings(spec: CodecSpec) -> None:
    """``CodecEntry.check_settings``: no setting the encoder would ignore (DHVC's model and
    lambda, ``x265_slices`` for x264), intra refresh only where the encoder has it."""
    from netsim.scenario import FieldError  # netsim.scenario reads this module's registry

    for name in DHVC_ONLY_FIELDS:
        if getattr(spec, name) != type(spec).model_fields[name].default:
            raise FieldError((name,), f"only for kind dhvc, {spec.kind} ignores it")
    h26x = spec.h26x
    if (
        spec.kind != "x265"
        and h26x is not None
        and h26x.x265_slices != type(h26x).model_fields["x265_slices"].default
    ):
        raise FieldError(
            ("h26x", "x265_slices"), f"only for kind x265 ({spec.kind} sizes slices to the MTU)"
        )
    refresh = spec.h26x is not None and spec.h26x.intra_refresh
    if refresh and STANDARD_CODECS[spec.kind][0] not in INTRA_REFRESH_ENCODERS:
        raise FieldError(
            ("h26x", "intra_refresh"), f"intra refresh is not available for {spec.kind}"
        )


for _kind in STANDARD_CODECS:
    register_codec(
        CodecEntry(
            kind=_kind,
            load=load_h26x,
            check_scenario=check_h26x_scenario,
            settings_field="h26x",
            check_settings=check_h26x_settings,
        )
    )
