"""Load the trace files of one simulator run (DESIGN 5) into validated pandas DataFrames.

A run folder holds ``frames.csv`` (one row per frame), ``packets.csv`` (one row per packet) and
``summary.json``. Loaders check that every required column is present and has the right type,
keep any extra columns the simulator adds, and raise :class:`TraceError` with one line naming
the file and the column when something is wrong. ``load_rd`` reads the ``rd.json`` written by
``dhvc eval``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from netsim.damage import frame_state
from netsim.summary import SUMMARY_FILE
from netsim.trace import (
    FRAME_SCHEMA,
    FRAMES_FILE,
    PACKET_SCHEMA,
    PACKETS_FILE,
    ColumnKind,
    Fate,
    column_labels,
)


class TraceError(ValueError):
    """A trace file is missing, unreadable, or lacks a required column of the right type."""


_SCALE_BITS = re.compile(r"^bits_s(\d+)$")

DERIVED_FRAME_COLUMNS: frozenset[str] = frozenset({"state"})
"""Columns of frames.csv that a reader computes from the others when an older trace lacks
them (``state``: ``netsim.damage.frame_state`` of D and ``shown``)."""

FRAME_COLUMNS: dict[str, ColumnKind] = {
    c.name: c.kind
    for c in FRAME_SCHEMA
    if not _SCALE_BITS.match(c.name) and c.name not in DERIVED_FRAME_COLUMNS
}
"""Columns of frames.csv (``netsim.trace.FRAME_SCHEMA``) besides the per-scale ``bits_s<k>``
columns, whose number K may differ from run to run. All are required but those with a
default (``FRAME_DEFAULTS``)."""

FRAME_DEFAULTS: dict[str, str] = {c.name: c.default for c in FRAME_SCHEMA if c.default is not None}
"""Columns added to frames.csv after its first version, with the cell assumed when an older
trace lacks them (``codec`` dhvc, ``units_sent`` 4, ``concealed`` and ``frozen`` no)."""

PACKET_COLUMNS: dict[str, ColumnKind] = {c.name: c.kind for c in PACKET_SCHEMA}
"""Required columns of packets.csv (``netsim.trace.PACKET_SCHEMA``)."""

LABELS: dict[str, tuple[str, ...]] = {
    c.name: c.labels for c in (*FRAME_SCHEMA, *PACKET_SCHEMA) if c.kind is ColumnKind.LABEL
}
"""The values each label column allowed when this module was loaded (``codec``: the codecs
registered then; a trace is checked against the codecs registered when it is read)."""

_LABEL_COLUMNS = {c.name: c for c in (*FRAME_SCHEMA, *PACKET_SCHEMA) if c.kind is ColumnKind.LABEL}

FRAME_TYPES: tuple[str, ...] = LABELS["frame_type"]
"""Values of ``frame_type``: GOP start, predicted frame, re-sync frame, mirrored recovery
frame (I, P, R, M; ``netsim.trace``'s one definition)."""

PACKET_FATES: tuple[str, ...] = LABELS["fate"]
"""Values of ``fate`` in packets.csv (``netsim.trace.Fate``)."""

USABLE_FATES: frozenset[str] = frozenset({Fate.DELIVERED.value, Fate.FEC_RECOVERED.value})
"""Fates of packets whose payload reached the receiver in time."""

SUMMARY_KEYS: tuple[str, ...] = ("scenario", "seed")
"""Keys every summary.json must have."""

_TRUE = {"true", "yes"}
_FALSE = {"false", "no", ""}


@dataclass(frozen=True)
class Run:
    """The traces of one simulator run.

    ``frames``: one row per frame (columns of :data:`FRAME_COLUMNS` plus ``bits_s1..bits_sK``).
    ``packets``: one row per packet (:data:`PACKET_COLUMNS`). ``summary``: summary.json as read.
    ``num_scales`` is K, the number of ``bits_s<k>`` columns.
    """

    name: str
    path: Path
    frames: pd.DataFrame
    packets: pd.DataFrame
    summary: Mapping[str, Any]

    @property
    def num_scales(self) -> int:
        """K: number of per-scale bit columns in frames.csv."""
        return len(scale_bit_columns(self.frames))


def _read_json(path: Path) -> object:
    """The parsed content of a JSON file; ``TraceError`` if missing or not valid JSON."""
    if not path.is_file():
        raise TraceError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TraceError(f"{path}: not valid JSON ({error})") from error


def scale_bit_columns(frames: pd.DataFrame) -> list[str]:
    """The ``bits_s<k>`` columns of a frames table, ordered by scale k = 1..K."""
    found = {int(m.group(1)): c for c in frames.columns if (m := _SCALE_BITS.match(str(c)))}
    return [found[k] for k in sorted(found)]


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise TraceError(f"{path}: file not found")
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else "unreadable"
        raise TraceError(f"{path}: not a CSV table ({first_line})") from error


def _bad_value(path: Path, column: str, raw: pd.Series, mask: pd.Series, expected: str) -> str:
    row = int(np.flatnonzero(mask.to_numpy())[0])
    return f"{path}: column '{column}' must be {expected} (data row {row + 1}: {raw.iloc[row]!r})"


def _convert(path: Path, column: str, raw: pd.Series, kind: ColumnKind) -> pd.Series:
    text = raw.str.strip()
    if kind is ColumnKind.LABEL:
        allowed = column_labels(_LABEL_COLUMNS[column])
        bad = ~text.isin(allowed)
        if bad.any():
            raise TraceError(_bad_value(path, column, raw, bad, f"one of {', '.join(allowed)}"))
        return pd.Series(pd.Categorical(text, categories=list(allowed)), index=raw.index)
    if kind is ColumnKind.FLAG:
        lowered = text.str.lower()
        text = lowered.where(~lowered.isin(_TRUE), "1").where(~lowered.isin(_FALSE), "0")
    numbers = pd.to_numeric(text.replace("", np.nan), errors="coerce")
    if kind is ColumnKind.FLOAT:
        bad = numbers.isna() & ~text.isin(["", "nan", "NaN"])
        if bad.any():
            raise TraceError(_bad_value(path, column, raw, bad, "a number"))
        return numbers.astype("float64")
    integral = numbers.notna() & np.isfinite(numbers) & (numbers == np.round(numbers))
    if kind is ColumnKind.FLAG:
        integral &= numbers >= 0
    if not integral.all():
        expected = (
            "true/false or a non-negative integer" if kind is ColumnKind.FLAG else ("an integer")
        )
        raise TraceError(_bad_value(path, column, raw, ~integral, expected))
    return numbers.astype("int64")


def _validate(path: Path, table: pd.DataFrame, columns: Mapping[str, ColumnKind]) -> pd.DataFrame:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise TraceError(f"{path}: missing column(s) {', '.join(missing)}")
    out = table.copy()
    for column, kind in columns.items():
        out[column] = _convert(path, column, table[column], kind)
    return out


def load_frames(path: Path) -> pd.DataFrame:
    """Read and validate frames.csv (a file, or a run folder containing one).

    Returns one row per frame sorted by ``frame``; integer columns are int64, rates and
    qualities float64 (``psnr`` in dB, ``bpp`` in bits per pixel, times in seconds),
    ``frame_type`` a Categorical of I/P/R/M, ``echo_sent`` int64 (0 = no echo). Extra columns
    are kept as strings unless numeric.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FRAMES_FILE
    raw = _read_csv(path)
    for column, default in FRAME_DEFAULTS.items():
        if column not in raw.columns:
            raw[column] = default
    scale_columns = scale_bit_columns(raw)
    if not scale_columns:
        raise TraceError(f"{path}: missing column(s) bits_s1..bits_sK")
    expected = [f"bits_s{k}" for k in range(1, len(scale_columns) + 1)]
    if scale_columns != expected:
        raise TraceError(f"{path}: per-scale columns must be {', '.join(expected)}")
    if "state" not in raw.columns:
        raw["state"] = _derived_states(raw, len(expected))
    columns = {**FRAME_COLUMNS, "state": ColumnKind.LABEL}
    frames = _validate(path, raw, {**columns, **dict.fromkeys(expected, ColumnKind.FLOAT)})
    frames = _numeric_extras(frames, columns.keys() | set(expected))
    if frames["frame"].duplicated().any():
        row = int(np.flatnonzero(frames["frame"].duplicated().to_numpy())[0])
        raise TraceError(f"{path}: column 'frame' repeats frame {frames['frame'].iloc[row]}")
    return frames.sort_values("frame", kind="stable").reset_index(drop=True)


def _derived_states(raw: pd.DataFrame, num_scales: int) -> pd.Series:
    """``state`` of an older frames.csv from its ``first_desynced_scale`` and ``shown`` (an
    unreadable D gives an empty cell, which validation then reports)."""
    d = pd.to_numeric(raw["first_desynced_scale"].str.strip(), errors="coerce")
    return pd.Series(
        [
            "" if pd.isna(v) else frame_state(int(v), shown.strip(), num_scales)
            for v, shown in zip(d, raw["shown"], strict=True)
        ],
        index=raw.index,
        dtype=object,
    )


def load_packets(path: Path) -> pd.DataFrame:
    """Read and validate packets.csv (a file, or a run folder containing one).

    Returns one row per packet sorted by ``seq``; ``arrival_time_s`` is NaN for packets that
    never arrived, ``fate`` a Categorical of :data:`PACKET_FATES`, sizes in bytes and times in
    seconds.
    """
    path = Path(path)
    if path.is_dir():
        path = path / PACKETS_FILE
    packets = _validate(path, _read_csv(path), PACKET_COLUMNS)
    packets = _numeric_extras(packets, PACKET_COLUMNS.keys())
    return packets.sort_values("seq", kind="stable").reset_index(drop=True)


def _numeric_extras(table: pd.DataFrame, known: Collection[str]) -> pd.DataFrame:
    """Columns beyond the required ones become numbers when every non-empty value is one."""
    for column in table.columns:
        if column in known:
            continue
        converted = pd.to_numeric(table[column].replace("", np.nan), errors="coerce")
        if converted.notna().sum() == (table[column] != "").sum():
            table[column] = converted
    return table


def load_summary(path: Path) -> dict[str, Any]:
    """Read summary.json (a file, or a run folder containing one); it must be a JSON object
    with at least the keys of :data:`SUMMARY_KEYS`."""
    path = Path(path)
    if path.is_dir():
        path = path / SUMMARY_FILE
    summary = _read_json(path)
    if not isinstance(summary, dict):
        raise TraceError(f"{path}: must hold a JSON object")
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing:
        raise TraceError(f"{path}: missing key(s) {', '.join(missing)}")
    return summary


def load_run(folder: Path, name: str | None = None) -> Run:
    """Load the three trace files of one run folder; ``name`` defaults to the folder name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TraceError(f"{folder}: run folder not found")
    return Run(
        name=folder.name if name is None else name,
        path=folder,
        frames=load_frames(folder / FRAMES_FILE),
        packets=load_packets(folder / PACKETS_FILE),
        summary=load_summary(folder / SUMMARY_FILE),
    )


RD_POINT_COLUMNS: tuple[str, ...] = ("bpp", "psnr", "ms_ssim")


def load_rd(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read the rd.json written by ``dhvc eval``.

    Returns ``(points, info)``: ``points`` has one row per rate point with columns ``codec``,
    ``parameter`` (the rate knob's name: ``lambda`` or ``qp``), ``value``, ``bpp``, ``psnr``
    (dB) and ``ms_ssim``, sorted by codec and bpp; ``info`` holds the other top-level keys
    (video, frames, gop, width, height, model, anchor_settings, bd_rate).
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("codecs"), dict):
        raise TraceError(f"{path}: missing key 'codecs' (a mapping of codec -> rate points)")
    rows: list[dict[str, Any]] = []
    for codec, points in data["codecs"].items():
        if not isinstance(points, list):
            raise TraceError(f"{path}: codecs.{codec} must be a list of rate points")
        for index, point in enumerate(points):
            where = f"{path}: codecs.{codec}[{index}]"
            if not isinstance(point, dict):
                raise TraceError(f"{where} must be an object")
            knob = next((k for k in ("lambda", "qp", "crf") if k in point), None)
            row: dict[str, Any] = {
                "codec": str(codec),
                "parameter": knob or "",
                "value": float(point[knob]) if knob else math.nan,
            }
            for column in RD_POINT_COLUMNS:
                value = point.get(column)
                if not isinstance(value, int | float) or isinstance(value, bool):
                    raise TraceError(f"{where}: '{column}' must be a number")
                row[column] = float(value)
            rows.append(row)
    if not rows:
        raise TraceError(f"{path}: codecs holds no rate points")
    points = pd.DataFrame(rows).sort_values(["codec", "bpp"], kind="stable")
    info = {k: v for k, v in data.items() if k != "codecs"}
    return points.reset_index(drop=True), info
