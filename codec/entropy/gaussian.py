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
so any int32-range symbol can be coded, never an error. Each scale is its own payload: a small
slice table, then ``slice_count(n)`` independently range-coded slices of its n symbols
(``constriction.stream.queue``; layout in ``GaussianTable``), which threads or helper processes
may code in parallel. The slice count depends on n only, so the bytes never depend on the
machine.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import constriction
import numpy as np
import torch
from scipy.special import ndtr

from codec.entropy.slice_pool import SlicePool

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


SLICE_SYMBOLS = 1 << 16
"""Most symbols in one slice: a scale of n symbols is coded as ``slice_count(n)`` contiguous,
independently coded slices of its flat C-order symbol array (``slice_bounds``). The count is a
function of n only, never of the machine, so the bytes never depend on the worker count."""

SLICE_WORD_BYTES = 4
"""Bytes of one slice-table entry (u32, little-endian); the payload stays whole 32-bit words."""

Parallel = Literal["thread", "process"]
"""How ``workers`` > 1 code a scale's slices: on threads of this process, or on this process and
``workers - 1`` helper processes (``GaussianTable``)."""

PROCESS_MIN_SYMBOLS = 200_000
"""Scales of fewer symbols (or of one slice) are coded in-process even with ``parallel="process"``:
below this, handing slices to helper processes costs more than it saves."""


def slice_count(n: int, slice_symbols: int = SLICE_SYMBOLS) -> int:
    """Slices of a scale of ``n`` symbols: ceil(n / slice_symbols), at least 1 (an empty scale
    is one empty slice)."""
    if slice_symbols < 1:
        raise ValueError("slice_symbols must be >= 1")
    return max(1, -(-n // slice_symbols))


def slice_bounds(n: int, count: int) -> np.ndarray:
    """Where each slice starts, and the last one ends: shape (count + 1,), int64. Slice i codes
    the flat symbols ``bounds[i]:bounds[i + 1]``; slice sizes differ by at most one."""
    return (np.arange(count + 1, dtype=np.int64) * n) // count


def slice_table_bytes(count: int) -> int:
    """Bytes of the slice table that opens a scale payload of ``count`` slices: the count and
    the length of every slice but the last (the rest of the payload)."""
    return SLICE_WORD_BYTES * count


@dataclass(frozen=True)
class _Level:
    radius: int
    counts: np.ndarray  # int64, length 2 * radius + 2, sums to 2**PRECISION_BITS, all >= 1
    bits: np.ndarray  # -log2(counts / 2**PRECISION_BITS)
    model: object  # constriction Categorical


class GaussianTable:
    """The fixed coding table of ``GaussianEntropyModel``, on flat numpy arrays: symbols
    (int64) and the table entry of each (uint8). Build once with ``GaussianTable.build()``;
    it refuses to run before.

    A scale's payload (``encode``) is a slice table, then the slices back to back::

        slice count S (u32) | S - 1 x slice length in bytes (u32, whole words) | slice 1 | ...
        | slice S (the rest of the payload)

    S is ``slice_count(n, slice_symbols)`` for the scale's n symbols; slice i range-codes the
    symbols ``slice_bounds(n, S)[i]:[i + 1]`` on its own (``constriction.stream.queue``):
    grouped by table entry in ascending order, each entry's symbols in position order, each
    entry's escapes right after its categories. Slices are coded and decoded by up to
    ``workers`` threads, or with ``parallel="process"`` by this process and ``workers - 1``
    helper processes (scales of at least ``PROCESS_MIN_SYMBOLS`` symbols and two slices; the
    arrays pass through a shared-memory block that the pool reuses: ``codec.entropy.slice_pool``,
    owned by the table, closed by ``close``).
    The bytes do not depend on ``workers`` or ``parallel``.
    """

    def __init__(self, slice_symbols: int = SLICE_SYMBOLS) -> None:
        slice_count(0, slice_symbols)  # validates slice_symbols
        self.slice_symbols = slice_symbols
        self._levels: list[_Level] | None = None
        self._radii = np.zeros(0, dtype=np.int32)  # (NUM_LEVELS,) radius R_l of each entry
        self._bits = np.zeros(0)  # every entry's bits per category, back to back
        self._bit_offsets = np.zeros(0, dtype=np.int64)  # (NUM_LEVELS,) where each starts
        self._pool: SlicePool | None = None  # helper processes, started on first use

    @classmethod
    def build(cls, slice_symbols: int = SLICE_SYMBOLS) -> GaussianTable:
        table = cls(slice_symbols)
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
        table._radii = np.array([level.radius for level in levels], dtype=np.int32)
        sizes = np.array([len(level.bits) for level in levels], dtype=np.int64)
        table._bits = np.concatenate([level.bits for level in levels])
        table._bit_offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        return table

    @property
    def levels(self) -> list[_Level]:
        if self._levels is None:
            raise RuntimeError("GaussianTable used before build()")
        return self._levels

    @property
    def slice_pool(self) -> SlicePool | None:
        """The helper processes of ``parallel="process"``, ``None`` until a scale needs them."""
        return self._pool

    def _slice_pool(self, helpers: int) -> SlicePool:
        """The table's pool of ``helpers`` processes, started on first use, and again after a
        helper failed (``SlicePool.broken``) or when another count is asked for."""
        pool = self._pool
        if pool is None or pool.broken or pool.helpers != helpers:
            if pool is not None:
                pool.close()
            pool = self._pool = SlicePool(GaussianTable.build, self.slice_symbols, helpers)
        return pool

    def close(self) -> None:
        """Shut down the table's helper processes, if any (they restart on next use)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close()

    def slice_count(self, n: int) -> int:
        """Slices of a scale of ``n`` symbols under this table (``slice_count``)."""
        return slice_count(n, self.slice_symbols)

    def _categories(
        self, symbols: np.ndarray, indexes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(category, escaped) of each int32 symbol under its entry: s + R_l, or the escape
        2 R_l + 1 where |s| > R_l; both (n,), int32 and bool."""
        radius = self._radii[indexes]
        escaped = np.abs(symbols) > radius
        return np.where(escaped, 2 * radius + 1, symbols + radius), escaped

    def estimate_bits(self, symbols: np.ndarray, indexes: np.ndarray) -> float:
        """Exact information content (bits) of ``symbols`` under the table entries ``indexes``."""
        _ = self.levels  # refuses before build
        categories, escaped = self._categories(_clip32(symbols), indexes)
        bits = self._bits[self._bit_offsets[indexes] + categories]
        return float(bits.sum()) + ESCAPE_BITS * int(np.count_nonzero(escaped))

    def encode(
        self,
        symbols: np.ndarray,
        indexes: np.ndarray,
        workers: int = 1,
        parallel: Parallel = "thread",
    ) -> bytes:
        """Code integer ``symbols`` (flat; clipped to +-``SYMBOL_LIMIT``) with table entries
        ``indexes`` (flat uint8, same length) into a sliced payload, slices coded by up to
        ``workers`` threads or processes (``parallel``)."""
        symbols = _clip32(symbols)
        indexes = np.ascontiguousarray(indexes, dtype=np.uint8)
        if symbols.shape != indexes.shape or symbols.ndim != 1:
            raise ValueError(f"symbols {symbols.shape} and indexes {indexes.shape} differ")
        _ = self.levels  # refuses before build
        n = len(indexes)
        count = self.slice_count(n)
        bounds = slice_bounds(n, count)
        if _use_processes(parallel, workers, count, n):
            groups = _slice_groups(count, workers)
            words = self._slice_pool(len(groups) - 1).encode(self, symbols, indexes, bounds, groups)
        else:
            parts = [
                (symbols[a:b], indexes[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            ]
            words = _run(self.encode_slice, parts, workers)
        table = np.array([count, *(SLICE_WORD_BYTES * len(w) for w in words[:-1])], dtype="<u4")
        return b"".join([table.tobytes(), *(w.astype("<u4", copy=False).tobytes() for w in words)])

    def decode(
        self,
        data: bytes,
        indexes: np.ndarray,
        workers: int = 1,
        parallel: Parallel = "thread",
    ) -> np.ndarray:
        """Inverse of ``encode``: int64 symbols, flat, in the order of ``indexes``; slices
        decoded by up to ``workers`` threads or processes (``parallel``).

        Raises ``EntropyCodingError`` if ``data`` is not a whole number of 32-bit words, its
        slice table is truncated or disagrees with the scale's symbol count or with the
        payload's length, or the range decoder reports an inconsistency in a slice. Nothing is
        read past a declared length."""
        indexes = np.ascontiguousarray(indexes, dtype=np.uint8).reshape(-1)
        _ = self.levels  # refuses before build
        words, bounds = self._split(data, len(indexes))
        if _use_processes(parallel, workers, len(words), len(indexes)):
            groups = _slice_groups(len(words), workers)
            return self._slice_pool(len(groups) - 1).decode(self, words, indexes, bounds, groups)
        parts = [(w, indexes[a:b]) for w, a, b in zip(words, bounds[:-1], bounds[1:], strict=True)]
        return np.concatenate(_run(self.decode_slice, parts, workers))

    def _split(self, data: bytes, n: int) -> tuple[list[np.ndarray], np.ndarray]:
        """Each slice's words of a payload for n symbols (slice table checked) and the slice
        bounds (``slice_bounds``)."""
        if len(data) % SLICE_WORD_BYTES:
            raise EntropyCodingError(f"payload length {len(data)} is not a multiple of 4 bytes")
        words = np.frombuffer(data, dtype="<u4")
        count = self.slice_count(n)
        if len(words) == 0:
            raise EntropyCodingError("payload is empty: no slice table")
        if int(words[0]) != count:
            raise EntropyCodingError(
                f"payload declares {int(words[0])} slices; a scale of {n} symbols has {count}"
            )
        if len(words) < count:
            raise EntropyCodingError(
                f"slice table truncated: {len(data)} bytes, the table alone is "
                f"{slice_table_bytes(count)}"
            )
        lengths = words[1:count].astype(np.int64)
        body = SLICE_WORD_BYTES * (len(words) - count)
        if (lengths % SLICE_WORD_BYTES).any() or int(lengths.sum()) > body:
            raise EntropyCodingError(
                f"slice lengths (sum {int(lengths.sum())} bytes) overrun the {body} bytes "
                "after the slice table, or are not whole words"
            )
        lengths = np.append(lengths, body - int(lengths.sum()))
        bounds = slice_bounds(n, count)
        empty = (lengths == 0) & (np.diff(bounds) > 0)
        if empty.any():
            raise EntropyCodingError(f"slice {int(np.argmax(empty))} codes symbols in 0 bytes")
        ends = count + np.cumsum(lengths // SLICE_WORD_BYTES)
        starts = ends - lengths // SLICE_WORD_BYTES
        slices = [words[a:b].astype(np.uint32) for a, b in zip(starts, ends, strict=True)]
        return slices, bounds

    def encode_slice(self, symbols: np.ndarray, indexes: np.ndarray) -> np.ndarray:
        """Range-code one slice: int32 ``symbols``, uint8 ``indexes`` -> uint32 words."""
        levels = self.levels
        categories, escaped = self._categories(symbols, indexes)
        order = np.argsort(indexes, kind="stable")  # group by entry, positions in order
        categories = categories[order]
        any_escape = bool(escaped.any())
        if any_escape:
            escaped, symbols = escaped[order], symbols[order]
        counts = np.bincount(indexes, minlength=NUM_LEVELS)
        ends = np.cumsum(counts)
        encoder = constriction.stream.queue.RangeEncoder()
        uniform = constriction.stream.model.Uniform(1 << 16)
        for level in np.flatnonzero(counts):
            end = int(ends[level])
            start = end - int(counts[level])
            encoder.encode(categories[start:end], levels[level].model)
            if any_escape and escaped[start:end].any():
                zigzag = _zigzag(symbols[start:end][escaped[start:end]])
                halves = np.stack([zigzag >> 16, zigzag & 0xFFFF], axis=1).reshape(-1)
                encoder.encode(halves.astype(np.int32), uniform)
        return encoder.get_compressed()

    def decode_slice(self, words: np.ndarray, indexes: np.ndarray) -> np.ndarray:
        """Inverse of ``encode_slice``: int64 symbols in the order of ``indexes``."""
        levels = self.levels
        order = np.argsort(indexes, kind="stable")
        counts = np.bincount(indexes, minlength=NUM_LEVELS)
        ends = np.cumsum(counts)
        grouped = np.empty(len(indexes), dtype=np.int64)
        uniform = constriction.stream.model.Uniform(1 << 16)
        try:
            decoder = constriction.stream.queue.RangeDecoder(words)
            for level in np.flatnonzero(counts):
                end = int(ends[level])
                start = end - int(counts[level])
                radius = levels[level].radius
                categories = decoder.decode(levels[level].model, end - start)
                s = grouped[start:end]
                np.subtract(categories, radius, out=s, casting="unsafe")
                escaped = categories == 2 * radius + 1
                n_escaped = int(np.count_nonzero(escaped))
                if n_escaped:
                    halves = decoder.decode(uniform, 2 * n_escaped).astype(np.int64)
                    s[escaped] = _unzigzag((halves[0::2] << 16) | halves[1::2])
        except (ValueError, RuntimeError, OverflowError) as err:
            raise EntropyCodingError(f"range decoder failed: {err}") from None
        except BaseException as err:  # pyo3 PanicException derives from BaseException
            if isinstance(err, KeyboardInterrupt | SystemExit):
                raise
            raise EntropyCodingError(f"range decoder failed: {err}") from None
        symbols = np.empty_like(grouped)
        symbols[order] = grouped
        return symbols


def _run(code: Callable[..., np.ndarray], parts: list[tuple], workers: int) -> list[np.ndarray]:
    """``[code(*part) for part in parts]``, on up to ``workers`` threads (in order)."""
    if workers <= 1 or len(parts) <= 1:
        return [code(*part) for part in parts]
    with ThreadPoolExecutor(max_workers=min(workers, len(parts))) as pool:
        return list(pool.map(lambda part: code(*part), parts))


def _use_processes(parallel: Parallel, workers: int, count: int, n: int) -> bool:
    """Whether a scale of ``n`` symbols in ``count`` slices is coded with helper processes."""
    if parallel not in ("thread", "process"):
        raise ValueError(f"parallel must be 'thread' or 'process', got {parallel!r}")
    return parallel == "process" and workers > 1 and count > 1 and n >= PROCESS_MIN_SYMBOLS


def _slice_groups(count: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous ranges of slices, one per process (this process's first), at most
    ``workers`` and at least 2."""
    edges = slice_bounds(count, min(workers, count)).tolist()
    return list(zip(edges[:-1], edges[1:], strict=True))


def _clip32(symbols: np.ndarray) -> np.ndarray:
    """Integer symbols clipped to +-SYMBOL_LIMIT, flat int32."""
    return np.clip(np.asarray(symbols).reshape(-1), -SYMBOL_LIMIT, SYMBOL_LIMIT).astype(np.int32)


class GaussianEntropyModel:
    """The entropy model of one kind of latent: Gaussian (mu, sigma) with quantisation step q.

    Tensors are (B, Z, h, w) latents ``y``, means ``mu`` and scales ``sigma`` (latent units,
    eq. 8), and steps ``q`` of shape (B, Z, 1, 1) (``DHVC.quant_steps``). ``symbols`` are
    float tensors of integers in symbol units, (y - mu) / q rounded.

    ``smooth_sigma_bound`` picks the lower bound of the symbols' scale (``symbol_sigma``); both
    sides of the channel must use the same one (``ModelConfig.smooth_sigma_bound``).
    Training needs no tables (``training_forward``); coding (``table_indexes``, ``compress``,
    ``decompress``, ``estimate_bits``) needs ``build`` first and raises ``RuntimeError`` before.
    ``workers`` code a scale's slices: threads (``parallel="thread"``) or this process and
    ``workers - 1`` helper processes (``parallel="process"``, scales of at least
    ``PROCESS_MIN_SYMBOLS`` symbols; the pool starts on first use, about 1.7 s, and a script
    that uses it needs the ``if __name__ == "__main__":`` guard of ``spawn``). The bytes do not
    depend on either. The default is serial: ``constriction`` (0.5) holds the GIL while it
    codes, so 2 threads measured 0.9x on 2 cores; 2 processes measured about 1.5x on a 1080p
    frame, but no scale of a 448x256 frame is large enough to use them
    (``benchmarks/bench_entropy.py``).
    """

    def __init__(
        self, smooth_sigma_bound: bool, workers: int = 1, parallel: Parallel = "thread"
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        _use_processes(parallel, workers, 0, 0)  # validates parallel
        self.smooth_sigma_bound = smooth_sigma_bound
        self.workers = workers
        self.parallel = parallel
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

    def close(self) -> None:
        """Shut down the helper processes of ``parallel="process"``, if any were started."""
        if self._table is not None:
            self._table.close()

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
        return table.encode(_flat_int64(symbols), indexes, self.workers, self.parallel)

    def decompress(self, data: bytes, indexes: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        """Inverse of ``compress``: symbols shaped, typed and placed like ``like``.

        Raises ``EntropyCodingError`` for a payload that does not decode (``GaussianTable``)."""
        table, _ = self._coding()
        flat = table.decode(data, indexes, self.workers, self.parallel)
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
