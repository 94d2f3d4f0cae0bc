"""x264/x265 one picture at a time (codec.h26x.realtime): slices, forced IDR, concealment,
rate match."""

from __future__ import annotations

import numpy as np
import pytest

from codec.h26x.realtime import (
    H26xDecoder,
    H26xEncoder,
    H26xError,
    H26xSettings,
    clip_bitrate_kbps,
    encode_clip,
    is_parameter_set,
    match_qp,
    nal_type,
    split_nal_units,
)


def synthetic_clip(frames: int = 10, height: int = 96, width: int = 128) -> np.ndarray:
    """A textured picture panning right by 2 pixels a frame (N x H x W x 3 uint8)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height // 8, (width + 2 * frames) // 8 + 1, 3), dtype=np.uint8)
    big = np.kron(base, np.ones((8, 8, 1), np.uint8)).astype(np.float32)
    y, x = np.mgrid[0 : big.shape[0], 0 : big.shape[1]]
    big += 40 * np.sin(x / 5.0)[..., None] * np.cos(y / 7.0)[..., None]
    big = np.clip(big, 0, 255).astype(np.uint8)
    return np.stack([big[:, 2 * i : 2 * i + width] for i in range(frames)])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-12)))


@pytest.mark.parametrize("codec", ["x264", "x265"])
def test_every_picture_comes_out_clean_and_identical_twice(codec: str) -> None:
    clip = synthetic_clip()
    settings = H26xSettings(codec=codec, qp=26, slice_max_bytes=300)
    first, second = encode_clip(settings, clip), encode_clip(settings, clip)
    assert [p.nal_units for p in first] == [p.nal_units for p in second]
    assert [p.frame_index for p in first] == list(range(len(clip)))
    assert first[0].intra and not any(p.intra for p in first[1:])
    decoder = H26xDecoder(codec, width=128, height=96)
    for picture, original in zip(first, clip, strict=True):
        decoded = decoder.decode(picture.nal_units).rgb
        assert decoded is not None and psnr(decoded, original) > 25


def test_x264_slices_fit_slice_max_size_and_carry_no_sei() -> None:
    pictures = encode_clip(H26xSettings(codec="x264", qp=20, slice_max_bytes=300), synthetic_clip())
    slices = [u for p in pictures for u in p.nal_units if not is_parameter_set("x264", u)]
    assert len(pictures[0].nal_units) > 3  # the I frame is cut into several slices
    assert all(len(u) <= 300 for u in slices)
    assert all(nal_type("x264", u) != 6 for p in pictures for u in p.nal_units)


def test_split_nal_units_keeps_each_unit_with_a_start_code() -> None:
    stream = b"\x00\x00\x00\x01\x67\x42" + b"\x00\x00\x01\x68\xce\x00" + b"\x00\x00\x00\x01\x65\x88"
    assert split_nal_units(stream) == [
        b"\x00\x00\x00\x01\x67\x42",
        b"\x00\x00\x00\x01\x68\xce",
        b"\x00\x00\x00\x01\x65\x88",
    ]


def test_forced_idr_is_an_intra_picture_that_needs_no_earlier_picture() -> None:
    clip = synthetic_clip()
    encoder = H26xEncoder(H26xSettings(codec="x264", qp=26), width=128, height=96)
    pictures = [encoder.encode(rgb, force_idr=i == 5)[0] for i, rgb in enumerate(clip)]
    assert [p.intra for p in pictures] == [i in (0, 5) for i in range(len(clip))]
    fresh = H26xDecoder("x264", width=128, height=96)  # never saw pictures 0..4
    decoded = fresh.decode(pictures[5].nal_units).rgb
    assert decoded is not None and psnr(decoded, clip[5]) > 25


def test_a_missing_slice_is_concealed_not_garbage() -> None:
    clip = synthetic_clip()
    encoder = H26xEncoder(
        H26xSettings(codec="x264", qp=20, slice_max_bytes=200), width=128, height=96
    )
    pictures = [encoder.encode(rgb, force_idr=i == 3)[0] for i, rgb in enumerate(clip[:4])]
    assert len(pictures[3].nal_units) >= 4  # SPS, PPS and several slices
    decoder = H26xDecoder("x264", width=128, height=96)
    for picture in pictures[:3]:
        decoder.decode(picture.nal_units)
    clean = H26xDecoder("x264", width=128, height=96)
    for picture in pictures[:4]:
        reference = clean.decode(picture.nal_units).rgb
    units = list(pictures[3].nal_units)
    damaged = decoder.decode(units[:3] + units[4:]).rgb  # the second slice is lost
    assert damaged is not None and damaged.shape == clip[3].shape
    assert not np.array_equal(damaged, reference)
    assert psnr(damaged, clip[3]) > 15  # concealed from the previous picture, not noise


def test_nothing_decodable_returns_no_picture() -> None:
    decoder = H26xDecoder("x264", width=128, height=96)
    assert decoder.decode([]).rgb is None
    assert decoder.decode([b"\x00\x00\x00\x01\x41\xff\xff"]).rgb is None  # a P slice, no SPS


def test_match_qp_lands_within_ten_percent_of_the_target() -> None:
    clip = synthetic_clip(frames=8)
    settings = H26xSettings(codec="x264", qp=30, slice_max_bytes=300)
    target = clip_bitrate_kbps(encode_clip(H26xSettings("x264", 23, slice_max_bytes=300), clip), 25)
    match = match_qp(settings, clip, target * 1.04)
    assert match.qp in (22, 23)
    assert abs(match.ratio - 1) < 0.10


def test_settings_refuse_what_the_encoders_cannot_do() -> None:
    with pytest.raises(H26xError):
        H26xSettings(codec="vp9", qp=20)
    with pytest.raises(H26xError):
        H26xSettings(codec="x264", qp=60)
    with pytest.raises(H26xError):
        H26xSettings(codec="x265", qp=20, intra_refresh=True)
    with pytest.raises(H26xError):
        H26xEncoder(H26xSettings(codec="x264", qp=20), width=127, height=96)
