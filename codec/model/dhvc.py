"""DHVC 2.0 transforms (paper sections 4-5): bottom-up encoder, four Latent Blocks with a
posterior branch, a contextual prior of STPBs, an entropy-coder path and a decoder path.

Notation follows the paper. For scale k (1 = 1/64 of the input side ... 4 = 1/8):

* ``obs_k``: bottom-up observation, (B, C_k, H/2^(7-k), W/2^(7-k));
* ``s_up``: upsampled spatial reference of scale k-1 (a learned constant for k = 1);
* ``y_k``: latent residual from the posterior (eq. 7), (B, Z_k, h, w);
* ``mu_k, sigma_k``: Gaussian prior from the contextual prediction network (eq. 8);
* ``q_k``: quantisation step per latent channel, a function of lambda (DESIGN 6);
* ``y_hat_k = mu_k + q_k * round((y_k - mu_k) / q_k)`` (or ``mu_k`` alone under mean
  substitution);
* ``s_k = s_up + conv(y_hat_k)``: spatial reference for the next scale (eq. 9);
* ``d_k``: decoded feature (eq. 10); ``d_k`` of the last two frames are the temporal references.

The model is separate from its entropy model (``codec.entropy.gaussian.GaussianEntropyModel``): it
produces latents and Gaussian parameters, and ``top_down`` asks a ``LatentPicker`` for each
y_hat_k. Training (``TrainingPicker``, here), encoding and decoding (``codec.stream.coder``)
differ only in the picker they pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from codec.entropy.gaussian import GaussianEntropyModel
from codec.model.config import ModelConfig
from codec.model.layers import (
    STPB,
    ConvNeXtBlock,
    LambdaEmbedding,
    Stage,
    downsample2,
    upsample2,
)
from codec.types import NUM_SCALES

PAD_MULTIPLE = 64
"""Inputs are padded to a multiple of this (the 1/64 scale must have integer size)."""

TemporalRefs = tuple[torch.Tensor | None, torch.Tensor | None]
"""(d_k of frame t-1, d_k of frame t-2); ``None`` means the learned intra constant."""


class LatentPicker(Protocol):
    """Supplies y_hat_k to ``DHVC.top_down``: training noise and straight-through rounding
    (``TrainingPicker``), quantising and coding (``codec.stream.coder``), or decoding a payload or
    substituting the mean (``codec.stream.coder``)."""

    def y_hat(
        self,
        k: int,
        y: torch.Tensor | None,
        mu: torch.Tensor,
        sigma: torch.Tensor,
        q: torch.Tensor,
    ) -> torch.Tensor:
        """y_hat_k, (B, Z_k, h, w), from the posterior latent ``y`` (``None`` when decoding),
        the prior's ``mu`` and ``sigma`` (latent units, eq. 8) and the step ``q``,
        (B, Z_k, 1, 1)."""
        ...


class TrainingPicker:
    """Training's y_hat (paper 4.3): noisy residuals for the rate, straight-through rounding
    for the reconstruction (``GaussianEntropyModel.training_forward``). ``bits`` collects
    each scale's estimated bits per sample, (B,), in scale order.

    ``first_lost``, (B,) int64 or ``None``: sample b's scales k >= first_lost[b] were lost in
    this frame, so its decoder substitutes the mean, y_hat_k = mu_k (DESIGN 2); their bits still
    count (the encoder sent them). K + 1 means nothing lost."""

    def __init__(
        self, entropy_model: GaussianEntropyModel, first_lost: torch.Tensor | None = None
    ) -> None:
        self.entropy_model = entropy_model
        self.first_lost = first_lost
        self.bits: list[torch.Tensor] = []

    def y_hat(
        self,
        k: int,
        y: torch.Tensor | None,
        mu: torch.Tensor,
        sigma: torch.Tensor,
        q: torch.Tensor,
    ) -> torch.Tensor:
        if y is None:
            raise ValueError("training needs the posterior latent")
        y_hat, bits = self.entropy_model.training_forward(y, mu, sigma, q)
        self.bits.append(bits.flatten(1).sum(1))
        if self.first_lost is None:
            return y_hat
        return torch.where((self.first_lost <= k).view(-1, 1, 1, 1), mu, y_hat)


@dataclass(frozen=True)
class LossEvents:
    """Packet loss simulated in training clips (loss-aware training, DESIGN 3's mirrored
    recovery): sample b loses scales k >= ``scale[b]`` in frames ``frame[b]`` ..
    ``frame[b] + span[b] - 1``; its decoder substitutes their means (the D rule, until the
    encoder hears the echo), and from frame ``frame[b] + span[b]`` on the encoder codes
    ordinary inter frames against the decoder's state, which it mirrors exactly, so the later
    frames' temporal references are the ones the substitution built. All (B,) int64;
    ``frame[b] = -1`` for a clip without loss."""

    frame: torch.Tensor
    scale: torch.Tensor
    span: torch.Tensor

    def first_lost_scale(self, t: int) -> torch.Tensor:
        """(B,) first substituted scale of frame t per sample, K + 1 where none."""
        active = (self.frame >= 0) & (self.frame <= t) & (t < self.frame + self.span)
        return torch.where(active, self.scale, torch.full_like(self.scale, NUM_SCALES + 1))


def _convnext_stage(cfg: ModelConfig, channels: int, n: int) -> Stage:
    return Stage(
        [ConvNeXtBlock(channels, cfg.embed_dim, cfg.kernel_size, cfg.mlp_ratio) for _ in range(n)]
    )


class LatentBlock(nn.Module):
    """The Latent Block of one scale (paper Fig. 5)."""

    def __init__(self, cfg: ModelConfig, k: int) -> None:
        super().__init__()
        c, z = cfg.widths[k - 1], cfg.latent_channels[k - 1]
        n_ctx_inputs = 4 if cfg.aux_refinement else 3
        # Contextual prediction network (eq. 8): [s_up, t1, t2, (aux)] -> STPBs -> (mu, sigma).
        self.ctx_in = nn.Conv2d(n_ctx_inputs * c, c, 1)
        # prior_conv_blocks ConvNeXt blocks first (none in the paper's layout), each starting
        # as the identity (last 1x1 at zero), then the STPBs.
        self.ctx_conv = Stage(
            [
                ConvNeXtBlock(c, cfg.embed_dim, cfg.kernel_size, cfg.mlp_ratio, zero_init=True)
                for _ in range(cfg.prior_conv_blocks[k - 1])
            ]
        )
        self.ctx = Stage(
            [STPB(c, cfg.embed_dim, cfg.mlp_ratio) for _ in range(cfg.prior_blocks[k - 1])]
        )
        self.ctx_out = nn.Conv2d(c, 2 * z, 1)
        # Posterior (eq. 7): [obs_k, s_up] -> y_k; with posterior_context [obs_k, s_up, ctx].
        self.posterior_context = cfg.posterior_context
        self.post_in = nn.Conv2d((3 if cfg.posterior_context else 2) * c, c, 1)
        self.post = _convnext_stage(cfg, c, 1)
        self.post_out = nn.Conv2d(c, z, 1)
        # Entropy-coder path (eq. 9).
        self.s_update = nn.Conv2d(z, c, 1)
        # Decoder path (eq. 10): [d_up, ctx, s_k] -> d_k.
        self.dec_in = nn.Conv2d(3 * c, c, 1)
        self.dec = _convnext_stage(cfg, c, cfg.dec_blocks[k - 1])

    def context(
        self,
        s_up: torch.Tensor,
        t1: torch.Tensor,
        t2: torch.Tensor,
        aux: torch.Tensor | None,
        e: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 8: context features, mu and sigma (latent units; see
        ``GaussianEntropyModel.symbol_sigma``)."""
        inputs = [s_up, t1, t2] if aux is None else [s_up, t1, t2, aux]
        ctx = self.ctx(self.ctx_conv(self.ctx_in(torch.cat(inputs, dim=1)), e), e)
        mu, sigma_raw = self.ctx_out(ctx).chunk(2, dim=1)
        sigma = F.softplus(sigma_raw) + 1e-3
        return ctx, mu, sigma

    def posterior(
        self, obs: torch.Tensor, s_up: torch.Tensor, ctx: torch.Tensor, e: torch.Tensor
    ) -> torch.Tensor:
        """Eq. 7: latent residual y_k from the observation and the spatial reference, and from
        the context features ``ctx`` when the model's ``posterior_context`` is on."""
        inputs = [obs, s_up, ctx] if self.posterior_context else [obs, s_up]
        return self.post_out(self.post(self.post_in(torch.cat(inputs, dim=1)), e))

    def update(
        self,
        s_up: torch.Tensor,
        d_up: torch.Tensor,
        ctx: torch.Tensor,
        y_hat: torch.Tensor,
        e: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eqs. 9-10: (s_k, d_k) from the decoded latent."""
        s = s_up + self.s_update(y_hat)
        d = self.dec(self.dec_in(torch.cat([d_up, ctx, s], dim=1)), e)
        return s, d


class AuxExtractor(nn.Module):
    """Auxiliary refinement (eq. 12): multiscale features of the previous reconstruction."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.patchify = nn.Conv2d(3, cfg.width_patch, 4, stride=4)
        chans = [cfg.width_patch, *reversed(cfg.widths)]  # 1/4, 1/8, 1/16, 1/32, 1/64
        self.downs = nn.ModuleList(downsample2(chans[i], chans[i + 1]) for i in range(NUM_SCALES))

    def forward(self, x_prev: torch.Tensor) -> list[torch.Tensor]:
        """Features for scales 1..K (index k-1)."""
        h = self.patchify(x_prev)
        feats = []
        for down in self.downs:
            h = down(F.gelu(h))
            feats.append(h)
        return feats[::-1]


@dataclass
class FrameResult:
    """One frame through the top-down path: decoded features d_1..d_K and the reconstruction."""

    d: list[torch.Tensor]
    x_hat: torch.Tensor


class DHVC(nn.Module):
    """The DHVC 2.0 model: one network for intra and inter frames at every lambda."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        widths = cfg.widths
        self.embed = LambdaEmbedding(cfg.embed_dim, cfg.lambda_min, cfg.lambda_max)
        # Bottom-up encoder: stride-4 patchify, ConvNeXt blocks, stride-2 downsampling.
        self.patchify = nn.Conv2d(3, cfg.width_patch, 4, stride=4)
        self.enc_patch = _convnext_stage(cfg, cfg.width_patch, cfg.enc_blocks_patch)
        down_from = [widths[1], widths[2], widths[3], cfg.width_patch]  # into scale k from k+1
        self.enc_down = nn.ModuleList(downsample2(down_from[k], widths[k]) for k in range(4))
        self.enc_stages = nn.ModuleList(
            _convnext_stage(cfg, widths[k], cfg.enc_blocks[k]) for k in range(NUM_SCALES)
        )
        # Top-down Latent Blocks.
        self.blocks = nn.ModuleList(LatentBlock(cfg, k) for k in range(1, NUM_SCALES + 1))
        self.up_s = nn.ModuleList(upsample2(widths[k - 1], widths[k]) for k in range(1, 4))
        self.up_d = nn.ModuleList(upsample2(widths[k - 1], widths[k]) for k in range(1, 4))
        self.s0 = nn.Parameter(torch.zeros(1, widths[0], 1, 1))
        self.d0 = nn.Parameter(torch.zeros(1, widths[0], 1, 1))
        # Learnable constant temporal references for intra coding (two per scale).
        self.intra_refs = nn.ParameterList(
            nn.Parameter(0.1 * torch.randn(2, widths[k], 1, 1)) for k in range(NUM_SCALES)
        )
        # Lambda-dependent quantisation step per latent channel: log q = a + b (t - 1/2), t the
        # normalised log lambda; b starts at -span/2 so that q ~ lambda^(-1/2) (MSE step law).
        span = math.log(cfg.lambda_max) - math.log(cfg.lambda_min)
        self.log_q = nn.ParameterList(
            nn.Parameter(torch.zeros(1, z, 1, 1)) for z in cfg.latent_channels
        )
        self.log_q_slope = nn.ParameterList(
            nn.Parameter(torch.full((1, z, 1, 1), -0.5 * span)) for z in cfg.latent_channels
        )
        # Synthesis from d_K (1/8) to the picture.
        self.synth_up = upsample2(widths[3], cfg.width_patch)
        self.synth = _convnext_stage(cfg, cfg.width_patch, cfg.dec_blocks_patch)
        self.synth_out = nn.Sequential(nn.Conv2d(cfg.width_patch, 48, 1), nn.PixelShuffle(4))
        if cfg.aux_refinement:
            self.aux = AuxExtractor(cfg)
            self.aux_const = nn.ParameterList(
                nn.Parameter(torch.zeros(1, widths[k], 1, 1)) for k in range(NUM_SCALES)
            )
        # The entropy model of the latents (no parameters; its coding tables are built by
        # the coder). Training asks it for bits.
        self.entropy_model = GaussianEntropyModel(cfg.smooth_sigma_bound)

    # -- pieces -----------------------------------------------------------------------------

    def embed_lambda(self, lam: torch.Tensor) -> torch.Tensor:
        """(B,) lambdas -> (B, E) embedding."""
        return self.embed(lam)

    def quant_steps(self, lam: torch.Tensor) -> list[torch.Tensor]:
        """Quantisation steps q_k, each (B, Z_k, 1, 1), for (B,) lambdas, in the dtype and on
        the device of ``lam`` (the coder asks in float64 on the CPU, ``codec.stream.coder``)."""
        lo, hi = math.log(self.config.lambda_min), math.log(self.config.lambda_max)
        t = ((torch.log(lam) - lo) / (hi - lo) - 0.5).view(-1, 1, 1, 1)
        return [
            torch.exp(a.to(lam) + b.to(lam) * t)
            for a, b in zip(self.log_q, self.log_q_slope, strict=True)
        ]

    def observe(self, x: torch.Tensor, e: torch.Tensor) -> list[torch.Tensor]:
        """Bottom-up encoder: (B, 3, H, W) padded input -> [obs_1, ..., obs_K]."""
        h = self.enc_patch(self.patchify(x), e)
        obs = []
        for k in reversed(range(NUM_SCALES)):
            h = self.enc_stages[k](self.enc_down[k](h), e)
            obs.append(h)
        return obs[::-1]

    def temporal_refs(self, k: int, refs: TemporalRefs, like: torch.Tensor) -> list[torch.Tensor]:
        """Materialise (t1, t2) of scale k, substituting intra constants for ``None``."""
        const = self.intra_refs[k - 1]
        b, _, h, w = like.shape
        return [
            const[i : i + 1].expand(b, -1, h, w) if r is None else r for i, r in enumerate(refs)
        ]

    def aux_features(
        self, x_prev: torch.Tensor | None, b: int, hw: tuple[int, int]
    ) -> list[torch.Tensor] | None:
        """Auxiliary features per scale (eq. 12), or ``None`` when the flag is off.

        ``hw`` is the size of scale 1; without a previous picture (intra, full re-sync) the
        learned constants stand in."""
        if not self.config.aux_refinement:
            return None
        if x_prev is None:
            return [c.expand(b, -1, hw[0] << k, hw[1] << k) for k, c in enumerate(self.aux_const)]
        return self.aux(x_prev)

    def top_down(
        self,
        e: torch.Tensor,
        q: list[torch.Tensor],
        refs: list[TemporalRefs],
        aux: list[torch.Tensor] | None,
        size_64: tuple[int, int],
        obs: list[torch.Tensor] | None,
        picker: LatentPicker,
    ) -> FrameResult:
        """The top-down pass shared by training, encoding and decoding.

        ``q`` are the quantisation steps (``quant_steps``); ``size_64`` is the (h, w) of scale 1
        (padded input size / 64); ``obs`` the bottom-up observations (``observe``), from which
        the posterior latent y_k is computed, or ``None`` when decoding. ``picker`` supplies
        each y_hat_k; everything else is computed identically on both sides of the channel.
        """
        b = e.shape[0]
        s_up = self.s0.expand(b, -1, *size_64)
        d_up = self.d0.expand(b, -1, *size_64)
        ds: list[torch.Tensor] = []
        s = d = s_up
        for k in range(1, NUM_SCALES + 1):
            block = self.blocks[k - 1]
            if k > 1:
                s_up, d_up = self.up_s[k - 2](s), self.up_d[k - 2](d)
            t1, t2 = self.temporal_refs(k, refs[k - 1], s_up)
            ctx, mu, sigma = block.context(s_up, t1, t2, None if aux is None else aux[k - 1], e)
            y = None if obs is None else block.posterior(obs[k - 1], s_up, ctx, e)
            y_hat = picker.y_hat(k, y, mu, sigma, q[k - 1])
            s, d = block.update(s_up, d_up, ctx, y_hat, e)
            ds.append(d)
        x_hat = self.synth_out(self.synth(self.synth_up(d), e))
        return FrameResult(ds, x_hat)

    # -- training ---------------------------------------------------------------------------

    def forward(
        self, x_seq: torch.Tensor, lam: torch.Tensor, loss_events: LossEvents | None = None
    ) -> TrainOutput:
        """Training pass over a sequence (paper 4.3, eq. 15).

        x_seq: (B, T, 3, H, W) in [0, 1], H and W multiples of 64; lam: (B,).
        Rates use additive uniform noise; the reconstruction path uses straight-through
        rounding (``TrainingPicker``). Frame 0 is intra; frame t uses d_k of frames t-1 and t-2.
        ``loss_events``: scales substituted by their means as a decoder does after a loss,
        and the later frames coded against that state (``LossEvents``).
        """
        b, n_frames, _, h, w = x_seq.shape
        e = self.embed_lambda(lam)
        q = self.quant_steps(lam)
        refs: list[TemporalRefs] = [(None, None)] * NUM_SCALES
        x_prev: torch.Tensor | None = None
        bits, x_hats = [], []
        for t in range(n_frames):
            obs = self.observe(x_seq[:, t], e)
            first_lost = None if loss_events is None else loss_events.first_lost_scale(t)
            picker = TrainingPicker(self.entropy_model, first_lost)
            aux = self.aux_features(x_prev, b, (h // 64, w // 64))
            result = self.top_down(e, q, refs, aux, (h // 64, w // 64), obs, picker)
            refs = [(d, r[0]) for d, r in zip(result.d, refs, strict=True)]
            x_prev = result.x_hat
            bits.append(torch.stack(picker.bits, dim=1))  # (B, K)
            x_hats.append(result.x_hat)
        return TrainOutput(bits=torch.stack(bits, dim=1), x_hat=torch.stack(x_hats, dim=1))


@dataclass
class TrainOutput:
    """bits: (B, T, K) estimated bits per frame and scale; x_hat: (B, T, 3, H, W)."""

    bits: torch.Tensor
    x_hat: torch.Tensor


def widen_posterior_inputs(
    tensors: dict[str, torch.Tensor], shapes: dict[str, torch.Size]
) -> dict[str, torch.Tensor]:
    """``tensors`` (named as in a model's state dict) fitted to a model with
    ``posterior_context`` whose parameter shapes are ``shapes``: each posterior input weight
    (``blocks.N.post_in.weight``) that lacks the context's input channels gets them as zeros,
    so the widened model computes exactly what the narrower one did. The same holds for
    tensors shaped like the weights (the optimizer's moments). Everything else is returned
    unchanged; a shape that differs in any other way is left for the caller to refuse."""
    out = dict(tensors)
    for name, tensor in tensors.items():
        want = shapes.get(name)
        if not name.endswith(".post_in.weight") or want is None or tensor.shape == want:
            continue
        if tensor.dim() == 4 and want[0] == tensor.shape[0] and want[2:] == tensor.shape[2:]:
            extra = want[1] - tensor.shape[1]
            if extra > 0:
                zeros = tensor.new_zeros(tensor.shape[0], extra, *tensor.shape[2:])
                out[name] = torch.cat([tensor, zeros], dim=1)
    return out


def pad_to_multiple(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Replicate-pad (B, 3, H, W) on the bottom and right to a multiple of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters())
