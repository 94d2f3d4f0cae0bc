"""A stream coded on CUDA and on CPU (DESIGN 1, Determinism).

On the device that encoded it, a stream decodes to the encoder's pictures bit for bit. Across
devices the entropy parameters may differ in their last bits; the sync tag is there to notice:
decoded on the other device, each frame either matches the encoder's picture (every scale
entropy-decoded, the picture equal to within float rounding) or the decoder flags the scale it
could not trust as ``SYNC_MISMATCH`` and stops trusting the scales above it. Nothing is lost or
damaged in these streams, so no other reason for a substitution may appear, and no frame may be
decoded "successfully" to a picture other than the encoder's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec import IN_SYNC, NUM_SCALES, Decoder, EncodedFrame, Encoder, ScaleOutcome, load_model
from codec.io.video import read_frames
from codec.types import DecodedFrame

pytestmark = pytest.mark.gpu

LAM = 512.0
GOP = 8
# Same symbols and same weights on two devices: the pictures differ by float rounding only,
# far below one 8-bit level.
CROSS_DEVICE_ATOL = 1.0 / 255.0


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """Four 64x64 frames of the bikes clip (one GOP's start: an I frame, then P frames)."""
    return read_frames("sample:bikes", max_frames=4, size=(64, 64))


def encode(device: str, frames: np.ndarray) -> list[EncodedFrame]:
    """The random-weight tiny model (seeded: the same weights on every device) on ``device``."""
    encoder = Encoder(load_model("none", preset="tiny", device=device), gop=GOP)
    return [encoder.encode(frame, LAM) for frame in frames]


def decode(device: str, stream: list[EncodedFrame]) -> list[DecodedFrame]:
    height, width = stream[0].height, stream[0].width
    decoder = Decoder(load_model("none", preset="tiny", device=device), height, width)
    return [decoder.decode(frame.received()) for frame in stream]


def test_quantisation_steps_are_identical_on_every_device() -> None:
    """q_k is computed in float64 on the CPU and rounded to float32 whatever the model's
    device (``codec.stream.coder``), so it never differs across devices, even in its last bit."""
    steps = {}
    for device in ("cpu", "cuda"):
        encoder = Encoder(load_model("none", preset="tiny", device=device))
        steps[device] = [q.cpu() for q in encoder._ctx.lam_conditioning(LAM)[1]]
    assert all(torch.equal(a, b) for a, b in zip(steps["cpu"], steps["cuda"], strict=True))


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_each_device_decodes_its_own_stream_bit_exactly(device: str, clip: np.ndarray) -> None:
    stream = encode(device, clip)
    for encoded, decoded in zip(stream, decode(device, stream), strict=True):
        assert decoded.outcomes == (ScaleOutcome.DECODED,) * NUM_SCALES
        assert decoded.first_desynced_scale == IN_SYNC
        assert np.array_equal(decoded.x_hat, encoded.x_hat), f"frame {encoded.frame_index}"


@pytest.mark.parametrize(("encode_on", "decode_on"), [("cuda", "cpu"), ("cpu", "cuda")])
def test_across_devices_a_stream_matches_or_is_flagged_as_sync_mismatch_never_silently_wrong(
    encode_on: str, decode_on: str, clip: np.ndarray, record_property
) -> None:
    stream = encode(encode_on, clip)
    verdicts: list[str] = []
    first_flag: ScaleOutcome | None = None
    for encoded, decoded in zip(stream, decode(decode_on, stream), strict=True):
        assert ScaleOutcome.MISSING not in decoded.outcomes
        assert ScaleOutcome.CORRUPT not in decoded.outcomes
        flags = [o for o in decoded.outcomes if o is not ScaleOutcome.DECODED]
        if first_flag is None and flags:
            first_flag = flags[0]
        if flags:
            assert decoded.first_desynced_scale < IN_SYNC  # the decoder knows it lost sync
            verdicts.append(f"flagged {[o.value for o in decoded.outcomes]}")
            continue
        assert decoded.first_desynced_scale == IN_SYNC
        difference = float(np.abs(decoded.x_hat - encoded.x_hat).max())
        assert difference <= CROSS_DEVICE_ATOL, (
            f"frame {encoded.frame_index}: every scale decoded on {decode_on} but the picture "
            f"differs from the {encode_on} encoder's by {difference}"
        )
        verdicts.append("bit-exact" if difference == 0.0 else f"within {difference:.1e}")
    # Only a sync-tag mismatch may start a loss of sync when every packet arrived intact.
    assert first_flag in (None, ScaleOutcome.SYNC_MISMATCH)
    record_property(f"{encode_on}_to_{decode_on}", verdicts)
