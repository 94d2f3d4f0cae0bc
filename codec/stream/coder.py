"""``Encoder`` and ``Decoder``: real coding with reference buffers, mean substitution, the
first-desynchronised-scale rule D, re-synchronisation and mirrored recovery (DESIGN 1-3).

Both sides run ``DHVC.top_down`` with identical inputs, so mu_k and sigma_k (and therefore the
table indexes) agree bit for bit when the decoder is in sync. They differ only in the
``LatentPicker`` they pass: ``EncodingPicker`` quantises and codes each scale, ``DecodingPicker``
decodes it or substitutes the mean; both ask the built ``GaussianEntropyModel`` for symbols and
bytes. Each scale's bitstream carries a sync tag (CRC32 of the encoder's table indexes); the
decoder never entropy-decodes a scale whose tag differs from the hash of its own indexes.

Mirrored recovery (DESIGN 3): what a decoder does after a loss is a deterministic function of
what it received, so the encoder keeps the last ``MAX_MIRROR_AGE`` frames (their payloads and
the reference state each was coded against) and, asked for the decoder state (f, j), decodes
those frames again with a ``Decoder`` of its own that received only the scales below j, from
frame f on: the same code path, hence the decoder's references bit for bit. It then codes an
ordinary inter frame (type M) against them.

Block motion (DESIGN 3, ``codec.stream.motion``): before a frame's top-down pass both sides shift
their reference features by the frame's motion field, which the encoder estimates and sends at
the head of scale 1's payload. A decoder uses a frame's field only when it can decode scale 1
(received intact, D > 1, the state it assumes held); otherwise the zero field, the same rule in
the encoder's mirror.
"""

from __future__ import annotations

import copy
import zlib
from collections import deque
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

import numpy as np
import torch

from codec.entropy.gaussian import EntropyCodingError, GaussianEntropyModel, Parallel
from codec.model.config import check_lambda
from codec.model.dhvc import DHVC, PAD_MULTIPLE, TemporalRefs, pad_to_multiple
from codec.stream.motion import (
    MotionError,
    estimate_motion,
    motion_luma,
    pack_motion,
    shift_references,
    unpack_motion,
    zero_field,
)
from codec.threads import intra_op_threads
from codec.types import (
    IN_SYNC,
    MAX_MIRROR_AGE,
    NUM_SCALES,
    DecodedFrame,
    EncodedFrame,
    FrameType,
    ReceivedFrame,
    ScaleOutcome,
    ScalePayload,
    coded_size,
)


def frame_to_tensor(frame: np.ndarray, device: torch.device) -> torch.Tensor:
    """H x W x 3 uint8 (or float in [0, 1]) -> (1, 3, H, W) float32 on ``device``."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 frame, got shape {frame.shape}")
    x = torch.from_numpy(np.ascontiguousarray(frame))
    x = x.float() / 255.0 if frame.dtype == np.uint8 else x.float()
    return x.permute(2, 0, 1).unsqueeze(0).to(device)


def tensor_to_frame(x_hat: torch.Tensor, height: int, width: int) -> np.ndarray:
    """(1, 3, H', W') -> H x W x 3 float32 in [0, 1], cropped to the original size."""
    x = x_hat[0, :, :height, :width].clamp(0, 1)
    return x.permute(1, 2, 0).contiguous().cpu().numpy()


class _ReferenceState:
    """Reference buffers shared in shape by encoder and decoder.

    ``refs[k-1]`` holds (d_k of t-1, d_k of t-2) with ``None`` for the intra constant;
    ``x_prev`` is the previous reconstruction (auxiliary refinement only); ``newest`` the
    index of the frame whose features were pushed last (the source the encoder's motion search
    matches against), None before the first.
    """

    def __init__(self) -> None:
        self.refs: list[TemporalRefs] = [(None, None)] * NUM_SCALES
        self.x_prev: torch.Tensor | None = None
        self.newest: int | None = None

    def reset_from(self, j: int) -> None:
        """Reset the buffers of scales >= j, as a GOP start does for j = 1 (DESIGN 3)."""
        for k in range(j, NUM_SCALES + 1):
            self.refs[k - 1] = (None, None)
        if j == 1:
            self.x_prev = None

    def push(self, d: list[torch.Tensor], x_hat: torch.Tensor, frame_index: int) -> None:
        self.refs = [(dk, r[0]) for dk, r in zip(d, self.refs, strict=True)]
        self.x_prev = x_hat
        self.newest = frame_index

    def copy(self) -> _ReferenceState:
        """A snapshot: the buffers are replaced, never written in place, so the tensors are
        shared."""
        state = _ReferenceState()
        state.refs = list(self.refs)
        state.x_prev = self.x_prev
        state.newest = self.newest
        return state

    def shifted(self, field: np.ndarray) -> _ReferenceState:
        """A copy whose temporal references are shifted by the motion ``field``."""
        state = self.copy()
        state.refs = shift_references(self.refs, field)
        return state


CODING_THREADS = 1
"""Intra-op threads every encode and decode runs on, whatever the process uses elsewhere.

Convolutions split their work by thread count, and float sums taken in another order round
differently in the last bits: enough to move a sigma across a table boundary, so a stream coded
on 2 threads and decoded on 1 loses sync with no packet missing. One fixed count makes mu and
sigma, hence the table indexes and the pictures, identical on every thread count (DESIGN 1,
Determinism). One thread is also the fastest policy on a busy 2-core machine, where a second
thread competes with whatever else runs there."""


def coding_threads() -> AbstractContextManager[None]:
    """Run the enclosed coding on ``CODING_THREADS`` CPU threads, then restore the count."""
    return intra_op_threads(CODING_THREADS)


class _CodingContext:
    """What encoder and decoder share: the model, its built entropy model (coding slices on
    ``entropy_workers`` threads or processes, ``entropy_parallel``), the device."""

    def __init__(
        self,
        model: DHVC,
        device: str | torch.device | None,
        entropy_workers: int = 1,
        entropy_parallel: Parallel = "thread",
    ) -> None:
        self.device = torch.device(device) if device else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.entropy = GaussianEntropyModel(
            model.config.smooth_sigma_bound, workers=entropy_workers, parallel=entropy_parallel
        ).build(self.device)
        self.state = _ReferenceState()

    def with_state(self, state: _ReferenceState) -> _CodingContext:
        """The same model and entropy model with other reference buffers."""
        other = copy.copy(self)
        other.state = state
        return other

    def lam_conditioning(self, lam: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Lambda embedding e and quantisation steps q_k, each (1, Z_k, 1, 1); lambda is
        rounded to float32 first, exactly as the frame header carries it, so both sides
        condition on the same value.

        q_k = exp(a_k + b_k t) is computed in float64 on the CPU and then rounded to float32,
        whatever the model's device: a device's own float32 exp may differ from another's in
        the last bit (CUDA's expf is not correctly rounded), and q scales every symbol of its
        channel (sigma / q picks the table entries, mu + q s is y_hat). Rounded from float64,
        q is the same on every device (DESIGN 1, Determinism)."""
        check_lambda(lam, self.model.config)
        lam_t = torch.tensor([lam], dtype=torch.float32, device=self.device)
        lam_64 = torch.tensor([lam], dtype=torch.float32).double()
        q = [step.float().to(self.device) for step in self.model.quant_steps(lam_64)]
        return self.model.embed_lambda(lam_t), q


class EncodingPicker:
    """Encoding's y_hat: quantise scale k's coded positions (``coded_size``), code them into a
    payload and return y_hat = mu + q * symbols (mu where padding only, whose symbols are 0).
    ``payloads`` and ``estimated_bits`` collect each scale's results in scale order."""

    def __init__(self, entropy: GaussianEntropyModel, height: int, width: int) -> None:
        self.entropy = entropy
        self.height, self.width = height, width
        self.payloads: list[ScalePayload] = []
        self.estimated_bits: list[float] = []

    def y_hat(
        self,
        k: int,
        y: torch.Tensor | None,
        mu: torch.Tensor,
        sigma: torch.Tensor,
        q: torch.Tensor,
    ) -> torch.Tensor:
        if y is None:
            raise ValueError("encoding needs the posterior latent")
        em = self.entropy
        rows, cols = coded_size(self.height, self.width, k)
        symbols = torch.zeros_like(mu)
        region = symbols[..., :rows, :cols]
        region.copy_(em.quantize(y[..., :rows, :cols], mu[..., :rows, :cols], q))
        indexes = em.table_indexes(sigma[..., :rows, :cols], q)
        data = em.compress(region, indexes)
        self.payloads.append(ScalePayload(data, zlib.crc32(data), em.sync_tag(indexes)))
        self.estimated_bits.append(em.estimate_bits(region, indexes))
        return em.dequantize(symbols, mu, q)


class DecodingPicker:
    """Decoding's y_hat (DESIGN 2): scale k is entropy-decoded when ``scale_outcome`` says
    ``DECODED`` and its payload decodes; otherwise y_hat_k = mu_k (mean substitution) and, if
    k < D, D becomes k (1 with auxiliary refinement). ``outcomes`` collects each scale's
    outcome; ``first_desynced_scale`` is D, updated as scales are substituted.
    ``state_mismatch``: the frame assumes a decoder state this decoder does not hold (an M
    frame, DESIGN 3), so none of its scales may be decoded."""

    def __init__(
        self,
        entropy: GaussianEntropyModel,
        received: ReceivedFrame,
        height: int,
        width: int,
        first_desynced_scale: int,
        aux_refinement: bool,
        state_mismatch: bool = False,
    ) -> None:
        self.entropy = entropy
        self.received = received
        self.height, self.width = height, width
        self.first_desynced_scale = first_desynced_scale
        self.aux_refinement = aux_refinement
        self.state_mismatch = state_mismatch
        self.outcomes: list[ScaleOutcome] = []

    def y_hat(
        self,
        k: int,
        y: torch.Tensor | None,
        mu: torch.Tensor,
        sigma: torch.Tensor,
        q: torch.Tensor,
    ) -> torch.Tensor:
        em = self.entropy
        rows, cols = coded_size(self.height, self.width, k)
        indexes = em.table_indexes(sigma[..., :rows, :cols], q)
        outcome = self.scale_outcome(k, indexes)
        if outcome is ScaleOutcome.DECODED:
            try:
                region = em.decompress(
                    self.received.scales[k].data, indexes, like=mu[..., :rows, :cols]
                )
            except EntropyCodingError:
                outcome = ScaleOutcome.CORRUPT
            else:
                self.outcomes.append(outcome)
                symbols = torch.zeros_like(mu)
                symbols[..., :rows, :cols] = region
                return em.dequantize(symbols, mu, q)
        self.outcomes.append(outcome)
        if k < self.first_desynced_scale:
            self.first_desynced_scale = 1 if self.aux_refinement else k
        return mu

    def scale_outcome(self, k: int, indexes: np.ndarray) -> ScaleOutcome:
        """Whether scale k may be entropy-decoded (DESIGN 1-2): received intact (CRC), every
        lower scale decoded, k < D, the decoder state the frame assumes, and a sync tag equal
        to the hash of ``indexes``."""
        payload = self.received.scales.get(k)
        if payload is None:
            return ScaleOutcome.MISSING
        if self.state_mismatch:
            return ScaleOutcome.STATE_MISMATCH
        if any(o is not ScaleOutcome.DECODED for o in self.outcomes):
            return ScaleOutcome.SKIPPED
        if k >= self.first_desynced_scale:
            return ScaleOutcome.DESYNCED
        if zlib.crc32(payload.data) != payload.crc32:
            return ScaleOutcome.CORRUPT
        if self.entropy.sync_tag(indexes) != payload.sync_tag:
            return ScaleOutcome.SYNC_MISMATCH
        return ScaleOutcome.DECODED


@dataclass(frozen=True)
class _Coded:
    """What the encoder keeps of one coded frame for mirrored recovery: the frame as a
    receiver gets it whole, the lambda of the frame before it (None for the first), and the
    reference state it was coded against."""

    frame: ReceivedFrame
    lam_before: float | None
    state_before: _ReferenceState


class Encoder:
    """Encodes frames one at a time; owns its reference buffers.

    A frame whose index is a multiple of ``gop`` is a full intra frame (I). ``encode(...,
    resync_from=j)`` codes a re-sync frame (R): scales >= j use the intra constants as temporal
    references and their buffers are reset, exactly as the decoder will do.
    ``encode(..., mirror=(f, j))`` codes a mirrored recovery frame (M): an ordinary inter frame
    against the state of a decoder that was in sync before frame f and has substituted every
    scale >= j since (``mirrored_state``), falling back to a re-sync from j when it cannot
    rebuild that state. j = 0 names the state such a decoder kept from before frame f (the
    frames since skipped), which it accepts after any number of further losses.
    ``entropy_workers`` threads, or with ``entropy_parallel="process"`` processes, code each
    scale's slices (``GaussianEntropyModel``); the bytes do not depend on either.
    ``motion``: estimate a block motion field for every inter frame against the source
    picture its newest reference came from (``codec.stream.motion``); off, every field is
    zero (the paper's co-located references).
    """

    def __init__(
        self,
        model: DHVC,
        gop: int = 32,
        device: str | torch.device | None = None,
        entropy_workers: int = 1,
        entropy_parallel: Parallel = "thread",
        motion: bool = True,
    ):
        if gop < 1:
            raise ValueError("gop must be >= 1")
        self.gop = gop
        self.motion = motion
        self._ctx = _CodingContext(model, device, entropy_workers, entropy_parallel)
        self.frame_index = 0
        self._history: deque[_Coded] = deque(maxlen=MAX_MIRROR_AGE)
        self._sources: dict[int, np.ndarray] = {}  # recent sources' motion_luma
        self._size: tuple[int, int] | None = None

    @property
    def model(self) -> DHVC:
        return self._ctx.model

    @torch.inference_mode()
    @coding_threads()
    def encode(
        self,
        frame: np.ndarray,
        lam: float,
        resync_from: int | None = None,
        mirror: tuple[int, int] | None = None,
        echoed: int | None = None,
    ) -> EncodedFrame:
        """Encode one H x W x 3 frame (uint8, or float32 in [0, 1]) at rate parameter ``lam``;
        ``resync_from`` j asks for a re-sync frame, ``mirror`` (f, j) for a mirrored recovery
        frame (at most one of them); ``echoed``: the scale the decoder's echo named for frame
        f, which decides whether it kept its state from before an I, R or M frame f
        (``mirrored_state``)."""
        ctx = self._ctx
        height, width = frame.shape[:2]
        if resync_from is not None and mirror is not None:
            raise ValueError("ask for a re-sync or a mirrored recovery frame, not both")
        if self._size not in (None, (height, width)):
            self._history.clear()  # another frame size: no state to mirror
            self._sources.clear()
        self._size = (height, width)
        mirror_from = None
        if mirror is not None and self.frame_index % self.gop != 0:
            state = self.mirrored_state(*mirror, echoed=echoed)
            if state is None:
                resync_from = max(mirror[1], 1)  # cannot rebuild that state: the paper's re-sync
            else:
                ctx.state = state
                mirror_from = mirror[0]
        if self.frame_index % self.gop == 0:
            frame_type, resync = FrameType.I, 1
        elif mirror_from is not None:
            frame_type, resync = FrameType.M, mirror[1]  # type: ignore[index]
        elif resync_from is not None:
            if not 1 <= resync_from <= NUM_SCALES:
                raise ValueError(f"resync_from must be in 1..{NUM_SCALES}, got {resync_from}")
            frame_type, resync = FrameType.R, resync_from
        else:
            frame_type, resync = FrameType.P, 0
        if resync and frame_type is not FrameType.M:
            ctx.state.reset_from(resync)
        state_before = ctx.state.copy()
        luma = motion_luma(frame) if self.motion else None
        field = self._motion_field(luma, frame_type, ctx.state.newest, (height, width))
        ctx.state = ctx.state.shifted(field)

        x = pad_to_multiple(frame_to_tensor(frame, ctx.device))
        size_64 = (x.shape[-2] // PAD_MULTIPLE, x.shape[-1] // PAD_MULTIPLE)
        e, q = ctx.lam_conditioning(lam)
        obs = ctx.model.observe(x, e)
        picker = EncodingPicker(ctx.entropy, height, width)
        aux = ctx.model.aux_features(ctx.state.x_prev, 1, size_64)
        result = ctx.model.top_down(e, q, ctx.state.refs, aux, size_64, obs, picker)
        ctx.state.push(result.d, result.x_hat, self.frame_index)
        section = pack_motion(field)
        first = picker.payloads[0]
        picker.payloads[0] = ScalePayload(
            section + first.data, zlib.crc32(section + first.data), first.sync_tag
        )
        picker.estimated_bits[0] += 8 * len(section)
        encoded = EncodedFrame(
            frame_index=self.frame_index,
            frame_type=frame_type,
            lam=float(lam),
            resync_from=resync,
            height=height,
            width=width,
            scales=tuple(picker.payloads),
            estimated_bits=tuple(picker.estimated_bits),
            x_hat=tensor_to_frame(result.x_hat, height, width),
            mirror_from=mirror_from,
        )
        lam_before = self._history[-1].frame.lam if self._history else None
        if self._history and self._history[-1].frame.frame_index != self.frame_index - 1:
            lam_before = None
        self._history.append(_Coded(encoded.received(), lam_before, state_before))
        if luma is not None:
            self._sources[self.frame_index] = luma
        self._sources.pop(self.frame_index - MAX_MIRROR_AGE - 1, None)
        self.frame_index += 1
        return encoded

    def _motion_field(
        self,
        luma: np.ndarray | None,
        frame_type: FrameType,
        newest: int | None,
        size: tuple[int, int],
    ) -> np.ndarray:
        """The motion field of the frame about to be coded (``luma``: its ``motion_luma``,
        None with motion off) against the source of its newest reference (``newest``, the
        frame index the reference state holds last: t - 1, or older for a state kept from
        before a loss): zero for an I frame, with motion off, or when that source is not
        kept."""
        reference = None if newest is None else self._sources.get(newest)
        if luma is None or frame_type is FrameType.I or reference is None:
            return zero_field(*size)
        return estimate_motion(luma, reference, *size)

    def mirrored_state(
        self, frame_index: int, scale: int, echoed: int | None = None
    ) -> _ReferenceState | None:
        """The reference state of a decoder in state (f, j) = (``frame_index``, ``scale``) now:
        in sync before frame f, every scale >= j substituted by its mean from f on, the lower
        scales decoded as sent (DESIGN 2). Rebuilt by decoding the kept frames f.. again with
        a ``Decoder`` that receives only their scales below j. j = 0: the state a decoder that
        fell out of sync at frame f keeps from before it (``Decoder``): the state frame f was
        coded against (after an R or I frame's reset; for an M frame the state it assumed).
        For a P frame that is what the decoder held whatever arrived of f; for an I, R or M
        frame only if the decoder knew its header, which ``echoed`` >= 2 (the scale its echo
        named: scale 1 of f was decoded) guarantees: a decoder that received nothing of f takes
        it for a P frame. None when that state cannot be rebuilt exactly:

        * frame f is older than the kept history (``MAX_MIRROR_AGE`` frames) or not yet coded;
        * j = 0, frame f is not a P frame and ``echoed`` is not at least 2;
        * j = 1 and frame f is not a P frame, or a later one is an I or R frame, or lambda
          changed: a decoder that lost scale 1 may not have received their headers, so
          whether it reset buffers, or which lambda it used, is unknown;
        * the replay does not end in state (f, j) (e.g. a re-sync from <= j since f).

        M frames after f are replayed as refused (every scale substituted, no reset): a decoder
        in state (f, j) did not decode them."""
        if not 0 <= scale <= NUM_SCALES:
            raise ValueError(f"the mirrored state's scale must be in 0..{NUM_SCALES}, got {scale}")
        kept = [c for c in self._history if c.frame.frame_index >= frame_index]
        if not kept or kept[0].frame.frame_index != frame_index or self._size is None:
            return None
        first = kept[0].frame
        if scale == 0:
            header_known = echoed is not None and echoed >= 2
            if first.frame_type is FrameType.P or header_known:
                return kept[0].state_before.copy()
            return None
        if scale == 1:
            lambdas = {c.frame.lam for c in kept} | {kept[0].lam_before or first.lam}
            later_resync = any(c.frame.frame_type in (FrameType.I, FrameType.R) for c in kept)
            if first.frame_type is not FrameType.P or later_resync or len(lambdas) > 1:
                return None
        height, width = self._size
        replica = Decoder(
            self.model, height, width, context=self._ctx.with_state(kept[0].state_before.copy())
        )
        replica.last_lambda = kept[0].lam_before
        for index, coded in enumerate(kept):
            sent = coded.frame
            below = {k: p for k, p in sent.scales.items() if k < scale}
            if index == 0 and sent.frame_type is FrameType.M:
                # the decoder accepted it (state_before is the state it assumed): a P frame
                received = ReceivedFrame(sent.frame_index, sent.lam, 0, FrameType.P, below)
            elif sent.frame_type is FrameType.M:
                received = ReceivedFrame(sent.frame_index, sent.lam, None, None, {})
            else:
                received = ReceivedFrame(
                    sent.frame_index, sent.lam, sent.resync_from, sent.frame_type, below
                )
            replica.decode(received)
        if replica.mirror_state != (frame_index, scale):
            return None
        return replica._ctx.state


class Decoder:
    """Decodes whatever arrived of each frame (DESIGN 2-3); owns its reference buffers.

    Scale k of frame t is entropy-decoded only if it was received intact (CRC), every lower
    scale of the frame was entropy-decoded, k < D, and its sync tag matches the decoder's own
    table indexes. Otherwise y_hat_k = mu_k (mean substitution) and, if k < D, D becomes k.
    A frame with 1 <= resync_from <= D resets the buffers of scales >= resync_from and puts the
    decoder back in sync. With auxiliary refinement, any substitution sets D = 1.

    Mirrored recovery (DESIGN 3): the decoder's state is (f, D) (``mirror_state``) when it was
    in sync before frame f and D has not dropped since. An M frame assuming exactly that state
    is decoded as an ordinary inter frame from D = K + 1 (back in sync if all of it arrived).
    A decoder that falls out of sync at a frame f keeps the state it decoded f against (its
    state before f; after an I or R frame's reset; for an M frame, the state the M frame
    assumed) until it is back in sync, and an M frame assuming (f, 0) is decoded against that
    state (after any number of drops since f). A failed recovery thus leaves a state the next
    M frame can assume: its references age, but it never needs the substituted scales. Any
    other decoder treats an M frame as lost (every scale substituted,
    ``ScaleOutcome.STATE_MISMATCH``, no reset) and asks for an echo of its own state again.
    ``entropy_workers`` threads (or processes, ``entropy_parallel``) decode each scale's
    slices; the pictures do not depend on them. ``context``: share another coder's model and
    entropy model, with its own reference buffers (the encoder's mirror).
    """

    def __init__(
        self,
        model: DHVC,
        height: int,
        width: int,
        device: str | torch.device | None = None,
        entropy_workers: int = 1,
        entropy_parallel: Parallel = "thread",
        *,
        context: _CodingContext | None = None,
    ):
        if height < 1 or width < 1:
            raise ValueError(f"invalid frame size {width}x{height}")
        self.height, self.width = height, width
        self._ctx = context or _CodingContext(model, device, entropy_workers, entropy_parallel)
        self.first_desynced_scale = IN_SYNC
        self.desynced_since: int | None = None
        self.last_lambda: float | None = None
        self._before_desync: tuple[int, _ReferenceState] | None = None  # (f, state before f)

    @property
    def model(self) -> DHVC:
        return self._ctx.model

    def reset(self) -> None:
        """Back to the state of a new decoder (no references, in sync, no lambda seen), keeping
        the model and its entropy tables (building those is what a new decoder costs)."""
        self._ctx.state = _ReferenceState()
        self.first_desynced_scale = IN_SYNC
        self.desynced_since = None
        self.last_lambda = None
        self._before_desync = None

    @property
    def mirror_state(self) -> tuple[int, int] | None:
        """(f, D) when the decoder was in sync before frame f and D has not dropped since (the
        state an M frame may assume); None otherwise (in sync, or a state not that simple)."""
        if self.desynced_since is None:
            return None
        return self.desynced_since, self.first_desynced_scale

    def _motion(
        self, received: ReceivedFrame, usable: bool
    ) -> tuple[ReceivedFrame, np.ndarray, np.ndarray | None]:
        """The frame with scale 1's payload stripped of its motion section, the field to
        shift the references by (the frame's own when scale 1 arrived intact and ``usable``:
        scale 1 will be decoded if its sync tag agrees; else zero) and the field it carried
        (None when scale 1 did not arrive intact). A section that does not parse leaves scale
        1 corrupt."""
        payload = received.scales.get(1)
        field = zero_field(self.height, self.width)
        if payload is None or zlib.crc32(payload.data) != payload.crc32:
            return received, field, None
        sent = None
        try:
            sent, rest = unpack_motion(payload.data, self.height, self.width)
        except MotionError:
            stripped = ScalePayload(b"", 1, payload.sync_tag)  # crc32(b"") is 0: corrupt
        else:
            stripped = ScalePayload(rest, zlib.crc32(rest), payload.sync_tag)
            field = sent if usable else field
        return replace(received, scales={**received.scales, 1: stripped}), field, sent

    @torch.inference_mode()
    @coding_threads()
    def decode(self, received: ReceivedFrame) -> DecodedFrame:
        """Decode one frame from any subset of its scale payloads."""
        ctx = self._ctx
        cfg = ctx.model.config
        lam = received.lam if received.lam is not None else self.last_lambda
        if lam is None:
            lam = float(np.sqrt(cfg.lambda_min * cfg.lambda_max))
        lam = float(min(max(lam, cfg.lambda_min), cfg.lambda_max))
        self.last_lambda = lam
        resync = received.resync_from or 0
        frame_type = received.frame_type or FrameType.P
        if not 0 <= resync <= NUM_SCALES:
            resync = 0  # a header we cannot trust: decode as P, every scale as received
        refused = False
        if frame_type is FrameType.M and resync == 0:
            kept = self._before_desync
            refused = kept is None or kept[0] != received.mirror_from
            if not refused:
                ctx.state = kept[1].copy()  # type: ignore[index]
                self.first_desynced_scale = IN_SYNC
        elif frame_type is FrameType.M:
            refused = self.mirror_state != (received.mirror_from, resync)
            if not refused:
                self.first_desynced_scale = IN_SYNC
        elif resync:
            ctx.state.reset_from(resync)
            if resync <= self.first_desynced_scale:
                self.first_desynced_scale = IN_SYNC
        d_start = self.first_desynced_scale
        # what the frame was coded against: kept if the frame desyncs (mirrored recovery)
        state_before = None if refused else ctx.state.copy()
        received, field, sent = self._motion(received, usable=not refused and d_start > 1)
        # an M frame's field points into the state it assumed, an I frame's is zero
        sent = sent if frame_type in (FrameType.P, FrameType.R) else None
        ctx.state = ctx.state.shifted(field)
        picker = DecodingPicker(
            ctx.entropy, received, self.height, self.width, d_start, cfg.aux_refinement, refused
        )
        size_64 = (-(-self.height // PAD_MULTIPLE), -(-self.width // PAD_MULTIPLE))
        e, q = ctx.lam_conditioning(lam)
        aux = ctx.model.aux_features(ctx.state.x_prev, 1, size_64)
        result = ctx.model.top_down(e, q, ctx.state.refs, aux, size_64, None, picker)
        ctx.state.push(result.d, result.x_hat, received.frame_index)
        self.first_desynced_scale = picker.first_desynced_scale
        d_end = self.first_desynced_scale
        if d_end == IN_SYNC:
            self.desynced_since = None
            self._before_desync = None
        elif d_start == IN_SYNC:
            # an in-sync decoder refusing an M frame holds scales the encoder's state lacks
            self.desynced_since = None if refused else received.frame_index
            if state_before is not None:
                self._before_desync = (received.frame_index, state_before)
        elif d_end < d_start:
            self.desynced_since = None
        return DecodedFrame(
            frame_index=received.frame_index,
            frame_type=frame_type,
            lam=lam,
            resync_from=resync,
            x_hat=tensor_to_frame(result.x_hat, self.height, self.width),
            outcomes=tuple(picker.outcomes),
            first_desynced_scale=d_end,
            echo_scale=d_end if d_end < d_start or refused else None,
            desynced_since=self.desynced_since,
            motion=sent,
        )
