"""The loss-resilience notebook runs top to bottom on traces and draws Fig. 22."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.analysis.synthetic_traces import write_synthetic_run

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "analysis" / "notebooks" / "loss_resilience.ipynb"


def execute_notebook(
    results: Path, figures: Path, runs: str, reference: str
) -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    parameters.source = (
        "from pathlib import Path\n"
        f"RESULTS_DIR = Path({str(results)!r})\n"
        f"RUNS = {runs.split(',')!r}\n"
        f"REFERENCE_RUN = {reference!r}\n"
        f"FIGURE_DIR = {str(figures)!r}\n"
    )
    client = NotebookClient(
        notebook, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(results)}}
    )
    return client.execute()


def test_notebook_reproduces_the_loss_figure_from_traces(tmp_path: Path) -> None:
    losses = {"loss20": {6: 4}, "loss40": {6: 4, 10: 3}, "loss80": {5: 3, 7: 2, 9: 4, 12: 2}}
    for name, lost in losses.items():
        write_synthetic_run(tmp_path / "results" / name, frames=20, losses=lost)
    write_synthetic_run(tmp_path / "results" / "clean", frames=20)
    executed = execute_notebook(
        tmp_path / "results", tmp_path / "figures", "loss20,loss40,loss80", "clean"
    )
    assert (tmp_path / "figures" / "loss_resilience_notebook.png").stat().st_size > 1000
    assert (tmp_path / "figures" / "loss_resilience_notebook.pdf").is_file()
    outputs = [o for cell in executed.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the figure is displayed"
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "frames_to_recover" in printed  # the desync events of loss80


def test_notebook_reports_a_missing_run_folder(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="run folder not found"):
        execute_notebook(tmp_path, tmp_path / "figures", "loss20", "")


@pytest.mark.slow
def test_notebook_runs_on_a_short_simulator_run(tmp_path: Path) -> None:
    from netsim.runner import run_scenario
    from netsim.scenario import load_scenario
    from netsim.sweep import apply_overrides

    tiny = {"codec.checkpoint": "none", "codec.preset": "tiny"}
    tiny |= {"video.width_px": 64, "video.height_px": 64}
    for name in ("loss80", "clean"):
        path = ROOT / "scenarios" / f"{name}.yaml"
        scenario = apply_overrides(load_scenario(path), tiny, {"base_dir": path.parent})
        run_scenario(scenario, tmp_path / "results" / name, frames=8)
    executed = execute_notebook(tmp_path / "results", tmp_path / "figures", "loss80", "clean")
    assert (tmp_path / "figures" / "loss_resilience_notebook.png").stat().st_size > 1000
    errors = [
        o
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "error"
    ]
    assert not errors
