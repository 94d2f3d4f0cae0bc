"""Concealment (issue 18 item 3): the shown picture is chosen from what the decoder knows and
never changes the decoder's references."""

from __future__ import annotations

import numpy as np

from codec.types import ReceivedFrame
from netsim.codecs.dhvc import DhvcAdapter
from netsim.concealment import Concealment, ConcealmentRule
from netsim.damage import ShownKind
from tests.netsim.fakes import FakeDecoder, FakeEncoder


def picture(value: float) -> np.ndarray:
    return np.full((8, 8, 3), value, np.float32)


def test_scale_1_substituted_repeats_the_last_shown_picture() -> None:
    concealment = Concealment()
    shown, kind = concealment.show(picture(0.2), None)
    assert kind is ShownKind.DECODED and float(shown[0, 0, 0]) == np.float32(0.2)
    shown, kind = concealment.show(picture(0.9), 1)
    assert kind is ShownKind.REPEATED and float(shown[0, 0, 0]) == np.float32(0.2)
    shown, kind = concealment.show(picture(0.5), 4)  # only scale 4 substituted: decoded
    assert kind is ShownKind.DECODED and float(shown[0, 0, 0]) == np.float32(0.5)


def test_the_first_frame_is_shown_as_decoded_even_without_scale_1() -> None:
    shown, kind = Concealment().show(picture(0.3), 1)
    assert kind is ShownKind.DECODED


def test_a_blend_rule_mixes_the_decoded_and_the_last_shown_picture() -> None:
    concealment = Concealment(ConcealmentRule(repeat_up_to_scale=0, blend_up_to_scale=2))
    concealment.show(picture(0.0), None)
    shown, kind = concealment.show(picture(1.0), 2)
    assert kind is ShownKind.BLENDED and float(shown[0, 0, 0]) == 0.5


def test_concealment_never_changes_what_the_decoder_is_given() -> None:
    encoder = FakeEncoder()
    plain, concealing = FakeDecoder(), FakeDecoder()
    adapters = [
        DhvcAdapter(encoder, plain),
        DhvcAdapter(encoder, concealing, concealment=Concealment()),
    ]
    frames = [encoder.encode(i, None) for i in range(4)]
    kept = [{1, 2, 3, 4}, {2, 3, 4}, set(), {1, 2, 3, 4}]
    shown = []
    for frame, scales in zip(frames, kept, strict=True):
        received = frame.received(scales) if scales else ReceivedFrame.nothing(frame.frame_index)
        results = [adapter.decode(received) for adapter in adapters]
        assert results[0].first_desynced_scale == results[1].first_desynced_scale
        shown.append(results[1].shown)
    assert plain.received == concealing.received
    # frame 3 arrives whole, but the decoder is still desynchronised from scale 1
    assert shown == [ShownKind.DECODED] + [ShownKind.REPEATED] * 3


def test_a_lost_frame_of_a_moving_scene_is_extrapolated_then_held() -> None:
    from tests.netsim.test_motion import frame, psnr, texture

    scene = texture()
    frames = [frame(scene, 0, 2 * t) for t in range(5)]
    concealment = Concealment()
    concealment.show(frames[0], None)
    concealment.show(frames[1], None)
    shown, kinds = [], []
    for t in (2, 3, 4):  # scale 1 lost three times in a row
        picture_t, kind = concealment.show(np.zeros_like(frames[t]), 1)
        shown.append(picture_t)
        kinds.append(kind)
    assert kinds == [ShownKind.EXTRAPOLATED, ShownKind.EXTRAPOLATED, ShownKind.REPEATED]
    assert psnr(shown[0], frames[2]) > psnr(frames[1], frames[2]) + 3
    assert shown[2] is shown[1]  # past extrapolate_frames the last shown picture is held


def test_a_frame_that_brought_its_motion_moves_the_last_shown_picture_along_it() -> None:
    from codec.stream.motion import estimate_motion as block_motion
    from codec.stream.motion import motion_luma
    from tests.netsim.test_motion import frame, psnr, texture

    scene = texture()
    frames = [frame(scene, 0, 8 * t) for t in range(5)]  # 8 px right per frame
    fields = [
        block_motion(motion_luma(frames[t]), motion_luma(frames[t - 1]), 96, 128)
        for t in range(1, 5)
    ]
    concealment = Concealment()
    concealment.show(frames[0], None)
    concealment.show(frames[1], None)
    lost = np.zeros_like(frames[0])
    held, kind = concealment.show(lost, 1)  # scale 1 lost: no field, extrapolated
    assert kind is ShownKind.EXTRAPOLATED
    moved, kind = concealment.show(lost, 1, fields[2])  # frame 3 brought its field
    assert kind is ShownKind.MOVED
    assert psnr(moved, frames[3]) > psnr(held, frames[3]) + 3
    still = np.zeros_like(fields[3])
    assert concealment.show(lost, 1, still)[1] is ShownKind.REPEATED  # a zero field: the rule
    assert concealment.show(frames[4], None, fields[3])[1] is ShownKind.DECODED


def test_a_field_that_moves_few_blocks_is_not_followed() -> None:
    concealment = Concealment(ConcealmentRule(extrapolate_frames=0, min_moved_share=0.5))
    concealment.show(picture(0.2), None)
    few = np.zeros((2, 2, 2), np.int8)
    few[0, 0] = (1, 0)  # one block of four moves
    assert concealment.show(picture(0.9), 1, few)[1] is ShownKind.REPEATED
    few[1, 1] = (0, -1)  # two of four: half the blocks
    assert concealment.show(picture(0.9), 1, few)[1] is ShownKind.MOVED


def test_no_extrapolation_without_two_consecutive_decoded_pictures() -> None:
    from tests.netsim.test_motion import frame, texture

    scene = texture()
    concealment = Concealment()
    concealment.show(frame(scene, 0, 0), None)
    lost = np.zeros_like(frame(scene, 0, 0))
    assert concealment.show(lost, 1)[1] is ShownKind.REPEATED  # only one decoded picture
    concealment.show(frame(scene, 0, 4), None)
    _, kind = concealment.show(lost, 1)  # the decoded pair is two frames apart
    assert kind is ShownKind.REPEATED
    off = Concealment(ConcealmentRule(extrapolate_frames=0))
    off.show(frame(scene, 0, 0), None)
    off.show(frame(scene, 0, 2), None)
    assert off.show(lost, 1)[1] is ShownKind.REPEATED
