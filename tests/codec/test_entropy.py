"""The Gaussian-table entropy coder: round trips, escapes, exact estimates, typed errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codec.entropy import (
    NUM_LEVELS,
    SYMBOL_LIMIT,
    EntropyCodingError,
    GaussianTable,
    sigma_boundaries,
    sigma_levels,
    sync_tag,
)


@pytest.fixture(scope="module")
def table() -> GaussianTable:
    return GaussianTable.build()


def test_table_refuses_to_run_before_build():
    with pytest.raises(RuntimeError, match="before build"):
        GaussianTable().encode(np.zeros(3, dtype=np.int64), np.zeros(3, dtype=np.uint8))


def test_levels_are_log_spaced_and_boundaries_map_levels_to_themselves():
    levels = sigma_levels()
    assert len(levels) == NUM_LEVELS
    ratios = levels[1:] / levels[:-1]
    assert np.allclose(ratios, ratios[0])
    assert (np.searchsorted(sigma_boundaries(), levels.astype(np.float32)) == np.arange(64)).all()


def test_gaussian_symbols_round_trip_and_cost_their_information_content(table):
    rng = np.random.default_rng(0)
    indexes = rng.integers(0, NUM_LEVELS, 20000).astype(np.uint8)
    symbols = np.round(rng.normal(0, sigma_levels()[indexes])).astype(np.int64)
    data = table.encode(symbols, indexes)
    assert np.array_equal(table.decode(data, indexes), symbols)
    estimate = table.estimate_bits(symbols, indexes)
    assert estimate <= 8 * len(data) <= estimate + 64


def test_out_of_range_symbols_take_an_escape_never_an_error(table):
    symbols = np.array([0, 10**6, -(10**6), SYMBOL_LIMIT, -SYMBOL_LIMIT, 3], dtype=np.int64)
    indexes = np.zeros(len(symbols), dtype=np.uint8)
    assert np.array_equal(table.decode(table.encode(symbols, indexes), indexes), symbols)


def test_payload_that_is_not_whole_words_is_a_typed_error(table):
    indexes = np.zeros(10, dtype=np.uint8)
    data = table.encode(np.arange(10), indexes)
    with pytest.raises(EntropyCodingError):
        table.decode(data[:-1], indexes)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=64), st.integers(0, NUM_LEVELS - 1), st.integers(1, 200))
def test_arbitrary_bytes_decode_or_raise_a_typed_error(table, data, level, n):
    indexes = np.full(n, level, dtype=np.uint8)
    try:
        out = table.decode(data, indexes)
    except EntropyCodingError:
        return
    assert out.shape == (n,)


def test_sync_tag_depends_on_every_index():
    idx = np.zeros(100, dtype=np.uint8)
    changed = idx.copy()
    changed[57] = 1
    assert sync_tag(idx) != sync_tag(changed)
