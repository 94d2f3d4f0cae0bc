"""Fixtures of the codec tests."""

from __future__ import annotations

import pytest

from codec.pack.load import Pack
from codec.train.data import sample_sources


@pytest.fixture(scope="module")
def sources() -> Pack:
    """Training sources for the tiny runs: two stills and the sample clips, small (no training
    pack needed)."""
    return sample_sources(stills=("astronaut", "coffee"), max_frames=24, short_side=96)
