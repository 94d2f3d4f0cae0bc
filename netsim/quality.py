"""Measuring what the viewer sees: each shown frame against its original (DESIGN 5).

``QualityObserver`` is called with every shown frame as the receiver decodes it (the
``on_frame`` of ``netsim.simulation.simulate``) and adds the frame's PSNR and MS-SSIM to the
run's ``FrameTrace``, keyed by frame index. It measures in batches: pictures wait in a small
buffer and are measured ``batch_frames`` at a time on one thread (``codec.metrics
.frame_quality``), and the rest when the run's last frame is shown, so measuring costs a small
share of a run (issue 18: it took 3.2 s of ``loss80``'s 8.1 s frame by frame on two threads).

With ``concurrent`` the batches are measured on a second Python thread while the run codes
the next frames (coding runs on one CPU thread, ``codec.stream.coder.CODING_THREADS``, so on a
machine with two cores the second is otherwise idle), and the run waits only for what is left
when its last frame is shown. Torch's thread count is process-wide, and float sums over
another number of threads round differently, so this is allowed only while the process holds
one intra-op thread throughout (``netsim.runner.simulate_run`` does, with
``codec.threads.intra_op_threads``): every value is then
computed on one thread, exactly as without it.

It can also keep the shown pictures for ``video.mp4``. It never sees the network: the trace
joins its part with the sender's and the receiver's halves.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from codec.io.video import to_uint8
from codec.metrics import frame_quality
from netsim.codecs.base import ShownPicture
from netsim.trace import FrameQuality, FrameTrace

QUALITY_BATCH_FRAMES = 4
"""Shown pictures held before they are measured together. Measured concurrently, what the run
waits for is the last batch: on ``loss80`` (32 frames, 2 idle cores) the run waited 0.42-0.46 s
with batches of 16 and 0.10-0.12 s with batches of 4 (1.6-2.0% of its 5.9-6.0 s)."""


class QualityObserver:
    """Adds each shown frame's quality to ``frames`` (a trace that ``measures_quality``).

    ``originals`` is the N x H x W x 3 stack of the frames the sender encoded (frame i is
    ``originals[i]``); when frame N - 1 is shown every buffered picture is measured, and
    ``flush`` measures what is left in a run that stops earlier. With ``keep_pictures`` the
    shown frames are kept, as uint8, in ``pictures``. ``wall_time_s`` adds up the time the
    caller spent measuring, or with ``concurrent`` (module docstring) handing pictures over and
    waiting for the measurements; ``measure_time_s`` the time the measurements took.
    """

    def __init__(
        self,
        originals: np.ndarray,
        frames: FrameTrace,
        *,
        keep_pictures: bool = False,
        batch_frames: int = QUALITY_BATCH_FRAMES,
        concurrent: bool = False,
    ) -> None:
        if not frames.measures_quality:
            raise ValueError("the frame trace must measure quality")
        if batch_frames < 1:
            raise ValueError("batch_frames must be >= 1")
        self._originals = originals
        self._frames = frames
        self._keep_pictures = keep_pictures
        self._batch_frames = batch_frames
        self._concurrent = concurrent
        self._executor: ThreadPoolExecutor | None = None
        self._running: list[tuple[list[int], Future]] = []
        self._pending: list[tuple[int, np.ndarray]] = []
        self._pictures: dict[int, np.ndarray] = {}
        self.wall_time_s = 0.0
        self.measure_time_s = 0.0

    def __call__(self, shown: ShownPicture) -> None:
        """Take ``shown``; measure the buffer when it is full or the last frame was shown."""
        start = time.perf_counter()
        index = shown.frame_index
        self._pending.append((index, shown.x_hat))
        if self._keep_pictures:
            self._pictures[index] = to_uint8(shown.x_hat)
        self.wall_time_s += time.perf_counter() - start
        if index == len(self._originals) - 1:
            self.flush()
        elif len(self._pending) >= self._batch_frames:
            self._measure_pending()

    def flush(self) -> None:
        """Measure the buffered pictures against their originals and record every result."""
        start = time.perf_counter()
        self._measure_pending()
        for indexes, future in self._running:
            self._record(indexes, *future.result())
        self._running.clear()
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        self.wall_time_s += time.perf_counter() - start

    def _measure_pending(self) -> None:
        if not self._pending:
            return
        start = time.perf_counter()
        indexes = [index for index, _ in self._pending]
        shown = np.stack([picture for _, picture in self._pending])  # a copy: the run goes on
        self._pending.clear()
        originals = self._originals[indexes]
        if self._concurrent:
            if torch.get_num_threads() != 1:
                raise RuntimeError("concurrent measuring needs one intra-op thread (docstring)")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="quality")
            self._running.append((indexes, self._executor.submit(_measure, originals, shown)))
        else:
            self._record(indexes, *_measure(originals, shown))
        self.wall_time_s += time.perf_counter() - start

    def _record(
        self, indexes: list[int], psnrs: np.ndarray, ms_ssims: np.ndarray, seconds: float
    ) -> None:
        self.measure_time_s += seconds
        for index, psnr, ms_ssim in zip(indexes, psnrs, ms_ssims, strict=True):
            self._frames.measured(index, FrameQuality(psnr=float(psnr), ms_ssim=float(ms_ssim)))

    @property
    def pictures(self) -> np.ndarray:
        """The kept shown frames in frame order (N x H x W x 3 uint8)."""
        if not self._keep_pictures:
            raise ValueError("this observer keeps no pictures")
        return np.stack([self._pictures[i] for i in sorted(self._pictures)])


def _measure(originals: np.ndarray, shown: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """PSNR and MS-SSIM of a batch on one thread, and the seconds they took."""
    start = time.perf_counter()
    psnrs, ms_ssims = frame_quality(originals, shown, batch_frames=1, threads=1)
    return psnrs, ms_ssims, time.perf_counter() - start
