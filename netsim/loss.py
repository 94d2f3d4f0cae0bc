"""Packet loss models: none, Bernoulli, Gilbert-Elliott, and an explicit list (DESIGN 4).

Each model is a small object that owns its ``numpy.random.Generator`` and answers, packet by
packet in sending order, whether the packet is lost. Any model may be limited to a window of
frames ``[first_frame, last_frame]`` (inclusive; the paper's frames 4-28) and may exempt scales
(the paper's assumption that scale 1 always arrives). Packets outside the window or of an
exempt scale are never lost and do not advance the model: its statistics, and the analytic
values below, describe the packets it applies to.

Gilbert-Elliott follows netem's ``loss gemodel p r 1-h 1-k``: a two-state Markov chain, Good
and Bad, stepped once per packet; p = P(Good -> Bad), r = P(Bad -> Good); a packet is lost with
probability 1-h in Bad and 1-k in Good. The simple Gilbert model (1-h = 1, 1-k = 0) can also be
given by its mean loss rate and mean burst length.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


def gilbert_parameters(loss_rate: float, mean_burst_packets: float) -> tuple[float, float]:
    """(p, r) of the simple Gilbert model with this loss rate and mean loss-burst length.

    In the simple model every packet in Bad is lost and none in Good, so bursts are the Bad
    sojourns: mean burst = 1 / r, and the stationary P(Bad) = p / (p + r) = loss_rate.
    Raises ``ValueError`` when no such chain exists (p would exceed 1).
    """
    if not 0.0 <= loss_rate < 1.0:
        raise ValueError(f"loss_rate must be in [0, 1), got {loss_rate}")
    if mean_burst_packets < 1.0:
        raise ValueError(f"mean_burst_packets must be >= 1, got {mean_burst_packets}")
    r = 1.0 / mean_burst_packets
    p = loss_rate * r / (1.0 - loss_rate)
    if p > 1.0:
        raise ValueError(
            f"loss_rate {loss_rate} needs bursts longer than {mean_burst_packets} packets "
            f"(at least {loss_rate / (1.0 - loss_rate):.3g})"
        )
    return p, r


@dataclass(frozen=True)
class LossWindow:
    """Which packets a loss model applies to: frames first..last (inclusive, None = open),
    scales not in ``exempt_scales``."""

    first_frame: int | None = None
    last_frame: int | None = None
    exempt_scales: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        first, last = self.first_frame, self.last_frame
        if first is not None and last is not None and first > last:
            raise ValueError(f"first_frame {first} is after last_frame {last}")

    def contains(self, frame_index: int, scale: int) -> bool:
        """Whether a packet of this frame and scale is inside the window."""
        if self.first_frame is not None and frame_index < self.first_frame:
            return False
        if self.last_frame is not None and frame_index > self.last_frame:
            return False
        return scale not in self.exempt_scales


class LossModel(ABC):
    """Decides, per packet, whether the channel loses it."""

    def __init__(self, window: LossWindow | None = None) -> None:
        self.window = window or LossWindow()

    def applies_to(self, frame_index: int, scale: int) -> bool:
        """Whether a packet of this frame and scale is exposed to the model."""
        return self.window.contains(frame_index, scale)

    def drops(self, frame_index: int, scale: int, fragment_index: int = 0) -> bool:
        """True if the packet is lost. Call once per packet, in sending order."""
        if not self.applies_to(frame_index, scale):
            return False
        return self._draw(frame_index, scale, fragment_index)

    @abstractmethod
    def _draw(self, frame_index: int, scale: int, fragment_index: int) -> bool:
        """Loss decision for a packet the model applies to; advances the model's state."""

    @abstractmethod
    def analytic_loss_rate(self) -> float | None:
        """Stationary probability that an exposed packet is lost (None: depends on traffic)."""

    @abstractmethod
    def analytic_mean_burst_packets(self) -> float | None:
        """Expected length of a run of consecutive lost exposed packets (0 if none are lost)."""


class NoLoss(LossModel):
    """A channel that loses nothing."""

    def _draw(self, frame_index: int, scale: int, fragment_index: int) -> bool:
        return False

    def analytic_loss_rate(self) -> float:
        return 0.0

    def analytic_mean_burst_packets(self) -> float:
        return 0.0


class BernoulliLoss(LossModel):
    """Independent losses with probability ``loss_rate`` per packet.

    Common random numbers: packet (frame, scale, fragment) is lost when its own uniform
    u(key, frame, scale, fragment) < loss_rate, where ``key`` is drawn once from the model's
    generator. For one seed the uniforms do not depend on the loss rate or on what was sent
    before, so the packets lost at 20% are also lost at 40%, 60% and 80%: scenarios that differ
    only in loss rate are compared on nested loss patterns (less noise than independent
    draws), while distinct packets still get independent uniforms.
    """

    def __init__(
        self, loss_rate: float, rng: np.random.Generator, window: LossWindow | None = None
    ) -> None:
        super().__init__(window)
        if not 0.0 <= loss_rate <= 1.0:
            raise ValueError(f"loss_rate must be in [0, 1], got {loss_rate}")
        self.loss_rate = loss_rate
        self._key = int(rng.integers(2**63))

    def uniform(self, frame_index: int, scale: int, fragment_index: int) -> float:
        """The packet's own uniform draw in [0, 1)."""
        seq = np.random.SeedSequence([self._key, frame_index, scale, fragment_index])
        return float(np.random.Generator(np.random.PCG64(seq)).random())

    def _draw(self, frame_index: int, scale: int, fragment_index: int) -> bool:
        return self.uniform(frame_index, scale, fragment_index) < self.loss_rate

    def analytic_loss_rate(self) -> float:
        return self.loss_rate

    def analytic_mean_burst_packets(self) -> float:
        """Runs are geometric: 1 / (1 - loss_rate)."""
        if self.loss_rate == 0.0:
            return 0.0
        if self.loss_rate == 1.0:
            return math.inf
        return 1.0 / (1.0 - self.loss_rate)


class GilbertElliottLoss(LossModel):
    """netem's Gilbert-Elliott model (module docstring); starts in its stationary distribution.

    Per packet: the loss is drawn with the current state's loss probability, then the chain
    takes one step (netem's order).
    """

    def __init__(
        self,
        p: float,
        r: float,
        rng: np.random.Generator,
        *,
        loss_in_bad: float = 1.0,
        loss_in_good: float = 0.0,
        window: LossWindow | None = None,
    ) -> None:
        super().__init__(window)
        for name, value in (("p", p), ("r", r), ("1-h", loss_in_bad), ("1-k", loss_in_good)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        self.p, self.r = p, r
        self.loss_in_bad, self.loss_in_good = loss_in_bad, loss_in_good
        self._rng = rng
        self.bad = bool(rng.random() < self._stationary_bad())

    @classmethod
    def from_loss_rate(
        cls,
        loss_rate: float,
        mean_burst_packets: float,
        rng: np.random.Generator,
        window: LossWindow | None = None,
    ) -> GilbertElliottLoss:
        """The simple Gilbert model with this loss rate and mean burst length."""
        p, r = gilbert_parameters(loss_rate, mean_burst_packets)
        return cls(p, r, rng, loss_in_bad=1.0, loss_in_good=0.0, window=window)

    def _stationary_bad(self) -> float:
        if self.p + self.r == 0.0:
            return 0.0  # the chain never moves; it starts (and stays) in Good
        return self.p / (self.p + self.r)

    def _draw(self, frame_index: int, scale: int, fragment_index: int) -> bool:
        loss_probability = self.loss_in_bad if self.bad else self.loss_in_good
        lost = bool(self._rng.random() < loss_probability)
        step = self._rng.random()
        self.bad = step >= self.r if self.bad else step < self.p
        return lost

    def analytic_loss_rate(self) -> float:
        bad = self._stationary_bad()
        return bad * self.loss_in_bad + (1.0 - bad) * self.loss_in_good

    def analytic_mean_burst_packets(self) -> float:
        """P(loss) / P(no loss, then loss) over consecutive packets of the stationary chain."""
        bad = self._stationary_bad()
        stationary = {"good": 1.0 - bad, "bad": bad}
        loss = {"good": self.loss_in_good, "bad": self.loss_in_bad}
        step = {
            ("good", "good"): 1.0 - self.p,
            ("good", "bad"): self.p,
            ("bad", "good"): self.r,
            ("bad", "bad"): 1.0 - self.r,
        }
        loss_rate = self.analytic_loss_rate()
        burst_starts = sum(stationary[a] * (1.0 - loss[a]) * step[a, b] * loss[b] for a, b in step)
        if loss_rate == 0.0:
            return 0.0
        if burst_starts == 0.0:
            return math.inf
        return loss_rate / burst_starts


class ExplicitLoss(LossModel):
    """Loses exactly the listed packets: (frame, scale) pairs, or (frame, scale, fragment)."""

    def __init__(self, losses: Iterable[tuple[int, int, int | None]]) -> None:
        super().__init__(LossWindow())
        self.losses = frozenset(losses)

    def _draw(self, frame_index: int, scale: int, fragment_index: int) -> bool:
        return (frame_index, scale, None) in self.losses or (
            frame_index,
            scale,
            fragment_index,
        ) in self.losses

    def analytic_loss_rate(self) -> None:
        return None

    def analytic_mean_burst_packets(self) -> None:
        return None
