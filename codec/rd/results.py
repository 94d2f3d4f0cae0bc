"""The ``rd.json`` file of ``dhvc eval``: written atomically, read back as the same dict.

Its layout is ``codec.rd.eval.evaluate``'s result (rate points per codec under ``codecs``, the
settings and the BD-rates); values are JSON numbers, ``null`` where undefined, never NaN.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from codec.io.atomic import write_text_atomic


class RdFileError(ValueError):
    """An rd.json that cannot be read; the message is one line naming the file."""


def write_rd(path: str | os.PathLike[str], rd: dict[str, Any]) -> Path:
    """Write ``rd`` to ``path`` atomically (``codec.io.atomic``), indented; returns the path.

    Raises ``ValueError`` for a non-finite number (JSON has none)."""
    return write_text_atomic(path, json.dumps(rd, indent=2, allow_nan=False) + "\n")


def read_rd(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The dict ``write_rd`` wrote. Raises ``RdFileError`` when ``path`` is missing, is not
    JSON, or has no ``codecs`` mapping of rate points."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as err:
        raise RdFileError(f"{path}: cannot read: {err.strerror or err}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RdFileError(f"{path}: not JSON: {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("codecs"), dict):
        raise RdFileError(f"{path}: missing key 'codecs' (a mapping of codec -> rate points)")
    return data
