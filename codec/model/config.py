"""Model presets: a typed configuration, never module globals.

``tiny`` is for tests; ``base`` is the default architecture (codec v2, DESIGN 1's capacity rules,
runs on two CPU cores); ``small`` is the first shipped architecture, kept so that its weights
still load and as the baseline v2 is measured against; ``paper`` is sized like Table II of Lu et
al. (about 100M parameters, about 400 KMACs/pixel).
"""

from __future__ import annotations

import math
import struct
from dataclasses import asdict, dataclass, fields, replace

from codec.types import NUM_SCALES


@dataclass(frozen=True)
class ModelConfig:
    """Architecture hyper-parameters of one DHVC model.

    Widths are indexed by scale k = 1..K (tuple position k-1): scale 1 is 1/64 of the input side,
    scale 4 is 1/8. ``width_patch`` is the channel count at 1/4 (patchify level, no latent).
    Lambda is the paper's rate-distortion trade-off: loss = bpp + lambda * MSE (RGB in [0, 1]).

    ``smooth_sigma_bound``: the symbols' Gaussian scale is bounded below smoothly,
    sqrt(s^2 + SIGMA_MIN^2), instead of by a hard clamp that passes no gradient below the
    bound (``codec.model.dhvc.symbol_sigma``). Off for ``small``, whose weights were trained with
    the clamp; checkpoints written before the field existed load with it off.

    ``posterior_context``: the posterior of each scale sees the context features of the
    contextual prediction network (the temporal references' features) beside the observation
    and the spatial reference, so that the encoder can choose latents that are cheap under the
    prior where the context already predicts the picture (conditional coding). The paper's
    posterior (eq. 7) sees only the observation and the spatial reference: that is the layout
    with the flag off, and checkpoints written before the field existed load with it off. The
    decoder never runs the posterior, so the flag changes encoding only; a state or weights of
    the same widths without it warm-start a model with it, the new inputs starting at zero
    (``codec.model.dhvc.widen_posterior_inputs``).

    ``prior_conv_blocks``: ConvNeXt blocks per scale at the head of the contextual prediction
    network, on the mix of the spatial and temporal references, before its STPBs. An STPB
    mixes space only in its sigmoid gate (its value path is 1x1), so the paper's prior can
    hardly move a reference's features to where the picture moved; a depth-wise 7x7 in the
    value path can (``benchmarks/temporal_prediction.py``). Their last 1x1 convolution starts
    at zero, so a model without them warm-starts one with them as the same function; 0 for the
    paper's layout, and checkpoints written before the field existed load with none.
    """

    name: str
    width_patch: int
    widths: tuple[int, int, int, int]
    latent_channels: tuple[int, int, int, int]
    enc_blocks_patch: int
    enc_blocks: tuple[int, int, int, int]
    prior_blocks: tuple[int, int, int, int]
    dec_blocks: tuple[int, int, int, int]
    dec_blocks_patch: int
    embed_dim: int = 64
    mlp_ratio: int = 2
    kernel_size: int = 7
    aux_refinement: bool = False
    lambda_min: float = 64.0
    lambda_max: float = 8192.0
    smooth_sigma_bound: bool = False
    posterior_context: bool = False
    prior_conv_blocks: tuple[int, int, int, int] = (0, 0, 0, 0)

    def __post_init__(self) -> None:
        per_scale = ("widths", "latent_channels", "enc_blocks", "prior_blocks", "dec_blocks")
        for f in (*per_scale, "prior_conv_blocks"):
            value = getattr(self, f)
            if len(value) != NUM_SCALES:
                raise ValueError(f"ModelConfig.{f} needs {NUM_SCALES} entries, got {len(value)}")
        if not 0 < self.lambda_min < self.lambda_max:
            raise ValueError("ModelConfig needs 0 < lambda_min < lambda_max")

    def to_dict(self) -> dict:
        """Plain-data form, stored inside checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Inverse of ``to_dict``; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")
        tuples = {
            "widths",
            "latent_channels",
            "enc_blocks",
            "prior_blocks",
            "dec_blocks",
            "prior_conv_blocks",
        }
        return cls(**{k: tuple(v) if k in tuples else v for k, v in data.items()})


PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(
        name="tiny",
        width_patch=8,
        widths=(16, 16, 16, 16),
        latent_channels=(4, 4, 4, 4),
        enc_blocks_patch=0,
        enc_blocks=(1, 1, 1, 1),
        prior_blocks=(1, 1, 1, 1),
        dec_blocks=(1, 1, 1, 1),
        dec_blocks_patch=0,
        embed_dim=16,
        kernel_size=3,
        smooth_sigma_bound=True,
    ),
    "small": ModelConfig(
        name="small",
        width_patch=32,
        widths=(128, 128, 96, 64),
        latent_channels=(32, 32, 24, 16),
        enc_blocks_patch=1,
        enc_blocks=(1, 1, 2, 2),
        prior_blocks=(1, 2, 2, 2),
        dec_blocks=(1, 2, 2, 2),
        dec_blocks_patch=1,
        embed_dim=64,
        kernel_size=7,
    ),
    "base": ModelConfig(
        # Codec v2 (DESIGN 1, capacity): 64 channels at 1/4, so patchify (48 -> 64) and the
        # synthesis's output map (64 -> each 48-value patch) can have full rank; 1.23 latent
        # values per pixel (32/64^2 + 32/32^2 + 48/16^2 + 64/8^2), most of them at 1/8; three
        # synthesis blocks at 1/4; little width at 1/64 and 1/32, where little detail lives.
        name="base",
        width_patch=64,
        widths=(96, 128, 128, 128),
        latent_channels=(32, 32, 48, 64),
        enc_blocks_patch=1,
        enc_blocks=(1, 1, 2, 2),
        prior_blocks=(1, 1, 2, 2),
        dec_blocks=(1, 1, 2, 2),
        dec_blocks_patch=3,
        embed_dim=64,
        kernel_size=7,
        smooth_sigma_bound=True,
    ),
    "paper": ModelConfig(
        name="paper",
        width_patch=160,
        widths=(384, 448, 384, 288),
        latent_channels=(64, 64, 48, 32),
        enc_blocks_patch=2,
        enc_blocks=(3, 4, 5, 6),
        prior_blocks=(3, 4, 5, 6),
        dec_blocks=(3, 4, 5, 6),
        dec_blocks_patch=4,
        embed_dim=256,
        mlp_ratio=4,
        kernel_size=7,
        smooth_sigma_bound=True,
    ),
}


PRESETS["base-ctx"] = replace(PRESETS["base"], name="base-ctx", posterior_context=True)
"""``base`` with a posterior that sees the temporal context (``posterior_context``): the same
widths, so ``base`` weights and training states warm-start it exactly."""

PRESETS["base-pc"] = replace(PRESETS["base"], name="base-pc", prior_conv_blocks=(1, 1, 1, 1))
"""``base`` with one ConvNeXt block at the head of each scale's prior (``prior_conv_blocks``):
``base`` weights and training states continue under it as the same function."""

DEFAULT_PRESET = "base"
"""The architecture ``dhvc train`` and random-weight models use unless told otherwise."""

MIN_LAMBDA = 1e-3
MAX_LAMBDA = 1e7
"""Lambdas a frame header may carry (``codec.stream.bitstream``). Every preset's range
(``ModelConfig.lambda_min`` .. ``lambda_max``, 64 .. 8192) lies well inside;
``codec.model.checkpoint.load_model`` refuses a model whose range does not, so no encoder
writes a lambda outside."""


def latent_values_per_pixel(cfg: ModelConfig) -> float:
    """Latent values per input pixel over the K scales (scale k has stride 2^(7-k))."""
    return sum(z / 4 ** (7 - k) for k, z in enumerate(cfg.latent_channels, start=1))


def get_preset(name: str) -> ModelConfig:
    """The preset called ``name``; a ``ValueError`` naming the choices otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


def check_lambda(lam: float, config: ModelConfig) -> None:
    """``ValueError`` (one line) unless ``lam`` lies in the model's range ``[lambda_min,
    lambda_max]``, the range it was trained on and that the encoder accepts. The comparison
    is made in float32, as the frame header carries lambda: rounding is monotonic, so every
    lambda the encoder accepted also passes when read back from a stream. The one check of a
    lambda against a model: the encoder, the stream reader and netsim call it."""
    low, high = config.lambda_min, config.lambda_max
    near = math.isfinite(lam) and low / 2 <= lam <= 2 * high  # also keeps float32 from overflow
    if not near or not _float32(low) <= _float32(lam) <= _float32(high):
        raise ValueError(f"lambda {lam:.10g} outside the model's range [{low:g}, {high:g}]")


def _float32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]
