"""Issue 11: every value the simulator cannot honour is refused at ``netsim validate`` time, in
one line naming the file and the field; the CLI never prints a traceback or a usage box."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import netsim.runner
import netsim.scenario
from codec.model.config import check_lambda, get_preset
from netsim.cli import app
from netsim.mahimahi import (
    MAX_TIMESTAMP_MS,
    MAX_TRACE_FILE_BYTES,
    TraceFormatError,
    load_delivery_trace,
)
from netsim.packetizer import PacketizationError, packetize
from netsim.scenario import (
    MAX_SCENARIO_FILE_BYTES,
    Scenario,
    ScenarioError,
    load_scenario,
)
from tests.netsim.fakes import FakeEncoder

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))

runner = CliRunner()

BASE: dict[str, Any] = {
    "name": "limits",
    "video": {"source": "sample:bikes", "width_px": 128, "height_px": 64, "frames": 4},
    "codec": {"checkpoint": "none", "preset": "tiny"},
    "network": {"forward": {"kind": "unlimited", "delay_ms": 10}},
}


def scenario_file(tmp_path: Path, changes: dict[str, Any], name: str = "s.yaml") -> Path:
    """``BASE`` with ``changes`` at dotted paths (value ``...`` deletes), written as YAML."""
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        if value is ...:
            node.pop(last, None)
        else:
            node[last] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def refused_field(path: Path) -> str:
    """The field a refused scenario names (asserting the one-line format)."""
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    line = str(caught.value)
    assert "\n" not in line and line.startswith(f"{path}: ")
    return caught.value.field or ""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("network.forward.jitter_ms", math.inf),
        ("network.forward.delay_ms", math.nan),
        ("video.fps", math.inf),
        ("codec.lam", math.inf),
        ("receiver.playout_delay_ms", -math.inf),
        ("network.feedback.delay_ms", math.inf),
        ("network.feedback.delay_frames", math.nan),
        ("network.forward.loss", {"kind": "bernoulli", "loss_rate": math.nan}),
    ],
)
def test_non_finite_numbers_are_refused(tmp_path: Path, field: str, value: Any) -> None:
    assert refused_field(scenario_file(tmp_path, {field: value})).startswith(field)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"video.fps": 5e-324}, "video.fps"),
        ({"video.fps": 1e6}, "video.fps"),
        ({"receiver.echo_timeout_ms": 5e-324}, "receiver.echo_timeout_ms"),
        ({"sender.encode_time_ms": 1e30}, "sender.encode_time_ms"),
        ({"receiver.decode_time_ms": 1e30}, "receiver.decode_time_ms"),
        ({"network.forward.jitter_ms": 1e300}, "network.forward.jitter_ms"),
        ({"video.frames": 10**6}, "video.frames"),
        ({"video.width_px": 100_000}, "video.width_px"),
        ({"video.start_frame": 10**12}, "video.start_frame"),
        ({"seed": 2**63}, "seed"),
        ({"network.feedback.delay_frames": 1e12}, "network.feedback.delay_frames"),
        (
            {"video.fps": 0.1, "network.feedback.delay_frames": 1000},  # 10,000 s
            "network.feedback.delay_frames",
        ),
        (
            {"network.forward": {"kind": "rate", "rate_kbps": 1e-300}},
            "network.forward.rate_kbps",
        ),
        ({"network.forward": {"kind": "rate", "rate_kbps": 1e12}}, "network.forward.rate_kbps"),
        (
            {"network.forward": {"kind": "rate", "rate_kbps": 500, "queue_bytes": 10**12}},
            "network.forward.queue_bytes",
        ),
        (
            {
                "network.forward.loss": {
                    "kind": "explicit",
                    "packets": [{"frame": 2**40, "scale": 1}],
                }
            },
            "network.forward.loss.packets[0].frame",
        ),
    ],
)
def test_values_beyond_what_the_simulator_can_honour_are_refused(
    tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    assert refused_field(scenario_file(tmp_path, changes)) == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("video.frames", True),
        ("video.fps", True),
        ("codec.lam", False),
        ("seed", True),
        ("sender.mtu_bytes", True),
        ("network.forward.delay_ms", True),
        ("network.feedback.enabled", 1),
    ],
)
def test_booleans_and_numbers_do_not_stand_in_for_each_other(
    tmp_path: Path, field: str, value: Any
) -> None:
    assert refused_field(scenario_file(tmp_path, {field: value})) == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("video.frames", "12"),
        ("video.fps", "25"),
        ("codec.lam", "1024"),
        ("network.forward.delay_ms", "10"),
        ("video.frames", 12.0),  # a count is a whole number
        ("network.feedback.enabled", "yes"),
    ],
)
def test_strings_are_not_numbers(tmp_path: Path, field: str, value: Any) -> None:
    assert refused_field(scenario_file(tmp_path, {field: value})) == field


def test_exponent_notation_is_a_number_and_repeated_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    text = yaml.safe_dump(BASE).replace("delay_ms: 10", "delay_ms: 1e2")
    path.write_text(text + "receiver: {playout_delay_ms: 2.5E+2}\n")
    scenario = load_scenario(path)
    assert scenario.network.forward.delay_ms == 100.0
    assert scenario.receiver.playout_delay_ms == 250.0
    path.write_text(yaml.safe_dump(BASE) + "seed: 1\nseed: 2\n")
    with pytest.raises(ScenarioError, match="appears twice"):
        load_scenario(path)


@pytest.mark.parametrize(
    "text",
    ["name: t\ndescription: " + "[" * 5000 + "]" * 5000 + "\n", "name: t\nseed: " + "9" * 5000],
)
def test_hostile_yaml_is_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "h.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError, match="invalid YAML") as caught:
        load_scenario(path)
    assert "\n" not in str(caught.value)


# ----------------------------------------------------------------------------- MTU and FEC


@pytest.mark.parametrize("mtu_bytes", [47, 50, 55, 74])
def test_an_mtu_too_small_for_the_largest_scale_is_refused(tmp_path: Path, mtu_bytes: int) -> None:
    # 448x256 with the tiny preset: scale 4 has 32 x 56 x 4 latent values, budgeted at 8 bits.
    changes = {"video.width_px": 448, "video.height_px": 256, "sender.mtu_bytes": mtu_bytes}
    path = scenario_file(tmp_path, changes)
    assert refused_field(path) == "sender.mtu_bytes"
    with pytest.raises(ScenarioError, match=r"use mtu_bytes >= 75"):
        load_scenario(path)
    assert load_scenario(scenario_file(tmp_path, {**changes, "sender.mtu_bytes": 75}))


def test_progressive_scenarios_check_only_the_scales_they_send(tmp_path: Path) -> None:
    changes = {"video.width_px": 448, "video.height_px": 256, "sender.mtu_bytes": 50}
    assert refused_field(scenario_file(tmp_path, changes)) == "sender.mtu_bytes"
    assert load_scenario(scenario_file(tmp_path, {**changes, "sender.max_scales": 2}))


def test_fec_that_cannot_grow_with_a_large_scale_is_refused(tmp_path: Path) -> None:
    # Scale 4 needs several 1154-byte packets; a 1-of-256 code then needs 255 parity per packet.
    fec = {4: {"data_packets": 1, "parity_packets": 255}}
    changes = {"video.width_px": 448, "video.height_px": 256, "sender.fec": fec}
    assert refused_field(scenario_file(tmp_path, changes)) == "sender.fec.4"
    small = {**changes, "video.width_px": 64, "video.height_px": 64}  # one packet per scale
    assert load_scenario(scenario_file(tmp_path, small)).sender.fec[4].parity_packets == 255


def test_the_packetizer_refuses_a_scale_beyond_max_fragments_with_the_setting_at_fault() -> None:
    frame = FakeEncoder((10, 10, 10, 3000)).encode(0, None)
    with pytest.raises(PacketizationError, match="more than the 256") as caught:
        packetize(frame, first_seq=0, mtu_bytes=50)
    assert caught.value.setting == "mtu_bytes"
    from netsim.fec import FecParams

    with pytest.raises(PacketizationError) as caught:
        packetize(frame, first_seq=0, mtu_bytes=1200, fec={4: FecParams(1, 255)})
    assert caught.value.setting == "fec.4"


def test_a_packetization_error_during_a_run_is_one_line_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def too_big(*args: Any, **kwargs: Any) -> None:
        raise PacketizationError("scale 4 of frame 3 (90000 bytes) needs 400 packets")

    monkeypatch.setattr(netsim.runner, "run_scenario", too_big)
    path = scenario_file(tmp_path, {})
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: sender.mtu_bytes: scale 4 of frame 3 (90000 bytes) needs 400 packets"
    ]


# ----------------------------------------------------------------------------- traces and files


def test_trace_timestamps_are_bounded(tmp_path: Path) -> None:
    trace = tmp_path / "t.down"
    trace.write_text("1\n" + "7" * 400 + "\n")
    with pytest.raises(TraceFormatError, match="line 2: timestamp 7{20}\\.\\.\\. is above"):
        load_delivery_trace(trace)
    trace.write_text(f"1\n{MAX_TIMESTAMP_MS + 1}\n")
    with pytest.raises(TraceFormatError, match="largest accepted"):
        load_delivery_trace(trace)
    trace.write_text(f"1\n{MAX_TIMESTAMP_MS}\n")
    assert load_delivery_trace(trace).period_ms == MAX_TIMESTAMP_MS
    trace.write_text("1\n" + "7" * 400 + "\n")
    forward = {"kind": "trace", "trace_file": str(trace)}
    path = scenario_file(tmp_path, {"network.forward": forward})
    assert refused_field(path) == "network.forward.trace_file"


def test_trace_files_are_read_up_to_a_limit(tmp_path: Path) -> None:
    trace = tmp_path / "huge.down"
    with trace.open("wb") as handle:
        handle.truncate(MAX_TRACE_FILE_BYTES + 1)  # sparse: no disk space used
    with pytest.raises(TraceFormatError, match="larger than"):
        load_delivery_trace(trace)


def test_scenario_files_are_read_up_to_a_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(yaml.safe_dump(BASE) + "#" * MAX_SCENARIO_FILE_BYTES + "\n")
    with pytest.raises(ScenarioError, match="larger than"):
        load_scenario(big)
    zero = Path("/dev/zero")
    if zero.exists():  # a device never ends: one line, quickly
        with pytest.raises(ScenarioError, match="larger than"):
            load_scenario(zero)
        result = runner.invoke(app, ["validate", str(zero)])
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- lambda


def test_check_lambda_accepts_exactly_the_models_range() -> None:
    config = get_preset("tiny")
    check_lambda(config.lambda_min, config)
    check_lambda(config.lambda_max, config)
    for lam in (config.lambda_min / 2, config.lambda_max * 2, math.nan):
        with pytest.raises(ValueError, match="outside the model's range"):
            check_lambda(lam, config)


@pytest.mark.parametrize("checkpoint", ["default", "none"])
@pytest.mark.parametrize("lam", [100_000, 1, 1e-6])
def test_a_lambda_outside_the_named_models_range_is_refused(
    tmp_path: Path, checkpoint: str, lam: float
) -> None:
    codec = {"checkpoint": checkpoint, "lam": lam}
    path = scenario_file(tmp_path, {"codec": codec})
    assert refused_field(path) == "codec.lam"
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "codec.lam: lambda" in result.stderr


@pytest.mark.parametrize(
    ("codec", "field"),
    [
        ({"checkpoint": "default", "preset": "tiny"}, "codec.preset"),
        ({"checkpoint": "none", "preset": "enormous"}, "codec.preset"),
    ],
)
def test_a_model_that_cannot_be_built_is_refused(
    tmp_path: Path, codec: dict[str, Any], field: str
) -> None:
    assert refused_field(scenario_file(tmp_path, {"codec": codec})) == field


def test_a_checkpoint_that_is_not_one_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    path = scenario_file(tmp_path, {"codec": {"checkpoint": "bad.pt"}})
    assert refused_field(path) == "codec.checkpoint"


# ----------------------------------------------------------------------------- CLI


@pytest.mark.parametrize(
    ("arguments", "line"),
    [
        (["--frames", "0"], "error: --frames must be >= 1 (got 0)"),
        (["--frames", "-3"], "error: --frames must be >= 1 (got -3)"),
        (["--seed", "-1"], "error: --seed must be >= 0 (got -1)"),
        (["--seed", str(2**63)], f"error: --seed must be <= {2**63 - 1} (got {2**63})"),
    ],
)
def test_run_options_out_of_range_are_one_line(
    tmp_path: Path, arguments: list[str], line: str
) -> None:
    path = scenario_file(tmp_path, {})
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "o"), *arguments])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [line]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["run", "x.yaml", "--frames", "abc"], "--frames"),
        (["run"], "Missing argument"),
        (["run", "x.yaml", "--frams", "3"], "No such option"),
        (["validate", "a.yaml", "b.yaml"], "unexpected extra argument"),
        (["explode"], "No such command"),
    ],
)
def test_command_lines_that_do_not_parse_are_one_line(arguments: list[str], expected: str) -> None:
    result = runner.invoke(app, arguments)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines


def test_an_interrupt_is_one_line_and_exit_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(path: Path) -> Scenario:
        raise KeyboardInterrupt

    monkeypatch.setattr(netsim.scenario, "load_scenario", interrupted)
    for command in ("validate", "run"):
        result = runner.invoke(app, [command, str(tmp_path / "s.yaml")])
        assert result.exit_code == 130
        assert result.stderr.strip().splitlines() == ["interrupted"]


def test_an_unexpected_error_is_still_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(path: Path) -> Scenario:
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(netsim.scenario, "load_scenario", broken)
    result = runner.invoke(app, ["validate", str(tmp_path / "s.yaml")])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "RuntimeError: first line second line" in lines[0]


# ----------------------------------------------------------------------------- property


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a parsed YAML document (mapping keys and list indexes)."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


DELETE = object()

VALUES = st.one_of(
    st.sampled_from(
        [DELETE, None, True, False, 0, -1, 2**63, 10**400, math.inf, -math.inf, math.nan]
    ),
    st.sampled_from([5e-324, 1e30, -0.0, 0.5, 1e6, 65508, 47, 256, 257]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
    st.lists(st.integers(min_value=-5, max_value=300), max_size=3),
    st.dictionaries(st.sampled_from(["kind", "x", "1", "delay_ms"]), st.integers(), max_size=2),
)


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_scenario_mutations_never_crash(data: st.DataObject, tmp_path_factory) -> None:
    source = data.draw(st.sampled_from(SCENARIOS), label="scenario")
    document = yaml.safe_load(source.read_text(encoding="utf-8"))
    path = data.draw(st.sampled_from(_paths(document)), label="path")
    value = data.draw(VALUES, label="value")
    node = document
    for part in path[:-1]:
        node = node[part]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    target = tmp_path_factory.mktemp("mutated") / source.name
    target.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    try:
        scenario = load_scenario(target)
    except ScenarioError as err:
        assert "\n" not in str(err) and "\r" not in str(err)
    else:
        assert isinstance(scenario, Scenario)
