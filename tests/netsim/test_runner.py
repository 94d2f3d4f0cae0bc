"""End to end with the tiny random-weight codec: outputs, determinism, atomic writes, CLI."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import netsim.runner
from netsim.cli import app
from netsim.runner import RunError, run_scenario
from netsim.scenario import Scenario, ScenarioError, load_scenario
from netsim.trace import FRAME_COLUMNS, PACKET_COLUMNS

TINY = """\
name: tiny
seed: 4
video: {source: "sample:bikes", width_px: 128, height_px: 64, frames: 10, fps: 25}
codec: {checkpoint: none, preset: tiny, lam: 1024}
sender: {mtu_bytes: 80}
network:
  forward:
    kind: unlimited
    delay_ms: 10
    jitter_ms: 6
    loss: {kind: bernoulli, loss_rate: 0.4, first_frame: 2, last_frame: 5, exempt_scales: [1]}
  feedback: {delay_frames: 1}
receiver: {playout_delay_ms: 30, echo_timeout_ms: 200}
"""


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny(tmp_path: Path) -> Scenario:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return load_scenario(path)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_run_writes_traces_and_summary_as_designed(tiny: Scenario, tmp_path: Path) -> None:
    progress: list[tuple[int, int]] = []
    summary = run_scenario(tiny, tmp_path / "out", on_frame=lambda d, t: progress.append((d, t)))
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["frames.csv", "packets.csv", "summary.json"]
    assert progress == [(i, 10) for i in range(1, 11)]
    frames = read_csv(out / "frames.csv")
    packets = read_csv(out / "packets.csv")
    assert tuple(frames[0]) == FRAME_COLUMNS and tuple(packets[0]) == PACKET_COLUMNS
    assert [int(f["frame"]) for f in frames] == list(range(10))
    assert all(math.isfinite(float(f["psnr"])) for f in frames)  # a picture for every frame
    assert frames[0]["frame_type"] == "I"
    lost = [p for p in packets if p["fate"] == "lost"]
    assert lost and all(2 <= int(p["frame"]) <= 5 and p["scale"] != "1" for p in lost)
    assert all(p["arrival_time_s"] == "" for p in lost)
    echoes = [f for f in frames if f["echo_sent"] == "True"]
    assert echoes and any(f["frame_type"] == "R" for f in frames)
    assert int(frames[-1]["first_desynced_scale"]) == 5
    for f in frames:
        bits = sum(int(f[f"bits_s{k}"]) for k in range(1, 5))
        assert int(f["bits_total"]) == bits
        assert float(f["bpp"]) == pytest.approx(bits / (128 * 64), abs=1e-6)
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["seed"] == 4 and on_disk["scenario"]["name"] == "tiny"
    assert on_disk["mean_psnr_db"] == pytest.approx(summary.mean_psnr_db)
    timing = on_disk["timing"]
    assert timing["simulator_overhead_s"] == pytest.approx(
        timing["wall_time_s"] - timing["encode_time_s"] - timing["decode_time_s"]
    )
    assert 0 < timing["simulator_overhead_fraction"] < 1
    model = on_disk["loss"]["loss_model"]
    assert model["analytic_loss_rate"] == 0.4 and model["lost_packets"] == len(lost)
    assert on_disk["versions"]["torch"] and on_disk["loss"]["packets_sent"] == len(packets)


def test_same_scenario_and_seed_give_byte_identical_traces(tiny: Scenario, tmp_path: Path) -> None:
    run_scenario(tiny, tmp_path / "a")
    run_scenario(tiny, tmp_path / "b")
    run_scenario(tiny, tmp_path / "c", seed=5)
    for name in ("frames.csv", "packets.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a/packets.csv").read_bytes() != (tmp_path / "c/packets.csv").read_bytes()


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_interrupted_run_writes_nothing_and_keeps_earlier_results(
    tiny: Scenario, tmp_path: Path
) -> None:
    out = tmp_path / "results" / "tiny"
    out.parent.mkdir()

    def interrupt(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_scenario(tiny, out, on_frame=interrupt)
    assert not out.exists() and leftovers(out.parent) == []
    run_scenario(tiny, out, frames=4)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(KeyboardInterrupt):
        run_scenario(tiny, out, on_frame=interrupt)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert leftovers(out.parent) == []


def test_failure_while_writing_leaves_no_half_written_files(
    tiny: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_writer(path: Path, records: object) -> None:
        path.write_text("seq,frame\n0,")
        raise OSError("disk full")

    monkeypatch.setattr(netsim.runner, "write_packets_csv", broken_writer)
    with pytest.raises(RunError, match=r"packets\.csv: cannot write: disk full"):
        run_scenario(tiny, tmp_path / "out", frames=2)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_output_folder_holding_other_files_is_refused(tiny: Scenario, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="other files"):
        run_scenario(tiny, tmp_path, frames=1)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_lambda_outside_the_models_range_names_the_field(tiny: Scenario, tmp_path: Path) -> None:
    scenario = tiny.model_copy(update={"codec": tiny.codec.model_copy(update={"lam": 1e6})})
    with pytest.raises(ScenarioError, match="codec.lam"):
        run_scenario(scenario, tmp_path / "out", frames=1)


def test_cli_run_writes_results_and_video(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["run", str(path), "--out", str(out), "--frames", "3", "--device", "cpu", "--save-video"],
    )
    assert result.exit_code == 0, result.output
    assert (out / "video.mp4").stat().st_size > 0
    assert len(read_csv(out / "frames.csv")) == 3
    assert "mean PSNR" in result.stdout


def test_cli_refuses_an_unavailable_device(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    result = CliRunner().invoke(
        app, ["run", str(path), "--device", "cuda", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2 and "cuda" in result.stderr


@pytest.mark.slow
def test_shipped_echo_delay_scenario_reproduces_fig_13(tmp_path: Path) -> None:
    scenario = load_scenario(Path(__file__).parents[2] / "scenarios" / "echo_delay.yaml")
    run_scenario(scenario, tmp_path / "out", frames=10, device="cpu")
    frames = read_csv(tmp_path / "out" / "frames.csv")
    d = [int(f["first_desynced_scale"]) for f in frames]
    assert d == [5] * 5 + [4, 4, 4] + [5, 5]
    assert [f["frame"] for f in frames if f["echo_sent"] == "True"] == ["5"]
    assert [(f["frame"], f["resync_from"]) for f in frames if f["frame_type"] == "R"] == [
        ("8", "4")
    ]
    packets = read_csv(tmp_path / "out" / "packets.csv")
    assert {(p["frame"], p["scale"]) for p in packets if p["fate"] == "lost"} == {("5", "4")}


def test_traces_do_not_depend_on_the_torch_thread_count(tmp_path: Path) -> None:
    """The shipped weights on the Fig. 22 scenario wrote different traces on 1 and 2 threads
    (a scale-4 payload of 1924 against 1920 bytes) until coding ran on a fixed thread count."""
    scenario = load_scenario(Path(__file__).parents[2] / "scenarios" / "loss80.yaml")
    run_scenario(scenario, tmp_path / "one")  # the autouse fixture runs on one thread
    torch.set_num_threads(2)
    run_scenario(scenario, tmp_path / "two")
    for name in ("frames.csv", "packets.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
