"""Scenario files: every shipped scenario validates; user errors are one line, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from netsim.cli import app
from netsim.scenario import Scenario, ScenarioError, load_scenario

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").rglob("*.yaml"))  # compare/ too
REQUIRED = {
    "loss20",
    "loss40",
    "loss60",
    "loss80",
    "loss80_fec",
    "clean",
    "progressive",
    "echo_delay",
    "burst",
    "bottleneck",
}

runner = CliRunner()

VALID = """\
name: t
video: {source: "sample:bikes", width_px: 128, height_px: 64, frames: 4}
codec: {checkpoint: none, preset: tiny}
network:
  forward:
    kind: unlimited
    delay_ms: 10
"""


def test_all_required_scenarios_are_shipped() -> None:
    assert {p.stem for p in SCENARIOS} >= REQUIRED


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_shipped_scenario_validates(path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.name == path.stem
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output


def test_loss_scenarios_follow_paper_fig_22() -> None:
    for rate in (20, 40, 60, 80):
        s = load_scenario(SCENARIOS[0].parent / f"loss{rate}.yaml")
        loss = s.network.forward.loss
        assert loss.kind == "bernoulli" and loss.loss_rate == rate / 100
        assert (loss.first_frame, loss.last_frame, loss.exempt_scales) == (4, 28, (1,))
        assert s.video.frames == s.codec.gop_frames == 32
        assert s.network.feedback.enabled


def write(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (VALID + "colour: red\n", "colour"),
        (VALID.replace("delay_ms: 10", "dely_ms: 10"), "network.forward.dely_ms"),
        (VALID.replace("delay_ms: 10", "delay_ms: -5"), "network.forward.delay_ms"),
        (VALID.replace("frames: 4", "frames: many"), "video.frames"),
        (VALID.replace('"sample:bikes"', "missing.mp4"), "video.source"),
        (VALID.replace('"sample:bikes"', '"sample:nope"'), "video.source"),
        (
            VALID.replace("kind: unlimited", "kind: trace\n    trace_file: nope.down"),
            "network.forward.trace_file",
        ),
        (VALID.replace("kind: unlimited", "kind: wormhole"), "network.forward"),
        (
            VALID + "    loss: {kind: bernoulli, loss_rate: 1.5}\n",
            "network.forward.loss.loss_rate",
        ),
        (
            VALID + "    loss: {kind: gilbert_elliott, p: 0.1, r: 0.5, loss_rate: 0.1}\n",
            "network.forward.loss",
        ),
        (
            VALID + "    loss: {kind: explicit, packets: [{frame: 1, scale: 7}]}\n",
            "network.forward.loss.packets[0].scale",
        ),
        (VALID + "sender: {fec: {5: {data_packets: 1, parity_packets: 1}}}\n", "sender.fec.5"),
        (VALID.replace("name: t", "name: ../escape"), "name"),
        (VALID.replace("name: t\n", ""), "name"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_malformed_scenario_is_one_line_naming_file_and_field(
    tmp_path: Path, text: str, field: str, command: str
) -> None:
    path = write(tmp_path, text)
    extra = ["--out", str(tmp_path / "out")] if command == "run" else []
    result = runner.invoke(app, [command, str(path), *extra])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and f": {field}: " in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("text", "where"),
    [("name: [unclosed\n", "line"), ("- just\n- a list\n", "mapping"), ("", "mapping")],
)
def test_unreadable_yaml_is_one_line(tmp_path: Path, text: str, where: str) -> None:
    path = write(tmp_path, text)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and where in result.stderr


def test_missing_scenario_file_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_paths_are_relative_to_the_scenario_file(tmp_path: Path, monkeypatch) -> None:
    from codec.io.video import read_frames, write_png_frames

    folder = tmp_path / "scn"
    write_png_frames(folder / "clip", read_frames("sample:bikes", 2, (32, 32)))
    (folder / "link.down").write_text("1\n2\n")
    text = VALID.replace('"sample:bikes"', "clip").replace(
        "kind: unlimited", "kind: trace\n    trace_file: link.down"
    )
    write(folder, text, "s.yaml")
    monkeypatch.chdir(tmp_path)
    scenario = load_scenario(Path("scn/s.yaml"))
    assert Path(scenario.video.source) == (folder / "clip").resolve()
    assert Path(scenario.network.forward.trace_file) == (folder / "link.down").resolve()


def test_builtin_traces_resolve_inside_the_package(tmp_path: Path) -> None:
    text = VALID.replace(
        "kind: unlimited", "kind: trace\n    trace_file: builtin:Verizon-EVDO-driving.down"
    )
    scenario = load_scenario(write(tmp_path, text))
    trace = Path(scenario.network.forward.trace_file)
    assert (
        trace.is_file() and trace.parent.name == "traces" and trace.parent.parent.name == "netsim"
    )


def test_model_copy_makes_sweep_variants_and_keeps_the_source(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    base = load_scenario(path)
    variant = base.model_copy(update={"seed": 9})
    assert (variant.seed, base.seed) == (9, 0)
    assert variant.source_path == path
    with pytest.raises(Exception):  # noqa: B017 - frozen: pydantic raises ValidationError
        base.seed = 3  # type: ignore[misc]


def test_scenario_error_is_typed_and_one_line(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, VALID + "extra: 1\n"))
    assert caught.value.field == "extra" and "\n" not in str(caught.value)


def test_defaults_describe_a_cpu_friendly_clean_run() -> None:
    s = Scenario(name="x")
    assert (s.video.source, s.video.width_px, s.video.height_px) == ("sample:bikes", 448, 256)
    assert s.network.forward.kind == "unlimited" and s.network.forward.loss.kind == "none"
