"""Block motion of the temporal references (``.dhvc`` format 5, DESIGN 3).

The prior predicts a latent from the reference features at the same place (the STPBs' value
path is 1x1), so a picture that moved costs nearly an intra frame: with the shipped weights a
pan of 8 px/frame spends 0.87 of an I frame on each P frame, a still picture 0.30. Before coding
a P, R or M frame the encoder therefore chooses one motion vector per ``BLOCK`` x ``BLOCK``
block of the picture, in whole ``UNIT`` px (one feature pixel at scale 4, 1/8), and both sides
shift their reference features by it before the prior reads them: at scale k (stride
2^(7-k)) a feature pixel takes the reference feature ``round(v / stride)`` feature pixels away,
the border replicated. The shift is an integer gather, so it is exact and deterministic on
every device and thread count, and it needs no training: the references simply arrive where
the picture now is. The motion field travels at the head of scale 1's payload (whose CRC
covers it), so a frame's motion is known exactly when its scale 1 can be decoded; a decoder
that cannot decode scale 1 uses the zero field, a rule the encoder's mirror reproduces.

Section layout (whole 32-bit words, little-endian)::

    length u32 | zlib stream of ``length`` bytes | zero padding to a whole word

``length`` 0 is the zero field. The zlib stream inflates to one byte per block in raster
order, ``(dx + 8) << 4 | (dy + 8)`` with dx, dy in -``MAX_UNITS`` .. ``MAX_UNITS``: the block's
reference sits (dx, dy) units to the right and below. A malformed section raises
``MotionError``.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np
import torch

BLOCK = 64
"""Side of a motion block in pixels (one latent of scale 1)."""
UNIT = 8
"""Pixels per motion unit (one feature pixel of scale 4, the finest)."""
MAX_UNITS = 7
"""Largest |dx| or |dy| in units (56 px per frame)."""
SEARCH_UNITS = 6
"""The encoder's search range in units (48 px per frame)."""
ZERO_BIAS = 0.85
"""A block moves only if its best match beats staying still by more than 15% (chosen on bikes
and on panned validation photos: 0.97 and 0.9 cost slightly more bits)."""
SEARCH_SCALE = 4
"""Block matching runs on luma averaged over 4 x 4 pixels: a unit is 2 of its pixels, a block
16 x 16 (on bikes as good as half resolution, at a quarter of the work: 40 ms a 1080p
frame on one core)."""
STRIDES = (64, 32, 16, 8)
"""Stride of scale k's features in pixels (index k - 1)."""
_LENGTH = struct.Struct("<I")


class MotionError(ValueError):
    """A motion section is malformed."""


def motion_grid(height: int, width: int) -> tuple[int, int]:
    """(rows, columns) of motion blocks that cover a ``height`` x ``width`` picture."""
    return -(-height // BLOCK), -(-width // BLOCK)


def zero_field(height: int, width: int) -> np.ndarray:
    """The field that moves nothing: (rows, columns, 2) int8 zeros."""
    return np.zeros((*motion_grid(height, width), 2), dtype=np.int8)


def max_section_bytes(height: int, width: int) -> int:
    """The longest section a picture's field can take (zlib's bound on stored blocks)."""
    rows, cols = motion_grid(height, width)
    raw = rows * cols
    deflated = raw + 5 * (raw // 16383 + 1) + 6
    return _LENGTH.size + 4 * -(-deflated // 4)


def motion_luma(frame: np.ndarray) -> np.ndarray:
    """What motion estimation keeps of a picture: its luma averaged over ``SEARCH_SCALE`` x
    ``SEARCH_SCALE`` pixels (float32), from an H x W x 3 frame (uint8, or float in [0, 1])."""
    x = frame.astype(np.float32)
    if frame.dtype == np.uint8:
        x /= 255.0
    y = x @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    n = SEARCH_SCALE
    h, w = y.shape[0] // n, y.shape[1] // n
    return y[: h * n, : w * n].reshape(h, n, w, n).mean(axis=(1, 3))


def estimate_motion(
    current: np.ndarray, reference: np.ndarray, height: int, width: int
) -> np.ndarray:
    """The encoder's field for a ``height`` x ``width`` picture against a reference, both
    given as ``motion_luma``.

    Each block takes the shift within ``SEARCH_UNITS`` whose reference block (border
    replicated) has the least mean absolute luma difference; it stays at zero unless that
    beats zero by ``ZERO_BIAS``. Returns (rows, columns, 2) int8 (dx, dy) in units."""
    if current.shape != reference.shape:
        raise ValueError(f"pictures differ in shape: {current.shape} and {reference.shape}")
    rows, cols = motion_grid(height, width)
    block, step = BLOCK // SEARCH_SCALE, UNIT // SEARCH_SCALE
    reach = SEARCH_UNITS * step
    pad_h, pad_w = rows * block - current.shape[0], cols * block - current.shape[1]
    a = np.pad(current, ((0, pad_h), (0, pad_w)), mode="edge")
    b = np.pad(reference, ((reach, reach + pad_h), (reach, reach + pad_w)), mode="edge")
    h, w = a.shape
    units = range(-SEARCH_UNITS, SEARCH_UNITS + 1)
    costs = np.empty((len(units), len(units), rows, cols), dtype=np.float32)
    for i, dy in enumerate(units):
        for j, dx in enumerate(units):
            y0, x0 = reach + dy * step, reach + dx * step
            diff = np.abs(a - b[y0 : y0 + h, x0 : x0 + w])
            costs[i, j] = diff.reshape(rows, block, cols, block).mean(axis=(1, 3))
    flat = costs.reshape(-1, rows, cols)
    best = flat.argmin(axis=0)
    still = costs[SEARCH_UNITS, SEARCH_UNITS]
    moves = np.take_along_axis(flat, best[None], 0)[0] < ZERO_BIAS * still
    dy = np.where(moves, best // len(units) - SEARCH_UNITS, 0)
    dx = np.where(moves, best % len(units) - SEARCH_UNITS, 0)
    return np.stack([dx, dy], axis=-1).astype(np.int8)


def pack_motion(field: np.ndarray) -> bytes:
    """The section that carries ``field`` ((rows, columns, 2) integers within ``MAX_UNITS``)."""
    field = np.asarray(field)
    if field.ndim != 3 or field.shape[2] != 2 or np.abs(field).max(initial=0) > MAX_UNITS:
        raise ValueError(f"a motion field is (rows, columns, 2) within +-{MAX_UNITS} units")
    if not field.any():
        return _LENGTH.pack(0)
    raw = (((field[..., 0].astype(np.int64) + 8) << 4) | (field[..., 1] + 8)).astype(np.uint8)
    data = zlib.compress(raw.tobytes(), 9)
    return _LENGTH.pack(len(data)) + data + bytes(-len(data) % 4)


def unpack_motion(payload: bytes, height: int, width: int) -> tuple[np.ndarray, bytes]:
    """(field, the rest of the payload) from a scale-1 payload that begins with a section."""
    rows, cols = motion_grid(height, width)
    if len(payload) < _LENGTH.size:
        raise MotionError("scale 1's payload is too short for its motion section")
    (length,) = _LENGTH.unpack_from(payload)
    end = _LENGTH.size + length + (-length % 4)
    if end > min(len(payload), max_section_bytes(height, width)):
        raise MotionError(f"a motion section of {length} bytes does not fit")
    if any(payload[_LENGTH.size + length : end]):
        raise MotionError("the motion section's padding is not zero")
    if length == 0:
        return zero_field(height, width), payload[end:]
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(payload[_LENGTH.size : _LENGTH.size + length], rows * cols)
    except zlib.error as err:
        raise MotionError(f"the motion section does not inflate: {err}") from None
    if len(raw) != rows * cols or not inflate.eof or inflate.unconsumed_tail or inflate.unused_data:
        raise MotionError(f"the motion section does not hold exactly {rows * cols} blocks")
    values = np.frombuffer(raw, dtype=np.uint8).reshape(rows, cols)
    field = np.stack([values >> 4, values & 15], axis=-1).astype(np.int8) - 8
    if np.abs(field).max() > MAX_UNITS:
        raise MotionError(f"a motion vector exceeds +-{MAX_UNITS} units")
    return field, payload[end:]


def _gather_index(field: np.ndarray, stride: int, h: int, w: int) -> torch.Tensor:
    """Flat source index of every feature pixel of an h x w map of the given stride."""
    ys, xs = np.mgrid[0:h, 0:w]
    rows, cols = field.shape[:2]
    v = field[
        np.minimum(ys * stride // BLOCK, rows - 1), np.minimum(xs * stride // BLOCK, cols - 1)
    ].astype(np.int64)
    # round(units * UNIT / stride), halves away from zero, in integers
    num, den = v * UNIT, stride
    shift = np.sign(num) * ((2 * np.abs(num) + den) // (2 * den))
    sx = np.clip(xs + shift[..., 0], 0, w - 1)
    sy = np.clip(ys + shift[..., 1], 0, h - 1)
    return torch.from_numpy((sy * w + sx).reshape(-1))


def _gather(features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``features`` (B, C, h, w) with pixel i taken from flat position ``index[i]``."""
    b, c, h, w = features.shape
    return features.flatten(2).index_select(2, index.to(features.device)).view(b, c, h, w)


def shift_features(features: torch.Tensor, field: np.ndarray, stride: int) -> torch.Tensor:
    """``features`` (B, C, h, w) of the given stride with each pixel taken from where
    ``field`` says its block's picture came from (border replicated)."""
    return _gather(features, _gather_index(field, stride, *features.shape[-2:]))


def shift_picture(picture: np.ndarray, field: np.ndarray) -> np.ndarray:
    """An H x W x C picture of frame t - 1 moved to frame t along frame t's ``field``: each
    pixel taken from where its block's picture came from (whole pixels, the border
    replicated), the references' shift at stride 1."""
    height, width = picture.shape[:2]
    index = _gather_index(field, 1, height, width).numpy()
    flat = picture.reshape(height * width, -1)
    return flat[index].reshape(picture.shape)


def shift_references(
    refs: Sequence[tuple[torch.Tensor | None, torch.Tensor | None]], field: np.ndarray
) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
    """Every scale's temporal references shifted by ``field`` (``None``, the intra constant,
    stays); the zero field returns them unchanged. Both references of a scale share one
    gather index."""
    if not field.any():
        return list(refs)
    shifted: list[tuple[torch.Tensor | None, torch.Tensor | None]] = []
    for pair, stride in zip(refs, STRIDES, strict=True):
        present = [r for r in pair if r is not None]
        if not present:
            shifted.append(pair)
            continue
        index = _gather_index(field, stride, *present[0].shape[-2:])
        t1, t2 = (None if r is None else _gather(r, index) for r in pair)
        shifted.append((t1, t2))
    return shifted
