"""Running a scenario end to end with the real codec and writing its results (DESIGN 5).

``run_scenario`` reads as load -> simulate -> write: ``load_run_inputs`` reads the video and
sets up the scenario's codec (its ``netsim.codecs`` registry entry: DHVC loads its model);
``simulate_run`` carries every frame through ``netsim.simulation.simulate`` with the codec's
adapter (DESIGN 4b), timed by ``netsim.codecs.TimedCodec``, while
``netsim.quality.QualityObserver`` measures PSNR and MS-SSIM of each decoded frame;
``write_results`` writes into ``out_dir``:

* ``frames.csv`` and ``packets.csv`` (``netsim.trace``): they depend on the scenario and seed
  only, so two runs give identical bytes; in particular ``decode_time_s`` is the *simulated*
  decode time, never a measured one;
* ``summary.json`` (``netsim.summary.RunSummary``): scenario, seed, versions, mean quality,
  loss statistics next to the loss model's analytic values, echo counts and the measured
  wall-clock times: setup, encoding, decoding, metrics, output and the network simulation
  (``netsim.summary.RunTiming``);
* ``video.mp4`` (original | decoded, side by side) with ``save_video``.

Outputs appear atomically: they are written into a temporary folder next to ``out_dir`` and
swapped into place at the end (``codec.io.atomic.atomic_folder``); an interrupted run leaves
``out_dir`` as it was, and the next run removes what it left beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec.io.atomic import TargetError, atomic_folder, check_writable_target, naming_target
from codec.io.video import VideoError, read_frames, write_side_by_side_mp4
from codec.model.device import DeviceError, resolve_device
from codec.threads import intra_op_threads
from netsim.codecs.base import LoadedCodec, ShownPicture, TimedCodec
from netsim.codecs.registry import codec_entry
from netsim.quality import QualityObserver
from netsim.scenario import Scenario, ScenarioError
from netsim.simulation import SimulationOutcome, simulate
from netsim.summary import ModelInfo, RunSummary, RunTiming, summarize
from netsim.trace import FrameTrace, write_frames_csv, write_packets_csv

RESULT_FILES = ("frames.csv", "packets.csv", "summary.json", "video.mp4")
"""Every file a run may write; an existing output folder may hold nothing else."""


class RunError(RuntimeError):
    """A run that cannot start or finish for a reason outside the scenario file (one line)."""


def default_output_folder(
    scenario: Scenario,
    *,
    frames: int | None = None,
    seed: int | None = None,
    root: Path = Path("results"),
) -> Path:
    """Where ``netsim run`` writes without ``--out``: ``root/NAME`` for the scenario's own seed
    and frame count, else a name that says what differs: ``NAME-seedS``, ``NAME-fF`` or
    ``NAME-seedS-fF``, so that a run with another seed or length never replaces the first."""
    name = scenario.name
    if seed is not None and seed != scenario.seed:
        name += f"-seed{seed}"
    if frames is not None and frames != scenario.video.frames:
        name += f"-f{frames}"
    return root / name


@dataclass(frozen=True)
class RunInputs:
    """What a run starts from: the scenario with the run's frame count and seed, the video's
    first ``frame_count`` frames (N x H x W x 3 uint8), the codec set up for the run
    (``netsim.codecs.LoadedCodec``), the device it runs on, and the wall time spent loading
    them (s)."""

    scenario: Scenario
    frame_count: int
    seed: int
    device: str
    originals: np.ndarray
    codec: LoadedCodec
    setup_time_s: float

    @property
    def model_info(self) -> ModelInfo:
        """The model as summary.json describes it."""
        return self.codec.model_info


@dataclass(frozen=True)
class RunOutcome:
    """What simulating a run produced: the network's ``SimulationOutcome`` (with a quality for
    every frame), the wall time spent encoding, decoding and measuring quality (s), and the
    decoded pictures (N x H x W x 3 uint8) when they were kept for video.mp4."""

    simulation: SimulationOutcome
    encode_time_s: float
    decode_time_s: float
    metrics_time_s: float
    pictures: np.ndarray | None


def run_scenario(
    scenario: Scenario,
    out_dir: Path,
    *,
    frames: int | None = None,
    seed: int | None = None,
    device: str = "cpu",
    save_video: bool = False,
    on_frame: Callable[[int, int], None] | None = None,
) -> RunSummary:
    """Run ``scenario`` and write its results to ``out_dir``; returns the run's summary (what
    summary.json holds).

    ``frames`` and ``seed`` override the scenario's. ``on_frame(done, total)`` is called after
    each decoded frame (for progress bars). Raises ``ScenarioError`` for problems the scenario
    causes (video, checkpoint, lambda) and ``RunError`` for others (device, output folder).
    """
    started_s = time.perf_counter()
    out_dir = Path(out_dir)
    _check_output_folder(out_dir)
    inputs = load_run_inputs(scenario, frames=frames, seed=seed, device=device)
    outcome = simulate_run(inputs, keep_pictures=save_video, on_frame=on_frame)
    return write_results(out_dir, inputs, outcome, started_s=started_s)


def load_run_inputs(
    scenario: Scenario, *, frames: int | None = None, seed: int | None = None, device: str = "cpu"
) -> RunInputs:
    """Read the video and set up the codec of ``scenario`` (``frames`` and ``seed`` override
    the scenario's; ``device`` may be ``auto``)."""
    start = time.perf_counter()
    frame_count = scenario.video.frames if frames is None else frames
    if frame_count < 1:
        raise RunError(f"frames must be >= 1, got {frame_count}")
    try:
        device = resolve_device(device)
    except DeviceError as err:
        raise RunError(str(err)) from None
    originals = _read_video(scenario, frame_count)
    codec = codec_entry(scenario.codec.kind).load(scenario, originals, device)
    return RunInputs(
        scenario=scenario,
        frame_count=frame_count,
        seed=scenario.seed if seed is None else seed,
        device=codec.device,
        originals=originals,
        codec=codec,
        setup_time_s=time.perf_counter() - start,
    )


def simulate_run(
    inputs: RunInputs,
    *,
    keep_pictures: bool = False,
    on_frame: Callable[[int, int], None] | None = None,
) -> RunOutcome:
    """Carry every frame through the scenario's network with the codec, measuring the quality
    of each decoded frame; ``on_frame(done, total)`` after each one."""
    codec = TimedCodec(inputs.codec.adapter())
    frames = FrameTrace(measures_quality=True)
    quality = QualityObserver(
        inputs.originals, frames, keep_pictures=keep_pictures, concurrent=True
    )

    def frame_done(shown: ShownPicture) -> None:
        quality(shown)
        if on_frame is not None:
            on_frame(shown.frame_index + 1, inputs.frame_count)

    with intra_op_threads(1):  # coding runs on one anyway; the quality thread needs it
        simulation = simulate(
            inputs.scenario,
            codec=codec,
            frame_count=inputs.frame_count,
            seed=inputs.seed,
            frames=frames,
            on_frame=frame_done,
        )
    return RunOutcome(
        simulation=simulation,
        encode_time_s=codec.encode_time_s,
        decode_time_s=codec.decode_time_s,
        metrics_time_s=quality.wall_time_s,
        pictures=quality.pictures if keep_pictures else None,
    )


def write_results(
    out_dir: Path, inputs: RunInputs, outcome: RunOutcome, *, started_s: float
) -> RunSummary:
    """Write frames.csv, packets.csv, video.mp4 (when ``outcome`` kept the pictures) and
    summary.json into ``out_dir`` atomically; returns the summary. ``started_s`` is the
    ``time.perf_counter()`` at which the run started (for its wall time)."""
    scenario = inputs.scenario
    simulation = outcome.simulation
    written: list[RunSummary] = []

    def write(folder: Path) -> None:
        output_start = time.perf_counter()
        with naming_target(out_dir / "frames.csv"):
            write_frames_csv(folder / "frames.csv", simulation.frames)
        with naming_target(out_dir / "packets.csv"):
            write_packets_csv(folder / "packets.csv", simulation.packets)
        if outcome.pictures is not None:
            with naming_target(out_dir / "video.mp4"):
                write_side_by_side_mp4(
                    folder / "video.mp4", inputs.originals, outcome.pictures, scenario.video.fps
                )
        now = time.perf_counter()
        timing = RunTiming.of(
            wall_time_s=now - started_s,
            encode_time_s=outcome.encode_time_s,
            decode_time_s=outcome.decode_time_s,
            setup_time_s=inputs.setup_time_s,
            metrics_time_s=outcome.metrics_time_s,
            output_time_s=now - output_start,
            simulated_duration_s=simulation.end_time_s,
        )
        summary = summarize(
            scenario,
            simulation,
            seed=inputs.seed,
            device=inputs.device,
            model=inputs.model_info,
            timing=timing,
        )
        with naming_target(out_dir / "summary.json"):
            (folder / "summary.json").write_text(summary.to_json(), encoding="utf-8")
        written.append(summary)

    try:
        with naming_target(out_dir, folder=True):
            _write_atomically(out_dir, write)
    except TargetError as err:  # earlier results in out_dir are kept as they were
        raise RunError(str(err)) from None
    return written[0]


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
    (``codec.io.atomic.atomic_folder``: ``out_dir`` always holds the old or the new results)."""
    atomic_folder(out_dir, write)
