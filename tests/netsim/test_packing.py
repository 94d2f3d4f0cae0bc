"""Packed packetization (issue 18 item 2): scales in order in as few packets as fit."""

from __future__ import annotations

import itertools

import pytest

from codec.types import NUM_SCALES
from netsim.codecs.dhvc import DhvcAdapter
from netsim.fec import FecParams
from netsim.packet import HEADER_SIZE_BYTES, Packet, PacketFormatError, PacketLayout
from netsim.packing import fits_piece, pack_frame, pack_frame_striped, pieces_of
from netsim.reassembly import FrameAssembly
from netsim.simulation import simulate
from tests.netsim.fakes import FakeDecoder, FakeEncoder, assemble, scenario, simulate_fakes

MTU = 1200


def packed(sizes: tuple[int, ...], fec: dict[int, FecParams] | None = None) -> list[Packet]:
    frame = FakeEncoder(sizes).encode(1, None)
    return pack_frame(frame, first_seq=10, mtu_bytes=MTU, max_scales=NUM_SCALES, fec=fec or {})


def received_scales(packets: list[Packet]) -> set[int]:
    pieces = [piece for packet in packets for piece in pieces_of(packet)]
    if not pieces:
        return set()
    assembly = FrameAssembly(pieces[0], fits_piece)
    for piece in pieces[1:]:
        assembly.add(piece)
    received, _ = assemble(assembly)
    return set(received.scales)


def test_small_whole_scales_share_one_packet_and_a_large_scale_fragments() -> None:
    packets = packed((40, 150, 600, 2500))
    assert [p.seq for p in packets] == list(range(10, 10 + len(packets)))
    assert all(p.size_bytes <= MTU and p.layout is PacketLayout.PACKED for p in packets)
    first = {piece.scale for piece in pieces_of(packets[0])}
    assert {1, 2, 3, 4} <= first  # scales 1-3 whole, scale 4 starts in the room left
    with_piece_headers = 40 + 150 + 600 + 2500 + 6 * 21  # scale 4 in three pieces
    assert len(packets) == -(-with_piece_headers // (MTU - HEADER_SIZE_BYTES)) == 3


def test_every_scale_is_rebuilt_from_all_packets_and_a_lost_packet_loses_all_it_carries() -> None:
    packets = packed((40, 150, 600, 2500))
    assert received_scales(packets) == {1, 2, 3, 4}
    assert received_scales(packets[1:]) == set()  # the first packet held scales 1-3, part of 4
    assert received_scales(packets[:1] + packets[2:]) == {1, 2, 3}


def test_a_packed_packet_survives_the_wire_and_damage_is_refused() -> None:
    packet = packed((40, 150, 600, 2500))[0]
    assert Packet.from_bytes(packet.to_bytes()) == packet
    assert pieces_of(Packet.from_bytes(packet.to_bytes())) == pieces_of(packet)
    broken = Packet(**{**packet.__dict__, "payload": packet.payload[:-1]})
    with pytest.raises(PacketFormatError):
        pieces_of(broken)


def test_fec_pieces_of_one_scale_never_share_a_packet_and_rebuild_a_lost_packet() -> None:
    fec = {1: FecParams(1, 2), 2: FecParams(1, 1)}
    packets = packed((40, 150, 600, 2500), fec)
    for packet in packets:
        scales = [piece.scale for piece in pieces_of(packet)]
        assert len(scales) == len(set(scales))
    assert {1, 2} <= received_scales(packets[1:])  # scales 1 and 2 rebuilt from parity


def test_packed_run_sends_fewer_packets_and_decodes_every_scale() -> None:
    per_scale, _ = simulate_fakes(scenario(), 8)
    decoder = FakeDecoder()
    codec = DhvcAdapter(FakeEncoder(), decoder, packing="packed")
    packed_run = simulate(scenario(), codec=codec, frame_count=8, seed=0)
    assert len(packed_run.packets) == 3 * 8 < len(per_scale.packets) == 6 * 8
    assert all(set(r.scales) == {1, 2, 3, 4} for r in decoder.received)


def test_losing_a_packed_packet_marks_only_it_lost_and_loses_its_scales() -> None:
    loss = {"kind": "explicit", "packets": [{"frame": 2, "scale": 1, "fragment": 0}]}
    decoder = FakeDecoder()
    codec = DhvcAdapter(FakeEncoder(), decoder, packing="packed")
    s = scenario(network={"forward": {"kind": "unlimited", "loss": loss}})
    outcome = simulate(s, codec=codec, frame_count=4, seed=0)
    lost = [p for p in outcome.packets if p.fate.value != "delivered"]
    assert [(p.frame, p.fragment) for p in lost] == [(2, 0)]
    assert set(decoder.received[2].scales) == set()


def test_adapter_with_packing_accepts_pieces_only() -> None:
    adapter = DhvcAdapter(FakeEncoder(), FakeDecoder(), packing="packed")
    pieces = pieces_of(packed((40, 150, 600, 2500))[0])
    assert all(adapter.fits(piece) for piece in pieces)
    assert not DhvcAdapter(FakeEncoder(), FakeDecoder()).fits(pieces[0])


def test_the_paper_scenarios_keep_one_scale_per_packet_and_no_concealment() -> None:
    from pathlib import Path

    from netsim.scenario import load_scenario

    root = Path(__file__).parents[2] / "scenarios"
    for path in [*root.glob("loss*.yaml"), *root.glob("compare/compare_dhvc_loss*.yaml")]:
        s = load_scenario(path)
        assert s.sender.packing == "per_scale" and s.receiver.concealment == "off", path


def test_packing_and_a_fec_budget_are_refused_for_x264() -> None:
    from netsim.scenario import ScenarioError, scenario_error_from_validation

    h26x = {"kind": "x264", "h26x": {"qp": 21}}
    for sender in ({"packing": "packed"}, {"fec_budget": {"overhead_fraction": 0.25}}):
        with pytest.raises(Exception) as caught:
            scenario(codec=h26x, sender=sender)
        error = scenario_error_from_validation(None, caught.value, {"sender": sender})
        assert isinstance(error, ScenarioError) and "sender" in str(error)


def striped(sizes: tuple[int, ...], fraction: float = 0.25) -> list[Packet]:
    frame = FakeEncoder(sizes).encode(1, None)
    return pack_frame_striped(
        frame, first_seq=10, mtu_bytes=MTU, max_scales=NUM_SCALES, parity_fraction=fraction
    )


@pytest.mark.parametrize(
    ("sizes", "fraction", "data", "parity"),
    [
        # 3 packets would carry 14 + 50 + 200 + 834 bytes and 4 piece headers: 1,182 > 1,154
        ((40, 150, 600, 2500), 0.25, 4, 1),
        ((40, 150, 600, 2500), 0.5, 4, 2),
        ((10, 20, 30, 40), 0.25, 1, 1),
        ((0, 150, 600, 9000), 0.25, 10, 3),  # the empty scale rides in packet 0
    ],
)
def test_striped_fec_repairs_any_parity_count_of_lost_packets(
    sizes: tuple[int, ...], fraction: float, data: int, parity: int
) -> None:
    packets = striped(sizes, fraction)
    assert len(packets) == data + parity
    assert all(p.size_bytes <= MTU for p in packets)
    sent = set(range(1, NUM_SCALES + 1))
    for lost in itertools.combinations(range(len(packets)), parity):
        kept = [p for i, p in enumerate(packets) if i not in lost]
        assert received_scales(kept) == sent, lost
    if data > 1:  # one more lost packet loses every non-empty scale
        nonempty = {k for k, n in enumerate(sizes, start=1) if n}
        assert not received_scales(packets[parity + 1 :]) & nonempty


def test_striped_fec_needs_the_packed_layout_and_fits_the_largest_frame() -> None:
    from netsim.scenario import ScenarioError, scenario_error_from_validation

    budget = {"overhead_fraction": 0.25, "allocation": "striped"}
    assert scenario(sender={"packing": "packed", "fec_budget": budget}).sender.fec_budget
    sender = {"fec_budget": budget}
    with pytest.raises(Exception) as caught:
        scenario(sender=sender)
    error = scenario_error_from_validation(None, caught.value, {"sender": sender})
    assert isinstance(error, ScenarioError) and "packing: packed" in str(error)


def test_a_striped_run_repairs_one_lost_packet_per_frame() -> None:
    from netsim.codecs.dhvc import FecBudget

    lost = [{"frame": f, "scale": 1, "fragment": f} for f in range(4)]  # scale: the first piece
    loss = {"kind": "explicit", "packets": lost}
    decoder = FakeDecoder()
    budget = FecBudget(0.25, 0.1, "striped")
    codec = DhvcAdapter(FakeEncoder(), decoder, packing="packed", fec_budget=budget)
    s = scenario(network={"forward": {"kind": "unlimited", "loss": loss}})
    outcome = simulate(s, codec=codec, frame_count=4, seed=0)
    assert len(outcome.packets) == 5 * 4  # 4 data packets and 1 parity packet a frame
    assert sum(p.fate.value != "delivered" for p in outcome.packets) == 4
    assert all(set(r.scales) == {1, 2, 3, 4} for r in decoder.received)
