"""Training (paper 6.1.2, eq. 15): loss = sum over frames of bpp + lambda * MSE, lambda sampled
log-uniformly per sample over the model's range; schedule intra (large batches), then 3-frame,
then 7-frame clips, one cosine learning-rate decay over the whole run.

The step is written for a GPU and runs unchanged on the CPU:

* the clips are made on the device (``codec.train.synth.DeviceSampler``: photos and video
  resident in device memory, crops, motion synthesis and photometric effects there);
* nothing in a step waits for the device: the losses are summed on the device and read once
  every ``log_every`` steps; the gradient-spike guard decides on the device (a step whose
  gradient norm exceeds ``spike_factor`` times its running mean, or is not finite, has its
  gradient zeroed by a masked fill, so only Adam's decayed momentum moves the weights); the
  EMA is one fused ``_foreach_lerp_``;
* channels-last weights and activations (on the CPU too: oneDNN's depth-wise and 1x1
  convolutions and the fused channel LayerNorm run 1.4-4x faster that way than in NCHW);
  on CUDA, bf16 autocast; on the CPU, ``codec.model.layers.cpu_training_kernels`` (a faster
  depth-wise weight gradient, and the blocks' 1x1 MLPs in bfloat16 on the AMX units unless
  ``cpu_bf16`` is off); optionally ``torch.compile`` of the model.

``train`` resumes exactly from a full training state (model, EMA, optimizer, guard, step, every
random stream) or warm-starts from shipped fp16 weights. It never prints: progress goes to the
``on_step`` callback (every ``log_every`` steps) and to a CSV log next to the state file.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from codec.model.checkpoint import load_model, save_checkpoint
from codec.model.config import ModelConfig, get_preset
from codec.model.device import resolve_device
from codec.model.dhvc import DHVC, LossEvents, count_parameters, widen_posterior_inputs
from codec.model.layers import cpu_training_kernels
from codec.pack.load import Pack
from codec.train.config import TrainConfig
from codec.train.procedural import procedural_pictures
from codec.train.synth import DeviceSampler
from codec.types import NUM_SCALES


@dataclass
class StepStats:
    """Means over the ``log_every`` steps that end at ``step`` (batch means of each step)."""

    step: int
    frames: int
    loss: float
    bpp: float
    mse: float
    psnr: float
    grad_norm: float
    skipped: int
    steps_per_s: float
    frame_pixels_per_s: float
    lr: float


@dataclass
class TrainState:
    """Everything needed to continue a run exactly."""

    step: int = 0
    history: list[dict] = field(default_factory=list)


def sample_lambdas(
    model_cfg: ModelConfig, n: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Log-uniform lambdas over [lambda_min, lambda_max], shape (n,), drawn on the device."""
    lo, hi = math.log(model_cfg.lambda_min), math.log(model_cfg.lambda_max)
    u = torch.rand(n, generator=generator, device=device)
    return torch.exp(lo + (hi - lo) * u)


def sample_loss_events(
    n: int, frames: int, fraction: float, generator: torch.Generator, device: torch.device
) -> LossEvents:
    """Loss events for ``n`` clips of ``frames`` frames (loss-aware training): each clip, with
    probability ``fraction``, loses scales j..K in frame t for ``span`` frames, with j uniform
    over 1..K, t uniform over 1..T-2 (an inter frame with a frame after the loss) and span
    uniform over 1..min(3, T-1-t) (the echo's round trip, in frames); the frames after are
    coded against the substituted state (mirrored recovery). Drawn on the device."""
    if frames < 3:
        raise ValueError("loss events need clips of at least 3 frames")
    u = torch.rand(n, 4, generator=generator, device=device)
    frame = 1 + (u[:, 1] * (frames - 2)).long()
    longest = (frames - 1 - frame).clamp(max=3)
    span = 1 + (u[:, 2] * longest).long()
    scale = 1 + (u[:, 3] * NUM_SCALES).long()
    frame = torch.where(u[:, 0] < fraction, frame, torch.full_like(frame, -1))
    return LossEvents(frame=frame, scale=scale, span=span)


def rd_loss(
    model: torch.nn.Module,
    x_seq: torch.Tensor,
    lam: torch.Tensor,
    loss_events: LossEvents | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 15 averaged over frames and batch, and the (4,) vector [loss, bpp, mse, psnr] of
    batch means, left on the device. Frames degraded by ``loss_events`` count like the others:
    their picture is what the viewer sees, and it is the substituted means that make it."""
    out = model(x_seq, lam) if loss_events is None else model(x_seq, lam, loss_events)
    b, t, _, h, w = x_seq.shape
    bpp = out.bits.sum(dim=(1, 2)) / (t * h * w)  # (B,)
    mse = (out.x_hat.float() - x_seq).pow(2).mean(dim=(1, 2, 3, 4))  # (B,)
    loss = (bpp + lam * mse).mean()
    psnr = (-10 * torch.log10(mse.clamp_min(1e-10))).mean()
    return loss, torch.stack([loss, bpp.mean(), mse.mean(), psnr]).detach()


class _SpikeGuard:
    """Skips steps whose gradient norm is not finite or above ``factor`` x its running mean,
    deciding on the device (no host sync). The first ``warmup`` steps only feed the mean.

    The gradient's scale moves when the schedule moves (intra to 3-frame clips: the first inter
    frames cost hundreds of bits per pixel), so ``restart`` forgets the mean at each phase
    change, and ``patience`` skipped steps in a row restart it too: without that, a mean learnt
    on intra steps refuses every inter step and training stops moving."""

    def __init__(
        self, factor: float, device: torch.device, warmup: int = 20, patience: int = 50
    ) -> None:
        self.factor = factor
        self.warmup = warmup
        self.patience = patience
        self.mean = torch.zeros((), device=device)
        self.seen = torch.zeros((), device=device)
        self.skipped = torch.zeros((), device=device)
        self.streak = torch.zeros((), device=device)

    def restart(self) -> None:
        """Forget the running mean: the next ``warmup`` steps feed it again."""
        self.seen = torch.zeros_like(self.seen)
        self.streak = torch.zeros_like(self.streak)

    def __call__(self, norm: torch.Tensor) -> torch.Tensor:
        """1.0 to apply this step's gradient, 0.0 to skip it; updates the running mean."""
        finite = torch.isfinite(norm)
        warm = self.seen >= self.warmup
        ok = finite & (~warm | (norm <= self.factor * self.mean))
        safe = torch.where(finite, norm, self.mean)
        rate = torch.where(warm, torch.full_like(self.mean, 0.02), 1.0 / (self.seen + 1.0))
        self.mean = torch.where(ok, self.mean + rate * (safe - self.mean), self.mean)
        self.seen = self.seen + ok.float()
        self.skipped = self.skipped + (~ok).float()
        self.streak = torch.where(ok, torch.zeros_like(self.streak), self.streak + 1.0)
        stuck = self.streak >= self.patience
        self.seen = torch.where(stuck, torch.zeros_like(self.seen), self.seen)
        self.streak = torch.where(stuck, torch.zeros_like(self.streak), self.streak)
        return ok.float()

    def state_dict(self) -> dict:
        return {
            "mean": self.mean,
            "seen": self.seen,
            "skipped": self.skipped,
            "streak": self.streak,
        }

    def load_state_dict(self, state: dict) -> None:
        device = self.mean.device
        self.mean, self.seen, self.skipped = (
            state[k].to(device) for k in ("mean", "seen", "skipped")
        )
        # States saved before the streak existed start with none.
        self.streak = state.get("streak", torch.zeros(())).to(device)


def train(
    cfg: TrainConfig,
    state_path: Path,
    sources: Pack,
    weights_out: Path | None = None,
    resume: Path | None = None,
    device: str = "cpu",
    max_steps: int | None = None,
    max_seconds: float | None = None,
    on_step: Callable[[StepStats], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int = 1,
) -> TrainState:
    """Train until ``cfg.total_steps`` (or ``max_steps`` more steps, or ``max_seconds``).

    ``sources``: the photos and clips to draw from (``codec.train.data.training_sources``).
    ``state_path``: full training state (written every ``save_every`` steps and at the end);
    if it exists, training resumes from it exactly. ``resume``: otherwise, fp16 weights to
    warm-start from (their ``meta.step`` sets the schedule position; optimizer starts fresh).
    ``weights_out``: where the fp16 EMA weights are written alongside each state save.
    ``should_stop``: asked between steps; when it answers true, the state is saved and training
    ends (``dhvc train`` answers true after SIGTERM or SIGINT, so a detached run stops cleanly).

    ``workers`` > 1 (CPU only): data-parallel training in that many processes, this one and
    ``workers - 1`` spawned ones, each on ``1/workers`` of the threads and of every batch, their
    gradients averaged (gloo all-reduce) before the one optimizer step that all of them take
    identically (``_DataParallel``). Small convolutions split over threads scale poorly on a
    CPU; split over processes they scale nearly linearly. Each worker draws its own batches
    (worker r from the seed plus r x ``WORKER_SEED_STRIDE``); the state file holds every
    worker's random streams, so a run resumes exactly with the same number of workers, and
    with another number it continues from the same weights, optimizer and schedule (workers
    the state does not know start fresh streams).
    """

    def run(parallel: _DataParallel) -> TrainState:
        return _train(
            cfg,
            state_path,
            sources,
            weights_out,
            resume,
            device,
            max_steps,
            max_seconds,
            on_step,
            should_stop,
            parallel,
        )

    if workers == 1:
        return run(_DataParallel.single())
    if not 1 <= workers <= 64:
        raise ValueError(f"workers must lie in [1, 64], got {workers}")
    if resolve_device(device) != "cpu":
        raise ValueError("workers > 1 trains on the CPU only")
    for name, size in (("batch_size", cfg.batch_size), ("intra_batch_size", cfg.intra_batch_size)):
        if size % workers:
            raise ValueError(f"{name} ({size}) must be a multiple of workers ({workers})")
    threads = max(1, torch.get_num_threads() // workers)
    spawn = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as rendezvous:
        init = Path(rendezvous, "store").as_uri()
        children = [
            spawn.Process(
                target=_worker,
                args=(init, rank, workers, threads, cfg, state_path, sources, resume, max_steps),
                daemon=True,
            )
            for rank in range(1, workers)
        ]
        for child in children:
            child.start()
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        parallel = _DataParallel.join(init, 0, workers)
        try:
            state = run(parallel)
        finally:
            parallel.close()
            torch.set_num_threads(before)
            for child in children:
                child.join(timeout=120)
                if child.is_alive():
                    child.terminate()
    failed = [child.exitcode for child in children if child.exitcode != 0]
    if failed:
        raise RuntimeError(f"a training worker failed (exit codes {failed})")
    return state


WORKER_SEED_STRIDE = 1_000_003
"""Worker r > 0 of a data-parallel run seeds its batches, lambdas and noise with the run's seed
plus r times this (worker 0 uses the seed itself, as a one-process run does)."""


def _worker(
    init: str,
    rank: int,
    world: int,
    threads: int,
    cfg: TrainConfig,
    state_path: Path,
    sources: Pack,
    resume: Path | None,
    max_steps: int | None,
) -> None:
    """A spawned data-parallel worker (rank >= 1): trains in step with worker 0, which saves,
    logs and decides when to stop. It ignores SIGINT: a Ctrl-C in the terminal reaches the
    whole process group, and worker 0 alone turns it into a clean stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    parallel = _DataParallel.join(init, rank, world)
    try:
        _train(cfg, state_path, sources, None, resume, "cpu", max_steps, None, None, None, parallel)
    finally:
        parallel.close()


@dataclass
class _DataParallel:
    """This process's place in a data-parallel run: ``rank`` of ``world`` (1: no other)."""

    rank: int
    world: int

    @classmethod
    def single(cls) -> _DataParallel:
        return cls(0, 1)

    @classmethod
    def join(cls, init: str, rank: int, world: int) -> _DataParallel:
        dist.init_process_group(
            "gloo", init_method=init, rank=rank, world_size=world, timeout=timedelta(minutes=5)
        )
        return cls(rank, world)

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()

    def seed(self, seed: int) -> int:
        return seed + self.rank * WORKER_SEED_STRIDE

    def any_stop(self, stop: bool) -> bool:
        """Worker 0's decision to stop, known to every worker."""
        if self.world == 1:
            return stop
        flag = torch.tensor([1.0 if stop and self.rank == 0 else 0.0])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def average_gradients(self, params: list[torch.Tensor]) -> None:
        """Every parameter's gradient becomes the mean over the workers (a parameter no worker
        has a gradient for keeps ``None``, as in a one-process step)."""
        if self.world == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        present = torch.tensor([float(p.grad is not None) for p in params])
        flat = torch.cat([*(g.reshape(-1) for g in grads), present])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p, g in zip(params, grads, strict=True):
            n = g.numel()
            p.grad = g.copy_(flat[offset : offset + n].view_as(g))
            offset += n
        for p, seen in zip(params, flat[offset:].tolist(), strict=True):
            if seen == 0:
                p.grad = None

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of ``values`` over the workers."""
        if self.world > 1:
            values = values.clone()
            dist.all_reduce(values)
            values /= self.world
        return values

    def gather_streams(self, streams: dict) -> list[dict] | None:
        """Every worker's random streams, worker 0's first, on worker 0 (None elsewhere)."""
        if self.world == 1:
            return [streams]
        gathered: list | None = [None] * self.world if self.rank == 0 else None
        dist.gather_object(streams, gathered, dst=0)
        return gathered


def _train(
    cfg: TrainConfig,
    state_path: Path,
    sources: Pack,
    weights_out: Path | None,
    resume: Path | None,
    device: str,
    max_steps: int | None,
    max_seconds: float | None,
    on_step: Callable[[StepStats], None] | None,
    should_stop: Callable[[], bool] | None,
    parallel: _DataParallel,
) -> TrainState:
    """The training loop of one worker (``train``)."""
    dev = torch.device(resolve_device(device))
    torch.manual_seed(cfg.seed)
    model = DHVC(get_preset(cfg.preset)).to(dev)
    ema = DHVC(get_preset(cfg.preset)).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    photos = [
        *sources.photos,
        *procedural_pictures(cfg.procedural_pictures, 4 * cfg.crop, cfg.seed),
    ]
    sampler = DeviceSampler(
        photos,
        sources.clips,
        crop=cfg.crop,
        device=dev,
        seed=parallel.seed(cfg.seed),
        synthetic_fraction=cfg.synthetic_fraction,
        still_fraction=cfg.still_fraction,
        slow_fraction=cfg.slow_fraction,
    )
    lambda_gen = torch.Generator(device=dev)
    lambda_gen.manual_seed(parallel.seed(cfg.seed + 1))
    if parallel.rank > 0:
        torch.manual_seed(parallel.seed(cfg.seed))  # the training noise (the model is built)
    guard = _SpikeGuard(cfg.spike_factor, dev)
    intra_guard = _SpikeGuard(cfg.spike_factor, dev)  # interleaved intra steps (intra_every)
    state = TrainState()
    if state_path.exists():
        saved = _fit_train_state(load_train_state(state_path, dev), model)
        model.load_state_dict(saved["model"])
        ema.load_state_dict(saved["ema"])
        optimizer.load_state_dict(saved["optimizer"])
        guard.load_state_dict(saved["guard"])
        if saved.get("intra_guard") is not None:  # states saved before intra_every lack it
            intra_guard.load_state_dict(saved["intra_guard"])
        others = saved.get("worker_streams") or []
        streams = saved if parallel.rank == 0 else dict(enumerate(others, 1)).get(parallel.rank)
        if streams is not None:  # else a worker the state does not know: fresh streams
            sampler.load_state_dict(streams["sampler"])
            lambda_gen.set_state(streams["lambda_rng"].cpu())
            torch.set_rng_state(streams["torch_rng"].cpu())
        if dev.type == "cuda" and saved.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(saved["cuda_rng"].cpu(), dev)
        state = TrainState(step=saved["step"], history=saved["history"])
    else:
        if resume is not None:
            model.load_state_dict(_warm_start_weights(resume, model), strict=False)
            meta = torch.load(resume, map_location="cpu", weights_only=True).get("meta", {})
            state.step = int(meta.get("step", 0))
            state.history = list(meta.get("history", []))
        ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
        ema = ema.to(memory_format=torch.channels_last)  # the EMA lerp pairs like strides
    forward = torch.compile(model) if cfg.compile else model
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")

    def cpu_kernels() -> contextlib.AbstractContextManager:
        if dev.type != "cpu":
            return contextlib.nullcontext()
        return cpu_training_kernels(bf16=cfg.cpu_bf16)

    params = list(model.parameters())
    ema_params = list(ema.parameters())

    def save() -> None:
        streams = parallel.gather_streams(
            {
                "sampler": sampler.state_dict(),
                "lambda_rng": lambda_gen.get_state(),
                "torch_rng": torch.get_rng_state(),
            }
        )
        if streams is not None:  # worker 0 writes
            _save(
                state_path,
                weights_out,
                model,
                ema,
                optimizer,
                (guard, intra_guard),
                state,
                cfg,
                streams,
            )

    start_time = time.monotonic()
    stop_step = (
        cfg.total_steps if max_steps is None else min(cfg.total_steps, state.step + max_steps)
    )
    window = torch.zeros(5, device=dev)  # sums of loss, bpp, mse, psnr, grad norm
    window_steps, window_pixels, tick = 0, 0, time.monotonic()
    skipped_before = int((guard.skipped + intra_guard.skipped).item())
    model.train()
    while state.step < stop_step:
        stop = max_seconds is not None and time.monotonic() - start_time > max_seconds
        stop = stop or (should_stop is not None and should_stop())
        if parallel.any_stop(stop):
            break
        frames = cfg.frames_at(state.step)
        batch = cfg.batch_at(state.step) // parallel.world
        if state.step > 0 and cfg.phase_at(state.step) != cfg.phase_at(state.step - 1):
            guard.restart()  # a new phase: the gradient's scale moves
        active = intra_guard if cfg.interleaved_intra(state.step) else guard
        x_seq = sampler.batch(batch, frames)
        lam = sample_lambdas(model.config, batch, lambda_gen, dev)
        events = None
        if frames >= 3 and cfg.loss_aware_fraction > 0:
            events = sample_loss_events(batch, frames, cfg.loss_aware_fraction, lambda_gen, dev)
        lr = cfg.lr_at(state.step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast, cpu_kernels():
            loss, parts = rd_loss(forward, x_seq, lam, events)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parallel.average_gradients(params)
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        skip = active(norm) == 0
        for p in params:
            if p.grad is not None:
                p.grad.masked_fill_(skip, 0.0)  # also clears NaN/inf, unlike a multiplication
        optimizer.step()
        decay = min(cfg.ema_decay, (1 + state.step) / (10 + state.step))  # EMA warm-up
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        window += torch.cat([parts, norm.detach().float().view(1)])
        window_steps += 1
        window_pixels += parallel.world * batch * frames * cfg.crop * cfg.crop
        state.step += 1
        if state.step % cfg.log_every == 0 or state.step == stop_step:
            means = parallel.mean(window / window_steps).tolist()  # one host sync per window
            skipped_now = int((guard.skipped + intra_guard.skipped).item())
            now = time.monotonic()
            stats = StepStats(
                step=state.step,
                frames=frames,
                loss=means[0],
                bpp=means[1],
                mse=means[2],
                psnr=means[3],
                grad_norm=means[4],
                skipped=skipped_now - skipped_before,
                steps_per_s=window_steps / max(now - tick, 1e-9),
                frame_pixels_per_s=window_pixels / max(now - tick, 1e-9),
                lr=lr,
            )
            state.history.append(asdict(stats))
            if on_step is not None:
                on_step(stats)
            window.zero_()
            window_steps, window_pixels, tick, skipped_before = 0, 0, now, skipped_now
        if state.step % cfg.save_every == 0:
            save()
    save()
    return state


_STATE_KEYS = ("model", "ema", "optimizer", "sampler", "lambda_rng", "guard", "torch_rng", "step")


def load_train_state(path: Path, device: torch.device | str = "cpu") -> dict:
    """The training state saved by ``train`` at ``path``, read without running code.

    The state holds tensors and plain data only (dicts, lists, numbers, strings), so it is read
    with ``torch.load(weights_only=True)``, whose unpickler builds nothing else: a file that
    carries a pickled object or code is refused before anything in it runs. Any file that is
    not such a state (missing, a folder, damaged, truncated, keys missing) is a ``ValueError``
    of one line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: not a training state file")
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # unpickling refusals, zip, EOF and storage errors
        reason = " ".join(str(err).split()).split(". ")[0][:100] or type(err).__name__
        raise ValueError(f"{path}: not a readable training state ({reason})") from None
    if not isinstance(saved, dict):
        raise ValueError(f"{path}: not a training state (holds a {type(saved).__name__})")
    missing = [k for k in _STATE_KEYS if k not in saved]
    if missing:
        raise ValueError(f"{path}: not a training state (lacks {', '.join(missing)})")
    return saved


def _fit_train_state(saved: dict, model: DHVC) -> dict:
    """A saved training state fitted to ``model``, so that training goes on from exactly the
    function, step and schedule it stopped at:

    * when ``model`` has ``posterior_context`` and the state was trained without it (same
      widths), the posterior's context inputs are added as zeros to the weights, the EMA and
      the optimizer's moments (``widen_posterior_inputs``);
    * parameters the state lacks (blocks added to the architecture since, such as
      ``prior_conv_blocks``, which start as the identity) take the model's initial values in
      the weights and the EMA, and fresh optimizer moments; the saved moments move to their
      parameters' new places.

    Anything else is returned as it is (and refused by ``load_state_dict`` when it does not
    fit)."""
    if model.config.posterior_context:
        saved = _widen_train_state(saved, model)
    return _grow_train_state(saved, model)


def _saved_parameter_order(saved: dict, model: DHVC) -> list[str]:
    """The parameter names of the model ``saved`` was trained with, in its optimizer's order
    (its weights are saved in ``state_dict`` order; ``model``'s buffers left out)."""
    buffers = {name for name, _ in model.named_buffers()}
    return [name for name in saved["model"] if name not in buffers]


def _widen_train_state(saved: dict, model: DHVC) -> dict:
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    fitted = dict(saved, model=widen_posterior_inputs(saved["model"], shapes))
    fitted["ema"] = widen_posterior_inputs(saved["ema"], shapes)
    names = _saved_parameter_order(saved, model)
    optimizer = saved["optimizer"]
    moments = {}
    for index, entry in optimizer["state"].items():
        name = names[index] if 0 <= index < len(names) else None
        if name is None:
            moments[index] = entry
            continue
        moments[index] = {
            key: widen_posterior_inputs({name: value}, shapes)[name]
            if isinstance(value, torch.Tensor)
            else value
            for key, value in entry.items()
        }
    fitted["optimizer"] = dict(optimizer, state=moments)
    return fitted


def _grow_train_state(saved: dict, model: DHVC) -> dict:
    old = _saved_parameter_order(saved, model)
    new = [name for name, _ in model.named_parameters()]
    added = [name for name in new if name not in saved["model"]]
    groups = saved["optimizer"].get("param_groups", [])
    if not added or not set(old) <= set(new) or len(groups) != 1:
        return saved
    place = {name: index for index, name in enumerate(new)}
    initial = model.state_dict()
    fitted = dict(saved)
    for key in ("model", "ema"):
        fitted[key] = {**saved[key], **{name: initial[name].clone() for name in added}}
    moments = {
        place[old[index]]: entry
        for index, entry in saved["optimizer"]["state"].items()
        if 0 <= index < len(old)
    }
    for index, entry in moments.items():
        if any(v.shape != initial[new[index]].shape for v in entry.values() if v.dim() > 0):
            raise ValueError(f"the saved optimizer state does not fit parameter {new[index]!r}")
    group = dict(groups[0], params=list(range(len(new))))
    fitted["optimizer"] = dict(saved["optimizer"], state=moments, param_groups=[group])
    return fitted


def _warm_start_weights(path: Path, model: DHVC) -> dict[str, torch.Tensor]:
    """Weights of ``path`` for ``model``: parameters the checkpoint lacks (added to the
    architecture after it was written, or ``prior_conv_blocks`` the checkpoint's model did not
    have) keep their initial values, and weights of the same widths without
    ``posterior_context`` warm-start a model with it (``_fit_train_state``); anything else that
    does not fit is an error."""
    warm = load_model(path, device="cpu", strict=False)
    own = model.state_dict()
    state = widen_posterior_inputs(warm.state_dict(), {k: v.shape for k, v in own.items()})
    unexpected = [k for k in state if k not in own or own[k].shape != state[k].shape]
    same = warm.config.name == model.config.name or _warm_start_neutral(
        warm.config
    ) == _warm_start_neutral(model.config)
    if not same or unexpected:
        raise ValueError(f"{path} does not fit preset {model.config.name!r}: {unexpected[:5]}")
    return state


def _warm_start_neutral(config: ModelConfig) -> ModelConfig:
    """``config`` with the fields a warm start may change (name, posterior_context, and
    prior_conv_blocks where they grow) neutral."""
    return dataclasses.replace(
        config, name="", posterior_context=False, prior_conv_blocks=(0,) * NUM_SCALES
    )


def _save(state_path, weights_out, model, ema, optimizer, guards, state, cfg, streams) -> None:
    """Write the training state (``streams``: every worker's random streams, worker 0's first)
    and the fp16 EMA weights."""
    guard, intra_guard = guards
    state_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = state_path.with_suffix(".tmp")
    cuda = next(model.parameters()).device.type == "cuda"
    torch.save(
        {
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            **streams[0],  # sampler, lambda_rng, torch_rng
            "guard": guard.state_dict(),
            "intra_guard": intra_guard.state_dict(),
            "cuda_rng": torch.cuda.get_rng_state() if cuda else None,
            "step": state.step,
            "history": state.history,
            "train_config": asdict(cfg),
            "worker_streams": streams[1:],  # data-parallel workers 1.. (train's workers)
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
    names = list(dict.fromkeys(k for row in history for k in row))  # old logs lack new columns
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        writer.writerows(history)
    tmp.replace(path)
