"""The hyper-parameters of a training run (``TrainConfig``): the schedule, batch sizes, learning
rate and the shares of synthetic and loss-aware clips. Importing it does not import torch, so
``dhvc train`` reads its option defaults from here at start-up."""

from __future__ import annotations

import math
from dataclasses import dataclass

from codec.model.config import DEFAULT_PRESET


def check_camera_shares(still: float, slow: float) -> None:
    """Raise ValueError unless the shares of still and slow synthetic clips are valid."""
    if not (still >= 0 and slow >= 0 and still + slow <= 1):
        raise ValueError(
            "still_fraction and slow_fraction must be non-negative with a sum of at most 1, "
            f"got {still} and {slow}"
        )


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a training run. Steps are cumulative phase boundaries.

    ``batch_size`` clips per step in the 3- and 7-frame phases, ``intra_batch_size`` single
    frames per step in the intra phase (large: an intra step is cheap). ``loss_aware_fraction``
    of the clips lose their upper scales in one frame and recover by mirroring
    (``sample_loss_events``). ``procedural_pictures`` dead-leaves and text pictures of
    4 x ``crop`` px join the photos (``codec.train.procedural``; 48 add about a fifth to the
    pack's photo tiles). ``still_fraction`` of the synthetic clips keep the camera still and
    ``slow_fraction`` pan at 0-1 px/frame (``DeviceSampler``). The learning rate warms
    up linearly over ``warmup_steps``, then follows one cosine from ``lr`` down to
    ``lr * lr_final_ratio`` at ``p7_steps``; with ``lr_restart_step`` = R > 0 (a warm restart,
    for a run resumed with a longer schedule), the cosine starts again at ``lr`` at step R.
    With ``intra_every`` = N (0: never), every N-th
    step of the clip phases is an intra step instead (``intra_batch_size`` single frames): in
    a 7-frame clip only one frame in seven is intra-coded, and intra coding falls behind.
    """

    preset: str = DEFAULT_PRESET
    intra_steps: int = 2000
    p3_steps: int = 4000
    p7_steps: int = 5000
    batch_size: int = 8
    intra_batch_size: int = 24
    crop: int = 128
    lr: float = 4e-4
    lr_final_ratio: float = 0.05
    warmup_steps: int = 100
    lr_restart_step: int = 0
    grad_clip: float = 1.0
    spike_factor: float = 4.0
    ema_decay: float = 0.999
    seed: int = 0
    save_every: int = 200
    log_every: int = 10
    synthetic_fraction: float = 0.5
    still_fraction: float = 0.15
    slow_fraction: float = 0.2
    procedural_pictures: int = 48
    loss_aware_fraction: float = 0.25
    intra_every: int = 0
    channels_last: bool = True
    cpu_bf16: bool = True  # CPU: the 1x1 MLPs in bfloat16 (layers.cpu_training_kernels)
    compile: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.intra_steps <= self.p3_steps <= self.p7_steps or self.p7_steps < 1:
            raise ValueError("need 0 <= intra_steps <= p3_steps <= p7_steps and p7_steps >= 1")
        if self.batch_size < 1 or self.intra_batch_size < 1:
            raise ValueError("batch sizes must be at least 1")
        if self.crop < 64 or self.crop % 64:
            raise ValueError(f"crop must be a positive multiple of 64, got {self.crop}")
        if not self.lr > 0 or not 0 < self.lr_final_ratio <= 1:
            raise ValueError("need lr > 0 and 0 < lr_final_ratio <= 1")
        if not 0 <= self.lr_restart_step < self.p7_steps:
            raise ValueError(
                f"lr_restart_step must lie in [0, p7_steps), got {self.lr_restart_step}"
            )
        check_camera_shares(self.still_fraction, self.slow_fraction)
        if not 0 <= self.procedural_pictures <= 10_000:
            raise ValueError(
                f"procedural_pictures must lie in [0, 10000], got {self.procedural_pictures}"
            )
        if not 0 <= self.loss_aware_fraction <= 1:
            raise ValueError(
                f"loss_aware_fraction must lie in [0, 1], got {self.loss_aware_fraction}"
            )
        if self.intra_every == 1 or not 0 <= self.intra_every <= 1_000_000:
            raise ValueError(f"intra_every must be 0 (off) or 2..1000000, got {self.intra_every}")
        if self.spike_factor <= 1 or self.save_every < 1 or self.log_every < 1:
            raise ValueError("need spike_factor > 1, save_every >= 1 and log_every >= 1")

    def phase_at(self, step: int) -> int:
        """The phase of the schedule at ``step`` (0-based): 1 intra, 3 or 7 the clip length."""
        if step < self.intra_steps:
            return 1
        return 3 if step < self.p3_steps else 7

    def interleaved_intra(self, step: int) -> bool:
        """Whether ``step`` is an intra step inside a clip phase (``intra_every``)."""
        return self.intra_every > 0 and step >= self.intra_steps and step % self.intra_every == 0

    def frames_at(self, step: int) -> int:
        """Sequence length at ``step`` (0-based): the phase's, 1 on an interleaved intra step."""
        return 1 if self.interleaved_intra(step) else self.phase_at(step)

    def batch_at(self, step: int) -> int:
        """Clips per step at ``step``."""
        return self.intra_batch_size if self.frames_at(step) == 1 else self.batch_size

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine decay to ``lr * lr_final_ratio`` at ``total_steps``
        (from ``lr_restart_step`` on, a second cosine from ``lr``)."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        start = self.lr_restart_step if step >= self.lr_restart_step > 0 else self.warmup_steps
        span = max(1, self.total_steps - start)
        progress = min(1.0, (step - start) / span)
        floor = self.lr * self.lr_final_ratio
        return floor + (self.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    @property
    def total_steps(self) -> int:
        return self.p7_steps
