"""Fixtures of the codec tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from codec.pack.load import Pack
from codec.train.data import sample_sources


@pytest.fixture(scope="module")
def sources() -> Pack:
    """Training sources for the tiny runs: two stills and the sample clips, small (no training
    pack needed)."""
    return sample_sources(stills=("astronaut", "coffee"), max_frames=24, short_side=96)


@pytest.fixture
def threads(request):
    """Run the test on ``request.param`` intra-op threads (parametrize with indirect=True)."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def states_equal(a, b) -> bool:
    """Two coders' reference states hold the same tensors bit for bit."""
    for (a1, a2), (b1, b2) in zip(a.refs, b.refs, strict=True):
        for x, y in ((a1, b1), (a2, b2)):
            if (x is None) != (y is None) or (x is not None and not torch.equal(x, y)):
                return False
    if (a.x_prev is None) != (b.x_prev is None):
        return False
    return a.x_prev is None or torch.equal(a.x_prev, b.x_prev)


def _texture(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = gaussian_filter(rng.random((height, width, 3)), sigma=(2.0, 2.0, 0))
    low, high = image.min(), image.max()
    return np.round(255 * (image - low) / (high - low)).astype(np.uint8)


def pan(frames: int, speed: tuple[int, int], size=(128, 192), seed: int = 0) -> np.ndarray:
    """A clip whose picture moves by ``speed`` (dx, dy) px per frame (the window moves the
    other way)."""
    h, w = size
    dx, dy = speed
    big = _texture(h + abs(dy) * frames + 2, w + abs(dx) * frames + 2, seed)
    x0 = abs(dx) * frames if dx > 0 else 0
    y0 = abs(dy) * frames if dy > 0 else 0
    return np.stack(
        [big[y0 - dy * t : y0 - dy * t + h, x0 - dx * t : x0 - dx * t + w] for t in range(frames)]
    )


@pytest.fixture(scope="session")
def pan_clip() -> np.ndarray:
    """Seven 128x192 frames of a texture moving 8 px right and 16 px up per frame."""
    return pan(7, (8, -16))
