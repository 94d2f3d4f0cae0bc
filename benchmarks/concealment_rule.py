"""Measure what concealment should show (issue 18): on the compare scenarios, for every frame
with a substituted scale, the PSNR of the decoder's mean-substituted picture, of the last shown
picture repeated, of their blend, and of the last shown picture moved along the frame's own
motion field where scale 1 brought one (``DecodedFrame.motion``), by the first substituted
scale j.

Usage: python benchmarks/concealment_rule.py [SCENARIO.yaml ...] [--seeds 0 1 2]
(default: scenarios/compare/compare_dhvc_best_loss{05,10,20,40}.yaml). With the scenario's
own concealment setting the "shown" column is what the receiver showed, so the last line, the
share of scale-1 frames whose shown picture is worse than repeating the last shown picture,
checks the rule in use.

``netsim.concealment`` chose its rule from this table on the paper-faithful compare scenarios
(its docstring holds the numbers).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from codec import shift_picture
from codec.metrics import psnr
from netsim.codecs.base import ShownPicture
from netsim.codecs.dhvc import DhvcAdapter
from netsim.runner import load_run_inputs
from netsim.scenario import load_scenario
from netsim.simulation import simulate

DEFAULT_SCENARIOS = [
    Path(f"scenarios/compare/compare_dhvc_best_loss{rate}.yaml")
    for rate in ("05", "10", "20", "40")
]


class _Recorder:
    """Wraps a DHVC adapter's decoder to score the candidates of each frame."""

    def __init__(self, adapter: DhvcAdapter, originals: np.ndarray) -> None:
        self.adapter = adapter
        self.originals = originals
        self.rows: list[tuple[int, float, float, float, float, float]] = []
        self._last_shown: np.ndarray | None = None
        decoder = adapter.decoder
        self._decode = decoder.decode
        self._decoded = None
        adapter.decoder = self  # type: ignore[assignment]

    def decode(self, received):  # noqa: ANN001, ANN201 - a FrameDecoder
        self._decoded = self._decode(received)
        return self._decoded

    def on_frame(self, shown: ShownPicture) -> None:
        decoded = self._decoded
        original = self.originals[shown.frame_index]
        substituted = [k for k, o in enumerate(decoded.outcomes, 1) if o.value != "decoded"]
        if substituted and self._last_shown is not None:
            blend = 0.5 * decoded.x_hat + 0.5 * self._last_shown
            motion = decoded.motion
            moved = (
                psnr(original, shift_picture(self._last_shown, motion))
                if motion is not None
                else float("nan")
            )
            self.rows.append(
                (
                    min(substituted),
                    psnr(original, decoded.x_hat),
                    psnr(original, self._last_shown),
                    psnr(original, blend),
                    psnr(original, shown.x_hat),
                    moved,
                )
            )
        self._last_shown = shown.x_hat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", type=Path, default=DEFAULT_SCENARIOS)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    args = parser.parse_args()
    rows = []
    for path in args.scenarios:
        scenario = load_scenario(path)
        for seed in args.seeds:
            inputs = load_run_inputs(scenario, seed=seed)
            adapter = inputs.codec.adapter()
            recorder = _Recorder(adapter, inputs.originals)
            simulate(
                scenario,
                codec=adapter,
                frame_count=inputs.frame_count,
                seed=seed,
                on_frame=recorder.on_frame,
            )
            rows += recorder.rows
            print(f"{path.name} seed {seed}: {len(recorder.rows)} frames with a substitution")
    table = np.array(rows)
    print("j   frames  substituted  repeated  blend  shown   substituted<repeated  moved (frames)")
    for j in range(1, 5):
        part = table[table[:, 0] == j]
        if len(part):
            worse = float(np.mean(part[:, 1] < part[:, 2]))
            means = part[:, 1:5].mean(axis=0)
            has_motion = ~np.isnan(part[:, 5])
            moved = f"{part[has_motion, 5].mean():9.2f} ({int(has_motion.sum())})"
            print(
                f"{j}  {len(part):6d}  "
                + "  ".join(f"{m:9.2f}" for m in means)
                + f"  {worse:.0%}  {moved if has_motion.any() else '-'}"
            )
    scale1 = table[table[:, 0] == 1]
    if len(scale1):
        worse = float(np.mean(scale1[:, 4] < scale1[:, 2] - 1e-9))
        print(
            f"scale 1 substituted: shown worse than repeating the last shown picture on {worse:.1%}"
        )


if __name__ == "__main__":
    main()
