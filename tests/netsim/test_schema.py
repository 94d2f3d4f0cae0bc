"""The scenario reference (``netsim schema``, docs/SCENARIOS.md) is generated from the models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from netsim.cli import app
from netsim.scenario import Scenario
from netsim.schema import models_with_paths, scenario_reference, unit_of

DOC = Path(__file__).resolve().parents[2] / "docs" / "SCENARIOS.md"


def test_docs_scenarios_md_is_the_generated_reference() -> None:
    """Regenerate with UPDATE_DOCS=1 after changing a scenario model."""
    reference = scenario_reference()
    if os.environ.get("UPDATE_DOCS") == "1":
        DOC.write_text(reference, encoding="utf-8")
    assert DOC.read_text(encoding="utf-8") == reference, (
        "docs/SCENARIOS.md is stale: run UPDATE_DOCS=1 .venv/bin/python -m pytest "
        "tests/netsim/test_schema.py"
    )


def test_netsim_schema_prints_the_reference() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    assert result.output == scenario_reference()


def test_every_model_and_field_of_a_scenario_is_in_the_reference() -> None:
    reference = scenario_reference()
    models = [model for model, _ in models_with_paths(Scenario)]
    assert Scenario in models and len(models) >= 10
    for model in models:
        assert issubclass(model, BaseModel)
        assert f"## {model.__name__}\n" in reference
        for name in model.model_fields:
            assert f"| `{name}` |" in reference, f"{model.__name__}.{name} missing"


@pytest.mark.parametrize(
    ("name", "unit"),
    [
        ("delay_ms", "ms"),
        ("rate_kbps", "kbit/s"),
        ("mtu_bytes", "bytes"),
        ("width_px", "pixels"),
        ("gop_frames", "frames"),
        ("first_frame", "frame index"),
        ("fps", "frames/s"),
        ("loss_rate", ""),
    ],
)
def test_units_are_read_from_field_names(name: str, unit: str) -> None:
    assert unit_of(name) == unit


def test_limits_of_the_models_appear_in_the_reference() -> None:
    reference = scenario_reference()
    assert "| `width_px` | integer | pixels | `448` | 16 to 8192 |" in reference
    assert "| `lam` | number |  | `1024` | > 0 |" in reference
