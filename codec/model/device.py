"""The one check of a ``--device`` for every command and library entry point: a device that
is not there is one line (``DeviceError``), never a traceback from deep inside torch. Importing
this module does not import torch (command lines build their ``--device`` choices from
``DEVICES`` at start-up)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


class DeviceError(ValueError):
    """A ``--device`` that names no usable device (one line)."""


DEVICES = ("auto", "cpu", "cuda")
"""What ``--device`` accepts (``cuda:N`` picks one CUDA device)."""


def resolve_device(device: str | torch.device, option: str = "--device") -> str:
    """The torch device name for ``device``: ``auto`` is ``cuda`` when CUDA is available, else
    ``cpu``; ``cuda`` and ``cuda:N`` must be available. ``DeviceError`` otherwise, its message
    naming ``option`` (the setting the value came from)."""
    import torch

    name = str(device)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    kind, colon, index = name.partition(":")
    if kind == "cuda" and (not colon or index.isdigit()):
        if not torch.cuda.is_available():
            raise DeviceError(f"{option} {name} requested but CUDA is not available")
        count = torch.cuda.device_count()
        if colon and int(index) >= count:
            raise DeviceError(
                f"{option} {name} requested but only {count} CUDA device(s) are available"
            )
        return name
    raise DeviceError(f"unknown device {name!r} ({', '.join(DEVICES[:-1])} or {DEVICES[-1]})")
