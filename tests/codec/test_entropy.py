"""The entropy model: the Gaussian table's round trips, escapes, exact estimates and typed
errors; quantisation, indexes and coding of ``GaussianEntropyModel`` after, never before, build."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codec.entropy.gaussian import (
    NUM_LEVELS,
    SYMBOL_LIMIT,
    EntropyCodingError,
    GaussianEntropyModel,
    GaussianTable,
    sigma_boundaries,
    sigma_levels,
    slice_table_bytes,
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
    # the slice table, then each slice's coder flushes at most two words beyond the content
    coded_bits = 8 * (len(data) - slice_table_bytes(1))
    assert estimate <= coded_bits <= estimate + 64


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
    assert GaussianEntropyModel.sync_tag(idx) != GaussianEntropyModel.sync_tag(changed)


def _latent(seed: int = 0) -> tuple[torch.Tensor, ...]:
    """(y, mu, sigma, q) of a (1, 3, 5, 7) latent with a per-channel step."""
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(1, 3, 5, 7, generator=gen)
    sigma = 0.05 + 3 * torch.rand(1, 3, 5, 7, generator=gen)
    y = mu + sigma * torch.randn(1, 3, 5, 7, generator=gen)
    q = torch.tensor([0.5, 1.0, 2.0]).view(1, 3, 1, 1)
    return y, mu, sigma, q


@pytest.mark.parametrize("method", ["table_indexes", "compress", "decompress", "estimate_bits"])
def test_entropy_model_refuses_to_code_before_build(method):
    model = GaussianEntropyModel(smooth_sigma_bound=True)
    assert not model.built
    _, _, sigma, q = _latent()
    indexes = np.zeros(3 * 5 * 7, dtype=np.uint8)
    calls = {
        "table_indexes": lambda: model.table_indexes(sigma, q),
        "compress": lambda: model.compress(torch.zeros(1, 3, 5, 7), indexes),
        "decompress": lambda: model.decompress(b"", indexes, torch.zeros(1, 3, 5, 7)),
        "estimate_bits": lambda: model.estimate_bits(torch.zeros(1, 3, 5, 7), indexes),
    }
    with pytest.raises(RuntimeError, match="before build"):
        calls[method]()


@pytest.mark.parametrize("smooth", [True, False])
def test_entropy_model_codes_symbols_round_y_minus_mu_over_q_and_decodes_them(smooth):
    model = GaussianEntropyModel(smooth_sigma_bound=smooth).build()
    y, mu, sigma, q = _latent()
    symbols = model.quantize(y, mu, q)
    assert torch.equal(symbols, torch.round((y - mu) / q))
    indexes = model.table_indexes(sigma, q)
    assert indexes.dtype == np.uint8 and indexes.shape == (y.numel(),)
    data = model.compress(symbols, indexes)
    decoded = model.decompress(data, indexes, like=mu)
    assert torch.equal(decoded, symbols) and decoded.dtype == mu.dtype
    assert torch.equal(model.dequantize(decoded, mu, q), mu + q * symbols)
    assert model.estimate_bits(symbols, indexes) <= 8 * len(data)


def test_table_index_follows_the_symbols_scale_sigma_over_q():
    model = GaussianEntropyModel(smooth_sigma_bound=False).build()
    sigma = torch.full((1, 2, 1, 1), 4.0)
    q = torch.tensor([1.0, 4.0]).view(1, 2, 1, 1)  # symbol scales 4 and 1
    indexes = model.table_indexes(sigma, q)
    expected = np.searchsorted(sigma_boundaries(), np.float32([4.0, 1.0]))
    assert np.array_equal(indexes, expected)


def test_training_bits_are_the_likelihood_of_the_noisy_residual_and_y_hat_rounds():
    model = GaussianEntropyModel(smooth_sigma_bound=True)  # training needs no tables
    y, mu, sigma, q = _latent(1)
    y.requires_grad_(True)
    torch.manual_seed(3)
    y_hat, bits = model.training_forward(y, mu, sigma, q)
    torch.manual_seed(3)
    noise = torch.empty_like(y).uniform_(-0.5, 0.5)
    r = (y - mu) / q
    expected = model.likelihood_bits(r + noise, model.symbol_sigma(sigma, q))
    assert torch.equal(bits, expected)
    assert torch.allclose(y_hat, mu + q * torch.round(r))
    y_hat.sum().backward()
    assert torch.allclose(y.grad, torch.ones_like(y))  # straight through the rounding
