"""``Encoder`` and ``Decoder``: real coding with reference buffers, mean substitution, the
first-desynchronised-scale rule D and re-synchronisation (DESIGN 1-3).

Both sides run ``DHVC.top_down`` with identical inputs, so mu_k and sigma_k (and therefore the
table indexes) agree bit for bit when the decoder is in sync. They differ only in the
``LatentPicker`` they pass: ``EncodingPicker`` quantises and codes each scale, ``DecodingPicker``
decodes it or substitutes the mean; both ask the built ``GaussianEntropyModel`` for symbols and
bytes. Each scale's bitstream carries a sync tag (CRC32 of the encoder's table indexes); the
decoder never entropy-decodes a scale whose tag differs from the hash of its own indexes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from codec.entropy.gaussian import EntropyCodingError, GaussianEntropyModel, Parallel
from codec.model.config import check_lambda
from codec.model.dhvc import DHVC, PAD_MULTIPLE, TemporalRefs, pad_to_multiple
from codec.types import (
    IN_SYNC,
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
    ``x_prev`` is the previous reconstruction (auxiliary refinement only).
    """

    def __init__(self) -> None:
        self.refs: list[TemporalRefs] = [(None, None)] * NUM_SCALES
        self.x_prev: torch.Tensor | None = None

    def reset_from(self, j: int) -> None:
        """Reset the buffers of scales >= j, as a GOP start does for j = 1 (DESIGN 3)."""
        for k in range(j, NUM_SCALES + 1):
            self.refs[k - 1] = (None, None)
        if j == 1:
            self.x_prev = None

    def push(self, d: list[torch.Tensor], x_hat: torch.Tensor) -> None:
        self.refs = [(dk, r[0]) for dk, r in zip(d, self.refs, strict=True)]
        self.x_prev = x_hat


CODING_THREADS = 1
"""Intra-op threads every encode and decode runs on, whatever the process uses elsewhere.

Convolutions split their work by thread count, and float sums taken in another order round
differently in the last bits: enough to move a sigma across a table boundary, so a stream coded
on 2 threads and decoded on 1 loses sync with no packet missing. One fixed count makes mu and
sigma, hence the table indexes and the pictures, identical on every thread count (DESIGN 1,
Determinism). One thread is also the fastest policy on a busy 2-core machine, where a second
thread competes with whatever else runs there."""


@contextmanager
def coding_threads() -> Iterator[None]:
    """Run the enclosed coding on ``CODING_THREADS`` CPU threads, then restore the count."""
    before = torch.get_num_threads()
    if before != CODING_THREADS:
        torch.set_num_threads(CODING_THREADS)
    try:
        yield
    finally:
        if before != CODING_THREADS:
            torch.set_num_threads(before)


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
    outcome; ``first_desynced_scale`` is D, updated as scales are substituted."""

    def __init__(
        self,
        entropy: GaussianEntropyModel,
        received: ReceivedFrame,
        height: int,
        width: int,
        first_desynced_scale: int,
        aux_refinement: bool,
    ) -> None:
        self.entropy = entropy
        self.received = received
        self.height, self.width = height, width
        self.first_desynced_scale = first_desynced_scale
        self.aux_refinement = aux_refinement
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
        lower scale decoded, k < D, and a sync tag equal to the hash of ``indexes``."""
        payload = self.received.scales.get(k)
        if payload is None:
            return ScaleOutcome.MISSING
        if any(o is not ScaleOutcome.DECODED for o in self.outcomes):
            return ScaleOutcome.SKIPPED
        if k >= self.first_desynced_scale:
            return ScaleOutcome.DESYNCED
        if zlib.crc32(payload.data) != payload.crc32:
            return ScaleOutcome.CORRUPT
        if self.entropy.sync_tag(indexes) != payload.sync_tag:
            return ScaleOutcome.SYNC_MISMATCH
        return ScaleOutcome.DECODED


class Encoder:
    """Encodes frames one at a time; owns its reference buffers.

    A frame whose index is a multiple of ``gop`` is a full intra frame (I). ``encode(...,
    resync_from=j)`` codes a re-sync frame (R): scales >= j use the intra constants as temporal
    references and their buffers are reset, exactly as the decoder will do.
    ``entropy_workers`` threads, or with ``entropy_parallel="process"`` processes, code each
    scale's slices (``GaussianEntropyModel``); the bytes do not depend on either.
    """

    def __init__(
        self,
        model: DHVC,
        gop: int = 32,
        device: str | torch.device | None = None,
        entropy_workers: int = 1,
        entropy_parallel: Parallel = "thread",
    ):
        if gop < 1:
            raise ValueError("gop must be >= 1")
        self.gop = gop
        self._ctx = _CodingContext(model, device, entropy_workers, entropy_parallel)
        self.frame_index = 0

    @property
    def model(self) -> DHVC:
        return self._ctx.model

    @torch.inference_mode()
    @coding_threads()
    def encode(self, frame: np.ndarray, lam: float, resync_from: int | None = None) -> EncodedFrame:
        """Encode one H x W x 3 frame (uint8, or float32 in [0, 1]) at rate parameter ``lam``."""
        ctx = self._ctx
        height, width = frame.shape[:2]
        if self.frame_index % self.gop == 0:
            frame_type, resync = FrameType.I, 1
        elif resync_from is not None:
            if not 1 <= resync_from <= NUM_SCALES:
                raise ValueError(f"resync_from must be in 1..{NUM_SCALES}, got {resync_from}")
            frame_type, resync = FrameType.R, resync_from
        else:
            frame_type, resync = FrameType.P, 0
        if resync:
            ctx.state.reset_from(resync)

        x = pad_to_multiple(frame_to_tensor(frame, ctx.device))
        size_64 = (x.shape[-2] // PAD_MULTIPLE, x.shape[-1] // PAD_MULTIPLE)
        e, q = ctx.lam_conditioning(lam)
        obs = ctx.model.observe(x, e)
        picker = EncodingPicker(ctx.entropy, height, width)
        aux = ctx.model.aux_features(ctx.state.x_prev, 1, size_64)
        result = ctx.model.top_down(e, q, ctx.state.refs, aux, size_64, obs, picker)
        ctx.state.push(result.d, result.x_hat)
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
        )
        self.frame_index += 1
        return encoded


class Decoder:
    """Decodes whatever arrived of each frame (DESIGN 2-3); owns its reference buffers.

    Scale k of frame t is entropy-decoded only if it was received intact (CRC), every lower
    scale of the frame was entropy-decoded, k < D, and its sync tag matches the decoder's own
    table indexes. Otherwise y_hat_k = mu_k (mean substitution) and, if k < D, D becomes k.
    A frame with 1 <= resync_from <= D resets the buffers of scales >= resync_from and puts the
    decoder back in sync. With auxiliary refinement, any substitution sets D = 1.
    ``entropy_workers`` threads (or processes, ``entropy_parallel``) decode each scale's
    slices; the pictures do not depend on them.
    """

    def __init__(
        self,
        model: DHVC,
        height: int,
        width: int,
        device: str | torch.device | None = None,
        entropy_workers: int = 1,
        entropy_parallel: Parallel = "thread",
    ):
        if height < 1 or width < 1:
            raise ValueError(f"invalid frame size {width}x{height}")
        self.height, self.width = height, width
        self._ctx = _CodingContext(model, device, entropy_workers, entropy_parallel)
        self.first_desynced_scale = IN_SYNC
        self.last_lambda: float | None = None

    @property
    def model(self) -> DHVC:
        return self._ctx.model

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
        if resync:
            ctx.state.reset_from(resync)
            if resync <= self.first_desynced_scale:
                self.first_desynced_scale = IN_SYNC
        d_start = self.first_desynced_scale
        picker = DecodingPicker(
            ctx.entropy, received, self.height, self.width, d_start, cfg.aux_refinement
        )
        size_64 = (-(-self.height // PAD_MULTIPLE), -(-self.width // PAD_MULTIPLE))
        e, q = ctx.lam_conditioning(lam)
        aux = ctx.model.aux_features(ctx.state.x_prev, 1, size_64)
        result = ctx.model.top_down(e, q, ctx.state.refs, aux, size_64, None, picker)
        ctx.state.push(result.d, result.x_hat)
        self.first_desynced_scale = picker.first_desynced_scale
        d_end = self.first_desynced_scale
        return DecodedFrame(
            frame_index=received.frame_index,
            frame_type=frame_type,
            lam=lam,
            resync_from=resync,
            x_hat=tensor_to_frame(result.x_hat, self.height, self.width),
            outcomes=tuple(picker.outcomes),
            first_desynced_scale=d_end,
            echo_scale=d_end if d_end < d_start else None,
        )
