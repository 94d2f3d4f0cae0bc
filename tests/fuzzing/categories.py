"""The fuzz categories: each builds its cases from the fixtures and mutators, runs them under
the guard, and counts what became of them (``CategoryResult``).

* ``dhvc``: mutated .dhvc streams through ``codec.stream.files.decode_file`` (or only
  ``open_stream``);
* ``scenarios``: mutated scenario files through ``netsim.scenario.load_scenario``;
* ``runs``: a sample of the mutated scenarios that validate, run for two frames;
* ``packets``: damaged DHVC packet sets through ``Packet.from_bytes`` and a ``Receiver``
  driving the DHVC adapter with the real tiny decoder;
* ``slices``: damaged x264/x265 slice packet sets through ``Packet.from_bytes`` and a
  ``Receiver`` driving the x264/x265 adapter (FFmpeg's decoder);
* ``sweeps``: mutated sweep files through ``netsim.sweep.load_sweep`` and ``check_sweep``;
* ``loaders``: damaged files and pickle payloads through every loader of a user's file:
  checkpoints (``codec.model.checkpoint.load_model``), training states
  (``codec.train.trainer.load_train_state``), packs (``codec.pack.load.load_pack``) and run
  folders (``analysis.io.load_run``); a loader that runs code from a file fails the case.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import simpy
import yaml

from analysis.io import TraceError, load_run
from codec.model.checkpoint import CheckpointError, load_model
from codec.pack.load import load_pack
from codec.stream.bitstream import open_stream
from codec.stream.coder import Decoder
from codec.stream.files import decode_file
from codec.train.trainer import load_train_state
from codec.types import NUM_SCALES, DecodedFrame, FrameType, ReceivedFrame, ScaleOutcome
from netsim.codecs.base import CodecAdapter, ShownPicture
from netsim.codecs.dhvc import DhvcAdapter
from netsim.codecs.h26x import H26xAdapter, H26xFrameDecoder
from netsim.codecs.slices import ReceivedSlices
from netsim.feedback import FeedbackLink
from netsim.loss import NoLoss
from netsim.packet import Packet, PacketFormatError
from netsim.receiver import Receiver
from netsim.runner import RunError, run_scenario
from netsim.scenario import Scenario, ScenarioError, load_scenario
from netsim.sweep import SweepError, check_sweep, load_sweep
from netsim.trace import FrameTrace, PacketTrace
from tests.fuzzing.documents import (
    RUN_PATH_PREFIXES,
    damage_yaml_text,
    field_paths,
    mutate_data,
    mutate_grid,
)
from tests.fuzzing.fixtures import (
    FRAME_SIZE,
    LAMBDA,
    SCENARIO_DIR,
    STREAM_FRAMES,
    SWEEP_DIR,
    Fixtures,
    cached_random_models,
    run_ready,
)
from tests.fuzzing.guard import Guard
from tests.fuzzing.mutators import DhvcMutator, FileMutator, PacketMutator, SlicePacketMutator
from tests.fuzzing.outcomes import CategoryResult, case_rng, one_line, run_case

CATEGORIES = ("dhvc", "scenarios", "runs", "packets", "slices", "sweeps", "loaders")
DEFAULT_COUNTS = {
    "dhvc": 7_000,
    "scenarios": 1_500,
    "runs": 20,
    "packets": 7_000,
    "slices": 5_000,
    "sweeps": 600,
    "loaders": 1_500,
}
"""Cases per category of ``run_all`` and of the benchmark's command line."""


# ----------------------------------------------------------------------------- .dhvc streams


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
    mutator = DhvcMutator(fixtures.stream, fixtures.foreign_stream)
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
        what, touched = mutate_data(rng, data)
        description = f"{source.name}: {what}"
        raw = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()
    path = workdir / "scenarios" / f"case{index}.yaml"
    return description, raw, touched, path


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
                run_scenario(run_ready(scenario), out, frames=2, device="cpu")
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


def receive(packets: list[Packet], codec: CodecAdapter) -> None:
    """Deliver ``packets`` at time 0 to a ``Receiver`` driving ``codec`` and run it to the
    end (every frame decoded at its playout deadline)."""
    env = simpy.Environment()
    receiver = Receiver(
        env,
        codec=codec,
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


def receive_dhvc(packets: list[Packet], decoder: Decoder) -> int:
    """``receive`` through the DHVC adapter around ``decoder``; returns the real decodes."""
    quick = _QuickDecoder(decoder)
    receive(packets, DhvcAdapter(encoder=None, decoder=quick))  # type: ignore[arg-type]
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
    mutator = PacketMutator(fixtures.packet_sets)
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
                    if not one_line(exc):
                        raise AssertionError(f"multi-line PacketFormatError: {exc!r}") from exc
                    counters["datagrams_refused"] += 1
            counters["datagrams_parsed"] += len(parsed)
            counters["frames_decoded"] += receive_dhvc(parsed, fixtures.fresh_decoder())
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


# ----------------------------------------------------------------------------- slice packets


class _CountingDecoder:
    """An x264/x265 frame decoder that counts the pictures it decoded and froze."""

    def __init__(self, decoder: H26xFrameDecoder, counters: Counter) -> None:
        self.decoder = decoder
        self.counters = counters

    def decode(self, received: ReceivedSlices) -> ShownPicture:
        shown = self.decoder.decode(received)
        self.counters["pictures_frozen" if shown.frozen else "pictures_decoded"] += 1
        return shown


def fuzz_slices(
    fixtures: Fixtures,
    guard: Guard,
    count: int,
    seed: int,
    timeout_s: float,
    save: Path | None = None,
    only: int | None = None,
) -> CategoryResult:
    """Damaged x264/x265 slice packet sets, parsed and delivered to a ``Receiver`` driving
    the x264/x265 adapter with a fresh FFmpeg decoder per case."""
    result = CategoryResult("slices")
    counters = result.counters
    mutators = {name: SlicePacketMutator(sets) for name, sets in fixtures.slice_sets.items()}
    start, cpu = time.perf_counter(), time.process_time()
    indexes = range(count) if only is None else [only]
    for index in indexes:
        rng = case_rng(seed, "slices", index)
        codec_name = sorted(mutators)[index % len(mutators)]
        description, datagrams, damaged = mutators[codec_name].mutate(rng)
        description = f"{codec_name} {description}"

        def run(datagrams: list[bytes] = datagrams, codec_name: str = codec_name) -> str:
            parsed = []
            for data in datagrams:
                try:
                    parsed.append(Packet.from_bytes(data))
                except PacketFormatError as exc:
                    if not one_line(exc):
                        raise AssertionError(f"multi-line PacketFormatError: {exc!r}") from exc
                    counters["datagrams_refused"] += 1
            counters["datagrams_parsed"] += len(parsed)
            decoder = _CountingDecoder(
                H26xFrameDecoder(codec_name, width=FRAME_SIZE, height=FRAME_SIZE), counters
            )
            receive(parsed, H26xAdapter(encoder=None, decoder=decoder))  # type: ignore[arg-type]
            return "delivered"

        failure = run_case(result, guard, index, description, run, timeout_s, ())
        counters["datagrams_damaged"] += damaged
        if failure is not None and save is not None:
            (save / f"slices-{index}.json").write_text(
                json.dumps([d.hex() for d in datagrams], indent=1)
            )
    result.wall_s = time.perf_counter() - start
    result.cpu_s = time.process_time() - cpu
    c = result.counters
    result.notes.append(
        f"x264 and x265 alike, 4 frames (I P I P, a forced I frame) at MTU 200 and 1200, with "
        f"and without FEC; {c['datagrams_damaged']} datagrams damaged, "
        f"{c['datagrams_parsed']} parsed, {c['datagrams_refused']} refused; "
        f"{c['pictures_decoded']} pictures decoded by FFmpeg through Receiver, "
        f"{c['pictures_frozen']} frozen"
    )
    return result


# ----------------------------------------------------------------------------- sweep files


def fuzz_sweeps(
    workdir: Path,
    guard: Guard,
    count: int,
    seed: int,
    timeout_s: float,
    save: Path | None = None,
    only: int | None = None,
) -> CategoryResult:
    """Mutated ``sweeps/*.yaml`` (base made absolute, ``out_dir`` inside ``workdir``) through
    ``load_sweep`` and ``check_sweep``: each is refused with one ``SweepError`` line or
    accepted with its runs checked."""
    result = CategoryResult("sweeps")
    folder = workdir / "sweeps"
    folder.mkdir(exist_ok=True)
    sources = []
    for path in sorted(SWEEP_DIR.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        base = (path.parent / data["base"]).resolve()
        data.update(base=str(base), out_dir="out")
        fields = field_paths(yaml.safe_load(base.read_text(encoding="utf-8")))
        sources.append((path.name, data, fields))
    start, cpu = time.perf_counter(), time.process_time()
    indexes = range(count) if only is None else [only]
    for index in indexes:
        rng = case_rng(seed, "sweeps", index)
        name, original, fields = sources[index % len(sources)]
        text = yaml.safe_dump(original, sort_keys=False)
        if rng.random() < 0.15:
            what, raw = damage_yaml_text(rng, text)
            description = f"{name}: text {what}"
        else:
            data = json.loads(json.dumps(original))
            if rng.random() < 0.4:
                what = mutate_grid(rng, data, fields)
            else:
                what, _ = mutate_data(rng, data)
            description = f"{name}: {what}"
            raw = yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()
        path = folder / f"case{index}.yaml"

        def load(path: Path = path, raw: bytes = raw) -> str:
            path.write_bytes(raw)
            try:
                tasks = check_sweep(load_sweep(path))
            finally:
                path.unlink(missing_ok=True)
            result.counters["runs_checked"] += len(tasks)
            return "accepted"

        failure = run_case(result, guard, index, description, load, timeout_s, (SweepError,))
        if failure is not None and save is not None:
            (save / f"sweeps-{index}.yaml").write_bytes(raw)
    if any(folder.glob("**/*.csv")) or (folder / "out").exists():
        result.notes.append("a checked sweep wrote into its out_dir")
        result.failed += 1
    result.wall_s = time.perf_counter() - start
    result.cpu_s = time.process_time() - cpu
    result.notes.append(
        f"{', '.join(s[0] for s in sources)} mutated; "
        f"{result.counters['runs_checked']} runs of accepted sweeps checked (scenario built)"
    )
    return result


# ----------------------------------------------------------------------------- loaders


def _load_checkpoint(folder: Path) -> str:
    load_model(folder / "file.pt", device="cpu")
    return "loaded"


def _load_train_state(folder: Path) -> str:
    load_train_state(folder / "file.pt")
    return "loaded"


def _load_pack(folder: Path) -> str:
    load_pack(folder, "train")
    return "loaded"


def _load_run(folder: Path) -> str:
    load_run(folder)
    return "loaded"


LOADERS: dict[str, tuple[Callable[[Path], str], tuple[type[BaseException], ...]]] = {
    "checkpoint": (_load_checkpoint, (CheckpointError,)),
    "train_state": (_load_train_state, (ValueError,)),
    "pack": (_load_pack, (ValueError, FileNotFoundError)),
    "run": (_load_run, (TraceError, ValueError)),
}
"""Loader -> (read the file(s) in a folder, the errors its interface promises). A pack's
missing file is its documented ``FileNotFoundError``."""


def _loader_files(fixtures: Fixtures, loader: str) -> dict[str, bytes]:
    if loader == "checkpoint":
        return {"file.pt": fixtures.checkpoint}
    if loader == "train_state":
        return {"file.pt": fixtures.train_state}
    if loader == "pack":
        return dict(fixtures.pack_files)
    return dict(fixtures.run_files)


def _json_mutation(rng: random.Random, raw: bytes) -> tuple[str, bytes]:
    data = json.loads(raw)
    what, _ = mutate_data(rng, data)
    try:
        return what, json.dumps(data, indent=1, allow_nan=True).encode()
    except (TypeError, ValueError):
        return what + " (not JSON: kept as repr)", repr(data).encode()


def loader_case(
    fixtures: Fixtures, mutator: FileMutator, rng: random.Random, index: int
) -> tuple[str, str, dict[str, bytes]]:
    """(loader, description, files): one file of the loader's set damaged, replaced by a
    pickle payload, or (JSON files) its document mutated."""
    loader = sorted(LOADERS)[index % len(LOADERS)]
    files = _loader_files(fixtures, loader)
    name = rng.choice(sorted(files))
    roll = rng.random()
    if roll < 0.2:
        what, payload = rng.choice(sorted(fixtures.pickle_payloads().items()))
        files[name] = payload
        description = f"{name}: {what}"
    elif roll < 0.45 and name.endswith(".json"):
        what, files[name] = _json_mutation(rng, files[name])
        description = f"{name}: {what}"
    else:
        what, files[name] = mutator.mutate(rng, files[name])
        description = f"{name}: {what}"
    return loader, description, files


def fuzz_loaders(
    fixtures: Fixtures,
    guard: Guard,
    count: int,
    seed: int,
    timeout_s: float,
    save: Path | None = None,
    only: int | None = None,
) -> CategoryResult:
    """Damaged and hostile files through each loader of a user's file; a case fails when the
    pickle payload's marker file appears (code ran), besides the usual failures."""
    result = CategoryResult("loaders")
    mutator = FileMutator()
    start, cpu = time.perf_counter(), time.process_time()
    indexes = range(count) if only is None else [only]
    for index in indexes:
        rng = case_rng(seed, "loaders", index)
        loader, description, files = loader_case(fixtures, mutator, rng, index)
        read, expected = LOADERS[loader]
        description = f"{loader} {description}"

        def run(
            loader: str = loader,
            files: dict[str, bytes] = files,
            read: Callable[[Path], str] = read,
        ) -> str:
            with tempfile.TemporaryDirectory(dir=fixtures.workdir) as tmp:
                folder = Path(tmp)
                for name, data in files.items():
                    (folder / name).parent.mkdir(parents=True, exist_ok=True)
                    (folder / name).write_bytes(data)
                try:
                    with warnings.catch_warnings():  # torch's note on pickle protocols
                        warnings.simplefilter("ignore")
                        label = read(folder)
                finally:
                    if fixtures.marker.exists():
                        fixtures.marker.unlink()
                        raise AssertionError(f"the {loader} loader ran code from a pickle")
            return f"{loader}_{label}"

        failure = run_case(result, guard, index, description, run, timeout_s, expected)
        result.counters[f"{loader}_tried"] += 1
        if failure is not None and save is not None:
            for name, data in files.items():
                target = save / f"loaders-{index}" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
    result.wall_s = time.perf_counter() - start
    result.cpu_s = time.process_time() - cpu
    result.notes.append(
        "checkpoint (load_model), training state (load_train_state), pack (load_pack: "
        "manifest.json and a photo), run folder (load_run: frames.csv, packets.csv, "
        "summary.json); a fifth of the cases are pickle payloads"
    )
    return result


# ----------------------------------------------------------------------------- driver


def run_all(
    *,
    dhvc: int = DEFAULT_COUNTS["dhvc"],
    scenarios: int = DEFAULT_COUNTS["scenarios"],
    packets: int = DEFAULT_COUNTS["packets"],
    runs: int = DEFAULT_COUNTS["runs"],
    slices: int = DEFAULT_COUNTS["slices"],
    sweeps: int = DEFAULT_COUNTS["sweeps"],
    loaders: int = DEFAULT_COUNTS["loaders"],
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

    def cases(n: int) -> int:
        return n if only is None else 1

    with tempfile.TemporaryDirectory(prefix="dhvc-fuzz-") as tmp:
        workdir = Path(tmp)
        fixtures = Fixtures(workdir)
        if "dhvc" in want and dhvc > 0:
            say(f"dhvc: {cases(dhvc)} cases")
            results["dhvc"] = fuzz_dhvc(
                fixtures, guard, dhvc, seed, timeout_s, decode_fraction, save, only
            )
        if want & {"scenarios", "runs"} and scenarios > 0:
            say(f"scenarios: {cases(scenarios)} cases, then {runs} runs")
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
            say(f"packets: {cases(packets)} cases")
            results["packets"] = fuzz_packets(fixtures, guard, packets, seed, timeout_s, save, only)
        if "slices" in want and slices > 0:
            say(f"slices: {cases(slices)} cases")
            results["slices"] = fuzz_slices(fixtures, guard, slices, seed, timeout_s, save, only)
        if "sweeps" in want and sweeps > 0:
            say(f"sweeps: {cases(sweeps)} cases")
            results["sweeps"] = fuzz_sweeps(workdir, guard, sweeps, seed, timeout_s, save, only)
        if "loaders" in want and loaders > 0:
            say(f"loaders: {cases(loaders)} cases")
            results["loaders"] = fuzz_loaders(fixtures, guard, loaders, seed, timeout_s, save, only)
    return results
