"""The slice helper pool (codec.entropy.slice_pool): a helper that hangs or dies breaks the pool
with one RuntimeError and is killed, and the table starts a new pool on its next call."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import psutil
import pytest

from codec.entropy import gaussian
from codec.entropy.gaussian import GaussianTable
from codec.entropy.slice_pool import SlicePool

SLICE = 5


@pytest.fixture
def pool() -> Iterator[SlicePool]:
    pool = SlicePool(GaussianTable.build, SLICE, helpers=1)
    yield pool
    pool.close(kill=True)


def helper_pid(pool: SlicePool) -> int:
    """The pid of the pool's helper, once it has started (spawn takes a few seconds)."""
    with pool.gathering([pool.submit(os.getpid)]) as results:
        pass
    return results[0]


def gone(pid: int, within_s: float = 10.0) -> bool:
    """Whether process ``pid`` ends (or is a zombie) within ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_a_hung_helper_times_out_breaks_the_pool_and_is_killed(pool):
    pid = helper_pid(pool)  # started: from now on a call waits at most timeout_s
    pool.timeout_s = 1.0
    start = time.monotonic()
    failing = pool.submit(time.sleep, 60)
    with pytest.raises(RuntimeError, match="helper process failed"), pool.gathering([failing]):
        pass
    assert time.monotonic() - start < 30  # the timeout, not the helper's sleep
    assert pool.broken
    assert gone(pid)


def test_a_helper_that_dies_breaks_the_pool_with_one_runtime_error(pool):
    pid = helper_pid(pool)
    failing = pool.submit(os._exit, 3)
    with pytest.raises(RuntimeError, match="helper process failed"), pool.gathering([failing]):
        pass
    assert pool.broken
    assert gone(pid)


def test_the_table_starts_a_new_pool_after_a_helper_died(monkeypatch):
    monkeypatch.setattr(gaussian, "PROCESS_MIN_SYMBOLS", 0)
    table = GaussianTable.build(slice_symbols=SLICE)
    symbols = np.arange(40) - 20
    indexes = np.arange(40, dtype=np.uint8)
    serial = table.encode(symbols, indexes)
    try:
        assert table.encode(symbols, indexes, 2, "process") == serial
        broken = table.slice_pool
        assert broken is not None
        with pytest.raises(RuntimeError), broken.gathering([broken.submit(os._exit, 3)]):
            pass
        assert table.encode(symbols, indexes, 2, "process") == serial
        assert table.slice_pool is not broken and not table.slice_pool.broken
    finally:
        table.close()
    assert table.slice_pool is None


def test_the_executor_exposes_its_processes_where_python_has_no_public_kill():
    """``slice_pool._kill_workers`` reads ``ProcessPoolExecutor._processes`` before Python 3.14
    (``terminate_workers``); this fails if that private attribute changes."""
    executor = ProcessPoolExecutor(1)
    try:
        pid = executor.submit(os.getpid).result(timeout=60)
        if not hasattr(executor, "terminate_workers"):
            processes = executor._processes
            assert isinstance(processes, dict)
            assert [p.pid for p in processes.values()] == [pid]
            assert all(callable(p.terminate) for p in processes.values())
    finally:
        executor.shutdown()
