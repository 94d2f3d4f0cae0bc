"""Data-parallel CPU training (``train(..., workers=2)``): the workers stay in step, the run
resumes exactly, and states move between one and two workers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from codec.train.trainer import load_train_state, train
from tests.codec.train_setup import TINY_RUN, losses

CFG = TINY_RUN


def test_two_workers_train_resume_exactly_and_save_every_stream(tmp_path: Path, sources):
    whole = train(CFG, tmp_path / "a" / "state.pt", sources, workers=2)
    assert whole.step == CFG.p7_steps
    assert [row["frames"] for row in whole.history] == [1, 1, 3, 3, 7]
    path = tmp_path / "b" / "state.pt"
    first = train(CFG, path, sources, workers=2, max_steps=3)
    assert first.step == 3
    saved = load_train_state(path)
    assert len(saved["worker_streams"]) == 1
    assert not torch.equal(saved["worker_streams"][0]["lambda_rng"], saved["lambda_rng"])
    resumed = train(CFG, path, sources, workers=2)
    assert losses(resumed) == losses(whole)


def test_two_workers_differ_from_one_only_in_the_batches_they_draw(tmp_path: Path, sources):
    one = train(CFG, tmp_path / "one" / "state.pt", sources, max_steps=2)
    two = train(CFG, tmp_path / "two" / "state.pt", sources, workers=2, max_steps=2)
    # the same model, schedule and step count; the second worker's batches change the means
    assert [row["lr"] for row in one.history] == [row["lr"] for row in two.history]
    assert losses(one) != losses(two)
    # a one-process state continues with two workers, and back
    path = tmp_path / "one" / "state.pt"
    assert train(CFG, path, sources, workers=2, max_steps=1).step == 3
    assert load_train_state(path)["worker_streams"]
    assert train(CFG, path, sources, max_steps=1).step == 4
    assert load_train_state(path)["worker_streams"] == []


@pytest.mark.parametrize(
    ("cfg", "workers", "device", "message"),
    [
        (CFG, 0, "cpu", "workers must lie in"),
        (replace(CFG, batch_size=3), 2, "cpu", "batch_size \\(3\\) must be a multiple"),
        (replace(CFG, intra_batch_size=5), 2, "cpu", "intra_batch_size \\(5\\) must be"),
    ],
)
def test_bad_worker_settings_are_one_clear_error(
    tmp_path: Path, sources, cfg, workers, device, message
):
    with pytest.raises(ValueError, match=message):
        train(cfg, tmp_path / "state.pt", sources, workers=workers, device=device)
    assert not (tmp_path / "state.pt").exists()


def test_a_stop_request_ends_every_worker_with_the_state_saved(tmp_path: Path, sources):
    asked = []

    def should_stop() -> bool:  # asked by worker 0 before each step; yes before the third
        asked.append(True)
        return len(asked) >= 3

    path = tmp_path / "state.pt"
    stopped = train(CFG, path, sources, workers=2, should_stop=should_stop)
    assert stopped.step == 2
    saved = load_train_state(path)
    assert saved["step"] == 2 and len(saved["worker_streams"]) == 1
    assert train(CFG, path, sources, workers=2).step == CFG.p7_steps
