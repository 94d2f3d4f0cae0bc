"""One adapter interface for every codec (DESIGN 4b): a codec registered from outside netsim
runs through the same network, traces and summary; sender, receiver, reassembly and runner
know no codec by name or type."""

from __future__ import annotations

import ast
import io
import json
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import netsim.reassembly
import netsim.receiver
import netsim.runner
import netsim.sender
from analysis.io import load_frames
from codec.types import IN_SYNC, FrameType, ScalePayload
from netsim.codecs import (
    Assembled,
    CodecEntry,
    EchoRecovery,
    ShownPicture,
    TimedCodec,
    builtin_codec_kinds,
    codec_entry,
    codec_kinds,
    registered_codec,
)
from netsim.codecs.base import ModelInfo
from netsim.fec import FecParams
from netsim.packet import Packet
from netsim.packetizer import assemble_scale, fits_scale_header, packetize_scale
from netsim.reassembly import FrameAssembly
from netsim.runner import run_scenario
from netsim.scenario import Scenario, ScenarioError, load_scenario
from netsim.trace import SentFrame

JPEG = "jpeg-test"
QUALITY = 50


@dataclass(frozen=True)
class JpegFrame:
    """One picture as a JPEG file."""

    frame_index: int
    data: bytes
    width: int
    height: int


class JpegAdapter:
    """An intra-only codec: each frame one JPEG (Pillow), sent as one layer of scale packets;
    a frame whose layer is incomplete is frozen (the last picture shown again). Every frame
    is an I frame, so the codec never needs feedback."""

    def __init__(self, originals: np.ndarray, quality: int) -> None:
        self.originals = originals
        self.quality = quality
        height, width = originals.shape[1:3]
        self._last = np.full((height, width, 3), 0.5, np.float32)

    def encode(self, frame_index: int, resync_from: int | None) -> JpegFrame:
        del resync_from  # every frame is intra
        buffer = io.BytesIO()
        Image.fromarray(self.originals[frame_index]).save(buffer, "JPEG", quality=self.quality)
        height, width = self.originals.shape[1:3]
        return JpegFrame(frame_index, buffer.getvalue(), width, height)

    def packetize(
        self,
        frame: JpegFrame,
        *,
        first_seq: int,
        mtu_bytes: int,
        max_scales: int,
        fec: Mapping[int, FecParams],
    ) -> list[Packet]:
        del max_scales
        return packetize_scale(
            ScalePayload(frame.data, zlib.crc32(frame.data), 0),
            scale=1,
            frame_index=frame.frame_index,
            rate_parameter=float(self.quality),
            resync_from=1,
            frame_type=FrameType.I,
            first_seq=first_seq,
            mtu_bytes=mtu_bytes,
            fec=fec.get(1),
        )

    def describe_sent(
        self, frame: JpegFrame, *, capture_time_s: float, max_scales: int
    ) -> SentFrame:
        del max_scales
        return SentFrame(
            frame_type=FrameType.I,
            resync_from=1,
            lam=float("nan"),
            bits_per_scale=(8 * len(frame.data), 0, 0, 0),
            pixels=frame.width * frame.height,
            capture_time_s=capture_time_s,
            codec=JPEG,
            units_sent=1,
        )

    def recovery(self) -> EchoRecovery:
        return EchoRecovery()

    def fits(self, packet: Packet) -> bool:
        return fits_scale_header(packet)

    def assemble(
        self, frame_index: int, assembly: FrameAssembly | None
    ) -> Assembled[tuple[int, bytes | None]]:
        agreed = None if assembly is None else assembly.agreed()
        layer = None if agreed is None else agreed.scales.get(1)
        complete = None if layer is None else assemble_scale(layer)
        if complete is None:
            return Assembled((frame_index, None))
        recovered = tuple((1, f) for f in complete.recovered_fragments)
        return Assembled((frame_index, complete.payload.data), recovered)

    def decode(self, received: tuple[int, bytes | None]) -> ShownPicture:
        frame_index, data = received
        frozen = data is None
        if data is not None:
            picture = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            self._last = picture.astype(np.float32) / 255.0
        return ShownPicture(
            frame_index=frame_index,
            x_hat=self._last,
            first_desynced_scale=IN_SYNC,
            echo_scale=None,
            units_received=0 if frozen else 1,
            units_decoded=0 if frozen else 1,
            concealed=False,
            frozen=frozen,
        )


@dataclass(frozen=True)
class LoadedJpeg:
    originals: np.ndarray
    device: str = "cpu"

    @property
    def model_info(self) -> ModelInfo:
        return ModelInfo(
            id="Pillow JPEG", preset=f"quality {QUALITY}", lambda_min=np.nan, lambda_max=np.nan
        )

    def adapter(self) -> JpegAdapter:
        return JpegAdapter(self.originals, QUALITY)


def load_jpeg(scenario: Scenario, originals: np.ndarray, device: str) -> LoadedJpeg:
    del scenario, device
    return LoadedJpeg(originals)


LOSSY = f"""\
name: jpeg-lossy
seed: 3
video: {{source: "sample:bikes", width_px: 128, height_px: 64, frames: 12, fps: 25}}
codec: {{kind: {JPEG}}}
sender: {{mtu_bytes: 400}}
network:
  forward: {{kind: unlimited, delay_ms: 10, loss: {{kind: bernoulli, loss_rate: 0.3}}}}
  feedback: {{delay_ms: 20}}
receiver: {{playout_delay_ms: 40}}
"""


@pytest.fixture
def jpeg() -> Iterator[CodecEntry]:
    with registered_codec(CodecEntry(kind=JPEG, load=load_jpeg)) as entry:
        yield entry


def test_a_registered_codec_runs_a_lossy_scenario_with_traces_and_summary(
    jpeg: CodecEntry, tmp_path: Path
) -> None:
    (tmp_path / "s.yaml").write_text(LOSSY)
    scenario = load_scenario(tmp_path / "s.yaml")
    summary = run_scenario(scenario, tmp_path / "out")
    frames = load_frames(tmp_path / "out")
    assert list(frames["codec"].astype(str)) == [JPEG] * 12
    assert frames["frozen"].sum() > 0 and (frames["frozen"] == 0).sum() > 0
    assert (frames.loc[frames["frozen"] == 0, "psnr"] > 20).all()
    assert summary.codec == JPEG and summary.frames_frozen == frames["frozen"].sum()
    assert summary.loss.loss_model.lost_packets > 0
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk["codec"] == JPEG and on_disk["model"]["id"] == "Pillow JPEG"
    packets = (tmp_path / "out" / "packets.csv").read_text().splitlines()
    assert len(packets) - 1 == summary.loss.packets_sent > 12  # several packets per frame


def test_a_codec_is_known_only_while_registered(jpeg: CodecEntry) -> None:
    assert codec_kinds() == (*builtin_codec_kinds(), JPEG)
    assert codec_entry(JPEG) is jpeg
    with pytest.raises(ValueError, match="already registered"), registered_codec(jpeg):
        pass


def test_an_unknown_codec_kind_names_the_field_and_the_known_kinds(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(LOSSY)
    with pytest.raises(ScenarioError, match=r"codec\.kind.*known: dhvc, x264, x265"):
        load_scenario(tmp_path / "s.yaml")


def test_the_timing_wrapper_adds_up_encode_and_decode_time() -> None:
    clip = np.zeros((2, 16, 16, 3), np.uint8)
    codec = TimedCodec(JpegAdapter(clip, QUALITY))
    frame = codec.encode(0, None)
    shown = codec.decode((0, frame.data))
    assert shown.units_decoded == 1 and codec.encode_time_s > 0 and codec.decode_time_s > 0


DRIVERS = (netsim.sender, netsim.receiver, netsim.reassembly, netsim.runner)


@pytest.mark.parametrize("module", DRIVERS, ids=lambda m: m.__name__)
def test_the_network_drivers_know_no_codec_by_type_or_name(module: object) -> None:
    source = Path(module.__file__).read_text(encoding="utf-8")  # type: ignore[attr-defined]
    tree = ast.parse(source)
    calls = [
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    ]
    assert "isinstance" not in calls and "getattr" not in calls
    strings = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    assert not strings & set(builtin_codec_kinds())
    assert ".SLICES" not in source and ".SCALES" not in source  # no layout branches
