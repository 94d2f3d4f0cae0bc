"""What the training tests share: a tiny run of five steps (their sources are the
``sources`` fixture of ``tests/codec/conftest.py``)."""

from __future__ import annotations

from codec.train.trainer import TrainConfig

TINY_RUN = TrainConfig(
    preset="tiny",
    intra_steps=2,
    p3_steps=4,
    p7_steps=5,
    batch_size=2,
    intra_batch_size=4,
    crop=64,
    log_every=1,
    warmup_steps=2,
    procedural_pictures=2,
)
"""Two intra steps, two 3-frame steps, one 7-frame step of the ``tiny`` preset."""


def losses(state) -> list[float]:
    """The logged loss of every step of a run."""
    return [row["loss"] for row in state.history]
