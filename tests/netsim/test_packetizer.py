"""Packetization: MTU, scale order, fragments, FEC fragments (reassembly: test_reassembly.py)."""

from __future__ import annotations

import pytest

from codec.types import EncodedFrame
from netsim.fec import FecParams
from netsim.packet import HEADER_SIZE_BYTES, Packet
from netsim.packetizer import (
    PacketizationError,
    fits_scale_header,
    max_payload_bytes,
    packetize,
)
from netsim.reassembly import FrameAssembly
from tests.netsim.fakes import FakeEncoder, assemble

MTU = 300


def encoded(sizes: tuple[int, ...], frame_index: int = 0) -> EncodedFrame:
    encoder = FakeEncoder(sizes, seed=frame_index)
    return encoder.encode(frame_index, None)


def reassemble(packets: list[Packet]):
    assembly = FrameAssembly(packets[0], fits_scale_header)
    for packet in packets[1:]:
        assembly.add(packet)
    return assemble(assembly)


@pytest.mark.parametrize(
    "sizes", [(0, 1, 254, 255), (10, 508, 509, 2000), (1, 1, 1, 1), (0, 0, 0, 0)]
)
def test_all_packets_reassemble_to_the_original_scales(sizes: tuple[int, ...]) -> None:
    frame = encoded(sizes)
    packets = packetize(frame, first_seq=10, mtu_bytes=MTU)
    assert all(p.size_bytes <= MTU for p in packets)
    assert [p.seq for p in packets] == list(range(10, 10 + len(packets)))
    assert [p.scale for p in packets] == sorted(p.scale for p in packets)
    for scale, size in enumerate(sizes, start=1):
        count = max(1, -(-size // max_payload_bytes(MTU)))
        assert sum(p.scale == scale for p in packets) == count
    received, complete = reassemble(packets)
    assert received.scales == {k: frame.scales[k - 1] for k in range(1, 5)}
    assert received.lam == frame.lam and received.frame_type == frame.frame_type
    assert all(not c.recovered_fragments for c in complete)


def test_max_scales_sends_only_the_lower_scales() -> None:
    packets = packetize(encoded((30, 400, 900, 1500)), first_seq=0, mtu_bytes=MTU, max_scales=2)
    assert {p.scale for p in packets} == {1, 2}


@pytest.mark.parametrize("max_scales", [0, 5])
def test_max_scales_outside_1_to_k_is_refused_naming_the_setting(max_scales: int) -> None:
    with pytest.raises(PacketizationError, match="max_scales") as error:
        packetize(encoded((1, 1, 1, 1)), first_seq=0, mtu_bytes=MTU, max_scales=max_scales)
    assert error.value.setting == "max_scales"


def test_every_packet_repeats_its_frames_and_its_scales_header() -> None:
    frame = FakeEncoder((30, 400, 900, 1500), seed=2).encode(3, 2)  # an R frame
    for packet in packetize(frame, first_seq=0, mtu_bytes=MTU):
        payload = frame.scales[packet.scale - 1]
        assert (
            packet.frame_index,
            packet.rate_parameter,
            packet.resync_from,
            packet.frame_type,
        ) == (
            3,
            frame.lam,
            2,
            frame.frame_type,
        )
        assert (packet.scale_length_bytes, packet.scale_crc32, packet.sync_tag) == (
            len(payload.data),
            payload.crc32,
            payload.sync_tag,
        )


def test_mtu_smaller_than_the_header_is_refused() -> None:
    with pytest.raises(PacketizationError):
        packetize(encoded((1, 1, 1, 1)), first_seq=0, mtu_bytes=HEADER_SIZE_BYTES)


def test_an_fec_scale_travels_as_k_data_and_m_parity_fragments_of_equal_length() -> None:
    frame = encoded((100, 10, 10, 10))
    packets = packetize(frame, first_seq=0, mtu_bytes=MTU, fec={1: FecParams(3, 2)})
    scale_1 = [p for p in packets if p.scale == 1]
    assert [(p.fragment_index, p.fragment_count, p.parity_count) for p in scale_1] == [
        (i, 3, 2) for i in range(5)
    ]
    assert [len(p.payload) for p in scale_1] == [34] * 5  # ceil(100 / 3)
    data = frame.scales[0].data
    assert b"".join(p.payload for p in scale_1[:3]) == data + bytes(2)  # systematic, padded
    assert [p.parity_count for p in packets if p.scale != 1] == [0, 0, 0]


def test_an_empty_scale_travels_unprotected_even_with_fec() -> None:
    frame = encoded((0, 10, 10, 10))
    packets = packetize(frame, first_seq=0, mtu_bytes=MTU, fec={1: FecParams(3, 2)})
    assert [(p.payload, p.fragment_count, p.parity_count) for p in packets if p.scale == 1] == [
        (b"", 1, 0)
    ]


def test_fec_keeps_its_code_rate_when_a_scale_needs_more_packets() -> None:
    frame = encoded((10, 10, 10, 2000))
    packets = packetize(frame, first_seq=0, mtu_bytes=MTU, fec={4: FecParams(2, 1)})
    scale_4 = [p for p in packets if p.scale == 4]
    data = -(-2000 // max_payload_bytes(MTU))
    assert scale_4[0].fragment_count == data
    assert scale_4[0].parity_count == -(-data // 2)
    assert all(p.size_bytes <= MTU for p in scale_4)
    lost_data = [p for p in scale_4 if p.fragment_index not in range(scale_4[0].parity_count)]
    received, _ = reassemble([*[p for p in packets if p.scale != 4], *lost_data])
    assert received.scales[4] == frame.scales[3]
