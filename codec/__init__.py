"""DHVC 2.0: a hierarchical neural video codec with per-scale bitstreams.

Public API: ``load_model``, ``Encoder``, ``Decoder``, the typed values in ``codec.types`` and
``shift_picture`` (a picture moved along a frame's block motion field, ``codec.stream.motion``).
The names load on first use (PEP 562), so ``import codec.stream.bitstream`` or a console script's
start-up does not import torch before it is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "CheckpointError": "codec.model.checkpoint",
    "load_model": "codec.model.checkpoint",
    "save_checkpoint": "codec.model.checkpoint",
    "Decoder": "codec.stream.coder",
    "Encoder": "codec.stream.coder",
    "ModelConfig": "codec.model.config",
    "get_preset": "codec.model.config",
    "DHVC": "codec.model.dhvc",
    "IN_SYNC": "codec.types",
    "NUM_SCALES": "codec.types",
    "DecodedFrame": "codec.types",
    "EncodedFrame": "codec.types",
    "FrameType": "codec.types",
    "ReceivedFrame": "codec.types",
    "ScaleOutcome": "codec.types",
    "ScalePayload": "codec.types",
    "shift_picture": "codec.stream.motion",
}

__all__ = [
    "CheckpointError",
    "DHVC",
    "DecodedFrame",
    "Decoder",
    "EncodedFrame",
    "Encoder",
    "FrameType",
    "IN_SYNC",
    "ModelConfig",
    "NUM_SCALES",
    "ReceivedFrame",
    "ScaleOutcome",
    "ScalePayload",
    "get_preset",
    "load_model",
    "save_checkpoint",
    "shift_picture",
]

if TYPE_CHECKING:
    from codec.model.checkpoint import CheckpointError, load_model, save_checkpoint
    from codec.model.config import ModelConfig, get_preset
    from codec.model.dhvc import DHVC
    from codec.stream.coder import Decoder, Encoder
    from codec.stream.motion import shift_picture
    from codec.types import (
        IN_SYNC,
        NUM_SCALES,
        DecodedFrame,
        EncodedFrame,
        FrameType,
        ReceivedFrame,
        ScaleOutcome,
        ScalePayload,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'codec' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
