"""Block motion of the temporal references (codec.stream.motion, DESIGN 3): estimation, the
section that carries a field, the integer shifts, and both sides of the channel agreeing bit for
bit, after losses and in the encoder's mirror."""

from __future__ import annotations

import io
import struct
import zlib
from fractions import Fraction

import numpy as np
import pytest
import torch

from codec import NUM_SCALES, Decoder, Encoder
from codec.stream.bitstream import StreamHeader, check_payloads, read_stream, write_frame
from codec.stream.motion import (
    MAX_UNITS,
    MotionError,
    estimate_motion,
    max_section_bytes,
    motion_grid,
    motion_luma,
    pack_motion,
    shift_features,
    shift_picture,
    unpack_motion,
    zero_field,
)
from codec.types import ScaleOutcome, ScalePayload
from tests.codec.conftest import pan

LAM = 512.0
ALL = set(range(1, NUM_SCALES + 1))


def test_estimation_finds_the_blocks_shift_and_stays_still_on_a_still_picture():
    clip = pan(2, (16, -8), size=(192, 256))
    cur, ref = (motion_luma(f) for f in (clip[1], clip[0]))
    field = estimate_motion(cur, ref, 192, 256)
    assert field.shape == (*motion_grid(192, 256), 2) == (3, 4, 2)
    # the picture moved right 16 px and up 8: each block's reference lies 2 units left, 1 below
    assert (field[..., 0] == -2).all() and (field[..., 1] == 1).all()
    still = estimate_motion(cur, cur, 192, 256)
    assert not still.any()
    with pytest.raises(ValueError, match="differ in shape"):
        estimate_motion(cur, ref[:-2], 192, 256)


def test_sections_round_trip_and_the_zero_field_costs_one_word():
    field = zero_field(70, 96)
    assert field.shape == (2, 2, 2)
    assert pack_motion(field) == bytes(4)
    rng = np.random.default_rng(1)
    field = rng.integers(-MAX_UNITS, MAX_UNITS + 1, size=(5, 9, 2)).astype(np.int8)
    section = pack_motion(field)
    assert len(section) % 4 == 0 and len(section) <= max_section_bytes(300, 560)
    back, rest = unpack_motion(section + b"rest", 300, 560)
    assert np.array_equal(back, field) and rest == b"rest"
    with pytest.raises(ValueError, match="within"):
        pack_motion(np.full((2, 2, 2), MAX_UNITS + 1))


def _section(raw: bytes, junk: bytes = b"") -> bytes:
    data = zlib.compress(raw) + junk
    return struct.pack("<I", len(data)) + data + bytes(-len(data) % 4)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x00\x00", "too short"),
        (struct.pack("<I", 1000) + bytes(8), "does not fit"),
        (struct.pack("<I", 4) + b"\xff\xff\xff\xff", "does not inflate"),
        (_section(bytes([0x88]) * 3), "exactly 4 blocks"),
        (_section(bytes([0x88]) * 5), "exactly 4 blocks"),
        (_section(bytes([0x88]) * 4, junk=b"junk"), "exactly 4 blocks"),
        (_section(bytes([0x08, 0x88, 0x88, 0x88])), "exceeds"),
        (struct.pack("<I", 3) + zlib.compress(b"")[:3] + b"\x07", "padding"),
    ],
)
def test_malformed_sections_are_refused(payload, message):
    with pytest.raises(MotionError, match=message):
        unpack_motion(payload, 70, 96)  # 2 x 2 blocks


def test_features_shift_by_whole_feature_pixels_and_round_at_coarse_strides():
    feat = torch.arange(2 * 8 * 8, dtype=torch.float32).view(1, 2, 8, 8)
    field = np.zeros((1, 1, 2), np.int8)
    field[0, 0] = (2, -1)  # 16 px right, 8 px up at stride 8: (2, -1) feature pixels
    out = shift_features(feat, field, 8)
    rows = np.clip(np.arange(8) - 1, 0, 7)
    cols = np.clip(np.arange(8) + 2, 0, 7)
    assert torch.equal(out, feat[:, :, rows][:, :, :, cols])
    coarse = shift_features(feat, field, 16)  # 1 and -0.5 feature pixels: halves round away
    rows = np.clip(np.arange(8) - 1, 0, 7)
    cols = np.clip(np.arange(8) + 1, 0, 7)
    assert torch.equal(coarse, feat[:, :, rows][:, :, :, cols])
    assert torch.equal(shift_features(feat, np.zeros((1, 1, 2), np.int8), 8), feat)


def test_each_block_moves_only_its_own_features():
    feat = torch.randn(1, 3, 16, 16)
    field = np.zeros((2, 2, 2), np.int8)
    field[1, 1] = (1, 1)  # the bottom-right 64-px block: 8 x 8 features at stride 8
    out = shift_features(feat, field, 8)
    assert torch.equal(out[..., :8, :], feat[..., :8, :])
    assert torch.equal(out[..., :, :8], feat[..., :, :8])
    assert torch.equal(out[..., 8:15, 8:15], feat[..., 9:16, 9:16])


def test_a_picture_moves_block_by_block_in_whole_pixels():
    picture = np.random.default_rng(0).random((70, 130, 3)).astype(np.float32)
    field = np.zeros((2, 3, 2), np.int8)
    field[0, 1] = (-1, 2)  # the block at rows 0-63, columns 64-127 came from 8 px left, 16 below
    moved = shift_picture(picture, field)
    assert moved.shape == picture.shape and moved.dtype == picture.dtype
    assert np.array_equal(moved[:64, :64], picture[:64, :64])
    assert np.array_equal(moved[:54, 64:128], picture[16:70, 56:120])
    assert np.array_equal(moved[54:64, 64:128], np.repeat(picture[69:70, 56:120], 10, 0))
    assert np.array_equal(shift_picture(picture, np.zeros((2, 3, 2), np.int8)), picture)


def test_a_desynchronised_decoder_still_reports_the_field_a_frame_carried(tiny_model, pan_clip):
    h, w = pan_clip.shape[1:3]
    enc, dec = Encoder(tiny_model, gop=64), Decoder(tiny_model, h, w)
    coded = [enc.encode(f, LAM) for f in pan_clip[:4]]
    shown = [dec.decode(coded[0].received()), dec.decode(coded[1].received(ALL - {1}))]
    shown += [dec.decode(c.received()) for c in coded[2:]]
    assert shown[0].motion is None or not shown[0].motion.any()  # the I frame
    assert shown[1].motion is None  # scale 1 lost
    for t in (2, 3):  # out of sync from scale 1: nothing decoded, the field still read
        assert shown[t].scales_decoded == 0
        sent = unpack_motion(coded[t].scales[0].data, h, w)[0]
        assert sent.any() and np.array_equal(shown[t].motion, sent)


def _code(model, clip, motion, lose=None):
    h, w = clip.shape[1:3]
    enc, dec = Encoder(model, gop=64, motion=motion), Decoder(model, h, w)
    coded, decoded = [], []
    for i, frame in enumerate(clip):
        encoded = enc.encode(frame, LAM)
        coded.append(encoded)
        decoded.append(dec.decode(encoded.received((lose or {}).get(i, ALL))))
    return coded, decoded


def test_moving_clips_carry_fields_and_decode_bit_exactly(tiny_model, pan_clip):
    coded, decoded = _code(tiny_model, pan_clip, motion=True)
    h, w = pan_clip.shape[1:3]
    fields = [unpack_motion(c.scales[0].data, h, w)[0] for c in coded]
    assert not fields[0].any()  # the I frame
    assert all(f.any() for f in fields[1:])
    for c, d in zip(coded, decoded, strict=True):
        assert np.array_equal(c.x_hat, d.x_hat)
    off, _ = _code(tiny_model, pan_clip, motion=False)
    assert all(c.scales[0].data[:4] == bytes(4) for c in off)
    assert not np.array_equal(off[3].x_hat, coded[3].x_hat)  # the field changed the prediction


def test_a_decoder_that_cannot_decode_scale_1_uses_the_zero_field(tiny_model, pan_clip):
    h, w = pan_clip.shape[1:3]
    enc = Encoder(tiny_model, gop=64)
    frames = [enc.encode(f, LAM) for f in pan_clip[:3]]
    for lost in (set(), {1}):
        dec = Decoder(tiny_model, h, w)
        dec.decode(frames[0].received())
        dec.decode(frames[1].received())
        state = dec._ctx.state.copy()
        result = dec.decode(frames[2].received(ALL - lost))
        if lost:
            assert result.outcomes[0] is ScaleOutcome.MISSING
            # the references it kept are those of an unshifted state
            zero = Decoder(tiny_model, h, w, context=dec._ctx.with_state(state.copy()))
            zero.last_lambda = LAM
            blank = frames[2].received(set())
            assert np.array_equal(zero.decode(blank).x_hat, result.x_hat)
        else:
            assert np.array_equal(result.x_hat, frames[2].x_hat)


def test_a_section_that_does_not_parse_leaves_scale_1_corrupt(tiny_model, pan_clip):
    h, w = pan_clip.shape[1:3]
    enc = Encoder(tiny_model, gop=64)
    first, second = (enc.encode(f, LAM) for f in pan_clip[:2])
    bad = struct.pack("<I", 4) + b"\xff\xff\xff\xff" + second.scales[0].data[4:]
    forged = second.received()
    forged = type(forged)(
        forged.frame_index,
        forged.lam,
        forged.resync_from,
        forged.frame_type,
        {**forged.scales, 1: ScalePayload(bad, zlib.crc32(bad), second.scales[0].sync_tag)},
    )
    dec = Decoder(tiny_model, h, w)
    dec.decode(first.received())
    result = dec.decode(forged)
    assert result.outcomes[0] is ScaleOutcome.CORRUPT
    assert result.first_desynced_scale == 1


def test_files_carry_the_fields_and_the_payload_bound_counts_the_section(tiny_model, pan_clip):
    h, w = pan_clip.shape[1:3]
    coded, _ = _code(tiny_model, pan_clip[:3], motion=True)
    out = io.BytesIO()
    header = StreamHeader("tiny-random", w, h, Fraction(25), 64)
    out.write(header.pack())
    for c in coded:
        write_frame(out, c)
    out.seek(0)
    frames = list(read_stream(out)[1])
    check_payloads(header, frames, tiny_model.config)
    dec = Decoder(tiny_model, h, w)
    for c, (head, payloads) in zip(coded, frames, strict=True):
        assert np.array_equal(dec.decode(head.received(payloads)).x_hat, c.x_hat)
