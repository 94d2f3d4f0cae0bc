"""Issue 21 item 5: ``netsim run`` on a full disk prints one line naming the result file that
could not be written, exits with code 2 and keeps the earlier results."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import netsim.runner
from netsim.cli import app

runner = CliRunner()

SCENARIO = {
    "name": "full_disk",
    "video": {"source": "sample:bikes", "width_px": 64, "height_px": 64, "frames": 2},
    "codec": {"checkpoint": "none", "preset": "tiny"},
}


def test_a_full_disk_names_the_result_file_and_keeps_earlier_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(SCENARIO), encoding="utf-8")
    out = tmp_path / "results"
    command = ["run", str(path), "--device", "cpu", "--out", str(out)]
    assert runner.invoke(app, command).exit_code == 0
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(netsim.runner, "write_packets_csv", disk_full)
    result = runner.invoke(app, command)
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"error: {out / 'packets.csv'}: cannot write: No space left on device"
    ]
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before
    assert sorted(os.listdir(tmp_path)) == ["results", "s.yaml"]  # no staging folder left
