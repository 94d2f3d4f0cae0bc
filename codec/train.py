"""Training (paper 6.1.2, eq. 15): loss = sum over frames of bpp + lambda * MSE, lambda sampled
log-uniformly per sample over the model's range; schedule intra, then 3-frame, then 7-frame.

``train`` resumes exactly from a full training state (model, EMA, optimizer, step, random
states), or warm-starts from shipped fp16 weights. It never prints: progress goes to the
``on_step`` callback and to a CSV log next to the state file.
"""

from __future__ import annotations

import csv
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from codec.checkpoint import load_model, save_checkpoint
from codec.config import ModelConfig, get_preset
from codec.data import ClipDataset, ClipSampler, DataConfig
from codec.model import DHVC, count_parameters


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a training run. Steps are cumulative phase boundaries."""

    preset: str = "small"
    intra_steps: int = 2000
    p3_steps: int = 4000
    p7_steps: int = 5000
    batch_size: int = 8
    crop: int = 128
    lr: float = 4e-4
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0
    save_every: int = 200
    log_every: int = 10
    synthetic_fraction: float = 0.5
    workers: int = 0

    def frames_at(self, step: int) -> int:
        """Sequence length of the schedule at ``step`` (0-based)."""
        if step < self.intra_steps:
            return 1
        return 3 if step < self.p3_steps else 7

    @property
    def total_steps(self) -> int:
        return self.p7_steps


@dataclass
class StepStats:
    """What one optimisation step measured (averages over the batch)."""

    step: int
    frames: int
    loss: float
    bpp: float
    mse: float
    psnr: float
    steps_per_s: float
    lr: float


@dataclass
class TrainState:
    """Everything needed to continue a run exactly."""

    step: int = 0
    history: list[dict] = field(default_factory=list)


def _lr_at(cfg: TrainConfig, step: int) -> float:
    return cfg.lr * min(1.0, (step + 1) / max(1, cfg.warmup_steps))


def sample_lambdas(model_cfg: ModelConfig, n: int, rng: np.random.Generator) -> torch.Tensor:
    """Log-uniform lambdas over [lambda_min, lambda_max], shape (n,)."""
    lo, hi = math.log(model_cfg.lambda_min), math.log(model_cfg.lambda_max)
    return torch.from_numpy(np.exp(rng.uniform(lo, hi, size=n))).float()


def rd_loss(model: DHVC, x_seq: torch.Tensor, lam: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Eq. 15 averaged over frames and batch: mean_b [bpp_b + lambda_b * MSE_b]."""
    out = model(x_seq, lam)
    b, t, _, h, w = x_seq.shape
    bpp = out.bits.sum(dim=(1, 2)) / (t * h * w)  # (B,)
    mse = (out.x_hat.float() - x_seq).pow(2).mean(dim=(1, 2, 3, 4))  # (B,)
    loss = (bpp + lam.to(bpp.device) * mse).mean()
    psnr = (-10 * torch.log10(mse.clamp_min(1e-10))).mean()
    return loss, {"bpp": bpp.mean().item(), "mse": mse.mean().item(), "psnr": psnr.item()}


def train(
    cfg: TrainConfig,
    state_path: Path,
    weights_out: Path | None = None,
    resume: Path | None = None,
    device: str = "cpu",
    max_steps: int | None = None,
    max_seconds: float | None = None,
    data: DataConfig | None = None,
    on_step: Callable[[StepStats], None] | None = None,
) -> TrainState:
    """Train until ``cfg.total_steps`` (or ``max_steps`` more steps, or ``max_seconds``).

    ``state_path``: full training state (written every ``save_every`` steps and at the end);
    if it exists, training resumes from it exactly. ``resume``: otherwise, fp16 weights to
    warm-start from (their ``meta.step`` sets the schedule position; optimizer starts fresh).
    ``weights_out``: where the fp16 EMA weights are written alongside each state save.
    """
    dev = torch.device(device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = DHVC(get_preset(cfg.preset)).to(dev)
    ema = DHVC(get_preset(cfg.preset)).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    state = TrainState()
    if state_path.is_file():
        saved = torch.load(state_path, map_location=dev, weights_only=False)
        model.load_state_dict(saved["model"])
        ema.load_state_dict(saved["ema"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = saved["numpy_rng"]
        torch.set_rng_state(saved["torch_rng"].cpu())
        state = TrainState(step=saved["step"], history=saved["history"])
    else:
        if resume is not None:
            model.load_state_dict(_warm_start_weights(resume, model), strict=False)
            meta = torch.load(resume, map_location="cpu", weights_only=True).get("meta", {})
            state.step = int(meta.get("step", 0))
            state.history = list(meta.get("history", []))
        ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)

    sampler = ClipSampler(
        data or DataConfig(crop=cfg.crop, synthetic_fraction=cfg.synthetic_fraction)
    )
    start_time = time.monotonic()
    stop_step = (
        cfg.total_steps if max_steps is None else min(cfg.total_steps, state.step + max_steps)
    )
    tick = time.monotonic()
    model.train()
    loader: tuple[int, Iterator[torch.Tensor]] | None = None  # (frames, batches) with workers
    while state.step < stop_step:
        if max_seconds is not None and time.monotonic() - start_time > max_seconds:
            break
        frames = cfg.frames_at(state.step)
        if cfg.workers > 0:
            if loader is None or loader[0] != frames:
                loader = (frames, _worker_batches(sampler, cfg, frames, state.step))
            x_seq = next(loader[1]).to(dev, non_blocking=True)
        else:
            x_seq = sampler.batch(cfg.batch_size, frames, rng).to(dev)
        lam = sample_lambdas(model.config, cfg.batch_size, rng).to(dev)
        lr = _lr_at(cfg, state.step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            loss, parts = rd_loss(model, x_seq, lam)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        decay = min(cfg.ema_decay, (1 + state.step) / (10 + state.step))  # EMA warm-up
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
                p_ema.lerp_(p, 1 - decay)
        state.step += 1
        now = time.monotonic()
        stats = StepStats(
            state.step,
            frames,
            loss.item(),
            parts["bpp"],
            parts["mse"],
            parts["psnr"],
            1.0 / max(now - tick, 1e-9),
            lr,
        )
        tick = now
        if state.step % cfg.log_every == 0 or state.step == stop_step:
            state.history.append(asdict(stats))
        if on_step is not None:
            on_step(stats)
        if state.step % cfg.save_every == 0:
            _save(state_path, weights_out, model, ema, optimizer, rng, state, cfg)
    _save(state_path, weights_out, model, ema, optimizer, rng, state, cfg)
    return state


def _worker_batches(
    sampler: ClipSampler, cfg: TrainConfig, frames: int, step: int
) -> Iterator[torch.Tensor]:
    """Batches drawn by ``cfg.workers`` DataLoader processes. Their clip streams are seeded by
    (seed, step at which the loader starts), so a run is repeatable from the same resume point,
    but, unlike the single-process path, not identical to an uninterrupted run."""
    dataset = ClipDataset(sampler, frames, seed=cfg.seed * 1_000_003 + step)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        num_workers=cfg.workers,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=True,
        prefetch_factor=4,
    )
    return iter(loader)


def _warm_start_weights(path: Path, model: DHVC) -> dict[str, torch.Tensor]:
    """Weights of ``path`` for ``model``: parameters the checkpoint lacks (added to the
    architecture after it was written) keep their initial values; anything else that does not
    fit is an error."""
    warm = load_model(path, device="cpu", strict=False)
    own = model.state_dict()
    state = warm.state_dict()
    unexpected = [k for k in state if k not in own or own[k].shape != state[k].shape]
    if warm.config.name != model.config.name or unexpected:
        raise ValueError(f"{path} does not fit preset {model.config.name!r}: {unexpected[:5]}")
    return state


def _save(state_path, weights_out, model, ema, optimizer, rng, state, cfg) -> None:
    state_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = state_path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "step": state.step,
            "history": state.history,
            "train_config": asdict(cfg),
        },
        tmp,
    )
    tmp.replace(state_path)
    _write_log(state_path.with_suffix(".csv"), state.history)
    if weights_out is not None:
        meta = {
            "step": state.step,
            "history": state.history,
            "train_config": asdict(cfg),
            "parameters": count_parameters(ema),
        }
        save_checkpoint(ema, weights_out, meta=meta, fp16=True)


def _write_log(path: Path, history: list[dict]) -> None:
    if not history:
        return
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def plot_training_curve(
    history: list[dict], path_png: Path, marks: Sequence[tuple[int, str]] = ()
) -> Path:
    """Loss, bpp and PSNR against step from a run's logged history (plot only).

    ``marks``: (step, label) pairs drawn as labelled dashed lines, e.g. where a run resumed
    with other settings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [row["step"] for row in history]
    phase_changes = [
        b["step"] for a, b in itertools.pairwise(history) if a["frames"] != b["frames"]
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), constrained_layout=True)
    series = (("loss", "loss (bpp + lambda MSE)"), ("bpp", "rate (bpp)"), ("psnr", "PSNR (dB)"))
    for ax, (key, label) in zip(axes, series, strict=True):
        ax.plot(steps, [row[key] for row in history], lw=0.6, alpha=0.5, label="per step")
        window = max(1, len(steps) // 50)
        smooth = np.convolve([row[key] for row in history], np.ones(window) / window, "valid")
        ax.plot(steps[window - 1 :], smooth, lw=1.5, label=f"mean of {window}")
        ax.set_xlabel("training step")
        ax.set_ylabel(label)
        if key == "loss":
            ax.set_yscale("log")
        for boundary in phase_changes:
            ax.axvline(boundary, color="grey", ls=":", lw=1)
        for step, text in marks:
            ax.axvline(step, color="tab:red", ls="--", lw=1)
            ax.annotate(
                text,
                (step, 1.0),
                xycoords=("data", "axes fraction"),
                rotation=90,
                va="top",
                ha="right",
                fontsize=7,
                color="tab:red",
            )
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle(
        "dhvc train: batch means at sampled lambdas; dotted lines = schedule phase changes"
    )
    path_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path_png, dpi=120)
    plt.close(fig)
    return path_png
