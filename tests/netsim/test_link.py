"""Forward link timing: propagation, jitter, rate and trace bottlenecks, queue drops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import simpy

from netsim.link import Bottleneck, ForwardLink, RateBottleneck, TraceBottleneck
from netsim.loss import BernoulliLoss, NoLoss
from netsim.mahimahi import load_delivery_trace
from netsim.packet import Packet
from netsim.queueing import ByteQueue, QueueDiscipline
from netsim.trace import Fate, PacketTrace
from tests.netsim.fakes import synthetic_packet as packet


class Harness:
    """A forward link whose arrivals are recorded as {seq: time}."""

    def __init__(
        self,
        *,
        delay_s: float = 0.0,
        jitter_s: float = 0.0,
        loss=None,
        bottleneck=None,
    ) -> None:
        self.env = simpy.Environment()
        self.trace = PacketTrace()
        self.arrivals: dict[int, float] = {}
        self.sent: dict[int, Packet] = {}
        built = bottleneck(self.env, self.trace) if bottleneck else None
        self.link = ForwardLink(
            self.env,
            loss=loss or NoLoss(),
            delay_s=delay_s,
            jitter_s=jitter_s,
            jitter_rng=np.random.default_rng(0),
            trace=self.trace,
            deliver=lambda p: self.arrivals.__setitem__(p.seq, self.env.now),
            bottleneck=built,
        )

    def send_at(self, time_s: float, packets: list[Packet]) -> None:
        self.sent.update((p.seq, p) for p in packets)

        def process():
            yield self.env.timeout(time_s)
            for p in packets:
                self.link.send(p)

        self.env.process(process())

    def run(self) -> dict[int, Fate]:
        self.env.run()
        for seq in self.arrivals:
            self.trace.arrived(self.sent[seq], self.arrivals[seq], in_time=True)
        return {r.seq: r.fate for r in self.trace.records()}


def rate(rate_kbps: float, queue_bytes: int, discipline=QueueDiscipline.DROP_TAIL):
    def build(env: simpy.Environment, trace: PacketTrace) -> Bottleneck:
        return RateBottleneck(env, ByteQueue(queue_bytes, discipline), trace, rate_kbps)

    return build


def test_unlimited_link_delivers_after_the_propagation_delay() -> None:
    h = Harness(delay_s=0.025)
    h.send_at(0.1, [packet(0, 500), packet(1, 1200)])
    h.run()
    assert h.arrivals == {0: pytest.approx(0.125), 1: pytest.approx(0.125)}


def test_jitter_stays_within_its_bounds_and_varies() -> None:
    h = Harness(delay_s=0.05, jitter_s=0.01)
    h.send_at(0.0, [packet(i, 100) for i in range(500)])
    h.run()
    delays = np.array(list(h.arrivals.values()))
    assert delays.min() >= 0.04 and delays.max() <= 0.06
    assert delays.std() > 0.004  # uniform on +-10 ms: std 5.8 ms


def test_lost_packets_never_arrive_and_are_recorded_as_lost() -> None:
    h = Harness(loss=BernoulliLoss(1.0, np.random.default_rng(0)))
    h.send_at(0.0, [packet(0, 100)])
    fates = h.run()
    assert h.arrivals == {} and fates == {0: Fate.LOST}


def test_rate_bottleneck_serialises_packets_back_to_back() -> None:
    # 1000 bytes at 800 kbit/s take 10 ms; the first packet finds the link idle.
    h = Harness(delay_s=0.005, bottleneck=rate(800, queue_bytes=10_000))
    h.send_at(0.0, [packet(i, 1000) for i in range(3)])
    h.send_at(0.1, [packet(3, 500)])
    h.run()
    assert h.arrivals == {
        0: pytest.approx(0.015),
        1: pytest.approx(0.025),
        2: pytest.approx(0.035),
        3: pytest.approx(0.110),
    }


def test_drop_tail_queue_drops_what_does_not_fit_behind_the_packet_in_service() -> None:
    # The first packet goes straight into transmission; 2000 queue bytes hold two more.
    h = Harness(bottleneck=rate(800, queue_bytes=2000))
    h.send_at(0.0, [packet(i, 1000, scale=1 + i % 4) for i in range(5)])
    fates = h.run()
    assert [fates[i] for i in range(5)] == [Fate.DELIVERED] * 3 + [Fate.QUEUE_DROP] * 2


def test_highest_scale_first_queue_spares_the_next_frames_low_scales() -> None:
    # Frame 0 fills the queue with scales 3-4; frame 1's burst arrives while it drains.
    def bursts(discipline: QueueDiscipline) -> dict[tuple[int, int], list[Fate]]:
        h = Harness(bottleneck=rate(400, queue_bytes=3000, discipline=discipline))
        frame_0 = [packet(i, 1000, scale=s, frame=0) for i, s in enumerate((1, 2, 3, 4))]
        frame_1 = [packet(4 + i, 1000, scale=s, frame=1) for i, s in enumerate((1, 2, 3, 4))]
        h.send_at(0.0, frame_0)
        h.send_at(0.005, frame_1)
        fates = h.run()
        result: dict[tuple[int, int], list[Fate]] = {}
        for p in frame_0 + frame_1:
            result.setdefault((p.frame_index, p.scale), []).append(fates[p.seq])
        return result

    tail = bursts(QueueDiscipline.DROP_TAIL)
    assert tail[1, 1] == [Fate.QUEUE_DROP]  # drop-tail loses the next frame's scale 1
    priority = bursts(QueueDiscipline.HIGHEST_SCALE_FIRST)
    assert priority[0, 1] == priority[1, 1] == [Fate.DELIVERED]
    assert priority[0, 4] == [Fate.QUEUE_DROP] and priority[1, 4] == [Fate.QUEUE_DROP]
    dropped_scales = [s for (_, s), f in priority.items() if f == [Fate.QUEUE_DROP]]
    assert min(dropped_scales) > 2


def write_trace(tmp_path: Path, lines: list[int]) -> Path:
    path = tmp_path / "link.down"
    path.write_text("".join(f"{v}\n" for v in lines))
    return path


def test_trace_bottleneck_delivers_at_opportunities_with_partial_packets(tmp_path: Path) -> None:
    # Opportunities at 0, 0, 5 and 10 ms, repeating every 10 ms; 1500 bytes each.
    delivery = load_delivery_trace(write_trace(tmp_path, [0, 0, 5, 10]))

    def build(env: simpy.Environment, trace: PacketTrace) -> Bottleneck:
        queue = ByteQueue(100_000, QueueDiscipline.DROP_TAIL)
        return TraceBottleneck(env, queue, trace, delivery)

    h = Harness(delay_s=0.001, bottleneck=build)
    # Sent at 1 ms, 1000 bytes each: the opportunities at 0 ms are gone; the one at 5 ms carries
    # packet 0 and 500 bytes of packet 1; at 10 ms there are three (the trace's last and the
    # next period's two at 0 ms): 4500 bytes finish packets 1-5. Packet 6 and half of packet 7
    # go at 15 ms, the rest of packet 7 at 20 ms.
    h.send_at(0.001, [packet(i, 1000) for i in range(8)])
    h.run()
    expected_departures_ms = [5, 10, 10, 10, 10, 10, 15, 20]
    assert [h.arrivals[i] for i in range(8)] == pytest.approx(
        [(t + 1) / 1000 for t in expected_departures_ms]
    )


def test_an_idle_rate_link_sends_a_packet_larger_than_its_queue() -> None:
    # The packet in transmission is not in the queue: only what waits behind it must fit.
    h = Harness(bottleneck=rate(800, queue_bytes=500))
    h.send_at(0.0, [packet(0, 1000), packet(1, 400), packet(2, 200)])
    fates = h.run()
    assert fates == {0: Fate.DELIVERED, 1: Fate.DELIVERED, 2: Fate.QUEUE_DROP}
    assert h.arrivals == {0: pytest.approx(0.010), 1: pytest.approx(0.014)}


def test_a_trace_link_counts_a_packet_waiting_for_its_opportunity_against_the_queue(
    tmp_path: Path,
) -> None:
    # Opportunities at 5 and 10 ms: packet 0, sent at 1 ms, waits in the queue for the one at
    # 5 ms and fills the queue, so packet 1 is dropped (a rate link would have started sending
    # packet 0 and queued packet 1).
    delivery = load_delivery_trace(write_trace(tmp_path, [5, 10]))

    def build(env: simpy.Environment, trace: PacketTrace) -> Bottleneck:
        return TraceBottleneck(env, ByteQueue(1000, QueueDiscipline.DROP_TAIL), trace, delivery)

    h = Harness(bottleneck=build)
    h.send_at(0.001, [packet(0, 1000), packet(1, 1000)])
    h.send_at(0.006, [packet(2, 1000)])
    fates = h.run()
    assert fates == {0: Fate.DELIVERED, 1: Fate.QUEUE_DROP, 2: Fate.DELIVERED}
    assert h.arrivals == {0: pytest.approx(0.005), 2: pytest.approx(0.010)}
