"""Issue 21 item 5: ``dhvc encode`` and ``dhvc decode`` on a full disk print one line naming
the file that could not be written (exit code 2) and keep what was there; ``--frames N`` on a
shorter clip says so."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

import codec.stream.files
from codec.cli.dhvc import app
from codec.io.video import write_png_frames

runner = CliRunner()
TINY = ["--checkpoint", "none", "--preset", "tiny"]


def disk_full(filename: str | None = None):
    def raise_enospc(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), filename)

    return raise_enospc


def error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, bikes_frames) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    write_png_frames(folder, bikes_frames[:2, :64, :64])
    return folder


@pytest.fixture(scope="module")
def stream(clip, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("enc") / "clip.dhvc"
    result = runner.invoke(app, ["encode", str(clip), "-o", str(out), *TINY])
    assert result.exit_code == 0, result.output
    return out


def test_encode_on_a_full_disk_names_the_stream_and_keeps_the_old_one(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "keep.dhvc"
    out.write_bytes(b"precious")
    monkeypatch.setattr(codec.stream.files, "write_frame", disk_full())
    line = error_line(runner.invoke(app, ["encode", str(clip), "-o", str(out), *TINY]))
    assert line == f"error: {out}: cannot write: No space left on device"
    assert out.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["keep.dhvc"]  # no temporary file left behind


def test_decode_to_png_on_a_full_disk_names_the_frame_file(
    stream: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "frames"
    out.mkdir()
    (out / "old.txt").write_text("kept")
    monkeypatch.setattr(
        codec.stream.files, "write_png_frames", disk_full("/x/.frames.partial/frame_00001.png")
    )
    result = runner.invoke(
        app, ["decode", str(stream), "-o", str(out), "--overwrite", "--checkpoint", "none"]
    )
    line = error_line(result)
    assert line == f"error: {out / 'frame_00001.png'}: cannot write: No space left on device"
    assert os.listdir(out) == ["old.txt"]


def test_decode_to_mp4_on_a_full_disk_names_the_video(
    stream: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "clip.mp4"
    monkeypatch.setattr(codec.stream.files, "write_mp4", disk_full())
    line = error_line(
        runner.invoke(app, ["decode", str(stream), "-o", str(out), "--checkpoint", "none"])
    )
    assert line == f"error: {out}: cannot write: No space left on device"


def test_encode_frames_beyond_the_clip_names_the_clip_and_both_counts(
    clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "x.dhvc"
    result = runner.invoke(app, ["encode", str(clip), "-o", str(out), "--frames", "5", *TINY])
    assert error_line(result) == f"error: {clip}: --frames 5 requested, the clip has 2 frames"
    assert not out.exists()
