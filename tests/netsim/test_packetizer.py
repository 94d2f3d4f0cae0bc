"""Packetization and reassembly: MTU, scale order, fragments, FEC recovery."""

from __future__ import annotations

import itertools
import zlib

import pytest

from codec.types import EncodedFrame
from netsim.fec import FecParams
from netsim.packet import HEADER_SIZE_BYTES, Packet
from netsim.packetizer import PacketizationError, max_payload_bytes, packetize
from netsim.reassembly import FrameAssembly
from tests.netsim.fakes import FakeEncoder

MTU = 300


def encoded(sizes: tuple[int, ...], frame_index: int = 0) -> EncodedFrame:
    encoder = FakeEncoder(sizes, seed=frame_index)
    return encoder.encode(frame_index, None)


def reassemble(packets: list[Packet]):
    assembly = FrameAssembly(packets[0])
    for packet in packets[1:]:
        assembly.add(packet)
    return assembly.assemble()


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


def test_packets_survive_the_wire_format_and_any_arrival_order() -> None:
    frame = encoded((30, 400, 900, 1500))
    sent = packetize(frame, first_seq=0, mtu_bytes=MTU)
    packets = [Packet.from_bytes(p.to_bytes()) for p in sent]
    received, _ = reassemble(list(reversed(packets)))
    assert len(received.scales) == 4
    assert all(zlib.crc32(s.data) == s.crc32 for s in received.scales.values())


def test_a_missing_fragment_makes_only_its_scale_incomplete() -> None:
    frame = encoded((30, 400, 900, 1500))
    packets = packetize(frame, first_seq=0, mtu_bytes=MTU)
    without = [p for p in packets if not (p.scale == 3 and p.fragment_index == 1)]
    received, _ = reassemble(without)
    assert sorted(received.scales) == [1, 2, 4]


def test_max_scales_sends_only_the_lower_scales() -> None:
    packets = packetize(encoded((30, 400, 900, 1500)), first_seq=0, mtu_bytes=MTU, max_scales=2)
    assert {p.scale for p in packets} == {1, 2}


def test_duplicate_and_inconsistent_packets_are_rejected_not_trusted() -> None:
    frame = encoded((30, 400, 900, 1500))
    packets = packetize(frame, first_seq=0, mtu_bytes=MTU)
    second_of_scale_2 = packets[2]
    assert (second_of_scale_2.scale, second_of_scale_2.fragment_index) == (2, 1)
    assembly = FrameAssembly(packets[0])
    for packet in packets[1:]:
        if packet is not second_of_scale_2:
            assert assembly.add(packet)
    assert not assembly.add(packets[0])  # duplicate
    foreign = packetize(encoded((30, 400, 900, 1500), frame_index=1), first_seq=0, mtu_bytes=MTU)
    assert not assembly.add(foreign[2])  # another frame's header
    forged = Packet(**{**second_of_scale_2.__dict__, "scale_crc32": 12345})
    assert not assembly.add(forged)  # disagrees with the first packet of its scale
    assert 2 not in assembly.assemble()[0].scales
    assert assembly.add(second_of_scale_2)
    assert assembly.rejected_packets == 3
    received, _ = assembly.assemble()
    assert received.scales == {k: frame.scales[k - 1] for k in range(1, 5)}


def test_mtu_smaller_than_the_header_is_refused() -> None:
    with pytest.raises(PacketizationError):
        packetize(encoded((1, 1, 1, 1)), first_seq=0, mtu_bytes=HEADER_SIZE_BYTES)


def test_fec_rebuilds_a_scale_from_any_k_of_its_packets() -> None:
    frame = encoded((100, 10, 10, 10))
    fec = {1: FecParams(data_packets=3, parity_packets=2)}
    packets = packetize(frame, first_seq=0, mtu_bytes=MTU, fec=fec)
    scale_1 = [p for p in packets if p.scale == 1]
    others = [p for p in packets if p.scale != 1]
    assert len(scale_1) == 5 and len({len(p.payload) for p in scale_1}) == 1
    for kept in itertools.combinations(scale_1, 3):
        received, complete = reassemble([*kept, *others])
        assert received.scales[1] == frame.scales[0]
        missing_data = {0, 1, 2} - {p.fragment_index for p in kept}
        recovered = next(c for c in complete if c.scale == 1).recovered_fragments
        assert set(recovered) == missing_data
    for kept in itertools.combinations(scale_1, 2):
        received, _ = reassemble([*kept, *others])
        assert 1 not in received.scales


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
