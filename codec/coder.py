"""``Encoder`` and ``Decoder``: real coding with reference buffers, mean substitution, the
first-desynchronised-scale rule D and re-synchronisation (DESIGN 1-3).

Both sides run ``DHVC.top_down`` with identical inputs, so mu_k and sigma_k (and therefore the
table indexes) agree bit for bit when the decoder is in sync. Each scale's bitstream carries a
sync tag (CRC32 of the encoder's table indexes); the decoder never entropy-decodes a scale whose
tag differs from the hash of its own indexes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from codec.entropy import EntropyCodingError, GaussianTable, sigma_boundaries, sync_tag
from codec.model import DHVC, PAD_MULTIPLE, TemporalRefs, coded_size, pad_to_multiple
from codec.types import (
    IN_SYNC,
    NUM_SCALES,
    DecodedFrame,
    EncodedFrame,
    FrameType,
    ReceivedFrame,
    ScaleOutcome,
    ScalePayload,
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
    """What encoder and decoder share: the model, the table, the device."""

    def __init__(self, model: DHVC, device: str | torch.device | None) -> None:
        self.device = torch.device(device) if device else next(model.parameters()).device
        self.model = model.to(self.device).eval()
        self.table = GaussianTable.build()
        self.boundaries = torch.from_numpy(sigma_boundaries()).to(self.device)
        self.state = _ReferenceState()

    def indexes(self, sigma: torch.Tensor) -> np.ndarray:
        """Table index of every element of sigma, flat uint8 (DESIGN 1)."""
        index = torch.bucketize(sigma.contiguous(), self.boundaries)
        return index.to(torch.uint8).flatten().cpu().numpy()

    def lam_conditioning(self, lam: float) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Lambda embedding and quantisation steps; lambda is rounded to float32 first, exactly
        as the frame header carries it, so both sides condition on the same value."""
        lo, hi = self.model.config.lambda_min, self.model.config.lambda_max
        if not lo <= lam <= hi:
            raise ValueError(f"lambda {lam} outside the model's range [{lo}, {hi}]")
        lam_t = torch.tensor([lam], dtype=torch.float32, device=self.device)
        return self.model.embed_lambda(lam_t), self.model.quant_steps(lam_t)


class Encoder:
    """Encodes frames one at a time; owns its reference buffers.

    A frame whose index is a multiple of ``gop`` is a full intra frame (I). ``encode(...,
    resync_from=j)`` codes a re-sync frame (R): scales >= j use the intra constants as temporal
    references and their buffers are reset, exactly as the decoder will do.
    """

    def __init__(self, model: DHVC, gop: int = 32, device: str | torch.device | None = None):
        if gop < 1:
            raise ValueError("gop must be >= 1")
        self.gop = gop
        self._ctx = _CodingContext(model, device)
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
        payloads: list[ScalePayload] = []
        estimates: list[float] = []

        def choose(k, s_up, mu, sigma_s, q_k):
            y = ctx.model.blocks[k - 1].posterior(obs[k - 1], s_up, e)
            rows, cols = coded_size(height, width, k)
            symbols = torch.zeros_like(mu)
            region = symbols[..., :rows, :cols]
            region.copy_(torch.round((y - mu)[..., :rows, :cols] / q_k))
            idx = ctx.indexes(sigma_s[..., :rows, :cols])
            flat = region.flatten().cpu().numpy().astype(np.int64)
            data = ctx.table.encode(flat, idx)
            payloads.append(ScalePayload(data, zlib.crc32(data), sync_tag(idx)))
            estimates.append(ctx.table.estimate_bits(flat, idx))
            return mu + q_k * symbols

        aux = ctx.model.aux_features(ctx.state.x_prev, 1, size_64)
        result = ctx.model.top_down(e, q, ctx.state.refs, aux, size_64, choose)
        ctx.state.push(result.d, result.x_hat)
        encoded = EncodedFrame(
            frame_index=self.frame_index,
            frame_type=frame_type,
            lam=float(lam),
            resync_from=resync,
            height=height,
            width=width,
            scales=tuple(payloads),
            estimated_bits=tuple(estimates),
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
    """

    def __init__(
        self, model: DHVC, height: int, width: int, device: str | torch.device | None = None
    ):
        if height < 1 or width < 1:
            raise ValueError(f"invalid frame size {width}x{height}")
        self.height, self.width = height, width
        self._ctx = _CodingContext(model, device)
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
        outcomes: list[ScaleOutcome] = []

        def choose(k, s_up, mu, sigma_s, q_k):
            rows, cols = coded_size(self.height, self.width, k)
            idx = ctx.indexes(sigma_s[..., :rows, :cols])
            outcome = self._scale_outcome(k, received, outcomes, idx)
            outcomes.append(outcome)
            if outcome is ScaleOutcome.DECODED:
                try:
                    flat = ctx.table.decode(received.scales[k].data, idx)
                except EntropyCodingError:
                    outcomes[-1] = ScaleOutcome.CORRUPT
                else:
                    symbols = torch.zeros_like(mu)
                    region = torch.from_numpy(flat).to(mu.dtype).reshape(*mu.shape[:-2], rows, cols)
                    symbols[..., :rows, :cols] = region.to(mu.device)
                    return mu + q_k * symbols
            if k < self.first_desynced_scale:
                self.first_desynced_scale = 1 if cfg.aux_refinement else k
            return mu

        size_64 = (-(-self.height // PAD_MULTIPLE), -(-self.width // PAD_MULTIPLE))
        e, q = ctx.lam_conditioning(lam)
        aux = ctx.model.aux_features(ctx.state.x_prev, 1, size_64)
        result = ctx.model.top_down(e, q, ctx.state.refs, aux, size_64, choose)
        ctx.state.push(result.d, result.x_hat)
        d_end = self.first_desynced_scale
        return DecodedFrame(
            frame_index=received.frame_index,
            frame_type=frame_type,
            lam=lam,
            resync_from=resync,
            x_hat=tensor_to_frame(result.x_hat, self.height, self.width),
            outcomes=tuple(outcomes),
            first_desynced_scale=d_end,
            echo_scale=d_end if d_end < d_start else None,
        )

    def _scale_outcome(
        self,
        k: int,
        received: ReceivedFrame,
        earlier: list[ScaleOutcome],
        indexes: np.ndarray,
    ) -> ScaleOutcome:
        payload = received.scales.get(k)
        if payload is None:
            return ScaleOutcome.MISSING
        if any(o is not ScaleOutcome.DECODED for o in earlier):
            return ScaleOutcome.SKIPPED
        if k >= self.first_desynced_scale:
            return ScaleOutcome.DESYNCED
        if zlib.crc32(payload.data) != payload.crc32:
            return ScaleOutcome.CORRUPT
        if sync_tag(indexes) != payload.sync_tag:
            return ScaleOutcome.SYNC_MISMATCH
        return ScaleOutcome.DECODED
