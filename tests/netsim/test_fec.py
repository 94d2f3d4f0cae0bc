"""zfec erasure coding of one scale."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from netsim.fec import FecError, FecParams, fec_decode, fec_encode


@pytest.mark.parametrize("length", [1, 7, 64, 1000])
def test_any_k_fragments_rebuild_the_payload(length: int) -> None:
    payload = np.random.default_rng(length).integers(0, 256, length, np.uint8).tobytes()
    params = FecParams(data_packets=3, parity_packets=3)
    fragments = fec_encode(payload, params)
    assert len(fragments) == 6 and len({len(f) for f in fragments}) == 1
    assert b"".join(fragments[:3])[:length] == payload
    for kept in itertools.combinations(range(6), 3):
        assert fec_decode({i: fragments[i] for i in kept}, params, length) == payload


def test_fewer_than_k_fragments_raise() -> None:
    params = FecParams(3, 2)
    fragments = fec_encode(b"abcdefgh", params)
    with pytest.raises(FecError):
        fec_decode({0: fragments[0], 4: fragments[4]}, params, 8)


def test_fragments_of_different_lengths_raise() -> None:
    params = FecParams(2, 1)
    fragments = fec_encode(b"abcdefgh", params)
    with pytest.raises(FecError):
        fec_decode({0: fragments[0], 2: fragments[2] + b"x"}, params, 8)


def test_invalid_parameters_raise() -> None:
    for k, m in ((0, 1), (1, -1), (200, 57)):
        with pytest.raises(FecError):
            FecParams(k, m)
    with pytest.raises(FecError):
        fec_encode(b"", FecParams(1, 1))


def test_scaling_keeps_the_overhead_ratio() -> None:
    assert FecParams(2, 1).scaled_to(1) == FecParams(2, 1)
    assert FecParams(2, 1).scaled_to(5) == FecParams(5, 3)
    with pytest.raises(FecError):
        FecParams(1, 3).scaled_to(100)


def test_unequal_protection_stays_within_the_budget_and_favours_low_scales() -> None:
    from netsim.fec import allocate_unequal

    sizes = [40, 150, 600, 2500]
    fec = allocate_unequal(sizes, overhead_fraction=0.25, fragment_bytes=1133, loss_rate=0.1)
    parity_bytes = sum(
        -(-sizes[k - 1] // p.data_packets) * p.parity_packets for k, p in fec.items()
    )
    assert parity_bytes <= 0.25 * sum(sizes)
    assert fec[1].parity_packets >= fec.get(4, FecParams(1, 0)).parity_packets
    assert 1 in fec and 2 in fec


def test_unequal_protection_respects_the_fragments_per_scale_cap_and_empty_scales() -> None:
    from netsim.fec import allocate_unequal

    fec = allocate_unequal(
        [40, 0, 600],
        overhead_fraction=1.0,
        fragment_bytes=1133,
        loss_rate=0.1,
        max_fragments_per_scale=2,
    )
    assert 2 not in fec
    assert all(p.data_packets + p.parity_packets <= 2 for p in fec.values())


def test_scale_loss_probability_is_the_binomial_tail() -> None:
    from netsim.fec import scale_loss_probability

    assert scale_loss_probability(1, 0, 0.1) == pytest.approx(0.1)
    assert scale_loss_probability(1, 1, 0.1) == pytest.approx(0.01)
    assert scale_loss_probability(2, 1, 0.1) == pytest.approx(3 * 0.01 * 0.9 + 0.001)
