"""The bottleneck queue's byte limit and drop disciplines."""

from __future__ import annotations

import pytest

from netsim.queueing import ByteQueue, QueueDiscipline
from tests.netsim.fakes import synthetic_packet as packet


def test_queue_is_fifo_and_counts_bytes() -> None:
    queue = ByteQueue(5000, QueueDiscipline.DROP_TAIL)
    for i in range(3):
        assert queue.offer(packet(i, 1000)) == []
    assert queue.queued_bytes == 3000 and len(queue) == 3
    assert [queue.pop().seq for _ in range(3)] == [0, 1, 2]
    assert queue.queued_bytes == 0
    with pytest.raises(IndexError):
        queue.pop()


def test_drop_tail_drops_the_arrival() -> None:
    queue = ByteQueue(2500, QueueDiscipline.DROP_TAIL)
    queue.offer(packet(0, 1000, scale=4))
    queue.offer(packet(1, 1000, scale=4))
    arrival = packet(2, 1000, scale=1)
    assert queue.offer(arrival) == [arrival]
    assert queue.queued_bytes == 2000


def test_highest_scale_first_evicts_highest_then_newest() -> None:
    queue = ByteQueue(4000, QueueDiscipline.HIGHEST_SCALE_FIRST)
    for seq, scale in enumerate((3, 4, 2, 4)):
        queue.offer(packet(seq, 1000, scale=scale))
    evicted = queue.offer(packet(10, 1500, scale=1))
    assert [p.seq for p in evicted] == [3, 1]  # both scale-4 packets, newest first
    assert [queue.pop().seq for _ in range(len(queue))] == [0, 2, 10]


def test_highest_scale_first_never_evicts_equal_or_lower_scales() -> None:
    queue = ByteQueue(2000, QueueDiscipline.HIGHEST_SCALE_FIRST)
    queue.offer(packet(0, 1000, scale=2))
    queue.offer(packet(1, 1000, scale=3))
    arrival = packet(2, 1500, scale=3)
    assert queue.offer(arrival) == [arrival]  # only the scale-3 packet... which is not higher
    assert queue.queued_bytes == 2000


def test_highest_scale_first_evicts_nothing_when_eviction_cannot_make_room() -> None:
    queue = ByteQueue(3000, QueueDiscipline.HIGHEST_SCALE_FIRST)
    queue.offer(packet(0, 1000, scale=1))
    queue.offer(packet(1, 1000, scale=1))
    queue.offer(packet(2, 500, scale=4))
    arrival = packet(3, 1600, scale=2)
    assert queue.offer(arrival) == [arrival]
    assert len(queue) == 3


def test_a_packet_larger_than_the_queue_is_dropped() -> None:
    queue = ByteQueue(500, QueueDiscipline.HIGHEST_SCALE_FIRST)
    big = packet(0, 600)
    assert queue.offer(big) == [big]
