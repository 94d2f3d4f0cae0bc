"""Measuring what the viewer sees: each decoded frame against its original (DESIGN 5).

``QualityObserver`` is called with every decoded frame as the receiver decodes it (the
``on_frame`` of ``netsim.simulation.simulate``) and adds the frame's PSNR and MS-SSIM to the
run's ``FrameTrace``, keyed by frame index. It can also keep the decoded pictures for
``video.mp4``. It never sees the network: the trace joins its part with the sender's and the
receiver's halves.
"""

from __future__ import annotations

import time

import numpy as np

from codec.io.video import to_uint8
from codec.metrics import frame_quality
from netsim.codecs.base import ShownPicture
from netsim.trace import FrameQuality, FrameTrace


class QualityObserver:
    """Adds each decoded frame's quality to ``frames`` (a trace that ``measures_quality``).

    ``originals`` is the N x H x W x 3 stack of the frames the sender encoded (frame i is
    ``originals[i]``). With ``keep_pictures`` the decoded frames are kept, as uint8, in
    ``pictures``. ``wall_time_s`` adds up the time spent measuring.
    """

    def __init__(
        self, originals: np.ndarray, frames: FrameTrace, *, keep_pictures: bool = False
    ) -> None:
        if not frames.measures_quality:
            raise ValueError("the frame trace must measure quality")
        self._originals = originals
        self._frames = frames
        self._keep_pictures = keep_pictures
        self._pictures: dict[int, np.ndarray] = {}
        self.wall_time_s = 0.0

    def __call__(self, decoded: ShownPicture) -> None:
        """Measure ``decoded`` against its original and record the result."""
        start = time.perf_counter()
        index = decoded.frame_index
        (psnr,), (ms_ssim,) = frame_quality(self._originals[index][None], decoded.x_hat[None])
        self._frames.measured(index, FrameQuality(psnr=float(psnr), ms_ssim=float(ms_ssim)))
        if self._keep_pictures:
            self._pictures[index] = to_uint8(decoded.x_hat)
        self.wall_time_s += time.perf_counter() - start

    @property
    def pictures(self) -> np.ndarray:
        """The kept decoded frames in frame order (N x H x W x 3 uint8)."""
        if not self._keep_pictures:
            raise ValueError("this observer keeps no pictures")
        return np.stack([self._pictures[i] for i in sorted(self._pictures)])
