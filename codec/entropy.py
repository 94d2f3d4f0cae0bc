"""The entropy model of DHVC's latents (DESIGN 1 and 6): a Gaussian prior N(mu, sigma^2) per
latent value, a per-channel quantisation step q, and a fixed table of zero-mean discretised
Gaussians coded with ``constriction``.

``GaussianEntropyModel`` is the one object the coder and the trainer ask for bits or symbols
(STYLE 2, 14; CompressAI's ``GaussianConditional``, tensorflow-compression's
``LocationScaleIndexedEntropyModel``). It owns

* quantisation: symbols are ``round((y - mu) / q)`` and ``y_hat = mu + q * symbols``
  (DESIGN 6, lambda-dependent step);
* the symbols' Gaussian scale ``sigma / q``, bounded to the table's range (``symbol_sigma``);
* the likelihood in training: bits of the noisy residual under the discretised Gaussian,
  and the straight-through y_hat (``training_forward``);
* the table indexes of a scale (the scale picks one of ``NUM_LEVELS`` log-spaced entries),
  their sync tag, and compress/decompress; these need the coding tables, built once by
  ``build``; before it the model refuses to code.

Each table entry is a categorical distribution over ``[-R_l, R_l]`` plus one escape symbol. An
escaped symbol (|s| > R_l) is followed by its zig-zag value coded as two uniform 16-bit halves,
so any int32-range symbol can be coded, never an error. Each scale is coded into its own
range-coder bitstream (``constriction.stream.queue``).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import constriction
import numpy as np
import torch
from scipy.special import ndtr

NUM_LEVELS = 64
SIGMA_MIN = 0.11
SIGMA_MAX = 256.0
PRECISION_BITS = 24
ESCAPE_BITS = 32
SYMBOL_LIMIT = 2**30
_TAIL_SIGMAS = 8.0
_DENSITY_FALLBACK_MASS = 1e-6
"""Bin masses below this are replaced by the Gaussian density at the bin centre."""


class EntropyCodingError(ValueError):
    """A payload could not be decoded (truncated, corrupted, or wrong tables)."""


def sigma_levels() -> np.ndarray:
    """The table's sigma values, shape (NUM_LEVELS,), float64, log-spaced."""
    return np.exp(np.linspace(math.log(SIGMA_MIN), math.log(SIGMA_MAX), NUM_LEVELS))


def sigma_boundaries() -> np.ndarray:
    """Geometric midpoints between consecutive levels, shape (NUM_LEVELS - 1,), float32.

    ``index = searchsorted(boundaries, sigma)`` maps a sigma to its level (DESIGN 1).
    """
    levels = sigma_levels()
    return np.sqrt(levels[:-1] * levels[1:]).astype(np.float32)


@dataclass(frozen=True)
class _Level:
    radius: int
    counts: np.ndarray  # int64, length 2 * radius + 2, sums to 2**PRECISION_BITS, all >= 1
    bits: np.ndarray  # -log2(counts / 2**PRECISION_BITS)
    model: object  # constriction Categorical


class GaussianTable:
    """The fixed coding table of ``GaussianEntropyModel``, on flat numpy arrays: symbols
    (int64) and the table entry of each (uint8). Build once with ``GaussianTable.build()``;
    it refuses to run before."""

    def __init__(self) -> None:
        self._levels: list[_Level] | None = None

    @classmethod
    def build(cls) -> GaussianTable:
        table = cls()
        levels = []
        total = 2**PRECISION_BITS
        for sigma in sigma_levels():
            radius = max(2, math.ceil(_TAIL_SIGMAS * sigma))
            edges = np.arange(-radius, radius + 2, dtype=np.float64) - 0.5
            pmf = np.diff(ndtr(edges / sigma))
            pmf = np.append(pmf, 2.0 * ndtr(-(radius + 0.5) / sigma))  # escape: both tails
            counts = np.maximum(1, np.floor(pmf * total).astype(np.int64))
            counts[radius] += total - counts.sum()  # put the rounding remainder on zero
            probabilities = counts.astype(np.float64) / total
            model = constriction.stream.model.Categorical(probabilities, perfect=False)
            levels.append(
                _Level(radius, counts, -np.log2(probabilities), model)  # type: ignore[arg-type]
            )
        table._levels = levels
        return table

    @property
    def levels(self) -> list[_Level]:
        if self._levels is None:
            raise RuntimeError("GaussianTable used before build()")
        return self._levels

    def estimate_bits(self, symbols: np.ndarray, indexes: np.ndarray) -> float:
        """Exact information content (bits) of ``symbols`` under the table entries ``indexes``."""
        total = 0.0
        for level_index in np.unique(indexes):
            level = self.levels[int(level_index)]
            s = symbols[indexes == level_index]
            escaped = np.abs(s) > level.radius
            categories = np.where(escaped, 2 * level.radius + 1, s + level.radius)
            total += float(level.bits[categories].sum()) + ESCAPE_BITS * int(escaped.sum())
        return total

    def encode(self, symbols: np.ndarray, indexes: np.ndarray) -> bytes:
        """Code int32 ``symbols`` (flat) with table entries ``indexes`` (flat uint8) into bytes."""
        symbols = np.clip(symbols.astype(np.int64), -SYMBOL_LIMIT, SYMBOL_LIMIT)
        encoder = constriction.stream.queue.RangeEncoder()
        uniform = constriction.stream.model.Uniform(1 << 16)
        for level_index in np.unique(indexes):
            level = self.levels[int(level_index)]
            s = symbols[indexes == level_index]
            escaped = np.abs(s) > level.radius
            categories = np.where(escaped, 2 * level.radius + 1, s + level.radius)
            encoder.encode(categories.astype(np.int32), level.model)
            if escaped.any():
                zigzag = _zigzag(s[escaped])
                halves = np.stack([zigzag >> 16, zigzag & 0xFFFF], axis=1).reshape(-1)
                encoder.encode(halves.astype(np.int32), uniform)
        return encoder.get_compressed().tobytes()

    def decode(self, data: bytes, indexes: np.ndarray) -> np.ndarray:
        """Inverse of ``encode``: int64 symbols, flat, in the order of ``indexes``.

        Raises ``EntropyCodingError`` if ``data`` is not a whole number of 32-bit words or the
        range decoder reports an inconsistency.
        """
        if len(data) % 4:
            raise EntropyCodingError(f"payload length {len(data)} is not a multiple of 4 bytes")
        words = np.frombuffer(data, dtype=np.uint32).copy()
        symbols = np.empty(indexes.shape, dtype=np.int64)
        uniform = constriction.stream.model.Uniform(1 << 16)
        try:
            decoder = constriction.stream.queue.RangeDecoder(words)
            for level_index in np.unique(indexes):
                level = self.levels[int(level_index)]
                where = np.flatnonzero(indexes == level_index)
                categories = decoder.decode(level.model, len(where)).astype(np.int64)
                s = categories - level.radius
                escaped = categories == 2 * level.radius + 1
                n_escaped = int(escaped.sum())
                if n_escaped:
                    halves = decoder.decode(uniform, 2 * n_escaped).astype(np.int64)
                    zigzag = (halves[0::2] << 16) | halves[1::2]
                    s[escaped] = _unzigzag(zigzag)
                symbols[where] = s
        except (ValueError, RuntimeError, OverflowError) as err:
            raise EntropyCodingError(f"range decoder failed: {err}") from None
        except BaseException as err:  # pyo3 PanicException derives from BaseException
            if isinstance(err, KeyboardInterrupt | SystemExit):
                raise
            raise EntropyCodingError(f"range decoder failed: {err}") from None
        return symbols


class GaussianEntropyModel:
    """The entropy model of one kind of latent: Gaussian (mu, sigma) with quantisation step q.

    Tensors are (B, Z, h, w) latents ``y``, means ``mu`` and scales ``sigma`` (latent units,
    eq. 8), and steps ``q`` of shape (B, Z, 1, 1) (``DHVC.quant_steps``). ``symbols`` are
    float tensors of integers in symbol units, (y - mu) / q rounded.

    ``smooth_sigma_bound`` picks the lower bound of the symbols' scale (``symbol_sigma``); both
    sides of the channel must use the same one (``ModelConfig.smooth_sigma_bound``).
    Training needs no tables (``training_forward``); coding (``table_indexes``, ``compress``,
    ``decompress``, ``estimate_bits``) needs ``build`` first and raises ``RuntimeError`` before.
    """

    def __init__(self, smooth_sigma_bound: bool) -> None:
        self.smooth_sigma_bound = smooth_sigma_bound
        self._table: GaussianTable | None = None
        self._boundaries: torch.Tensor | None = None

    def build(self, device: str | torch.device = "cpu") -> GaussianEntropyModel:
        """Build the coding tables, with the sigma boundaries on ``device``; returns self."""
        self._table = GaussianTable.build()
        self._boundaries = torch.from_numpy(sigma_boundaries()).to(device)
        return self

    @property
    def built(self) -> bool:
        return self._table is not None

    def _coding(self) -> tuple[GaussianTable, torch.Tensor]:
        if self._table is None or self._boundaries is None:
            raise RuntimeError("GaussianEntropyModel used for coding before build()")
        return self._table, self._boundaries

    # -- quantisation and the symbols' scale ---------------------------------------------------

    def symbol_sigma(self, sigma: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Gaussian scale of the symbols (y - mu) / q, within the coding table's range.

        Smooth bound: sqrt(s^2 + SIGMA_MIN^2) with s = sigma / q, which passes gradients
        everywhere (a hard clamp passes none below SIGMA_MIN, so a sigma that falls under it can
        never learn to rise again); otherwise the hard clamp of the first ``small`` weights.
        Both sides of the channel compute it identically, so the table indexes agree."""
        s = sigma / q
        if self.smooth_sigma_bound:
            return torch.sqrt(s * s + SIGMA_MIN * SIGMA_MIN).clamp_max(SIGMA_MAX)
        return s.clamp(SIGMA_MIN, SIGMA_MAX)

    @staticmethod
    def quantize(y: torch.Tensor, mu: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """Symbols round((y - mu) / q) (DESIGN 6)."""
        return torch.round((y - mu) / q)

    @staticmethod
    def dequantize(symbols: torch.Tensor, mu: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """y_hat = mu + q * symbols."""
        return mu + q * symbols

    # -- training -----------------------------------------------------------------------------

    def training_forward(
        self, y: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor, q: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(y_hat, bits) for training (paper 4.3, eq. 15): bits of the residual (y - mu) / q
        plus uniform noise in [-1/2, 1/2) under the discretised Gaussian (``likelihood_bits``),
        shape of ``y``; y_hat = mu + q * round((y - mu) / q) with a straight-through gradient."""
        # sigma / q before (y - mu) / q: the order autograd sums q's gradient contributions in,
        # which training runs and their resume tests reproduce to the last bit.
        sigma_s = self.symbol_sigma(sigma, q)
        r = (y - mu) / q
        noisy = r + torch.empty_like(r).uniform_(-0.5, 0.5)
        bits = self.likelihood_bits(noisy, sigma_s)
        return mu + q * (r + (torch.round(r) - r).detach()), bits

    @staticmethod
    def likelihood_bits(r: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """-log2 P(r) for r (noisy or integer) under a zero-mean Gaussian of scale ``sigma``
        discretised to unit bins.

        Far in the tail the difference of two CDF values loses all precision (and would need a
        probability floor that passes no gradient); there the bin mass is replaced by the
        density at the bin centre, log p = -r^2 / (2 sigma^2) - log(sigma sqrt(2 pi)), which is
        accurate for |r| >> sigma and keeps a gradient that pulls outliers in and sigma up.
        Computed in float32 even under mixed precision: bf16 cannot resolve small bin masses."""
        a, sigma = r.float().abs(), sigma.float()
        upper = torch.special.ndtr((0.5 - a) / sigma)
        lower = torch.special.ndtr((-0.5 - a) / sigma)
        mass = upper - lower
        log_density = -0.5 * (a / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2.0 * math.pi)
        in_range = mass > _DENSITY_FALLBACK_MASS
        log_mass = torch.where(
            in_range, torch.log(mass.clamp_min(_DENSITY_FALLBACK_MASS)), log_density
        )
        return -log_mass / math.log(2.0)

    # -- coding (after build) ----------------------------------------------------------------

    def table_indexes(self, sigma: torch.Tensor, q: torch.Tensor) -> np.ndarray:
        """Table entry of every symbol, flat uint8 in C order: the level whose sigma is nearest
        (geometrically) to ``symbol_sigma(sigma, q)`` (DESIGN 1)."""
        _, boundaries = self._coding()
        index = torch.bucketize(self.symbol_sigma(sigma, q).contiguous(), boundaries)
        return index.to(torch.uint8).flatten().cpu().numpy()

    @staticmethod
    def sync_tag(indexes: np.ndarray) -> int:
        """32-bit hash (CRC32) of a scale's table indexes, carried in the frame header."""
        return zlib.crc32(np.ascontiguousarray(indexes, dtype=np.uint8).tobytes())

    def compress(self, symbols: torch.Tensor, indexes: np.ndarray) -> bytes:
        """Range-code ``symbols`` (any shape, C order) with their table entries ``indexes``."""
        table, _ = self._coding()
        return table.encode(_flat_int64(symbols), indexes)

    def decompress(self, data: bytes, indexes: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        """Inverse of ``compress``: symbols shaped, typed and placed like ``like``.

        Raises ``EntropyCodingError`` for a payload that does not decode (``GaussianTable``)."""
        table, _ = self._coding()
        flat = table.decode(data, indexes)
        return torch.from_numpy(flat).to(like.dtype).reshape(like.shape).to(like.device)

    def estimate_bits(self, symbols: torch.Tensor, indexes: np.ndarray) -> float:
        """Exact information content (bits) of ``symbols`` under their table entries."""
        table, _ = self._coding()
        return table.estimate_bits(_flat_int64(symbols), indexes)


def _flat_int64(symbols: torch.Tensor) -> np.ndarray:
    return symbols.flatten().cpu().numpy().astype(np.int64)


def _zigzag(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.int64)
    return np.where(v >= 0, 2 * v, -2 * v - 1)


def _unzigzag(z: np.ndarray) -> np.ndarray:
    return np.where(z % 2 == 0, z // 2, -(z + 1) // 2)
