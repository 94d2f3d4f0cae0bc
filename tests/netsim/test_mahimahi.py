"""Mahimahi delivery traces: parsing, repetition, lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from netsim.mahimahi import TraceFormatError, load_delivery_trace


def trace_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.down"
    path.write_text(text)
    return path


def test_opportunities_repeat_with_the_trace_period(tmp_path: Path) -> None:
    delivery = load_delivery_trace(trace_file(tmp_path, "2\n4\n4\n\n7\n"))
    assert delivery.opportunities_ms == (2, 4, 4, 7) and delivery.period_ms == 7
    times = [delivery.opportunity_time_s(i) for i in range(8)]
    assert times == pytest.approx([0.002, 0.004, 0.004, 0.007, 0.009, 0.011, 0.011, 0.014])
    assert delivery.mean_rate_kbps == pytest.approx(4 * 1500 * 8 / 7)


def test_lookup_finds_the_first_opportunity_at_or_after_an_instant(tmp_path: Path) -> None:
    delivery = load_delivery_trace(trace_file(tmp_path, "2\n4\n4\n7\n"))
    assert delivery.first_index_at_or_after(0.0) == 0
    assert delivery.first_index_at_or_after(0.004) == 1
    assert delivery.first_index_at_or_after(0.001 + 0.003) == 1  # rounding: still 4 ms
    assert delivery.first_index_at_or_after(0.0041) == 3
    assert delivery.first_index_at_or_after(0.0071) == 4
    assert delivery.first_index_at_or_after(0.7) == 399  # 100 periods: 99 * 7 + 7 ms


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no delivery opportunities"),
        ("1\nfast\n", "line 2"),
        ("5\n3\n", "must not decrease"),
        ("0\n0\n", "positive"),
        ("-1\n4\n", "line 1"),
    ],
)
def test_malformed_traces_raise_a_typed_error(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(TraceFormatError, match=problem):
        load_delivery_trace(trace_file(tmp_path, text))


def test_the_shipped_trace_loads() -> None:
    path = Path(__file__).parents[2] / "netsim" / "traces" / "Verizon-EVDO-driving.down"
    delivery = load_delivery_trace(path)
    assert 400 < delivery.mean_rate_kbps < 650
