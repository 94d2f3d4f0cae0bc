"""Issue 11: every hostile input to ``dhvc`` is one line and exit code 2 (Ctrl-C: 130).

Hostile .dhvc headers (huge or tiny frame sizes, payloads a size cannot hold, frame rates the
mp4 writer cannot write, absurd lambdas), devices that are not there, files that are not
checkpoints. Streams come from the tiny preset with random weights (``--checkpoint none``).
"""

from __future__ import annotations

import io
import math
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from codec.cli.dhvc import app
from codec.io.video import write_png_frames
from codec.model.checkpoint import save_checkpoint
from codec.model.config import check_lambda, get_preset
from codec.stream.bitstream import (
    MAX_FRAME_PIXELS,
    MAX_FRAME_SIDE,
    STREAM_HEADER_FIELDS,
    BitstreamError,
    FrameHeader,
    StreamHeader,
    frame_header_field,
    max_payload_bytes,
    open_stream,
    read_stream,
)
from codec.types import NUM_SCALES, FrameType

runner = CliRunner()
TINY = ["--checkpoint", "none", "--preset", "tiny"]
_STREAM_FIELDS = {field.name: field for field in STREAM_HEADER_FIELDS}
SIZE_OFFSET = _STREAM_FIELDS["width"].offset  # width u32, then height u32
FPS_OFFSET = _STREAM_FIELDS["fps_num"].offset  # numerator u32, then denominator u32
MIRROR_AGE_OFFSET = frame_header_field("mirror_age").offset  # in a frame header
LAMBDA_OFFSET = frame_header_field("lambda").offset


def one_error_line(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clip")
    frames = np.random.default_rng(11).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    write_png_frames(folder, frames)
    return folder


@pytest.fixture(scope="module")
def stream_bytes(clip, tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("enc") / "clip.dhvc"
    result = runner.invoke(app, ["encode", str(clip), "-o", str(out), "--gop", "2", *TINY])
    assert result.exit_code == 0, result.output
    return out.read_bytes()


def with_fields(data: bytes, offset: int, fmt: str, *values) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def decode(tmp_path: Path, data: bytes, output: str = "out"):
    path = tmp_path / "hostile.dhvc"
    path.write_bytes(data)
    return runner.invoke(
        app, ["decode", str(path), "-o", str(tmp_path / output), "--checkpoint", "none"]
    )


def synthetic_stream(width: int, height: int, payloads: list[bytes], lam: float = 700.0) -> bytes:
    """A tiny-random stream of one I frame with the given scale payloads (CRCs made to fit)."""
    header = StreamHeader("tiny-random", width, height, Fraction(25), 32)
    frame = FrameHeader(
        0,
        FrameType.I,
        1,
        lam,
        tuple(len(p) for p in payloads),
        tuple(zlib.crc32(p) for p in payloads),
        (0,) * NUM_SCALES,
    )
    return header.pack() + frame.pack() + b"".join(payloads)


# --- declared frame size ---------------------------------------------------------------------


def test_a_32768_square_header_is_refused_in_one_line_well_under_a_second(stream_bytes, tmp_path):
    hostile = with_fields(stream_bytes, SIZE_OFFSET, "<II", 32768, 32768)
    path = tmp_path / "huge.dhvc"
    path.write_bytes(hostile)
    start = time.perf_counter()
    with pytest.raises(BitstreamError, match="frame size 32768x32768"):
        open_stream(path)
    assert time.perf_counter() - start < 0.5
    # The real command, in its own process (so that a regression is a timeout, not a hang).
    result = subprocess.run(
        [sys.executable, "-m", "codec.cli.dhvc", "decode", str(path), "-o", str(tmp_path / "o")]
        + ["--checkpoint", "none"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "frame size 32768x32768" in lines[0], lines
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "width, height",
    [
        (MAX_FRAME_SIDE + 1, 64),  # one side too long
        (64, MAX_FRAME_SIDE + 1),
        (8000, 8000),  # sides allowed, too many pixels
        (16, 64),  # below the smallest side the encoder accepts
        (0, 64),
    ],
)
def test_declared_sizes_outside_the_limits_are_one_line(stream_bytes, tmp_path, width, height):
    assert (
        width * height > MAX_FRAME_PIXELS
        or max(width, height) > MAX_FRAME_SIDE
        or (min(width, height) < 32)
    )
    hostile = with_fields(stream_bytes, SIZE_OFFSET, "<II", width, height)
    assert f"frame size {width}x{height}" in one_error_line(decode(tmp_path, hostile))
    assert "frame size" in one_error_line(
        runner.invoke(app, ["info", str(tmp_path / "hostile.dhvc")])
    )


def test_payloads_larger_than_the_declared_size_can_hold_are_refused(tmp_path):
    # A 32x32 frame codes 4 symbols at scale 1 (tiny preset); 4 KiB cannot be their payload.
    payloads = [bytes(4096), bytes(64), bytes(64), bytes(64)]
    line = one_error_line(decode(tmp_path, synthetic_stream(32, 32, payloads)))
    assert "scale 1" in line and "cannot code the 4 symbols" in line
    # The same payloads are fine for a frame large enough to need them.
    result = decode(tmp_path, synthetic_stream(2048, 1024, payloads), output="big")
    assert result.exit_code == 0, result.output


def test_payloads_that_are_no_whole_coder_words_are_refused(tmp_path):
    for payloads in ([b"", b"abcd", b"abcd", b"abcd"], [b"abcde", b"abcd", b"abcd", b"abcd"]):
        data = bytearray(synthetic_stream(64, 64, [b"abcd"] * 4))
        lengths_at = StreamHeader.SIZE + frame_header_field("scale1.length").offset
        struct.pack_into("<I", data, lengths_at, len(payloads[0]))
        data = bytes(data[: StreamHeader.SIZE + FrameHeader.SIZE]) + b"".join(payloads)
        assert "whole 4-byte words" in one_error_line(decode(tmp_path, data))


def test_the_payload_bound_holds_for_the_worst_symbols_at_every_table_level():
    from codec.entropy.gaussian import NUM_LEVELS, GaussianTable

    table = GaussianTable.build()
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 257):
        for level in range(NUM_LEVELS):
            indexes = np.full(n, level, dtype=np.uint8)
            worst = np.full(n, -(2**30), dtype=np.int64)  # escaped: category + 32 bits
            radius = table.levels[level].radius
            rarest = np.full(n, radius, dtype=np.int64)  # least probable coded category
            noise = rng.integers(-(2**31), 2**31, n)
            for symbols in (worst, rarest, noise):
                data = table.encode(symbols, indexes)
                assert 4 <= len(data) <= max_payload_bytes(n) and len(data) % 4 == 0


# --- frame rate ------------------------------------------------------------------------------


@pytest.mark.parametrize("num, den", [(2**32 - 1, 1), (1, 2**32 - 1), (1001, 1), (0, 1), (1, 0)])
def test_frame_rates_the_mp4_writer_cannot_write_are_refused(stream_bytes, tmp_path, num, den):
    hostile = with_fields(stream_bytes, FPS_OFFSET, "<II", num, den)
    assert "frame rate" in one_error_line(decode(tmp_path, hostile, output="o.mp4"))
    assert not (tmp_path / "o.mp4").exists()
    with pytest.raises(BitstreamError, match="frame rate"):
        read_stream(io.BytesIO(hostile))


@pytest.mark.parametrize("fps", [Fraction(2**32 - 1), Fraction(1, 2**32 - 1), Fraction(0)])
def test_the_writer_refuses_a_header_it_could_not_read_back(fps):
    with pytest.raises(BitstreamError, match="frame rate"):
        StreamHeader("tiny-random", 64, 64, fps, 32)
    with pytest.raises(BitstreamError, match="frame size"):
        StreamHeader("tiny-random", 32768, 32768, Fraction(25), 32)


def test_rates_at_the_limits_decode_to_mp4(stream_bytes, tmp_path):
    for num, den in ((1000, 1), (1, 1000), (30000, 1001)):
        hostile = with_fields(stream_bytes, FPS_OFFSET, "<II", num, den)
        result = decode(tmp_path, hostile, output=f"o{num}.mp4")
        assert result.exit_code == 0, result.output


# --- lambda ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [1e-40, 1e-30, 0.0, -5.0, math.inf, math.nan, 1e9])
def test_absurd_lambdas_are_refused_by_the_parser(stream_bytes, tmp_path, lam):
    hostile = with_fields(stream_bytes, StreamHeader.SIZE + LAMBDA_OFFSET, "<f", lam)
    header, frames = read_stream(io.BytesIO(hostile))
    with pytest.raises(BitstreamError, match="lambda"):
        next(frames)
    assert "lambda" in one_error_line(decode(tmp_path, hostile))


def test_a_lambda_outside_the_models_range_is_refused_before_decoding(stream_bytes, tmp_path):
    hostile = with_fields(stream_bytes, StreamHeader.SIZE + LAMBDA_OFFSET, "<f", 5e6)
    assert "outside the model's range" in one_error_line(decode(tmp_path, hostile))


@pytest.mark.parametrize("lam", [1e300, 1e-320, math.nan])
def test_the_writer_refuses_absurd_lambdas(lam):
    with pytest.raises(BitstreamError, match="lambda"):
        FrameHeader(0, FrameType.I, 1, lam, (4,) * 4, (0,) * 4, (0,) * 4)


@pytest.mark.parametrize("age", [1, 17, 255])
def test_a_mirror_age_outside_an_m_frame_or_beyond_frame_0_is_refused(stream_bytes, age):
    hostile = with_fields(stream_bytes, StreamHeader.SIZE + MIRROR_AGE_OFFSET, "<B", age)
    _, frames = read_stream(io.BytesIO(hostile))
    with pytest.raises(BitstreamError, match="assumes"):
        next(frames)


@pytest.mark.parametrize(
    ("index", "frame_type", "mirror_from"),
    [(5, FrameType.M, None), (5, FrameType.M, 5), (20, FrameType.M, 3), (5, FrameType.P, 4)],
)
def test_the_writer_refuses_impossible_assumed_states(index, frame_type, mirror_from):
    resync = 0 if frame_type is FrameType.P else 2
    with pytest.raises(BitstreamError, match="assumes"):
        FrameHeader(index, frame_type, resync, 700.0, (4,) * 4, (0,) * 4, (0,) * 4, mirror_from)


def test_an_m_frame_header_round_trips_with_its_assumed_state():
    header = FrameHeader(20, FrameType.M, 3, 700.0, (4,) * 4, (1,) * 4, (2,) * 4, 4)
    parsed = FrameHeader.unpack(header.pack())
    assert parsed == header
    assert parsed.received([b"\0" * 4] * NUM_SCALES).mirror_from == 4


# --- devices ---------------------------------------------------------------------------------


def _device_commands(clip: Path, stream: Path, tmp_path: Path) -> dict[str, list[str]]:
    return {
        "encode": ["encode", str(clip), "-o", str(tmp_path / "x.dhvc"), *TINY],
        "decode": ["decode", str(stream), "-o", str(tmp_path / "d"), "--checkpoint", "none"],
        "bench": ["bench", "--preset", "tiny", "--size", "64x64", "--frames", "1"],
        "train": ["train", "--data", "sample", "--state", str(tmp_path / "s.pt")],
        "eval": ["eval", str(clip), "-o", str(tmp_path / "rd.json"), *TINY],
    }


@pytest.mark.parametrize("name", ["encode", "decode", "bench", "train", "eval"])
def test_an_unknown_device_is_one_line(clip, stream_bytes, tmp_path, name):
    stream = tmp_path / "s.dhvc"
    stream.write_bytes(stream_bytes)
    args = _device_commands(clip, stream, tmp_path)[name]
    line = one_error_line(runner.invoke(app, [*args, "--device", "bogus"]))
    assert line == "error: unknown device 'bogus' (auto, cpu or cuda)"


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("name", ["encode", "decode", "bench", "train", "eval"])
def test_cuda_without_cuda_is_one_line(clip, stream_bytes, tmp_path, name):
    stream = tmp_path / "s.dhvc"
    stream.write_bytes(stream_bytes)
    args = _device_commands(clip, stream, tmp_path)[name]
    line = one_error_line(runner.invoke(app, [*args, "--device", "cuda"]))
    assert line == "error: --device cuda requested but CUDA is not available"


# --- checkpoints -----------------------------------------------------------------------------


def _not_checkpoints(folder: Path) -> dict[str, Path]:
    from codec import load_model

    good = folder / "good.pt"
    save_checkpoint(load_model("none", preset="tiny"), good)
    data = good.read_bytes()
    files = {
        "text": b"hello, this is not a checkpoint\n",
        "png": write_png_frames(folder / "png", np.zeros((1, 32, 32, 3), np.uint8))[0].read_bytes(),
        "empty": b"",
        "truncated": data[: len(data) // 2],
        "tail cut": data[:-10],
    }
    paths = {}
    for name, content in files.items():
        paths[name] = folder / f"{name.replace(' ', '_')}.pt"
        paths[name].write_bytes(content)
    paths["directory"] = folder / "dir.pt"
    paths["directory"].mkdir()
    paths["list"] = folder / "list.pt"
    torch.save([1, 2, 3], paths["list"])
    paths["no config"] = folder / "noconfig.pt"
    torch.save({"state_dict": {"a": torch.zeros(1)}}, paths["no config"])
    paths["zip"] = folder / "other.zip"
    with zipfile.ZipFile(paths["zip"], "w") as z:
        z.writestr("a.txt", "not torch")
    payload = torch.load(good, weights_only=True)
    hostile = dict(payload, config=dict(payload["config"], widths=[10**6] * 4))
    paths["huge config"] = folder / "huge.pt"
    torch.save(hostile, paths["huge config"])
    paths["non-tensor state"] = folder / "nontensor.pt"
    torch.save(dict(payload, state_dict={"s0": [1, 2]}), paths["non-tensor state"])
    paths["wrong shapes"] = folder / "shapes.pt"
    state = {k: torch.zeros(3) for k in payload["state_dict"]}
    torch.save(dict(payload, state_dict=state), paths["wrong shapes"])
    return paths


def test_files_that_are_not_checkpoints_are_one_line(clip, tmp_path):
    for kind, path in _not_checkpoints(tmp_path).items():
        result = runner.invoke(
            app,
            ["encode", str(clip), "-o", str(tmp_path / "x.dhvc"), "--checkpoint", str(path)],
        )
        line = one_error_line(result)
        assert line.startswith(f"error: {path}: not a DHVC checkpoint ("), (kind, line)
    missing = runner.invoke(
        app, ["encode", str(clip), "-o", str(tmp_path / "x.dhvc"), "--checkpoint", "nope.pt"]
    )
    assert "no such checkpoint file" in one_error_line(missing)


# --- Ctrl-C ----------------------------------------------------------------------------------


def test_ctrl_c_in_a_command_is_one_line_and_exit_130(stream_bytes, tmp_path, monkeypatch):
    import codec.stream.files

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(codec.stream.files, "decode_file", interrupt)
    assert one_error_line(decode(tmp_path, stream_bytes), code=130) == "interrupted"


def test_the_entry_point_turns_ctrl_c_into_one_line_and_130(monkeypatch, capsys):
    import codec.cli.dhvc

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(codec.cli.dhvc, "app", interrupt)
    with pytest.raises(SystemExit) as exit_info:
        codec.cli.dhvc.main()
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.strip() == "interrupted"


# --- mutations -------------------------------------------------------------------------------


def test_mutated_streams_decode_or_give_a_typed_one_line_error(stream_bytes, tmp_path):
    """A seeded sample of the fuzz benchmark's .dhvc mutations (``tests.fuzzing``: flips,
    truncations, extreme header fields, payloads damaged behind a re-sealed CRC, frames
    reordered); the full decode of each (as ``dhvc decode`` runs it) succeeds or raises
    ``ValueError`` with a one-line message within the guard's time limit."""
    from codec.stream.files import decode_file
    from tests.fuzzing.guard import Guard
    from tests.fuzzing.mutators import DhvcMutator
    from tests.fuzzing.outcomes import CategoryResult, case_rng, run_case

    mutator = DhvcMutator(stream_bytes, stream_bytes)
    result, guard = CategoryResult("dhvc"), Guard()
    path = tmp_path / "m.dhvc"
    for case in range(200):
        _, data = mutator.mutate(case_rng(2024, "dhvc", case))
        path.write_bytes(data)

        def decode(out: Path = tmp_path / f"o{case}") -> str:
            decode_file(path, out, 4, "none", "cpu")
            return "decoded"

        run_case(result, guard, case, "mutated", decode, 10.0, (ValueError,))
    assert result.tried == 200 and not result.failures, result.failures[:3]


@pytest.mark.parametrize(
    "lam", [1e308, -1e308, float("inf"), float("nan"), 0.0, 1e-320, 63.99, 8193.0]
)
def test_check_lambda_refuses_every_lambda_outside_the_range_in_one_line(lam: float) -> None:
    config = get_preset("small")
    with pytest.raises(ValueError, match="outside the model's range") as info:
        check_lambda(lam, config)
    assert "\n" not in str(info.value)


def test_check_lambda_accepts_the_range_ends_as_float32_rounds_them() -> None:
    config = get_preset("small")
    for lam in (config.lambda_min, config.lambda_max, 1024.0):
        check_lambda(lam, config)
