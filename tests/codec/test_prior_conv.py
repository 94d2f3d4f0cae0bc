"""ConvNeXt blocks at the head of the prior (``ModelConfig.prior_conv_blocks``): they start as
the identity, so a model without them warm-starts one with them as the same function (weights
and whole training states); once trained they change the prior, and the model codes
bit-exactly and recovers from loss like any other."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from codec.model.config import ModelConfig, get_preset
from codec.model.dhvc import DHVC
from codec.train.trainer import _fit_train_state, train
from tests.codec.train_setup import TINY_RUN
from tests.codec.variant_checks import (
    check_codes_bit_exactly_and_recovers,
    check_state_resumes_under,
    check_weights_warm_start,
    register_variant,
)

CFG = TINY_RUN

TINY_PC = replace(get_preset("tiny"), name="tiny-pc", prior_conv_blocks=(1, 1, 1, 1))


@pytest.fixture
def tiny_pc_preset(monkeypatch):
    return register_variant(monkeypatch, TINY_PC)


def _grown(plain: DHVC) -> DHVC:
    grown = DHVC(TINY_PC).eval()
    result = grown.load_state_dict(plain.state_dict(), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(".ctx_conv." in k for k in result.missing_keys)
    return grown


def _clip() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(1, 3, 3, 64, 64, generator=torch.Generator().manual_seed(0)), torch.tensor(
        [512.0]
    )


def _forward(model: DHVC, x: torch.Tensor, lam: torch.Tensor):
    torch.manual_seed(2)  # the same training noise for every call
    with torch.no_grad():
        return model(x, lam)


def test_the_added_blocks_start_as_the_identity():
    torch.manual_seed(0)
    plain = DHVC(get_preset("tiny")).eval()
    grown = _grown(plain)
    x, lam = _clip()
    a, b = _forward(plain, x, lam), _forward(grown, x, lam)
    assert torch.equal(a.x_hat, b.x_hat) and torch.equal(a.bits, b.bits)


def test_the_blocks_change_the_prior_once_trained_and_the_paper_layout_has_none():
    assert get_preset("base").prior_conv_blocks == (0, 0, 0, 0)
    assert get_preset("base-pc").prior_conv_blocks == (1, 1, 1, 1)
    assert not list(DHVC(get_preset("tiny")).blocks[0].ctx_conv.parameters())
    torch.manual_seed(0)
    grown = _grown(DHVC(get_preset("tiny")).eval())
    x, lam = _clip()
    before = _forward(grown, x, lam).bits
    for block in grown.blocks:
        torch.nn.init.normal_(block.ctx_conv.blocks[0].pw2.weight, std=0.3)
    after = _forward(grown, x, lam).bits
    assert not torch.equal(before, after)


def test_config_round_trips_and_old_configs_load_without_the_blocks():
    data = TINY_PC.to_dict()
    assert ModelConfig.from_dict(data) == TINY_PC
    del data["prior_conv_blocks"]
    assert ModelConfig.from_dict(data).prior_conv_blocks == (0, 0, 0, 0)
    with pytest.raises(ValueError, match="prior_conv_blocks"):
        replace(TINY_PC, prior_conv_blocks=(1, 1))


def test_a_model_with_prior_blocks_codes_bit_exactly_and_recovers(bikes_frames):
    torch.manual_seed(1)
    model = DHVC(TINY_PC).eval()
    for block in model.blocks:  # make the blocks matter
        torch.nn.init.normal_(block.ctx_conv.blocks[0].pw2.weight, std=0.2)
    check_codes_bit_exactly_and_recovers(model, bikes_frames, mirror=True)


def test_a_training_state_without_them_resumes_with_them_on_the_same_loss_curve(
    tmp_path: Path, sources, tiny_pc_preset
):
    saved = check_state_resumes_under(tiny_pc_preset, tmp_path, sources)
    # the blocks moved away from the identity, and every parameter has its Adam moments
    assert saved["model"]["blocks.3.ctx_conv.blocks.0.pw2.weight"].abs().sum() > 0
    assert len(saved["optimizer"]["param_groups"][0]["params"]) == len(saved["optimizer"]["state"])


def test_a_grown_state_keeps_every_saved_moment_on_its_own_parameter():
    torch.manual_seed(0)
    plain = DHVC(get_preset("tiny"))
    optimizer = torch.optim.Adam(plain.parameters())
    x, lam = _clip()
    out = plain(x, lam)
    (out.bits.sum() + out.x_hat.sum()).backward()  # a moment for every parameter
    optimizer.step()
    saved = {
        "model": plain.state_dict(),
        "ema": plain.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    grown = DHVC(TINY_PC)
    fitted = _fit_train_state(saved, grown)
    names = [name for name, _ in grown.named_parameters()]
    old_names = [name for name, _ in plain.named_parameters()]
    moved = {names[i]: entry for i, entry in fitted["optimizer"]["state"].items()}
    assert set(moved) == set(old_names)
    for index, name in enumerate(old_names):
        assert torch.equal(moved[name]["exp_avg"], saved["optimizer"]["state"][index]["exp_avg"])
    grown.load_state_dict(fitted["model"])
    torch.optim.Adam(grown.parameters()).load_state_dict(fitted["optimizer"])


def test_weights_without_them_warm_start_them_and_the_reverse_is_refused(
    tmp_path: Path, sources, tiny_pc_preset
):
    _, grown = check_weights_warm_start(tiny_pc_preset, tmp_path, sources)
    with pytest.raises(ValueError, match="does not fit preset 'tiny'"):
        train(CFG, tmp_path / "bad.pt", sources, resume=grown, max_steps=1)
