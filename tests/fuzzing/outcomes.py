"""What became of each fuzz case: clean (accepted, or refused with the error its interface
promises, in one line), failed (any other exception, or a message of several lines) or a hang
(``CaseTimeout``); counted per category (``CategoryResult``)."""

from __future__ import annotations

import contextlib
import heapq
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fuzzing.guard import CaseTimeout, Guard

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("codec", "netsim", "analysis")
"""Packages whose own exception classes count as typed refusals."""
SLOWEST_KEPT = 5


@dataclass
class Failure:
    category: str
    case: int
    mutation: str
    outcome: str  # "failed" or "hang"
    exception: str
    message: str
    where: str
    traceback: str = field(repr=False, default="")

    def to_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "case": self.case,
            "mutation": self.mutation,
            "outcome": self.outcome,
            "exception": self.exception,
            "message": self.message,
            "where": self.where,
            "traceback": self.traceback,
        }


@dataclass
class CategoryResult:
    name: str
    tried: int = 0
    clean: int = 0
    failed: int = 0
    hangs: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    untyped: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)
    slowest: list[tuple[float, int, str]] = field(default_factory=list)
    last_refusal: str = ""

    def as_counts(self) -> dict[str, Any]:
        return {
            "tried": self.tried,
            "clean": self.clean,
            "failed": self.failed,
            "hangs": self.hangs,
            "wall_s": round(self.wall_s, 2),
            "cpu_s": round(self.cpu_s, 2),
            "counters": dict(self.counters),
            "untyped_refusals": dict(self.untyped),
            "notes": self.notes,
            "slowest_cases": [
                {"seconds": round(t, 2), "case": i, "mutation": m}
                for t, i, m in sorted(self.slowest, reverse=True)
            ],
        }


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text.strip() else ""


def one_line(exc: BaseException) -> bool:
    text = str(exc)
    return bool(text.strip()) and "\n" not in text and "\r" not in text


def _is_project_error(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in PROJECT_PACKAGES


def _where(exc: BaseException) -> str:
    """The innermost frame in codec/ or netsim/ (else the innermost frame): file:line func."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if any(f"/{p}/" in f.filename for p in PROJECT_PACKAGES)]
    chosen = (ours or frames or [None])[-1]
    if chosen is None:
        return "?"
    name = chosen.filename
    with contextlib.suppress(ValueError):
        name = str(Path(name).resolve().relative_to(ROOT))
    return f"{name}:{chosen.lineno} {chosen.name}"


def run_case(
    result: CategoryResult,
    guard: Guard,
    index: int,
    mutation: str,
    fn: Callable[[], str | None],
    timeout_s: float,
    expected: tuple[type[BaseException], ...],
) -> Failure | None:
    """Run one case, classify it into ``result``; returns its Failure (None when clean)."""
    result.tried += 1
    start = time.perf_counter()
    try:
        return _classify(result, guard, index, mutation, fn, timeout_s, expected)
    finally:
        elapsed = time.perf_counter() - start
        heapq.heappush(result.slowest, (elapsed, index, mutation))
        if len(result.slowest) > SLOWEST_KEPT:
            heapq.heappop(result.slowest)


def _classify(
    result: CategoryResult,
    guard: Guard,
    index: int,
    mutation: str,
    fn: Callable[[], str | None],
    timeout_s: float,
    expected: tuple[type[BaseException], ...],
) -> Failure | None:
    try:
        with guard.limit(timeout_s, f"{result.name} case {index}"):
            label = fn()
    except CaseTimeout as exc:
        return _record(result, index, mutation, "hang", exc)
    except expected as exc:
        if not one_line(exc):
            return _record(result, index, mutation, "failed", exc, "multi-line or empty message")
        result.clean += 1
        result.counters["refused"] += 1
        result.last_refusal = f"{type(exc).__name__}: {exc}"
        if not _is_project_error(exc):
            result.untyped[f"{type(exc).__name__} at {_where(exc)}"] += 1
        return None
    except (Exception, MemoryError, RecursionError) as exc:
        return _record(result, index, mutation, "failed", exc)
    result.clean += 1
    result.counters[label or "accepted"] += 1
    return None


def _record(
    result: CategoryResult,
    index: int,
    mutation: str,
    outcome: str,
    exc: BaseException,
    why: str = "",
) -> Failure:
    if outcome == "hang":
        result.hangs += 1
    else:
        result.failed += 1
    message = _first_line(exc)
    if why:
        message = f"{why}: {message!r}"
    failure = Failure(
        category=result.name,
        case=index,
        mutation=mutation,
        outcome=outcome,
        exception=type(exc).__name__,
        message=message[:300],
        where=_where(exc),
        traceback="".join(traceback.format_exception(exc))[-4000:],
    )
    result.failures.append(failure)
    return failure


def case_rng(seed: int, category: str, index: int) -> random.Random:
    """Each case's own generator, so that one case can be replayed on its own."""
    return random.Random(f"{seed}:{category}:{index}")
