"""Mahimahi delivery traces: when a cellular link could deliver a packet.

A trace file has one line per delivery opportunity: an integer timestamp in milliseconds from
the start of the trace; each opportunity can carry ``OPPORTUNITY_BYTES`` bytes, and a timestamp
repeated on several lines means several opportunities in that millisecond. The trace repeats
with a period equal to its last timestamp, as Mahimahi's link shell replays it.

Traces are read with two limits, so that a hostile file gives a one-line ``TraceFormatError``
instead of exhausting memory or overflowing float arithmetic later: at most
``MAX_TRACE_FILE_BYTES`` are read (a device such as ``/dev/zero`` is refused after that many
bytes), and timestamps are at most ``MAX_TIMESTAMP_MS``.
"""

from __future__ import annotations

import bisect
import io
from dataclasses import dataclass
from pathlib import Path

OPPORTUNITY_BYTES = 1500
"""Bytes one delivery opportunity can carry (Mahimahi's MTU-sized packet)."""

MAX_TRACE_FILE_BYTES = 64 * 2**20
"""Largest trace file read (64 MiB: about ten million opportunities; Mahimahi's cellular
traces are a few MB)."""

MAX_TIMESTAMP_MS = 2**31 - 1
"""Largest timestamp accepted (about 24.8 days): trace times stay exact in float seconds."""

_TOLERANCE_S = 1e-9


class TraceFormatError(ValueError):
    """A delivery trace that cannot be used; the message is one line naming the problem."""


@dataclass(frozen=True)
class DeliveryTrace:
    """The delivery opportunities of one trace period (ms, sorted) and the period (ms)."""

    opportunities_ms: tuple[int, ...]
    period_ms: int

    @property
    def mean_rate_kbps(self) -> float:
        """Average capacity over one period in kbit/s."""
        return len(self.opportunities_ms) * OPPORTUNITY_BYTES * 8 / self.period_ms

    def opportunity_time_s(self, index: int) -> float:
        """Time of the ``index``-th opportunity counted from time 0 across repetitions (s)."""
        cycle, position = divmod(index, len(self.opportunities_ms))
        return (cycle * self.period_ms + self.opportunities_ms[position]) / 1000.0

    def first_index_at_or_after(self, time_s: float) -> int:
        """Index of the first opportunity at or after ``time_s`` (1 ns tolerance, so that an
        instant computed to be an opportunity's time never misses it by rounding)."""
        count = len(self.opportunities_ms)
        earliest_s = time_s - _TOLERANCE_S
        time_ms = max(0.0, earliest_s * 1000.0)
        cycle = int(time_ms // self.period_ms)
        position = bisect.bisect_left(self.opportunities_ms, time_ms - cycle * self.period_ms)
        index = cycle * count + position
        while index > 0 and self.opportunity_time_s(index - 1) >= earliest_s:
            index -= 1
        while self.opportunity_time_s(index) < earliest_s:
            index += 1
        return index


def load_delivery_trace(path: Path) -> DeliveryTrace:
    """Parse a Mahimahi trace file; raises ``TraceFormatError`` or ``OSError``."""
    with Path(path).open("rb") as handle:
        raw = handle.read(MAX_TRACE_FILE_BYTES + 1)
    if len(raw) > MAX_TRACE_FILE_BYTES:
        raise TraceFormatError(f"the trace is larger than {MAX_TRACE_FILE_BYTES} bytes")
    opportunities: list[int] = []
    widest = len(str(MAX_TIMESTAMP_MS))
    for line_number, line in enumerate(io.BytesIO(raw), start=1):
        digits = line.strip()
        if not digits:
            continue
        text = digits[:20].decode("ascii", errors="replace")
        if not digits.isdigit():  # ASCII digits only, for bytes
            raise TraceFormatError(f"line {line_number}: {text!r} is not a millisecond timestamp")
        value = int(digits) if len(digits.lstrip(b"0")) <= widest else MAX_TIMESTAMP_MS + 1
        if value > MAX_TIMESTAMP_MS:
            more = "..." if len(digits) > 20 else ""
            raise TraceFormatError(
                f"line {line_number}: timestamp {text}{more} is above the largest accepted, "
                f"{MAX_TIMESTAMP_MS} ms"
            )
        if opportunities and value < opportunities[-1]:
            raise TraceFormatError(f"line {line_number}: timestamps must not decrease")
        opportunities.append(value)
    if not opportunities:
        raise TraceFormatError("the trace has no delivery opportunities")
    if opportunities[-1] <= 0:
        raise TraceFormatError("the last timestamp must be positive (it is the trace period)")
    return DeliveryTrace(tuple(opportunities), opportunities[-1])
