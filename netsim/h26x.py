"""The x264/x265 side of the codec adapter interface (DESIGN 4b).

``H26xFrameEncoder`` is the sender's ``FrameEncoder`` and ``H26xFrameDecoder`` the receiver's
``SliceDecoder`` over ``codec.h26x``; together they behave as a real-time H.264/HEVC call:

* **Picture-loss indication -> I frame.** The receiver's echo (f, 1) is the PLI; the sender
  passes it on as ``resync_from`` and the encoder answers with an I frame (``frame_type`` R:
  an IDR; with ``intra_refresh`` too, since libavcodec cannot start a refresh sweep on
  request). libx265 with several slices holds one picture back
  (``H26xEncoder.delay_pictures``): the adapter then submits picture i + 1 as soon as
  picture i is asked for, so that every picture still leaves at its capture instant; a PLI
  then reaches the picture after the next one, one frame later than with x264 (the frame
  trace shows where the I frame landed).
* **Decoding what arrived.** The decoder gets the NAL units that arrived whole
  (``netsim.slices.usable_nal_units``) and FFmpeg conceals the rest. A frame of which nothing
  decodes is *frozen*: the last picture is shown again (grey before the first one).
* **Reference state as D.** The decoder's references are *damaged* (D = 1) from the first
  frame shown with anything missing (concealed or frozen) until an I frame arrives whole
  (D = K + 1 again). A frame that damages clean references reports ``echo_scale`` 1, so the
  receiver sends a PLI; an I frame that arrives incomplete damages them again, and the
  receiver's echo timeout repeats the PLI while nothing usable comes (DESIGN 3's rules).
"""

from __future__ import annotations

import time

import numpy as np

from codec.h26x import H26xDecoder, H26xEncoder, H26xSettings
from codec.types import IN_SYNC, FrameType
from netsim.packet import PacketLayout
from netsim.slices import DecodedSlices, ReceivedSlices, SlicedFrame, usable_nal_units

DAMAGED = 1
"""D of an x264/x265 decoder whose references are damaged (the PLI's scale)."""


class H26xFrameEncoder:
    """``FrameEncoder`` over ``codec.h26x.H26xEncoder`` and the video's frames (N x H x W x 3
    uint8); adds up the wall time spent encoding in ``wall_time_s``."""

    def __init__(self, settings: H26xSettings, frames: np.ndarray) -> None:
        self.settings = settings
        self._frames = frames
        height, width = frames.shape[1:3]
        self._encoder = H26xEncoder(settings, width=width, height=height)
        self._pictures: dict[int, tuple[bool, tuple[bytes, ...]]] = {}
        self._forced: set[int] = set()
        self._submitted = 0
        self._wants_intra = False
        self.wall_time_s = 0.0

    def encode(self, frame_index: int, resync_from: int | None) -> SlicedFrame:
        """Picture ``frame_index``; any ``resync_from`` asks for an I frame (unless one that
        was asked for is already submitted and not yet sent)."""
        start = time.perf_counter()
        if resync_from is not None and not any(i >= frame_index for i in self._forced):
            self._wants_intra = True
        while frame_index not in self._pictures:
            if self._submitted < len(self._frames) and self._submitted <= frame_index + (
                self._encoder.delay_pictures
            ):
                forced = self._wants_intra
                if forced:
                    self._forced.add(self._submitted)
                    self._wants_intra = False
                released = self._encoder.encode(self._frames[self._submitted], force_idr=forced)
                self._submitted += 1
            else:
                released = self._encoder.flush()
                if not released:
                    raise RuntimeError(f"{self.settings.codec}: picture {frame_index} never came")
            for picture in released:
                self._pictures[picture.frame_index] = (picture.intra, picture.nal_units)
        intra, units = self._pictures.pop(frame_index)
        if frame_index in self._forced:
            frame_type = FrameType.R
        elif intra:
            frame_type = FrameType.I
        else:
            frame_type = FrameType.P
        height, width = self._frames.shape[1:3]
        self.wall_time_s += time.perf_counter() - start
        return SlicedFrame(
            frame_index=frame_index,
            frame_type=frame_type,
            codec=self.settings.codec,
            qp=self.settings.qp,
            nal_units=units,
            width=width,
            height=height,
        )


class H26xFrameDecoder:
    """``SliceDecoder`` over ``codec.h26x.H26xDecoder``; tracks the reference state (module
    docstring) and adds up the wall time spent decoding in ``wall_time_s``."""

    layout = PacketLayout.SLICES

    def __init__(self, codec: str, *, width: int, height: int) -> None:
        self._decoder = H26xDecoder(codec, width=width, height=height)
        self._last = np.full((height, width, 3), 0.5, np.float32)
        self.first_desynced_scale = IN_SYNC
        self.wall_time_s = 0.0

    def decode(self, received: ReceivedSlices) -> DecodedSlices:
        """The picture to show for ``received`` and what happened to it."""
        start = time.perf_counter()
        units = usable_nal_units(received)
        picture = self._decoder.decode(units)
        frozen = picture.rgb is None
        concealed = not frozen and not received.complete
        if not frozen:
            self._last = picture.rgb.astype(np.float32) / 255.0
        damaged_now = frozen or concealed
        was_clean = self.first_desynced_scale == IN_SYNC
        intra = received.frame_type in (FrameType.I, FrameType.R)
        if damaged_now:
            self.first_desynced_scale = DAMAGED
        elif intra:
            self.first_desynced_scale = IN_SYNC
        echo = DAMAGED if damaged_now and (was_clean or intra) else None
        self.wall_time_s += time.perf_counter() - start
        return DecodedSlices(
            frame_index=received.frame_index,
            x_hat=self._last,
            units_received=len(units),
            units_decoded=0 if frozen else len(units),
            concealed=concealed,
            frozen=frozen,
            first_desynced_scale=self.first_desynced_scale,
            echo_scale=echo,
        )
