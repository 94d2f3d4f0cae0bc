"""The echo path: delay, loss, arrival at capture instants."""

from __future__ import annotations

import numpy as np

from netsim.feedback import Echo, FeedbackLink
from netsim.loss import BernoulliLoss, ExplicitLoss, NoLoss


def test_echoes_arrive_after_the_delay_once_each_in_arrival_order() -> None:
    link = FeedbackLink(delay_s=0.05, loss=NoLoss())
    link.send(Echo(3, 2, send_time_s=0.20))
    link.send(Echo(2, 4, send_time_s=0.10))
    assert link.take_arrived(0.149) == []
    assert link.take_arrived(0.25) == [Echo(2, 4, 0.10), Echo(3, 2, 0.20)]
    assert link.take_arrived(1.0) == []
    assert (link.sent, link.lost, link.delivered) == (2, 0, 2)


def test_an_echo_due_at_an_instant_counts_as_arrived_despite_rounding() -> None:
    fps = 30.0
    link = FeedbackLink(delay_s=2 / fps, loss=NoLoss())
    link.send(Echo(5, 4, send_time_s=5 / fps + 1 / fps))
    assert link.take_arrived(7 / fps) == []
    assert [(e.frame_index, e.scale) for e in link.take_arrived(8 / fps)] == [(5, 4)]


def test_lost_echoes_never_arrive() -> None:
    link = FeedbackLink(delay_s=0.0, loss=ExplicitLoss([(5, 4, None)]))
    link.send(Echo(5, 4, 0.0))
    link.send(Echo(6, 4, 0.0))
    assert link.take_arrived(1.0) == [Echo(6, 4, 0.0)]
    assert link.lost == 1


def test_echo_loss_rate_follows_its_model() -> None:
    link = FeedbackLink(delay_s=0.0, loss=BernoulliLoss(0.25, np.random.default_rng(1)))
    for i in range(4000):
        link.send(Echo(i, 2, 0.0))
    assert abs(link.lost / 4000 - 0.25) < 5 * (0.25 * 0.75 / 4000) ** 0.5
