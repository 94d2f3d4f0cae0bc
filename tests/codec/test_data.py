"""Training sources: the in-package samples without their evaluation frames, and the pack."""

from __future__ import annotations

import numpy as np
import pytest

from codec.io.video import read_frames
from codec.pack.load import EVAL_FRAMES
from codec.train.data import sample_sources, training_sources


def test_sample_sources_hold_photos_and_clips_as_uint8_rgb():
    sources = sample_sources(stills=("astronaut", "coffee"), max_frames=8)
    assert len(sources.photos) == 2 and len(sources.clips) == 1
    assert all(p.dtype == np.uint8 and p.ndim == 3 and p.shape[2] == 3 for p in sources.photos)
    clip = sources.clips[0]
    assert clip.dtype == np.uint8 and clip.shape[0] == 8 and min(clip.shape[1:3]) == 256
    assert sources.describe() == "2 photos, 1 clips (8 frames)"


def test_sample_clips_start_after_the_evaluation_frames():
    sources = sample_sources(stills=(), max_frames=2, short_side=64)
    first = sources.clips[0][0].astype(np.float64)
    size = sources.clips[0].shape[2], sources.clips[0].shape[1]
    held_out = read_frames("sample:bikes", max_frames=EVAL_FRAMES + 1, size=size)
    assert np.abs(held_out[EVAL_FRAMES] - first).mean() < 1.0
    assert all(np.abs(f - first).mean() > 1.0 for f in held_out[:EVAL_FRAMES:8])


def test_sample_sources_reject_unknown_stills():
    with pytest.raises(ValueError, match="unknown stills"):
        sample_sources(stills=("nope",))


def test_a_missing_pack_is_named_and_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="make data") as err:
        training_sources(tmp_path / "nowhere")
    assert "nowhere" in str(err.value)
