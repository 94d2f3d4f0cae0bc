"""The time and memory guard of fuzz cases: a case that runs past its limit is interrupted
(``CaseTimeout``), one stuck in native code ends the process naming it, and an address-space
cap turns an allocation bomb into a ``MemoryError`` instead of an OOM kill."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any


class CaseTimeout(BaseException):
    """Raised in the main thread when a case runs past its time limit (a BaseException, so
    that code under test that catches ``Exception`` cannot swallow it)."""


class Guard:
    """Time limits for one case at a time.

    ``signal.setitimer`` raises ``CaseTimeout`` in the main thread when a case overruns (it can
    only interrupt between Python bytecodes); a watchdog thread ends the whole process, naming
    the case, if one stays stuck inside native code for ``hard_factor`` times the limit.
    Outside the main thread, only the watchdog applies.
    """

    def __init__(self, hard_factor: float = 4.0) -> None:
        self.hard_factor = hard_factor
        self._deadline: float | None = None
        self._what = ""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="fuzz-watchdog")
        self._thread.start()

    def _watch(self) -> None:
        while True:
            time.sleep(0.5)
            with self._lock:
                deadline, what = self._deadline, self._what
            if deadline is not None and time.monotonic() > deadline:
                sys.stderr.write(f"\nfuzz: {what} is stuck in native code; giving up\n")
                sys.stderr.flush()
                os._exit(3)

    @contextlib.contextmanager
    def limit(self, seconds: float, what: str) -> Iterator[None]:
        main = threading.current_thread() is threading.main_thread()

        def expire(signum: int, frame: Any) -> None:
            raise CaseTimeout(f"{what} ran past {seconds:g} s")

        with self._lock:
            self._deadline = time.monotonic() + max(self.hard_factor * seconds, seconds + 30)
            self._what = what
        previous = signal.signal(signal.SIGALRM, expire) if main else None
        if main:
            signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            if main:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
            with self._lock:
                self._deadline = None


def set_memory_limit(gigabytes: float) -> None:
    """Cap the address space, so that an allocation bomb is a MemoryError, not an OOM kill."""
    if gigabytes <= 0:
        return
    limit = int(gigabytes * (1 << 30))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
