"""k-of-n erasure coding of one scale's payload with zfec (DESIGN 4).

A scale protected with ``FecParams(data_packets=k, parity_packets=m)`` travels as n = k + m
fragments of equal length; any k of them rebuild the payload. zfec is systematic: fragments
0..k-1 are the payload itself, cut into k equal blocks (the last padded with zeros).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import zfec

from netsim.packet import MAX_FRAGMENTS


class FecError(ValueError):
    """FEC parameters that cannot code a payload, or fragments that cannot rebuild one."""


@dataclass(frozen=True)
class FecParams:
    """k data fragments plus m parity fragments per scale (any k of the k + m suffice)."""

    data_packets: int
    parity_packets: int

    def __post_init__(self) -> None:
        if self.data_packets < 1 or self.parity_packets < 0:
            raise FecError(f"need data_packets >= 1 and parity_packets >= 0, got {self}")
        if self.data_packets + self.parity_packets > MAX_FRAGMENTS:
            raise FecError(f"data_packets + parity_packets must be <= {MAX_FRAGMENTS}")

    def scaled_to(self, min_data_packets: int) -> FecParams:
        """Parameters with at least ``min_data_packets`` data fragments and the same code rate.

        A scale larger than k MTU-sized fragments is cut into more data fragments; the parity
        count grows in proportion (rounded up), so the overhead m / k never shrinks.
        """
        if min_data_packets <= self.data_packets:
            return self
        return _keeping_overhead(self, min_data_packets, "a scale needing")


def fec_encode(payload: bytes, params: FecParams) -> list[bytes]:
    """The k + m fragments of ``payload``, each ``ceil(len(payload) / k)`` bytes long.

    ``payload`` must not be empty (an empty scale needs no protection and travels as a single
    empty fragment).
    """
    if not payload:
        raise FecError("cannot FEC-code an empty payload")
    k, n = params.data_packets, params.data_packets + params.parity_packets
    block_bytes = math.ceil(len(payload) / k)
    padded = payload.ljust(k * block_bytes, b"\x00")
    blocks = tuple(padded[i * block_bytes : (i + 1) * block_bytes] for i in range(k))
    return [bytes(b) for b in zfec.Encoder(k, n).encode(blocks)]


def fec_decode(fragments: Mapping[int, bytes], params: FecParams, length_bytes: int) -> bytes:
    """Rebuild the payload of ``length_bytes`` from any k fragments ``{index: bytes}``."""
    k, n = params.data_packets, params.data_packets + params.parity_packets
    if len(fragments) < k:
        raise FecError(f"{len(fragments)} fragments cannot rebuild a {k}-of-{n} code")
    indexes = tuple(sorted(fragments)[:k])
    sizes = {len(fragments[i]) for i in indexes}
    if len(sizes) != 1 or any(not 0 <= i < n for i in indexes):
        raise FecError("fragments of one FEC block differ in length or index range")
    if sizes.pop() * k < length_bytes:
        raise FecError(f"{k} fragments are too short for a {length_bytes}-byte payload")
    blocks = zfec.Decoder(k, n).decode(tuple(fragments[i] for i in indexes), indexes)
    return b"".join(bytes(b) for b in blocks)[:length_bytes]


def slice_fec_params(params: FecParams, data_packets: int) -> FecParams:
    """The code for a frame of ``data_packets`` slice packets under a scenario's k-of-(k+m)
    setting: every data packet kept as it is, and ``ceil(m * data_packets / k)`` parity
    packets, so the parity share m / k is the same as on a DHVC scale."""
    return _keeping_overhead(params, data_packets, "a frame of")


def _slice_blocks(payloads: list[bytes], block_bytes: int) -> list[bytes]:
    return [len(p).to_bytes(2, "little") + p.ljust(block_bytes - 2, b"\x00") for p in payloads]


def slice_fec_encode(payloads: list[bytes], params: FecParams) -> list[bytes]:
    """Parity packets for slice packets of unequal lengths (``params.data_packets`` of them).

    Each data payload is framed as a block of its 2-byte length and itself, padded with zeros
    to the longest; zfec codes those blocks, and the ``params.parity_packets`` parity blocks
    are returned (the data packets travel unframed, so FEC costs them nothing).
    """
    if len(payloads) != params.data_packets or not payloads:
        raise FecError(f"{len(payloads)} payloads for a code of {params.data_packets}")
    block_bytes = 2 + max(len(p) for p in payloads)
    n = params.data_packets + params.parity_packets
    blocks = zfec.Encoder(params.data_packets, n).encode(
        tuple(_slice_blocks(payloads, block_bytes))
    )
    return [bytes(b) for b in blocks[params.data_packets :]]


def slice_fec_decode(
    data: Mapping[int, bytes], parity: Mapping[int, bytes], params: FecParams
) -> dict[int, bytes]:
    """The data payloads ``{index: bytes}`` rebuilt from the ``data`` that arrived and the
    ``parity`` packets ``{fragment index: block}`` (indexes k.. as sent); raises ``FecError``
    when fewer than k arrived, the parity blocks differ in length, or a rebuilt block is
    malformed."""
    k, n = params.data_packets, params.data_packets + params.parity_packets
    sizes = {len(b) for b in parity.values()}
    if len(sizes) != 1 or len(data) + len(parity) < k:
        raise FecError("too few fragments, or parity blocks of different lengths")
    block_bytes = sizes.pop()
    if any(len(p) + 2 > block_bytes for p in data.values()) or block_bytes < 2:
        raise FecError("a data packet is longer than the parity blocks allow")
    framed = {i: _slice_blocks([p], block_bytes)[0] for i, p in data.items()}
    framed.update(parity)
    indexes = tuple(sorted(framed)[:k])
    if any(not 0 <= i < n for i in indexes):
        raise FecError("fragment index outside the code")
    blocks = zfec.Decoder(k, n).decode(tuple(framed[i] for i in indexes), indexes)
    rebuilt = {}
    for i, block in enumerate(blocks):
        length = int.from_bytes(bytes(block[:2]), "little")
        if length + 2 > block_bytes:
            raise FecError("a rebuilt slice packet has an impossible length")
        rebuilt[i] = bytes(block[2 : 2 + length])
    return rebuilt


def _keeping_overhead(params: FecParams, data_packets: int, what: str) -> FecParams:
    """``data_packets`` data packets with ``ceil(m * data_packets / k)`` parity packets (the
    overhead m / k of ``params`` never shrinks); ``FecError`` beyond ``MAX_FRAGMENTS``."""
    parity = math.ceil(params.parity_packets * data_packets / params.data_packets)
    if data_packets + parity > MAX_FRAGMENTS:
        raise FecError(
            f"{what} {data_packets} data packets with {parity} parity packets exceeds "
            f"{MAX_FRAGMENTS}; raise mtu_bytes or lower the FEC overhead"
        )
    return FecParams(data_packets, parity)


SCALE_IMPORTANCE: tuple[float, ...] = (8.0, 4.0, 2.0, 1.0)
"""Weight of losing scale 1..K in ``allocate_unequal``: losing scale j substitutes every scale
>= j and desynchronises them until recovery, so a lower scale costs more (roughly the dB a
frame loses, halving per scale, from the compare runs' damage accounting)."""


def scale_loss_probability(data: int, parity: int, loss_rate: float) -> float:
    """Probability that a k-of-(k + m) coded scale cannot be rebuilt when each of its
    fragments is lost independently with ``loss_rate`` (more than m of k + m lost)."""
    n = data + parity
    return float(
        sum(
            math.comb(n, lost) * loss_rate**lost * (1 - loss_rate) ** (n - lost)
            for lost in range(parity + 1, n + 1)
        )
    )


def allocate_unequal(
    scale_bytes: Sequence[int],
    *,
    overhead_fraction: float,
    fragment_bytes: int,
    loss_rate: float,
    max_fragments_per_scale: int = MAX_FRAGMENTS,
    piece_overhead_bytes: int = 0,
    importance: Sequence[float] = SCALE_IMPORTANCE,
) -> dict[int, FecParams]:
    """Unequal protection (DESIGN 4): parity fragments for the scales of one frame under one
    budget of ``overhead_fraction`` times the frame's payload bytes.

    Scale k (1-based; ``scale_bytes[k - 1]`` bytes) has ``ceil(bytes / fragment_bytes)`` data
    fragments of equal length; each parity fragment costs that length plus
    ``piece_overhead_bytes``. Parity is added one fragment at a time, greedily, to the scale
    where it lowers the expected loss ``importance[k - 1] * scale_loss_probability`` the most
    per byte, at the assumed fragment ``loss_rate``, while it fits the budget and the scale's
    fragments stay within ``max_fragments_per_scale``. Returns the scales with parity.
    """
    budget = overhead_fraction * sum(scale_bytes)
    data = {
        k: max(1, math.ceil(size / fragment_bytes))
        for k, size in enumerate(scale_bytes, start=1)
        if size > 0
    }
    cost = {k: math.ceil(scale_bytes[k - 1] / data[k]) + piece_overhead_bytes for k in data}
    parity = dict.fromkeys(data, 0)
    spent = 0.0
    while True:
        best, best_gain = None, 0.0
        for k in data:
            if spent + cost[k] > budget or data[k] + parity[k] + 1 > max_fragments_per_scale:
                continue
            weight = importance[k - 1] if k <= len(importance) else importance[-1]
            drop = scale_loss_probability(data[k], parity[k], loss_rate)
            drop -= scale_loss_probability(data[k], parity[k] + 1, loss_rate)
            gain = weight * drop / cost[k]
            if gain > best_gain:
                best, best_gain = k, gain
        if best is None:
            break
        parity[best] += 1
        spent += cost[best]
    return {k: FecParams(data[k], m) for k, m in parity.items() if m > 0}
