"""The packet wire format: round trip, real sizes, typed errors on bad bytes."""

from __future__ import annotations

import numpy as np
import pytest

from codec.types import FrameType
from netsim.packet import HEADER_SIZE_BYTES, Packet, PacketFormatError


def make_packet(**changes: object) -> Packet:
    fields: dict[str, object] = {
        "seq": 70000,
        "frame_index": 12,
        "scale": 3,
        "fragment_index": 1,
        "fragment_count": 2,
        "parity_count": 3,
        "rate_parameter": 1234.5678,
        "resync_from": 2,
        "frame_type": FrameType.R,
        "scale_length_bytes": 999,
        "scale_crc32": 0xDEADBEEF,
        "sync_tag": 0x12345678,
        "payload": bytes(range(200)),
    }
    fields.update(changes)
    return Packet(**fields)  # type: ignore[arg-type]


def test_packet_round_trips_through_its_wire_format() -> None:
    for frame_type in FrameType:
        mirror_from = 5 if frame_type is FrameType.M else None
        packet = make_packet(frame_type=frame_type, mirror_from=mirror_from)
        assert Packet.from_bytes(packet.to_bytes()) == packet


def test_size_bytes_is_the_length_of_the_datagram() -> None:
    for payload in (b"", b"x", bytes(1154)):
        packet = make_packet(payload=payload)
        assert packet.size_bytes == len(packet.to_bytes()) == HEADER_SIZE_BYTES + len(payload)


def test_every_truncation_raises_a_typed_error() -> None:
    data = make_packet().to_bytes()
    for length in range(len(data)):
        with pytest.raises(PacketFormatError):
            Packet.from_bytes(data[:length])


def test_trailing_bytes_raise_a_typed_error() -> None:
    with pytest.raises(PacketFormatError, match="payload length"):
        Packet.from_bytes(make_packet().to_bytes() + b"\x00")


def test_any_single_corrupted_byte_is_detected() -> None:
    data = bytearray(make_packet().to_bytes())
    for position in range(len(data)):
        corrupt = bytearray(data)
        corrupt[position] ^= 0x5A
        with pytest.raises(PacketFormatError):
            Packet.from_bytes(bytes(corrupt))


def test_random_bytes_never_crash_the_parser() -> None:
    rng = np.random.default_rng(7)
    for _ in range(2000):
        data = rng.integers(0, 256, int(rng.integers(0, 120)), dtype=np.uint8).tobytes()
        with pytest.raises(PacketFormatError):
            Packet.from_bytes(data)


@pytest.mark.parametrize(
    "changes",
    [
        {"scale": 0},
        {"scale": 5},
        {"resync_from": 5},
        {"fragment_index": 5},
        {"fragment_count": 0},
        {"fragment_count": 200, "parity_count": 57},
        {"seq": 2**32},
        {"frame_index": -1},
        {"rate_parameter": float("nan")},
        {"rate_parameter": 0.0},
        {"payload": bytes(70000)},
    ],
)
def test_fields_the_header_cannot_carry_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(PacketFormatError):
        make_packet(**changes)
