"""The packet header's wire layout and checksum helpers (``netsim.packet``) agree with what
``Packet`` writes and parses, so tools and tests damage packets without their own copy."""

from __future__ import annotations

import pytest

from codec.types import FrameType
from netsim.packet import (
    HEADER_SIZE_BYTES,
    PACKET_HEADER_FIELDS,
    Packet,
    PacketFormatError,
    packet_checksum,
    with_valid_checksum,
)


def _packet() -> Packet:
    return Packet(
        seq=7,
        frame_index=3,
        scale=2,
        fragment_index=1,
        fragment_count=2,
        parity_count=0,
        rate_parameter=700.0,
        resync_from=0,
        frame_type=FrameType.P,
        scale_length_bytes=8,
        scale_crc32=0xDEADBEEF,
        sync_tag=5,
        payload=b"abcd",
    )


def test_the_header_table_covers_the_header_and_reads_what_was_written():
    data = _packet().to_bytes()
    assert sum(f.size for f in PACKET_HEADER_FIELDS) == HEADER_SIZE_BYTES
    values = {f.name: f.read(data) for f in PACKET_HEADER_FIELDS}
    assert values["magic"] == b"DP" and values["seq"] == 7 and values["frame_index"] == 3
    assert values["rate_parameter"] == 700.0 and values["scale_crc32"] == 0xDEADBEEF
    assert values["payload_length"] == 4 and values["checksum"] == packet_checksum(data)


def test_a_field_set_through_the_table_parses_once_the_checksum_is_resealed():
    data = bytearray(_packet().to_bytes())
    seq = next(f for f in PACKET_HEADER_FIELDS if f.name == "seq")
    seq.write(data, 1234)
    with pytest.raises(PacketFormatError, match="checksum"):
        Packet.from_bytes(bytes(data))
    assert Packet.from_bytes(with_valid_checksum(data)).seq == 1234


def test_resealing_a_datagram_shorter_than_a_header_leaves_it_as_it_is():
    assert with_valid_checksum(b"DP\x01") == b"DP\x01"
