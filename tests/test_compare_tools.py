"""The comparison's maintenance scripts: benchmarks/h26x_rate_match.py --write (the re-matched
QPs put into scenarios/compare) and benchmarks/compare_report.py (the README's tables)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from netsim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_a_rate_match_is_written_into_every_compare_scenario(tmp_path: Path) -> None:
    rate_match = _script("h26x_rate_match")
    folder = tmp_path / "compare"
    shutil.copytree(ROOT / "scenarios" / "compare", folder)
    report = {"x264": {"qp": 17, "bitrate_kbps": 655.25}, "x265": {"qp": 16, "bitrate_kbps": 640.0}}
    changed = rate_match.write_scenarios(folder, 650.1234, report)
    assert len(changed) == len(list(folder.glob("compare_*.yaml")))
    for path in folder.glob("compare_*.yaml"):
        scenario = load_scenario(path)
        codec = scenario.codec.kind
        if codec == "dhvc":
            assert "its clean mean bitrate, 650.1 kbit/s," in scenario.description
        else:
            assert scenario.codec.h26x.qp == report[codec]["qp"]
            assert scenario.codec.h26x.matched_bitrate_kbps == pytest.approx(650.1234)
            rate = report[codec]["bitrate_kbps"]
            assert f"QP {report[codec]['qp']}, the integer QP whose clean bitrate ({rate:.1f}" in (
                scenario.description
            )
    assert rate_match.write_scenarios(folder, 650.1234, report) == []  # idempotent


def test_the_report_prints_what_the_results_hold_and_names_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _script("compare_report")
    sweeps = tmp_path / "sweeps" / "compare_x264"
    sweeps.mkdir(parents=True)
    rows = [
        "run,network.forward.loss.loss_rate,seed,mean_psnr_db,"
        "summary.damage.packets_per_frame,summary.damage.frames_under_25db_share",
        "a,0.0,0,40.0,2.0,0.0",
        "b,0.0,1,42.0,2.0,0.0",
        "c,0.1,0,30.0,3.0,0.25",
    ]
    (sweeps / "sweep_table.csv").write_text("\n".join(rows) + "\n")
    report.bernoulli_tables(tmp_path)
    out = capsys.readouterr().out
    assert "| x264 | 41.00 | - | 30.00 | - | - |" in out
    assert "compare_dhvc/sweep_table.csv: missing" in out
    assert "| packets/frame: x264 | 2.00 | - | 3.00 | - | - |" in out
    assert "| frames under 25 dB: x264 | 0.0% | - | 25.0% | - | - |" in out
