"""Running a scenario end to end with the real codec and writing its results (DESIGN 5).

``run_scenario`` reads the video, loads the model, carries every frame through
``netsim.simulation.simulate`` with ``codec.Encoder`` and ``codec.Decoder``, measures PSNR and
MS-SSIM of each decoded frame, and writes into ``out_dir``:

* ``frames.csv`` and ``packets.csv`` (``netsim.trace``): they depend on the scenario and seed
  only, so two runs give identical bytes; in particular ``decode_time_s`` is the *simulated*
  decode time, never a measured one;
* ``summary.json``: scenario, seed, versions, mean quality, loss statistics next to the loss
  model's analytic values, echo counts and the measured wall-clock times, among them the
  simulator overhead (the run's wall time minus encoding and decoding);
* ``video.mp4`` (original | decoded, side by side) with ``save_video``.

Outputs appear atomically: they are written into a temporary folder next to ``out_dir`` and
swapped into place at the end (``codec.fileio.atomic_folder``); an interrupted run leaves
``out_dir`` as it was, and the next run removes what it left beside it.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codec import DHVC, CheckpointError, Decoder, Encoder, load_model
from codec.config import check_lambda
from codec.fileio import TargetError, atomic_folder, check_writable_target
from codec.metrics import frame_quality
from codec.types import IN_SYNC, DecodedFrame, EncodedFrame, ReceivedFrame
from codec.video import VideoError, read_frames, to_uint8, write_side_by_side_mp4
from netsim.receiver import ReceivedFrameReport
from netsim.scenario import Scenario, ScenarioError
from netsim.simulation import SimulationResult, simulate
from netsim.stats import channel_loss_statistics, fate_counts
from netsim.trace import Fate, FrameRecord, write_frames_csv, write_packets_csv

RESULT_FILES = ("frames.csv", "packets.csv", "summary.json", "video.mp4")
"""Every file a run may write; an existing output folder may hold nothing else."""


class RunError(RuntimeError):
    """A run that cannot start or finish for a reason outside the scenario file (one line)."""


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` must be available."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RunError("device cuda requested but CUDA is not available")
    if device not in ("cpu", "cuda"):
        raise RunError(f"unknown device {device!r} (auto, cpu or cuda)")
    return device


class _TimedEncoder:
    """``FrameEncoder`` over ``codec.Encoder`` and the video's frames; adds up wall time."""

    def __init__(self, encoder: Encoder, frames: np.ndarray, lam: float) -> None:
        self._encoder = encoder
        self._frames = frames
        self._lam = lam
        self.wall_time_s = 0.0

    def encode(self, frame_index: int, resync_from: int | None) -> EncodedFrame:
        start = time.perf_counter()
        encoded = self._encoder.encode(
            self._frames[frame_index], lam=self._lam, resync_from=resync_from
        )
        self.wall_time_s += time.perf_counter() - start
        return encoded


class _TimedDecoder:
    """``FrameDecoder`` over ``codec.Decoder``; adds up wall time."""

    def __init__(self, decoder: Decoder) -> None:
        self._decoder = decoder
        self.wall_time_s = 0.0

    def decode(self, received: ReceivedFrame) -> DecodedFrame:
        start = time.perf_counter()
        decoded = self._decoder.decode(received)
        self.wall_time_s += time.perf_counter() - start
        return decoded


@dataclass(frozen=True)
class _ShownFrame:
    """The receiver's side of one frames.csv row."""

    scales_received: int
    scales_decoded: int
    first_desynced_scale: int
    echo_sent: bool
    psnr: float
    ms_ssim: float
    decode_time_s: float


def run_scenario(
    scenario: Scenario,
    out_dir: Path,
    *,
    frames: int | None = None,
    seed: int | None = None,
    device: str = "cpu",
    save_video: bool = False,
    on_frame: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run ``scenario`` and write its results to ``out_dir``; returns the summary dict (the
    content of summary.json: NaN and infinities are None).

    ``frames`` and ``seed`` override the scenario's. ``on_frame(done, total)`` is called after
    each decoded frame (for progress bars). Raises ``ScenarioError`` for problems the scenario
    causes (video, checkpoint, lambda) and ``RunError`` for others (device, output folder).
    """
    wall_start = time.perf_counter()
    out_dir = Path(out_dir)
    _check_output_folder(out_dir)
    frame_count = scenario.video.frames if frames is None else frames
    if frame_count < 1:
        raise RunError(f"frames must be >= 1, got {frame_count}")
    seed = scenario.seed if seed is None else seed
    device = resolve_device(device)
    originals = _read_video(scenario, frame_count)
    model = _load_model(scenario, device)
    height, width = originals.shape[1:3]
    encoder = _TimedEncoder(
        Encoder(model, gop=scenario.codec.gop_frames, device=device), originals, scenario.codec.lam
    )
    decoder = _TimedDecoder(Decoder(model, height=height, width=width, device=device))
    setup_time_s = time.perf_counter() - wall_start
    shown: list[_ShownFrame] = []
    decoded_frames: list[np.ndarray] = []
    metrics_time_s = 0.0

    def frame_done(report: ReceivedFrameReport) -> None:
        nonlocal metrics_time_s
        start = time.perf_counter()
        x_hat = report.decoded.x_hat
        (psnr,), (ms_ssim,) = frame_quality(originals[report.frame_index][None], x_hat[None])
        shown.append(
            _ShownFrame(
                scales_received=len(report.received.scales),
                scales_decoded=report.decoded.scales_decoded,
                first_desynced_scale=report.decoded.first_desynced_scale,
                echo_sent=report.echo_scale is not None,
                psnr=float(psnr),
                ms_ssim=float(ms_ssim),
                decode_time_s=report.decode_time_s,
            )
        )
        if save_video:
            decoded_frames.append(to_uint8(x_hat))
        metrics_time_s += time.perf_counter() - start
        if on_frame is not None:
            on_frame(report.frame_index + 1, frame_count)

    result = simulate(
        scenario,
        encoder=encoder,
        decoder=decoder,
        frame_count=frame_count,
        seed=seed,
        on_frame=frame_done,
    )
    records = _frame_records(result, shown, width * height)
    summary: dict[str, Any] = {}

    def write(folder: Path) -> None:
        output_start = time.perf_counter()
        write_frames_csv(folder / "frames.csv", records)
        write_packets_csv(folder / "packets.csv", result.packets)
        if save_video:
            write_side_by_side_mp4(
                folder / "video.mp4", originals, np.stack(decoded_frames), scenario.video.fps
            )
        now = time.perf_counter()
        timing = _timing(
            wall_time_s=now - wall_start,
            encode_time_s=encoder.wall_time_s,
            decode_time_s=decoder.wall_time_s,
            setup_time_s=setup_time_s,
            metrics_time_s=metrics_time_s,
            output_time_s=now - output_start,
        )
        timing["simulated_duration_s"] = result.end_time_s
        summary.update(
            _finite(_summary(scenario, seed, frame_count, device, model, records, result, timing))
        )
        (folder / "summary.json").write_text(
            json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8"
        )

    _write_atomically(out_dir, write)
    return summary


def _timing(
    *,
    wall_time_s: float,
    encode_time_s: float,
    decode_time_s: float,
    setup_time_s: float,
    metrics_time_s: float,
    output_time_s: float,
) -> dict[str, float]:
    """Measured wall-clock times of a run (s) and the simulator's overhead.

    ``simulator_overhead_s`` is everything but encoding and decoding: the run's wall time minus
    the time spent inside ``Encoder.encode`` and ``Decoder.decode``. It breaks down into
    ``setup_time_s`` (reading the video, loading the model), ``metrics_time_s`` (PSNR and
    MS-SSIM of every frame), ``output_time_s`` (writing the result files) and
    ``network_simulation_time_s``, the rest: SimPy, packetization, reassembly, loss models,
    queues and bookkeeping.
    """
    overhead_s = wall_time_s - encode_time_s - decode_time_s
    network_s = overhead_s - setup_time_s - metrics_time_s - output_time_s
    return {
        "wall_time_s": wall_time_s,
        "encode_time_s": encode_time_s,
        "decode_time_s": decode_time_s,
        "simulator_overhead_s": overhead_s,
        "simulator_overhead_fraction": overhead_s / wall_time_s,
        "setup_time_s": setup_time_s,
        "metrics_time_s": metrics_time_s,
        "output_time_s": output_time_s,
        "network_simulation_time_s": network_s,
        "network_simulation_fraction": network_s / wall_time_s,
    }


def _read_video(scenario: Scenario, frame_count: int) -> np.ndarray:
    video = scenario.video
    try:
        frames = read_frames(
            video.source,
            max_frames=frame_count,
            size=(video.width_px, video.height_px),
            start_frame=video.start_frame,
        )
    except VideoError as err:
        raise ScenarioError(scenario.source_path, "video.source", str(err)) from None
    if len(frames) < frame_count:
        raise ScenarioError(
            scenario.source_path,
            "video.frames",
            f"{frame_count} frames requested, the video has {len(frames)} "
            f"from frame {video.start_frame}",
        )
    return frames


def _load_model(scenario: Scenario, device: str) -> DHVC:
    spec = scenario.codec
    try:
        model = load_model(checkpoint=spec.checkpoint, preset=spec.preset, device=device)
    except (CheckpointError, ValueError) as err:
        raise ScenarioError(scenario.source_path, "codec.checkpoint", str(err)) from None
    try:
        check_lambda(spec.lam, model.config)
    except ValueError as err:
        raise ScenarioError(scenario.source_path, "codec.lam", str(err)) from None
    return model


def _frame_records(
    result: SimulationResult, shown: list[_ShownFrame], pixels: int
) -> list[FrameRecord]:
    records = []
    for sent, rx in zip(result.sent_frames, shown, strict=True):
        records.append(
            FrameRecord(
                frame=sent.frame_index,
                frame_type=sent.frame_type,
                resync_from=sent.resync_from,
                lam=sent.lam,
                scales_received=rx.scales_received,
                scales_decoded=rx.scales_decoded,
                first_desynced_scale=rx.first_desynced_scale,
                echo_sent=rx.echo_sent,
                bits_per_scale=sent.bits_per_scale,
                bpp=sum(sent.bits_per_scale) / pixels,
                psnr=rx.psnr,
                ms_ssim=rx.ms_ssim,
                capture_time_s=sent.capture_time_s,
                decode_time_s=rx.decode_time_s,
            )
        )
    return records


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def _summary(
    scenario: Scenario,
    seed: int,
    frame_count: int,
    device: str,
    model: DHVC,
    records: list[FrameRecord],
    result: SimulationResult,
    timing: dict[str, float],
) -> dict[str, Any]:
    packets = result.packets
    channel = channel_loss_statistics(packets)
    fates = fate_counts(packets)
    not_shown = sum(1 for r in packets if r.fate not in (Fate.DELIVERED, Fate.FEC_RECOVERED))
    fps = scenario.video.fps
    loss_model = result.forward_loss
    return {
        "scenario": scenario.model_dump(mode="json"),
        "scenario_file": None if scenario.source_path is None else str(scenario.source_path),
        "seed": seed,
        "frames": frame_count,
        "device": device,
        "versions": _versions(),
        "model": {
            "id": getattr(model, "model_id", None),
            "preset": model.config.name,
            "lambda_min": model.config.lambda_min,
            "lambda_max": model.config.lambda_max,
        },
        "mean_psnr_db": _mean([r.psnr for r in records]),
        "mean_ms_ssim": _mean([r.ms_ssim for r in records]),
        "mean_bpp": _mean([r.bpp for r in records]),
        "mean_bitrate_kbps": _mean([r.bits_total for r in records]) * fps / 1000.0,
        "min_psnr_db": min(r.psnr for r in records),
        "frames_in_sync": sum(r.first_desynced_scale == IN_SYNC for r in records),
        "frames_all_scales_decoded": sum(
            r.scales_decoded == len(r.bits_per_scale) for r in records
        ),
        "frame_types": {t: sum(r.frame_type.value == t for r in records) for t in "IPR"},
        "loss": {
            "packets_sent": len(packets),
            "bytes_sent": sum(r.size_bytes for r in packets),
            "packets_not_in_time": not_shown,
            "packet_loss_rate": not_shown / len(packets) if packets else math.nan,
            "fates": fates,
            "loss_model": {
                "kind": scenario.network.forward.loss.kind,
                "exposed_packets": channel.packets,
                "lost_packets": channel.lost,
                "bursts": channel.bursts,
                "empirical_loss_rate": channel.loss_rate,
                "empirical_mean_burst_packets": channel.mean_burst_packets,
                "analytic_loss_rate": loss_model.analytic_loss_rate(),
                "analytic_mean_burst_packets": loss_model.analytic_mean_burst_packets(),
            },
            "rejected_packets": result.rejected_packets,
        },
        "echoes": {
            "sent": result.echoes_sent,
            "lost": result.echoes_lost,
            "delivered": result.echoes_delivered,
            "used": result.echoes_used,
            "stale": result.echoes_stale,
            "frames_echoing": sum(r.echo_sent for r in records),
            "resync_frames": sum(r.frame_type.value == "R" for r in records),
        },
        "timing": timing,
    }


def _versions() -> dict[str, str | None]:
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in ("dhvc-testbed", "torch", "numpy", "simpy", "zfec", "pydantic", "av"):
        versions[package] = version(package)
    return versions


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _check_output_folder(out_dir: Path) -> None:
    """Before the run: refuse a folder that cannot be written (``check_writable_target``) or
    that holds anything but earlier results (it will be replaced whole)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise RunError(f"{out_dir}: output path exists and is not a folder")
    try:
        check_writable_target(out_dir)
    except TargetError as err:
        raise RunError(str(err)) from None
    if out_dir.is_dir():
        others = sorted(p.name for p in out_dir.iterdir() if p.name not in RESULT_FILES)
        if others:
            raise RunError(
                f"{out_dir}: output folder holds other files ({', '.join(others[:3])}); "
                "choose an empty or new folder"
            )


def _write_atomically(out_dir: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(staging)`` on a fresh folder beside ``out_dir``, then swap it into place
    (``codec.fileio.atomic_folder``: ``out_dir`` always holds the old or the new results)."""
    atomic_folder(out_dir, write)
