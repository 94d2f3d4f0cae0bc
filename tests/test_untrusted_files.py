"""No file a user passes is unpickled: a pickle payload handed to every loader (checkpoint,
training state, training pack, run results) runs nothing and ends in one error line (exit code
2 on the command line)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from codec.cli.dhvc import app as dhvc_app

runner = CliRunner()


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(params=["raw pickle", "torch.save"])
def payload(request, tmp_path) -> tuple[bytes, Path]:
    """(file bytes, marker): a bare pickle, or a torch.save zip whose pickle holds the object."""
    marker = tmp_path / "code-ran"
    if request.param == "raw pickle":
        return pickle.dumps({"model": _Payload(marker), "step": 1}), marker
    path = tmp_path / "payload.pt"
    torch.save({"model": _Payload(marker), "step": 1}, path)
    return path.read_bytes(), marker


def _one_error_line(result) -> str:
    """The one error line of a refused command (progress lines such as "training data: ..."
    may come before it)."""
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2, result.output
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    assert result.output.rstrip().endswith(errors[0]), result.output
    return errors[0]


def _train_one_step(*options: str):
    """``dhvc train`` of one step of the tiny preset on the sample data, with ``options``."""
    steps = ["--intra-steps", "0", "--p3-steps", "0", "--p7-steps", "1"]
    return runner.invoke(
        dhvc_app, ["train", *options, "--data", "sample", "--preset", "tiny", *steps]
    )


def test_a_training_state_holding_code_is_refused_before_it_runs(payload, tmp_path):
    data, marker = payload
    state = tmp_path / "runs" / "state.pt"
    state.parent.mkdir()
    state.write_bytes(data)
    result = _train_one_step("--state", str(state))
    line = _one_error_line(result)
    assert str(state) in line and "training state" in line
    assert not marker.exists()
    assert state.read_bytes() == data  # nothing overwritten


def test_a_checkpoint_holding_code_is_refused_before_it_runs(payload, tmp_path, bikes_frames):
    from codec.io.video import write_png_frames

    data, marker = payload
    checkpoint = tmp_path / "weights.pt"
    checkpoint.write_bytes(data)
    clip = tmp_path / "clip"
    write_png_frames(clip, bikes_frames[:1, :64, :64])
    out = tmp_path / "out.dhvc"
    result = runner.invoke(
        dhvc_app, ["encode", str(clip), "-o", str(out), "--checkpoint", str(checkpoint)]
    )
    line = _one_error_line(result)
    assert str(checkpoint) in line
    assert not marker.exists() and not out.exists()


def test_warm_start_weights_holding_code_are_refused_before_they_run(payload, tmp_path):
    data, marker = payload
    weights = tmp_path / "warm.pt"
    weights.write_bytes(data)
    result = _train_one_step(
        "--state", str(tmp_path / "new" / "state.pt"), "--resume", str(weights)
    )
    line = _one_error_line(result)
    assert str(weights) in line
    assert not marker.exists()


def test_a_training_pack_whose_files_hold_code_is_refused(payload, tmp_path):
    data, marker = payload
    pack = tmp_path / "pack"
    pack.mkdir()
    (pack / "manifest.json").write_bytes(data)
    result = runner.invoke(
        dhvc_app,
        ["train", "--state", str(tmp_path / "s" / "state.pt"), "--data", str(pack)],
    )
    line = _one_error_line(result)
    assert "manifest.json" in line or str(pack) in line
    assert not marker.exists()


@pytest.mark.parametrize("name", ["frames.csv", "packets.csv", "summary.json"])
def test_run_results_holding_code_are_refused(payload, tmp_path, name):
    from analysis.io import TraceError, load_run

    data, marker = payload
    run = tmp_path / "run"
    run.mkdir()
    for other in ("frames.csv", "packets.csv", "summary.json"):
        (run / other).write_text("{}" if other.endswith(".json") else "frame\n")
    (run / name).write_bytes(data)
    with pytest.raises((TraceError, ValueError, OSError)) as err:
        load_run(run)
    assert "\n" not in str(err.value).strip()
    assert not marker.exists()
