"""The fuzzing parts (tests/fuzzing) run a few cases of each category, account for every case,
and a small run finds no crash, hang or code run from a file; benchmarks/fuzz.py, which keeps
only the command line and report, runs them (the full benchmark prints its counts; the suite
gates on a sample)."""

from __future__ import annotations

import importlib.util
import json
import pickle
import sys
import time
from pathlib import Path

import pytest

from tests.fuzzing import categories
from tests.fuzzing.categories import CATEGORIES, fuzz_loaders, loader_case, run_all
from tests.fuzzing.documents import field_paths, mutate_grid
from tests.fuzzing.fixtures import SCENARIO_DIR, Fixtures
from tests.fuzzing.guard import Guard
from tests.fuzzing.mutators import DhvcMutator, FileMutator, PacketMutator, SlicePacketMutator
from tests.fuzzing.outcomes import CategoryResult, case_rng, run_case

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory) -> Fixtures:
    return Fixtures(tmp_path_factory.mktemp("fuzz"))


def test_small_run_accounts_for_every_case():
    expected = {"dhvc": 20, "scenarios": 10, "packets": 40, "slices": 60, "sweeps": 25}
    results = run_all(**expected, loaders=48, runs=1, seed=3)
    assert set(results) == set(CATEGORIES)
    for name, result in results.items():
        assert result.tried == result.clean + result.failed + result.hangs, name
        assert len(result.failures) == result.failed + result.hangs, name
        if name in expected:
            assert result.tried == expected[name], name
    assert results["runs"].tried <= 1
    loaders = results["loaders"].counters
    assert all(loaders[f"{kind}_tried"] == 12 for kind in categories.LOADERS)
    assert results["slices"].counters["pictures_decoded"] > 0
    for name, result in results.items():
        assert result.failed == 0 and result.hangs == 0, (name, result.failures[:3])


def test_cases_are_deterministic_in_the_seed(fixtures):
    mutator = DhvcMutator(fixtures.stream, fixtures.foreign_stream)
    first = [mutator.mutate(case_rng(7, "dhvc", i)) for i in range(30)]
    again = [mutator.mutate(case_rng(7, "dhvc", i)) for i in range(30)]
    assert first == again
    assert any(data != fixtures.stream for _, data in first)
    for packets in (
        PacketMutator(fixtures.packet_sets),
        SlicePacketMutator(fixtures.slice_sets["x265"]),
    ):
        assert packets.mutate(case_rng(7, "p", 1)) == packets.mutate(case_rng(7, "p", 1))
    files = FileMutator()
    assert loader_case(fixtures, files, case_rng(7, "loaders", 2), 2) == loader_case(
        fixtures, files, case_rng(7, "loaders", 2), 2
    )


def test_mutators_never_crash_themselves(fixtures, tmp_path):
    """Only the code under test may fail: building 300 cases of each kind raises nothing."""
    dhvc = DhvcMutator(fixtures.stream, fixtures.foreign_stream)
    packets = PacketMutator(fixtures.packet_sets)
    slices = [SlicePacketMutator(sets) for sets in fixtures.slice_sets.values()]
    files = FileMutator()
    scenario_files = sorted(SCENARIO_DIR.glob("*.yaml"))
    texts = {f: f.read_text(encoding="utf-8") for f in scenario_files}
    fields = field_paths({"network": {"forward": {"loss": {"kind": "none"}}}, "seed": 0})
    for i in range(300):
        dhvc.mutate(case_rng(1, "dhvc", i))
        packets.mutate(case_rng(1, "packets", i))
        slices[i % 2].mutate(case_rng(1, "slices", i))
        categories.scenario_case(scenario_files, texts, case_rng(1, "scenarios", i), i, tmp_path)
        mutate_grid(case_rng(1, "sweeps", i), {"grid": {"seed": [0]}}, fields)
        loader_case(fixtures, files, case_rng(1, "loaders", i), i)


def test_slice_damage_is_resealed_so_that_it_reaches_the_decoder(fixtures):
    """A NAL mutation keeps every packet's checksum and the frame's data CRC valid."""
    from netsim.codecs.slices import data_checksum
    from netsim.packet import Packet

    mutator = SlicePacketMutator(fixtures.slice_sets["x264"])
    for i in range(40):
        rng = case_rng(2, "slices", i)
        _, packets, _ = mutator.nal(rng, list(fixtures.slice_sets["x264"]["mtu200"][0]))
        parsed = [Packet.from_bytes(p) for p in packets]
        data = [
            p.payload for p in sorted(parsed, key=lambda p: p.fragment_index) if not p.is_parity
        ]
        assert all((p.scale_length_bytes, p.scale_crc32) == data_checksum(data) for p in parsed)


def test_a_loader_that_runs_code_from_a_file_fails_its_case(fixtures, monkeypatch):
    def unpickling_loader(folder: Path) -> str:
        pickle.loads((folder / "file.pt").read_bytes())  # noqa: S301 - the point of the test
        return "loaded"

    monkeypatch.setitem(
        categories.LOADERS, "train_state", (unpickling_loader, (pickle.UnpicklingError,))
    )
    # Loader cases go round checkpoint, pack, run, train_state; a fifth are pickle payloads.
    result = fuzz_loaders(fixtures, Guard(), 120, seed=0, timeout_s=10)
    ran = [f for f in result.failures if "ran code" in f.message]
    assert ran and all(f.mutation.startswith("train_state") for f in ran)
    assert not fixtures.marker.exists()


def test_a_slow_case_is_a_hang_and_a_crash_is_a_failure():
    result = CategoryResult("demo")
    guard = Guard()
    run_case(result, guard, 0, "sleeps", lambda: time.sleep(5), 0.2, (ValueError,))
    run_case(result, guard, 1, "refused", _raise(ValueError("one line")), 5, (ValueError,))
    run_case(result, guard, 2, "two lines", _raise(ValueError("a\nb")), 5, (ValueError,))
    run_case(result, guard, 3, "crash", _raise(KeyError("k")), 5, (ValueError,))
    run_case(result, guard, 4, "fine", lambda: "ok", 5, (ValueError,))
    assert (result.tried, result.clean, result.failed, result.hangs) == (5, 2, 2, 1)
    assert [f.case for f in result.failures] == [0, 2, 3]
    assert json.dumps([f.to_json() for f in result.failures])


def test_the_benchmark_command_line_reports_every_category(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("fuzz_benchmark", ROOT / "benchmarks" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        counts = ["--dhvc", "3", "--scenarios", "3", "--packets", "3", "--runs", "0"]
        counts += ["--slices", "3", "--sweeps", "3", "--loaders", "4", "--memory-gb", "0"]
        report = tmp_path / "report.json"
        assert module.main([*counts, "--report", str(report)]) == 0
    finally:
        sys.modules.pop(spec.name, None)
    saved = json.loads(report.read_text())
    assert set(saved["counts"]) == set(CATEGORIES)
    assert saved["failures"] == []
    assert "no failures" in capsys.readouterr().out


def _raise(exc: BaseException):
    def run():
        raise exc

    return run
