"""The CPU training kernels (``codec.model.layers.cpu_training_kernels``): the depth-wise
weight gradient is exact, bfloat16 stays inside the blocks' 1x1 paths, and nothing changes
outside the context (the coder never enters it)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from codec.model.config import get_preset
from codec.model.dhvc import DHVC
from codec.model.layers import STPB, ConvNeXtBlock, cpu_training_kernels, depthwise


@pytest.mark.parametrize(
    ("kernel", "dilation", "channels_last"),
    [(7, 1, True), (7, 1, False), (5, 1, True), (5, 3, True), (5, 3, False)],
)
def test_depthwise_gradients_equal_autograds(kernel: int, dilation: int, channels_last: bool):
    torch.manual_seed(0)
    conv = nn.Conv2d(
        16, 16, kernel, padding=dilation * (kernel // 2), dilation=dilation, groups=16
    ).double()
    x = torch.randn(3, 16, 12, 10, dtype=torch.float64, requires_grad=True)
    xx = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    y = conv(xx)
    grad = torch.randn_like(y)
    expected = torch.autograd.grad(y, [x, conv.weight, conv.bias], grad)
    with cpu_training_kernels():
        y_fast = depthwise(conv, xx)
    assert torch.equal(y_fast, y)
    got = torch.autograd.grad(y_fast, [x, conv.weight, conv.bias], grad)
    for want, have in zip(expected, got, strict=True):
        assert have.shape == want.shape
        torch.testing.assert_close(have, want, rtol=1e-12, atol=1e-12)


def test_blocks_are_unchanged_outside_the_context_and_close_inside():
    torch.manual_seed(1)
    e = torch.randn(2, 16)
    x = torch.randn(2, 24, 16, 16).contiguous(memory_format=torch.channels_last)
    for block in (ConvNeXtBlock(24, 16), STPB(24, 16)):
        for p in block.parameters():  # gates and modulations away from their zero init
            nn.init.normal_(p, std=0.1)
        reference = block(x, e)
        with torch.no_grad():
            assert torch.equal(block(x, e), reference)
        with cpu_training_kernels(bf16=False):
            exact = block(x, e)
        with cpu_training_kernels(bf16=True):
            rounded = block(x, e)
        assert exact.dtype == rounded.dtype == torch.float32
        torch.testing.assert_close(exact, reference, rtol=1e-5, atol=1e-5)
        err = (rounded - reference).abs().max() / reference.abs().max()
        assert 0 < err < 2e-2  # bfloat16 rounding in the 1x1 paths, no more


def test_a_training_step_under_the_kernels_is_close_to_float32():
    torch.manual_seed(2)
    model = DHVC(get_preset("tiny")).to(memory_format=torch.channels_last)
    x = torch.rand(2, 2, 3, 64, 64)
    lam = torch.tensor([256.0, 2048.0])

    def grads(ctx) -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        with ctx:
            out = model(x, lam)
        loss = out.bits.sum() / x[:, :, 0].numel() + (out.x_hat.float() - x).pow(2).mean()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    loss32, g32 = grads(torch.enable_grad())
    loss16, g16 = grads(cpu_training_kernels(bf16=True))
    torch.testing.assert_close(loss16, loss32, rtol=2e-2, atol=0)
    flat32, flat16 = torch.cat([g.flatten() for g in g32]), torch.cat([g.flatten() for g in g16])
    cosine = torch.nn.functional.cosine_similarity(flat32, flat16, dim=0)
    assert cosine > 0.99
