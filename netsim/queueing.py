"""The byte-limited queue in front of a bottleneck, and which packet it drops when full.

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
