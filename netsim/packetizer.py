"""Splitting an encoded frame into packets, scale by scale (DESIGN 4).

Scales are packetized in order 1..``max_scales`` and sequence numbers run consecutively, so a
sender that emits the list in order sends in scale order. Each scale becomes
``ceil(length / max_payload)`` data fragments (at least one, so an empty scale still announces
itself), or, when the scale is FEC-protected, k data plus m parity fragments of equal length
(``netsim.fec``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from codec.types import NUM_SCALES, EncodedFrame
from netsim.fec import FecError, FecParams, fec_encode
from netsim.packet import HEADER_SIZE_BYTES, MAX_FRAGMENTS, Packet


class PacketizationError(ValueError):
    """Packetizer settings that cannot carry a frame (MTU too small, bad scale range).

    ``setting`` names the sender setting at fault, as a scenario writes it below ``sender``
    (``mtu_bytes``, ``max_scales`` or ``fec.K``).
    """

    def __init__(self, message: str, setting: str = "mtu_bytes") -> None:
        super().__init__(message)
        self.setting = setting


def max_payload_bytes(mtu_bytes: int) -> int:
    """Payload bytes that fit one datagram of ``mtu_bytes`` after the packet header."""
    payload = mtu_bytes - HEADER_SIZE_BYTES
    if payload < 1:
        raise PacketizationError(
            f"mtu_bytes {mtu_bytes} leaves no room for payload after the "
            f"{HEADER_SIZE_BYTES}-byte header"
        )
    return payload


def packetize(
    frame: EncodedFrame,
    *,
    first_seq: int,
    mtu_bytes: int,
    max_scales: int = NUM_SCALES,
    fec: Mapping[int, FecParams] | None = None,
) -> list[Packet]:
    """The packets of scales 1..``max_scales`` of ``frame``, in scale order.

    ``first_seq`` is the sequence number of the first packet; the others follow consecutively.
    ``fec`` maps a scale number to its FEC parameters; scales not in it travel unprotected.
    Every packet is at most ``mtu_bytes`` long. A scale that would need more than
    ``MAX_FRAGMENTS`` packets, parity included, raises ``PacketizationError``.
    """
    if not 1 <= max_scales <= len(frame.scales):
        raise PacketizationError(
            f"max_scales {max_scales} outside 1..{len(frame.scales)}", "max_scales"
        )
    payload_limit = max_payload_bytes(mtu_bytes)
    fec = fec or {}
    packets: list[Packet] = []
    seq = first_seq
    for scale in range(1, max_scales + 1):
        scale_payload = frame.scales[scale - 1]
        data = scale_payload.data
        needed = max(1, math.ceil(len(data) / payload_limit))
        params = fec.get(scale)
        where = f"scale {scale} of frame {frame.frame_index} ({len(data)} bytes)"
        if params is None or not data:
            if needed > MAX_FRAGMENTS:
                raise PacketizationError(
                    f"{where} needs {needed} packets of {payload_limit} payload bytes, more "
                    f"than the {MAX_FRAGMENTS} a scale may travel in; raise mtu_bytes"
                )
            fragments = [data[i * payload_limit : (i + 1) * payload_limit] for i in range(needed)]
            data_count, parity_count = needed, 0
        else:
            try:
                params = params.scaled_to(needed)
            except FecError as err:
                raise PacketizationError(f"{where}: {err}", f"fec.{scale}") from None
            fragments = fec_encode(data, params)
            data_count, parity_count = params.data_packets, params.parity_packets
        for index, fragment in enumerate(fragments):
            packets.append(
                Packet(
                    seq=seq,
                    frame_index=frame.frame_index,
                    scale=scale,
                    fragment_index=index,
                    fragment_count=data_count,
                    parity_count=parity_count,
                    lam=frame.lam,
                    resync_from=frame.resync_from,
                    frame_type=frame.frame_type,
                    scale_length_bytes=len(data),
                    scale_crc32=scale_payload.crc32,
                    sync_tag=scale_payload.sync_tag,
                    payload=fragment,
                )
            )
            seq += 1
    return packets
