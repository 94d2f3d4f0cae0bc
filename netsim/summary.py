"""The summary of one run: a typed record, and summary.json, its serialisation (DESIGN 5).

``RunSummary`` holds what a run reports besides its traces: the scenario and seed, versions, mean
quality, loss statistics next to the loss model's analytic values, echo counts and measured
times. ``summarize`` computes it from a ``SimulationOutcome``; ``RunSummary.to_json`` writes
summary.json, whose keys are the field names (nested types become nested objects; NaN and
infinities become null, since JSON has neither).
"""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from importlib import metadata
from typing import Any

import numpy as np

from codec.types import IN_SYNC, NUM_SCALES, FrameType
from netsim.codecs.base import ModelInfo
from netsim.codecs.registry import DEFAULT_CODEC
from netsim.damage import DamageSummary, damage_summary
from netsim.scenario import Scenario
from netsim.simulation import SimulationOutcome
from netsim.stats import channel_loss_statistics, fate_counts
from netsim.trace import Fate, FrameRecord

VERSIONED_PACKAGES = ("dhvc-testbed", "torch", "numpy", "simpy", "zfec", "pydantic", "av")
"""The packages whose installed versions summary.json records, besides Python's."""

SUMMARY_FILE = "summary.json"
"""The summary's file name in a run folder."""


@dataclass(frozen=True)
class LossModelSummary:
    """The forward link's loss model on the packets exposed to it: what it did (empirical, from
    the packet trace) next to what it predicts (analytic; None where that depends on the
    traffic)."""

    kind: str
    exposed_packets: int
    lost_packets: int
    bursts: int
    empirical_loss_rate: float
    empirical_mean_burst_packets: float
    analytic_loss_rate: float | None
    analytic_mean_burst_packets: float | None


@dataclass(frozen=True)
class LossSummary:
    """Packets of a run: sent, not usable in time (every fate but delivered and fec_recovered),
    counts per fate (``netsim.stats.fate_counts``), the loss model's statistics, and the
    in-time packets the receiver did not use (rejected ones and duplicates)."""

    packets_sent: int
    bytes_sent: int
    packets_not_in_time: int
    packet_loss_rate: float
    fates: Mapping[str, Mapping[str, int]]
    loss_model: LossModelSummary
    rejected_packets: int


@dataclass(frozen=True)
class EchoSummary:
    """Echoes (``netsim.simulation.EchoCounts``), the frames after which one was sent, and the
    re-sync frames the sender encoded."""

    sent: int
    lost: int
    delivered: int
    used: int
    stale: int
    frames_echoing: int
    resync_frames: int


@dataclass(frozen=True)
class RunTiming:
    """Measured wall-clock times of a run (s), the simulator's overhead, and the simulated
    duration.

    ``simulator_overhead_s`` is everything but encoding and decoding: the run's wall time minus
    the time spent inside ``Encoder.encode`` and ``Decoder.decode``. It breaks down into
    ``setup_time_s`` (reading the video, loading the model), ``metrics_time_s`` (the wall
    time the run spent on PSNR and MS-SSIM of every frame: ``netsim.runner`` measures them on
    a second thread while the next frames are coded, so this is handing the pictures over and
    waiting for the last batch), ``output_time_s`` (writing the result files) and
    ``network_simulation_time_s``, the rest: SimPy, packetization, reassembly, loss models,
    queues and bookkeeping. ``simulated_duration_s`` is the simulated time of the run's last
    event. ``breakdown()`` is what the run table shows: the simulator overhead mixes metrics
    and loading with the network, so readers are shown the parts instead.
    """

    wall_time_s: float
    encode_time_s: float
    decode_time_s: float
    simulator_overhead_s: float
    simulator_overhead_fraction: float
    setup_time_s: float
    metrics_time_s: float
    output_time_s: float
    network_simulation_time_s: float
    network_simulation_fraction: float
    simulated_duration_s: float

    def breakdown(self) -> tuple[tuple[str, float], ...]:
        """Where the wall time went (s): setup (reading the video, loading the model),
        encode, decode, metrics (PSNR, MS-SSIM), network (the simulation: SimPy, packets,
        reassembly, loss, bookkeeping) and output (writing the results)."""
        return (
            ("setup", self.setup_time_s),
            ("encode", self.encode_time_s),
            ("decode", self.decode_time_s),
            ("metrics", self.metrics_time_s),
            ("network", self.network_simulation_time_s),
            ("output", self.output_time_s),
        )

    @classmethod
    def of(
        cls,
        *,
        wall_time_s: float,
        encode_time_s: float,
        decode_time_s: float,
        setup_time_s: float,
        metrics_time_s: float,
        output_time_s: float,
        simulated_duration_s: float,
    ) -> RunTiming:
        """The timing of a run from its measured parts; the overheads are what is left."""
        overhead_s = wall_time_s - encode_time_s - decode_time_s
        network_s = overhead_s - setup_time_s - metrics_time_s - output_time_s
        return cls(
            wall_time_s=wall_time_s,
            encode_time_s=encode_time_s,
            decode_time_s=decode_time_s,
            simulator_overhead_s=overhead_s,
            simulator_overhead_fraction=overhead_s / wall_time_s,
            setup_time_s=setup_time_s,
            metrics_time_s=metrics_time_s,
            output_time_s=output_time_s,
            network_simulation_time_s=network_s,
            network_simulation_fraction=network_s / wall_time_s,
            simulated_duration_s=simulated_duration_s,
        )


@dataclass(frozen=True)
class RunSummary:
    """What one run reports besides its traces; summary.json is ``to_json()``.

    Means are over the frames with a finite value (NaN when there are none); ``mean_bitrate_kbps``
    is the sent payload rate; ``frames_in_sync`` counts frames after which D = K + 1, and
    ``frame_types`` the frames of each type (I, P, R). ``codec`` is the codec under test
    (DESIGN 4b); ``frames_concealed`` and ``frames_frozen`` count the frames shown partly
    concealed and frozen (frames.csv's ``concealed`` and ``frozen``). For x264/x265,
    ``frames_in_sync`` counts frames after which the decoder's references were clean, and
    ``echoes`` are picture-loss indications. ``damage`` is the run's damage accounting
    (``netsim.damage``: mean PSNR per frame state, recovery, packets per frame, SSIM-dB).
    """

    scenario: Scenario
    scenario_file: str | None
    seed: int
    frames: int
    device: str
    versions: Mapping[str, str | None]
    model: ModelInfo
    mean_psnr_db: float
    mean_ms_ssim: float
    mean_bpp: float
    mean_bitrate_kbps: float
    min_psnr_db: float
    frames_in_sync: int
    frames_all_scales_decoded: int
    frame_types: Mapping[str, int]
    loss: LossSummary
    echoes: EchoSummary
    timing: RunTiming
    codec: str = DEFAULT_CODEC
    frames_concealed: int = 0
    frames_frozen: int = 0
    damage: DamageSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        """The content of summary.json: plain JSON values, NaN and infinities as None."""
        content: dict[str, Any] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Scenario):
                value = value.model_dump(mode="json")
            elif is_dataclass(value):
                value = asdict(value)
            content[field.name] = value
        return _finite(content)

    def to_json(self) -> str:
        """summary.json's text."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"


def summarize(
    scenario: Scenario,
    outcome: SimulationOutcome,
    *,
    seed: int,
    device: str,
    model: ModelInfo,
    timing: RunTiming,
    versions: Mapping[str, str | None] | None = None,
) -> RunSummary:
    """The summary of a run of ``scenario`` that produced ``outcome`` (``versions``: default
    ``package_versions()``)."""
    records = outcome.frames
    packets = outcome.packets
    channel = channel_loss_statistics(packets)
    not_shown = sum(1 for r in packets if r.fate not in (Fate.DELIVERED, Fate.FEC_RECOVERED))
    loss_model = outcome.forward_loss
    return RunSummary(
        scenario=scenario,
        scenario_file=None if scenario.source_path is None else str(scenario.source_path),
        seed=seed,
        frames=len(records),
        device=device,
        versions=package_versions() if versions is None else dict(versions),
        model=model,
        mean_psnr_db=_mean([r.psnr for r in records]),
        mean_ms_ssim=_mean([r.ms_ssim for r in records]),
        mean_bpp=_mean([r.bpp for r in records]),
        mean_bitrate_kbps=_mean([r.bits_total for r in records]) * scenario.video.fps / 1000.0,
        min_psnr_db=min(r.psnr for r in records),
        frames_in_sync=sum(r.first_desynced_scale == IN_SYNC for r in records),
        frames_all_scales_decoded=sum(r.scales_decoded == len(r.bits_per_scale) for r in records),
        frame_types={t.value: sum(r.frame_type is t for r in records) for t in FrameType},
        loss=LossSummary(
            packets_sent=len(packets),
            bytes_sent=sum(r.size_bytes for r in packets),
            packets_not_in_time=not_shown,
            packet_loss_rate=not_shown / len(packets) if packets else math.nan,
            fates=fate_counts(packets),
            loss_model=LossModelSummary(
                kind=scenario.network.forward.loss.kind,
                exposed_packets=channel.packets,
                lost_packets=channel.lost,
                bursts=channel.bursts,
                empirical_loss_rate=channel.loss_rate,
                empirical_mean_burst_packets=channel.mean_burst_packets,
                analytic_loss_rate=loss_model.analytic_loss_rate(),
                analytic_mean_burst_packets=loss_model.analytic_mean_burst_packets(),
            ),
            rejected_packets=outcome.rejected_packets,
        ),
        echoes=_echo_summary(outcome, records),
        timing=timing,
        codec=scenario.codec.kind,
        frames_concealed=sum(r.concealed for r in records),
        frames_frozen=sum(r.frozen for r in records),
        damage=damage_summary(
            states=[r.state for r in records],
            psnr_db=[r.psnr for r in records],
            ms_ssim=[r.ms_ssim for r in records],
            first_desynced_scale=[r.first_desynced_scale for r in records],
            frame_types=[r.frame_type.value for r in records],
            bits_total=[r.bits_total for r in records],
            packets_sent=len(packets),
            num_scales=len(records[0].bits_per_scale) if records else NUM_SCALES,
        ),
    )


def _echo_summary(outcome: SimulationOutcome, records: tuple[FrameRecord, ...]) -> EchoSummary:
    echoes = outcome.echoes
    return EchoSummary(
        sent=echoes.sent,
        lost=echoes.lost,
        delivered=echoes.delivered,
        used=echoes.used,
        stale=echoes.stale,
        frames_echoing=sum(r.echo_sent for r in records),
        resync_frames=sum(r.frame_type is FrameType.R for r in records),
    )


def package_versions() -> dict[str, str | None]:
    """Python's version and those of ``VERSIONED_PACKAGES`` (None: not installed)."""

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        versions[package] = version(package)
    return versions


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become None; mappings and sequences are copied."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def flatten_summary(summary: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested summary.json -> one flat mapping with dotted keys (``loss.packets_sent``); lists
    become JSON strings so that every value fits one table cell."""
    flat: dict[str, Any] = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_summary(value, prefix=f"{name}."))
        elif isinstance(value, list | tuple):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat
