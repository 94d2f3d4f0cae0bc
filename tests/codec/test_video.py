from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from codec.io.video import (
    VideoError,
    probe_video,
    read_frames,
    sample_path,
    write_mp4,
    write_png_frames,
    write_side_by_side_mp4,
)
from codec.metrics import psnr


def _moving_frames(n: int, height: int, width: int) -> np.ndarray:
    """Smooth frames whose brightness encodes the frame index and whose pattern moves."""
    yy, xx = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(n):
        r = 40 + 20 * t + 30 * np.sin((xx + 2 * t) / 6.0)
        g = 120 + 40 * np.cos(yy / 5.0) + 0 * xx
        b = 200 - 10 * t + 0 * xx + 0 * yy
        frames.append(np.stack([r, g, b], axis=-1))
    return np.clip(np.array(frames), 0, 255).astype(np.uint8)


def _write_lossless_mkv(path: Path, frames: np.ndarray) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))


def _write_y4m(path: Path, lumas: list[int], height: int = 16, width: int = 24) -> None:
    header = f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\n".encode()
    body = b""
    for y in lumas:
        plane_y = bytes([y]) * (width * height)
        chroma = bytes([128]) * ((width // 2) * (height // 2))
        body += b"FRAME\n" + plane_y + chroma + chroma
    path.write_bytes(header + body)


def test_lossless_mkv_reads_back_exactly(tmp_path):
    frames = _moving_frames(5, 24, 32)
    _write_lossless_mkv(tmp_path / "clip.mkv", frames)
    out = read_frames(tmp_path / "clip.mkv")
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, frames)


def test_start_frame_and_max_frames_select_a_window(tmp_path):
    frames = _moving_frames(8, 16, 16)
    _write_lossless_mkv(tmp_path / "clip.mkv", frames)
    out = read_frames(str(tmp_path / "clip.mkv"), max_frames=3, start_frame=2)
    np.testing.assert_array_equal(out, frames[2:5])
    assert read_frames(tmp_path / "clip.mkv", max_frames=100, start_frame=6).shape[0] == 2


def test_png_folder_round_trip_is_lossless_and_float_frames_are_rounded(tmp_path):
    frames = _moving_frames(3, 10, 14)
    paths = write_png_frames(tmp_path / "png", frames.astype(np.float32) / 255.0)
    assert [p.name for p in paths] == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
    np.testing.assert_array_equal(read_frames(tmp_path / "png"), frames)


def test_png_folder_is_read_in_natural_name_order(tmp_path):
    frames = _moving_frames(11, 8, 8)
    folder = tmp_path / "png"
    folder.mkdir()
    for index, path in enumerate(write_png_frames(tmp_path / "tmp", frames)):
        path.rename(folder / f"f{index}.png")
    np.testing.assert_array_equal(read_frames(folder), frames)  # f2 before f10


def test_y4m_file_is_read_with_the_frame_count_and_brightness_it_holds(tmp_path):
    _write_y4m(tmp_path / "clip.y4m", [60, 120, 200])
    out = read_frames(tmp_path / "clip.y4m")
    assert out.shape == (3, 16, 24, 3)
    means = out.reshape(3, -1).mean(axis=1)
    assert means[0] < means[1] < means[2]
    assert np.ptp(out[1].astype(int), axis=-1).max() <= 2  # neutral chroma: grey pixels


def test_size_scales_keeping_aspect_then_crops_the_centre(tmp_path):
    # 64 x 32 frame: left third red, middle third green, right third blue
    frame = np.zeros((32, 63, 3), np.uint8)
    frame[:, :21, 0] = 255
    frame[:, 21:42, 1] = 255
    frame[:, 42:, 2] = 255
    write_png_frames(tmp_path / "png", frame[None])
    out = read_frames(tmp_path / "png", size=(16, 16))
    assert out.shape == (1, 16, 16, 3)
    # scaled to 32 x 16 (aspect kept), the centre 16 columns are mostly green
    channel_means = out[0].reshape(-1, 3).mean(axis=0)
    assert channel_means[1] > 2 * max(channel_means[0], channel_means[2])
    # enlarging works too and fills the requested size
    assert read_frames(tmp_path / "png", size=(126, 80)).shape == (1, 80, 126, 3)


def test_mp4_for_viewing_pads_odd_sizes_and_stays_close_to_the_input(tmp_path):
    frames = _moving_frames(4, 21, 33)
    path = write_mp4(tmp_path / "view.mp4", frames, fps=25)
    assert path == tmp_path / "view.mp4"
    assert not list(tmp_path.glob(".*partial"))
    out = read_frames(path)
    assert out.shape == (4, 22, 34, 3)
    assert psnr(frames[0], out[0, :21, :33]) > 30.0
    info = probe_video(path)
    assert (info.width, info.height, info.fps) == (34, 22, Fraction(25))


def test_side_by_side_mp4_puts_the_decoded_frames_on_the_right(tmp_path):
    originals = _moving_frames(2, 16, 16)
    decoded = np.zeros((2, 16, 16, 3), np.float32)
    out = read_frames(write_side_by_side_mp4(tmp_path / "sbs.mp4", originals, decoded, 10))
    assert out.shape == (2, 16, 32, 3)
    assert out[:, :, 16:].mean() < 5 < out[:, :, :16].mean()
    with pytest.raises(ValueError, match="differ in shape"):
        write_side_by_side_mp4(tmp_path / "x.mp4", originals, decoded[:1], 10)


def test_sample_clips_are_found_and_readable_at_a_reduced_size():
    assert sample_path("bikes").name == "bikes.mp4"
    assert sample_path("bigbuckbunny").is_file()
    out = read_frames("sample:bikes", max_frames=2, size=(64, 32))
    assert out.shape == (2, 32, 64, 3)
    assert probe_video("sample:bikes").width == 640


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(VideoError, match=r"nope\.mp4: no such file or folder"):
        read_frames(tmp_path / "nope.mp4")


def test_unknown_sample_names_the_known_ones():
    with pytest.raises(VideoError, match="unknown sample clip.*bigbuckbunny, bikes"):
        read_frames("sample:foreman")


def test_garbage_file_is_an_unreadable_video(tmp_path):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError, match=r"garbage\.mp4: not a readable video"):
        read_frames(path)


def test_truncated_mp4_is_an_unreadable_video(tmp_path):
    full = write_mp4(tmp_path / "full.mp4", _moving_frames(4, 16, 16), fps=25).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(full[: len(full) // 2])
    with pytest.raises(VideoError, match=r"cut\.mp4: (not a readable video|no video frames)"):
        read_frames(tmp_path / "cut.mp4")


def test_empty_folder_and_folder_without_png_are_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="folder holds no PNG frames"):
        read_frames(tmp_path / "empty")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("x")
    with pytest.raises(VideoError, match="folder holds no PNG frames"):
        read_frames(tmp_path / "text")


def test_corrupt_png_in_a_folder_names_that_file(tmp_path):
    write_png_frames(tmp_path / "png", _moving_frames(2, 8, 8))
    (tmp_path / "png" / "frame_00001.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(VideoError, match=r"frame_00001\.png: not a readable PNG frame"):
        read_frames(tmp_path / "png")


def test_no_frames_after_start_frame_is_an_error(tmp_path):
    _write_lossless_mkv(tmp_path / "clip.mkv", _moving_frames(3, 8, 8))
    with pytest.raises(VideoError, match="no video frames at or after frame 3"):
        read_frames(tmp_path / "clip.mkv", start_frame=3)


def test_file_without_video_stream_is_an_error(tmp_path):
    path = tmp_path / "sound.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(VideoError, match="has no video stream"):
        read_frames(path)
