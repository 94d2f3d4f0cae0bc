"""The receiver on its own: playout deadlines, late packets, decoding, echoes, its trace half.

Hostile packets (strays, duplicates, absurd headers) are in ``test_receiver_hostile.py``.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import simpy

from codec.types import IN_SYNC, DecodedFrame, FrameType, ReceivedFrame
from netsim.feedback import SIMULTANEITY_S, Echo, FeedbackLink
from netsim.loss import NoLoss
from netsim.packet import Packet
from netsim.packetizer import packetize
from netsim.receiver import Receiver
from netsim.trace import Fate, FrameTrace, PacketTrace, ShownFrame
from tests.netsim.fakes import FakeDecoder, FakeEncoder, fake_codec

FPS = 25.0
PLAYOUT_DELAY_S = 0.1  # frame i's deadline: i / 25 + 0.1
MTU = 300
SIZES = (40, 150, 600, 2500)


def deadline(frame: int) -> float:
    return frame / FPS + PLAYOUT_DELAY_S


def frame_packets(frame_count: int, resync: dict[int, int] | None = None) -> list[list[Packet]]:
    """Each frame's packets as the sender makes them (frame 0 I; ``resync`` frame -> j: R)."""
    encoder = FakeEncoder(SIZES, seed=7)
    frames, seq = [], 0
    for frame in range(frame_count):
        encoded = encoder.encode(frame, (resync or {}).get(frame))
        frames.append(packetize(encoded, first_seq=seq, mtu_bytes=MTU))
        seq += len(frames[-1])
    return frames


def without_scales(packets: list[Packet], *scales: int) -> list[Packet]:
    return [p for p in packets if p.scale not in scales]


class ClockedDecoder(FakeDecoder):
    """A FakeDecoder that also notes the simulated instant of each decode call."""

    def __init__(self, env: simpy.Environment) -> None:
        super().__init__()
        self.env = env
        self.times: list[float] = []

    def decode(self, received: ReceivedFrame) -> DecodedFrame:
        self.times.append(self.env.now)
        return super().decode(received)


class ShownLog(FrameTrace):
    """A FrameTrace that also keeps the receiver halves in the order they were recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[int, ShownFrame]] = []

    def shown(self, frame_index: int, frame: ShownFrame) -> None:
        self.log.append((frame_index, frame))
        super().shown(frame_index, frame)


@dataclasses.dataclass
class Run:
    decoder: ClockedDecoder
    receiver: Receiver
    trace: PacketTrace
    frames: ShownLog
    echoes: list[Echo]
    shown_decoded: list[int]

    def shown(self) -> list[ShownFrame]:
        assert [i for i, _ in self.frames.log] == list(range(len(self.frames.log)))
        return [frame for _, frame in self.frames.log]

    def echo_list(self) -> list[tuple[int, int, float]]:
        return [(e.frame_index, e.scale, e.send_time_s) for e in self.echoes]


def receive(
    arrivals: list[tuple[float, Packet]],
    *,
    frame_count: int,
    sent: list[Packet] | None = None,
    **options: object,
) -> Run:
    """Deliver each (time, packet) to a Receiver of ``frame_count`` frames; the packet trace
    knows ``sent`` (default: the packets that arrive)."""
    env = simpy.Environment()
    trace = PacketTrace()
    for packet in sent if sent is not None else [p for _, p in arrivals]:
        trace.sent(packet, 0.0, exposed_to_loss=True)
    decoder = ClockedDecoder(env)
    feedback = FeedbackLink(delay_s=0.0, loss=NoLoss())
    frames = ShownLog()
    shown_decoded: list[int] = []
    receiver = Receiver(
        env,
        codec=fake_codec(decoder=decoder),  # type: ignore[arg-type]
        feedback=feedback,
        trace=trace,
        frames=frames,
        frame_count=frame_count,
        fps=FPS,
        playout_delay_s=PLAYOUT_DELAY_S,
        on_frame=lambda decoded: shown_decoded.append(decoded.frame_index),
        **options,  # type: ignore[arg-type]
    )

    def deliver():
        for time_s, packet in sorted(arrivals, key=lambda a: a[0]):
            yield env.timeout(time_s - env.now)
            receiver.deliver(packet)

    env.process(deliver())
    env.run()
    echoes = feedback.take_arrived(math.inf)
    return Run(decoder, receiver, trace, frames, echoes, shown_decoded)


def promptly(frames: list[list[Packet]]) -> list[tuple[float, Packet]]:
    """Every packet of frame i arrives 10 ms after its capture, in order."""
    return [
        (i / FPS + 0.01 + 0.0001 * n, p)
        for i, packets in enumerate(frames)
        for n, p in enumerate(packets)
    ]


def test_frame_i_is_decoded_at_its_playout_deadline() -> None:
    run = receive(promptly(frame_packets(3)), frame_count=3)
    assert run.decoder.times == pytest.approx(
        [deadline(i) + SIMULTANEITY_S for i in range(3)], abs=1e-12
    )
    assert run.receiver.deadline_s(2) == pytest.approx(0.18, abs=1e-15)
    assert run.shown_decoded == [0, 1, 2]


def test_the_decoder_gets_every_scale_that_arrived_in_time() -> None:
    frames = frame_packets(2)
    run = receive(promptly(frames), frame_count=2)
    encoder = FakeEncoder(SIZES, seed=7)
    assert run.decoder.received == [
        encoder.encode(0, None).received(),
        encoder.encode(1, None).received(),
    ]
    assert {r.fate for r in run.trace.records()} == {Fate.DELIVERED}


def test_a_packet_arriving_at_the_deadline_is_in_time_and_one_after_it_is_late() -> None:
    (packets,) = frame_packets(1)
    scale_4 = [p for p in packets if p.scale == 4]
    arrivals = [(0.01, p) for p in packets if p.scale != 4]
    arrivals += [(deadline(0), p) for p in scale_4[:-1]] + [(deadline(0) + 0.001, scale_4[-1])]
    run = receive(arrivals, frame_count=1)
    assert sorted(run.decoder.received[0].scales) == [1, 2, 3]
    records = {r.seq: r for r in run.trace.records()}
    assert {records[p.seq].fate for p in scale_4[:-1]} == {Fate.DELIVERED}
    late = records[scale_4[-1].seq]
    assert late.fate is Fate.LATE and late.arrival_time_s == deadline(0) + 0.001
    assert run.shown()[0].scales_received == 3


def test_a_late_packet_is_not_used_even_while_the_next_frame_waits() -> None:
    frames = frame_packets(2)
    lost_scale_1 = frames[0][0]
    arrivals = [
        *promptly([without_scales(frames[0], 1), frames[1]]),
        (deadline(0) + 0.01, lost_scale_1),
    ]
    run = receive(arrivals, frame_count=2, sent=[*frames[0], *frames[1]])
    assert sorted(run.decoder.received[0].scales) == [2, 3, 4]
    assert run.trace.records()[0].fate is Fate.LATE
    assert run.receiver.rejected_packets == 0


def test_a_packet_of_a_frame_beyond_the_last_is_not_used() -> None:
    frames = frame_packets(2)
    run = receive(promptly(frames), frame_count=1)
    assert len(run.decoder.received) == 1
    assert {r.fate for r in run.trace.records() if r.frame == 1} == {Fate.LATE}


def test_a_frame_of_which_no_packet_arrived_is_still_decoded_and_shown() -> None:
    frames = frame_packets(3)
    run = receive(
        promptly([frames[0], [], frames[2]]), frame_count=3, sent=[p for f in frames for p in f]
    )
    assert run.decoder.received[1] == ReceivedFrame.nothing(1)
    assert run.shown() == [
        ShownFrame(4, 4, IN_SYNC, False, 0.0, concealed=False),
        ShownFrame(0, 0, 1, True, 0.0, concealed=True),  # all substituted: D = 1, echo (1, 1)
        ShownFrame(4, 0, 1, False, 0.0, concealed=True),  # a P frame cannot decode with D = 1
    ]
    assert run.shown_decoded == [0, 1, 2]
    assert run.echo_list() == [(1, 1, deadline(1))]


def test_an_echo_is_sent_when_the_first_desynced_scale_drops_and_not_otherwise() -> None:
    frames = frame_packets(5)
    arriving = [
        frames[0],
        without_scales(frames[1], 3),  # D: 5 -> 3, echo (1, 3)
        frames[2],  # D stays 3
        without_scales(frames[3], 2),  # D: 3 -> 2, echo (3, 2)
        without_scales(frames[4], 4),  # D stays 2: scale 4 is above it
    ]
    run = receive(promptly(arriving), frame_count=5)
    assert run.echo_list() == [(1, 3, deadline(1)), (3, 2, deadline(3))]
    assert [s.echo_sent for s in run.shown()] == [False, True, False, True, False]
    assert [s.first_desynced_scale for s in run.shown()] == [IN_SYNC, 3, 3, 2, 2]
    assert [s.scales_received for s in run.shown()] == [4, 3, 4, 3, 3]
    assert [s.scales_decoded for s in run.shown()] == [4, 2, 2, 1, 1]


def test_the_echo_is_repeated_after_the_echo_timeout_while_d_stays_low() -> None:
    frames = frame_packets(7)
    arriving = [frames[0], without_scales(frames[1], 3), *frames[2:]]
    run = receive(promptly(arriving), frame_count=7, echo_timeout_s=0.08)  # two frames
    assert run.echo_list() == [(1, 3, deadline(1)), (3, 3, deadline(3)), (5, 3, deadline(5))]
    assert [s.echo_sent for s in run.shown()] == [False, True, False, True, False, True, False]


def test_a_usable_resync_frame_stops_the_repeats() -> None:
    frames = frame_packets(7, resync={3: 3})
    arriving = [frames[0], without_scales(frames[1], 3), *frames[2:]]
    run = receive(promptly(arriving), frame_count=7, echo_timeout_s=0.08)
    assert run.echo_list() == [(1, 3, deadline(1))]
    assert [s.first_desynced_scale for s in run.shown()] == [IN_SYNC, 3, 3] + [IN_SYNC] * 4


def test_an_unusable_resync_frame_makes_the_receiver_echo_again() -> None:
    frames = frame_packets(5, resync={3: 3})
    arriving = [
        frames[0],
        without_scales(frames[1], 3),
        frames[2],
        without_scales(frames[3], 4),
        frames[4],
    ]
    run = receive(promptly(arriving), frame_count=5)  # no timeout
    assert run.echo_list() == [(1, 3, deadline(1)), (3, 4, deadline(3))]


def test_no_echo_is_repeated_without_an_echo_timeout() -> None:
    frames = frame_packets(7)
    arriving = [frames[0], without_scales(frames[1], 3), *frames[2:]]
    run = receive(promptly(arriving), frame_count=7, echo_timeout_s=None)
    assert run.echo_list() == [(1, 3, deadline(1))]
    assert [s.first_desynced_scale for s in run.shown()] == [IN_SYNC] + [3] * 6


def test_decode_time_delays_the_echo_but_not_the_start_of_decoding() -> None:
    frames = frame_packets(3)
    arriving = [frames[0], without_scales(frames[1], 2), frames[2]]
    run = receive(promptly(arriving), frame_count=3, decode_time_s=0.005)
    assert run.decoder.times == pytest.approx(
        [deadline(i) + SIMULTANEITY_S for i in range(3)], abs=1e-12
    )
    assert run.echo_list() == [(1, 2, deadline(1) + 0.005)]
    assert {s.decode_time_s for s in run.shown()} == {0.005}


def test_with_send_echoes_off_no_echo_leaves_and_none_is_recorded() -> None:
    frames = frame_packets(3)
    arriving = [frames[0], without_scales(frames[1], 2), frames[2]]
    run = receive(promptly(arriving), frame_count=3, send_echoes=False)
    assert run.echo_list() == []
    assert [s.echo_sent for s in run.shown()] == [False, False, False]
    assert [s.first_desynced_scale for s in run.shown()] == [IN_SYNC, 2, 2]


def test_the_receivers_half_is_recorded_once_per_frame_in_frame_order() -> None:
    frames = frame_packets(3)
    run = receive(promptly([frames[0], without_scales(frames[1], 4), frames[2]]), frame_count=3)
    assert run.frames.log == [
        (0, ShownFrame(4, 4, IN_SYNC, False, 0.0, concealed=False, frozen=False)),
        (1, ShownFrame(3, 3, 4, True, 0.0, concealed=True, frozen=False)),
        (2, ShownFrame(4, 3, 4, False, 0.0, concealed=True, frozen=False)),
    ]
    assert run.frames.sent_frames == {}  # the receiver records only its own half


def test_frame_headers_reach_the_decoder_from_the_packets() -> None:
    frames = frame_packets(3, resync={2: 2})
    run = receive(promptly(frames), frame_count=3)
    assert [(r.frame_type, r.resync_from, r.lam) for r in run.decoder.received] == [
        (FrameType.I, 1, 1024.0),
        (FrameType.P, 0, 1024.0),
        (FrameType.R, 2, 1024.0),
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"playout_delay_s": -0.001}, "playout_delay_s"),
        ({"decode_time_s": -0.001}, "decode_time_s"),
        ({"echo_timeout_s": 0.0}, "echo_timeout_s"),
        ({"echo_timeout_s": -1.0}, "echo_timeout_s"),
        ({"decode_wait_s": -0.001}, "decode_wait_s"),
    ],
)
def test_impossible_settings_are_refused(options: dict[str, float], message: str) -> None:
    settings = {"playout_delay_s": PLAYOUT_DELAY_S, **options}
    with pytest.raises(ValueError, match=message):
        Receiver(
            simpy.Environment(),
            codec=fake_codec(decoder=FakeDecoder()),  # type: ignore[arg-type]
            feedback=FeedbackLink(delay_s=0.0, loss=NoLoss()),
            trace=PacketTrace(),
            frames=FrameTrace(),
            frame_count=1,
            fps=FPS,
            **settings,  # type: ignore[arg-type]
        )


def test_packets_arriving_after_the_deadline_are_late_even_when_the_receiver_is_behind() -> None:
    frames = frame_packets(2)
    # frame 0 takes 0.06 s to decode (0.1 .. 0.16); frame 1's deadline is 0.14
    arrivals = [(0.01, p) for p in frames[0]] + [(0.15, p) for p in frames[1]]
    run = receive(arrivals, frame_count=2, decode_time_s=0.06)
    assert run.decoder.received[1].scales == {}
    assert {r.fate for r in run.trace.records() if r.frame == 1} == {Fate.LATE}


def test_with_a_decode_wait_a_frame_is_decoded_that_long_after_its_first_packet() -> None:
    frames = frame_packets(3)
    arriving = [frames[0], without_scales(frames[1], 1), frames[2]]
    run = receive(promptly(arriving), frame_count=3, decode_wait_s=0.005)
    first = [i / FPS + 0.01 for i in range(3)]
    assert run.decoder.times == pytest.approx(
        [t + 0.005 + SIMULTANEITY_S for t in first], abs=1e-12
    )
    # the echo of frame 1's loss leaves at once, not at the deadline (0.14)
    assert run.echo_list() == [(1, 1, pytest.approx(first[1] + 0.005 + SIMULTANEITY_S))]
    assert run.shown_decoded == [0, 1, 2]


def test_with_a_decode_wait_a_packet_after_the_early_decode_is_late() -> None:
    frames = frame_packets(1)
    (packets,) = frames
    straggler = packets[-1]
    arrivals = [(0.01, p) for p in packets[:-1]] + [(0.03, straggler)]
    run = receive(arrivals, frame_count=1, decode_wait_s=0.005)
    assert run.decoder.times == pytest.approx([0.015 + SIMULTANEITY_S], abs=1e-12)
    assert {r.seq: r.fate for r in run.trace.records()}[straggler.seq] is Fate.LATE
    # without the wait it would have been in time
    assert receive(arrivals, frame_count=1).trace.records()[-1].fate is Fate.DELIVERED


def test_with_a_decode_wait_a_frame_without_packets_waits_for_a_later_frames_or_its_deadline() -> (
    None
):
    frames = frame_packets(3)
    arrivals = promptly([frames[0], [], frames[2]])
    sent = [*frames[0], *frames[1], *frames[2]]
    run = receive(arrivals, frame_count=3, sent=sent, decode_wait_s=0.005)
    # frame 1 is given up 5 ms after frame 2's first packet, and frame 2 decoded with it
    ready_2 = 2 / FPS + 0.015 + SIMULTANEITY_S
    assert run.decoder.times == pytest.approx([0.015 + SIMULTANEITY_S, ready_2, ready_2])
    assert run.echo_list()[0][:2] == (1, 1)
    lost_at_end = receive(promptly(frames[:2]), frame_count=3, sent=sent, decode_wait_s=0.005)
    assert lost_at_end.decoder.times[2] == pytest.approx(deadline(2) + SIMULTANEITY_S, abs=1e-12)
    slow = receive(promptly(frames), frame_count=3, decode_wait_s=0.5)
    assert slow.decoder.times == pytest.approx(
        [deadline(i) + SIMULTANEITY_S for i in range(3)], abs=1e-12
    )


def test_with_a_decode_wait_reordering_beyond_the_wait_makes_packets_late() -> None:
    frames = frame_packets(2)
    arrivals = [(0.05, p) for p in frames[1]] + [(0.07, p) for p in frames[0]]
    run = receive(arrivals, frame_count=2, decode_wait_s=0.001)
    assert run.shown_decoded == [0, 1]
    assert run.decoder.times == pytest.approx([0.051 + SIMULTANEITY_S] * 2, abs=1e-12)
    assert run.decoder.received[0].scales == {}
    fates = {r.seq: r.fate for r in run.trace.records()}
    assert {fates[p.seq] for p in frames[0]} == {Fate.LATE}
    patient = receive(arrivals, frame_count=2, decode_wait_s=0.03)
    assert patient.decoder.times == pytest.approx([0.08 + SIMULTANEITY_S] * 2, abs=1e-12)
    assert sorted(patient.decoder.received[0].scales) == [1, 2, 3, 4]
