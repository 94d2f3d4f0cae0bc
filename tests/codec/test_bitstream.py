"""The .dhvc container: header round trips and robustness to damaged files."""

from __future__ import annotations

import contextlib
import io
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec import Decoder, Encoder, FrameType
from codec.stream.bitstream import (
    BitstreamError,
    FrameHeader,
    StreamHeader,
    read_stream,
    write_frame,
    write_stream,
)


@pytest.fixture(scope="module")
def stream_bytes(tiny_model) -> bytes:
    frames = np.random.default_rng(3).integers(0, 256, (3, 40, 48, 3), dtype=np.uint8)
    buf = io.BytesIO()
    write_stream(buf, StreamHeader(tiny_model.model_id, 48, 40, Fraction(30000, 1001), 32))
    encoder = Encoder(tiny_model)
    for frame in frames:
        write_frame(buf, encoder.encode(frame, 700.0))
    return buf.getvalue()


def _decode_all(data: bytes, model) -> int:
    header, frames = read_stream(io.BytesIO(data))
    decoder = Decoder(model, header.height, header.width)
    n = 0
    for frame_header, payloads in frames:
        decoded = decoder.decode(frame_header.received(payloads))
        assert decoded.x_hat.shape == (header.height, header.width, 3)
        n += 1
    return n


def test_stream_and_frame_headers_round_trip(stream_bytes, tiny_model):
    header, frames = read_stream(io.BytesIO(stream_bytes))
    assert header == StreamHeader(tiny_model.model_id, 48, 40, Fraction(30000, 1001), 32)
    frames = list(frames)
    assert [f.frame_type for f, _ in frames] == [FrameType.I, FrameType.P, FrameType.P]
    for frame_header, payloads in frames:
        assert FrameHeader.unpack(frame_header.pack()) == frame_header
        assert [len(p) for p in payloads] == list(frame_header.lengths)


def test_wrong_magic_and_version_are_typed_errors(stream_bytes):
    with pytest.raises(BitstreamError, match="magic"):
        read_stream(io.BytesIO(b"XXXX" + stream_bytes[4:]))
    with pytest.raises(BitstreamError, match="version"):
        read_stream(io.BytesIO(stream_bytes[:4] + b"\x09\x00" + stream_bytes[6:]))


@pytest.mark.parametrize("cut", [0, 3, StreamHeader.SIZE - 1, StreamHeader.SIZE + 5, -1])
def test_truncated_stream_is_a_typed_error(stream_bytes, tiny_model, cut):
    with pytest.raises(BitstreamError, match="truncated"):
        _decode_all(stream_bytes[:cut], tiny_model)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_byte_mutations_give_a_typed_error_or_a_decoded_picture(
    stream_bytes, tiny_model, data
):
    mutated = bytearray(stream_bytes)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(mutated) - 1))
        mutated[pos] = data.draw(st.integers(0, 255))
    with contextlib.suppress(BitstreamError):
        _decode_all(bytes(mutated), tiny_model)
