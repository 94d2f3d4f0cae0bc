"""Training: exact resume, fp16 weights and warm start, the schedule, the spike guard."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from codec import load_model
from codec.train.trainer import TrainConfig, _SpikeGuard, load_train_state, train
from tests.codec.train_setup import TINY_RUN, losses

CFG = TINY_RUN


def test_resumed_run_continues_the_uninterrupted_loss_curve(tmp_path: Path, sources):
    whole = train(CFG, tmp_path / "a" / "state.pt", sources)
    first = train(CFG, tmp_path / "b" / "state.pt", sources, max_steps=3)
    assert first.step == 3
    resumed = train(CFG, tmp_path / "b" / "state.pt", sources)
    assert resumed.step == whole.step == 5
    assert [row["frames"] for row in whole.history] == [1, 1, 3, 3, 7]
    assert losses(resumed) == pytest.approx(losses(whole), rel=1e-6, abs=0)


def test_training_writes_loadable_fp16_weights_and_a_log(tmp_path: Path, sources):
    weights = tmp_path / "w.pt"
    train(CFG, tmp_path / "state.pt", sources, weights_out=weights, max_steps=1)
    model = load_model(weights)
    assert model.config.name == "tiny"
    assert next(iter(torch.load(weights)["state_dict"].values())).dtype == torch.float16
    assert (tmp_path / "state.csv").read_text().startswith("step,")
    # warm start from shipped-style weights picks up the step count
    warm = train(CFG, tmp_path / "warm.pt", sources, resume=weights, max_steps=1)
    assert warm.step == 2


def test_log_windows_average_several_steps_and_count_pixels(tmp_path: Path, sources):
    cfg = replace(CFG, log_every=2)
    state = train(cfg, tmp_path / "state.pt", sources)
    assert [row["step"] for row in state.history] == [2, 4, 5]
    assert all(row["frame_pixels_per_s"] > 0 and row["skipped"] == 0 for row in state.history)
    assert all(math.isfinite(row["loss"]) for row in state.history)


def test_schedule_uses_large_intra_batches_then_clips_and_a_cosine_decay():
    cfg = TrainConfig(intra_steps=10, p3_steps=20, p7_steps=100, warmup_steps=10, lr=1e-3)
    assert [cfg.frames_at(s) for s in (0, 9, 10, 19, 20, 99)] == [1, 1, 3, 3, 7, 7]
    assert cfg.batch_at(0) == cfg.intra_batch_size > cfg.batch_at(10) == cfg.batch_size
    lrs = [cfg.lr_at(s) for s in range(100)]
    assert lrs[9] == pytest.approx(1e-3) and lrs[0] == pytest.approx(1e-4)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[-1] == pytest.approx(cfg.lr * cfg.lr_final_ratio, rel=0.01)


def test_a_warm_restart_starts_a_second_cosine_that_ends_at_the_last_step():
    first = TrainConfig(intra_steps=10, p3_steps=20, p7_steps=100, warmup_steps=10, lr=1e-3)
    cfg = replace(first, p7_steps=200, lr=5e-4, lr_restart_step=100)
    assert cfg.lr_at(99) == pytest.approx(
        TrainConfig(intra_steps=10, p3_steps=20, p7_steps=200, warmup_steps=10, lr=5e-4).lr_at(99)
    )
    assert cfg.lr_at(100) == pytest.approx(5e-4)
    lrs = [cfg.lr_at(s) for s in range(100, 200)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))
    assert lrs[-1] == pytest.approx(5e-4 * cfg.lr_final_ratio, rel=0.01)
    with pytest.raises(ValueError, match="lr_restart_step"):
        replace(cfg, lr_restart_step=200)


def test_cli_train_prints_its_last_log_window_as_a_table(tmp_path: Path, sources, monkeypatch):
    from rich.console import Console
    from typer.testing import CliRunner

    import codec.train.data
    from codec.cli import dhvc as cli

    monkeypatch.setattr(codec.train.data, "training_sources", lambda spec: sources)
    monkeypatch.setattr(cli, "console", Console(stderr=True, width=300))
    schedule = ["--intra-steps", "1", "--p3-steps", "2", "--p7-steps", "2", "--crop", "64"]
    batches = ["--batch-size", "2", "--intra-batch-size", "2", "--log-every", "1"]
    state = tmp_path / "state.pt"
    args = ["train", "--state", str(state), "--data", "sample", "--preset", "tiny"]
    result = CliRunner().invoke(cli.app, [*args, *schedule, *batches])
    assert result.exit_code == 0, result.output
    assert "stopped at step 2" in result.output
    assert "{" not in result.output  # a table, not a dict
    lines = result.output.splitlines()
    header = next(line for line in lines if "grad norm" in line)
    assert [c.strip() for c in header.strip("┃").split("┃")][:6] == [
        "step", "frames", "loss", "bpp", "MSE", "PSNR (dB)",
    ]  # fmt: skip
    row = next(line for line in lines if line.startswith("│"))
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells[:2] == ["2", "3"]
    assert math.isfinite(float(cells[2]))


def test_bad_training_configs_are_refused():
    bad_configs = (
        {"crop": 100},
        {"p3_steps": 1, "intra_steps": 2},
        {"batch_size": 0},
        {"intra_every": 1},
        {"intra_every": -2},
        {"still_fraction": -0.5},
        {"still_fraction": 0.7, "slow_fraction": 0.4},
    )
    for bad in bad_configs:
        with pytest.raises(ValueError):
            replace(CFG, **bad)


def test_spike_guard_skips_outliers_and_non_finite_norms_without_host_decisions():
    guard = _SpikeGuard(factor=4.0, device=torch.device("cpu"), warmup=3)
    keep = [guard(torch.tensor(v)).item() for v in (1.0, 1.2, 0.9, 1.1, 50.0, math.nan, 1.0)]
    assert keep == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0]
    assert guard.skipped.item() == 2
    assert 0.9 < guard.mean.item() < 1.2


@pytest.mark.gpu
def test_training_on_cuda_resumes_exactly_and_writes_cpu_loadable_weights(tmp_path: Path, sources):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    whole = train(CFG, tmp_path / "a" / "state.pt", sources, device="cuda")
    train(CFG, tmp_path / "b" / "state.pt", sources, device="cuda", max_steps=3)
    resumed = train(
        CFG, tmp_path / "b" / "state.pt", sources, weights_out=tmp_path / "w.pt", device="cuda"
    )
    # cuDNN may pick non-deterministic kernels: equal to rounding, not bit for bit
    assert losses(resumed) == pytest.approx(losses(whole), rel=1e-3, abs=0)
    assert load_model(tmp_path / "w.pt", device="cpu").config.name == "tiny"


def test_loss_events_lie_inside_the_clip_and_follow_the_fraction():
    from codec.train.trainer import sample_loss_events

    gen = torch.Generator().manual_seed(0)
    events = sample_loss_events(4000, 7, 0.25, gen, torch.device("cpu"))
    hit = events.frame >= 0
    assert 0.2 < hit.float().mean().item() < 0.3
    frame, span, scale = events.frame[hit], events.span[hit], events.scale[hit]
    assert frame.min() >= 1 and frame.max() <= 5  # an inter frame with a frame after it
    assert span.min() >= 1 and (frame + span).max() <= 6 and span.max() <= 3
    assert set(scale.tolist()) == {1, 2, 3, 4}
    none = sample_loss_events(50, 3, 0.0, gen, torch.device("cpu"))
    assert (none.frame == -1).all()
    every = sample_loss_events(50, 3, 1.0, gen, torch.device("cpu"))
    assert (every.frame == 1).all() and (every.span == 1).all()


def test_a_lost_scale_is_its_mean_and_later_frames_code_against_the_substituted_state():
    from codec.model.config import get_preset
    from codec.model.dhvc import DHVC, LossEvents, TrainingPicker

    torch.manual_seed(0)
    model = DHVC(get_preset("tiny")).eval()
    with torch.no_grad():  # random weights code all-zero symbols; move y away from mu
        for block in model.blocks:
            block.post_out.bias.fill_(2.0)
    x = torch.rand(2, 4, 3, 64, 64)
    lam = torch.tensor([500.0, 500.0])
    # Sample 0 loses scales 3..4 in frame 1 (one frame); sample 1 loses nothing.
    events = LossEvents(
        frame=torch.tensor([1, -1]), scale=torch.tensor([3, 1]), span=torch.tensor([1, 1])
    )
    with torch.no_grad():
        clean = model(x, lam).x_hat
        lossy = model(x, lam, events).x_hat
    assert torch.equal(clean[1], lossy[1])  # no event, same pictures
    assert torch.equal(clean[0, 0], lossy[0, 0])  # before the loss
    assert not torch.equal(clean[0, 1], lossy[0, 1])  # the degraded frame
    assert not torch.equal(clean[0, 3], lossy[0, 3])  # references built from the substitution

    mu, sigma, q = torch.randn(2, 4, 2, 2), torch.ones(2, 4, 2, 2), torch.ones(2, 4, 1, 1)
    y = mu + 3.0
    picker = TrainingPicker(model.entropy_model, first_lost=torch.tensor([2, 5]))
    assert torch.equal(picker.y_hat(1, y, mu, sigma, q)[0], torch.round(y - mu)[0] + mu[0])
    substituted = picker.y_hat(2, y, mu, sigma, q)
    assert torch.equal(substituted[0], mu[0]) and not torch.equal(substituted[1], mu[1])
    assert len(picker.bits) == 2  # the bits of a lost scale still count


def test_training_with_loss_events_runs_and_resumes_exactly(tmp_path: Path, sources):
    cfg = replace(CFG, loss_aware_fraction=1.0)
    whole = train(cfg, tmp_path / "a" / "state.pt", sources)
    train(cfg, tmp_path / "b" / "state.pt", sources, max_steps=3)
    resumed = train(cfg, tmp_path / "b" / "state.pt", sources)
    assert losses(resumed) == losses(whole)
    assert all(math.isfinite(v) for v in losses(whole))


def test_procedural_pictures_are_fixed_by_the_seed_and_textured():
    from codec.train.procedural import procedural_pictures

    first = procedural_pictures(4, 64, seed=3)
    again = procedural_pictures(4, 64, seed=3)
    other = procedural_pictures(4, 64, seed=4)
    assert all(a.shape == (64, 64, 3) and a.dtype == np.uint8 for a in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    for picture in first:  # texture everywhere, not a flat card
        assert np.abs(np.diff(picture.astype(np.int16), axis=1)).mean() > 2.0


def test_spike_guard_starts_again_when_the_gradient_scale_moves():
    guard = _SpikeGuard(factor=4.0, device=torch.device("cpu"), warmup=3, patience=5)
    for _ in range(10):
        assert guard(torch.tensor(1.0)).item() == 1.0
    # A new phase multiplies the norm by 100: a few steps are refused, then the guard
    # restarts its mean instead of refusing every step from then on.
    verdicts = [guard(torch.tensor(100.0)).item() for _ in range(12)]
    assert verdicts[:5] == [0.0] * 5 and all(v == 1.0 for v in verdicts[5:])
    guard.restart()  # at a phase change the first steps only feed the mean
    assert guard(torch.tensor(1e4)).item() == 1.0
    saved = guard.state_dict()
    other = _SpikeGuard(factor=4.0, device=torch.device("cpu"), warmup=3, patience=5)
    other.load_state_dict({k: v for k, v in saved.items() if k != "streak"})  # older states
    assert other.streak.item() == 0.0


def test_intra_every_interleaves_intra_steps_in_the_clip_phases_only():
    cfg = TrainConfig(intra_steps=10, p3_steps=20, p7_steps=100, intra_every=4)
    assert [cfg.frames_at(s) for s in (0, 3, 8, 10, 11, 12, 16, 19, 20, 21, 24)] == [
        1, 1, 1, 3, 3, 1, 1, 3, 1, 7, 1,
    ]  # fmt: skip
    assert cfg.phase_at(12) == 3 and cfg.phase_at(24) == 7
    assert cfg.batch_at(12) == cfg.intra_batch_size and cfg.batch_at(13) == cfg.batch_size
    assert [
        TrainConfig(intra_steps=10, p3_steps=20, p7_steps=100).frames_at(s) for s in (12, 24)
    ] == [3, 7]


def test_training_with_interleaved_intra_steps_runs_and_resumes_exactly(tmp_path: Path, sources):
    cfg = replace(CFG, intra_every=2)
    whole = train(cfg, tmp_path / "a" / "state.pt", sources)
    assert [row["frames"] for row in whole.history] == [1, 1, 1, 3, 1]
    train(cfg, tmp_path / "b" / "state.pt", sources, max_steps=3)
    resumed = train(cfg, tmp_path / "b" / "state.pt", sources)
    assert losses(resumed) == losses(whole)
    assert "intra_guard" in load_train_state(tmp_path / "b" / "state.pt")


def test_a_state_saved_before_intra_every_still_resumes(tmp_path: Path, sources):
    path = tmp_path / "state.pt"
    train(CFG, path, sources, max_steps=3)
    saved = load_train_state(path)
    del saved["intra_guard"]
    torch.save(saved, path)
    resumed = train(replace(CFG, intra_every=2), path, sources)
    assert resumed.step == CFG.p7_steps
