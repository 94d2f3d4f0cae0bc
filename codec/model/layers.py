"""Building blocks of DHVC 2.0 (paper section 5): lambda embedding, AdaLN ConvNeXt blocks and
Spatial-Temporal Prediction Blocks (STPB).

All feature maps are NCHW float32; ``e`` is the lambda embedding, shape (B, E).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

# CPU training kernels (``cpu_training_kernels``): off everywhere else, so that the coder's
# arithmetic never depends on them.
_CPU_KERNELS = {"on": False, "bf16": False}


@contextlib.contextmanager
def cpu_training_kernels(bf16: bool = True) -> Iterator[None]:
    """Within this context, the blocks train faster on the CPU (the trainer's CPU path):

    * depth-wise convolutions compute their weight gradient as one grouped convolution with
      the batch folded into the groups, about 2.5x faster than oneDNN's depth-wise weight
      gradient on channels-last maps (their forward and input gradient are oneDNN's own);
    * with ``bf16``, the 1x1 MLPs run under bfloat16 autocast, which the CPU's AMX units run
      3-4x faster than float32 (normalisation, depth-wise convolutions, likelihoods and the
      residual stream stay float32).

    The forward functions are the same; only the rounding of the MLPs differs under ``bf16``.
    Encoding and decoding never enter this context."""
    saved = dict(_CPU_KERNELS)
    _CPU_KERNELS.update(on=True, bf16=bf16)
    try:
        yield
    finally:
        _CPU_KERNELS.update(saved)


class _DepthwiseConv(torch.autograd.Function):
    """A depth-wise convolution (stride 1, 'same' padding) whose weight gradient is computed as
    one grouped convolution of the input with the output gradient, the batch folded into the
    groups."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding: int, dilation: int):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation = padding, dilation
        return F.conv2d(x, weight, bias, padding=padding, dilation=dilation, groups=x.shape[1])

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        b, c, h, w = x.shape
        pad, dil = ctx.padding, ctx.dilation
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out,
                x,
                weight,
                None,
                [1, 1],
                [pad, pad],
                [dil, dil],
                False,
                [0, 0],
                c,
                [True, False, False],
            )[0]
        if ctx.needs_input_grad[1]:
            corr = F.conv2d(
                x.contiguous().view(1, b * c, h, w),
                grad_out.contiguous().view(b * c, 1, h, w),
                padding=pad,
                groups=b * c,
            )  # (1, B*C, 2 pad + 1, 2 pad + 1): the correlation at every shift
            grad_w = corr.view(b, c, *corr.shape[-2:]).sum(0)[:, ::dil, ::dil].unsqueeze(1)
        if ctx.needs_input_grad[2]:
            grad_b = grad_out.sum(dim=(0, 2, 3))
        return grad_x, grad_w, grad_b, None, None


def depthwise(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a depth-wise 'same' convolution; inside ``cpu_training_kernels``, with
    the faster weight gradient."""
    if not (_CPU_KERNELS["on"] and torch.is_grad_enabled() and x.device.type == "cpu"):
        return conv(x)
    return _DepthwiseConv.apply(x, conv.weight, conv.bias, conv.padding[0], conv.dilation[0])


def _bf16(x: torch.Tensor) -> torch.autocast:
    on = _CPU_KERNELS["on"] and _CPU_KERNELS["bf16"] and x.device.type == "cpu"
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=on)


def mlp(pw1: nn.Conv2d, pw2: nn.Conv2d, h: torch.Tensor) -> torch.Tensor:
    """``pw2(gelu(pw1(h)))``; inside ``cpu_training_kernels(bf16=True)``, under bfloat16
    autocast (the result is then bfloat16; the gated residual adds it in float32)."""
    with _bf16(h):
        return pw2(F.gelu(pw1(h)))


def pointwise_gelu(conv: nn.Conv2d, h: torch.Tensor) -> torch.Tensor:
    """``gelu(conv(h))`` for a 1x1 ``conv``, in float32; inside ``cpu_training_kernels(
    bf16=True)``, the convolution and GELU run in bfloat16."""
    with _bf16(h):
        return F.gelu(conv(h)).float()


class ChannelNorm(nn.Module):
    """LayerNorm over the channel dimension of an NCHW map, without affine parameters
    (the affine part comes from AdaLN)."""

    def __init__(self, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
            # Channels-last (the trainer's layout): the channels are the innermost dimension,
            # so one fused layer_norm kernel does it, about 4x faster forward and backward on
            # the CPU than the five element-wise passes below. Same function; it rounds
            # differently in the last bit, so the coder's NCHW path below stays untouched.
            return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], eps=self.eps).permute(
                0, 3, 1, 2
            )
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        return (x - mean) * torch.rsqrt(var + self.eps)


class AdaLN(nn.Module):
    """Adaptive LayerNorm: shift, scale and output gate predicted from the lambda embedding."""

    def __init__(self, channels: int, embed_dim: int, gate_init: float = 0.1) -> None:
        super().__init__()
        self.norm = ChannelNorm()
        self.mod = nn.Linear(embed_dim, 3 * channels)
        nn.init.zeros_(self.mod.weight)
        with torch.no_grad():
            self.mod.bias.zero_()
            self.mod.bias[2 * channels :] = gate_init

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (modulated normalised x, gate); gate has shape (B, C, 1, 1)."""
        shift, scale, gate = self.mod(e)[:, :, None, None].chunk(3, dim=1)
        return self.norm(x) * (1 + scale) + shift, gate


class LambdaEmbedding(nn.Module):
    """Embeds lambda (continuous, on a log scale over [lambda_min, lambda_max]) into (B, E)."""

    def __init__(self, embed_dim: int, lambda_min: float, lambda_max: float) -> None:
        super().__init__()
        self.log_min = math.log(lambda_min)
        self.log_span = math.log(lambda_max) - self.log_min
        self.register_buffer("freqs", torch.arange(1, 9, dtype=torch.float32) * math.pi)
        self.mlp = nn.Sequential(
            nn.Linear(17, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim)
        )

    def forward(self, lam: torch.Tensor) -> torch.Tensor:
        t = ((torch.log(lam) - self.log_min) / self.log_span).unsqueeze(1)  # (B, 1) in [0, 1]
        feats = torch.cat([t, torch.sin(t * self.freqs), torch.cos(t * self.freqs)], dim=1)
        return self.mlp(feats)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block with AdaLN: depth-wise conv, LN modulated by lambda, MLP, gated residual.
    ``zero_init``: the MLP's last 1x1 starts at zero, so the block starts as the identity."""

    def __init__(
        self,
        channels: int,
        embed_dim: int,
        kernel_size: int = 7,
        mlp_ratio: int = 2,
        zero_init: bool = False,
    ):
        super().__init__()
        self.dw = nn.Conv2d(
            channels, channels, kernel_size, padding=kernel_size // 2, groups=channels
        )
        self.ada = AdaLN(channels, embed_dim)
        self.pw1 = nn.Conv2d(channels, mlp_ratio * channels, 1)
        self.pw2 = nn.Conv2d(mlp_ratio * channels, channels, 1)
        if zero_init:  # the identity until training moves pw2 (a block added to a trained model)
            nn.init.zeros_(self.pw2.weight)
            nn.init.zeros_(self.pw2.bias)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h, gate = self.ada(depthwise(self.dw, x), e)
        return x + gate * mlp(self.pw1, self.pw2, h)


class STPB(nn.Module):
    """Spatial-Temporal Prediction Block (paper Fig. 6): LayerNorm, spatio-temporal attention
    (depth-wise conv + dilated depth-wise conv + 1x1 conv, sigmoid gating), LayerNorm, MLP."""

    def __init__(self, channels: int, embed_dim: int, mlp_ratio: int = 2) -> None:
        super().__init__()
        self.ada1 = AdaLN(channels, embed_dim)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.dw = nn.Conv2d(channels, channels, 5, padding=2, groups=channels)
        self.dw_dilated = nn.Conv2d(channels, channels, 5, padding=6, dilation=3, groups=channels)
        self.pw = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)
        self.ada2 = AdaLN(channels, embed_dim)
        self.mlp1 = nn.Conv2d(channels, mlp_ratio * channels, 1)
        self.mlp2 = nn.Conv2d(mlp_ratio * channels, channels, 1)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h, gate = self.ada1(x, e)
        u = pointwise_gelu(self.proj_in, h)
        attn = self.pw(depthwise(self.dw_dilated, depthwise(self.dw, u)))
        with _bf16(u):
            x = x + gate * self.proj_out(u * torch.sigmoid(attn))
        h, gate = self.ada2(x, e)
        return x + gate * mlp(self.mlp1, self.mlp2, h)


class Stage(nn.Module):
    """A sequence of lambda-conditioned blocks (ConvNeXt or STPB)."""

    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, e)
        return x


def upsample2(in_channels: int, out_channels: int) -> nn.Module:
    """Stride-2 upsampling: 1x1 conv to 4*out channels, then pixel shuffle."""
    return nn.Sequential(nn.Conv2d(in_channels, 4 * out_channels, 1), nn.PixelShuffle(2))


def downsample2(in_channels: int, out_channels: int) -> nn.Module:
    """Stride-2 downsampling: 2x2 conv with stride 2."""
    return nn.Conv2d(in_channels, out_channels, 2, stride=2)
