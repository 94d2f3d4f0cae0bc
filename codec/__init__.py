"""DHVC 2.0: a hierarchical neural video codec with per-scale bitstreams.

Public API: ``load_model``, ``Encoder``, ``Decoder`` and the typed values in ``codec.types``.
"""

from codec.checkpoint import CheckpointError, load_model, save_checkpoint
from codec.coder import Decoder, Encoder
from codec.config import ModelConfig, get_preset
from codec.model import DHVC
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

__all__ = [
    "DHVC",
    "IN_SYNC",
    "NUM_SCALES",
    "CheckpointError",
    "DecodedFrame",
    "Decoder",
    "EncodedFrame",
    "Encoder",
    "FrameType",
    "ModelConfig",
    "ReceivedFrame",
    "ScaleOutcome",
    "ScalePayload",
    "get_preset",
    "load_model",
    "save_checkpoint",
]
