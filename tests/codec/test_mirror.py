"""Mirrored recovery (DESIGN 3): the encoder rebuilds a decoder's state after a loss bit for bit
and codes an ordinary inter frame (M) against it; a decoder in another state never decodes it."""

from __future__ import annotations

import io
from fractions import Fraction

import numpy as np
import pytest

from codec import IN_SYNC, NUM_SCALES, Decoder, Encoder, FrameType, ReceivedFrame, load_model
from codec.io.video import read_frames
from codec.stream.bitstream import FrameHeader, StreamHeader, read_stream, write_frame
from codec.stream.motion import unpack_motion
from codec.types import MAX_MIRROR_AGE, ScaleOutcome
from tests.codec.conftest import states_equal

LAM = 512.0
ALL = set(range(1, NUM_SCALES + 1))


def _lose(kept_per_frame: dict[int, set[int]], i: int) -> set[int]:
    return kept_per_frame.get(i, ALL)


CASES = [
    *((k, {2: ALL - {k}}) for k in range(1, NUM_SCALES + 1)),  # (2, k): scale k lost at 2
    (0, {2: ALL - {1}}),  # (2, 0), the state kept from before frame 2, after losing scale 1
    (0, {2: ALL - {4}}),
    (0, {2: ALL - {3}, 3: ALL - {1}}),  # a second drop at 3: no (2, j) state, (2, 0) still held
]


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize(
    ("j", "losses"), CASES, ids=["2-1", "2-2", "2-3", "2-4", "kept-1", "kept-4", "kept-2nd"]
)
@pytest.mark.parametrize("moving", [False, True], ids=["bikes", "moving"])
def test_mirrored_state_equals_the_decoders_bit_for_bit_and_one_m_frame_resyncs(
    tiny_model, bikes_frames, pan_clip, threads, j, losses, moving
):
    clip = pan_clip if moving else bikes_frames  # moving: every inter frame has a motion field
    h, w = clip.shape[1:3]
    enc, dec = Encoder(tiny_model, gop=64), Decoder(tiny_model, h, w)
    lost_at, mirror_at = 2, 5
    for i, frame in enumerate(clip):
        if i == lost_at:
            kept = dec._ctx.state.copy()
        if i == mirror_at:
            mirrored = enc.mirrored_state(lost_at, j)
            assert mirrored is not None
            if j:
                assert dec.mirror_state == (lost_at, j)
            assert states_equal(mirrored, dec._ctx.state if j else kept)
        encoded = enc.encode(frame, LAM, mirror=(lost_at, j) if i == mirror_at else None)
        decoded = dec.decode(encoded.received(_lose(losses, i)))
        if i == mirror_at:
            assert encoded.frame_type is FrameType.M
            assert (encoded.mirror_from, encoded.resync_from) == (lost_at, j)
            assert decoded.outcomes == (ScaleOutcome.DECODED,) * NUM_SCALES
        if moving and i:
            assert unpack_motion(encoded.scales[0].data, h, w)[0].any()
        if i < lost_at or i >= mirror_at:
            assert decoded.first_desynced_scale == IN_SYNC
            assert dec.mirror_state is None
            assert np.array_equal(decoded.x_hat, encoded.x_hat), f"frame {i} differs"
        elif j:
            assert decoded.first_desynced_scale == j
            assert decoded.desynced_since == lost_at


REFUSING = {
    (2, 3): {  # the decoders' states at frame 4, when the M frame assuming (2, 3) arrives
        "in sync": {},
        "(2, 2)": {2: {1}},
        "(3, 3)": {3: {1, 2}},
        "(1, 3) then (2, 2)": {1: {1, 2}, 2: {1}},
    },
    (2, 0): {  # and those that kept no state from before frame 2
        "in sync": {},
        "desynchronised at 3": {3: {1}},
        "desynchronised at 1, then 2": {1: {1, 2}, 2: {1}},
    },
}


@pytest.mark.parametrize("mirror", sorted(REFUSING))
def test_an_m_frame_assuming_a_state_the_decoder_does_not_hold_is_never_decoded(
    tiny_model, bikes_frames, mirror
):
    h, w = bikes_frames.shape[1:3]
    enc = Encoder(tiny_model, gop=64)
    decoders = {
        name: (Decoder(tiny_model, h, w), losses) for name, losses in REFUSING[mirror].items()
    }
    for i, frame in enumerate(bikes_frames[:6]):
        encoded = enc.encode(frame, LAM, mirror=mirror if i == 4 else None)
        for name, (dec, losses) in decoders.items():
            before = dec.first_desynced_scale
            decoded = dec.decode(encoded.received(_lose(losses, i)))
            if i == 4:
                assert encoded.frame_type is FrameType.M
                assert all(o is ScaleOutcome.STATE_MISMATCH for o in decoded.outcomes), name
                assert decoded.scales_decoded == 0
                assert decoded.first_desynced_scale == 1  # every scale substituted
                assert decoded.echo_scale == 1, name  # it echoes its own state again
                assert decoded.x_hat.shape == frame.shape  # a picture is still shown
                assert before != IN_SYNC or decoded.desynced_since is None
            if i == 5:
                assert decoded.outcomes[0] is not ScaleOutcome.DECODED, name


def test_a_lost_m_frame_is_answered_by_mirroring_again(tiny_model, bikes_frames):
    """Scale 1 lost at frame 1: state (1, 1). The M frame at 3 is lost whole, so the state
    stays (1, 1) and the M frame at 5 assuming it again puts the decoder back in sync."""
    h, w = bikes_frames.shape[1:3]
    enc, dec = Encoder(tiny_model, gop=64), Decoder(tiny_model, h, w)
    for i, frame in enumerate(bikes_frames[:7]):
        encoded = enc.encode(frame, LAM, mirror=(1, 1) if i in (3, 5) else None)
        if i == 3:
            decoded = dec.decode(ReceivedFrame.nothing(i))
        else:
            decoded = dec.decode(encoded.received(ALL - {1} if i == 1 else None))
        if 1 <= i < 5:
            assert dec.mirror_state == (1, 1)
        if i >= 5:
            assert encoded.frame_type is (FrameType.M if i == 5 else FrameType.P)
            assert decoded.first_desynced_scale == IN_SYNC
            assert np.array_equal(decoded.x_hat, encoded.x_hat), f"frame {i} differs"


def test_an_m_frame_missing_a_scale_leaves_a_state_that_mirrors_again(tiny_model, bikes_frames):
    """Scale 3 lost at 1; the M frame at 3 arrives without scale 4: state (3, 4), which the
    encoder rebuilds from its own mirrored state; the M frame at 5 resyncs."""
    h, w = bikes_frames.shape[1:3]
    enc, dec = Encoder(tiny_model, gop=64), Decoder(tiny_model, h, w)
    losses = {1: ALL - {3}, 3: ALL - {4}}
    for i, frame in enumerate(bikes_frames[:7]):
        mirror = {3: (1, 3), 5: (3, 4)}.get(i)
        if mirror is not None:
            assert states_equal(enc.mirrored_state(*mirror), dec._ctx.state)
        encoded = enc.encode(frame, LAM, mirror=mirror)
        decoded = dec.decode(encoded.received(_lose(losses, i)))
        if i == 3:
            assert decoded.outcomes[:3] == (ScaleOutcome.DECODED,) * 3
            assert dec.mirror_state == (3, 4)
    assert decoded.first_desynced_scale == IN_SYNC
    assert np.array_equal(decoded.x_hat, encoded.x_hat)


def test_a_second_drop_leaves_no_state_to_mirror(tiny_model, bikes_frames):
    h, w = bikes_frames.shape[1:3]
    enc, dec = Encoder(tiny_model, gop=64), Decoder(tiny_model, h, w)
    for i, frame in enumerate(bikes_frames[:4]):
        dec.decode(enc.encode(frame, LAM).received({1: ALL - {4}, 2: {1}}.get(i, ALL)))
    assert dec.first_desynced_scale == 2
    assert dec.mirror_state is None


@pytest.mark.parametrize(
    ("mirror", "gop", "expected"),
    [
        ((1, 2), 64, FrameType.M),
        ((0, 2), 64, FrameType.M),  # frame 0 (an I frame) lost scale 2: its header arrived
        ((0, 1), 64, FrameType.R),  # a decoder that lost scale 1 of an I frame may lack its header
        ((2, 1), 3, FrameType.R),  # an I frame (3) since: a reset the decoder may not have seen
        ((4, 2), 64, FrameType.R),  # frame 4 is not coded yet
    ],
)
def test_a_state_the_encoder_cannot_rebuild_falls_back_to_a_resync(
    tiny_model, bikes_frames, mirror, gop, expected
):
    enc = Encoder(tiny_model, gop=gop)
    for frame in bikes_frames[:4]:
        enc.encode(frame, LAM)
    encoded = enc.encode(bikes_frames[4], LAM, mirror=mirror)
    assert encoded.frame_type is expected
    assert encoded.resync_from == mirror[1]


def test_a_state_older_than_the_history_falls_back_to_a_resync(tiny_model):
    enc = Encoder(tiny_model, gop=1000)
    frame = np.zeros((64, 64, 3), np.uint8)
    for _ in range(MAX_MIRROR_AGE + 2):
        enc.encode(frame, LAM)
    assert enc.mirrored_state(1, 2) is None
    assert enc.mirrored_state(2, 2) is not None
    assert enc.encode(frame, LAM, mirror=(1, 2)).frame_type is FrameType.R


@pytest.mark.parametrize("j", [2, 0])  # (1, 0): the state kept from before frame 1
def test_m_frames_travel_in_dhvc_files(tiny_model, bikes_frames, j):
    h, w = bikes_frames.shape[1:3]
    enc = Encoder(tiny_model, gop=64)
    out = io.BytesIO()
    out.write(StreamHeader("tiny-random", w, h, Fraction(25), 64).pack())
    for i, frame in enumerate(bikes_frames[:4]):
        write_frame(out, enc.encode(frame, LAM, mirror=(1, j) if i == 3 else None))
    out.seek(0)
    frames = list(read_stream(out)[1])
    last: FrameHeader = frames[-1][0]
    assert (last.frame_type, last.resync_from, last.mirror_from) == (FrameType.M, j, 1)
    assert frames[-1][0].received(frames[-1][1]).mirror_from == 1


def test_shipped_weights_mirror_bit_exactly():
    model = load_model()
    frames = read_frames("sample:bikes", max_frames=5, size=(64, 64))
    enc, dec = Encoder(model, gop=64), Decoder(model, 64, 64)
    for i, frame in enumerate(frames):
        if i == 4:
            assert states_equal(enc.mirrored_state(1, 2), dec._ctx.state)
        encoded = enc.encode(frame, 1024.0, mirror=(1, 2) if i == 4 else None)
        decoded = dec.decode(encoded.received(ALL - {2} if i == 1 else None))
    assert encoded.frame_type is FrameType.M
    assert decoded.first_desynced_scale == IN_SYNC
    assert np.array_equal(decoded.x_hat, encoded.x_hat)


def test_a_partly_lost_m_frame_against_a_kept_state_mirrors_again(tiny_model, bikes_frames):
    """Scale 2 lost at 1; the M frame (1, 0) at 3 arrives without scale 3: state (3, 3),
    which the encoder rebuilds by replaying frame 3 from the kept state; the M frame at 5
    resyncs."""
    h, w = bikes_frames.shape[1:3]
    enc, dec = Encoder(tiny_model, gop=64), Decoder(tiny_model, h, w)
    losses = {1: ALL - {2}, 3: ALL - {3}}
    for i, frame in enumerate(bikes_frames[:7]):
        mirror = {3: (1, 0), 5: (3, 3)}.get(i)
        if i == 5:
            assert dec.mirror_state == (3, 3)
            assert states_equal(enc.mirrored_state(3, 3), dec._ctx.state)
        encoded = enc.encode(frame, LAM, mirror=mirror)
        decoded = dec.decode(encoded.received(_lose(losses, i)))
        if mirror is not None:
            assert encoded.frame_type is FrameType.M
    assert decoded.first_desynced_scale == IN_SYNC
    assert np.array_equal(decoded.x_hat, encoded.x_hat)


def test_a_kept_state_before_an_i_or_r_frame_needs_an_echo_that_shows_its_header(
    tiny_model, bikes_frames
):
    enc = Encoder(tiny_model, gop=64)
    for i, frame in enumerate(bikes_frames[:4]):
        enc.encode(frame, LAM, resync_from=2 if i == 2 else None)
    # a decoder that received nothing of frame 2 took it for a P frame (no reset), so only an
    # echo from scale 2 or above (scale 1 of frame 2 decoded) vouches for the state after it
    assert enc.mirrored_state(0, 0) is None  # an I frame
    assert enc.mirrored_state(2, 0) is None  # an R frame
    assert enc.mirrored_state(2, 0, echoed=1) is None
    assert enc.mirrored_state(2, 0, echoed=2) is not None
    assert enc.mirrored_state(0, 0, echoed=3) is not None  # the I frame's empty state
    assert enc.mirrored_state(3, 0) is not None  # a P frame: whatever the echo
    assert enc.encode(bikes_frames[4], LAM, mirror=(2, 0)).frame_type is FrameType.R


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("moving", [False, True], ids=["bikes", "moving"])
def test_a_failed_recovery_leaves_a_kept_state_the_next_m_frame_assumes(
    tiny_model, bikes_frames, pan_clip, threads, moving
):
    """Scale 4 lost at frame 1; the M frame at 3 (against the state kept from before 1) loses
    scale 3: the decoder keeps the state it decoded frame 3 against, and the M frame at 5
    assumes (3, 0) and puts it back in sync, bit for bit."""
    clip = (pan_clip if moving else bikes_frames)[:7]
    h, w = clip.shape[1:3]
    enc, dec = Encoder(tiny_model, gop=64), Decoder(tiny_model, h, w)
    lost = {1: ALL - {4}, 3: ALL - {3}}
    mirrors = {3: (1, 0, 4), 5: (3, 0, 3)}
    for i, frame in enumerate(clip):
        f, j, echoed = mirrors.get(i, (None, None, None))
        if i == 5:
            assert dec.mirror_state == (3, 3)
            assert states_equal(enc.mirrored_state(3, 0, echoed=3), dec._before_desync[1])
            assert enc.mirrored_state(3, 0, echoed=1) is None  # scale 1 of the M frame lost
        mirror = None if f is None else (f, j)
        encoded = enc.encode(frame, LAM, mirror=mirror, echoed=echoed)
        decoded = dec.decode(encoded.received(_lose(lost, i)))
        if i in mirrors:
            assert encoded.frame_type is FrameType.M
            assert decoded.outcomes[0] is not ScaleOutcome.STATE_MISMATCH
        assert decoded.first_desynced_scale == (IN_SYNC, 4, 4, 3, 3, IN_SYNC, IN_SYNC)[i]
    assert decoded.first_desynced_scale == IN_SYNC
    assert np.array_equal(decoded.x_hat, encoded.x_hat)
    assert states_equal(enc._ctx.state, dec._ctx.state)


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
def test_an_r_frame_that_desyncs_leaves_its_reset_state_to_recover_from(
    tiny_model, bikes_frames, threads
):
    h, w = bikes_frames.shape[1:3]
    enc, dec = Encoder(tiny_model, gop=64), Decoder(tiny_model, h, w)
    for i, frame in enumerate(bikes_frames[:6]):
        if i == 4:
            assert states_equal(enc.mirrored_state(1, 0, echoed=3), dec._before_desync[1])
        encoded = enc.encode(
            frame,
            LAM,
            resync_from=2 if i == 1 else None,
            mirror=(1, 0) if i == 4 else None,
            echoed=3 if i == 4 else None,
        )
        decoded = dec.decode(encoded.received(ALL - {3} if i == 1 else ALL))
        if i in (1, 2, 3):
            assert dec.mirror_state == (1, 3)
    assert encoded.frame_type is FrameType.P
    assert decoded.first_desynced_scale == IN_SYNC
    assert np.array_equal(decoded.x_hat, encoded.x_hat)
