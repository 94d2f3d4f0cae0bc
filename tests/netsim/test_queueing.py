"""The bottleneck queue's byte limit and drop disciplines, and the SimPy store around it."""

from __future__ import annotations

import pytest
import simpy

from netsim.queueing import BottleneckStore, ByteQueue, QueueDiscipline, _succeed_urgently
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


def store(capacity_bytes: int, discipline=QueueDiscipline.HIGHEST_SCALE_FIRST):
    env = simpy.Environment()
    return env, BottleneckStore(env, ByteQueue(capacity_bytes, discipline))


def test_a_put_succeeds_at_once_with_the_dropped_packets_as_its_value() -> None:
    env, queue = store(2000)
    assert queue.put(packet(0, 1000, scale=4)).value == []
    assert queue.put(packet(1, 1000, scale=3)).value == []
    evicted = queue.put(packet(2, 1000, scale=1)).value
    assert [p.seq for p in evicted] == [0]
    assert len(queue) == 2 and queue.items.queued_bytes == 2000


def test_gets_take_packets_in_fifo_order() -> None:
    env, queue = store(5000)
    for i in range(3):
        queue.put(packet(i, 1000))
    taken: list[int] = []

    def server():
        for _ in range(3):
            taken.append((yield queue.get()).seq)

    env.process(server())
    env.run()
    assert taken == [0, 1, 2] and len(queue) == 0


def test_a_packet_put_while_a_server_waits_goes_straight_into_service_past_the_byte_limit() -> None:
    env, queue = store(500)
    taken: list[tuple[float, int]] = []

    def server():
        packet_ = yield queue.get()
        taken.append((env.now, packet_.seq))

    def sender():
        yield env.timeout(1.0)
        big = packet(0, 1200)
        assert queue.put(big).value == []  # not queued, so not too big for the queue
        assert len(queue) == 0
        assert queue.put(packet(1, 600)).value != []  # the server is busy now: this one queues

    env.process(server())
    env.process(sender())
    env.run()
    assert taken == [(1.0, 0)]


def test_not_empty_waits_for_a_packet_and_takes_nothing() -> None:
    env, queue = store(5000)
    woke: list[float] = []

    def server():
        yield queue.not_empty()
        woke.append(env.now)
        yield queue.not_empty()  # already holds a packet: succeeds at once
        woke.append(env.now)

    def sender():
        yield env.timeout(2.0)
        queue.put(packet(0, 1000))

    env.process(server())
    env.process(sender())
    env.run()
    assert woke == [2.0, 2.0] and len(queue) == 1


def test_a_get_that_finds_a_packet_completes_ahead_of_the_instants_other_events() -> None:
    # Both processes wake at t = 1, the server first; the server's get finds a packet and it
    # carries on before the other process runs, as if it had taken the packet without yielding.
    env, queue = store(5000)
    queue.put(packet(0, 1000))
    order: list[str] = []

    def server():
        yield env.timeout(1.0)
        yield queue.get()
        order.append("server")

    def other():
        yield env.timeout(1.0)
        order.append("other")

    env.process(server())
    env.process(other())
    env.run()
    assert order == ["server", "other"]


def test_a_get_that_waits_completes_at_the_put_in_the_instants_normal_order() -> None:
    # The put at t = 1 serves the waiting server; an event already due at t = 1 runs first.
    env, queue = store(5000)
    order: list[tuple[str, float]] = []

    def server():
        yield queue.get()
        order.append(("server", env.now))

    def sender():
        yield env.timeout(1.0)
        queue.put(packet(0, 1000))

    def other():
        yield env.timeout(1.0)
        order.append(("other", env.now))

    env.process(server())
    env.process(sender())
    env.process(other())
    env.run()
    assert order == [("other", 1.0), ("server", 1.0)]


def test_an_urgent_success_is_processed_before_the_normal_events_of_its_instant():
    """``_succeed_urgently`` sets SimPy's private ``_ok``/``_value`` (no public call schedules
    a success with URGENT priority); this fails if SimPy changes them."""
    env = simpy.Environment()
    order: list[object] = []
    normal = env.event()
    normal.callbacks.append(lambda event: order.append(("normal", event.value)))
    normal.succeed("first scheduled")
    urgent = env.event()
    urgent.callbacks.append(lambda event: order.append(("urgent", event.value)))
    _succeed_urgently(urgent, 7)
    assert urgent.triggered and urgent.ok and urgent.value == 7
    env.run()
    assert order == [("urgent", 7), ("normal", "first scheduled")]
