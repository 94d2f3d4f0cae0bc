"""Nothing is lost (codec.io.atomic): whole swaps, no stale leftovers, modes per umask, early
checks of the output, and decode folders that never mix old and new frames."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from codec.io import atomic as fileio
from codec.io.atomic import (
    TargetError,
    atomic_file,
    atomic_folder,
    check_writable_target,
    cleanup_stale,
    write_text_atomic,
)
from codec.io.video import read_frames, write_png_frames
from codec.stream.files import decode_file, encode_file
from netsim import runner
from netsim.runner import RunError


def _results(folder: Path, label: str) -> None:
    (folder / "summary.json").write_text(label)
    (folder / "frames.csv").write_text(label)


def _label(folder: Path) -> str:
    return (folder / "summary.json").read_text()


def _beside(target: Path) -> list[str]:
    """Entries next to ``target`` other than ``target`` itself."""
    return sorted(p.name for p in target.parent.iterdir() if p.name != target.name)


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _stale_name(target: Path, pid: int, kind: str = "partial", host: str | None = None) -> Path:
    return target.with_name(f".{target.name}.{pid}.{host or fileio._HOST}.abc123.{kind}")


@pytest.fixture
def old_results(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    out.mkdir()
    _results(out, "old")
    return out


# --------------------------------------------------------------------------------------------
# The folder swap


def test_atomic_folder_replaces_the_old_folder_whole_and_leaves_nothing_beside(old_results):
    (old_results / "video.mp4").write_text("old only")
    atomic_folder(old_results, lambda staging: _results(staging, "new"))
    assert _label(old_results) == "new"
    assert sorted(p.name for p in old_results.iterdir()) == ["frames.csv", "summary.json"]
    assert _beside(old_results) == []


def test_atomic_folder_creates_a_new_target_and_its_parents(tmp_path):
    out = tmp_path / "a" / "b" / "results"
    atomic_folder(out, lambda staging: _results(staging, "new"))
    assert _label(out) == "new"
    assert _beside(out) == []


def test_a_failing_fill_leaves_the_old_results(old_results):
    def fill(staging: Path) -> None:
        _results(staging, "new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner._write_atomically(old_results, fill)
    assert _label(old_results) == "old"
    assert _beside(old_results) == []


def test_a_failure_after_the_first_rename_keeps_the_old_results(old_results, monkeypatch):
    """Whatever rename the swap does first, an interrupt right after it must not leave the
    target gone (the old swap moved the results aside, then failed to move the new ones in)."""
    calls = {"n": 0}
    real_replace, real_rename = os.replace, os.rename

    def once(real):
        def call(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] > 1:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(os, "replace", once(real_replace))
    monkeypatch.setattr(os, "rename", once(real_rename))
    with contextlib.suppress(KeyboardInterrupt):
        runner._write_atomically(old_results, lambda staging: _results(staging, "new"))
    monkeypatch.undo()
    assert _label(old_results) in ("old", "new")
    assert sorted(p.name for p in old_results.iterdir()) == ["frames.csv", "summary.json"]


def test_a_failing_exchange_keeps_the_old_results(old_results, monkeypatch):
    def broken(a: Path, b: Path) -> bool:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(fileio, "_exchange", broken)
    with pytest.raises(OSError, match="Input/output"):
        atomic_folder(old_results, lambda staging: _results(staging, "new"))
    assert _label(old_results) == "old"
    assert _beside(old_results) == []


def test_the_fallback_swap_puts_the_old_results_back_when_the_second_rename_fails(
    old_results, monkeypatch
):
    """Without an atomic exchange the swap is two renames; the second failing restores."""
    monkeypatch.setattr(fileio, "_exchange", lambda a, b: False)
    real_rename = os.rename

    def rename(src, dst):
        if Path(src).name.endswith(".partial") and Path(dst) == old_results:
            raise KeyboardInterrupt
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        atomic_folder(old_results, lambda staging: _results(staging, "new"))
    monkeypatch.undo()
    assert _label(old_results) == "old"
    assert _beside(old_results) == []


def test_the_fallback_swap_works(old_results, monkeypatch):
    monkeypatch.setattr(fileio, "_exchange", lambda a, b: False)
    atomic_folder(old_results, lambda staging: _results(staging, "new"))
    assert _label(old_results) == "new"
    assert _beside(old_results) == []


def test_old_results_of_a_swap_killed_half_way_are_put_back_by_the_next_write(tmp_path):
    """A process killed between the fallback's two renames leaves only ``.old``."""
    target = tmp_path / "results"
    old = _stale_name(target, _dead_pid(), "old")
    old.mkdir()
    _results(old, "old")
    _stale_name(target, _dead_pid()).mkdir()  # its unfinished new results
    cleanup_stale(target)
    assert _label(target) == "old"
    assert _beside(target) == []


@pytest.mark.skipif(fileio._RENAMEAT2 is None, reason="no renameat2 on this system")
def test_the_exchange_has_no_window(old_results):
    """A reader polling the folder during many swaps always finds complete results."""
    import threading

    a, b = old_results.parent / "a", old_results.parent / "b"
    a.mkdir(), b.mkdir()
    if not fileio._exchange(a, b):
        pytest.skip("this file system cannot exchange folders")
    a.rmdir(), b.rmdir()
    missing = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            if not (old_results / "summary.json").exists():
                missing.append(1)

    thread = threading.Thread(target=poll)
    thread.start()
    try:
        for i in range(100):
            atomic_folder(old_results, lambda staging, i=i: _results(staging, str(i)))
    finally:
        stop.set()
        thread.join()
    assert not missing
    assert _label(old_results) == "99"


def test_an_existing_file_is_not_replaced_by_a_folder(tmp_path):
    target = tmp_path / "results"
    target.write_text("mine")
    with pytest.raises(TargetError, match="not a folder"):
        atomic_folder(target, lambda staging: None)
    assert target.read_text() == "mine"


# --------------------------------------------------------------------------------------------
# Stale leftovers


def test_stale_entries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    target = tmp_path / "results"
    dead = _dead_pid()
    dead_folder, dead_file = _stale_name(target, dead), _stale_name(target, dead + 0, "old")
    dead_folder.mkdir()
    (dead_folder / "frames.csv").write_text("half")
    dead_file.write_text("x")
    live = _stale_name(target, os.getppid())  # the parent of this process runs
    live.mkdir()
    foreign_young = _stale_name(target, dead, host="f0f0f0")
    foreign_young.mkdir()
    foreign_old = _stale_name(target, dead, host="0f0f0f")
    foreign_old.mkdir()
    long_ago = time.time() - 2 * fileio.STALE_AGE_S
    os.utime(foreign_old, (long_ago, long_ago))
    other_target = _stale_name(tmp_path / "other", dead)
    other_target.mkdir()
    unrelated = tmp_path / f".results.{dead}.partial"
    unrelated.mkdir()

    runner._write_atomically(target, lambda staging: _results(staging, "new"))

    assert _label(target) == "new"
    assert not dead_folder.exists() and not dead_file.exists() and not foreign_old.exists()
    assert live.is_dir() and foreign_young.is_dir()
    assert other_target.is_dir() and unrelated.is_dir()


def test_a_killed_file_write_is_cleaned_up_by_the_next_write(tmp_path):
    target = tmp_path / "model.pt"
    leftover = _stale_name(target, _dead_pid())
    leftover.write_bytes(b"half a checkpoint")
    write_text_atomic(target, "whole")
    assert target.read_text() == "whole"
    assert _beside(target) == []


def test_temporary_names_carry_the_pid_and_are_recognised(tmp_path):
    target = tmp_path / "results.v1"
    seen = []
    with atomic_file(target) as temp:
        seen.append(temp.name)
        assert fileio._pattern(target).fullmatch(temp.name)
        assert f".{os.getpid()}." in temp.name
        temp.write_text("x")
    assert cleanup_stale(target) == []
    assert not (tmp_path / seen[0]).exists()


# --------------------------------------------------------------------------------------------
# Modes follow the umask


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_and_folders_follow_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "a.json", "{}")
        with atomic_file(tmp_path / "b.bin") as temp:
            temp.write_bytes(b"x")
        atomic_folder(tmp_path / "results", lambda staging: _results(staging, "new"))
        runner._write_atomically(tmp_path / "run", lambda staging: _results(staging, "new"))
    finally:
        os.umask(previous)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "b.bin").stat().st_mode & 0o777 == 0o666 & ~umask
    for folder in ("results", "run"):
        assert (tmp_path / folder).stat().st_mode & 0o777 == 0o777 & ~umask
        assert (tmp_path / folder / "summary.json").stat().st_mode & 0o777 == 0o666 & ~umask


# --------------------------------------------------------------------------------------------
# Checking the output before the work


@pytest.mark.parametrize("path", ["/dev/null/x", "/dev/null/x/y"])
def test_check_writable_target_refuses_a_path_under_a_file_in_one_line(path):
    with pytest.raises(TargetError) as info:
        check_writable_target(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(path) and "/dev/null" in message


def test_check_writable_target_accepts_new_nested_folders_and_creates_nothing(tmp_path):
    check_writable_target(tmp_path / "a" / "b" / "c")
    check_writable_target(tmp_path / "x.mp4", folder=False)
    assert list(tmp_path.iterdir()) == []


def test_check_writable_target_refuses_the_wrong_kind(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(TargetError, match="not a folder"):
        check_writable_target(tmp_path / "file")
    with pytest.raises(TargetError, match="is a folder"):
        check_writable_target(tmp_path, folder=False)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_check_writable_target_refuses_a_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        with pytest.raises(TargetError, match="cannot write"):
            check_writable_target(locked / "out")
    finally:
        locked.chmod(0o755)


def test_the_run_refuses_an_unwritable_output_before_it_starts():
    with pytest.raises(RunError) as info:
        runner._check_output_folder(Path("/dev/null/x"))
    assert "\n" not in str(info.value) and "/dev/null" in str(info.value)


# --------------------------------------------------------------------------------------------
# dhvc decode into a folder


@pytest.fixture(scope="module")
def stream(tmp_path_factory, bikes_frames) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    write_png_frames(folder, bikes_frames[:2, :64, :64])
    out = tmp_path_factory.mktemp("enc") / "clip.dhvc"
    encode_file(folder, out, 1024.0, None, 2, "tiny", "none", "cpu")
    return out


def _decode(stream: Path, out: Path, overwrite: bool = False):
    return decode_file(stream, out, 4, "none", "cpu", overwrite=overwrite)


def test_decode_refuses_a_folder_with_other_files_and_replaces_it_whole_when_asked(
    stream, tmp_path
):
    out = tmp_path / "frames"
    write_png_frames(out, np.zeros((5, 64, 64, 3), dtype=np.uint8))  # an older, longer decode
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ValueError) as info:
        _decode(stream, out)
    message = str(info.value)
    assert "\n" not in message and str(out) in message and "5 other" in message
    assert "--overwrite" in message
    assert sorted(p.name for p in out.iterdir()) == before

    summary = _decode(stream, out, overwrite=True)
    assert summary.frames == 2
    assert sorted(p.name for p in out.iterdir()) == ["frame_00000.png", "frame_00001.png"]
    assert read_frames(out).shape == (2, 64, 64, 3)
    assert _beside(out) == []


def test_decode_into_an_empty_or_new_folder_needs_no_overwrite(stream, tmp_path):
    (tmp_path / "empty").mkdir()
    assert _decode(stream, tmp_path / "empty").frames == 2
    assert _decode(stream, tmp_path / "new" / "frames").frames == 2
    assert len(list((tmp_path / "empty").iterdir())) == 2


def test_decode_will_not_replace_a_folder_with_subfolders(stream, tmp_path):
    out = tmp_path / "project"
    (out / "src").mkdir(parents=True)
    with pytest.raises(ValueError, match="subfolders"):
        _decode(stream, out, overwrite=True)
    assert (out / "src").is_dir()


def test_an_interrupted_decode_leaves_the_old_frames_and_nothing_half_written(
    stream, tmp_path, monkeypatch
):
    import codec.stream.files

    out = tmp_path / "frames"
    _decode(stream, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def one_then_interrupt(folder, frames):
        write_png_frames(folder, frames[:1])
        raise KeyboardInterrupt

    monkeypatch.setattr(codec.stream.files, "write_png_frames", one_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _decode(stream, out, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _beside(out) == []


def test_decode_refuses_an_unwritable_output_in_one_line(stream):
    with pytest.raises(ValueError) as info:
        _decode(stream, Path("/dev/null/frames"))
    assert "\n" not in str(info.value) and "/dev/null" in str(info.value)
