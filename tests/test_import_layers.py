"""Imports point one way: each codec subpackage imports only the layers below it, netsim only
codec's public modules, analysis no codec internals (DESIGN: analysis -> netsim -> codec).

Read with ``ast`` from the source, every ``import`` counted (inside functions and
``TYPE_CHECKING`` blocks too), so a lazy import cannot hide a wrong dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CODEC_LAYERS: dict[str, set[str]] = {
    "codec.types": set(),
    "codec.threads": set(),
    "codec.metrics": {"codec.threads"},
    "codec.io": {"codec.io"},
    "codec.entropy": {"codec.entropy"},
    "codec.h26x": {"codec.h26x"},
    "codec.pack": {"codec.pack", "codec.io"},
    "codec.model": {"codec.model", "codec.entropy", "codec.io", "codec.types"},
    "codec.stream": {
        "codec.stream",
        "codec.model",
        "codec.entropy",
        "codec.io",
        "codec.types",
        "codec.threads",
    },
    "codec.train": {"codec.train", "codec.model", "codec.pack.load", "codec.io", "codec.types"},
    "codec.rd": {
        "codec.rd",
        "codec.stream",
        "codec.model",
        "codec.h26x",
        "codec.metrics",
        "codec.io",
        "codec.pack.load",
        "codec.train.synth",  # set:val's synthetic motion over held-out photos
        "codec.types",
    },
    "codec.cli": {"codec"},
    "codec": {"codec"},  # the package's lazy public API
}
"""Codec layer (a module or subpackage) -> what it may import: a listed name and everything
under it. The longest layer name that contains a module is its layer."""

NETSIM_MAY_IMPORT = {
    "codec",  # the public API: load_model, Encoder, Decoder, DHVC, CheckpointError
    "codec.types",
    "codec.metrics",
    "codec.threads",
    "codec.io",
    "codec.h26x.realtime",
    "codec.model.config",
    "codec.model.checkpoint",
    "codec.model.device",
    "codec.cli.base",
    "codec.cli.launch",
}
"""The codec modules netsim uses; ``codec`` alone allows only the package itself."""

ANALYSIS_MUST_NOT_IMPORT = (
    "codec.train",
    "codec.pack",
    "codec.entropy",
    "codec.stream",
    "codec.cli.dhvc",
    "codec.h26x",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    """Whether ``name`` (dotted) is a module or package of this repository."""
    path = ROOT / name.replace(".", "/")
    return path.with_suffix(".py").exists() or path.is_dir()


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports; ``from codec import X`` counts as ``codec.X`` when X is
    a submodule, else as ``codec`` (whose ``__init__`` holds the public API)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = [
                f"{node.module}.{alias.name}"
                for alias in node.names
                if is_module(f"{node.module}.{alias.name}")
            ]
            found.update(submodules)
            if len(submodules) < len(node.names):  # a name defined in the module itself
                found.add(node.module)
    return found


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def permitted(module: str, allowed: set[str]) -> bool:
    return any(under(module, name) for name in allowed)


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def codec_layer(module: str) -> str:
    return max((layer for layer in CODEC_LAYERS if under(module, layer)), key=len)


def test_every_codec_module_has_a_layer():
    for path in sources("codec"):
        assert codec_layer(module_name(path)) in CODEC_LAYERS


@pytest.mark.parametrize("path", sources("codec"), ids=lambda p: module_name(p))
def test_codec_imports_only_lower_layers(path: Path):
    module = module_name(path)
    allowed = CODEC_LAYERS[codec_layer(module)]
    wrong = sorted(n for n in imports(path) if under(n, "codec") and not permitted(n, allowed))
    assert not wrong, f"{module} ({codec_layer(module)}) imports {wrong}"


def test_runtime_code_reads_the_pack_through_its_loader_not_the_builder():
    """Only ``codec.pack.load`` (location, manifest, reader) serves code outside the builder."""
    for path in [*sources("codec"), *sources("netsim"), *sources("analysis")]:
        module = module_name(path)
        if under(module, "codec.pack"):
            continue
        builder = [n for n in imports(path) if under(n, "codec.pack") and n != "codec.pack.load"]
        assert not builder, f"{module} imports {builder}"


def test_nothing_outside_netsim_and_analysis_imports_them_from_codec():
    for path in sources("codec"):
        upward = [n for n in imports(path) if under(n, "netsim") or under(n, "analysis")]
        assert not upward, f"{module_name(path)} imports {upward}"


@pytest.mark.parametrize("path", sources("netsim"), ids=lambda p: module_name(p))
def test_netsim_imports_only_the_codec_modules_it_needs(path: Path):
    wrong = sorted(
        name
        for name in imports(path)
        if under(name, "codec")
        and name != "codec"
        and not permitted(name, NETSIM_MAY_IMPORT - {"codec"})
    )
    assert not wrong, f"{module_name(path)} imports {wrong}"
    assert not [n for n in imports(path) if under(n, "analysis")]


@pytest.mark.parametrize("path", sources("analysis"), ids=lambda p: module_name(p))
def test_analysis_imports_no_codec_internals(path: Path):
    wrong = sorted(
        name
        for name in imports(path)
        if any(under(name, internal) for internal in ANALYSIS_MUST_NOT_IMPORT)
    )
    assert not wrong, f"{module_name(path)} imports {wrong}"


def test_no_library_module_imports_a_command_line():
    """The command lines are leaves: what they share lives in ``codec.cli.base``, so nothing
    imports ``netsim.cli`` or ``codec.cli.dhvc`` (``analysis.make_figures`` included)."""
    for path in [*sources("codec"), *sources("netsim"), *sources("analysis")]:
        module = module_name(path)
        wrong = [
            n
            for n in imports(path)
            if (under(n, "netsim.cli") and module != "netsim.cli")
            or (under(n, "codec.cli.dhvc") and not under(module, "codec.cli"))
        ]
        assert not wrong, f"{module} imports {wrong}"


def test_the_checker_sees_lazy_and_from_imports(tmp_path: Path):
    probe = ROOT / "codec" / "model" / "config.py"
    assert "codec.types" in imports(probe)
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from codec import stream\n    import codec.rd.eval\n")
    assert {"codec.stream", "codec.rd.eval"} <= imports(lazy)
