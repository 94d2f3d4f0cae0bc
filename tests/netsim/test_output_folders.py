"""A run never silently replaces a different run's results (DESIGN 5)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from netsim.cli import app
from netsim.runner import default_output_folder
from netsim.scenario import load_scenario
from tests.netsim.test_runner import TINY


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_default_folder_names_what_differs_from_the_scenario(scenario_file: Path) -> None:
    scenario = load_scenario(scenario_file)  # seed 4, 10 frames
    root = Path("results")
    assert default_output_folder(scenario) == root / "tiny"
    assert default_output_folder(scenario, seed=4, frames=10) == root / "tiny"
    assert default_output_folder(scenario, seed=7) == root / "tiny-seed7"
    assert default_output_folder(scenario, frames=3) == root / "tiny-f3"
    assert default_output_folder(scenario, seed=7, frames=3) == root / "tiny-seed7-f3"


def test_two_runs_with_different_seeds_both_keep_their_results(
    scenario_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    common = ["run", str(scenario_file), "--frames", "3", "--device", "cpu"]
    first = runner.invoke(app, common)
    second = runner.invoke(app, [*common, "--seed", "9"])
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    first_dir, second_dir = tmp_path / "results" / "tiny-f3", tmp_path / "results" / "tiny-seed9-f3"
    assert json.loads((first_dir / "summary.json").read_text())["seed"] == 4
    assert json.loads((second_dir / "summary.json").read_text())["seed"] == 9
    assert (first_dir / "frames.csv").is_file() and (second_dir / "frames.csv").is_file()
