"""The ``netsim`` command: one Typer app in netsim, and the console script that runs it."""

from __future__ import annotations

import ast
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

from typer.testing import CliRunner

import netsim.cli
from netsim.cli import app

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("validate", "run", "sweep", "schema")


def test_the_app_lists_its_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


def test_the_console_script_runs_netsim_cli_main() -> None:
    (script,) = entry_points(group="console_scripts", name="netsim")
    assert script.value == "netsim.launch:main"
    source = (ROOT / "netsim" / "launch.py").read_text(encoding="utf-8")
    assert 'launch("netsim.cli:main")' in source
    assert netsim.cli.main.__module__ == "netsim.cli"


def test_python_m_netsim_cli_help_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from netsim.launch import main; main()", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert command in result.stdout


def test_no_netsim_module_imports_analysis() -> None:
    """DESIGN: analysis -> netsim -> codec, never back."""
    for path in sorted((ROOT / "netsim").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n == "analysis" or n.startswith("analysis.") for n in names), path


def test_no_codec_module_imports_netsim_or_analysis() -> None:
    for path in sorted((ROOT / "codec").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] not in ("netsim", "analysis"), path
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] not in ("netsim", "analysis"), path
