"""Sliced entropy coding (issue 14, item 2): a scale's payload is a slice table and
independently coded slices; round trips for every slice count, bytes that do not depend on the
worker count or on threads or helper processes coding the slices, and typed errors for a damaged
slice table or slice."""

from __future__ import annotations

import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codec import Decoder, Encoder
from codec.entropy import gaussian as entropy
from codec.entropy.gaussian import (
    NUM_LEVELS,
    PROCESS_MIN_SYMBOLS,
    SLICE_SYMBOLS,
    EntropyCodingError,
    GaussianEntropyModel,
    GaussianTable,
    sigma_levels,
    slice_bounds,
    slice_count,
    slice_table_bytes,
)
from codec.stream.bitstream import max_payload_bytes

SLICE = 5
"""Symbols per slice of the test table: small, so that a few dozen symbols make many slices."""


@pytest.fixture(scope="module")
def table() -> GaussianTable:
    return GaussianTable.build(slice_symbols=SLICE)


@pytest.fixture(scope="module", autouse=True)
def _pools_shut_down(table: GaussianTable) -> Iterator[None]:
    """The helper processes started here end with the module's tests."""
    yield
    table.close()


@pytest.fixture
def processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """``parallel="process"`` for scales of any size: the test scales are small."""
    monkeypatch.setattr(entropy, "PROCESS_MIN_SYMBOLS", 0)


def scale(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(symbols, indexes) of n symbols: Gaussian at each entry's sigma, a few escapes."""
    rng = np.random.default_rng(seed)
    indexes = rng.integers(0, NUM_LEVELS, n).astype(np.uint8)
    symbols = np.round(rng.normal(0, sigma_levels()[indexes])).astype(np.int64)
    symbols[::7] = rng.integers(-(2**20), 2**20, len(symbols[::7]))
    return symbols, indexes


def table_words(data: bytes) -> list[int]:
    """The slice table: [count, length of slice 1, ..., length of slice count - 1]."""
    count = struct.unpack_from("<I", data)[0]
    return list(struct.unpack_from(f"<{count}I", data))


def test_slice_count_is_a_function_of_the_symbol_count_only():
    assert [slice_count(n, 5) for n in (0, 1, 5, 6, 10, 11)] == [1, 1, 1, 2, 2, 3]
    assert slice_count(SLICE_SYMBOLS) == 1 and slice_count(SLICE_SYMBOLS + 1) == 2
    bounds = slice_bounds(23, 5)
    assert bounds[0] == 0 and bounds[-1] == 23 and np.ptp(np.diff(bounds)) <= 1


@pytest.mark.parametrize("n", [0, 1, 2, 4, 5, 6, 9, 10, 11, 24, 25, 26, 57])
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_every_slice_count_round_trips_bit_exactly_with_its_slice_table(table, n, workers):
    symbols, indexes = scale(n, seed=n)
    data = table.encode(symbols, indexes, workers)
    words = table_words(data)
    assert words[0] == slice_count(n, SLICE)
    assert len(data) >= slice_table_bytes(words[0]) + sum(words[1:])
    assert np.array_equal(table.decode(data, indexes, workers), symbols)


@pytest.mark.parametrize("n", [0, 1, 7, 31, 200])
def test_the_bytes_do_not_depend_on_the_worker_count(table, n):
    symbols, indexes = scale(n, seed=1)
    payloads = {table.encode(symbols, indexes, workers) for workers in (1, 2, 4, 16)}
    assert len(payloads) == 1


@pytest.mark.parametrize("n", [0, 1, 6, 11, 57, 200])
@pytest.mark.parametrize("workers", [2, 3])
def test_helper_processes_write_the_serial_bytes_and_decode_the_same_symbols(
    table, processes, n, workers
):
    symbols, indexes = scale(n, seed=n)
    serial = table.encode(symbols, indexes)
    assert table.encode(symbols, indexes, workers, "process") == serial
    assert np.array_equal(table.decode(serial, indexes, workers, "process"), symbols)


def test_small_scales_and_single_slices_stay_in_this_process(table, processes):
    table.close()
    symbols, indexes = scale(SLICE)  # one slice
    data = table.encode(symbols, indexes, 2, "process")
    assert np.array_equal(table.decode(data, indexes, 2, "process"), symbols)
    symbols, indexes = scale(2 * SLICE_SYMBOLS)  # two slices, under the real threshold
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(entropy, "PROCESS_MIN_SYMBOLS", PROCESS_MIN_SYMBOLS)
        full = GaussianTable.build()
        full.encode(symbols, indexes, 2, "process")
    assert full.slice_pool is None and table.slice_pool is None


def test_a_damaged_slice_in_a_helper_process_is_the_serial_typed_error(table, processes):
    """All-ones words make the range decoder fail; the slice is in the helper's half."""
    symbols, indexes = scale(40)
    data = bytearray(table.encode(symbols, indexes))
    count = slice_count(40, SLICE)
    lengths = table_words(bytes(data))[1:]
    lengths.append(len(data) - slice_table_bytes(count) - sum(lengths))
    ends = slice_table_bytes(count) + np.cumsum(lengths)
    damaged = next(i for i in range(count // 2, count) if lengths[i] >= 8)
    data[ends[damaged] - lengths[damaged] : ends[damaged]] = b"\xff" * lengths[damaged]
    with pytest.raises(EntropyCodingError) as serial:
        table.decode(bytes(data), indexes)
    with pytest.raises(EntropyCodingError) as parallel:
        table.decode(bytes(data), indexes, 2, "process")
    assert str(parallel.value) == str(serial.value)
    # the pool still works after a helper's error
    assert np.array_equal(
        table.decode(table.encode(symbols, indexes), indexes, 2, "process"), symbols
    )


def test_an_unknown_parallel_mode_is_refused(table):
    with pytest.raises(ValueError, match="parallel"):
        GaussianEntropyModel(True, workers=2, parallel="fork")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="parallel"):
        table.encode(np.zeros(3), np.zeros(3, dtype=np.uint8), 2, "fork")  # type: ignore[arg-type]


_EXIT_SCRIPT = """
import numpy as np
from codec.entropy import gaussian as entropy
entropy.PROCESS_MIN_SYMBOLS = 0
table = entropy.GaussianTable.build(slice_symbols=5)
indexes = np.arange(40, dtype=np.uint8)
data = table.encode(np.arange(40) - 20, indexes, 2, "process")
assert (table.decode(data, indexes, 2, "process") == np.arange(40) - 20).all()
print(table.slice_pool.block_name)
"""


def test_the_pool_ends_at_exit_without_warnings_or_leaked_shared_memory():
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", _EXIT_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    block = done.stdout.strip().lstrip("/")
    assert block and not (Path("/dev/shm") / block).exists()


def test_one_slice_codes_exactly_what_the_whole_scale_coded_before_slicing():
    """A slice is the pre-slicing layout: the same bytes for a whole scale as one slice."""
    symbols, indexes = scale(300)
    whole = GaussianTable.build(slice_symbols=1000).encode(symbols, indexes)
    sliced = GaussianTable.build(slice_symbols=100).encode(symbols, indexes)
    assert table_words(whole)[0] == 1 and table_words(sliced)[0] == 3
    assert whole != sliced
    first = GaussianTable.build(slice_symbols=1000).encode(symbols[:100], indexes[:100])
    table_end = slice_table_bytes(3)
    assert sliced[table_end : table_end + table_words(sliced)[1]] == first[slice_table_bytes(1) :]


def _damaged(data: bytes, count: int) -> dict[str, bytes]:
    """Ways to damage the slice table of a payload of ``count`` >= 3 slices; each must be
    refused. (Damage to a slice's bytes is the CRC's to catch: it may decode to garbage.)"""
    words = list(struct.unpack_from(f"<{count}I", data))
    body = data[slice_table_bytes(count) :]

    def with_table(table: list[int]) -> bytes:
        return struct.pack(f"<{len(table)}I", *table) + body

    return {
        "empty": b"",
        "not whole words": data[:-1],
        "count too small": with_table([count - 1, *words[1:]]),
        "count too large": with_table([count + 1, *words[1:]]),
        "count huge": with_table([2**32 - 1, *words[1:]]),
        "table truncated": data[: slice_table_bytes(count) - 4],
        "only the count": data[:4],
        "lengths overrun": with_table([count, words[1] + len(body), *words[2:]]),
        "length not whole words": with_table([count, words[1] + 2, words[2] - 2, *words[3:]]),
        "length wraps": with_table([count, 2**32 - 4, *words[2:]]),
        "empty slice": with_table([count, 0, words[1] + words[2], *words[3:]]),
        "empty last slice": with_table([count, *words[1:-1], len(body) - sum(words[1:-1])]),
    }


def test_a_damaged_slice_table_is_a_typed_error(table):
    symbols, indexes = scale(40)
    data = table.encode(symbols, indexes)
    count = slice_count(40, SLICE)
    for name, damaged in _damaged(data, count).items():
        for workers in (1, 2):
            with pytest.raises(EntropyCodingError):
                table.decode(damaged, indexes, workers)
                pytest.fail(f"{name} was decoded")


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_damaged_payloads_decode_the_same_serially_and_in_parallel_or_raise_typed(table, data):
    n = data.draw(st.integers(0, 60))
    symbols, indexes = scale(n, seed=n)
    payload = bytearray(table.encode(symbols, indexes))
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(payload) - 1))
        payload[at] = data.draw(st.integers(0, 255))
    results = []
    for workers in (1, 2):
        try:
            results.append(table.decode(bytes(payload), indexes, workers))
        except EntropyCodingError as err:
            results.append(str(err))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(entropy, "PROCESS_MIN_SYMBOLS", 0)
        try:
            results.append(table.decode(bytes(payload), indexes, 2, "process"))
        except EntropyCodingError as err:
            results.append(str(err))
    serial, *parallel = results
    for other in parallel:
        if isinstance(serial, str) or isinstance(other, str):
            assert serial == other
        else:
            assert serial.shape == (n,) and np.array_equal(serial, other)


def test_a_1080p_base_scale_codes_in_many_slices_within_the_payload_bound():
    table = GaussianTable.build()
    n = 64 * 135 * 240  # scale 4 (stride 8) of a 1920x1080 frame, 64 latent channels (base)
    symbols, indexes = scale(n)
    data = table.encode(symbols, indexes, workers=2)
    assert table_words(data)[0] == slice_count(n) == 32
    assert len(data) <= max_payload_bytes(n)
    assert np.array_equal(table.decode(data, indexes, workers=2), symbols)
    assert n >= PROCESS_MIN_SYMBOLS  # helper processes code it
    assert table.encode(symbols, indexes, 2, "process") == data
    assert np.array_equal(table.decode(data, indexes, 2, "process"), symbols)


def test_the_payload_bound_holds_for_escapes_over_several_slices():
    table = GaussianTable.build()
    n = 2 * SLICE_SYMBOLS + 3
    for level in (0, NUM_LEVELS - 1):
        indexes = np.full(n, level, dtype=np.uint8)
        data = table.encode(np.full(n, -(2**30), dtype=np.int64), indexes)
        assert table_words(data)[0] == 3 and len(data) <= max_payload_bytes(n)


def test_encoders_with_any_worker_count_write_the_same_multi_slice_stream(tiny_model):
    """1280x1024 with the tiny preset: 160 x 128 x 4 symbols at scale 4, two slices."""
    frame = np.random.default_rng(5).integers(0, 256, (1024, 1280, 3), dtype=np.uint8)
    serial = Encoder(tiny_model, entropy_workers=1).encode(frame, 512.0)
    parallel = Encoder(tiny_model, entropy_workers=2).encode(frame, 512.0)
    assert serial.scales == parallel.scales
    assert table_words(serial.scales[-1].data)[0] == 2
    decoded = Decoder(tiny_model, 1024, 1280, entropy_workers=2).decode(parallel.received())
    assert np.array_equal(decoded.x_hat, serial.x_hat)


def test_encoder_and_decoder_with_helper_processes_match_the_serial_ones(tiny_model, processes):
    """1280x1024, tiny preset: two slices at scale 4, coded by this process and a helper."""
    frame = np.random.default_rng(5).integers(0, 256, (1024, 1280, 3), dtype=np.uint8)
    serial = Encoder(tiny_model).encode(frame, 512.0)
    parallel = Encoder(tiny_model, entropy_workers=2, entropy_parallel="process").encode(
        frame, 512.0
    )
    assert serial.scales == parallel.scales
    assert table_words(parallel.scales[-1].data)[0] == 2
    decoder = Decoder(tiny_model, 1024, 1280, entropy_workers=2, entropy_parallel="process")
    assert np.array_equal(decoder.decode(parallel.received()).x_hat, serial.x_hat)
