"""The interface between the network and a codec under test (DESIGN 4b).

The sender, the receiver and the runner drive every codec through ``CodecAdapter``; they never
look at a codec's own frame types. Per frame, the sender asks the adapter to ``encode`` it
(with the recovery request its ``recovery`` answer to feedback makes), to ``packetize`` it and
to ``describe_sent`` it (the sender's half of the frame's trace row); the receiver, at the
frame's playout deadline, asks it to ``assemble`` what arrived and to ``decode`` that into a
``ShownPicture``. ``fits`` is the adapter's packet layout rule the receiver applies to each
packet on arrival.

``TimedCodec`` wraps any adapter and adds up the wall time of its encoding and decoding;
``LoadedCodec`` is what a run's setup makes of a scenario (``netsim.codecs.registry``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np

from codec.types import NUM_SCALES
from netsim.damage import ShownKind

if TYPE_CHECKING:
    from netsim.fec import FecParams
    from netsim.feedback import Echo
    from netsim.packet import Packet
    from netsim.reassembly import FrameAssembly
    from netsim.trace import SentFrame

EncodedT = TypeVar("EncodedT")
ReceivedT = TypeVar("ReceivedT")


@dataclass(frozen=True)
class ShownPicture:
    """What the receiver shows for one frame, whatever the codec.

    ``x_hat``: the picture (H x W x 3 float32 in [0, 1]). ``first_desynced_scale``: D after
    the frame (K + 1 = the decoder's references are sound). ``echo_scale``: j when this frame
    made D drop to j (the receiver echoes (frame, j)), else None. ``units_received`` and
    ``units_decoded``: the codec's units (DHVC: scales; x264/x265: NAL units) that arrived
    usable and that were decoded. ``concealed``: part of the picture was filled in;
    ``frozen``: nothing of the frame could be decoded, the last picture is shown again.
    ``desynced_since``: f when the decoder's state is (f, D), one that a mirrored recovery
    frame can assume (DHVC, DESIGN 3); None otherwise.
    ``shown``: whether ``x_hat`` is the decoder's picture, the last shown picture repeated, a
    blend of both, or the last decoded picture extrapolated along its motion (concealment,
    DESIGN 2; ``netsim.damage.ShownKind``).
    """

    frame_index: int
    x_hat: np.ndarray = field(repr=False, compare=False)
    first_desynced_scale: int
    echo_scale: int | None
    units_received: int
    units_decoded: int
    concealed: bool
    frozen: bool = False
    desynced_since: int | None = None
    shown: ShownKind = ShownKind.DECODED


@dataclass(frozen=True)
class Assembled(Generic[ReceivedT]):
    """What the receiver hands a decoder for one frame (``received``, the codec's own type)
    and the data fragments FEC rebuilt, as (layer, fragment index) pairs (for packets.csv)."""

    received: ReceivedT
    recovered: tuple[tuple[int, int], ...] = ()


class EchoRecovery:
    """The sender's answer to feedback (DESIGN 3): which re-sync to ask the encoder for.

    An echo (f, j) is stale, and ignored, when a frame after f was already encoded with a
    re-sync that covers scale j (resync_from <= j; an I frame covers every scale); a repeated
    echo carries the frame at which the receiver repeated it, so it is never stale against
    the re-sync it complains about. Otherwise the next frame is encoded with resync_from = the
    smallest j among the pending echoes. An x264/x265 picture-loss indication is the echo
    (f, 1), answered by an I frame (resync_from 1), so the same rules serve it.
    """

    def __init__(self) -> None:
        self.request: int | None = None
        """The pending request: the resync_from to ask for, None for a regular frame."""
        self._last_cover = dict.fromkeys(range(1, NUM_SCALES + 1), -1)

    def consider(self, echo: Echo) -> bool:
        """Take ``echo`` into the pending request; False when it is stale."""
        if not 1 <= echo.scale <= NUM_SCALES or echo.frame_index < self._last_cover[echo.scale]:
            return False
        if self.request is None or echo.scale < self.request:
            self.request = echo.scale
        return True

    def encoded(self, frame_index: int, resync_from: int) -> None:
        """Frame ``frame_index`` was encoded with ``resync_from``: remember which scales it
        re-synchronised and clear the request it satisfied."""
        if resync_from < 1:
            return
        for scale in range(resync_from, NUM_SCALES + 1):
            self._last_cover[scale] = frame_index
        if self.request is not None and resync_from <= self.request:
            self.request = None


class CodecAdapter(Protocol[EncodedT, ReceivedT]):
    """One codec as the network drives it. ``EncodedT`` is the codec's encoded frame,
    ``ReceivedT`` what its decoder takes; neither leaves the adapter's own methods.

    Frames are encoded in order, once each, and decoded in order, once each.
    """

    def encode(self, frame_index: int, resync_from: int | None) -> EncodedT:
        """Frame ``frame_index``; ``resync_from`` None for a regular frame or j in 1..K when
        the receiver asked for a re-sync from scale j (``EchoRecovery``)."""
        ...

    def packetize(
        self,
        frame: EncodedT,
        *,
        first_seq: int,
        mtu_bytes: int,
        max_scales: int,
        fec: Mapping[int, FecParams],
    ) -> list[Packet]:
        """The frame's packets in sending order, numbered from ``first_seq``, each at most
        ``mtu_bytes`` long; ``fec`` maps a scale (layer) to its FEC parameters."""
        ...

    def describe_sent(
        self, frame: EncodedT, *, capture_time_s: float, max_scales: int
    ) -> SentFrame:
        """The sender's half of the frame's trace row (what it encoded and sends)."""
        ...

    def recovery(self) -> EchoRecovery:
        """A fresh answer to feedback for one run's sender."""
        ...

    def fits(self, packet: Packet) -> bool:
        """Whether this codec's packetizer could have sent ``packet`` (its layout, and a
        payload length its header allows); the receiver discards one that does not."""
        ...

    def assemble(self, frame_index: int, assembly: FrameAssembly | None) -> Assembled[ReceivedT]:
        """What to hand the decoder from the packets of the frame that agree (``assembly``;
        None when nothing of the frame arrived in time)."""
        ...

    def decode(self, received: ReceivedT) -> ShownPicture:
        """The picture to show for the frame and what happened to it."""
        ...


@dataclass(frozen=True)
class ModelInfo:
    """The codec model of a run, as summary.json records it: its id (None for random
    weights), preset and lambda range. For x264/x265: the encoder library and its speed
    preset; no lambda range (NaN)."""

    id: str | None
    preset: str
    lambda_min: float
    lambda_max: float


class LoadedCodec(Protocol):
    """A codec set up for one run (``CodecEntry.load``): the ``device`` it runs on, the model
    as summary.json describes it, and the adapter the run drives (``adapter()`` is called
    once per run)."""

    device: str

    @property
    def model_info(self) -> ModelInfo: ...

    def adapter(self) -> CodecAdapter[Any, Any]: ...


class TimedCodec(Generic[EncodedT, ReceivedT]):
    """``CodecAdapter`` around another that adds up the wall time (s) spent in its ``encode``
    (``encode_time_s``) and ``decode`` (``decode_time_s``); everything else passes through."""

    def __init__(self, codec: CodecAdapter[EncodedT, ReceivedT]) -> None:
        self.codec = codec
        self.encode_time_s = 0.0
        self.decode_time_s = 0.0

    def encode(self, frame_index: int, resync_from: int | None) -> EncodedT:
        start = time.perf_counter()
        frame = self.codec.encode(frame_index, resync_from)
        self.encode_time_s += time.perf_counter() - start
        return frame

    def packetize(
        self,
        frame: EncodedT,
        *,
        first_seq: int,
        mtu_bytes: int,
        max_scales: int,
        fec: Mapping[int, FecParams],
    ) -> list[Packet]:
        return self.codec.packetize(
            frame, first_seq=first_seq, mtu_bytes=mtu_bytes, max_scales=max_scales, fec=fec
        )

    def describe_sent(
        self, frame: EncodedT, *, capture_time_s: float, max_scales: int
    ) -> SentFrame:
        return self.codec.describe_sent(frame, capture_time_s=capture_time_s, max_scales=max_scales)

    def recovery(self) -> EchoRecovery:
        return self.codec.recovery()

    def fits(self, packet: Packet) -> bool:
        return self.codec.fits(packet)

    def assemble(self, frame_index: int, assembly: FrameAssembly | None) -> Assembled[ReceivedT]:
        return self.codec.assemble(frame_index, assembly)

    def decode(self, received: ReceivedT) -> ShownPicture:
        start = time.perf_counter()
        shown = self.codec.decode(received)
        self.decode_time_s += time.perf_counter() - start
        return shown
