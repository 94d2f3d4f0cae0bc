"""Torch's intra-op thread count, set for a block and restored after it. The count is
process-wide, and float sums split over another number of threads round differently in the
last bits, so every place that needs results independent of the machine's thread count (the
coder, the quality metrics, a netsim run) pins it with ``intra_op_threads``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def intra_op_threads(threads: int) -> Iterator[None]:
    """Run the enclosed block on ``threads`` intra-op threads, then restore the count (nothing
    is set when it already is ``threads``). Usable as a decorator."""
    before = torch.get_num_threads()
    if before != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if before != threads:
            torch.set_num_threads(before)
