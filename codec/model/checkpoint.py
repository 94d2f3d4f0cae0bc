"""Saving and loading model weights; ``load_model`` is how every command gets a model.

A checkpoint is a ``torch.save`` dict: ``config`` (ModelConfig.to_dict), ``state_dict``,
``model_id`` and free-form ``meta``. Shipped weights are fp16 and live in ``codec/weights/``.

``device`` goes through ``codec.model.device.resolve_device``, the one device check.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from codec.io.atomic import atomic_file
from codec.model.config import (
    DEFAULT_PRESET,
    MAX_LAMBDA,
    MIN_LAMBDA,
    PRESETS,
    ModelConfig,
    get_preset,
)
from codec.model.device import resolve_device
from codec.model.dhvc import DHVC

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
DEFAULT_CHECKPOINT = WEIGHTS_DIR / "dhvc-base.pt"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or does not fit its config (one line)."""


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
    with atomic_file(path) as tmp:
        torch.save(payload, tmp)


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
    ``device`` goes through ``resolve_device``. Raises ``CheckpointError`` (one line:
    ``PATH: not a DHVC checkpoint (reason)`` for any file that is not one) or ``DeviceError``.
    """
    device = resolve_device(device)
    if checkpoint is not None and str(checkpoint) == "none":
        torch.manual_seed(0)
        model = DHVC(get_preset(preset or DEFAULT_PRESET))
        model.model_id = f"{model.config.name}-random"
        return model.to(device).eval()
    path = DEFAULT_CHECKPOINT if checkpoint in (None, "default") else Path(checkpoint)
    config, state, model_id = _read_checkpoint(path)
    if preset is not None and preset != config.name:
        raise CheckpointError(f"checkpoint {path} holds preset {config.name!r}, not {preset!r}")
    model = _build(path, config, state, strict)
    model.model_id = model_id if model_id is not None else model_id_for(model)
    if problem := _model_id_problem(model.model_id):
        raise _not_a_checkpoint(path, problem)
    return model.to(device).eval()


_ZIP_MAGIC = b"PK\x03\x04"
"""``torch.save`` writes a zip archive; the legacy format before it is a pickle (0x80 first)."""


def _not_a_checkpoint(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(f"{path}: not a DHVC checkpoint ({reason})")


def _first_sentence(err: BaseException) -> str:
    """The first line and sentence of an error message, at most 100 characters."""
    lines = str(err).strip().splitlines()
    text = lines[0].split(". ")[0].rstrip(".") if lines else type(err).__name__
    return text if len(text) <= 100 else text[:97] + "..."


def read_checkpoint_config(path: Path) -> ModelConfig:
    """The model config stored in the checkpoint at ``path`` (``CheckpointError`` if the file
    is not a DHVC checkpoint), without building the model."""
    return read_checkpoint_header(path)[0]


def read_checkpoint_header(path: Path) -> tuple[ModelConfig, str | None]:
    """The model config and model id (``None`` when the file stores none) of the checkpoint at
    ``path``, without building the model; ``CheckpointError`` if it is not a DHVC checkpoint."""
    config, _, model_id = _read_checkpoint(Path(path))
    return config, model_id


def _read_checkpoint(path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor], str | None]:
    """Config, state dict and model id (``None`` if absent) of the checkpoint at ``path``."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.is_dir():
        raise _not_a_checkpoint(path, "a directory")
    if not path.is_file():
        raise _not_a_checkpoint(path, "not a regular file")
    try:
        with path.open("rb") as f:
            magic = f.read(len(_ZIP_MAGIC))
    except OSError as err:
        raise CheckpointError(f"{path}: cannot read checkpoint ({err.strerror or err})") from None
    if not magic:
        raise _not_a_checkpoint(path, "empty file")
    if magic != _ZIP_MAGIC and magic[:1] != b"\x80":
        raise _not_a_checkpoint(path, "not a torch.save file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # zip, unpickling, EOF and storage errors all come through here
        raise _not_a_checkpoint(
            path, f"damaged or truncated torch.save file: {_first_sentence(err)}"
        ) from None
    if not isinstance(payload, dict):
        raise _not_a_checkpoint(path, f"holds a {type(payload).__name__}, not a dict")
    if not isinstance(payload.get("config"), dict):
        raise _not_a_checkpoint(path, "no model config")
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not state:
        raise _not_a_checkpoint(path, "no state_dict")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise _not_a_checkpoint(path, "state_dict holds entries that are not named tensors")
    try:
        config = ModelConfig.from_dict(payload["config"])
    except Exception as err:  # unknown fields, wrong types or counts
        raise _not_a_checkpoint(path, f"bad model config: {_first_sentence(err)}") from None
    if not MIN_LAMBDA <= config.lambda_min < config.lambda_max <= MAX_LAMBDA:
        raise _not_a_checkpoint(
            path,
            f"lambda range {config.lambda_min:g}..{config.lambda_max:g} is outside the .dhvc "
            f"limits {MIN_LAMBDA:g}..{MAX_LAMBDA:g}",
        )
    model_id = payload.get("model_id")
    if model_id is not None and not isinstance(model_id, str):
        raise _not_a_checkpoint(path, "model id is not a string")
    return config, state, model_id


def _model_id_problem(model_id: str) -> str | None:
    """Why ``model_id`` cannot go into a stream header, or ``None``."""
    if model_id.isascii() and model_id.isprintable() and 0 < len(model_id) <= 32:
        return None
    return f"model id {model_id[:40]!r} is not 1..32 printable ASCII characters"


def _fit_problem(expected: dict[str, torch.Size], state: dict[str, torch.Tensor], strict: bool):
    """One line saying how ``state`` does not fit parameters of ``expected`` shapes, or ``None``."""
    missing = sorted(set(expected) - set(state)) if strict else []
    unexpected = sorted(set(state) - set(expected)) if strict else []
    reshaped = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k])
    if not (missing or unexpected or reshaped):
        return None
    parts = [
        f"{len(names)} {what} (e.g. {names[0]})"
        for what, names in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("of another shape", reshaped),
        )
        if names
    ]
    return f"weights do not fit its config: {', '.join(parts)}"


def _build(path: Path, config: ModelConfig, state: dict[str, torch.Tensor], strict: bool) -> DHVC:
    """``DHVC(config)`` with ``state`` loaded; a config that is not a preset is first built on
    the meta device (no memory) and checked against the state's shapes, so a hostile config
    cannot allocate more than the file holds."""
    if config != PRESETS.get(config.name):
        blocks = (
            sum(config.enc_blocks + config.prior_blocks + config.dec_blocks)
            + config.enc_blocks_patch
            + config.dec_blocks_patch
        )
        if blocks > len(state):  # every block has parameters
            raise _not_a_checkpoint(path, f"config has {blocks} blocks, state {len(state)} tensors")
        try:
            with torch.device("meta"):
                shapes = {k: v.shape for k, v in DHVC(config).state_dict().items()}
        except Exception as err:
            raise _not_a_checkpoint(path, f"bad model config: {_first_sentence(err)}") from None
        if problem := _fit_problem(shapes, state, strict):
            raise _not_a_checkpoint(path, problem)
    model = DHVC(config)
    if problem := _fit_problem({k: v.shape for k, v in model.state_dict().items()}, state, strict):
        raise _not_a_checkpoint(path, problem)
    try:
        model.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=strict
        )
    except RuntimeError as err:
        raise _not_a_checkpoint(path, f"weights do not load: {_first_sentence(err)}") from None
    return model
