"""The valid inputs every mutation starts from, built once per fuzz run: a small .dhvc stream
and the packets of its frames (tiny random-weight codec, 64x64), x264/x265 slice packets, and
one valid file of each loader (checkpoint, training state, pack, run folder)."""

from __future__ import annotations

import contextlib
import io
import json
import pickle
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import codec.stream.files
from codec.h26x.realtime import STANDARD_CODECS, H26xSettings
from codec.io.video import read_frames
from codec.model.checkpoint import load_model, save_checkpoint
from codec.stream.bitstream import StreamHeader, write_frame, write_stream
from codec.stream.coder import Decoder, Encoder
from netsim.codecs.h26x import H26xFrameEncoder
from netsim.codecs.slices import packetize_slices, payload_budget_bytes
from netsim.fec import FecParams
from netsim.packetizer import packetize
from netsim.runner import run_scenario
from netsim.scenario import Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_DIR = ROOT / "scenarios"
SWEEP_DIR = ROOT / "sweeps"

FRAME_SIZE = 64
"""Side of the fuzzed streams' frames (tiny preset, random weights)."""
STREAM_FRAMES = 4
STREAM_GOP = 3
"""4 frames with GOP 3: I P P I."""
LAMBDA = 1024.0
SLICE_QP = 30
SLICE_MTUS = (200, 1200)
"""MTUs of the slice packet sets: several packets per frame, and one or two."""


def run_ready(scenario: Scenario) -> Scenario:
    """The scenario with the tiny random-weight codec and 64x64 frames (fast runs)."""
    return scenario.model_copy(
        update={
            "codec": scenario.codec.model_copy(update={"checkpoint": "none", "preset": "tiny"}),
            "video": scenario.video.model_copy(
                update={"width_px": FRAME_SIZE, "height_px": FRAME_SIZE}
            ),
        }
    )


class CodeRan:
    """Unpickling this creates ``marker``: a pickle payload that shows whether a loader ran
    code from a file (``builtins.open`` in write mode, nothing worse)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


class Fixtures:
    """Valid inputs, each built the first time a category asks for it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.model = load_model("none", preset="tiny")
        self.pictures = read_frames(
            "sample:bikes", max_frames=STREAM_FRAMES, size=(FRAME_SIZE, FRAME_SIZE)
        )
        self._decoder: Decoder | None = None
        self.marker = workdir / "code-ran"
        """The file a pickle payload creates if a loader runs it."""

    # --- .dhvc streams and DHVC packets -----------------------------------------------------

    @cached_property
    def stream(self) -> bytes:
        return self._stream(self.pictures, LAMBDA, STREAM_GOP)

    @cached_property
    def foreign_stream(self) -> bytes:
        foreign = read_frames("sample:bikes", max_frames=2, size=(96, FRAME_SIZE), start_frame=9)
        return self._stream(foreign, 256.0, 1)

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

    @cached_property
    def packet_sets(self) -> dict[str, list[list[bytes]]]:
        """Each frame's datagrams (frames I P R I: frame 2 re-syncs from scale 3) per MTU and
        FEC."""
        encoder = Encoder(self.model, gop=STREAM_GOP, device="cpu")
        encoded = [
            encoder.encode(p, LAMBDA, resync_from=3 if i == 2 else None)
            for i, p in enumerate(self.pictures)
        ]

        def datagrams(frame, mtu: int, fec: dict | None) -> list[bytes]:
            first_seq = 100 * frame.frame_index
            packets = packetize(frame, first_seq=first_seq, mtu_bytes=mtu, fec=fec)
            return [p.to_bytes() for p in packets]

        fec = {3: FecParams(2, 1), 4: FecParams(2, 2)}
        return {
            "mtu60": [datagrams(f, 60, None) for f in encoded],
            "mtu60+fec": [datagrams(f, 60, fec) for f in encoded],
            "mtu1200": [datagrams(f, 1200, None) for f in encoded],
        }

    def fresh_decoder(self) -> Decoder:
        """A decoder in its initial state (reset rather than rebuilt: building one costs the
        Gaussian table)."""
        if self._decoder is None:
            self._decoder = Decoder(self.model, FRAME_SIZE, FRAME_SIZE, device="cpu")
        self._decoder.reset()
        return self._decoder

    # --- x264/x265 slice packets ------------------------------------------------------------

    @cached_property
    def slice_sets(self) -> dict[str, dict[str, list[list[bytes]]]]:
        """codec -> "mtuN" or "mtuN+fec" -> each frame's slice datagrams (frames I P R I:
        frame 2 is forced intra, as a picture-loss indication asks)."""
        sets: dict[str, dict[str, list[list[bytes]]]] = {}
        for codec_name in STANDARD_CODECS:
            per_codec: dict[str, list[list[bytes]]] = {}
            for mtu in SLICE_MTUS:
                for fec in (None, FecParams(2, 1)):
                    budget = payload_budget_bytes(mtu) - (2 if fec else 0)
                    settings = H26xSettings(
                        codec=codec_name,
                        qp=SLICE_QP,
                        gop_frames=STREAM_GOP,
                        slice_max_bytes=max(64, budget),
                        x265_slices=2,
                        preset="ultrafast",
                    )
                    encoder = H26xFrameEncoder(settings, self.pictures)
                    frames = [
                        encoder.encode(i, 1 if i == 2 else None) for i in range(STREAM_FRAMES)
                    ]
                    name = f"mtu{mtu}" + ("+fec" if fec else "")
                    per_codec[name] = [
                        [
                            p.to_bytes()
                            for p in packetize_slices(
                                f, first_seq=100 * f.frame_index, mtu_bytes=mtu, fec=fec
                            )
                        ]
                        for f in frames
                    ]
            sets[codec_name] = per_codec
        return sets

    # --- loader files -----------------------------------------------------------------------

    @cached_property
    def checkpoint(self) -> bytes:
        path = self.workdir / "valid-checkpoint.pt"
        save_checkpoint(self.model, path)
        return path.read_bytes()

    @cached_property
    def train_state(self) -> bytes:
        """A small file of what ``codec.train.trainer`` saves: tensors and plain data."""
        weights = {"w": torch.zeros(4, 4), "b": torch.ones(4)}
        state = {
            "model": weights,
            "ema": {"shadow": weights, "decay": 0.999},
            "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
            "sampler": {"position": 3, "order": [2, 0, 1]},
            "lambda_rng": {"state": [1, 2, 3]},
            "guard": {"skipped": 0},
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": None,
            "step": 7,
            "history": [{"step": 1, "loss": 0.5}],
            "train_config": {"preset": "tiny", "batch_size": 2},
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    @cached_property
    def pack_files(self) -> dict[str, bytes]:
        """A pack of one training photo: ``manifest.json`` and the photo."""
        buffer = io.BytesIO()
        Image.fromarray(self.pictures[0][:32, :32]).save(buffer, format="PNG")
        photo = buffer.getvalue()
        entry = {"path": "train/photo0.png", "kind": "photo", "split": "train"}
        manifest = {"format": 1, "files": [{**entry, "bytes": len(photo), "sha256": "0" * 64}]}
        return {
            "manifest.json": json.dumps(manifest, indent=1).encode(),
            "train/photo0.png": photo,
        }

    @cached_property
    def run_files(self) -> dict[str, bytes]:
        """frames.csv, packets.csv and summary.json of a two-frame run of ``loss20``."""
        out = self.workdir / "valid-run"
        scenario = run_ready(load_scenario(SCENARIO_DIR / "loss20.yaml"))
        run_scenario(scenario, out, frames=2, device="cpu")
        return {
            name: (out / name).read_bytes()
            for name in ("frames.csv", "packets.csv", "summary.json")
        }

    def pickle_payloads(self) -> dict[str, bytes]:
        """Files whose unpickling would create ``marker``: bare pickles (protocols 0, 2 and
        5), and ``torch.save`` archives holding the payload where a loader finds its data."""
        payload = CodeRan(self.marker)
        out = {
            f"pickle protocol {p}": pickle.dumps({"model": payload, "step": 1}, protocol=p)
            for p in (0, 2, 5)
        }
        for what, obj in (
            ("torch.save state", {"model": payload, "step": 1}),
            ("torch.save tensor dict", {"config": payload, "state_dict": {}}),
            ("torch.save object", payload),
        ):
            buffer = io.BytesIO()
            torch.save(obj, buffer)
            out[what] = buffer.getvalue()
        return out


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
