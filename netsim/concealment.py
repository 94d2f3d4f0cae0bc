"""What the receiver shows when scales were substituted (DESIGN 2, issue 18).

The decoder's references follow the D rule exactly; the picture *shown* may differ. For each
frame ``Concealment.show`` picks, from what the decoder knows only (the first scale it
substituted in this frame, and how many frames it has been out of sync), between the decoder's
mean-substituted picture and the last shown picture (or a blend of the two). It never touches
the decoder's references.

The rule (``ConcealmentRule``) was chosen by measurement (``benchmarks/concealment_rule.py``
on ``scenarios/compare/compare_dhvc_loss{10,20}.yaml``, one scale per packet, no concealment,
shipped weights, seeds 0-2): mean PSNR (dB) of the frames whose first substituted scale is j,
shown as substituted, as the last shown picture repeated, and as their even blend, and the
share of frames where the substituted picture is worse than the repeated one::

    j  frames  substituted  repeated  blend  substituted worse
    1     132        18.29     18.49  18.47   50%
    2      66        19.04     18.31  18.77   20%
    3      41        25.23     21.73  23.54    0%
    4      70        28.55     21.87  25.21    0%

With scale 1 substituted the substituted picture is no better than the last one (worse on half
the frames), so the last shown picture is repeated; with only scales >= 2 substituted the
substituted picture is better, and is shown. A blend never beats the better of the two.

Better than repeating the last picture is moving it on (``ConcealmentRule.extrapolate_frames``,
``netsim.motion``): when the last two pictures shown as decoded were consecutive frames and the
motion between them is predictable, a frame with scale 1 substituted shows the last decoded
picture extrapolated along that motion, k frames on for the k-th frame since it, up to
``extrapolate_frames`` frames; then, or where the motion is unknown, the last shown picture is
repeated. The field is estimated once per pair, so a run of concealed frames costs one
estimate. Measured on the best DHVC configuration (``compare_dhvc_best_loss{10,20}.yaml``,
seeds 0-2, 131 frames with scale 1 substituted, 83 of them with a usable field), the
extrapolated picture against the last shown one repeated: +2.61 dB one frame on (never
worse), +0.62 dB two on (worse on 3 of 24), +0.09 dB three on (worse on 7 of 24, so the rule
stops at two).

A frame whose scale 1 arrived but could not be decoded (the decoder is out of sync from scale
1 since an earlier loss) still brings its block motion field (``DecodedFrame.motion``, the
encoder's own estimate against the previous source picture): such a frame shows the last
shown picture moved along that field (``ShownKind.MOVED``, ``codec.stream.motion``), whatever
the number of frames since the last decoded one, when the field moves at least
``ConcealmentRule.min_moved_share`` of the blocks; a field that moves fewer falls back to the
rule above. Measured with ``benchmarks/concealment_rule.py`` (the best configuration at 5-40%
loss, seeds 0-2, 112 frames with scale 1 substituted that brought a field), moving along every
field gained 1.79 dB over repeating but was worse on 22 frames, all with fields that moved few
blocks (local motion, or camera motion under a unit rounded away in most blocks); moving only
along fields that move a fifth of the blocks or more gained 1.78 dB and was never worse (a
tenth: worse on 15).

On the originals of bikes (53 losses, 448x256), moving the extrapolated picture of the lost
frame along the next frames' fields predicted the frames one and two after the loss at 25.21
and 23.24 dB, against 23.33 and 20.86 by extrapolation and 20.75 and 18.84 by repeating. In
the best configuration at 10% and 20% loss (mirrored recovery, 3 seeds, step-23,200 weights)
moving along every field, before the fifth-of-the-blocks rule, raised the mean PSNR from 32.74
to 32.94 dB and from 28.96 to 29.25; with the rule and the step-24,400 weights the best
configuration measures 32.97 and 29.31 (README).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codec import shift_picture
from netsim.damage import ShownKind
from netsim.motion import MotionField, estimate_motion, extrapolate


@dataclass(frozen=True)
class ConcealmentRule:
    """Which picture to show for a frame whose first substituted scale is j: the last shown
    picture when j <= ``repeat_up_to_scale``, a blend (``blend_weight`` of the decoder's
    picture) when j <= ``blend_up_to_scale``, else the decoder's picture. Within
    ``extrapolate_frames`` frames of the last decoded picture, the repeated picture is that one
    moved on along its motion, where the motion is known and predictable (0: never; module
    docstring). A frame that brought its own motion field, moving at least
    ``min_moved_share`` of the blocks, shows the last shown picture moved along it instead."""

    repeat_up_to_scale: int = 1
    blend_up_to_scale: int = 1
    blend_weight: float = 0.5
    extrapolate_frames: int = 2
    min_moved_share: float = 0.2


DEFAULT_RULE = ConcealmentRule()
"""The measured rule (module docstring)."""


class Concealment:
    """The receiver's concealment state over a run: the last shown picture, the last two
    pictures shown as decoded (with their frame numbers) and the motion between them."""

    def __init__(self, rule: ConcealmentRule = DEFAULT_RULE) -> None:
        self.rule = rule
        self._last: np.ndarray | None = None
        self._frame = -1
        self._decoded: list[tuple[int, np.ndarray]] = []
        self._field: MotionField | None = None

    def _moved_on(self) -> np.ndarray | None:
        """The last decoded picture extrapolated to this frame, or None where the motion is
        unknown (the last two decoded pictures are not consecutive) or unpredictable."""
        if len(self._decoded) < 2:
            return None
        (older_frame, older), (newer_frame, newer) = self._decoded
        ahead = self._frame - newer_frame
        if ahead > self.rule.extrapolate_frames:
            return None
        if newer_frame - older_frame != 1 or older.shape != newer.shape:
            return None
        if self._field is None:
            self._field = estimate_motion(older, newer)
        if not self._field.usable:
            return None
        return extrapolate(newer, self._field, ahead)

    def _moves(self, motion: np.ndarray | None) -> bool:
        """Whether a frame's own motion field moves enough blocks to move the picture by."""
        if motion is None or not motion.size:
            return False
        return float(np.any(motion != 0, axis=-1).mean()) >= self.rule.min_moved_share

    def show(
        self,
        x_hat: np.ndarray,
        first_substituted_scale: int | None,
        motion: np.ndarray | None = None,
    ) -> tuple[np.ndarray, ShownKind]:
        """The picture to show and what it is, for a decoder picture ``x_hat`` (H x W x 3
        float32 in [0, 1]) with scales >= ``first_substituted_scale`` substituted (None:
        every scale decoded); ``motion``: the block motion field the frame carried against the
        previous frame, when its scale 1 arrived (``DecodedFrame.motion``)."""
        rule = self.rule
        j = first_substituted_scale
        self._frame += 1
        moved_on = None
        if j is None or self._last is None or self._last.shape != x_hat.shape:
            shown, kind = x_hat, ShownKind.DECODED
        elif j <= rule.repeat_up_to_scale and self._moves(motion):
            shown, kind = shift_picture(self._last, motion), ShownKind.MOVED
        elif j <= rule.repeat_up_to_scale:
            if rule.extrapolate_frames > 0:
                moved_on = self._moved_on()
            if moved_on is None:
                shown, kind = self._last, ShownKind.REPEATED
            else:
                shown, kind = moved_on, ShownKind.EXTRAPOLATED
        elif j <= rule.blend_up_to_scale:
            w = np.float32(rule.blend_weight)
            shown, kind = w * x_hat + (np.float32(1) - w) * self._last, ShownKind.BLENDED
        else:
            shown, kind = x_hat, ShownKind.DECODED
        if kind is ShownKind.DECODED:
            self._decoded = [*self._decoded[-1:], (self._frame, x_hat)]
            self._field = None
        self._last = shown
        return shown, kind
