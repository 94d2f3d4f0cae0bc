"""The forward path from sender to receiver: loss, an optional bottleneck, propagation (DESIGN 4).

A packet handed to ``ForwardLink.send`` goes through, in order:

1. the loss model, consulted in sending order (like netem's loss on the sender's egress); a lost
   packet uses no bottleneck capacity;
2. the bottleneck, if any: a byte-limited queue (``netsim.queueing``) drained either at a fixed
   ``rate_kbps`` or at the delivery opportunities of a Mahimahi trace;
3. propagation: ``delay_s`` plus, with jitter, a uniform draw in [-jitter_s, +jitter_s] per
   packet (netem's default jitter distribution; total delay clipped at 0). Jitter can reorder
   packets.

Then the link calls ``deliver(packet)`` at the arrival time. Drops are reported to the
``PacketTrace``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Generator

import numpy as np
import simpy

from netsim.loss import LossModel
from netsim.mahimahi import OPPORTUNITY_BYTES, DeliveryTrace
from netsim.packet import Packet
from netsim.queueing import BottleneckStore, ByteQueue
from netsim.trace import Fate, PacketTrace


class Bottleneck(ABC):
    """A queue and the server process that drains it; departures go to the attached callback
    (``ForwardLink`` attaches its propagation stage).

    ``queue`` is the drop discipline's container; the bottleneck wraps it in a
    ``BottleneckStore`` (``self.queue``) from which its server process takes packets.
    """

    def __init__(self, env: simpy.Environment, queue: ByteQueue, trace: PacketTrace) -> None:
        self.env = env
        self.queue = BottleneckStore(env, queue)
        self.trace = trace
        self._on_depart: Callable[[Packet], None] | None = None
        env.process(self._serve())

    def attach(self, on_depart: Callable[[Packet], None]) -> None:
        """Send departing packets to ``on_depart`` (called at the departure instant)."""
        self._on_depart = on_depart

    def _depart(self, packet: Packet) -> None:
        if self._on_depart is None:
            raise RuntimeError("bottleneck has no downstream stage attached")
        self._on_depart(packet)

    def offer(self, packet: Packet) -> None:
        """Queue ``packet`` now (or drop it, or evict others, per the queue's discipline); the
        drops are recorded in the packet trace at this instant."""
        for dropped in self.queue.put(packet).value:
            self.trace.dropped(dropped, Fate.QUEUE_DROP)

    @abstractmethod
    def _serve(self) -> Generator[simpy.Event, object, None]:
        """The SimPy process that drains the queue."""


class RateBottleneck(Bottleneck):
    """A link of constant ``rate_kbps``: a packet of B bytes occupies it for 8 B / rate.

    The packet in transmission is not in the queue: a packet that finds the link idle (and so
    the queue empty) starts its transmission at once, and ``queue_bytes`` limits what waits
    behind it (as a qdisc behind a network interface).
    """

    def __init__(
        self,
        env: simpy.Environment,
        queue: ByteQueue,
        trace: PacketTrace,
        rate_kbps: float,
    ) -> None:
        if rate_kbps <= 0:
            raise ValueError(f"rate_kbps must be positive, got {rate_kbps}")
        self.rate_bps = rate_kbps * 1000.0
        super().__init__(env, queue, trace)

    def _serve(self) -> Generator[simpy.Event, object, None]:
        """SimPy process. Waits on ``queue.get()``: when the queue holds a packet the get
        completes in the same instant, ahead of that instant's other events; when it is empty
        the process sleeps until a packet arrives and takes it at its arrival instant. Then it
        waits 8 B / rate (the serialisation) and hands the packet on at the end of it. Runs for
        the whole simulation (blocked on an empty queue, it ends with it)."""
        while True:
            packet = yield self.queue.get()
            yield self.env.timeout(packet.size_bytes * 8.0 / self.rate_bps)
            self._depart(packet)


class TraceBottleneck(Bottleneck):
    """A link that delivers at the opportunities of a Mahimahi trace (``netsim.mahimahi``).

    Each opportunity carries up to 1500 bytes; as in Mahimahi, a packet larger than the bytes
    left in an opportunity is sent partly and finishes in the following ones, and an
    opportunity that finds the queue empty is wasted. A packet departs at the opportunity that
    carries its last byte. Packets stay in the queue (and count against its byte limit) until
    the opportunity that starts sending them.
    """

    def __init__(
        self,
        env: simpy.Environment,
        queue: ByteQueue,
        trace: PacketTrace,
        delivery_trace: DeliveryTrace,
    ) -> None:
        self.delivery_trace = delivery_trace
        super().__init__(env, queue, trace)

    def _serve(self) -> Generator[simpy.Event, object, None]:
        """SimPy process. With no packet partly sent, waits on ``queue.not_empty()`` (which
        takes nothing: a packet waits in the queue until an opportunity can carry it); then
        sleeps until the first opportunity at or after that instant, never using an opportunity
        twice. At the opportunity it takes packets with ``queue.get()`` while the queue holds
        some and the opportunity has bytes left; each such get completes in the same instant,
        ahead of that instant's other events, so the opportunity is spent as if at once. While
        a packet is partly sent it wakes at each following opportunity. Runs for the whole
        simulation (blocked on an empty queue, it ends with it)."""
        trace = self.delivery_trace
        next_index = 0
        in_service: Packet | None = None
        bytes_left = 0
        while True:
            if in_service is None:
                yield self.queue.not_empty()
            next_index = max(next_index, trace.first_index_at_or_after(self.env.now))
            opportunity_s = trace.opportunity_time_s(next_index)
            next_index += 1
            if opportunity_s > self.env.now:
                yield self.env.timeout(opportunity_s - self.env.now)
            credit = OPPORTUNITY_BYTES
            while credit > 0:
                if in_service is None:
                    if not len(self.queue):
                        break
                    in_service = yield self.queue.get()
                    bytes_left = in_service.size_bytes
                sent = min(credit, bytes_left)
                credit -= sent
                bytes_left -= sent
                if bytes_left == 0:
                    self._depart(in_service)
                    in_service = None


class ForwardLink:
    """Loss model, optional bottleneck and propagation delay between sender and receiver.

    ``send`` is called by the sender at the sending instant; ``deliver`` is called at each
    surviving packet's arrival time. ``jitter_rng`` is this link's own Generator.
    """

    def __init__(
        self,
        env: simpy.Environment,
        *,
        loss: LossModel,
        delay_s: float,
        jitter_s: float,
        jitter_rng: np.random.Generator,
        trace: PacketTrace,
        deliver: Callable[[Packet], None],
        bottleneck: Bottleneck | None = None,
    ) -> None:
        if delay_s < 0 or jitter_s < 0:
            raise ValueError("delay_s and jitter_s must be >= 0")
        self.env = env
        self.loss = loss
        self.delay_s = delay_s
        self.jitter_s = jitter_s
        self._jitter_rng = jitter_rng
        self.trace = trace
        self.deliver = deliver
        self.bottleneck = bottleneck
        if bottleneck is not None:
            bottleneck.attach(self._propagate)

    def send(self, packet: Packet) -> None:
        """The sender emits ``packet`` now."""
        exposed = self.loss.applies_to(packet.frame_index, packet.scale)
        self.trace.sent(packet, self.env.now, exposed_to_loss=exposed)
        if self.loss.drops(packet.frame_index, packet.scale, packet.fragment_index):
            self.trace.dropped(packet, Fate.LOST)
        elif self.bottleneck is not None:
            self.bottleneck.offer(packet)
        else:
            self._propagate(packet)

    def _propagate(self, packet: Packet) -> None:
        """Start ``packet``'s propagation now; it is delivered after the (jittered) delay."""
        delay_s = self.delay_s
        if self.jitter_s > 0:
            delay_s = max(0.0, delay_s + self._jitter_rng.uniform(-self.jitter_s, self.jitter_s))
        arrival = self.env.timeout(delay_s)
        arrival.callbacks.append(lambda _event: self.deliver(packet))
