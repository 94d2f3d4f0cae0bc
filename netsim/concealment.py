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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netsim.damage import ShownKind


@dataclass(frozen=True)
class ConcealmentRule:
    """Which picture to show for a frame whose first substituted scale is j: the last shown
    picture when j <= ``repeat_up_to_scale``, a blend (``blend_weight`` of the decoder's
    picture) when j <= ``blend_up_to_scale``, else the decoder's picture."""

    repeat_up_to_scale: int = 1
    blend_up_to_scale: int = 1
    blend_weight: float = 0.5


DEFAULT_RULE = ConcealmentRule()
"""The measured rule (module docstring)."""


class Concealment:
    """The receiver's concealment state over a run: the last shown picture."""

    def __init__(self, rule: ConcealmentRule = DEFAULT_RULE) -> None:
        self.rule = rule
        self._last: np.ndarray | None = None

    def show(
        self, x_hat: np.ndarray, first_substituted_scale: int | None
    ) -> tuple[np.ndarray, ShownKind]:
        """The picture to show and what it is, for a decoder picture ``x_hat`` (H x W x 3
        float32 in [0, 1]) with scales >= ``first_substituted_scale`` substituted (None:
        every scale decoded)."""
        rule = self.rule
        j = first_substituted_scale
        if j is None or self._last is None or self._last.shape != x_hat.shape:
            shown, kind = x_hat, ShownKind.DECODED
        elif j <= rule.repeat_up_to_scale:
            shown, kind = self._last, ShownKind.REPEATED
        elif j <= rule.blend_up_to_scale:
            w = np.float32(rule.blend_weight)
            shown, kind = w * x_hat + (np.float32(1) - w) * self._last, ShownKind.BLENDED
        else:
            shown, kind = x_hat, ShownKind.DECODED
        self._last = shown
        return shown, kind
