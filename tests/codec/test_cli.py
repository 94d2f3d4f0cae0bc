"""The dhvc command line: encode, decode (full and progressive), info, bench, user errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from codec.cli.dhvc import app
from codec.io.video import read_frames, write_png_frames
from tests.codec.conftest import pan

runner = CliRunner()
TINY = ["--checkpoint", "none", "--preset", "tiny"]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, bikes_frames) -> Path:
    """A PNG folder of 4 frames with an odd size (95 x 69)."""
    folder = tmp_path_factory.mktemp("clip")
    write_png_frames(folder, bikes_frames[:4, :69, :95])
    return folder


@pytest.fixture(scope="module")
def stream(clip, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("enc") / "clip.dhvc"
    result = runner.invoke(app, ["encode", str(clip), "-o", str(out), "--gop", "2", *TINY])
    assert result.exit_code == 0, result.output
    return out


def test_encode_writes_a_stream_that_info_describes(stream):
    from codec.stream.bitstream import FORMAT_VERSION

    result = runner.invoke(app, ["info", str(stream)])
    assert result.exit_code == 0, result.output
    assert f'"format_version": {FORMAT_VERSION},' in result.output
    assert '"width": 95' in result.output and '"height": 69' in result.output
    assert result.output.count('"type": "I"') == 2
    assert result.output.count('"moved_blocks": ') == 4


@pytest.mark.parametrize("flag", ["--motion", "--no-motion"])
def test_encode_without_motion_sends_only_zero_fields(tmp_path, flag):
    from codec.stream.bitstream import read_stream
    from codec.stream.motion import unpack_motion

    source = tmp_path / "pan"
    write_png_frames(source, pan(3, (8, 0), size=(64, 128)))
    out = tmp_path / "pan.dhvc"
    result = runner.invoke(app, ["encode", str(source), "-o", str(out), flag, *TINY])
    assert result.exit_code == 0, result.output
    with out.open("rb") as f:
        _, frames = read_stream(f)
        fields = [unpack_motion(payloads[0], 64, 128)[0] for _, payloads in frames]
    assert any(field.any() for field in fields) is (flag == "--motion")


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_decode_with_scales_1_to_m_gives_every_frame_at_the_original_size(stream, tmp_path, m):
    out = tmp_path / "frames"
    result = runner.invoke(
        app, ["decode", str(stream), "-o", str(out), "--scales", str(m), "--checkpoint", "none"]
    )
    assert result.exit_code == 0, result.output
    frames = read_frames(out)
    assert frames.shape == (4, 69, 95, 3)


def test_decode_to_mp4(stream, tmp_path):
    out = tmp_path / "clip.mp4"
    result = runner.invoke(app, ["decode", str(stream), "-o", str(out), "--checkpoint", "none"])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_missing_video_is_one_line_and_exit_2(tmp_path):
    result = runner.invoke(app, ["encode", str(tmp_path / "nope.mp4"), "-o", "x.dhvc", *TINY])
    assert "nope.mp4" in _one_error_line(result)


def test_truncated_stream_is_one_line_and_exit_2(stream, tmp_path):
    bad = tmp_path / "bad.dhvc"
    bad.write_bytes(stream.read_bytes()[:-7])
    result = runner.invoke(
        app, ["decode", str(bad), "-o", str(tmp_path / "o"), "--checkpoint", "none"]
    )
    assert "truncated" in _one_error_line(result)
    assert not (tmp_path / "o").exists()


def test_not_a_stream_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.dhvc"
    bad.write_bytes(b"hello world, not a stream at all" * 3)
    assert "magic" in _one_error_line(runner.invoke(app, ["info", str(bad)]))


def test_encode_failure_keeps_an_existing_output(clip, tmp_path):
    out = tmp_path / "keep.dhvc"
    out.write_bytes(b"precious")
    result = runner.invoke(app, ["encode", str(clip), "-o", str(out), "--lambda", "1e9", *TINY])
    assert "lambda" in _one_error_line(result)
    assert out.read_bytes() == b"precious"


def test_frames_too_small_are_refused(tmp_path):
    write_png_frames(tmp_path / "small", np.zeros((2, 16, 16, 3), dtype=np.uint8))
    result = runner.invoke(app, ["encode", str(tmp_path / "small"), "-o", "x.dhvc", *TINY])
    assert "at least" in _one_error_line(result)


def test_bench_reports_parameters_and_macs():
    result = runner.invoke(app, ["bench", "--preset", "tiny", "--size", "64x64", "--frames", "1"])
    assert result.exit_code == 0, result.output
    assert '"encode_kmacs_per_pixel"' in result.output and '"decode_fps"' in result.output


def test_decoding_a_file_that_loses_sync_with_no_scale_missing_warns_in_one_line(stream, tmp_path):
    from dataclasses import replace

    from codec.stream.bitstream import open_stream, write_stream

    header, frames = open_stream(stream)
    bad = tmp_path / "desync.dhvc"
    with bad.open("wb") as f:
        write_stream(f, header)
        for index, (frame_header, payloads) in enumerate(frames):
            if index == 1:  # a foreign sync tag on scale 2, payload intact
                tags = list(frame_header.sync_tags)
                tags[1] ^= 0x5A5A5A5A
                frame_header = replace(frame_header, sync_tags=tuple(tags))
            f.write(frame_header.pack())
            for payload in payloads:
                f.write(payload)
    result = runner.invoke(app, ["decode", str(bad), "-o", str(tmp_path / "o"), *TINY[:2]])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "1 frame(s) lost entropy sync" in warnings[0]
    clean = runner.invoke(app, ["decode", str(stream), "-o", str(tmp_path / "c"), *TINY[:2]])
    assert "warning" not in clean.output
