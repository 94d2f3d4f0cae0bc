"""The byte-limited queue in front of a bottleneck, and which packet it drops when full.

Two parts, as SimPy builds its own stores:

* ``ByteQueue``, the container (a FIFO of packets with a byte limit and a drop discipline), plain
  data that knows nothing of time;
* ``BottleneckStore``, a ``simpy.Store`` whose items are a ``ByteQueue``: the bottleneck's server
  process takes packets with ``packet = yield store.get()``, and ``_do_put``/``_do_get`` apply the
  byte limit and the discipline.

Two disciplines:

* ``drop_tail``: an arriving packet that does not fit is dropped. Because a sender emits each
  frame in scale order, the packets that meet a full queue are mostly the late, high scales of
  the frame, but a burst can still push out the next frame's scale 1 while the previous frame's
  scale 4 waits in the queue.
* ``highest_scale_first`` (the default): the queue reads the scale field, as a router reads a
  DiffServ drop-precedence mark. An arriving packet that does not fit evicts queued packets of
  strictly higher scales, highest scale first and, within a scale, the most recently queued
  first, until it fits; if even evicting all of them would not make room, the arriving packet
  is dropped instead and nothing is evicted. Scale 1 is therefore only dropped when the queue
  holds nothing but scale-1 packets, and losses always fall on the highest scales present.

The packet being transmitted has left the queue and is never evicted.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum

import simpy
from simpy.events import URGENT, Event
from simpy.resources.base import Get
from simpy.resources.store import StoreGet, StorePut

from netsim.packet import Packet


class QueueDiscipline(StrEnum):
    """Which packet a full queue drops."""

    DROP_TAIL = "drop_tail"
    HIGHEST_SCALE_FIRST = "highest_scale_first"


class ByteQueue:
    """A FIFO of packets holding at most ``capacity_bytes`` bytes (packet sizes on the wire)."""

    def __init__(self, capacity_bytes: int, discipline: QueueDiscipline) -> None:
        if capacity_bytes < 1:
            raise ValueError(f"capacity_bytes must be >= 1, got {capacity_bytes}")
        self.capacity_bytes = capacity_bytes
        self.discipline = discipline
        self._packets: deque[Packet] = deque()
        self.queued_bytes = 0

    def __len__(self) -> int:
        return len(self._packets)

    def offer(self, packet: Packet) -> list[Packet]:
        """Enqueue ``packet`` if the discipline makes room; returns the packets dropped.

        The result is empty, or ``[packet]`` (the arrival was dropped), or the queued packets
        evicted to make room for it.
        """
        free = self.capacity_bytes - self.queued_bytes
        if packet.size_bytes <= free:
            self._append(packet)
            return []
        if self.discipline is QueueDiscipline.DROP_TAIL or packet.size_bytes > self.capacity_bytes:
            return [packet]
        victims = self._eviction_order(packet.scale)
        room = free
        chosen: list[Packet] = []
        for victim in victims:
            if room >= packet.size_bytes:
                break
            chosen.append(victim)
            room += victim.size_bytes
        if room < packet.size_bytes:
            return [packet]
        evicted = {id(victim) for victim in chosen}
        self._packets = deque(p for p in self._packets if id(p) not in evicted)
        self.queued_bytes -= sum(victim.size_bytes for victim in chosen)
        self._append(packet)
        return chosen

    def pop(self) -> Packet:
        """The packet at the head of the queue (raises IndexError when empty)."""
        packet = self._packets.popleft()
        self.queued_bytes -= packet.size_bytes
        return packet

    def _append(self, packet: Packet) -> None:
        self._packets.append(packet)
        self.queued_bytes += packet.size_bytes

    def _eviction_order(self, scale: int) -> list[Packet]:
        """Queued packets of scales above ``scale``: highest scale first, newest first."""
        newest_first = reversed(self._packets)
        higher = [p for p in newest_first if p.scale > scale]
        return sorted(higher, key=lambda p: -p.scale)  # stable: newest first within a scale


class QueueNotEmpty(Get):
    """Succeeds (with no value) once the store holds a packet; takes nothing out of it."""


class BottleneckStore(simpy.Store):
    """The SimPy resource between a link's sender and its server process; items: a ``ByteQueue``.

    * ``put(packet)`` never blocks and succeeds at once: its value is the list of packets dropped
      (the arrival, or the queued packets evicted for it), empty when nothing was. If a server
      is waiting in ``get()``, it is idle and the queue is empty: the packet goes straight into
      service without entering the queue, so the byte limit does not apply to it.
    * ``get()`` takes the packet at the head of the queue.
    * ``not_empty()`` succeeds once the queue holds a packet, and leaves it there (for a server
      that must not take a packet before it can send it, such as a Mahimahi link waiting for its
      next delivery opportunity).

    Timing: a request the store can serve when it is made (a packet is waiting) completes in the
    same instant ahead of everything else scheduled for it (SimPy's ``URGENT`` priority), as if
    the server had taken the packet without yielding; so no other process runs between a server
    freeing up and taking the next packet. A request that has to wait completes at the instant
    of the put that serves it, in the normal order of that instant's events.
    """

    def __init__(self, env: simpy.Environment, queue: ByteQueue) -> None:
        super().__init__(env)
        self.items: ByteQueue = queue  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.items)

    def not_empty(self) -> QueueNotEmpty:
        """An event that succeeds once the queue holds a packet (at once if it already does)."""
        return QueueNotEmpty(self)

    def _do_put(self, event: StorePut) -> None:
        packet: Packet = event.item
        server = next((g for g in self.get_queue if isinstance(g, StoreGet)), None)
        if server is not None:
            self.get_queue.remove(server)
            server.succeed(packet)
            event.succeed([])
            return
        event.succeed(self.items.offer(packet))
        self._trigger_get(None)  # now, not when the put is processed: the wait ends at the put

    def _do_get(self, event: Get) -> None:
        if not len(self.items):
            return
        value = None if isinstance(event, QueueNotEmpty) else self.items.pop()
        if event.proc is self._env.active_process:  # served while being made
            _succeed_urgently(event, value)
        else:
            event.succeed(value)


def _succeed_urgently(event: Event, value: object) -> None:
    """``event.succeed(value)``, scheduled ahead of this instant's normal events (as SimPy's own
    ``Initialize`` event is).

    SimPy has no public call for this: ``Event.succeed`` always schedules with ``NORMAL``
    priority, and ``Environment.schedule`` takes a priority but does not mark the event
    triggered. So this sets the two attributes ``succeed`` sets (``_ok``, ``_value``), as
    SimPy's own ``Initialize`` does; ``tests/netsim/test_queueing.py`` fails if SimPy changes
    them."""
    event._ok = True
    event._value = value
    event.env.schedule(event, URGENT)
