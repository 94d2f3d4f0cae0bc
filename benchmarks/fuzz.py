"""Fuzz benchmark (issue 11): damaged .dhvc streams, scenario files and packets.

Prints numbers; it is not a timed test. By default it tries

* ``dhvc``: 10,000 mutations of a small valid .dhvc stream (tiny random-weight preset, 64x64,
  frames I P P I): bit flips, byte overwrites, truncations, inserted and deleted byte runs,
  header fields set to extreme values, scale payloads damaged or resized behind a recomputed
  CRC, frames duplicated, dropped, swapped or spliced from a stream of another size, the frame
  size set to 1x1 .. 32768x32768. Each goes through ``codec.stream.files.decode_file``
  (``open_stream`` and a full decode into PNG frames; ``--decode-fraction`` to parse only);
* ``scenarios``: 2,000 mutations of ``scenarios/*.yaml`` (a field replaced by None, a bool,
  0, -1, 10**400, 1e308, +-inf, nan, 5e-324, a string, a list or a mapping, or deleted; extra
  fields; variant tags swapped; the YAML text itself damaged) through
  ``netsim.scenario.load_scenario``;
* ``scenario runs``: a sample of the mutated scenarios that validate (``--runs``), run for two
  frames with ``netsim.runner.run_scenario`` on the tiny random-weight codec at 64x64;
* ``packets``: 10,000 damaged packet sets of a real tiny-codec frame (flips, truncations,
  extensions, header fields overwritten with the packet checksum recomputed so that the damage
  reaches the field checks, consistent forgeries of a whole scale or frame, duplicates), parsed
  with ``Packet.from_bytes``; what parses goes through ``netsim.receiver.Receiver``
  (reassembly, FEC, the real tiny decoder).

A case is *clean* when it decodes/loads/runs/parses, or is refused with the error its interface
promises (.dhvc: ``ValueError``, e.g. ``BitstreamError``; scenarios: ``ScenarioError``; runs:
``ScenarioError`` or ``RunError``; packets: ``PacketFormatError``) with a message of one
non-empty line; *failed* on any other exception (``MemoryError`` under the ``--memory-gb``
address-space cap included) or a multi-line message; a *hang* when it takes longer than
``--timeout`` (``--run-timeout`` for runs). A refusal by a plain ``ValueError`` (not one of the
project's own exception classes) counts as clean, as the issue asks, and is listed as an
"untyped refusal". Cases are deterministic in ``--seed``: ``--replay CATEGORY:INDEX`` re-runs
one case and prints its traceback or refusal. Exit status 1 if any case failed or hung.

The defaults take about 4 minutes of CPU (2-core machine; wall time is longer on a busy one).

    python benchmarks/fuzz.py [--dhvc N] [--scenarios N] [--packets N] [--runs N] [--seed S]
        [--report FILE] [--save-failures DIR] [--replay CATEGORY:INDEX]
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import math
import os
import random
import resource
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import simpy
import torch
import yaml

import codec.stream.files
from codec.io.video import read_frames
from codec.model.checkpoint import load_model
from codec.stream.bitstream import FrameHeader, StreamHeader, open_stream, write_frame, write_stream
from codec.stream.coder import Decoder, Encoder
from codec.stream.files import decode_file
from codec.types import IN_SYNC, NUM_SCALES, DecodedFrame, FrameType, ReceivedFrame, ScaleOutcome
from netsim.fec import FecParams
from netsim.feedback import FeedbackLink
from netsim.loss import NoLoss
from netsim.packet import HEADER_SIZE_BYTES, Packet, PacketFormatError
from netsim.packetizer import packetize
from netsim.receiver import Receiver
from netsim.runner import RunError, run_scenario
from netsim.scenario import Scenario, ScenarioError, load_scenario
from netsim.trace import FrameTrace, PacketTrace

ROOT = Path(__file__).resolve().parents[1]
SCENARIO_DIR = ROOT / "scenarios"
CATEGORIES = ("dhvc", "scenarios", "runs", "packets")
PROJECT_PACKAGES = ("codec", "netsim")
SLOWEST_KEPT = 5

FRAME_SIZE = 64
"""Side of the fuzzed streams' frames (tiny preset, random weights)."""
STREAM_FRAMES = 4
STREAM_GOP = 3
"""4 frames with GOP 3: I P P I."""
LAMBDA = 1024.0


# ----------------------------------------------------------------------------- outcomes


class CaseTimeout(BaseException):
    """Raised in the main thread when a case runs past its time limit (a BaseException, so
    that code under test that catches ``Exception`` cannot swallow it)."""


@dataclass
class Failure:
    category: str
    case: int
    mutation: str
    outcome: str  # "failed" or "hang"
    exception: str
    message: str
    where: str
    traceback: str = field(repr=False, default="")

    def to_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "case": self.case,
            "mutation": self.mutation,
            "outcome": self.outcome,
            "exception": self.exception,
            "message": self.message,
            "where": self.where,
            "traceback": self.traceback,
        }


@dataclass
class CategoryResult:
    name: str
    tried: int = 0
    clean: int = 0
    failed: int = 0
    hangs: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    untyped: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)
    slowest: list[tuple[float, int, str]] = field(default_factory=list)
    last_refusal: str = ""

    def as_counts(self) -> dict[str, Any]:
        return {
            "tried": self.tried,
            "clean": self.clean,
            "failed": self.failed,
            "hangs": self.hangs,
            "wall_s": round(self.wall_s, 2),
            "cpu_s": round(self.cpu_s, 2),
            "counters": dict(self.counters),
            "untyped_refusals": dict(self.untyped),
            "notes": self.notes,
            "slowest_cases": [
                {"seconds": round(t, 2), "case": i, "mutation": m}
                for t, i, m in sorted(self.slowest, reverse=True)
            ],
        }


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text.strip() else ""


def _one_line(exc: BaseException) -> bool:
    text = str(exc)
    return bool(text.strip()) and "\n" not in text and "\r" not in text


def _is_project_error(exc: BaseException) -> bool:
    return type(exc).__module__.split(".")[0] in PROJECT_PACKAGES


def _where(exc: BaseException) -> str:
    """The innermost frame in codec/ or netsim/ (else the innermost frame): file:line func."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if any(f"/{p}/" in f.filename for p in PROJECT_PACKAGES)]
    chosen = (ours or frames or [None])[-1]
    if chosen is None:
        return "?"
    name = chosen.filename
    with contextlib.suppress(ValueError):
        name = str(Path(name).resolve().relative_to(ROOT))
    return f"{name}:{chosen.lineno} {chosen.name}"


class Guard:
    """Time limits for one case at a time.

    ``signal.setitimer`` raises ``CaseTimeout`` in the main thread when a case overruns (it can
    only interrupt between Python bytecodes); a watchdog thread ends the whole process, naming
    the case, if one stays stuck inside native code for ``hard_factor`` times the limit.
    Outside the main thread, only the watchdog applies.
    """

    def __init__(self, hard_factor: float = 4.0) -> None:
        self.hard_factor = hard_factor
        self._deadline: float | None = None
        self._what = ""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="fuzz-watchdog")
        self._thread.start()

    def _watch(self) -> None:
        while True:
            time.sleep(0.5)
            with self._lock:
                deadline, what = self._deadline, self._what
            if deadline is not None and time.monotonic() > deadline:
                sys.stderr.write(f"\nfuzz: {what} is stuck in native code; giving up\n")
                sys.stderr.flush()
                os._exit(3)

    @contextlib.contextmanager
    def limit(self, seconds: float, what: str) -> Iterator[None]:
        main = threading.current_thread() is threading.main_thread()

        def expire(signum: int, frame: Any) -> None:
            raise CaseTimeout(f"{what} ran past {seconds:g} s")

        with self._lock:
            self._deadline = time.monotonic() + max(self.hard_factor * seconds, seconds + 30)
            self._what = what
        previous = signal.signal(signal.SIGALRM, expire) if main else None
        if main:
            signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            if main:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
            with self._lock:
                self._deadline = None


def run_case(
    result: CategoryResult,
    guard: Guard,
    index: int,
    mutation: str,
    fn: Callable[[], str | None],
    timeout_s: float,
    expected: tuple[type[BaseException], ...],
) -> Failure | None:
    """Run one case, classify it into ``result``; returns its Failure (None when clean)."""
    result.tried += 1
    start = time.perf_counter()
    try:
        return _classify(result, guard, index, mutation, fn, timeout_s, expected)
    finally:
        elapsed = time.perf_counter() - start
        heapq.heappush(result.slowest, (elapsed, index, mutation))
        if len(result.slowest) > SLOWEST_KEPT:
            heapq.heappop(result.slowest)


def _classify(
    result: CategoryResult,
    guard: Guard,
    index: int,
    mutation: str,
    fn: Callable[[], str | None],
    timeout_s: float,
    expected: tuple[type[BaseException], ...],
) -> Failure | None:
    try:
        with guard.limit(timeout_s, f"{result.name} case {index}"):
            label = fn()
    except CaseTimeout as exc:
        return _record(result, index, mutation, "hang", exc)
    except expected as exc:
        if not _one_line(exc):
            return _record(result, index, mutation, "failed", exc, "multi-line or empty message")
        result.clean += 1
        result.counters["refused"] += 1
        result.last_refusal = f"{type(exc).__name__}: {exc}"
        if not _is_project_error(exc):
            result.untyped[f"{type(exc).__name__} at {_where(exc)}"] += 1
        return None
    except (Exception, MemoryError, RecursionError) as exc:
        return _record(result, index, mutation, "failed", exc)
    result.clean += 1
    result.counters[label or "accepted"] += 1
    return None


def _record(
    result: CategoryResult,
    index: int,
    mutation: str,
    outcome: str,
    exc: BaseException,
    why: str = "",
) -> Failure:
    if outcome == "hang":
        result.hangs += 1
    else:
        result.failed += 1
    message = _first_line(exc)
    if why:
        message = f"{why}: {message!r}"
    failure = Failure(
        category=result.name,
        case=index,
        mutation=mutation,
        outcome=outcome,
        exception=type(exc).__name__,
        message=message[:300],
        where=_where(exc),
        traceback="".join(traceback.format_exception(exc))[-4000:],
    )
    result.failures.append(failure)
    return failure


def case_rng(seed: int, category: str, index: int) -> random.Random:
    """Each case's own generator, so that one case can be replayed on its own."""
    return random.Random(f"{seed}:{category}:{index}")


# ----------------------------------------------------------------------------- shared setup


class Fixtures:
    """The valid inputs every mutation starts from, built once (tiny random-weight codec)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.model = load_model("none", preset="tiny")
        self.pictures = read_frames(
            "sample:bikes", max_frames=STREAM_FRAMES, size=(FRAME_SIZE, FRAME_SIZE)
        )
        self.stream = self._stream(self.pictures, LAMBDA, STREAM_GOP)
        foreign = read_frames("sample:bikes", max_frames=2, size=(96, FRAME_SIZE), start_frame=9)
        self.foreign_stream = self._stream(foreign, 256.0, 1)
        self.encoded = self._encoded_frames()
        self.packet_sets = {
            "mtu60": [self._packets(f, 60, None) for f in self.encoded],
            "mtu60+fec": [
                self._packets(f, 60, {3: FecParams(2, 1), 4: FecParams(2, 2)}) for f in self.encoded
            ],
            "mtu1200": [self._packets(f, 1200, None) for f in self.encoded],
        }
        self._decoder: Decoder | None = None

    def _stream(self, pictures: np.ndarray, lam: float, gop: int) -> bytes:
        height, width = pictures.shape[1:3]
        header = StreamHeader(
            self.model.model_id, width, height, codec.stream.files.DEFAULT_FPS, gop
        )
        encoder = Encoder(self.model, gop=gop, device="cpu")
        path = self.workdir / f"base-{width}x{height}.dhvc"
        with path.open("wb") as f:
            write_stream(f, header)
            for picture in pictures:
                write_frame(f, encoder.encode(picture, lam))
        return path.read_bytes()

    def _encoded_frames(self) -> list:
        """I P R I: frame 2 is a re-sync frame from scale 3."""
        encoder = Encoder(self.model, gop=STREAM_GOP, device="cpu")
        return [
            encoder.encode(p, LAMBDA, resync_from=3 if i == 2 else None)
            for i, p in enumerate(self.pictures)
        ]

    @staticmethod
    def _packets(frame, mtu: int, fec: dict | None) -> list[bytes]:
        first_seq = 100 * frame.frame_index
        return [p.to_bytes() for p in packetize(frame, first_seq=first_seq, mtu_bytes=mtu, fec=fec)]

    def fresh_decoder(self) -> Decoder:
        """A decoder in its initial state (reset rather than rebuilt: building one costs the
        Gaussian table)."""
        if self._decoder is None:
            self._decoder = Decoder(self.model, FRAME_SIZE, FRAME_SIZE, device="cpu")
        decoder = self._decoder
        state = decoder._ctx.state
        decoder._ctx.state = type(state)()
        decoder.first_desynced_scale = IN_SYNC
        decoder.last_lambda = None
        return decoder


@contextlib.contextmanager
def cached_random_models() -> Iterator[None]:
    """``codec.stream.files.load_model`` with random-weight models built once per preset:
    building one costs more than decoding a 64x64 stream. Only what ``decode_file`` calls is
    patched."""
    original = codec.stream.files.load_model
    cache: dict[tuple[str | None, str], Any] = {}

    def load(checkpoint="default", preset=None, device="cpu", strict=True):
        if checkpoint is None or str(checkpoint) != "none":
            return original(checkpoint, preset=preset, device=device, strict=strict)
        key = (preset, str(device))
        if key not in cache:
            cache[key] = original(checkpoint, preset=preset, device=device)
        return cache[key]

    codec.stream.files.load_model = load
    try:
        yield
    finally:
        codec.stream.files.load_model = original


# ----------------------------------------------------------------------------- .dhvc streams

_SH = StreamHeader.SIZE
_FH = FrameHeader.SIZE
STREAM_FIELDS = (
    ("version", 4, "H"),
    ("width", 38, "I"),
    ("height", 42, "I"),
    ("fps_num", 46, "I"),
    ("fps_den", 50, "I"),
    ("gop", 54, "I"),
)
MODEL_ID = (6, 32)
FRAME_FIELDS = (
    ("frame_index", 2, "I"),
    ("frame_type", 6, "B"),
    ("resync_from", 7, "B"),
    ("mirror_age", 8, "B"),
    ("lambda", 9, "f"),
    ("K", 13, "B"),
) + tuple(
    (f"scale{k + 1}.{name}", 14 + 12 * k + 4 * j, "I")
    for k in range(NUM_SCALES)
    for j, name in enumerate(("length", "crc32", "sync_tag"))
)
assert _SH == 58 and _FH == 14 + 12 * NUM_SCALES, "the .dhvc layout changed: update fuzz.py"

EXTREMES = {
    "B": (0, 1, 2, 4, 5, 0x7F, 0x80, 0xFF),
    "H": (0, 1, 2, 3, 0x7FFF, 0x8000, 0xFFFF),
    "I": (
        0,
        1,
        2,
        0xFF,
        0xFFFF,
        0x7FFF,
        0x8000,
        0x8001,
        1 << 28,
        (1 << 28) + 1,
        0x7FFFFFFF,
        0x80000000,
        0xFFFFFFFF,
    ),
    "f": (
        0.0,
        -0.0,
        -1.0,
        1e-45,
        63.9,
        64.0,
        8192.0,
        8192.5,
        9999999.0,
        1e7,
        3.4e38,
        math.inf,
        -math.inf,
        math.nan,
    ),
    "d": (
        0.0,
        -0.0,
        -1.0,
        5e-324,
        1e-300,
        63.9,
        64.0,
        1024.0,
        8192.0,
        8192.5,
        1e7,
        1e308,
        math.inf,
        -math.inf,
        math.nan,
    ),
}
FRAME_SIZES = (
    (1, 1),
    (1, 64),
    (64, 1),
    (17, 33),
    (65, 63),
    (129, 64),
    (1 << 15, 1 << 15),
    (1 << 14, 1 << 14),
)
"""(width, height) pairs for the ``size`` mutation; the last two are allocation bombs."""
MODEL_IDS = (
    b"",
    b"tiny",
    b"tiny-random",
    b"tiny-randoM",
    b"small-random",
    b"base-random",
    b"nosuchpreset-random",
    b"-random",
    b"\xff\xfe-random",
    b"tiny-random\x00garbage",
    b"A" * 32,
    b"../../etc/passwd",
)


@dataclass
class SplitStream:
    header: bytes
    frames: list[tuple[bytearray, list[bytes]]]

    def to_bytes(self) -> bytes:
        out = [self.header]
        for head, payloads in self.frames:
            out.append(bytes(head))
            out.extend(payloads)
        return b"".join(out)


def split_stream(data: bytes) -> SplitStream | None:
    """Stream header and frames by the declared lengths; None unless the bytes split cleanly."""
    if len(data) < _SH:
        return None
    frames = []
    pos = _SH
    while pos < len(data):
        if pos + _FH > len(data):
            return None
        head = bytearray(data[pos : pos + _FH])
        pos += _FH
        lengths = [struct.unpack_from("<I", head, 13 + 12 * k)[0] for k in range(NUM_SCALES)]
        payloads = []
        for n in lengths:
            if pos + n > len(data):
                return None
            payloads.append(data[pos : pos + n])
            pos += n
        frames.append((head, payloads))
    return SplitStream(data[:_SH], frames)


def _set_scale(head: bytearray, k: int, payload: bytes) -> None:
    """Rewrite scale k's (0-based) length and CRC in a frame header for ``payload``."""
    struct.pack_into("<II", head, 13 + 12 * k, len(payload), zlib.crc32(payload))


def _header_positions(data: bytes) -> list[int]:
    """Byte offsets inside the stream header and frame headers of ``data``."""
    split = split_stream(data)
    positions = list(range(min(_SH, len(data))))
    if split is not None:
        pos = _SH
        for _, payloads in split.frames:
            positions.extend(range(pos, pos + _FH))
            pos += _FH + sum(len(p) for p in payloads)
    return positions


def _position(rng: random.Random, data: bytes) -> int:
    if rng.random() < 0.5:
        return rng.choice(_header_positions(data))
    return rng.randrange(len(data))


def _pack_value(fmt: str, value: float | int) -> bytes:
    return struct.pack("<" + fmt, value)


class DhvcMutator:
    def __init__(self, fixtures: Fixtures) -> None:
        self.fx = fixtures
        self.ops: list[tuple[str, Callable[[random.Random, bytes], tuple[str, bytes]], float]] = [
            ("flip", self.flip, 2),
            ("overwrite", self.overwrite, 1.5),
            ("truncate", self.truncate, 1),
            ("insert", self.insert, 1),
            ("delete", self.delete, 1),
            ("header_field", self.header_field, 3),
            ("raw_int", self.raw_int, 1),
            ("model_id", self.model_id, 0.4),
            ("payload_crc", self.payload_crc, 2),
            ("payload_resize", self.payload_resize, 1.5),
            ("frames", self.frames, 1.5),
            ("size", self.size, 0.05),
        ]

    def mutate(self, rng: random.Random) -> tuple[str, bytes]:
        data = self.fx.stream
        steps = rng.choices((1, 2, 3), weights=(6, 3, 1))[0]
        described = []
        for _ in range(steps):
            name, op, _ = rng.choices(self.ops, weights=[w for *_, w in self.ops])[0]
            if not data:
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
                described.append(f"random {len(data)} bytes")
                continue
            what, data = op(rng, data)
            described.append(f"{name}: {what}")
        return "; ".join(described), data

    def flip(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        out = bytearray(data)
        spots = []
        for _ in range(rng.randint(1, 8)):
            pos, bit = _position(rng, out), rng.randrange(8)
            out[pos] ^= 1 << bit
            spots.append(f"{pos}.{bit}")
        return "bits " + ",".join(spots), bytes(out)

    def overwrite(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        out = bytearray(data)
        spots = []
        for _ in range(rng.randint(1, 8)):
            pos, value = _position(rng, out), rng.randrange(256)
            out[pos] = value
            spots.append(f"[{pos}]={value:#04x}")
        return " ".join(spots), bytes(out)

    def truncate(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        cut = rng.randrange(len(data))
        return f"to {cut} of {len(data)} bytes", data[:cut]

    def insert(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        pos = rng.randrange(len(data) + 1)
        n = rng.choice((1, 2, 4, rng.randint(1, 64), rng.randint(64, 4096)))
        kind = rng.choice(("random", "zero", "ff", "copy"))
        if kind == "random":
            run = bytes(rng.randrange(256) for _ in range(n))
        elif kind == "copy":
            start = rng.randrange(len(data))
            run = data[start : start + n]
        else:
            run = (b"\x00" if kind == "zero" else b"\xff") * n
        return f"{len(run)} {kind} bytes at {pos}", data[:pos] + run + data[pos:]

    def delete(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        pos = rng.randrange(len(data))
        n = rng.choice((1, 2, 4, rng.randint(1, 64)))
        return f"{n} bytes at {pos}", data[:pos] + data[pos + n :]

    def header_field(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        split = split_stream(data)
        out = bytearray(data)
        if split is None or not split.frames or rng.random() < 0.35:
            name, offset, fmt = rng.choice(STREAM_FIELDS)
            where = "stream"
        else:
            i = rng.randrange(len(split.frames))
            name, offset, fmt = rng.choice(FRAME_FIELDS)
            offset += _SH + sum(_FH + sum(len(p) for p in f[1]) for f in split.frames[:i])
            where = f"frame {i}"
        value = rng.choice(EXTREMES[fmt])
        packed = _pack_value(fmt, value)
        if offset + len(packed) > len(out):
            return f"{where} {name} past the end", data
        out[offset : offset + len(packed)] = packed
        return f"{where} {name}={value!r}", bytes(out)

    def raw_int(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        fmt = rng.choice("HI")
        value = rng.choice((0, 0xFFFF, 0xFFFFFFFF) if fmt == "I" else (0, 0xFFFF))
        packed = _pack_value(fmt, value)
        positions = [p for p in _header_positions(data) if p + len(packed) <= len(data)]
        if not positions:
            return "no room", data
        pos = rng.choice(positions)
        out = bytearray(data)
        out[pos : pos + len(packed)] = packed
        return f"u{8 * len(packed)} {value:#x} at {pos}", bytes(out)

    def model_id(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        if len(data) < _SH:
            return "no header", data
        value = rng.choice(MODEL_IDS)
        start, size = MODEL_ID
        out = bytearray(data)
        out[start : start + size] = value[:size].ljust(size, b"\x00")
        return f"{value!r}", bytes(out)

    def size(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        """Width and height together: tiny, odd, or as large as the header allows."""
        if len(data) < _SH:
            return "no header", data
        width, height = rng.choice(FRAME_SIZES)
        out = bytearray(data)
        struct.pack_into("<II", out, 38, width, height)
        return f"stream {width}x{height}", bytes(out)

    def payload_crc(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        """Damage a scale payload and recompute its CRC: the entropy decoder sees garbage."""
        split = split_stream(data)
        if split is None or not split.frames:
            return self.flip(rng, data)
        i = rng.randrange(len(split.frames))
        k = rng.randrange(NUM_SCALES)
        head, payloads = split.frames[i]
        payload = bytearray(payloads[k])
        kind = rng.choice(("flip", "random", "zero", "ff"))
        if not payload:
            payload = bytearray(b"\x00")
        if kind == "flip":
            for _ in range(rng.randint(1, 4)):
                payload[rng.randrange(len(payload))] ^= 1 << rng.randrange(8)
        elif kind == "random":
            payload = bytearray(rng.randrange(256) for _ in payload)
        else:
            payload = bytearray((b"\x00" if kind == "zero" else b"\xff") * len(payload))
        payloads[k] = bytes(payload)
        _set_scale(head, k, payloads[k])
        return f"frame {i} scale {k + 1} {kind} (CRC fixed)", split.to_bytes()

    def payload_resize(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        """Make a scale payload shorter or longer with a matching length and CRC."""
        split = split_stream(data)
        if split is None or not split.frames:
            return self.truncate(rng, data)
        i = rng.randrange(len(split.frames))
        k = rng.randrange(NUM_SCALES)
        head, payloads = split.frames[i]
        old = payloads[k]
        n = rng.choice((0, 1, max(0, len(old) - 1), len(old) + 1, 2 * len(old), 1000, 65536))
        if n <= len(old):
            new = old[:n]
        else:
            new = old + bytes(rng.randrange(256) for _ in range(min(n - len(old), 4096)))
            new = new.ljust(n, b"\x00")
        payloads[k] = new
        _set_scale(head, k, new)
        return f"frame {i} scale {k + 1} {len(old)} -> {n} bytes (CRC fixed)", split.to_bytes()

    def frames(self, rng: random.Random, data: bytes) -> tuple[str, bytes]:
        split = split_stream(data)
        if split is None:
            return self.delete(rng, data)
        foreign = split_stream(self.fx.foreign_stream)
        assert foreign is not None
        fr = split.frames
        kind = rng.choice(
            ("duplicate", "drop", "swap", "reverse", "repeat", "splice", "foreign_header", "none")
        )
        if kind == "none" or not fr:
            split.frames = []
            return "no frames at all", split.to_bytes()
        i = rng.randrange(len(fr))
        if kind == "duplicate":
            fr.insert(i, (bytearray(fr[i][0]), list(fr[i][1])))
        elif kind == "drop":
            del fr[i]
        elif kind == "swap":
            j = rng.randrange(len(fr))
            fr[i], fr[j] = fr[j], fr[i]
            kind = f"swap with {j}"
        elif kind == "reverse":
            fr.reverse()
        elif kind == "repeat":
            copies = rng.choice((10, 50))
            fr[i + 1 : i + 1] = [(bytearray(fr[i][0]), list(fr[i][1])) for _ in range(copies)]
            kind = f"repeat x{copies}"
        elif kind == "splice":
            fr.insert(i, rng.choice(foreign.frames))
            kind = "splice a 96x64 frame before"
        else:
            split.header = foreign.header
            kind = "header of a 96x64 stream"
        return f"{kind} frame {i}", split.to_bytes()


def dhvc_case(
    fixtures: Fixtures, mutator: DhvcMutator, rng: random.Random, index: int, decode: bool
) -> tuple[str, bytes, Callable[[], str]]:
    description, data = mutator.mutate(rng)
    scales = NUM_SCALES if rng.random() < 0.8 else rng.randint(1, NUM_SCALES)
    work = fixtures.workdir / "dhvc"

    def run() -> str:
        work.mkdir(exist_ok=True)
        path = work / f"case{index}.dhvc"
        out = work / f"out{index}"
        path.write_bytes(data)
        try:
            if decode:
                summary = decode_file(path, out, scales, "none", "cpu")
                return "decoded" if summary.frames_with_substitution == 0 else "decoded_substituted"
            open_stream(path)
            return "parsed"
        finally:
            path.unlink(missing_ok=True)
            shutil.rmtree(out, ignore_errors=True)

    if scales != NUM_SCALES:
        description += f" [--scales {scales}]"
    return description, data, run


def fuzz_dhvc(
    fixtures: Fixtures,
    guard: Guard,
    count: int,
    seed: int,
    timeout_s: float,
    decode_fraction: float = 1.0,
    save: Path | None = None,
    only: int | None = None,
) -> CategoryResult:
    result = CategoryResult("dhvc")
    mutator = DhvcMutator(fixtures)
    start, cpu = time.perf_counter(), time.process_time()
    indexes = range(count) if only is None else [only]
    with cached_random_models():
        for index in indexes:
            rng = case_rng(seed, "dhvc", index)
            decode = rng.random() < decode_fraction
            description, data, run = dhvc_case(fixtures, mutator, rng, index, decode)
            failure = run_case(result, guard, index, description, run, timeout_s, (ValueError,))
            if failure is not None and save is not None:
                (save / f"dhvc-{index}.dhvc").write_bytes(data)
    result.wall_s = time.perf_counter() - start
    result.cpu_s = time.process_time() - cpu
    if decode_fraction >= 1:
        result.notes.append("every case decoded in full with codec.stream.files.decode_file")
    else:
        result.notes.append(
            f"{decode_fraction:.0%} of cases decoded in full with decode_file, "
            "the rest only parsed with open_stream"
        )
    return result


# ----------------------------------------------------------------------------- scenarios

WEIRD_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    10**400,
    1e308,
    math.inf,
    -math.inf,
    math.nan,
    5e-324,
    "fuzz",
    "",
    "builtin:../../etc/passwd",
    "sample:nosuch",
    [],
    [1, "x", None],
    {},
    {"kind": "bernoulli"},
)
NUMERIC_EDGES: tuple[Any, ...] = (
    0,
    1,
    2,
    -1,
    0.5,
    5e-324,
    1e-9,
    1e308,
    1.7976931348623157e308,
    2**31,
    2**53 + 1,
    2**63,
    2**64,
    10**18,
    10**400,
)
KNOWN_FIELDS = (
    "kind",
    "loss",
    "loss_rate",
    "mean_burst_packets",
    "p",
    "r",
    "rate_kbps",
    "queue_bytes",
    "queue_discipline",
    "trace_file",
    "delay_ms",
    "delay_frames",
    "jitter_ms",
    "fec",
    "max_scales",
    "mtu_bytes",
    "echo_timeout_ms",
    "decode_time_ms",
    "encode_time_ms",
    "first_frame",
    "last_frame",
    "exempt_scales",
    "packets",
    "enabled",
    "preset",
    "start_frame",
)
KINDS = ("none", "bernoulli", "gilbert_elliott", "explicit", "unlimited", "rate", "trace", "x")
RUN_PATH_PREFIXES = ("network", "sender", "receiver", "seed")
"""Mutations there survive the run's codec/video patch and change what the run does."""


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.append((*prefix, i))
            out.extend(_paths(value, (*prefix, i)))
    return out


def _containers(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if isinstance(node, dict) else []
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_containers(value, (*prefix, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_containers(value, (*prefix, i)))
    return out


def _get(node: Any, path: tuple) -> Any:
    for part in path:
        node = node[part]
    return node


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path) or "<root>"


def _weird(rng: random.Random, current: Any) -> Any:
    is_number = isinstance(current, int | float) and not isinstance(current, bool)
    if is_number and rng.random() < 0.5:
        value = rng.choice(NUMERIC_EDGES)
        return -value if rng.random() < 0.15 else value
    return rng.choice(WEIRD_VALUES)


def mutate_scenario_data(rng: random.Random, data: dict) -> tuple[str, list[tuple]]:
    """Mutate ``data`` in place; returns a description and the paths touched."""
    described, touched = [], []
    for _ in range(rng.choices((1, 2, 3), weights=(5, 3, 2))[0]):
        kind = rng.choices(("replace", "delete", "extra", "kind", "wrap"), weights=(6, 2, 2, 1, 1))[
            0
        ]
        paths = _paths(data)
        if kind == "extra" or not paths:
            where = rng.choice(_containers(data))
            key = rng.choice((*KNOWN_FIELDS, "zz_unknown", 7, None, True, rng.randint(-3, 6)))
            value = _weird(rng, 1)
            _get(data, where)[key] = value
            described.append(f"extra {_dotted((*where, key))}={value!r:.40}")
            touched.append((*where, key))
            continue
        if kind == "kind":
            kinds = [p for p in paths if p[-1] == "kind"]
            if kinds:
                path = rng.choice(kinds)
                value = rng.choice(KINDS)
                _get(data, path[:-1])[path[-1]] = value
                described.append(f"{_dotted(path)}={value}")
                touched.append(path)
                continue
            kind = "replace"
        path = rng.choice(paths)
        parent, last = _get(data, path[:-1]), path[-1]
        if kind == "delete":
            del parent[last]
            described.append(f"delete {_dotted(path)}")
        elif kind == "wrap":
            parent[last] = rng.choice(([parent[last]], {"value": parent[last]}))
            described.append(f"wrap {_dotted(path)} -> {type(parent[last]).__name__}")
        else:
            value = _weird(rng, parent[last])
            parent[last] = value
            described.append(f"{_dotted(path)}={value!r:.40}")
        touched.append(path)
    return "; ".join(described), touched


def damage_yaml_text(rng: random.Random, text: str) -> tuple[str, bytes]:
    raw = text.encode()
    kind = rng.choice(
        (
            "flip",
            "truncate",
            "tab",
            "invalid_utf8",
            "bom",
            "dup_key",
            "deep",
            "alias",
            "long",
            "complex_key",
            "root_scalar",
            "empty",
            "multi_doc",
        )
    )
    if kind == "flip":
        out = bytearray(raw)
        for _ in range(rng.randint(1, 6)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return kind, bytes(out)
    if kind == "truncate":
        cut = rng.randrange(len(raw))
        return f"truncate at {cut}", raw[:cut]
    if kind == "tab":
        return kind, raw.replace(b"  ", b"\t", 1)
    if kind == "invalid_utf8":
        pos = rng.randrange(len(raw))
        return kind, raw[:pos] + b"\xff\xfe\xc3" + raw[pos:]
    if kind == "bom":
        return kind, b"\xef\xbb\xbf" + raw
    if kind == "dup_key":
        return kind, raw + b"\nseed: 3\nseed: 4\n"
    if kind == "deep":
        depth = rng.choice((100, 1000, 20000))
        return f"deep nesting {depth}", raw + b"\ndescription: " + b"[" * depth + b"]" * depth
    if kind == "alias":
        lines = [b"a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for i in range(1, 9):
            refs = b", ".join([b"*a%d" % (i - 1)] * 10)
            lines.append(b"a%d: &a%d [%s]" % (i, i, refs))
        doc = b"\n".join(b"x_" + line for line in lines).replace(b"x_a", b"a")
        return "alias bomb (10**9 leaves)", raw + b"\n" + doc + b"\ndescription: *a8\n"
    if kind == "long":
        return "200 kB description", raw + b"\ndescription: " + b"x" * 200_000 + b"\n"
    if kind == "complex_key":
        return kind, raw + b"\n? [a, b]\n: 1\n"
    if kind == "root_scalar":
        return kind, rng.choice((b"42", b"- a\n- b\n", b"null", b"'x'", b"!!binary AAAA"))
    if kind == "empty":
        return kind, b""
    return kind, raw + b"\n---\nname: second\n"


def scenario_case(
    files: list[Path], texts: dict[Path, str], rng: random.Random, index: int, workdir: Path
) -> tuple[str, bytes, list[tuple], Path]:
    source = files[index % len(files)]
    text = texts[source]
    if rng.random() < 0.1:
        what, raw = damage_yaml_text(rng, text)
        description, touched = f"{source.name}: text {what}", []
    else:
        data = yaml.safe_load(text)
        what, touched = mutate_scenario_data(rng, data)
        description = f"{source.name}: {what}"
        raw = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()
    path = workdir / "scenarios" / f"case{index}.yaml"
    return description, raw, touched, path


def _run_ready(scenario: Scenario) -> Scenario:
    """The scenario with the tiny random-weight codec and 64x64 frames (fast runs)."""
    return scenario.model_copy(
        update={
            "codec": scenario.codec.model_copy(update={"checkpoint": "none", "preset": "tiny"}),
            "video": scenario.video.model_copy(
                update={"width_px": FRAME_SIZE, "height_px": FRAME_SIZE}
            ),
        }
    )


def fuzz_scenarios(
    workdir: Path,
    guard: Guard,
    count: int,
    runs: int,
    seed: int,
    timeout_s: float,
    run_timeout_s: float,
    save: Path | None = None,
    only: int | None = None,
    only_run: int | None = None,
) -> tuple[CategoryResult, CategoryResult]:
    result = CategoryResult("scenarios")
    run_result = CategoryResult("runs")
    files = sorted(SCENARIO_DIR.glob("*.yaml"))
    texts = {f: f.read_text(encoding="utf-8") for f in files}
    (workdir / "scenarios").mkdir(exist_ok=True)
    validated: list[tuple[int, str, Scenario, bool]] = []
    start, cpu = time.perf_counter(), time.process_time()
    indexes = range(count) if only is None else [only]
    if only_run is not None:
        indexes = [only_run]
    for index in indexes:
        rng = case_rng(seed, "scenarios", index)
        description, raw, touched, path = scenario_case(files, texts, rng, index, workdir)
        loaded: list[Scenario] = []

        def load(path: Path = path, raw: bytes = raw, loaded: list = loaded) -> str:
            path.write_bytes(raw)
            try:
                loaded.append(load_scenario(path))
            finally:
                path.unlink(missing_ok=True)
            return "validated"

        failure = run_case(result, guard, index, description, load, timeout_s, (ScenarioError,))
        if failure is not None and save is not None:
            (save / f"scenarios-{index}.yaml").write_bytes(raw)
        if loaded:
            network = any(p and p[0] in RUN_PATH_PREFIXES for p in touched)
            validated.append((index, description, loaded[0], network))
    result.wall_s = time.perf_counter() - start
    result.cpu_s = time.process_time() - cpu

    start, cpu = time.perf_counter(), time.process_time()
    pick = random.Random(f"{seed}:runs")
    preferred = [v for v in validated if v[3]]
    others = [v for v in validated if not v[3]]
    if only_run is not None:
        chosen = validated
    else:
        chosen = pick.sample(preferred, min(runs, len(preferred)))
        chosen += pick.sample(others, min(runs - len(chosen), len(others)))
    for index, description, scenario, _ in sorted(chosen, key=lambda v: v[0]):
        out = workdir / "runs" / f"run{index}"

        def run(scenario: Scenario = scenario, out: Path = out) -> str:
            try:
                run_scenario(_run_ready(scenario), out, frames=2, device="cpu")
            finally:
                shutil.rmtree(out, ignore_errors=True)
            return "ran"

        failure = run_case(
            run_result, guard, index, description, run, run_timeout_s, (ScenarioError, RunError)
        )
        if failure is not None and save is not None:
            (save / f"runs-{index}.json").write_text(
                json.dumps(scenario.model_dump(mode="json"), indent=2, default=str)
            )
    run_result.wall_s = time.perf_counter() - start
    run_result.cpu_s = time.process_time() - cpu
    result.notes.append(f"{len(validated)} of the mutated scenarios validated")
    run_result.notes.append(
        f"{len(chosen)} validated mutations run for 2 frames, tiny codec at "
        f"{FRAME_SIZE}x{FRAME_SIZE} (codec and video size patched)"
    )
    return result, run_result


# ----------------------------------------------------------------------------- packets

PACKET_FIELDS = (
    ("magic", 0, "2s"),
    ("version", 2, "B"),
    ("frame_type", 3, "B"),
    ("seq", 4, "I"),
    ("frame_index", 8, "I"),
    ("scale", 12, "B"),
    ("resync_from", 13, "B"),
    ("fragment_index", 14, "H"),
    ("fragment_count", 16, "H"),
    ("parity_count", 18, "H"),
    ("lambda", 20, "d"),
    ("scale_length_bytes", 28, "I"),
    ("scale_crc32", 32, "I"),
    ("sync_tag", 36, "I"),
    ("payload_length", 40, "H"),
    ("checksum", 42, "I"),
)
_PF = {name: (offset, fmt) for name, offset, fmt in PACKET_FIELDS}
assert HEADER_SIZE_BYTES == 46, "the packet layout changed: update fuzz.py"
FORGEABLE = tuple(n for n, _, _ in PACKET_FIELDS if n not in ("magic", "checksum"))
FRAME_HEADER_FIELDS = ("frame_type", "frame_index", "resync_from", "lambda")
SCALE_FIELDS = ("fragment_count", "parity_count", "scale_length_bytes", "scale_crc32", "sync_tag")


def fix_checksum(data: bytes | bytearray) -> bytes:
    """Recompute the packet checksum of a (damaged) datagram, as packet.py defines it."""
    out = bytearray(data)
    if len(out) < HEADER_SIZE_BYTES:
        return bytes(out)
    out[42:46] = b"\x00\x00\x00\x00"
    checksum = zlib.crc32(bytes(out[HEADER_SIZE_BYTES:]), zlib.crc32(bytes(out[:46])))
    struct.pack_into("<I", out, 42, checksum)
    return bytes(out)


def set_field(data: bytes, name: str, value: Any) -> bytes:
    offset, fmt = _PF[name]
    if len(data) < offset + struct.calcsize(fmt):
        return bytes(data)
    out = bytearray(data)
    struct.pack_into("<" + fmt, out, offset, value)
    return bytes(out)


def get_field(data: bytes, name: str) -> Any:
    offset, fmt = _PF[name]
    return struct.unpack_from("<" + fmt, data, offset)[0]


def set_payload(data: bytes, payload: bytes) -> bytes:
    """Replace the payload, keeping the payload length field and checksum consistent."""
    out = set_field(data[:HEADER_SIZE_BYTES], "payload_length", len(payload) & 0xFFFF) + payload
    return fix_checksum(out)


def _extreme(rng: random.Random, name: str) -> Any:
    fmt = _PF[name][1]
    if fmt == "2s":
        return bytes(rng.randrange(256) for _ in range(2))
    if fmt == "B" and rng.random() < 0.5:
        return rng.randrange(7)
    if fmt == "H" and rng.random() < 0.3:
        return rng.randrange(300)
    if fmt in "HI" and rng.random() < 0.1:
        return rng.randrange(1 << (8 * struct.calcsize(fmt)))
    return rng.choice(EXTREMES[fmt])


class PacketMutator:
    def __init__(self, fixtures: Fixtures) -> None:
        self.fx = fixtures
        self.ops: list[tuple[str, Callable, float]] = [
            ("flip", self.flip, 1.5),
            ("field", self.field, 4),
            ("truncate", self.truncate, 1),
            ("extend", self.extend, 1),
            ("payload", self.payload, 1),
            ("forge_scale", self.forge_scale, 2),
            ("forge_frame", self.forge_frame, 1.5),
            ("duplicate", self.duplicate, 1),
            ("foreign", self.foreign, 0.7),
            ("garbage", self.garbage, 0.5),
        ]

    def mutate(self, rng: random.Random) -> tuple[str, list[bytes], int]:
        config = rng.choice(sorted(self.fx.packet_sets))
        frame = rng.randrange(STREAM_FRAMES)
        packets = list(self.fx.packet_sets[config][frame])
        described = [f"{config} frame {frame} ({len(packets)} packets)"]
        damaged = 0
        for _ in range(rng.choices((1, 2, 3), weights=(6, 3, 1))[0]):
            name, op, _ = rng.choices(self.ops, weights=[w for *_, w in self.ops])[0]
            what, packets, n = op(rng, packets)
            described.append(f"{name}: {what}")
            damaged += n
        if rng.random() < 0.3:
            rng.shuffle(packets)
            described.append("shuffled")
        if rng.random() < 0.2 and len(packets) > 1:
            del packets[rng.randrange(len(packets))]
            described.append("one dropped")
        return "; ".join(described), packets, damaged

    @staticmethod
    def _pick(rng: random.Random, packets: list[bytes]) -> int:
        return rng.randrange(len(packets)) if packets else -1

    def flip(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        i = self._pick(rng, packets)
        if i < 0:
            return "none left", packets, 0
        out = bytearray(packets[i])
        if not out:
            return "empty packet", packets, 0
        spots = []
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(
                min(HEADER_SIZE_BYTES, len(out)) if rng.random() < 0.6 else len(out)
            )
            out[pos] ^= 1 << rng.randrange(8)
            spots.append(str(pos))
        fixed = rng.random() < 0.7
        packets[i] = fix_checksum(out) if fixed else bytes(out)
        return f"packet {i} bytes {','.join(spots)}{' (checksum fixed)' * fixed}", packets, 1

    def field(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        i = self._pick(rng, packets)
        if i < 0:
            return "none left", packets, 0
        name = rng.choice([n for n, _, _ in PACKET_FIELDS])
        value = _extreme(rng, name)
        out = set_field(packets[i], name, value)
        fixed = name != "checksum" and rng.random() < 0.9
        packets[i] = fix_checksum(out) if fixed else out
        return f"packet {i} {name}={value!r}{' (checksum fixed)' * fixed}", packets, 1

    def truncate(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        i = self._pick(rng, packets)
        if i < 0:
            return "none left", packets, 0
        data = packets[i]
        if not data:
            return "empty packet", packets, 0
        if rng.random() < 0.5 and len(data) > HEADER_SIZE_BYTES:
            cut = rng.randrange(len(data) - HEADER_SIZE_BYTES)
            packets[i] = set_payload(data, data[HEADER_SIZE_BYTES : HEADER_SIZE_BYTES + cut])
            return f"packet {i} payload cut to {cut} bytes (consistent)", packets, 1
        cut = rng.randrange(len(data))
        packets[i] = data[:cut]
        return f"packet {i} cut to {cut} bytes", packets, 1

    def extend(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        i = self._pick(rng, packets)
        if i < 0:
            return "none left", packets, 0
        n = rng.choice((1, 7, 100, 1500, 0xFFFF - (len(packets[i]) - HEADER_SIZE_BYTES)))
        extra = bytes(rng.randrange(256) for _ in range(min(n, 2000))).ljust(n, b"\x00")
        data = packets[i]
        if rng.random() < 0.6 and len(data) >= HEADER_SIZE_BYTES:
            packets[i] = set_payload(data, data[HEADER_SIZE_BYTES:] + extra)
            return f"packet {i} payload +{n} bytes (consistent)", packets, 1
        packets[i] = data + extra
        return f"packet {i} +{n} trailing bytes", packets, 1

    def payload(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        i = self._pick(rng, packets)
        if i < 0 or len(packets[i]) <= HEADER_SIZE_BYTES:
            return "no payload", packets, 0
        body = bytearray(packets[i][HEADER_SIZE_BYTES:])
        body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
        packets[i] = set_payload(packets[i], bytes(body))
        return f"packet {i} payload bit flipped (checksum fixed)", packets, 1

    def forge_scale(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        """Every packet of one scale agrees on a forged scale field (checksums fixed)."""
        scales = sorted({get_field(p, "scale") for p in packets if len(p) >= HEADER_SIZE_BYTES})
        if not scales:
            return "no scale", packets, 0
        scale = rng.choice(scales)
        name = rng.choice(SCALE_FIELDS)
        value = _extreme(rng, name)
        if name == "scale_crc32" and rng.random() < 0.5:
            value = zlib.crc32(b"")
        n = 0
        for i, p in enumerate(packets):
            if len(p) >= HEADER_SIZE_BYTES and get_field(p, "scale") == scale:
                packets[i] = fix_checksum(set_field(p, name, value))
                n += 1
        return f"scale {scale} {name}={value!r} in {n} packets", packets, n

    def forge_frame(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        """Every packet agrees on a forged frame-header field (checksums fixed)."""
        name = rng.choice(FRAME_HEADER_FIELDS + ("scale",))
        value = _extreme(rng, name)
        if name == "frame_index" and rng.random() < 0.5:
            value = rng.randrange(STREAM_FRAMES)
        packets = [
            fix_checksum(set_field(p, name, value)) if len(p) >= HEADER_SIZE_BYTES else p
            for p in packets
        ]
        return f"all packets {name}={value!r}", packets, len(packets)

    def duplicate(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        i = self._pick(rng, packets)
        if i < 0:
            return "none left", packets, 0
        copy = packets[i]
        what = "exact"
        if len(copy) >= HEADER_SIZE_BYTES and rng.random() < 0.7:
            name = rng.choice(("fragment_index", "seq", "scale", "fragment_count"))
            value = _extreme(rng, name)
            copy = fix_checksum(set_field(copy, name, value))
            what = f"{name}={value}"
        packets.insert(rng.randrange(len(packets) + 1), copy)
        return f"packet {i} duplicated ({what})", packets, 1

    def foreign(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        """A packet of another frame or packetization, relabelled as this frame's."""
        config = rng.choice(sorted(self.fx.packet_sets))
        other = rng.choice(self.fx.packet_sets[config][rng.randrange(STREAM_FRAMES)])
        target = [get_field(p, "frame_index") for p in packets if len(p) >= HEADER_SIZE_BYTES]
        if target:
            other = fix_checksum(set_field(other, "frame_index", target[0]))
        packets.insert(rng.randrange(len(packets) + 1), other)
        return f"one {config} packet of another frame relabelled", packets, 1

    def garbage(self, rng: random.Random, packets: list[bytes]) -> tuple[str, list[bytes], int]:
        n = rng.choice((0, 1, 45, 46, 47, 200))
        kind = rng.choice(("zero", "random", "header"))
        if kind == "zero":
            data = bytes(n)
        elif kind == "random":
            data = bytes(rng.randrange(256) for _ in range(n))
        else:
            data = fix_checksum(b"DP\x01" + bytes(rng.randrange(256) for _ in range(43)))
        packets.insert(rng.randrange(len(packets) + 1), data)
        return f"{n}-byte {kind} datagram", packets, 1


class _QuickDecoder:
    """The real tiny decoder for frames of which something arrived; a cheap stand-in for the
    others (whose decoding is the same path every time and costs most of a case)."""

    def __init__(self, decoder: Decoder) -> None:
        self.decoder = decoder
        self.real_decodes = 0

    def decode(self, received: ReceivedFrame) -> DecodedFrame:
        if received.scales or received.lam is not None:
            self.real_decodes += 1
            return self.decoder.decode(received)
        return DecodedFrame(
            frame_index=received.frame_index,
            frame_type=FrameType.P,
            lam=LAMBDA,
            resync_from=0,
            x_hat=np.zeros((FRAME_SIZE, FRAME_SIZE, 3), np.float32),
            outcomes=(ScaleOutcome.MISSING,) * NUM_SCALES,
            first_desynced_scale=1,
            echo_scale=None,
        )


def receive(packets: list[Packet], decoder: Decoder) -> int:
    """Deliver ``packets`` to a Receiver at time 0 and run it to the end; real decodes."""
    env = simpy.Environment()
    quick = _QuickDecoder(decoder)
    receiver = Receiver(
        env,
        decoder=quick,
        feedback=FeedbackLink(delay_s=0.0, loss=NoLoss()),
        trace=PacketTrace(),
        frames=FrameTrace(),
        frame_count=STREAM_FRAMES,
        fps=25.0,
        playout_delay_s=0.05,
        echo_timeout_s=0.1,
    )
    for packet in packets:
        receiver.deliver(packet)
    env.run()
    return quick.real_decodes


def fuzz_packets(
    fixtures: Fixtures,
    guard: Guard,
    count: int,
    seed: int,
    timeout_s: float,
    save: Path | None = None,
    only: int | None = None,
) -> CategoryResult:
    result = CategoryResult("packets")
    mutator = PacketMutator(fixtures)
    counters = result.counters
    start, cpu = time.perf_counter(), time.process_time()
    indexes = range(count) if only is None else [only]
    for index in indexes:
        rng = case_rng(seed, "packets", index)
        description, datagrams, damaged = mutator.mutate(rng)

        def run(datagrams: list[bytes] = datagrams) -> str:
            parsed = []
            for data in datagrams:
                try:
                    parsed.append(Packet.from_bytes(data))
                except PacketFormatError as exc:
                    if not _one_line(exc):
                        raise AssertionError(f"multi-line PacketFormatError: {exc!r}") from exc
                    counters["datagrams_refused"] += 1
            counters["datagrams_parsed"] += len(parsed)
            counters["frames_decoded"] += receive(parsed, fixtures.fresh_decoder())
            return "delivered"

        failure = run_case(result, guard, index, description, run, timeout_s, ())
        result.counters["datagrams_damaged"] += damaged
        if failure is not None and save is not None:
            (save / f"packets-{index}.json").write_text(
                json.dumps([d.hex() for d in datagrams], indent=1)
            )
    result.wall_s = time.perf_counter() - start
    result.cpu_s = time.process_time() - cpu
    c = result.counters
    result.notes.append(
        f"{c['datagrams_damaged']} datagrams damaged; {c['datagrams_parsed']} parsed and "
        f"{c['datagrams_refused']} refused (PacketFormatError); "
        f"{c['frames_decoded']} frames decoded by the real tiny decoder through Receiver"
    )
    return result


# ----------------------------------------------------------------------------- driver


def run_all(
    *,
    dhvc: int = 10_000,
    scenarios: int = 2_000,
    packets: int = 10_000,
    runs: int = 20,
    seed: int = 0,
    timeout_s: float = 10.0,
    run_timeout_s: float = 60.0,
    decode_fraction: float = 1.0,
    save: Path | None = None,
    replay: tuple[str, int] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, CategoryResult]:
    """Run the fuzz categories; returns each one's counts and failures (never raises for a
    failing case). ``replay`` = (category, index) runs that one case only."""
    guard = Guard()
    results: dict[str, CategoryResult] = {}
    say = progress or (lambda text: None)
    only = replay[1] if replay else None
    want = {replay[0]} if replay else set(CATEGORIES)
    with tempfile.TemporaryDirectory(prefix="dhvc-fuzz-") as tmp:
        workdir = Path(tmp)
        say("building the valid stream and packets (tiny codec, 64x64)")
        fixtures = Fixtures(workdir)
        if "dhvc" in want and dhvc > 0:
            say(f"dhvc: {dhvc if only is None else 1} cases")
            results["dhvc"] = fuzz_dhvc(
                fixtures, guard, dhvc, seed, timeout_s, decode_fraction, save, only
            )
        if want & {"scenarios", "runs"} and scenarios > 0:
            say(f"scenarios: {scenarios if only is None else 1} cases, then {runs} runs")
            sc, rn = fuzz_scenarios(
                workdir,
                guard,
                scenarios,
                runs,
                seed,
                timeout_s,
                run_timeout_s,
                save,
                only=only if want == {"scenarios"} else None,
                only_run=only if want == {"runs"} else None,
            )
            if "scenarios" in want:
                results["scenarios"] = sc
            if "runs" in want:
                results["runs"] = rn
        if "packets" in want and packets > 0:
            say(f"packets: {packets if only is None else 1} cases")
            results["packets"] = fuzz_packets(fixtures, guard, packets, seed, timeout_s, save, only)
    return results


def _kind(f: Failure) -> tuple[str, str, str, str]:
    """What makes two failures the same bug; a hang is wherever the clock ran out."""
    if f.outcome == "hang":
        return (f.category, f.outcome, "", "(anywhere)")
    return (f.category, f.outcome, f.exception, f.where)


def print_results(results: dict[str, CategoryResult], show: int) -> None:
    head = f"{'category':<12} {'tried':>7} {'clean':>7} {'failed':>7} {'hangs':>6}"
    print(f"{head} {'wall s':>8} {'cpu s':>8}")
    for r in results.values():
        counts = f"{r.name:<12} {r.tried:>7} {r.clean:>7} {r.failed:>7} {r.hangs:>6}"
        print(f"{counts} {r.wall_s:>8.1f} {r.cpu_s:>8.1f}")
    for r in results.values():
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r.counters.items()))
        print(f"\n{r.name}: {outcomes}")
        for note in r.notes:
            print(f"  {note}")
        if r.slowest:
            print("  slowest cases:")
            for seconds, index, mutation in sorted(r.slowest, reverse=True)[:3]:
                print(f"    {seconds:7.2f} s  case {index}: {mutation[:110]}")
        if r.untyped:
            print("  untyped refusals (plain ValueError from outside codec/netsim, counted clean):")
            for what, n in r.untyped.most_common(5):
                print(f"    {n:>5} {what}")
    failures = [f for r in results.values() for f in r.failures]
    if not failures:
        print("\nno failures")
        return
    kinds = Counter(_kind(f) for f in failures)
    print(f"\n{len(kinds)} distinct failure kinds (category, outcome, exception, where):")
    for kind, n in kinds.most_common():
        example = next(f for f in failures if _kind(f) == kind)
        cat, outcome, exc, where = kind
        print(f"  {n:>5} {cat} {outcome} {exc} at {where}")
        print(f"        e.g. case {example.case}: {example.mutation[:150]}")
        print(f"        {example.message[:150]}")
    print(f"\nfirst {min(show, len(failures))} failures:")
    for f in failures[:show]:
        print(f"  {f.category}:{f.case} {f.outcome} {f.exception}: {f.message[:160]}")
        print(f"      mutation: {f.mutation[:200]}")


def set_memory_limit(gigabytes: float) -> None:
    """Cap the address space, so that an allocation bomb is a MemoryError, not an OOM kill."""
    if gigabytes <= 0:
        return
    limit = int(gigabytes * (1 << 30))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dhvc", type=int, default=10_000, help=".dhvc mutations")
    parser.add_argument("--scenarios", type=int, default=2_000, help="scenario mutations")
    parser.add_argument("--packets", type=int, default=10_000, help="damaged packet sets")
    parser.add_argument("--runs", type=int, default=20, help="validated scenarios to run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=10.0, help="per case (s): else a hang")
    parser.add_argument("--run-timeout", type=float, default=60.0, help="per scenario run (s)")
    parser.add_argument(
        "--decode-fraction",
        type=float,
        default=1.0,
        help="share of .dhvc cases decoded in full (the rest are only parsed)",
    )
    parser.add_argument("--memory-gb", type=float, default=4.0, help="address-space cap (0: none)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--report", type=Path, help="write every failure to this JSON file")
    parser.add_argument("--save-failures", type=Path, help="write failing inputs to this folder")
    parser.add_argument("--show", type=int, default=10, help="failures to print")
    parser.add_argument(
        "--replay", help="CATEGORY:INDEX: run one case (same --seed) and print its traceback"
    )
    args = parser.parse_args(argv)
    replay = None
    if args.replay:
        category, _, index = args.replay.partition(":")
        if category not in CATEGORIES or not index.isdigit():
            parser.error(f"--replay wants CATEGORY:INDEX with CATEGORY in {', '.join(CATEGORIES)}")
        replay = (category, int(index))
    set_memory_limit(args.memory_gb)
    torch.set_num_threads(args.threads)
    if args.save_failures:
        args.save_failures.mkdir(parents=True, exist_ok=True)
    start, cpu = time.perf_counter(), time.process_time()
    results = run_all(
        dhvc=args.dhvc,
        scenarios=args.scenarios,
        packets=args.packets,
        runs=args.runs,
        seed=args.seed,
        timeout_s=args.timeout,
        run_timeout_s=args.run_timeout,
        decode_fraction=args.decode_fraction,
        save=args.save_failures,
        replay=replay,
        progress=lambda text: print(f"[{time.perf_counter() - start:7.1f} s] {text}", flush=True),
    )
    wall = time.perf_counter() - start
    if replay:
        for r in results.values():
            print(f"{r.name}:{replay[1]}: tried {r.tried}, clean {r.clean}, counters {r.counters}")
            if r.last_refusal:
                print(f"refused with {r.last_refusal}")
            for f in r.failures:
                print(f"mutation: {f.mutation}\n{f.traceback}")
        return 1 if any(r.failures for r in results.values()) else 0
    cpu = time.process_time() - cpu
    print(f"\nfuzz benchmark, seed {args.seed}: {wall:.1f} s wall, {cpu:.1f} s CPU in all\n")
    print_results(results, args.show)
    if args.report:
        report = {
            "seed": args.seed,
            "wall_s": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "counts": {name: r.as_counts() for name, r in results.items()},
            "failures": [f.to_json() for r in results.values() for f in r.failures],
        }
        args.report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    failed = any(r.failed or r.hangs for r in results.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
