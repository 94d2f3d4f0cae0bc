"""Helper processes that code a scale's slices beside the calling process
(``GaussianTable.encode``/``decode`` with ``parallel="process"``).

A ``SlicePool`` is an object, owned by the table that uses it: ``helpers`` processes started
with ``spawn`` (no fork of a process that runs torch; a ``forkserver`` child measured 20 %
slower at coding), each with its own copy of the coding table, and one shared-memory block that
carries every call's arrays, reused while it is large enough. One call at a time holds the
pool. ``close`` shuts it down and unlinks the block; a pool that is garbage-collected or still
open at interpreter exit is closed then (``weakref.finalize``). A helper that times out
(``timeout_s``) or dies breaks the pool: the call raises ``RuntimeError``, the helpers are
killed, and the owner starts a new pool on its next call (``SlicePool.broken``).
"""

from __future__ import annotations

import functools
import multiprocessing
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing.shared_memory import SharedMemory
from typing import Protocol

import numpy as np

PROCESS_TIMEOUT_S = 120.0
"""Longest wait for a helper process's slices (the first call also starts the pool)."""


class SliceCoder(Protocol):
    """What the pool needs of a coding table: its slice size and the coding of one slice."""

    slice_symbols: int

    def encode_slice(self, symbols: np.ndarray, indexes: np.ndarray) -> np.ndarray: ...

    def decode_slice(self, words: np.ndarray, indexes: np.ndarray) -> np.ndarray: ...


TableFactory = Callable[[int], SliceCoder]
"""Builds the coding table of ``slice_symbols`` in a helper (``GaussianTable.build``);
picklable, as it travels to the helper processes."""


class _Resources:
    """The pool's executor and shared block, closed once by ``SlicePool.close`` or its
    finalizer (which must not refer to the pool itself)."""

    def __init__(self, executor: ProcessPoolExecutor) -> None:
        self.executor = executor
        self.block: SharedMemory | None = None

    def release_block(self) -> None:
        if self.block is not None:
            block, self.block = self.block, None
            block.close()
            block.unlink()

    def close(self, kill: bool = False) -> None:
        if kill:
            _kill_workers(self.executor)
        self.executor.shutdown(wait=not kill, cancel_futures=True)
        self.release_block()


def _kill_workers(executor: ProcessPoolExecutor) -> None:
    """Terminate the executor's processes, so that nothing waits on a hung helper.

    Python 3.14 has ``ProcessPoolExecutor.terminate_workers``; before it no public call reaches
    the processes, so this reads the executor's ``_processes`` (pid -> Process).
    ``tests/codec/test_slice_pool.py`` fails if that attribute changes."""
    terminate = getattr(executor, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    for process in dict(getattr(executor, "_processes", None) or {}).values():
        process.terminate()


class SlicePool:
    """``helpers`` processes that code slices of tables of ``slice_symbols`` symbols."""

    def __init__(
        self,
        factory: TableFactory,
        slice_symbols: int,
        helpers: int,
        timeout_s: float = PROCESS_TIMEOUT_S,
    ) -> None:
        self.factory = factory
        self.slice_symbols = slice_symbols
        self.helpers = helpers
        self.timeout_s = timeout_s
        self.broken = False
        self._lock = threading.Lock()
        executor = ProcessPoolExecutor(
            helpers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_helper_start,
            initargs=(factory, slice_symbols),
        )
        self._resources = _Resources(executor)
        self._finalizer = weakref.finalize(self, self._resources.close)

    @property
    def block_name(self) -> str | None:
        """Name of the shared-memory block, ``None`` before the first call."""
        block = self._resources.block
        return None if block is None else block.name

    def close(self, kill: bool = False) -> None:
        """Shut the helpers down (``kill``: terminate them first) and unlink the block."""
        self._finalizer.detach()
        self._resources.close(kill)

    def _block(self, size: int) -> SharedMemory:
        """The shared block, replaced by a new one if smaller than ``size`` bytes."""
        resources = self._resources
        if resources.block is None or resources.block.size < size:
            resources.release_block()
            resources.block = SharedMemory(create=True, size=max(1, size))
        return resources.block

    def submit(self, fn: Callable[..., object], *args: object) -> Future:
        """Run ``fn(*args)`` in a helper (a picklable module-level function)."""
        return self._resources.executor.submit(fn, *args)

    @contextmanager
    def gathering(self, futures: Sequence[Future]) -> Iterator[list]:
        """Yields a list that holds the futures' results, in order, after the block: whatever
        the block raises, every future is waited for first (none may still use the shared
        block). A helper's own error (such as ``EntropyCodingError``) is then raised as is, the
        block's first; a helper that timed out or a broken pool kills the helpers, marks the
        pool ``broken`` and raises ``RuntimeError``."""
        results: list = []
        try:
            yield results
        except BaseException:
            self._wait(futures)
            raise
        results.extend(self._wait(futures, raise_first=True))

    def _wait(self, futures: Sequence[Future], raise_first: bool = False) -> list:
        deadline = time.monotonic() + self.timeout_s
        results, errors = [], []
        for future in futures:
            try:
                results.append(future.result(max(0.0, deadline - time.monotonic())))
            except (FutureTimeout, BrokenProcessPool) as err:
                self.broken = True
                self.close(kill=True)
                raise RuntimeError(f"entropy-coding helper process failed: {err!r}") from None
            except Exception as err:  # the helper's own error, raised in order below
                errors.append(err)
        if raise_first and errors:
            raise errors[0]
        return results

    def encode(
        self,
        table: SliceCoder,
        symbols: np.ndarray,
        indexes: np.ndarray,
        bounds: np.ndarray,
        groups: list[tuple[int, int]],
    ) -> list[np.ndarray]:
        """Each slice's words (``table.encode_slice``), the first group of slices coded here,
        the others by the helpers. Their symbols (int32) and indexes (uint8) pass through the
        shared block; the helpers return only the compressed words."""
        offset = int(bounds[groups[1][0]])
        m = len(symbols) - offset
        with self._lock:
            shm = self._block(5 * m)
            np.ndarray((m,), np.int32, shm.buf)[:] = symbols[offset:]
            np.ndarray((m,), np.uint8, shm.buf, 4 * m)[:] = indexes[offset:]
            futures = [
                self.submit(
                    _helper_encode,
                    self.factory,
                    self.slice_symbols,
                    shm.name,
                    m,
                    (bounds[a : b + 1] - offset).tolist(),
                )
                for a, b in groups[1:]
            ]
            with self.gathering(futures) as results:
                a, b = groups[0]
                words = [
                    table.encode_slice(symbols[x:y], indexes[x:y])
                    for x, y in zip(bounds[a:b], bounds[a + 1 : b + 1], strict=True)
                ]
            for helper_words in results:
                words.extend(helper_words)
        return words

    def decode(
        self,
        table: SliceCoder,
        words: list[np.ndarray],
        indexes: np.ndarray,
        bounds: np.ndarray,
        groups: list[tuple[int, int]],
    ) -> np.ndarray:
        """Inverse of ``encode``: the first group of slices decoded here, the others by the
        helpers, which read their words and indexes from the shared block and write the decoded
        symbols (int64) into it. A damaged slice raises the table's own error."""
        n = len(indexes)
        first = groups[1][0]
        offset = int(bounds[first])
        m = n - offset
        word_edges = np.concatenate([[0], np.cumsum([len(w) for w in words[first:]])])
        word_edges = word_edges.astype(np.int64)
        n_words = int(word_edges[-1])
        symbols = np.empty(n, dtype=np.int64)
        with self._lock:
            shm = self._block(8 * m + 4 * n_words + m)
            np.ndarray((n_words,), np.uint32, shm.buf, 8 * m)[:] = np.concatenate(words[first:])
            np.ndarray((m,), np.uint8, shm.buf, 8 * m + 4 * n_words)[:] = indexes[offset:]
            futures = [
                self.submit(
                    _helper_decode,
                    self.factory,
                    self.slice_symbols,
                    shm.name,
                    m,
                    n_words,
                    word_edges[a - first : b - first + 1].tolist(),
                    (bounds[a : b + 1] - offset).tolist(),
                )
                for a, b in groups[1:]
            ]
            with self.gathering(futures):
                a, b = groups[0]
                for i in range(a, b):
                    x, y = int(bounds[i]), int(bounds[i + 1])
                    symbols[x:y] = table.decode_slice(words[i], indexes[x:y])
            symbols[offset:] = np.ndarray((m,), np.int64, shm.buf)
        return symbols


# -- in the helper processes ---------------------------------------------------------------


@functools.cache
def _helper_table(factory: TableFactory, slice_symbols: int) -> SliceCoder:
    """The helper's coding table, built once per process (by ``_helper_start``).
    ``ProcessPoolExecutor`` keeps nothing per process between tasks but module state, so the
    table is the memoised result of this pure function of its arguments, which every task
    passes."""
    return factory(slice_symbols)


def _helper_start(factory: TableFactory, slice_symbols: int) -> None:
    """Start-up of a helper process: one thread for torch, the table built once."""
    import torch  # imported with the table's module anyway; here limited to one thread

    torch.set_num_threads(1)
    _helper_table(factory, slice_symbols)


def _helper_encode(
    factory: TableFactory, slice_symbols: int, name: str, m: int, bounds: list[int]
) -> list[np.ndarray]:
    """In a helper: the words of the slices ``bounds[i]:bounds[i + 1]`` of the block's m
    symbols (int32 at 0) and indexes (uint8 at 4 m)."""
    lo, hi = bounds[0], bounds[-1]
    shm = SharedMemory(name)
    try:  # private copies: no view of the block may outlive close()
        symbols = np.ndarray((m,), np.int32, shm.buf)[lo:hi].copy()
        indexes = np.ndarray((m,), np.uint8, shm.buf, 4 * m)[lo:hi].copy()
    finally:
        shm.close()
    table = _helper_table(factory, slice_symbols)
    return [
        table.encode_slice(symbols[a - lo : b - lo], indexes[a - lo : b - lo])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def _helper_decode(
    factory: TableFactory,
    slice_symbols: int,
    name: str,
    m: int,
    n_words: int,
    word_edges: list[int],
    bounds: list[int],
) -> None:
    """In a helper: decode the slices whose words are ``word_edges[i]:[i + 1]`` of the block's
    words (uint32 at 8 m) into its symbols ``bounds[i]:[i + 1]`` (int64 at 0), with the indexes
    at 8 m + 4 ``n_words``. Raises the table's error for a damaged slice."""
    lo, hi = bounds[0], bounds[-1]
    shm = SharedMemory(name)
    try:
        words = np.ndarray((n_words,), np.uint32, shm.buf, 8 * m)[
            word_edges[0] : word_edges[-1]
        ].copy()
        indexes = np.ndarray((m,), np.uint8, shm.buf, 8 * m + 4 * n_words)[lo:hi].copy()
    finally:
        shm.close()
    table = _helper_table(factory, slice_symbols)
    w0 = word_edges[0]
    decoded = np.concatenate(
        [
            table.decode_slice(words[u - w0 : v - w0], indexes[a - lo : b - lo])
            for u, v, a, b in zip(
                word_edges[:-1], word_edges[1:], bounds[:-1], bounds[1:], strict=True
            )
        ]
    )
    shm = SharedMemory(name)
    try:
        np.ndarray((m,), np.int64, shm.buf)[lo:hi] = decoded
    finally:
        shm.close()
