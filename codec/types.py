"""Typed values that cross the codec's public boundary (DESIGN 1-3).

Everything the network simulator needs from the codec is here plus ``codec.Encoder`` and
``codec.Decoder``. Scales are numbered 1..K (K = 4), smallest first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

NUM_SCALES = 4
"""K: number of latent scales (1/64, 1/32, 1/16, 1/8 of the input side)."""

IN_SYNC = NUM_SCALES + 1
"""Value of the first desynchronised scale D when the decoder is in sync (DESIGN 2)."""

MAX_MIRROR_AGE = 16
"""Oldest decoder state a mirrored recovery frame may assume, in frames before it (DESIGN 3):
the encoder keeps this many frames of history, and the frame and packet headers carry the age
(frame index minus the state's frame, 1..``MAX_MIRROR_AGE``)."""


class FrameType(StrEnum):
    """I: GOP start (full intra); P: predicted; R: re-sync frame (resync_from >= 1); M: mirrored
    recovery frame, an ordinary inter frame coded against the decoder state (f, j) it assumes
    (``mirror_from`` = f, ``resync_from`` = j; DESIGN 3)."""

    I = "I"  # noqa: E741
    P = "P"
    R = "R"
    M = "M"


@dataclass(frozen=True)
class ScalePayload:
    """One scale's bitstream as it travels: the bytes plus the header fields that vouch for them.

    ``crc32`` covers ``data``; ``sync_tag`` is the 32-bit hash of the Gaussian-table indexes the
    encoder used for this scale (DESIGN 1).
    """

    data: bytes
    crc32: int
    sync_tag: int


@dataclass(frozen=True)
class EncodedFrame:
    """The encoder's output for one frame: one payload per scale, scale 1 first.

    ``resync_from`` is 0 for a P frame and j in 1..K for I (always 1) and R frames: scales >= j
    were coded with the intra constants as temporal references. An M frame assumes the decoder
    state (f, j) = (``mirror_from``, ``resync_from``): in sync before frame f, every scale >= j
    substituted by its mean from frame f on (DESIGN 2-3); ``mirror_from`` is None for the
    other types. ``estimated_bits`` is the
    information content of each scale's symbols under the coding tables (bits). ``x_hat`` is
    the encoder's in-loop reconstruction (H x W x 3, float32 in [0, 1]); it never travels.
    """

    frame_index: int
    frame_type: FrameType
    lam: float
    resync_from: int
    height: int
    width: int
    scales: tuple[ScalePayload, ...]
    estimated_bits: tuple[float, ...]
    x_hat: np.ndarray = field(repr=False, compare=False)
    mirror_from: int | None = None

    @property
    def payload_bits(self) -> tuple[int, ...]:
        """Actual payload size of each scale in bits."""
        return tuple(8 * len(s.data) for s in self.scales)

    def received(self, scales: set[int] | None = None) -> ReceivedFrame:
        """What a receiver holds if exactly ``scales`` (1-based; default all) arrived intact."""
        keep = set(range(1, NUM_SCALES + 1)) if scales is None else scales
        return ReceivedFrame(
            frame_index=self.frame_index,
            lam=self.lam,
            resync_from=self.resync_from,
            frame_type=self.frame_type,
            scales={k: self.scales[k - 1] for k in sorted(keep)},
            mirror_from=self.mirror_from,
        )


@dataclass(frozen=True)
class ReceivedFrame:
    """What the receiver hands to ``Decoder.decode`` for one frame.

    ``scales`` maps a scale number (1..K) to its complete payload; missing scales are lost.
    ``lam``, ``resync_from`` and ``frame_type`` are ``None`` when no packet of the frame
    arrived; the decoder then uses the last known lambda and treats the frame as P.
    ``mirror_from`` is an M frame's assumed state frame f (``EncodedFrame``), else None.
    """

    frame_index: int
    lam: float | None
    resync_from: int | None
    frame_type: FrameType | None
    scales: Mapping[int, ScalePayload]
    mirror_from: int | None = None

    @classmethod
    def nothing(cls, frame_index: int) -> ReceivedFrame:
        """A frame of which no packet arrived."""
        return cls(frame_index, None, None, None, {})


class ScaleOutcome(StrEnum):
    """What the decoder did with one scale of one frame."""

    DECODED = "decoded"  # entropy-decoded
    MISSING = "missing"  # not received: mean substitution
    CORRUPT = "corrupt"  # received but CRC failed: mean substitution
    DESYNCED = "desynced"  # received but k >= D (context differs): mean substitution
    SYNC_MISMATCH = "sync_mismatch"  # sync tag differs from the decoder's: mean substitution
    SKIPPED = "skipped"  # a lower scale was not decoded: mean substitution
    STATE_MISMATCH = "state_mismatch"  # an M frame assuming a state the decoder does not hold


@dataclass(frozen=True)
class DecodedFrame:
    """The decoder's output for one frame.

    ``x_hat`` is H x W x 3 float32 in [0, 1]. ``outcomes[k-1]`` says what happened to scale k.
    ``first_desynced_scale`` is D after this frame (K + 1 = in sync). ``echo_scale`` is j when
    this frame made D drop to j, or when it was an M frame that assumed a state this decoder
    does not hold (the receiver should echo (frame_index, j)), else ``None``.
    ``desynced_since`` is f when the decoder's state is (f, D): it was in sync before frame f
    and D has not dropped since, the state an M frame can assume (DESIGN 3); None when in sync
    or when its state is not that simple (D dropped twice, or it refused an M frame while in
    sync). ``motion`` is the block motion field the frame carried against frame t - 1
    (``codec.stream.motion``; a P or R frame whose scale 1 arrived intact), whether or not the
    decoder could use it: a receiver out of sync from scale 1 can still move its last picture
    along it (``netsim.concealment``); None otherwise.
    """

    frame_index: int
    frame_type: FrameType
    lam: float
    resync_from: int
    x_hat: np.ndarray = field(repr=False, compare=False)
    outcomes: tuple[ScaleOutcome, ...]
    first_desynced_scale: int
    echo_scale: int | None
    desynced_since: int | None = None
    motion: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def scales_decoded(self) -> int:
        """Number of scales that were entropy-decoded."""
        return sum(o is ScaleOutcome.DECODED for o in self.outcomes)


def coded_size(height: int, width: int, k: int) -> tuple[int, int]:
    """(rows, columns) of scale k's latent grid that cover at least one pixel of an
    ``height`` x ``width`` frame; the rest of the padded grid covers padding only and is not
    coded (both sides know the frame size; y_hat = mu there). Scale k has stride 2^(7-k)."""
    stride = 1 << (7 - k)
    return -(-height // stride), -(-width // stride)
