"""Hostile packets at the receiver (issue 11): strays, late duplicates, absurd headers.

A *stray* is a packet with a valid checksum that is not what the sender sent for its frame
(damaged behind a recomputed checksum, forged, or from another stream). It must never cost the
genuine packets of its frame anything; nor may a second arrival of a packet rewrite its fate.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
import simpy

from codec.model.config import PRESETS
from codec.types import FrameType
from netsim.feedback import FeedbackLink
from netsim.loss import NoLoss
from netsim.packet import (
    HEADER_SIZE_BYTES,
    MAX_FRAGMENTS,
    MAX_LAMBDA,
    MIN_LAMBDA,
    PACKET_HEADER_FIELDS,
    Packet,
    PacketFormatError,
    with_valid_checksum,
)
from netsim.packetizer import fits_scale_header, packetize
from netsim.reassembly import FrameAssembly
from netsim.receiver import Receiver
from netsim.trace import Fate, FrameTrace, PacketTrace
from tests.netsim.fakes import FakeDecoder, FakeEncoder, assemble, fake_codec

MTU = 300
FPS = 25.0
PLAYOUT_DELAY_S = 0.1  # frame i's deadline: i / 25 + 0.1
FRAMES = 2  # frame 0 is I (resync_from 1), frame 1 is P (resync_from 0)


def genuine_packets() -> list[Packet]:
    """Frames 0 and 1 as the sender packetizes them: scales of 40, 150, 600, 2500 bytes."""
    encoder = FakeEncoder((40, 150, 600, 2500), seed=3)
    packets: list[Packet] = []
    for frame in range(FRAMES):
        packets += packetize(encoder.encode(frame, None), first_seq=len(packets), mtu_bytes=MTU)
    return packets


def on_the_wire(packet: Packet) -> Packet:
    """``packet`` after a trip through its wire format (so a stray has a valid checksum)."""
    return Packet.from_bytes(packet.to_bytes())


@dataclasses.dataclass
class Run:
    decoder: FakeDecoder
    receiver: Receiver
    trace: PacketTrace

    def fates(self) -> dict[int, Fate]:
        return {r.seq: r.fate for r in self.trace.records()}


def receive(arrivals: list[tuple[float, Packet]], sent: list[Packet]) -> Run:
    """Deliver each (time, packet) to a Receiver; ``sent`` are the packets the trace knows."""
    env = simpy.Environment()
    trace = PacketTrace()
    for packet in sent:
        trace.sent(packet, 0.0, exposed_to_loss=True)
    decoder = FakeDecoder()
    receiver = Receiver(
        env,
        codec=fake_codec(decoder=decoder),
        feedback=FeedbackLink(delay_s=0.0, loss=NoLoss()),
        trace=trace,
        frames=FrameTrace(),
        frame_count=FRAMES,
        fps=FPS,
        playout_delay_s=PLAYOUT_DELAY_S,
    )

    def deliver():
        for time_s, packet in sorted(arrivals, key=lambda a: a[0]):
            yield env.timeout(time_s - env.now)
            receiver.deliver(packet)

    env.process(deliver())
    env.run()
    return Run(decoder, receiver, trace)


def in_time(packets: list[Packet], start_s: float = 0.01) -> list[tuple[float, Packet]]:
    """Every packet arrives well before its frame's deadline, in order."""
    return [(start_s + 0.0001 * i, p) for i, p in enumerate(packets)]


def stray_of(packet: Packet, seq: int | None, **changes: object) -> Packet:
    fields = {**changes, "seq": packet.seq if seq is None else seq}
    return on_the_wire(dataclasses.replace(packet, **fields))


@pytest.mark.parametrize("same_seq", [False, True], ids=["new-seq", "same-seq"])
@pytest.mark.parametrize(
    ("frame", "scale", "changes"),
    [
        (0, 1, {"rate_parameter": 2048.0}),
        (0, 4, {"rate_parameter": 1024.0 * (1 + 2**-52)}),
        (1, 2, {"resync_from": 3}),
        (1, 3, {"resync_from": 1, "frame_type": FrameType.R}),
        (1, 1, {"frame_type": FrameType.I, "resync_from": 1}),
        (0, 3, {"scale_crc32": 0x0BADF00D}),
        (0, 4, {"sync_tag": 7}),
    ],
    ids=["lambda", "lambda-ulp", "resync_from", "R-frame", "I-frame", "scale-crc", "sync-tag"],
)
def test_a_stray_before_its_frame_costs_the_genuine_packets_nothing(
    frame: int, scale: int, changes: dict[str, object], same_seq: bool
) -> None:
    packets = genuine_packets()
    baseline = receive(in_time(packets), packets)
    victim = next(p for p in packets if p.frame_index == frame and p.scale == scale)
    stray = stray_of(victim, None if same_seq else 10_000, **changes)
    hostile = receive([(0.001, stray), *in_time(packets)], packets)

    assert hostile.decoder.received == baseline.decoder.received
    assert all(len(r.scales) == 4 for r in hostile.decoder.received)
    assert hostile.fates() == baseline.fates() == {p.seq: Fate.DELIVERED for p in packets}
    assert hostile.receiver.rejected_packets == 1
    assert hostile.trace.foreign_arrivals == hostile.trace.foreign_rejected == 1


def test_strays_anywhere_in_the_arrival_order_change_nothing() -> None:
    packets = genuine_packets()
    baseline = receive(in_time(packets), packets)
    frame_1 = [p for p in packets if p.frame_index == 1]
    strays = [
        stray_of(frame_1[0], 20_000, rate_parameter=512.0),
        stray_of(frame_1[1], 20_001, resync_from=2, frame_type=FrameType.R),
        stray_of(frame_1[-1], 20_002, scale_crc32=1),
    ]
    rng = random.Random(5)
    for _ in range(20):
        order = [*packets, *strays]
        rng.shuffle(order)
        hostile = receive(in_time(order), packets)
        assert hostile.decoder.received == baseline.decoder.received
        assert hostile.receiver.rejected_packets == len(strays)


def test_genuine_packets_outvoted_by_strays_are_recorded_as_rejected() -> None:
    packets = genuine_packets()
    frame_0 = [p for p in packets if p.frame_index == 0]
    genuine = frame_0[-1]  # a fragment of scale 4; the rest of frame 0 is lost
    strays = [stray_of(p, 30_000 + i, rate_parameter=99.0) for i, p in enumerate(frame_0[:2])]
    run = receive([(0.01, genuine), (0.02, strays[0]), (0.03, strays[1])], frame_0)
    assert run.decoder.received[0].lam == 99.0  # two packets agree against one
    fates = run.fates()
    assert fates[genuine.seq] is Fate.REJECTED
    assert {fates[p.seq] for p in frame_0 if p is not genuine} == {Fate.LATE}
    channel = {r.seq: r.channel_fate for r in run.trace.records()}
    assert channel[genuine.seq] is Fate.DELIVERED
    assert run.receiver.rejected_packets == 1


def test_ties_go_to_complete_scales_then_to_the_first_arrival() -> None:
    packets = genuine_packets()
    scale_1 = next(p for p in packets if p.frame_index == 0 and p.scale == 1)  # 1 fragment
    scale_2 = [p for p in packets if p.frame_index == 0 and p.scale == 2]
    assert len(scale_2) == 1 and scale_2[0].fragment_count == 1
    scale_3 = [p for p in packets if p.frame_index == 0 and p.scale == 3]
    assert len(scale_3) > 1
    # One packet each: the stray's forms no complete scale, the genuine one does.
    stray = stray_of(scale_3[0], 40_000, rate_parameter=5.0)
    assembly = FrameAssembly(stray, fits_scale_header)
    assert assembly.add(scale_1)  # it forms a complete scale: it wins the tie
    received, _ = assemble(assembly)
    assert received.lam == scale_1.rate_parameter and set(received.scales) == {1}
    assert assembly.discarded() == [stray]
    # Equal packets and complete scales: the first arrival wins.
    first, second = stray_of(scale_2[0], 40_001, rate_parameter=5.0), scale_1
    for a, b in ((first, second), (second, first)):
        assembly = FrameAssembly(a, fits_scale_header)
        assembly.add(b)
        assert assemble(assembly)[0].lam == a.rate_parameter
        assert assembly.discarded() == [b]


def test_a_late_duplicate_leaves_the_on_time_fate() -> None:
    packets = genuine_packets()
    late = 0.5  # after both deadlines
    copies = [(late, packets[0]), (late + 0.01, packets[-1]), (late + 0.02, packets[0])]
    run = receive([*in_time(packets), *copies], packets)
    records = {r.seq: r for r in run.trace.records()}
    for packet in (packets[0], packets[-1]):
        record = records[packet.seq]
        assert record.fate is Fate.DELIVERED and record.channel_fate is Fate.DELIVERED
        assert record.arrival_time_s is not None and record.arrival_time_s < 0.1
    assert {r.fate for r in records.values()} == {Fate.DELIVERED}
    assert run.trace.duplicate_arrivals == 3


def test_an_on_time_duplicate_is_counted_once_and_leaves_the_fate() -> None:
    packets = genuine_packets()
    baseline = receive(in_time(packets), packets)
    run = receive([*in_time(packets), (0.05, packets[3]), (0.06, on_the_wire(packets[3]))], packets)
    assert run.decoder.received == baseline.decoder.received
    assert run.fates() == baseline.fates()
    assert run.trace.duplicate_arrivals == 2
    assert run.receiver.rejected_packets == 2


def test_a_late_first_arrival_stays_late_when_a_copy_follows() -> None:
    packets = genuine_packets()
    frame_1 = [p for p in packets if p.frame_index == 1]
    run = receive(
        [*in_time(packets[: -len(frame_1)]), (0.3, frame_1[0]), (0.4, frame_1[0])], packets
    )
    record = next(r for r in run.trace.records() if r.seq == frame_1[0].seq)
    assert record.fate is Fate.LATE and record.arrival_time_s == pytest.approx(0.3)


def test_a_stray_payload_that_cannot_fit_its_scale_header_is_discarded() -> None:
    packets = genuine_packets()
    baseline = receive(in_time(packets), packets)
    victim = next(p for p in packets if p.frame_index == 0 and p.scale == 4)
    short = stray_of(victim, None, payload=victim.payload[:100])
    assert not fits_scale_header(short)
    run = receive([(0.001, short), *in_time(packets)], packets)
    assert run.decoder.received == baseline.decoder.received
    assert run.fates() == baseline.fates()


def test_every_packet_the_packetizer_makes_fits_its_scale_header() -> None:
    from netsim.fec import FecParams

    encoder = FakeEncoder((0, 1, 7, 3000), seed=1)
    frame = encoder.encode(0, None)
    for mtu in (HEADER_SIZE_BYTES + 1, HEADER_SIZE_BYTES + 2, 60, 300, 1500):
        for fec in ({}, {3: FecParams(3, 2), 4: FecParams(2, 1)}):
            try:
                packets = packetize(frame, first_seq=0, mtu_bytes=mtu, fec=fec)
            except (PacketFormatError, ValueError):
                continue  # too many fragments for this MTU
            assert all(fits_scale_header(p) for p in packets)


# --- parsing ---------------------------------------------------------------------------------


_HEADER_FIELDS = {field.name: field for field in PACKET_HEADER_FIELDS}


def datagram(packet: Packet, **fields: object) -> bytes:
    """``packet``'s bytes with header fields (``netsim.packet.PACKET_HEADER_FIELDS`` names)
    overwritten, checksum re-sealed."""
    data = bytearray(packet.to_bytes())
    for name, value in fields.items():
        _HEADER_FIELDS[name].write(data, value)
    return with_valid_checksum(data)


def test_datagram_helper_rewrites_the_checksum() -> None:
    packet = genuine_packets()[5]
    assert Packet.from_bytes(datagram(packet, rate_parameter=777.0)).rate_parameter == 777.0


@pytest.mark.parametrize(
    "lam",
    [
        1e-320,
        5e-324,
        1e-300,
        0.0,
        -0.0,
        -1024.0,
        1e300,
        1.7976931348623157e308,
        float("inf"),
        float("-inf"),
        float("nan"),
        MIN_LAMBDA / 2,
        MAX_LAMBDA * 2,
    ],
)
def test_absurd_lambdas_are_refused_at_parse(lam: float) -> None:
    data = datagram(genuine_packets()[0], rate_parameter=lam)
    with pytest.raises(PacketFormatError, match="lambda"):
        Packet.from_bytes(data)
    with pytest.raises(PacketFormatError, match="lambda"):
        dataclasses.replace(genuine_packets()[0], rate_parameter=lam)


def test_every_preset_lambda_range_parses() -> None:
    packet = genuine_packets()[0]
    for config in PRESETS.values():
        for lam in (config.lambda_min, config.lambda_max):
            assert MIN_LAMBDA <= lam <= MAX_LAMBDA
            assert Packet.from_bytes(datagram(packet, rate_parameter=lam)).rate_parameter == lam


@pytest.mark.parametrize(
    "fields",
    [
        {"scale": 0},
        {"scale": 5},
        {"scale": 255},
        {"resync_from": 9},
        {"fragment_index": 1},  # one data fragment, no parity
        {"fragment_index": 0xFFFF},
        {"fragment_count": 0},
        {"fragment_count": MAX_FRAGMENTS + 1},
        {"parity_count": MAX_FRAGMENTS},
        {"scale_length_bytes": 0xFFFFFFFF},
        {"scale_length_bytes": 0x10000},  # more than one fragment can carry
        {"frame_type": 3},
        {"version": 2},
    ],
    ids=lambda fields: "-".join(f"{k}={v}" for k, v in fields.items()),
)
def test_absurd_header_fields_are_refused_at_parse(fields: dict) -> None:
    single = next(p for p in genuine_packets() if p.fragment_count == 1 and p.scale == 1)
    with pytest.raises(PacketFormatError):
        Packet.from_bytes(datagram(single, **fields))


def test_an_empty_fec_scale_is_refused_at_parse() -> None:
    from netsim.fec import FecParams

    frame = FakeEncoder((10, 10, 10, 10)).encode(0, None)
    protected = packetize(frame, first_seq=0, mtu_bytes=MTU, fec={1: FecParams(1, 1)})[0]
    assert protected.parity_count == 1
    with pytest.raises(PacketFormatError, match="FEC"):
        Packet.from_bytes(datagram(protected, scale_length_bytes=0))


def test_every_truncation_of_every_packet_gives_the_typed_error() -> None:
    from netsim.fec import FecParams

    frame = FakeEncoder((0, 3, 200, 700)).encode(0, None)
    packets = packetize(frame, first_seq=0, mtu_bytes=MTU, fec={3: FecParams(2, 1)})
    for packet in packets:
        data = packet.to_bytes()
        assert Packet.from_bytes(data) == packet
        assert Packet.from_bytes(memoryview(data)) == Packet.from_bytes(bytearray(data)) == packet
        for length in range(len(data)):
            with pytest.raises(PacketFormatError):
                Packet.from_bytes(data[:length])
            with pytest.raises(PacketFormatError):
                Packet.from_bytes(bytearray(data[:length]))
            with pytest.raises(PacketFormatError):
                Packet.from_bytes(memoryview(data)[:length])
