"""Entropy model: a fixed table of zero-mean discretised Gaussians coded with ``constriction``.

Symbols are ``round(y - mu)`` (DESIGN 1). The Gaussian scale sigma of each symbol selects one of
``NUM_LEVELS`` log-spaced table entries; each entry is a categorical distribution over
``[-R_l, R_l]`` plus one escape symbol. An escaped symbol (|s| > R_l) is followed by its zig-zag
value coded as two uniform 16-bit halves, so any int32-range symbol can be coded, never an error.

The table is built once (``GaussianTable.build``); the coder refuses to run before. Each scale is
coded into its own range-coder bitstream (``constriction.stream.queue``).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import constriction
import numpy as np
from scipy.special import ndtr

NUM_LEVELS = 64
SIGMA_MIN = 0.11
SIGMA_MAX = 256.0
PRECISION_BITS = 24
ESCAPE_BITS = 32
SYMBOL_LIMIT = 2**30
_TAIL_SIGMAS = 8.0


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


def sync_tag(indexes: np.ndarray) -> int:
    """32-bit hash (CRC32) of a scale's table indexes, carried in the frame header."""
    return zlib.crc32(np.ascontiguousarray(indexes, dtype=np.uint8).tobytes())


@dataclass(frozen=True)
class _Level:
    radius: int
    counts: np.ndarray  # int64, length 2 * radius + 2, sums to 2**PRECISION_BITS, all >= 1
    bits: np.ndarray  # -log2(counts / 2**PRECISION_BITS)
    model: object  # constriction Categorical


class GaussianTable:
    """The fixed coding table. Build once with ``GaussianTable.build()``."""

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


def _zigzag(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.int64)
    return np.where(v >= 0, 2 * v, -2 * v - 1)


def _unzigzag(z: np.ndarray) -> np.ndarray:
    return np.where(z % 2 == 0, z // 2, -(z + 1) // 2)
