"""The sender on its own: frame clock, packets in scale order, its frame-trace half, echoes."""

from __future__ import annotations

import dataclasses

import pytest
import simpy

from codec.types import EncodedFrame, FrameType
from netsim.feedback import Echo, FeedbackLink
from netsim.loss import NoLoss
from netsim.packet import Packet
from netsim.sender import Sender, frame_capture_time_s
from netsim.trace import FrameTrace, SentFrame
from tests.netsim.fakes import FakeEncoder, fake_codec

FPS = 25.0  # frame i is captured at i * 0.04 s
MTU = 300  # 254 payload bytes per packet
SIZES = (40, 150, 600, 2500)  # 1 + 1 + 3 + 10 packets per frame at this MTU
PACKETS_PER_FRAME = 15
BITS = (320, 1200, 4800, 20000)


class RecordingLink:
    """Stands in for ``ForwardLink``: remembers each packet with its sending instant."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.sent: list[tuple[float, Packet]] = []

    def send(self, packet: Packet) -> None:
        self.sent.append((self.env.now, packet))


@dataclasses.dataclass
class Run:
    sender: Sender
    encoder: FakeEncoder
    link: RecordingLink
    frames: FrameTrace

    def frame_types(self) -> list[tuple[FrameType, int]]:
        sent = self.frames.sent_frames
        return [(sent[i].frame_type, sent[i].resync_from) for i in sorted(sent)]


def send(
    frame_count: int,
    *,
    echoes: tuple[tuple[float, Echo], ...] = (),
    gop: int = 32,
    **options: object,
) -> Run:
    """Run a Sender for ``frame_count`` frames; each (arrival time, echo) reaches it then."""
    env = simpy.Environment()
    encoder = FakeEncoder(SIZES, gop=gop)
    link = RecordingLink(env)
    feedback = FeedbackLink(delay_s=0.0, loss=NoLoss())
    for arrival_s, echo in echoes:
        feedback.send(dataclasses.replace(echo, send_time_s=arrival_s))
    frames = FrameTrace()
    sender = Sender(
        env,
        codec=fake_codec(encoder),
        link=link,  # type: ignore[arg-type]
        feedback=feedback,
        frames=frames,
        frame_count=frame_count,
        fps=FPS,
        mtu_bytes=MTU,
        **options,  # type: ignore[arg-type]
    )
    env.run()
    return Run(sender, encoder, link, frames)


def between_captures(frame: int) -> float:
    """An instant after frame ``frame - 1`` was captured and before frame ``frame`` is."""
    return (frame - 0.5) / FPS


def test_frame_capture_time_is_its_index_over_fps() -> None:
    assert [frame_capture_time_s(i, 25.0) for i in range(3)] == [0.0, 0.04, 0.08]
    assert frame_capture_time_s(3, 30.0) == 0.1


def test_frame_i_is_captured_and_sent_at_i_over_fps() -> None:
    run = send(4)
    for frame in range(4):
        times = {t for t, p in run.link.sent if p.frame_index == frame}
        assert times == {frame / FPS}
        assert run.frames.sent_frames[frame].capture_time_s == frame / FPS


def test_encode_time_delays_the_send_but_not_the_capture_time() -> None:
    run = send(3, encode_time_s=0.01)
    for frame in range(3):
        times = {t for t, p in run.link.sent if p.frame_index == frame}
        assert times == {frame / FPS + 0.01}
        assert run.frames.sent_frames[frame].capture_time_s == frame / FPS


def test_an_encode_time_longer_than_the_frame_interval_makes_the_sender_fall_behind() -> None:
    run = send(3, encode_time_s=0.05)  # frames arrive every 0.04 s, each takes 0.05 s
    times = [min(t for t, p in run.link.sent if p.frame_index == f) for f in range(3)]
    assert times == pytest.approx([0.05, 0.10, 0.15], abs=1e-12)
    assert [run.frames.sent_frames[f].capture_time_s for f in range(3)] == [0.0, 0.04, 0.08]


def test_packets_go_out_in_scale_order_with_consecutive_seq_across_frames() -> None:
    run = send(3)
    packets = [p for _, p in run.link.sent]
    assert [p.seq for p in packets] == list(range(3 * PACKETS_PER_FRAME))
    assert run.sender.next_seq == 3 * PACKETS_PER_FRAME
    one_frame = [(p.scale, p.fragment_index) for p in packets[:PACKETS_PER_FRAME]]
    assert one_frame == [(1, 0), (2, 0), *((3, i) for i in range(3)), *((4, i) for i in range(10))]
    for frame in range(3):
        chunk = packets[frame * PACKETS_PER_FRAME : (frame + 1) * PACKETS_PER_FRAME]
        assert {p.frame_index for p in chunk} == {frame}
        assert [(p.scale, p.fragment_index) for p in chunk] == one_frame


def test_the_senders_half_is_recorded_once_per_frame_with_what_it_encoded() -> None:
    run = send(3)
    assert run.frames.sent_frames == {
        0: SentFrame(FrameType.I, 1, 1024.0, BITS, 64, 0.0),
        1: SentFrame(FrameType.P, 0, 1024.0, BITS, 64, 0.04),
        2: SentFrame(FrameType.P, 0, 1024.0, BITS, 64, 0.08),
    }
    assert run.encoder.requests == [None, None, None]


def test_max_scales_sends_only_the_lower_scales_and_records_no_bits_above() -> None:
    run = send(2, max_scales=2)
    assert [(p.frame_index, p.scale) for _, p in run.link.sent] == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert [p.seq for _, p in run.link.sent] == [0, 1, 2, 3]
    assert {f.bits_per_scale for f in run.frames.sent_frames.values()} == {(320, 1200, 0, 0)}
    assert {f.units_sent for f in run.frames.sent_frames.values()} == {2}


def test_fec_settings_reach_the_packetizer() -> None:
    from netsim.fec import FecParams

    run = send(1, fec={1: FecParams(2, 1)})
    scale_1 = [p for _, p in run.link.sent if p.scale == 1]
    assert [(p.fragment_index, p.fragment_count, p.parity_count) for p in scale_1] == [
        (0, 2, 1),
        (1, 2, 1),
        (2, 2, 1),
    ]


def test_an_echo_makes_the_next_frame_a_resync_from_its_scale() -> None:
    run = send(6, echoes=((between_captures(4), Echo(2, 3, 0.0)),))
    assert run.encoder.requests == [None, None, None, None, 3, None]
    assert run.frame_types() == [
        (FrameType.I, 1),
        (FrameType.P, 0),
        (FrameType.P, 0),
        (FrameType.P, 0),
        (FrameType.R, 3),
        (FrameType.P, 0),
    ]
    assert {p.resync_from for _, p in run.link.sent if p.frame_index == 4} == {3}
    assert (run.sender.echoes_used, run.sender.echoes_stale) == (1, 0)


def test_an_echo_due_exactly_at_a_capture_instant_applies_to_that_frame() -> None:
    run = send(3, echoes=((2 / FPS, Echo(1, 2, 0.0)),))
    assert run.encoder.requests == [None, None, 2]


def test_several_pending_echoes_ask_for_the_smallest_scale() -> None:
    echoes = (
        (between_captures(5), Echo(2, 4, 0.0)),
        (between_captures(5), Echo(3, 2, 0.0)),
        (between_captures(5), Echo(4, 3, 0.0)),
    )
    run = send(6, echoes=echoes)
    assert run.encoder.requests == [None] * 5 + [2]
    assert run.frame_types()[5] == (FrameType.R, 2)
    assert (run.sender.echoes_used, run.sender.echoes_stale) == (3, 0)


def test_echoes_arriving_at_different_captures_each_get_a_resync() -> None:
    echoes = ((between_captures(2), Echo(1, 4, 0.0)), (between_captures(4), Echo(3, 2, 0.0)))
    run = send(5, echoes=echoes)
    assert run.encoder.requests == [None, None, 4, None, 2]
    assert (run.sender.echoes_used, run.sender.echoes_stale) == (2, 0)


def test_an_echo_older_than_a_resync_that_covered_its_scale_is_stale() -> None:
    echoes = (
        (between_captures(4), Echo(2, 3, 0.0)),  # frame 4 re-syncs scales 3 and 4
        (between_captures(6), Echo(3, 4, 0.0)),  # frame 3 < 4 and scale 4 >= 3: stale
    )
    run = send(7, echoes=echoes)
    assert run.encoder.requests == [None] * 4 + [3, None, None]
    assert (run.sender.echoes_used, run.sender.echoes_stale) == (1, 1)


def test_a_resync_covers_only_the_scales_from_its_resync_from_up() -> None:
    echoes = (
        (between_captures(4), Echo(2, 3, 0.0)),  # frame 4 re-syncs scales 3 and 4
        (between_captures(6), Echo(3, 2, 0.0)),  # scale 2 was not covered: used
    )
    run = send(7, echoes=echoes)
    assert run.encoder.requests == [None] * 4 + [3, None, 2]
    assert (run.sender.echoes_used, run.sender.echoes_stale) == (2, 0)


def test_an_echo_repeated_at_the_resync_frame_itself_is_not_stale() -> None:
    echoes = (
        (between_captures(4), Echo(2, 3, 0.0)),  # frame 4 re-syncs from 3
        (between_captures(6), Echo(4, 3, 0.0)),  # the receiver complains about frame 4
    )
    run = send(7, echoes=echoes)
    assert run.encoder.requests == [None] * 4 + [3, None, 3]
    assert (run.sender.echoes_used, run.sender.echoes_stale) == (2, 0)


def test_an_echo_from_before_an_i_frame_is_stale() -> None:
    run = send(6, gop=4, echoes=((between_captures(5), Echo(3, 2, 0.0)),))
    assert run.encoder.requests == [None] * 6
    assert run.frame_types()[4:] == [(FrameType.I, 1), (FrameType.P, 0)]
    assert (run.sender.echoes_used, run.sender.echoes_stale) == (0, 1)


def test_an_i_frame_satisfies_a_pending_request() -> None:
    run = send(6, gop=4, echoes=((between_captures(4), Echo(2, 3, 0.0)),))
    assert run.encoder.requests == [None] * 4 + [3, None]  # asked, but frame 4 is I anyway
    assert run.frame_types()[4:] == [(FrameType.I, 1), (FrameType.P, 0)]
    assert (run.sender.echoes_used, run.sender.echoes_stale) == (1, 0)


@pytest.mark.parametrize("scale", [0, 5])
def test_an_echo_of_a_scale_outside_1_to_k_is_stale(scale: int) -> None:
    run = send(3, echoes=((between_captures(2), Echo(1, scale, 0.0)),))
    assert run.encoder.requests == [None] * 3
    assert (run.sender.echoes_used, run.sender.echoes_stale) == (0, 1)


def test_an_echo_arriving_after_the_last_capture_is_never_used() -> None:
    run = send(3, echoes=((between_captures(3), Echo(1, 2, 0.0)),))
    assert run.encoder.requests == [None] * 3
    assert (run.sender.echoes_used, run.sender.echoes_stale) == (0, 0)


class WrongFrameEncoder(FakeEncoder):
    def encode(self, frame_index: int, resync_from: int | None) -> EncodedFrame:
        return super().encode(frame_index + 1, resync_from)


def test_an_encoder_that_returns_another_frame_is_refused() -> None:
    env = simpy.Environment()
    Sender(
        env,
        codec=fake_codec(WrongFrameEncoder()),
        link=RecordingLink(env),  # type: ignore[arg-type]
        feedback=FeedbackLink(delay_s=0.0, loss=NoLoss()),
        frames=FrameTrace(),
        frame_count=1,
        fps=FPS,
        mtu_bytes=MTU,
    )
    with pytest.raises(RuntimeError, match="encoder returned frame 1 for frame 0"):
        env.run()


@pytest.mark.parametrize(
    "options",
    [{"fps": 0.0}, {"fps": -25.0}, {"frame_count": -1}, {"encode_time_s": -0.001}],
)
def test_impossible_settings_are_refused(options: dict[str, float]) -> None:
    env = simpy.Environment()
    settings = {"frame_count": 1, "fps": FPS, **options}
    with pytest.raises(ValueError, match="fps > 0"):
        Sender(
            env,
            codec=fake_codec(),
            link=RecordingLink(env),  # type: ignore[arg-type]
            feedback=FeedbackLink(delay_s=0.0, loss=NoLoss()),
            frames=FrameTrace(),
            mtu_bytes=MTU,
            **settings,  # type: ignore[arg-type]
        )


def test_zero_frames_sends_nothing() -> None:
    run = send(0)
    assert run.link.sent == [] and run.frames.sent_frames == {}
