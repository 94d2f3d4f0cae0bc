"""Saving and loading model weights; ``load_model`` is how every command gets a model.

A checkpoint is a ``torch.save`` dict: ``config`` (ModelConfig.to_dict), ``state_dict``,
``model_id`` and free-form ``meta``. Shipped weights are fp16 and live in ``codec/weights/``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from codec.config import DEFAULT_PRESET, ModelConfig, get_preset
from codec.model import DHVC

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "dhvc-small.pt"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or does not fit its config."""


def model_id_for(model: DHVC) -> str:
    """A short stable id of a model: preset name + hash of its weights (16 hex digits)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float16).cpu().numpy().tobytes())
    return f"{model.config.name}-{digest.hexdigest()[:16]}"


def save_checkpoint(model: DHVC, path: Path, meta: dict | None = None, fp16: bool = True) -> None:
    """Write ``model`` to ``path`` atomically (fp16 weights by default)."""
    state = {
        k: (v.half() if fp16 and v.is_floating_point() else v).cpu()
        for k, v in model.state_dict().items()
    }
    payload = {
        "config": model.config.to_dict(),
        "state_dict": state,
        "model_id": model_id_for(model),
        "meta": meta or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_model(
    checkpoint: str | Path | None = "default",
    preset: str | None = None,
    device: str | torch.device = "cpu",
    strict: bool = True,
) -> DHVC:
    """The model every command uses.

    ``checkpoint="default"`` (or ``None``) loads the shipped weights; ``"none"`` builds a model
    with random weights from ``preset`` (default ``DEFAULT_PRESET``), for tests and benchmarks;
    anything else is a checkpoint path. Weights are loaded as float32. ``strict=False`` tolerates
    parameters missing from the checkpoint (warm starts after an architecture addition).
    Raises ``CheckpointError``.
    """
    if checkpoint is not None and str(checkpoint) == "none":
        torch.manual_seed(0)
        model = DHVC(get_preset(preset or DEFAULT_PRESET))
        model.model_id = f"{model.config.name}-random"
        return model.to(device).eval()
    path = DEFAULT_CHECKPOINT if checkpoint in (None, "default") else Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        config = ModelConfig.from_dict(payload["config"])
        state = payload["state_dict"]
    except Exception as err:  # a damaged file can fail in many ways inside torch.load
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from None
    if preset is not None and preset != config.name:
        raise CheckpointError(f"checkpoint {path} holds preset {config.name!r}, not {preset!r}")
    model = DHVC(config)
    try:
        model.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=strict
        )
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {path} does not fit its config: {err}") from None
    model.model_id = payload.get("model_id", model_id_for(model))
    return model.to(device).eval()
