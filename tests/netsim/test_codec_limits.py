"""Issue 21 item 4: what ``netsim validate`` accepts runs for the codec it names. Each codec's
limits (picture size, settings it would ignore) are validation errors naming the file and the
field, checked through its registry entry (``CodecEntry.check_scenario``/``check_settings``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from netsim.cli import app
from netsim.scenario import ScenarioError, load_scenario

runner = CliRunner()

H26X: dict[str, Any] = {
    "name": "limits",
    "video": {"source": "sample:bikes", "width_px": 64, "height_px": 64, "frames": 2},
    "codec": {"kind": "x264", "gop_frames": 2, "h26x": {"qp": 30, "preset": "ultrafast"}},
    "network": {"forward": {"kind": "unlimited", "delay_ms": 10}},
}


def scenario_file(tmp_path: Path, changes: dict[str, Any]) -> Path:
    """``H26X`` with ``changes`` at dotted paths, written as YAML."""
    data = copy.deepcopy(H26X)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def refused(path: Path) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(f"{path}: ")
    return caught.value


@pytest.mark.parametrize(
    ("width_px", "height_px", "field"),
    [(16, 64, "video.width_px"), (64, 30, "video.height_px"), (8192, 16, "video.height_px")],
)
def test_x265_pictures_smaller_than_one_ctu_are_refused(
    tmp_path: Path, width_px: int, height_px: int, field: str
) -> None:
    path = scenario_file(
        tmp_path,
        {"codec.kind": "x265", "video.width_px": width_px, "video.height_px": height_px},
    )
    error = refused(path)
    assert error.field == field and "CTU" in error.message


def test_x264_pictures_wider_than_libx264_runs_are_refused(tmp_path: Path) -> None:
    error = refused(scenario_file(tmp_path, {"video.width_px": 8192, "video.height_px": 16}))
    assert error.field == "video.width_px" and "4096" in error.message


@pytest.mark.parametrize("kind", ["x264", "x265"])
@pytest.mark.parametrize(
    ("field", "value"),
    [("lam", 512.0), ("checkpoint", "none"), ("preset", "tiny"), ("motion", "none")],
)
def test_dhvc_settings_given_to_a_standard_codec_are_refused(
    tmp_path: Path, kind: str, field: str, value: Any
) -> None:
    error = refused(scenario_file(tmp_path, {"codec.kind": kind, f"codec.{field}": value}))
    assert error.field == f"codec.{field}" and "only for kind dhvc" in error.message


def test_x265_slices_given_to_x264_are_refused(tmp_path: Path) -> None:
    error = refused(scenario_file(tmp_path, {"codec.h26x.x265_slices": 4}))
    assert error.field == "codec.h26x.x265_slices"
    load_scenario(
        scenario_file(
            tmp_path,
            {"codec.kind": "x265", "codec.h26x.x265_slices": 4, "video.width_px": 128},
        )
    )


@pytest.mark.parametrize(
    ("width_px", "height_px", "slices", "field"),
    [
        (64, 512, 2, "video.width_px"),
        (448, 2048, 8, "video.height_px"),
        (448, 256, 16, "codec.h26x.x265_slices"),
    ],
)
def test_x265_slicings_that_crash_libx265_are_refused(
    tmp_path: Path, width_px: int, height_px: int, slices: int, field: str
) -> None:
    error = refused(
        scenario_file(
            tmp_path,
            {
                "codec.kind": "x265",
                "codec.h26x.x265_slices": slices,
                "video.width_px": width_px,
                "video.height_px": height_px,
            },
        )
    )
    assert error.field == field and "x265" in error.message


@pytest.mark.parametrize(
    ("kind", "width_px", "height_px", "slices"),
    [("x265", 32, 32, 1), ("x265", 128, 512, 2), ("x264", 4096, 16, 8), ("x264", 16, 16, 8)],
)
def test_the_limits_themselves_validate_and_run(
    tmp_path: Path, kind: str, width_px: int, height_px: int, slices: int
) -> None:
    changes = {"codec.kind": kind, "video.width_px": width_px, "video.height_px": height_px}
    if kind == "x265":
        changes["codec.h26x.x265_slices"] = slices
    path = scenario_file(tmp_path, changes)
    assert runner.invoke(app, ["validate", str(path)]).exit_code == 0
    result = runner.invoke(app, ["run", str(path), "--device", "cpu", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "summary.json").is_file()


@pytest.mark.parametrize("kind", ["x264", "x265"])
def test_explicit_losses_on_layers_a_standard_codec_never_sends_are_refused(
    tmp_path: Path, kind: str
) -> None:
    lost = [{"frame": 1, "scale": 1, "fragment": 0}, {"frame": 1, "scale": 3}]
    loss = {"kind": "explicit", "packets": lost}
    video = {"video.width_px": 128} if kind == "x265" else {}
    error = refused(
        scenario_file(tmp_path, {"codec.kind": kind, "network.forward.loss": loss, **video})
    )
    assert error.field == "network.forward.loss.packets[1].scale"
    assert "scale 1" in error.message and "got 3" in error.message
    load_scenario(
        scenario_file(
            tmp_path,
            {"codec.kind": kind, "network.forward.loss": {**loss, "packets": lost[:1]}} | video,
        )
    )


@pytest.mark.parametrize(("motion", "expected"), [(None, True), ("blocks", True), ("none", False)])
def test_dhvc_follows_motion_with_blocks_unless_told_none(motion: str | None, expected: bool):
    from netsim.codecs.dhvc import load_dhvc
    from netsim.scenario import Scenario

    codec = {"checkpoint": "none", "preset": "tiny"} | ({"motion": motion} if motion else {})
    scenario = Scenario.model_validate({"name": "a", "codec": codec})
    loaded = load_dhvc(scenario, np.zeros((2, 64, 64, 3), np.uint8), "cpu")
    assert loaded.encoder.motion is expected
