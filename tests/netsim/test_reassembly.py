"""Reassembly of a frame from whichever of its packets arrived: completeness, agreement."""

from __future__ import annotations

import dataclasses
import itertools
import zlib

import pytest

from codec.types import EncodedFrame, FrameType, ReceivedFrame
from netsim.fec import FecParams
from netsim.packet import Packet, PacketLayout
from netsim.packetizer import AssembledScale, fits_scale_header, packetize
from netsim.reassembly import FrameAssembly, frame_header, scale_header
from tests.netsim.fakes import FakeEncoder, assemble

MTU = 300  # 254 payload bytes per packet
SIZES = (30, 400, 900, 1500)  # 1 + 2 + 4 + 6 packets


def encoded(
    sizes: tuple[int, ...] = SIZES, frame_index: int = 0, resync_from: int | None = None
) -> EncodedFrame:
    encoder = FakeEncoder(sizes, seed=frame_index, lam=512.0)
    return encoder.encode(frame_index, resync_from)


def assembly_of(packets: list[Packet]) -> FrameAssembly:
    assembly = FrameAssembly(packets[0], fits_scale_header)
    for packet in packets[1:]:
        assembly.add(packet)
    return assembly


def reassemble(packets: list[Packet]) -> tuple[ReceivedFrame, tuple[AssembledScale, ...]]:
    return assemble(assembly_of(packets))


def test_header_helpers_read_the_repeated_fields() -> None:
    packet = packetize(encoded(resync_from=3, frame_index=5), first_seq=0, mtu_bytes=MTU)[1]
    assert frame_header(packet) == (512.0, 3, FrameType.R, PacketLayout.SCALES, None)
    assert scale_header(packet) == (2, 0, 400, packet.scale_crc32, packet.sync_tag)


def test_a_scale_is_complete_only_once_all_its_data_fragments_arrived() -> None:
    frame = encoded()
    packets = packetize(frame, first_seq=0, mtu_bytes=MTU)
    scale_4 = [p for p in packets if p.scale == 4]
    assert len(scale_4) == 6
    assembly = FrameAssembly(packets[0], fits_scale_header)
    for packet in scale_4[:-1]:
        assembly.add(packet)
        assert sorted(assemble(assembly)[0].scales) == [1]
    assembly.add(scale_4[-1])
    assert assemble(assembly)[0].scales == {1: frame.scales[0], 4: frame.scales[3]}


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


def test_an_incomplete_lower_scale_leaves_the_higher_scales_complete() -> None:
    frame = encoded()
    packets = packetize(frame, first_seq=0, mtu_bytes=MTU)
    received, complete = reassemble([p for p in packets if p.scale != 1])
    assert received.scales == {k: frame.scales[k - 1] for k in (2, 3, 4)}
    assert [c.scale for c in complete] == [2, 3, 4]
    assert received.lam == 512.0  # the header still comes from the packets of other scales


def test_assemble_gives_the_frames_header_and_its_complete_scales() -> None:
    frame = encoded(frame_index=6, resync_from=2)
    packets = packetize(frame, first_seq=40, mtu_bytes=MTU)
    received, complete = reassemble([p for p in packets if (p.scale, p.fragment_index) != (3, 0)])
    assert received == ReceivedFrame(
        frame_index=6,
        lam=512.0,
        resync_from=2,
        frame_type=FrameType.R,
        scales={1: frame.scales[0], 2: frame.scales[1], 4: frame.scales[3]},
    )
    assert complete == (
        AssembledScale(1, frame.scales[0], ()),
        AssembledScale(2, frame.scales[1], ()),
        AssembledScale(4, frame.scales[3], ()),
    )


def test_an_empty_scale_arrives_as_one_empty_fragment_and_is_complete() -> None:
    frame = encoded((0, 10, 10, 10))
    packets = packetize(frame, first_seq=0, mtu_bytes=MTU)
    assert packets[0].payload == b"" and packets[0].fragment_count == 1
    received, _ = reassemble(packets)
    assert received.scales[1].data == b""


def test_a_frame_whose_only_packet_does_not_fit_its_header_is_nothing() -> None:
    packet = packetize(encoded(), first_seq=0, mtu_bytes=MTU)[0]
    broken = dataclasses.replace(packet, payload=packet.payload[:-1])
    assembly = FrameAssembly(broken, fits_scale_header)
    assert assemble(assembly) == (ReceivedFrame.nothing(0), ())
    assert assembly.discarded() == [broken] and assembly.rejected_packets == 1


def test_duplicate_and_inconsistent_packets_are_rejected_not_trusted() -> None:
    frame = encoded((30, 400, 900, 1500))
    packets = packetize(frame, first_seq=0, mtu_bytes=MTU)
    second_of_scale_2 = packets[2]
    assert (second_of_scale_2.scale, second_of_scale_2.fragment_index) == (2, 1)
    assembly = FrameAssembly(packets[0], fits_scale_header)
    for packet in packets[1:]:
        if packet is not second_of_scale_2:
            assert assembly.add(packet)
    assert not assembly.add(packets[0])  # duplicate
    foreign = packetize(encoded((30, 400, 900, 1500), frame_index=1), first_seq=0, mtu_bytes=MTU)
    assert not assembly.add(foreign[2])  # another frame's header
    forged = Packet(**{**second_of_scale_2.__dict__, "scale_crc32": 12345})
    assert not assembly.add(forged)  # disagrees with the first packet of its scale
    assert 2 not in assemble(assembly)[0].scales
    assert assembly.add(second_of_scale_2)
    assert assembly.rejected_packets == 3
    received, _ = assemble(assembly)
    assert received.scales == {k: frame.scales[k - 1] for k in range(1, 5)}


def test_a_different_payload_for_a_fragment_already_held_is_discarded() -> None:
    frame = encoded()
    packets = packetize(frame, first_seq=0, mtu_bytes=MTU)
    victim = packets[1]  # scale 2, fragment 0
    other = dataclasses.replace(victim, payload=bytes(len(victim.payload)))
    assembly = assembly_of(packets)
    assert not assembly.add(other)
    assert assembly.discarded() == [other]
    assert (assembly.duplicate_packets, assembly.rejected_packets) == (0, 1)
    assert assemble(assembly)[0].scales[2] == frame.scales[1]  # the first payload is kept


def test_the_frame_header_is_the_one_most_packets_carry() -> None:
    frame = encoded()
    packets = packetize(frame, first_seq=0, mtu_bytes=MTU)
    strays = [
        dataclasses.replace(p, rate_parameter=99.0) for p in packets[:3]
    ]  # three scale-1/2 copies
    assembly = assembly_of([*strays, *packets])  # the strays arrive first, but are fewer
    received, _ = assemble(assembly)
    assert (received.lam, received.scales) == (512.0, dict(enumerate(frame.scales, start=1)))
    assert assembly.discarded() == strays
    assert assembly.rejected_packets == 3


def test_a_scale_header_is_the_one_most_of_its_fragments_carry() -> None:
    frame = encoded()
    packets = packetize(frame, first_seq=0, mtu_bytes=MTU)
    scale_3 = [p for p in packets if p.scale == 3]
    stray = dataclasses.replace(scale_3[2], sync_tag=scale_3[2].sync_tag + 1)
    assembly = FrameAssembly(stray, fits_scale_header)
    assert assembly.add(scale_3[0]) is False  # one fragment each: the stray came first
    assert assembly.add(scale_3[1]) is True  # two against one
    for packet in packets:
        assembly.add(packet)
    received, _ = assemble(assembly)
    assert received.scales[3] == frame.scales[2]
    assert assembly.discarded() == [stray]


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


def test_fec_lists_the_rebuilt_data_fragments_in_order() -> None:
    frame = encoded((100, 10, 10, 10))
    packets = packetize(frame, first_seq=0, mtu_bytes=MTU, fec={1: FecParams(3, 2)})
    kept = [p for p in packets if not (p.scale == 1 and p.fragment_index in (0, 2))]
    _, complete = reassemble(kept)
    assert complete[0] == AssembledScale(1, frame.scales[0], (0, 2))
    assert [c.recovered_fragments for c in complete[1:]] == [(), (), ()]


@pytest.mark.parametrize(
    ("length", "count", "parity", "index", "size", "fits"),
    [
        (600, 1, 0, 0, 600, True),  # a single fragment carries the whole scale
        (600, 1, 0, 0, 599, False),
        (0, 1, 0, 0, 0, True),  # an empty scale travels as one empty fragment
        (600, 3, 0, 0, 254, True),  # the packetizer's cut at MTU 300: 254, 254, 92
        (600, 3, 0, 2, 92, True),
        (600, 3, 0, 0, 200, True),  # a fragment before the last: at least ceil(600 / 3)
        (600, 3, 0, 0, 199, False),
        (600, 3, 0, 1, 299, True),  # ... and 2 x 299 < 600 leaves a byte for the last
        (600, 3, 0, 1, 300, False),
        (600, 3, 0, 2, 200, True),  # the last: 1 .. 600 // 3
        (600, 3, 0, 2, 201, False),
        (600, 3, 0, 2, 0, False),
        (100, 3, 2, 0, 34, True),  # with FEC every fragment is ceil(100 / 3) bytes
        (100, 3, 2, 4, 34, True),
        (100, 3, 2, 2, 33, False),
        (100, 3, 2, 3, 35, False),
    ],
)
def test_a_payload_fits_its_scale_header_only_as_the_packetizer_could_cut_it(
    length: int, count: int, parity: int, index: int, size: int, fits: bool
) -> None:
    template = packetize(encoded(), first_seq=0, mtu_bytes=MTU)[0]
    packet = dataclasses.replace(
        template,
        fragment_index=index,
        fragment_count=count,
        parity_count=parity,
        scale_length_bytes=length,
        payload=bytes(size),
    )
    assert fits_scale_header(packet) is fits
