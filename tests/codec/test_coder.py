"""Encoder/Decoder behaviour under complete, partial and corrupted delivery (DESIGN 2-3)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from codec import (
    IN_SYNC,
    NUM_SCALES,
    Decoder,
    Encoder,
    FrameType,
    ReceivedFrame,
    ScaleOutcome,
    ScalePayload,
    load_model,
)
from codec.entropy.gaussian import slice_table_bytes
from codec.io.video import read_frames
from codec.model.config import get_preset
from codec.model.dhvc import DHVC

LAM = 512.0


def _pair(model, frames, gop=8):
    h, w = frames.shape[1:3]
    return Encoder(model, gop=gop), Decoder(model, h, w)


def test_decoder_is_bit_exact_with_encoder_over_a_gop_of_real_video(tiny_model, bikes_frames):
    enc, dec = _pair(tiny_model, bikes_frames)
    for i, frame in enumerate(bikes_frames):
        encoded = enc.encode(frame, LAM)
        assert encoded.frame_type is (FrameType.I if i == 0 else FrameType.P)
        decoded = dec.decode(encoded.received())
        assert decoded.x_hat.shape == frame.shape
        assert np.array_equal(decoded.x_hat, encoded.x_hat), f"frame {i} differs"
        assert decoded.outcomes == (ScaleOutcome.DECODED,) * NUM_SCALES
        assert decoded.first_desynced_scale == IN_SYNC
        assert decoded.echo_scale is None


def test_a_reset_decoder_decodes_a_new_stream_like_a_new_decoder(tiny_model, bikes_frames):
    enc, dec = _pair(tiny_model, bikes_frames)
    first = [enc.encode(frame, LAM) for frame in bikes_frames[:3]]
    dec.decode(first[0].received())
    dec.decode(first[1].received(scales={1}))  # scales 2-4 lost: desynchronised
    assert dec.first_desynced_scale != IN_SYNC and dec.last_lambda is not None
    dec.reset()
    assert (dec.first_desynced_scale, dec.desynced_since, dec.last_lambda) == (IN_SYNC, None, None)
    enc2, fresh = _pair(tiny_model, bikes_frames)
    for frame in bikes_frames[3:6]:
        encoded = enc2.encode(frame, LAM)
        got, want = dec.decode(encoded.received()), fresh.decode(encoded.received())
        assert np.array_equal(got.x_hat, want.x_hat) and got.outcomes == want.outcomes
        assert np.array_equal(got.x_hat, encoded.x_hat)


def test_payload_size_is_within_two_percent_of_estimated_bits(tiny_model, bikes_frames):
    enc = Encoder(tiny_model, gop=8)
    for frame in bikes_frames[:4]:
        encoded = enc.encode(frame, LAM)
        for actual, estimate in zip(encoded.payload_bits, encoded.estimated_bits, strict=True):
            # a one-slice scale: the slice table (count and length, 64 bits), then the range
            # coder flushes at most two 32-bit words beyond the information content
            coded = actual - 8 * slice_table_bytes(1)
            assert estimate <= coded <= 1.02 * estimate + 64


@pytest.mark.parametrize("k", range(1, NUM_SCALES + 1))
@pytest.mark.parametrize("t", [1, 3])
def test_withheld_scale_sets_D_and_a_resync_restores_bit_exactness(tiny_model, bikes_frames, k, t):
    enc, dec = _pair(tiny_model, bikes_frames)
    resync_at = t + 2
    for i, frame in enumerate(bikes_frames):
        encoded = enc.encode(frame, LAM, resync_from=k if i == resync_at else None)
        kept = set(range(1, NUM_SCALES + 1)) - ({k} if i == t else set())
        decoded = dec.decode(encoded.received(kept))
        if i < t:
            assert np.array_equal(decoded.x_hat, encoded.x_hat)
        elif i == t:
            assert decoded.outcomes[k - 1] is ScaleOutcome.MISSING
            assert all(o is ScaleOutcome.DECODED for o in decoded.outcomes[: k - 1])
            assert all(o is ScaleOutcome.SKIPPED for o in decoded.outcomes[k:])
            assert decoded.first_desynced_scale == k
            assert decoded.echo_scale == k
        elif i < resync_at:
            # scales >= D are never entropy-decoded while desynchronised; lower ones are
            assert all(o is ScaleOutcome.DECODED for o in decoded.outcomes[: k - 1])
            assert all(o is not ScaleOutcome.DECODED for o in decoded.outcomes[k - 1 :])
            assert decoded.first_desynced_scale == k
            assert decoded.echo_scale is None
        else:
            assert encoded.frame_type is (FrameType.R if i == resync_at else FrameType.P)
            assert decoded.first_desynced_scale == IN_SYNC
            assert np.array_equal(decoded.x_hat, encoded.x_hat), f"frame {i} not back in sync"


def test_resync_from_above_D_does_not_restore_sync(tiny_model, bikes_frames):
    enc, dec = _pair(tiny_model, bikes_frames)
    for i, frame in enumerate(bikes_frames[:5]):
        encoded = enc.encode(frame, LAM, resync_from=3 if i == 3 else None)
        decoded = dec.decode(encoded.received({1, 3, 4} if i == 1 else None))
    assert decoded.first_desynced_scale == 2
    assert all(o is not ScaleOutcome.DECODED for o in decoded.outcomes[1:])


def test_scale_with_foreign_sync_tag_is_never_entropy_decoded(tiny_model, bikes_frames):
    """A decoder whose prior differs (other weights) believes it is in sync: only the sync
    tag stands between it and silent garbage."""
    other = DHVC(tiny_model.config).eval()
    other.load_state_dict(tiny_model.state_dict())
    with torch.no_grad():
        for block in other.blocks:
            block.ctx_out.bias.add_(torch.linspace(-2.0, 2.0, block.ctx_out.bias.numel()))
    enc = Encoder(tiny_model, gop=8)
    dec = Decoder(other, *bikes_frames.shape[1:3])
    decoded = dec.decode(enc.encode(bikes_frames[0], LAM).received())
    first_bad = decoded.outcomes.index(ScaleOutcome.SYNC_MISMATCH)
    assert all(o is ScaleOutcome.DECODED for o in decoded.outcomes[:first_bad])
    assert all(o is ScaleOutcome.SKIPPED for o in decoded.outcomes[first_bad + 1 :])
    assert decoded.first_desynced_scale == first_bad + 1
    assert decoded.echo_scale == first_bad + 1


def test_tampered_sync_tag_is_treated_as_lost(tiny_model, bikes_frames):
    enc, dec = _pair(tiny_model, bikes_frames)
    encoded = enc.encode(bikes_frames[0], LAM)
    s3 = encoded.scales[2]
    scales = dict(encoded.received().scales)
    scales[3] = ScalePayload(s3.data, s3.crc32, s3.sync_tag ^ 1)
    decoded = dec.decode(replace(encoded.received(), scales=scales))
    assert decoded.outcomes[2] is ScaleOutcome.SYNC_MISMATCH
    assert decoded.first_desynced_scale == 3


def test_corrupted_payload_fails_crc_and_is_substituted(tiny_model, bikes_frames):
    enc, dec = _pair(tiny_model, bikes_frames)
    encoded = enc.encode(bikes_frames[0], LAM)
    s2 = encoded.scales[1]
    damaged = bytearray(s2.data)
    damaged[0] ^= 0xFF
    scales = dict(encoded.received().scales)
    scales[2] = ScalePayload(bytes(damaged), s2.crc32, s2.sync_tag)
    decoded = dec.decode(replace(encoded.received(), scales=scales))
    assert decoded.outcomes[1] is ScaleOutcome.CORRUPT
    assert decoded.first_desynced_scale == 2


def test_frame_with_no_packets_still_gives_a_picture(tiny_model, bikes_frames):
    enc, dec = _pair(tiny_model, bikes_frames)
    dec.decode(enc.encode(bikes_frames[0], LAM).received())
    enc.encode(bikes_frames[1], LAM)
    decoded = dec.decode(ReceivedFrame.nothing(1))
    assert decoded.x_hat.shape == bikes_frames[1].shape
    assert decoded.lam == LAM  # the last known lambda
    assert decoded.outcomes == (ScaleOutcome.MISSING,) * NUM_SCALES
    assert decoded.first_desynced_scale == 1


@pytest.mark.parametrize("m", range(1, NUM_SCALES + 1))
def test_progressive_decoding_with_scales_1_to_m(tiny_model, bikes_frames, m):
    enc, dec = _pair(tiny_model, bikes_frames)
    for frame in bikes_frames[:4]:
        decoded = dec.decode(enc.encode(frame, LAM).received(set(range(1, m + 1))))
        assert decoded.scales_decoded == m
        assert decoded.x_hat.shape == frame.shape
        assert np.isfinite(decoded.x_hat).all()
        assert decoded.first_desynced_scale == (IN_SYNC if m == NUM_SCALES else m + 1)


def test_auxiliary_refinement_loses_every_scale_after_any_loss(bikes_frames):
    cfg = replace(get_preset("tiny"), aux_refinement=True)
    model = DHVC(cfg).eval()
    enc, dec = _pair(model, bikes_frames)
    dec.decode(enc.encode(bikes_frames[0], LAM).received())
    decoded = dec.decode(enc.encode(bikes_frames[1], LAM).received({1, 2, 3}))
    assert decoded.first_desynced_scale == 1
    assert decoded.echo_scale == 1
    encoded = enc.encode(bikes_frames[2], LAM, resync_from=1)
    decoded = dec.decode(encoded.received())
    assert np.array_equal(decoded.x_hat, encoded.x_hat)


def test_lambda_outside_the_range_is_refused(tiny_model, bikes_frames):
    with pytest.raises(ValueError, match="outside the model's range"):
        Encoder(tiny_model).encode(bikes_frames[0], 1e6)


def test_one_model_codes_every_lambda_with_rate_falling_as_lambda_falls():
    model = load_model("none", preset="tiny")
    frame = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    cfg = model.config
    lambdas = np.geomspace(cfg.lambda_max, cfg.lambda_min, 6)  # falling
    coded = [Encoder(model).encode(frame, float(lam)) for lam in lambdas]
    rates = [sum(e.payload_bits) for e in coded]
    estimates = [sum(e.estimated_bits) for e in coded]
    assert all(a > b for a, b in zip(rates, rates[1:], strict=False)), rates
    assert all(a > b for a, b in zip(estimates, estimates[1:], strict=False)), estimates


@pytest.mark.parametrize("threads", [(2, 1), (1, 4), (4, 2)])
def test_a_stream_decodes_to_identical_pictures_on_any_thread_count(tiny_model, threads):
    """Encoder on one thread count, decoder on another: every scale decodes and every picture
    is bit-identical to the encoder's (DESIGN 1, Determinism). At 176x144 the convolutions
    split their work by thread count, so without a fixed coding thread count the pictures
    differ in the last bits."""
    frames = read_frames("sample:bikes", max_frames=3, size=(176, 144))
    encode_threads, decode_threads = threads
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(encode_threads)
        encoder = Encoder(tiny_model, gop=8)
        encoded = [encoder.encode(f, 700.0) for f in frames]
        torch.set_num_threads(decode_threads)
        decoder = Decoder(tiny_model, 144, 176)
        for frame in encoded:
            decoded = decoder.decode(frame.received())
            assert all(o is ScaleOutcome.DECODED for o in decoded.outcomes)
            assert np.array_equal(decoded.x_hat, frame.x_hat)
        assert torch.get_num_threads() == decode_threads  # the caller's count is restored
    finally:
        torch.set_num_threads(before)
