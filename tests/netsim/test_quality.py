"""Measuring shown frames in batches (issue 18 item 1: measuring must stay cheap)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.metrics import frame_quality
from codec.threads import intra_op_threads
from netsim.codecs.base import ShownPicture
from netsim.quality import QualityObserver
from netsim.trace import FrameTrace


def test_batched_measuring_gives_each_frames_own_values_by_the_last_frame() -> None:
    rng = np.random.default_rng(0)
    originals = rng.integers(0, 256, (5, 48, 64, 3), dtype=np.uint8)
    shown = np.clip(originals / 255.0 + rng.normal(0, 0.05, originals.shape), 0, 1)
    shown = shown.astype(np.float32)
    frames = FrameTrace(measures_quality=True)
    observer = QualityObserver(originals, frames, batch_frames=2)
    for i in range(4):
        observer(ShownPicture(i, shown[i], 5, None, 4, 4, False))
    assert len(frames._quality) == 4  # two full batches, measured on the caller's thread
    observer(ShownPicture(4, shown[4], 5, None, 4, 4, False))  # the last frame: flushed
    psnrs, ssims = frame_quality(originals, shown)
    measured = [frames._quality[i] for i in range(5)]
    assert [q.psnr for q in measured] == list(psnrs)
    assert np.allclose([q.ms_ssim for q in measured], ssims, atol=1e-9)


def test_concurrent_measuring_gives_the_same_values_and_needs_one_thread() -> None:
    rng = np.random.default_rng(1)
    originals = rng.integers(0, 256, (5, 48, 64, 3), dtype=np.uint8)
    shown = rng.random((5, 48, 64, 3), dtype=np.float32)
    plain, concurrent = FrameTrace(measures_quality=True), FrameTrace(measures_quality=True)
    with intra_op_threads(1):
        a = QualityObserver(originals, plain, batch_frames=2)
        b = QualityObserver(originals, concurrent, batch_frames=2, concurrent=True)
        for i in range(5):
            a(ShownPicture(i, shown[i], 5, None, 4, 4, False))
            b(ShownPicture(i, shown[i], 5, None, 4, 4, False))
    assert plain._quality == concurrent._quality
    assert b.measure_time_s > 0 and b.wall_time_s >= 0
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        c = QualityObserver(originals, FrameTrace(measures_quality=True), concurrent=True)
        with pytest.raises(RuntimeError, match="one intra-op thread"):
            c(ShownPicture(4, shown[4], 5, None, 4, 4, False))  # the last frame: measured
    finally:
        torch.set_num_threads(before)
