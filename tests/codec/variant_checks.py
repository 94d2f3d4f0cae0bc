"""Checks every architecture variant that warm-starts from ``base`` must pass
(``posterior_context``, ``prior_conv_blocks``): it codes bit-exactly and recovers from loss,
and a training state of the plain model resumes under it on the same loss curve."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from codec import Decoder, Encoder
from codec.model.config import PRESETS
from codec.model.dhvc import DHVC
from codec.train.trainer import load_train_state, train
from codec.types import IN_SYNC
from tests.codec.train_setup import TINY_RUN


def check_codes_bit_exactly_and_recovers(model: DHVC, frames: np.ndarray, mirror: bool) -> None:
    """Two frames decode bit-exactly; a frame that lost scales 3-4 leaves the decoder out of
    sync from scale 3; a re-sync (or, with ``mirror``, a mirrored frame) puts it back."""
    h, w = frames.shape[1:3]
    enc, dec = Encoder(model, gop=8), Decoder(model, h, w)
    for frame in frames[:2]:
        encoded = enc.encode(frame, 512.0)
        assert np.array_equal(dec.decode(encoded.received()).x_hat, encoded.x_hat)
    decoded = dec.decode(enc.encode(frames[2], 512.0).received({1, 2}))
    assert decoded.first_desynced_scale == 3
    recovery = {"mirror": (2, 3)} if mirror else {"resync_from": 3}
    encoded = enc.encode(frames[3], 512.0, **recovery)
    decoded = dec.decode(encoded.received())
    assert decoded.first_desynced_scale == IN_SYNC
    assert np.array_equal(decoded.x_hat, encoded.x_hat)


def check_state_resumes_under(preset: str, tmp_path: Path, sources) -> dict:
    """A tiny run of the plain preset stopped after 3 steps resumes under ``preset``: the first
    resumed step computes the same function on the same batch (same loss as the run that never
    stopped), and the run ends at the schedule's end. Returns the saved state."""
    whole = train(TINY_RUN, tmp_path / "a" / "state.pt", sources)
    path = tmp_path / "b" / "state.pt"
    train(TINY_RUN, path, sources, max_steps=3)
    grown = train(replace(TINY_RUN, preset=preset), path, sources, weights_out=tmp_path / "w.pt")
    assert grown.step == TINY_RUN.p7_steps
    assert grown.history[3]["loss"] == pytest.approx(whole.history[3]["loss"], rel=1e-4)
    return load_train_state(path)


def register_variant(monkeypatch, config) -> str:
    """Register ``config`` as a preset for one test (``dhvc train`` takes presets by name)."""
    monkeypatch.setitem(PRESETS, config.name, config)
    return config.name


def check_weights_warm_start(preset: str, tmp_path: Path, sources) -> tuple[Path, Path]:
    """fp16 weights of a one-step tiny run warm-start a run of ``preset`` (which keeps their
    step count). Returns (the plain weights, the weights the ``preset`` run wrote)."""
    weights, grown = tmp_path / "w.pt", tmp_path / "grown.pt"
    train(TINY_RUN, tmp_path / "state.pt", sources, weights_out=weights, max_steps=1)
    run = replace(TINY_RUN, preset=preset)
    warm = train(run, tmp_path / "warm.pt", sources, resume=weights, weights_out=grown, max_steps=1)
    assert warm.step == 2
    return weights, grown
