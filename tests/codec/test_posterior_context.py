"""The posterior that sees the temporal context (``ModelConfig.posterior_context``): it codes
bit-exactly, it changes the encoder only, and states and weights trained without it warm-start
it as exactly the same function."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from codec.model.config import get_preset
from codec.model.dhvc import DHVC, widen_posterior_inputs
from codec.train.trainer import train
from tests.codec.train_setup import TINY_RUN
from tests.codec.variant_checks import (
    check_codes_bit_exactly_and_recovers,
    check_state_resumes_under,
    check_weights_warm_start,
    register_variant,
)

CFG = TINY_RUN

TINY_CTX = replace(get_preset("tiny"), name="tiny-ctx", posterior_context=True)


@pytest.fixture
def tiny_ctx_preset(monkeypatch):
    return register_variant(monkeypatch, TINY_CTX)


def _widened(narrow: DHVC) -> DHVC:
    wide = DHVC(TINY_CTX).eval()
    shapes = {k: v.shape for k, v in wide.state_dict().items()}
    wide.load_state_dict(widen_posterior_inputs(narrow.state_dict(), shapes))
    return wide


def test_only_the_posterior_inputs_grow_and_the_widened_model_is_the_same_function():
    torch.manual_seed(0)
    narrow = DHVC(get_preset("tiny")).eval()
    wide = _widened(narrow)
    grown = {k for k, v in wide.state_dict().items() if v.shape != narrow.state_dict()[k].shape}
    assert grown == {f"blocks.{i}.post_in.weight" for i in range(4)}
    x = torch.rand(1, 3, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(
            narrow(x, torch.tensor([512.0])).x_hat, wide(x, torch.tensor([512.0])).x_hat
        )


def test_the_posterior_sees_the_context_once_its_weights_are_not_zero(bikes_frames):
    torch.manual_seed(0)
    model = DHVC(TINY_CTX).eval()
    for block in model.blocks:
        assert block.post_in.in_channels == 3 * block.post_in.out_channels
    obs = torch.rand(1, 16, 4, 4)
    s_up = torch.rand(1, 16, 4, 4)
    e = model.embed_lambda(torch.tensor([512.0]))
    block = model.blocks[0]
    with torch.no_grad():
        a = block.posterior(obs, s_up, torch.zeros(1, 16, 4, 4), e)
        b = block.posterior(obs, s_up, torch.ones(1, 16, 4, 4), e)
    assert not torch.equal(a, b)


def test_a_model_with_posterior_context_codes_bit_exactly_and_recovers(bikes_frames):
    torch.manual_seed(1)
    model = DHVC(TINY_CTX).eval()
    for block in model.blocks:  # make the context inputs matter
        torch.nn.init.normal_(block.post_in.weight, std=0.2)
    check_codes_bit_exactly_and_recovers(model, bikes_frames, mirror=False)


def test_a_training_state_without_it_resumes_under_it_on_the_same_loss_curve(
    tmp_path: Path, sources, tiny_ctx_preset
):
    saved = check_state_resumes_under(tiny_ctx_preset, tmp_path, sources)
    # the context weights moved away from zero
    assert saved["model"]["blocks.3.post_in.weight"].shape[1] == 3 * 16
    assert saved["model"]["blocks.3.post_in.weight"][:, 32:].abs().sum() > 0


def test_weights_without_it_warm_start_it_and_other_widths_are_refused(
    tmp_path: Path, sources, tiny_ctx_preset
):
    weights, _ = check_weights_warm_start(tiny_ctx_preset, tmp_path, sources)
    with pytest.raises(ValueError, match="does not fit preset 'small'"):
        train(
            replace(CFG, preset="small"), tmp_path / "bad.pt", sources, resume=weights, max_steps=1
        )
