"""benchmarks/fuzz.py runs a few cases of each category, accounts for every case, and a small
run finds no crash or hang (the full benchmark prints its counts; the suite gates on a sample)."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("fuzz_benchmark", ROOT / "benchmarks" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_small_run_accounts_for_every_case(fuzz):
    results = fuzz.run_all(dhvc=20, scenarios=10, packets=50, runs=1, seed=3)
    assert set(results) == {"dhvc", "scenarios", "runs", "packets"}
    expected = {"dhvc": 20, "scenarios": 10, "packets": 50}
    for name, result in results.items():
        assert result.tried == result.clean + result.failed + result.hangs, name
        assert len(result.failures) == result.failed + result.hangs, name
        if name in expected:
            assert result.tried == expected[name]
    assert results["runs"].tried <= 1
    for name, result in results.items():
        assert result.failed == 0 and result.hangs == 0, (name, result.failures[:3])


def test_cases_are_deterministic_in_the_seed(fuzz, tmp_path):
    fixtures = fuzz.Fixtures(tmp_path)
    mutator = fuzz.DhvcMutator(fixtures)
    first = [mutator.mutate(fuzz.case_rng(7, "dhvc", i)) for i in range(30)]
    again = [mutator.mutate(fuzz.case_rng(7, "dhvc", i)) for i in range(30)]
    assert first == again
    assert any(data != fixtures.stream for _, data in first)
    packets = fuzz.PacketMutator(fixtures)
    assert packets.mutate(fuzz.case_rng(7, "packets", 1)) == packets.mutate(
        fuzz.case_rng(7, "packets", 1)
    )


def test_mutators_never_crash_themselves(fuzz, tmp_path):
    """Only the code under test may fail: building 300 cases of each kind raises nothing."""
    fixtures = fuzz.Fixtures(tmp_path)
    dhvc, packets = fuzz.DhvcMutator(fixtures), fuzz.PacketMutator(fixtures)
    files = sorted(fuzz.SCENARIO_DIR.glob("*.yaml"))
    texts = {f: f.read_text(encoding="utf-8") for f in files}
    for i in range(300):
        dhvc.mutate(fuzz.case_rng(1, "dhvc", i))
        packets.mutate(fuzz.case_rng(1, "packets", i))
        fuzz.scenario_case(files, texts, fuzz.case_rng(1, "scenarios", i), i, tmp_path)


def test_a_slow_case_is_a_hang_and_a_crash_is_a_failure(fuzz):
    result = fuzz.CategoryResult("demo")
    guard = fuzz.Guard()
    fuzz.run_case(result, guard, 0, "sleeps", lambda: time.sleep(5), 0.2, (ValueError,))
    fuzz.run_case(result, guard, 1, "refused", _raise(ValueError("one line")), 5, (ValueError,))
    fuzz.run_case(result, guard, 2, "two lines", _raise(ValueError("a\nb")), 5, (ValueError,))
    fuzz.run_case(result, guard, 3, "crash", _raise(KeyError("k")), 5, (ValueError,))
    fuzz.run_case(result, guard, 4, "fine", lambda: "ok", 5, (ValueError,))
    assert (result.tried, result.clean, result.failed, result.hangs) == (5, 2, 2, 1)
    assert [f.case for f in result.failures] == [0, 2, 3]
    assert json.dumps([f.to_json() for f in result.failures])


def _raise(exc: BaseException):
    def run():
        raise exc

    return run
