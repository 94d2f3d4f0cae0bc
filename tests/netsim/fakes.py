"""Codec-free stand-ins for ``codec.Encoder`` and ``codec.Decoder`` (network tests only).

``FakeEncoder`` makes random payloads of fixed sizes per scale, with the codec's frame types
(I at each GOP start, R on request, else P). ``FakeDecoder`` applies DESIGN 2's rule for the
first desynchronised scale D without decoding anything, as ``codec.Decoder`` does.
``fake_codec`` puts them behind the DHVC adapter; ``scenario`` and ``simulate_fakes`` run a
scenario's network with both.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

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
from netsim.codecs.dhvc import DhvcAdapter, assemble_scales
from netsim.packet import HEADER_SIZE_BYTES, Packet
from netsim.packetizer import AssembledScale, assemble_scale
from netsim.reassembly import FrameAssembly
from netsim.scenario import Scenario
from netsim.simulation import SimulationOutcome, simulate


class FakeEncoder:
    """Random payloads of ``sizes_bytes[k-1]`` bytes for scale k."""

    def __init__(
        self,
        sizes_bytes: tuple[int, ...] = (40, 150, 600, 2500),
        *,
        gop: int = 32,
        lam: float = 1024.0,
        seed: int = 0,
    ) -> None:
        self.sizes_bytes = sizes_bytes
        self.gop = gop
        self.lam = lam
        self._rng = np.random.default_rng(seed)
        self.requests: list[int | None] = []

    def encode(self, frame_index: int, resync_from: int | None) -> EncodedFrame:
        self.requests.append(resync_from)
        if frame_index % self.gop == 0:
            frame_type, resync = FrameType.I, 1
        elif resync_from is not None:
            frame_type, resync = FrameType.R, resync_from
        else:
            frame_type, resync = FrameType.P, 0
        scales = []
        for size in self.sizes_bytes:
            data = self._rng.integers(0, 256, size, dtype=np.uint8).tobytes()
            scales.append(ScalePayload(data, zlib.crc32(data), frame_index * 7 + size))
        return EncodedFrame(
            frame_index=frame_index,
            frame_type=frame_type,
            lam=self.lam,
            resync_from=resync,
            height=8,
            width=8,
            scales=tuple(scales),
            estimated_bits=tuple(8.0 * s for s in self.sizes_bytes),
            x_hat=np.zeros((8, 8, 3), np.float32),
        )


class FakeDecoder:
    """DESIGN 2's D bookkeeping; remembers every ReceivedFrame it was given."""

    def __init__(self) -> None:
        self.first_desynced_scale = IN_SYNC
        self.received: list[ReceivedFrame] = []

    def decode(self, received: ReceivedFrame) -> DecodedFrame:
        self.received.append(received)
        resync = received.resync_from or 0
        if resync and resync <= self.first_desynced_scale:
            self.first_desynced_scale = IN_SYNC
        d_start = self.first_desynced_scale
        outcomes: list[ScaleOutcome] = []
        for k in range(1, NUM_SCALES + 1):
            payload = received.scales.get(k)
            if payload is None:
                outcome = ScaleOutcome.MISSING
            elif any(o is not ScaleOutcome.DECODED for o in outcomes):
                outcome = ScaleOutcome.SKIPPED
            elif k >= self.first_desynced_scale:
                outcome = ScaleOutcome.DESYNCED
            elif zlib.crc32(payload.data) != payload.crc32:
                outcome = ScaleOutcome.CORRUPT
            else:
                outcome = ScaleOutcome.DECODED
            outcomes.append(outcome)
            if outcome is not ScaleOutcome.DECODED and k < self.first_desynced_scale:
                self.first_desynced_scale = k
        d_end = self.first_desynced_scale
        return DecodedFrame(
            frame_index=received.frame_index,
            frame_type=received.frame_type or FrameType.P,
            lam=received.lam or 1024.0,
            resync_from=resync,
            x_hat=np.zeros((8, 8, 3), np.float32),
            outcomes=tuple(outcomes),
            first_desynced_scale=d_end,
            echo_scale=d_end if d_end < d_start else None,
        )


def fake_codec(
    encoder: FakeEncoder | None = None, decoder: FakeDecoder | None = None
) -> DhvcAdapter:
    """The DHVC adapter over a fake encoder and decoder (new ones where not given)."""
    return DhvcAdapter(encoder or FakeEncoder(), decoder or FakeDecoder())


def assemble(assembly: FrameAssembly) -> tuple[ReceivedFrame, tuple[AssembledScale, ...]]:
    """What the DHVC adapter hands its decoder from ``assembly``, and the complete scales
    (with the fragments FEC rebuilt)."""
    received = assemble_scales(assembly.frame_index, assembly).received
    agreed = assembly.agreed()
    if agreed is None:
        return received, ()
    scales = (assemble_scale(scale) for scale in agreed.scales.values())
    return received, tuple(scale for scale in scales if scale is not None)


def synthetic_packet(seq: int, size_bytes: int, scale: int = 1, frame: int = 0) -> Packet:
    """A one-fragment packet of ``size_bytes`` on the wire."""
    return Packet(
        seq=seq,
        frame_index=frame,
        scale=scale,
        fragment_index=0,
        fragment_count=1,
        parity_count=0,
        rate_parameter=1024.0,
        resync_from=0,
        frame_type=FrameType.P,
        scale_length_bytes=size_bytes - HEADER_SIZE_BYTES,
        scale_crc32=0,
        sync_tag=0,
        payload=bytes(size_bytes - HEADER_SIZE_BYTES),
    )


def scenario(**sections: Any) -> Scenario:
    """A scenario of 25 frames/s with these sections (the rest: defaults)."""
    data: dict[str, Any] = {"name": "test", "video": {"fps": 25, "frames": 32}}
    data.update(sections)
    return Scenario.model_validate(data)


def simulate_fakes(
    s: Scenario,
    frames: int,
    *,
    sizes_bytes: tuple[int, ...] = (40, 150, 600, 2500),
    seed: int = 0,
) -> tuple[SimulationOutcome, FakeDecoder]:
    """Simulate ``frames`` frames of ``s`` with a ``FakeEncoder`` of these scale sizes; the
    decoder remembers what it received."""
    decoder = FakeDecoder()
    outcome = simulate(
        s,
        codec=fake_codec(FakeEncoder(sizes_bytes, gop=s.codec.gop_frames), decoder),
        frame_count=frames,
        seed=seed,
    )
    return outcome, decoder
