"""Splitting an encoded frame into packets, scale by scale (DESIGN 4).

Scales are packetized in order 1..``max_scales`` and sequence numbers run consecutively, so a
sender that emits the list in order sends in scale order. Each scale becomes
``ceil(length / max_payload)`` data fragments (at least one, so an empty scale still announces
itself), or, when the scale is FEC-protected, k data plus m parity fragments of equal length
(``netsim.fec``).

The way back, for the receiver: ``fits_scale_header`` says whether a packet could have come
from this packetizer, and ``assemble_scale`` rebuilds a scale from the fragments of it that
arrived (``netsim.reassembly.ScaleAssembly``), with FEC when some are missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from codec.types import NUM_SCALES, EncodedFrame, FrameType, ScalePayload
from netsim.fec import FecError, FecParams, fec_decode, fec_encode
from netsim.packet import HEADER_SIZE_BYTES, MAX_FRAGMENTS, Packet, PacketLayout
from netsim.reassembly import ScaleAssembly


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
    fec = fec or {}
    packets: list[Packet] = []
    for scale in range(1, max_scales + 1):
        packets += packetize_scale(
            frame.scales[scale - 1],
            scale=scale,
            frame_index=frame.frame_index,
            rate_parameter=frame.lam,
            resync_from=frame.resync_from,
            frame_type=frame.frame_type,
            mirror_from=frame.mirror_from,
            first_seq=first_seq + len(packets),
            mtu_bytes=mtu_bytes,
            fec=fec.get(scale),
        )
    return packets


def packetize_scale(
    scale_payload: ScalePayload,
    *,
    scale: int,
    frame_index: int,
    rate_parameter: float,
    resync_from: int,
    frame_type: FrameType,
    first_seq: int,
    mtu_bytes: int,
    fec: FecParams | None = None,
    mirror_from: int | None = None,
) -> list[Packet]:
    """The packets of one scale (any codec's payload that travels as one): ``ceil(length /
    max_payload)`` data fragments (at least one), or k data plus m parity fragments of equal
    length with ``fec``; numbered from ``first_seq``, each repeating the frame header
    (``rate_parameter``, ``resync_from``, ``frame_type``, an M frame's ``mirror_from``). Raises
    ``PacketizationError`` when the scale needs more than ``MAX_FRAGMENTS`` packets."""
    payload_limit = max_payload_bytes(mtu_bytes)
    data = scale_payload.data
    needed = max(1, math.ceil(len(data) / payload_limit))
    where = f"scale {scale} of frame {frame_index} ({len(data)} bytes)"
    if fec is None or not data:
        if needed > MAX_FRAGMENTS:
            raise PacketizationError(
                f"{where} needs {needed} packets of {payload_limit} payload bytes, more "
                f"than the {MAX_FRAGMENTS} a scale may travel in; raise mtu_bytes"
            )
        fragments = [data[i * payload_limit : (i + 1) * payload_limit] for i in range(needed)]
        data_count, parity_count = needed, 0
    else:
        try:
            params = fec.scaled_to(needed)
        except FecError as err:
            raise PacketizationError(f"{where}: {err}", f"fec.{scale}") from None
        fragments = fec_encode(data, params)
        data_count, parity_count = params.data_packets, params.parity_packets
    return [
        Packet(
            seq=first_seq + index,
            frame_index=frame_index,
            scale=scale,
            fragment_index=index,
            fragment_count=data_count,
            parity_count=parity_count,
            rate_parameter=rate_parameter,
            resync_from=resync_from,
            frame_type=frame_type,
            scale_length_bytes=len(data),
            scale_crc32=scale_payload.crc32,
            sync_tag=scale_payload.sync_tag,
            payload=fragment,
            mirror_from=mirror_from,
        )
        for index, fragment in enumerate(fragments)
    ]


def fits_scale_header(packet: Packet) -> bool:
    """Whether ``packetize`` could have sent ``packet``'s payload under its scale header.

    With FEC every fragment is ``ceil(length / fragment_count)`` bytes. Without FEC the scale
    is cut into ``fragment_count`` slices of one length, the last one shorter or equal and not
    empty (a single fragment, possibly empty, when the scale fits one packet): a fragment before
    the last is at least ``ceil(length / count)`` bytes and leaves at least one byte for the
    last; the last is at most ``length // count`` bytes. A packet of another layout never fits.
    """
    if packet.layout is not PacketLayout.SCALES:
        return False
    length, count, size = packet.scale_length_bytes, packet.fragment_count, len(packet.payload)
    if packet.parity_count > 0:
        return length > 0 and size == -(-length // count)
    if count == 1:
        return size == length
    if packet.fragment_index < count - 1:
        return size >= -(-length // count) and size * (count - 1) < length
    return 1 <= size <= length // count


@dataclass(frozen=True)
class AssembledScale:
    """A complete scale: its payload and the data fragments that FEC rebuilt (not received)."""

    scale: int
    payload: ScalePayload
    recovered_fragments: tuple[int, ...]


def assemble_scale(assembly: ScaleAssembly) -> AssembledScale | None:
    """The scale's payload from the fragments that agree on its header, or None while it is
    incomplete or cannot be rebuilt."""
    if not assembly.complete:
        return None
    t = assembly.template
    payloads = assembly.payloads()
    data_indexes = range(t.fragment_count)
    missing = tuple(i for i in data_indexes if i not in payloads)
    if not missing:
        data = b"".join(payloads[i] for i in data_indexes)[: t.scale_length_bytes]
    else:
        params = FecParams(t.fragment_count, t.parity_count)
        try:
            data = fec_decode(payloads, params, t.scale_length_bytes)
        except FecError:
            return None
    if len(data) != t.scale_length_bytes:
        return None
    payload = ScalePayload(data=data, crc32=t.scale_crc32, sync_tag=t.sync_tag)
    return AssembledScale(scale=t.scale, payload=payload, recovered_fragments=missing)
