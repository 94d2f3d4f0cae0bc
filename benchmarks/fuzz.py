"""Fuzz benchmark (issues 11, 20, 21): damaged and hostile inputs through every reader.

Prints numbers; it is not a timed test. The cases come from ``tests/fuzzing`` (mutators,
guard, categories), which the suite's hostile-input tests share; this script keeps only the
command line and the report. By default it tries

* ``dhvc``: 7,000 mutations of a small valid .dhvc stream (tiny random-weight preset, 64x64,
  frames I P P I): bit flips, byte overwrites, truncations, inserted and deleted byte runs,
  header fields set to extreme values, scale payloads damaged or resized behind a recomputed
  CRC, frames duplicated, dropped, swapped or spliced from a stream of another size, the frame
  size set to 1x1 .. 32768x32768. Each goes through ``codec.stream.files.decode_file``
  (``open_stream`` and a full decode into PNG frames; ``--decode-fraction`` to parse only);
* ``scenarios``: 1,500 mutations of ``scenarios/*.yaml`` (a field replaced by None, a bool,
  0, -1, 10**400, 1e308, +-inf, nan, 5e-324, a string, a list or a mapping, or deleted; extra
  fields; variant tags swapped; the YAML text itself damaged) through
  ``netsim.scenario.load_scenario``;
* ``runs``: a sample of the mutated scenarios that validate (``--runs``), run for two
  frames with ``netsim.runner.run_scenario`` on the tiny random-weight codec at 64x64;
* ``packets``: 7,000 damaged packet sets of a real tiny-codec frame (flips, truncations,
  extensions, header fields overwritten with the packet checksum recomputed so that the damage
  reaches the field checks, consistent forgeries of a whole scale or frame, duplicates), parsed
  with ``Packet.from_bytes``; what parses goes through ``netsim.receiver.Receiver`` driving the
  DHVC adapter (reassembly, FEC, the real tiny decoder);
* ``slices``: 5,000 damaged sets of x264/x265 slice packets (the packet damage above, plus
  framing bits, NAL headers, start codes and slice data damaged behind a re-sealed frame CRC,
  forged QPs and layouts) with the stream's other frames, through ``Receiver`` driving the
  x264/x265 adapter (FFmpeg decodes what arrives);
* ``sweeps``: 600 mutations of ``sweeps/*.yaml`` (as scenarios, plus grids of odd, many or
  large values on real and broken field paths) through ``netsim.sweep.load_sweep`` and
  ``check_sweep``;
* ``loaders``: 1,500 damaged files and pickle payloads through the loaders of a user's files:
  checkpoints, training states, pack manifests and photos, run folders (frames.csv,
  packets.csv, summary.json); a case fails if the payload's code runs.

A case is *clean* when it decodes/loads/runs/parses, or is refused with the error its interface
promises (.dhvc: ``ValueError``, e.g. ``BitstreamError``; scenarios: ``ScenarioError``; runs:
``ScenarioError`` or ``RunError``; packets: ``PacketFormatError``; sweeps: ``SweepError``;
loaders: ``CheckpointError``, ``ValueError``, ``TraceError``, a pack's ``FileNotFoundError``)
with a message of one non-empty line; *failed* on any other exception (``MemoryError`` under
the ``--memory-gb`` address-space cap included) or a multi-line message; a *hang* when it takes
longer than ``--timeout`` (``--run-timeout`` for runs). A refusal by a plain ``ValueError``
(not one of the project's own exception classes) counts as clean and is listed as an "untyped
refusal". Cases are deterministic in ``--seed``: ``--replay CATEGORY:INDEX`` re-runs one case
and prints its traceback or refusal. Exit status 1 if any case failed or hung.

The defaults take about 5 minutes on a 2-core machine (longer on a busy one).

    python benchmarks/fuzz.py [--dhvc N] [--scenarios N] [--packets N] [--runs N] [--slices N]
        [--sweeps N] [--loaders N] [--seed S] [--report FILE] [--save-failures DIR]
        [--replay CATEGORY:INDEX]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fuzzing parts live in the test suite (tests/fuzzing)

from tests.fuzzing.categories import CATEGORIES, DEFAULT_COUNTS, run_all  # noqa: E402
from tests.fuzzing.guard import set_memory_limit  # noqa: E402
from tests.fuzzing.outcomes import CategoryResult, Failure  # noqa: E402


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
            print("  untyped refusals (a plain ValueError, no project error class; counted clean):")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name, help_text in (
        ("dhvc", ".dhvc mutations"),
        ("scenarios", "scenario mutations"),
        ("packets", "damaged DHVC packet sets"),
        ("runs", "validated scenarios to run"),
        ("slices", "damaged x264/x265 slice packet sets"),
        ("sweeps", "sweep file mutations"),
        ("loaders", "damaged or hostile loader files"),
    ):
        parser.add_argument(f"--{name}", type=int, default=DEFAULT_COUNTS[name], help=help_text)
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
        slices=args.slices,
        sweeps=args.sweeps,
        loaders=args.loaders,
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
