"""DESIGN 1's capacity rules for the default preset, and the training-time sigma bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec import load_model
from codec.entropy.gaussian import SIGMA_MIN, GaussianEntropyModel, GaussianTable
from codec.model.checkpoint import WEIGHTS_DIR
from codec.model.config import DEFAULT_PRESET, get_preset, latent_values_per_pixel
from codec.model.dhvc import DHVC
from codec.stream.coder import Encoder
from codec.types import coded_size


@pytest.fixture(scope="module")
def default_model() -> DHVC:
    torch.manual_seed(0)
    return DHVC(get_preset(DEFAULT_PRESET)).eval()


def _synthesis_patch_jacobian(model: DHVC) -> torch.Tensor:
    """Jacobian of one output 4x4x3 patch with respect to the features feeding it, (48, C)."""
    c = model.config.width_patch
    features = torch.zeros(1, c, 3, 3, requires_grad=True)
    out = model.synth_out(features)  # (1, 3, 12, 12): the centre patch is rows/cols 4..7
    patch = out[0, :, 4:8, 4:8].reshape(-1)
    rows = [torch.autograd.grad(v, features, retain_graph=True)[0][0, :, 1, 1] for v in patch]
    return torch.stack(rows)


def test_default_synthesis_maps_onto_every_output_patch_with_full_rank(default_model):
    jacobian = _synthesis_patch_jacobian(default_model)
    assert jacobian.shape[0] == 48
    assert torch.linalg.matrix_rank(jacobian).item() == 48


def test_default_patchify_keeps_every_input_patch_dimension(default_model):
    weight = default_model.patchify.weight.detach().reshape(default_model.config.width_patch, -1)
    assert weight.shape[1] == 48
    assert torch.linalg.matrix_rank(weight).item() == 48


def test_the_first_small_preset_is_rank_capped_which_is_why_it_was_replaced():
    torch.manual_seed(0)
    small = DHVC(get_preset("small")).eval()
    assert torch.linalg.matrix_rank(_synthesis_patch_jacobian(small)).item() == 32


def test_default_has_at_least_1_2_latent_values_per_pixel_mostly_at_the_finest_scale():
    cfg = get_preset(DEFAULT_PRESET)
    assert latent_values_per_pixel(cfg) >= 1.2
    assert cfg.latent_channels[-1] / 64 >= 0.75 * latent_values_per_pixel(cfg)
    assert latent_values_per_pixel(get_preset("small")) == pytest.approx(0.38, abs=0.01)


def test_default_fp16_weights_stay_under_15_mb(default_model):
    assert 2 * sum(p.numel() for p in default_model.parameters()) < 15e6


def test_coded_size_covers_every_pixel_and_no_padding_only_position():
    for height, width in [(70, 96), (144, 176), (64, 64), (1, 1), (257, 129)]:
        for k in range(1, 5):
            stride = 1 << (7 - k)
            rows, cols = coded_size(height, width, k)
            assert (rows - 1) * stride < height <= rows * stride
            assert (cols - 1) * stride < width <= cols * stride


def test_padding_only_latent_positions_are_not_coded(tiny_model, monkeypatch):
    """176x144 pads to 192x192: at 1/8 the grid is 24x24 but only 22x18 positions touch the
    picture; the coder sees exactly those, at every scale."""
    seen: list[int] = []
    original = GaussianTable.encode

    def spy(self, symbols, indexes, *args, **kwargs):
        seen.append(len(symbols))
        return original(self, symbols, indexes, *args, **kwargs)

    monkeypatch.setattr(GaussianTable, "encode", spy)
    frame = np.random.default_rng(0).integers(0, 256, size=(144, 176, 3), dtype=np.uint8)
    Encoder(tiny_model).encode(frame, lam=512.0)
    z = tiny_model.config.latent_channels
    expected = [z[k - 1] * np.prod(coded_size(144, 176, k)) for k in range(1, 5)]
    assert seen == expected
    assert seen[-1] == z[-1] * 18 * 22


def test_padding_content_cannot_change_the_bitstream(tiny_model):
    """Whatever the padding holds, the coded positions and therefore the payloads are the
    same for two frames that agree on every pixel of the picture."""
    frame = np.random.default_rng(1).integers(0, 256, size=(70, 96, 3), dtype=np.uint8)
    a = Encoder(tiny_model).encode(frame, lam=512.0)
    b = Encoder(tiny_model).encode(frame.copy(), lam=512.0)
    assert [s.data for s in a.scales] == [s.data for s in b.scales]
    full = Encoder(tiny_model).encode(
        np.pad(frame, ((0, 58), (0, 32), (0, 0)), mode="edge"), lam=512.0
    )
    assert sum(len(s.data) for s in a.scales) < sum(len(s.data) for s in full.scales)


def test_smooth_sigma_bound_passes_gradients_below_the_table_minimum():
    sigma = torch.tensor([0.01, 0.05, 0.5], requires_grad=True)
    bounded = GaussianEntropyModel(smooth_sigma_bound=True).symbol_sigma(sigma, torch.ones(3))
    bounded.sum().backward()
    assert torch.all(bounded >= SIGMA_MIN)
    assert torch.all(sigma.grad > 0)
    clamped = torch.tensor([0.01, 0.05], requires_grad=True)
    clamp = GaussianEntropyModel(smooth_sigma_bound=False)
    clamp.symbol_sigma(clamped, torch.ones(2)).sum().backward()
    assert torch.all(clamped.grad == 0)


def test_likelihood_bits_fall_back_to_the_density_for_outliers_with_finite_gradients():
    r = torch.tensor([0.0, 3.0, 40.0, 400.0], requires_grad=True)
    sigma = torch.tensor([1.0, 1.0, 0.2, 0.2], requires_grad=True)
    bits = GaussianEntropyModel.likelihood_bits(r, sigma)
    assert torch.all(torch.isfinite(bits))
    assert bits[3] > bits[2] > bits[1] > bits[0]  # no floor: farther outliers cost more
    assert bits[3].item() > 1e5
    bits.sum().backward()
    assert torch.all(torch.isfinite(r.grad)) and torch.all(torch.isfinite(sigma.grad))
    assert r.grad[2] > 0 and sigma.grad[2] < 0  # pulls the outlier in and sigma up


def test_earlier_small_weights_still_load_with_the_hard_clamp():
    model = load_model(WEIGHTS_DIR / "dhvc-small.pt")
    assert model.config.name == "small"
    assert model.config.smooth_sigma_bound is False
