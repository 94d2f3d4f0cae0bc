"""Training clips made on the device: real video crops and synthetic motion over photo tiles.

Everything a training batch needs lives on one torch device (the GPU when there is one), and
drawing a batch issues only device kernels: no ``.item()``, no ``.cpu()``, no host-to-device
copies, no Python branch on a device value. A batch is B x T x 3 x crop x crop float32 in [0, 1].

* :class:`PhotoBank` cuts every photo into square ``tile`` x ``tile`` tiles (at full and half
  scale, textured regions only) held as one uint8 tensor N x 3 x tile x tile on the device.
* :class:`ClipBank` holds every frame of every real clip, centre-cropped to a common size, as one
  uint8 tensor F x 3 x H x W on the device, with per-clip start offsets and lengths; a sample is a
  clip, start frame, temporal stride (1..3), spatial crop, left-right flip and time reversal, all
  drawn as device tensors and gathered with one row ``index_select`` and one column ``gather``.
* Synthetic motion (paper "High-Efficiency Neural Video Compression via Hierarchical Predictive
  Learning", 7.2) over a tile, one kind per sample (:data:`MOTION_KINDS`): ``pan_zoom`` (camera
  pan up to 6 px/frame, zoom up to 3 %/frame), ``shake`` (per-frame offsets, 0.5-3 px std),
  ``fade`` (cross-fade to a flat colour, up to 5 %/frame), ``lighten``, ``darken``, ``pulse``
  (brightness oscillating), ``blur`` (focus pull, sigma ramping up to 2 px), ``sharpen`` (unsharp
  amount ramping) and ``layered`` (1-3 smooth-edged cut-outs of other tiles, each with its own
  translation, rotation and scale, composited in order over a panning background: occlusion as in
  optical-flow data sets). The photometric kinds get a camera pan/zoom as well half of the time.
  All B*T background frames come from one ``affine_grid``/``grid_sample`` call (bilinear,
  ``align_corners=False``), the layers from a second; blur/sharpen is a per-(sample, frame)
  separable Gaussian of fixed support, gains/offsets are per frame, and the result is clamped.
  Frame 0 is a sharp natural crop most of the time: half the clips sample the tile at scale 1 on
  the pixel grid, and only blur clips that ramp down start blurred.
* :class:`DeviceSampler` mixes the two sources and owns the random streams: a device
  ``torch.Generator`` for every per-sample value and a CPU one for the few host-side counts (how
  many samples of the batch are synthetic and of which kind, which decides the kernel shapes and
  therefore cannot come from the device without a sync). ``state_dict``/``load_state_dict``
  save and restore both exactly.
* :func:`motion_clip` renders one named motion over one photo deterministically, in float64 on
  the CPU, for building evaluation sets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F

from codec.train.config import check_camera_shares

MOTION_KINDS: tuple[str, ...] = (
    "pan_zoom",
    "shake",
    "fade",
    "lighten",
    "darken",
    "pulse",
    "blur",
    "sharpen",
    "layered",
)
"""The synthetic motion kinds (names accepted by :func:`motion_clip` and ``kind_weights``)."""

DEFAULT_KIND_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "pan_zoom": 0.24,
        "shake": 0.08,
        "fade": 0.07,
        "lighten": 0.06,
        "darken": 0.06,
        "pulse": 0.06,
        "blur": 0.08,
        "sharpen": 0.07,
        "layered": 0.28,
    }
)
"""Relative frequency of each motion kind among synthetic samples."""

MAX_LAYERS = 3
"""Most foreground cut-outs in a ``layered`` clip."""

_BLUR_RADIUS = 6  # taps either side of the separable Gaussian: 3 sigma at sigma = 2 px
_FILTERED = ("blur", "sharpen")


@dataclass(frozen=True)
class _Layers:
    """Foreground cut-outs of n layered clips, L = :data:`MAX_LAYERS` each (some inactive).

    ``centers`` (n, L, T, 2) and ``mats`` (n, L, T, 2, 2) map output pixel offsets from the frame
    centre to layer-source pixels (x, y); ``origin`` (n, L, 2) is the source pixel at the cut-out's
    centre; the mask, in source pixels around ``origin``, is an ellipse of mean radius ``radius``
    (n, L), axis ratio ``aspect`` (n, L) and orientation ``tilt`` (n, L, radians) whose radius is
    modulated by ``amps`` (n, L, 3) x cos(k phi + ``phases``) for k = 2, 3, 4 (a blob when nonzero),
    with a logistic edge of width ``edge`` (n, L) px; ``active`` (n, L) is 1 or 0.
    """

    centers: torch.Tensor
    mats: torch.Tensor
    origin: torch.Tensor
    radius: torch.Tensor
    aspect: torch.Tensor
    tilt: torch.Tensor
    amps: torch.Tensor
    phases: torch.Tensor
    edge: torch.Tensor
    active: torch.Tensor


@dataclass(frozen=True)
class _Motion:
    """Camera path and photometric change of n clips of T frames (all tensors on one device).

    ``centers`` (n, T, 2): source pixel (x, y) seen at the output frame centre; ``mats`` (n, T, 2,
    2): source pixels per output pixel (output offset -> source offset); ``gains`` (n, T) and
    ``offsets`` (n, T, 3): intensity x gain + offset per frame; ``sigmas`` (n, T): Gaussian sigma
    in output px; ``weights`` (n, T): frame + weight x (blurred - frame), so 1 blurs, -k sharpens
    by k, 0 leaves the frame alone; ``layers``: the cut-outs of ``layered`` clips, else None.
    """

    centers: torch.Tensor
    mats: torch.Tensor
    gains: torch.Tensor
    offsets: torch.Tensor
    sigmas: torch.Tensor
    weights: torch.Tensor
    layers: _Layers | None = None


class _Draw:
    """Random draws of one dtype on one device from one generator (all returned as tensors)."""

    def __init__(self, gen: torch.Generator, device: torch.device, dtype: torch.dtype) -> None:
        self.gen = gen
        self.device = device
        self.dtype = dtype

    def pair(self, x: float, y: float) -> torch.Tensor:
        """The constant vector (x, y), made on the device (no host-to-device copy)."""
        pair = torch.full((2,), float(y), device=self.device, dtype=self.dtype)
        pair[0] = float(x)
        return pair

    def uniform(self, shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
        u = torch.rand(shape, generator=self.gen, device=self.device, dtype=self.dtype)
        return low + (high - low) * u

    def log_uniform(self, shape: tuple[int, ...], low: float, high: float) -> torch.Tensor:
        return torch.exp(self.uniform(shape, math.log(low), math.log(high)))

    def chance(self, shape: tuple[int, ...], p: float) -> torch.Tensor:
        """1.0 with probability ``p``, else 0.0."""
        return (self.uniform(shape, 0.0, 1.0) < p).to(self.dtype)

    def sign(self, shape: tuple[int, ...]) -> torch.Tensor:
        return 2.0 * self.chance(shape, 0.5) - 1.0

    def normal(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self.gen, device=self.device, dtype=self.dtype)

    def direction(self, shape: tuple[int, ...]) -> torch.Tensor:
        """Unit vectors (..., 2) at uniform angles."""
        angle = self.uniform(shape, 0.0, 2.0 * math.pi)
        return torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)

    def index_below(self, count: torch.Tensor) -> torch.Tensor:
        """Uniform integers in [0, count) per element of ``count`` (int64 tensor, count >= 1)."""
        u = torch.rand(count.shape, generator=self.gen, device=self.device, dtype=torch.float64)
        return torch.minimum((u * count).long(), count - 1)


def _camera(
    draw: _Draw,
    scale0: torch.Tensor,
    zoom_rate: torch.Tensor,
    velocity: torch.Tensor,
    jitter: torch.Tensor,
    out_hw: tuple[int, int],
    src_hw: tuple[int, int],
    flip: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Place a camera path inside the source and return its ``centers`` and ``mats``.

    ``scale0`` (n,): source px per output px at frame 0 (lowered until the window fits);
    ``zoom_rate`` (n,): log scale change per frame; ``velocity`` (n, 2) and ``jitter`` (n, T, 2)
    in output px (per frame, and per-frame offsets); ``flip`` (n,): -1 mirrors left-right.
    A path longer than the room left in the source is shortened per axis; the start is uniform
    over the positions that keep every frame's window inside the source. Frame 0 of a clip at
    scale exactly 1 lands on the source pixel grid (a sharp copy).
    """
    n, frames = jitter.shape[:2]
    t = torch.arange(frames, device=draw.device, dtype=draw.dtype)
    out_h, out_w = out_hw
    half_unit = draw.pair(out_w / 2.0, out_h / 2.0)
    src = draw.pair(src_hw[1], src_hw[0])
    growth = torch.exp(zoom_rate[:, None] * t)  # (n, T)
    fit = (src / (2.0 * half_unit * growth.amax(1, keepdim=True))).amin(1) * 0.98
    scale0 = torch.minimum(scale0, fit)
    scale = scale0[:, None] * growth  # (n, T)
    path = (velocity[:, None, :] * t[None, :, None] + jitter) * scale0[:, None, None]
    half = scale[..., None] * half_unit  # (n, T, 2) half window, source px
    room = (src - 2.0 * half.amax(1)).clamp(min=0.0)
    span = path.amax(1) - path.amin(1)
    path = path * (room / span.clamp(min=1e-6)).clamp(max=1.0)[:, None, :]
    low = (half - 0.5 - path).amax(1)  # the source spans [-0.5, size - 0.5] around pixel centres
    high = torch.maximum((src - 0.5 - half - path).amin(1), low)
    start = low + draw.uniform((n, 2), 0.0, 1.0) * (high - low)
    grid_offset = draw.pair((out_w - 1) / 2.0, (out_h - 1) / 2.0)
    first, last = torch.ceil(low - grid_offset), torch.floor(high - grid_offset)
    snapped = torch.minimum(torch.maximum(torch.round(start - grid_offset), first), last)
    on_grid = (scale0 == 1.0)[:, None] & (first <= last)
    start = torch.where(on_grid, snapped + grid_offset, start)
    centers = start[:, None, :] + path
    eye = torch.eye(2, device=draw.device, dtype=draw.dtype)
    mats = scale[..., None, None] * eye
    mats = mats * torch.stack([flip, torch.ones_like(flip)], dim=-1)[:, None, None, :]
    return centers, mats


def _draw_layers(
    draw: _Draw,
    n: int,
    frames: int,
    out_hw: tuple[int, int],
    layer_src_hw: tuple[int, int],
    random_origin: bool,
) -> _Layers:
    """Cut-outs for n layered clips (see :class:`_Layers`); 1-3 active per clip.

    With ``random_origin`` the cut-out centre is anywhere in the layer source that keeps the mask
    inside (one photo used for background and layers); otherwise it is the source centre (a tile
    of its own).
    """
    shape = (n, MAX_LAYERS)
    t = torch.arange(frames, device=draw.device, dtype=draw.dtype)
    out_h, out_w = out_hw
    count = 1 + draw.index_below(torch.full((n,), MAX_LAYERS, device=draw.device))
    order = torch.arange(MAX_LAYERS, device=draw.device)
    active = (order[None, :] < count[:, None]).to(draw.dtype)
    frame_size = draw.pair(out_w, out_h)
    start = draw.uniform((*shape, 2), -0.3, 0.3) * frame_size
    velocity = draw.uniform(shape, 0.5, 6.0)[..., None] * draw.direction(shape)
    angle0 = draw.uniform(shape, -0.4, 0.4)
    spin = draw.uniform(shape, -0.035, 0.035)
    zoom0 = draw.log_uniform(shape, 0.85, 1.2)
    zoom_rate = draw.uniform(shape, -0.02, 0.02)
    radius = draw.uniform(shape, 0.1, 0.25) * min(out_h, out_w) / zoom0
    aspect = draw.log_uniform(shape, 0.75, 1.33)
    tilt = draw.uniform(shape, 0.0, math.pi)
    blob = draw.chance(shape, 0.5)
    amps = draw.uniform((*shape, 3), 0.0, 0.1) * blob[..., None]
    phases = draw.uniform((*shape, 3), 0.0, 2.0 * math.pi)
    edge = draw.uniform(shape, 0.6, 2.0)
    src = draw.pair(layer_src_hw[1], layer_src_hw[0])
    if random_origin:
        reach = (radius * (1.0 + amps.sum(-1)) + edge) * torch.maximum(aspect, 1.0 / aspect) + 2.0
        margin = torch.minimum(reach[..., None], src / 2.0)
        origin = margin + draw.uniform((*shape, 2), 0.0, 1.0) * (src - 2.0 * margin)
    else:
        origin = ((src - 1.0) / 2.0).expand(*shape, 2)
    angle = angle0[..., None] + spin[..., None] * t  # (n, L, T)
    zoom = zoom0[..., None] * torch.exp(zoom_rate[..., None] * t)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    mats = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
    position = start[:, :, None, :] + velocity[:, :, None, :] * t[:, None]  # (n, L, T, 2)
    centers = origin[:, :, None, :] - (mats @ position[..., None])[..., 0]
    return _Layers(centers, mats, origin, radius, aspect, tilt, amps, phases, edge, active)


def _draw_motion(
    draw: _Draw,
    kind: str,
    n: int,
    frames: int,
    out_hw: tuple[int, int],
    src_hw: tuple[int, int],
    *,
    flip: bool,
    layer_src_hw: tuple[int, int] | None = None,
    random_origin: bool = False,
    still: float = 0.0,
    slow: float = 0.0,
) -> _Motion:
    """Parameters of n clips of motion ``kind`` (device tensors from ``draw``), see module doc.

    ``out_hw``: output frame (height, width) px; ``src_hw``: background source size;
    ``flip``: mirror half of the clips left-right; ``layer_src_hw``: layer source size (layered).
    ``still`` and ``slow`` (training only; 0 draws exactly what evaluation sets were made with):
    the share of clips whose camera stands still (no pan, zoom or shake; layers and photometric
    changes stay) and the share whose camera pans slowly, 0-1 px/frame without zoom.
    """
    if kind not in MOTION_KINDS:
        raise ValueError(f"unknown motion kind {kind!r}; known: {MOTION_KINDS}")
    shape = (n,)
    t = torch.arange(frames, device=draw.device, dtype=draw.dtype)
    ramp = t / max(frames - 1, 1)  # 0 .. 1 over the clip
    native = draw.chance(shape, 0.5)
    scale0 = native + (1.0 - native) * draw.log_uniform(shape, 0.8, 1.4)
    zero = torch.zeros(shape, device=draw.device, dtype=draw.dtype)
    jitter = torch.zeros((n, frames, 2), device=draw.device, dtype=draw.dtype)
    if kind == "pan_zoom":
        zoom_on = draw.chance(shape, 0.5)
        pan_on = torch.maximum(draw.chance(shape, 0.85), 1.0 - zoom_on)
        speed = draw.uniform(shape, 0.5, 6.0) * pan_on
        zoom_rate = draw.uniform(shape, 0.005, 0.03) * draw.sign(shape) * zoom_on
    elif kind == "shake":
        speed, zoom_rate = zero, zero
        jitter = draw.normal((n, frames, 2)) * draw.uniform(shape, 0.5, 3.0)[:, None, None]
        jitter = jitter - jitter[:, :1]
    elif kind == "layered":
        speed = draw.uniform(shape, 0.0, 4.0)
        zoom_rate = zero
    else:  # photometric, with a camera pan/zoom half of the time
        camera = draw.chance(shape, 0.5)
        speed = draw.uniform(shape, 0.5, 6.0) * camera
        zoom_rate = draw.uniform(shape, -0.03, 0.03) * camera * draw.chance(shape, 0.3)
    if still > 0.0 or slow > 0.0:
        u = draw.uniform(shape, 0.0, 1.0)
        moving = (u >= still).to(draw.dtype)
        slowly = ((u >= still) & (u < still + slow)).to(draw.dtype)
        speed = moving * torch.lerp(speed, draw.uniform(shape, 0.0, 1.0), slowly)
        zoom_rate = zoom_rate * (moving - slowly)
        jitter = jitter * moving[:, None, None]
    velocity = speed[:, None] * draw.direction(shape)
    mirror = draw.sign(shape) if flip else torch.ones_like(zero)
    centers, mats = _camera(draw, scale0, zoom_rate, velocity, jitter, out_hw, src_hw, mirror)

    gains = torch.ones((n, frames), device=draw.device, dtype=draw.dtype)
    offsets = torch.zeros((n, frames, 3), device=draw.device, dtype=draw.dtype)
    sigmas = torch.zeros((n, frames), device=draw.device, dtype=draw.dtype)
    weights = torch.zeros((n, frames), device=draw.device, dtype=draw.dtype)
    if kind == "fade":  # cross-fade to black, white or a random colour
        amount = (draw.uniform(shape, 0.01, 0.05)[:, None] * t).clamp(max=1.0)
        pick = draw.uniform(shape, 0.0, 1.0)[:, None]
        colour = torch.where(
            pick < 0.5, 0.0, torch.where(pick < 0.7, 1.0, draw.uniform((n, 3), 0, 1))
        )
        gains = 1.0 - amount
        offsets = amount[..., None] * colour[:, None, :]
    elif kind == "lighten":
        gains = 1.0 + draw.uniform(shape, 0.0, 0.03)[:, None] * t
        offsets = (draw.uniform(shape, 0.005, 0.03)[:, None] * t)[..., None].expand(n, frames, 3)
    elif kind == "darken":
        gains = 1.0 - draw.uniform(shape, 0.01, 0.05)[:, None] * t
    elif kind == "pulse":
        amplitude = draw.uniform(shape, 0.04, 0.15) * draw.sign(shape)
        omega = 2.0 * math.pi / draw.uniform(shape, 2.5, 8.0)
        gains = 1.0 + amplitude[:, None] * torch.sin(omega[:, None] * t)
    elif kind == "blur":  # focus pull: sigma ramps up (70 %) or down to sharp
        peak = draw.uniform(shape, 0.5, 2.0)[:, None]
        up = draw.chance(shape, 0.7)[:, None]
        sigmas = peak * (up * ramp + (1.0 - up) * (1.0 - ramp))
        weights = torch.ones_like(sigmas)
    elif kind == "sharpen":  # unsharp mask whose amount ramps up from 0
        sigmas = draw.uniform(shape, 0.8, 1.5)[:, None].expand(n, frames)
        weights = -draw.uniform(shape, 0.4, 1.5)[:, None] * ramp
    layers = None
    if kind == "layered":
        layers = _draw_layers(draw, n, frames, out_hw, layer_src_hw or src_hw, random_origin)
    return _Motion(centers, mats, gains, offsets, sigmas, weights, layers)


def _cat_motions(motions: Sequence[_Motion]) -> _Motion:
    """Concatenate clips along the sample axis (layers kept only if exactly one part has them)."""
    layers = [m.layers for m in motions if m.layers is not None]
    return _Motion(
        torch.cat([m.centers for m in motions]),
        torch.cat([m.mats for m in motions]),
        torch.cat([m.gains for m in motions]),
        torch.cat([m.offsets for m in motions]),
        torch.cat([m.sigmas for m in motions]),
        torch.cat([m.weights for m in motions]),
        layers[0] if len(layers) == 1 else None,
    )


def _warp(
    src: torch.Tensor, centers: torch.Tensor, mats: torch.Tensor, out_hw: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample every frame of n clips from their sources in one ``grid_sample`` call.

    ``src``: (n, C, Hs, Ws) float; ``centers`` (n, T, 2) and ``mats`` (n, T, 2, 2) as in
    :class:`_Motion`. Returns the frames (n, C, T, H, W) (bilinear, reflection outside the
    source) and the sampling grid (n, T, H, W, 2) in ``grid_sample``'s normalised coordinates.
    """
    n, frames = centers.shape[:2]
    out_h, out_w = out_hw
    src_h, src_w = src.shape[-2:]
    theta = torch.stack(
        [
            mats[..., 0, 0] * (out_w / src_w),
            mats[..., 0, 1] * (out_h / src_w),
            (2.0 * centers[..., 0] + 1.0) / src_w - 1.0,
            mats[..., 1, 0] * (out_w / src_h),
            mats[..., 1, 1] * (out_h / src_h),
            (2.0 * centers[..., 1] + 1.0) / src_h - 1.0,
        ],
        dim=-1,
    ).view(n * frames, 2, 3)
    grid = F.affine_grid(theta, [n * frames, 3, out_h, out_w], align_corners=False)
    video = F.grid_sample(
        src,
        grid.view(n, frames * out_h, out_w, 2),
        mode="bilinear",
        padding_mode="reflection",
        align_corners=False,
    )
    channels = src.shape[1]
    return video.view(n, channels, frames, out_h, out_w), grid.view(n, frames, out_h, out_w, 2)


def _cutout_window(crop: int) -> int:
    """Side of the square around a tile's centre that holds any cut-out mask of a crop-px clip.

    The mask reaches at most aspect x (radius x bound + edge / 2) <= 1.33 x (0.294 x crop x 1.3 +
    1) < 0.51 x crop + 2 source px from its centre (ranges of :func:`_draw_layers`).
    """
    return 2 * math.ceil(0.51 * crop + 3)


def _cutouts(rgb: torch.Tensor, layers: _Layers) -> torch.Tensor:
    """Layer sources with their masks as a fourth channel: (n * L, 4, Hs, Ws).

    ``rgb``: (n * L, 3, Hs, Ws) float, layer l of clip i at row i * L + l, in the source pixel
    frame of ``layers.origin``. The mask (0 outside, 1 inside, smoothstep across ``edge`` px)
    is computed once per layer in source pixels and warped with the texture, so it moves rigidly
    with it; inactive layers get an all-zero mask.
    """
    count, _, height, width = rgb.shape

    def per_layer(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(count, 1, 1)

    x = torch.arange(width, device=rgb.device, dtype=rgb.dtype)[None, None, :]
    y = torch.arange(height, device=rgb.device, dtype=rgb.dtype)[None, :, None]
    x = x - per_layer(layers.origin[..., 0])
    y = y - per_layer(layers.origin[..., 1])
    cos, sin = per_layer(torch.cos(layers.tilt)), per_layer(torch.sin(layers.tilt))
    along, across = x * cos + y * sin, y * cos - x * sin
    aspect = per_layer(layers.aspect)
    rho = torch.hypot(along / aspect, across * aspect)
    phi = torch.atan2(across, along)
    bound = torch.ones_like(phi)
    for k in range(3):
        amp, phase = per_layer(layers.amps[..., k]), per_layer(layers.phases[..., k])
        bound = bound + amp * torch.cos((k + 2) * phi + phase)
    ramp = ((per_layer(layers.radius) * bound - rho) / per_layer(layers.edge) + 0.5).clamp_(0, 1)
    alpha = ramp * ramp * (3.0 - 2.0 * ramp) * per_layer(layers.active)
    return torch.cat([rgb, alpha[:, None]], dim=1)


def _composite(
    background: torch.Tensor, cutouts: torch.Tensor, layers: _Layers
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lay the cut-outs over the background frames in place, later layers covering earlier ones.

    ``background``: (n, 3, T, H, W), overwritten; ``cutouts``: (n * L, 4, Hs, Ws) from
    :func:`_cutouts`. Returns the frames (``background``) and the warped masks (n, L, T, H, W).
    """
    n, _, frames, out_h, out_w = background.shape
    count = n * MAX_LAYERS
    video, _ = _warp(
        cutouts,
        layers.centers.reshape(count, frames, 2),
        layers.mats.reshape(count, frames, 2, 2),
        (out_h, out_w),
    )
    video = video.view(n, MAX_LAYERS, 4, frames, out_h, out_w)
    for layer in range(MAX_LAYERS):
        background.lerp_(video[:, layer, :3], video[:, layer, 3:4])
    return background, video[:, :, 3]


def _blur_matrices(kernel: torch.Tensor, length: int) -> torch.Tensor:
    """Matrices M (..., length, length) with ``row @ M`` = ``row`` convolved with ``kernel``.

    ``kernel`` (..., K), K odd, centred; the border is mirrored without repeating the edge pixel
    (``F.pad`` "reflect"), which needs length > K // 2.
    """
    radius = kernel.shape[-1] // 2
    device = kernel.device
    taps = torch.arange(-radius, radius + 1, device=device)
    source = torch.arange(length, device=device)[:, None] + taps  # (length, K): output j, tap k
    source = source.abs()
    source = torch.where(source > length - 1, 2 * (length - 1) - source, source)
    rows = torch.arange(length, device=device)
    onehot = (source[None, :, :] == rows[:, None, None]).to(kernel.dtype)  # (i, j, k)
    flat = kernel.reshape(-1, kernel.shape[-1]) @ onehot.view(length * length, -1).T
    return flat.view(*kernel.shape[:-1], length, length)


def _filter(video: torch.Tensor, sigmas: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Blur or unsharp-mask each frame: frame + weight x (Gaussian(frame, sigma) - frame).

    ``video``: (n, 3, T, H, W); ``sigmas``, ``weights``: (n, T) (sigma in px, at most ~2 for the
    fixed 13-tap support). Separable, reflect padding, applied as two batched matrix products
    with banded per-(sample, frame) matrices (deterministic on every device, no cuDNN algorithm
    choice). Returns (n, 3, T, H, W) (a permuted view).
    """
    height, width = video.shape[-2:]
    taps = torch.arange(-_BLUR_RADIUS, _BLUR_RADIUS + 1, device=video.device, dtype=video.dtype)
    kernel = torch.exp(-0.5 * (taps / sigmas[..., None].clamp(min=1e-3)) ** 2)
    kernel = kernel / kernel.sum(-1, keepdim=True)  # (n, T, K)
    frames = video.permute(0, 2, 1, 3, 4)  # (n, T, 3, H, W)
    blurred = frames @ _blur_matrices(kernel, width)[:, :, None]
    blurred = _blur_matrices(kernel, height).transpose(-1, -2)[:, :, None] @ blurred
    out = frames + weights[:, :, None, None, None] * (blurred - frames)
    return out.permute(0, 2, 1, 3, 4)


def _photometric(video: torch.Tensor, motion: _Motion) -> torch.Tensor:
    """Per-frame gain and per-channel offset, then clamp to [0, 1]; ``video`` (n, 3, T, H, W)."""
    gains = motion.gains[:, None, :, None, None]
    offsets = motion.offsets.permute(0, 2, 1)[..., None, None]
    return torch.addcmul(offsets, video, gains).clamp_(0.0, 1.0)


def _check_image(image: np.ndarray, what: str) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"{what} must be a uint8 numpy array")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what} must be H x W x 3 RGB, got shape {image.shape}")


def motion_clip(
    photo: np.ndarray, kind: str, frames: int, size: tuple[int, int], seed: int
) -> np.ndarray:
    """One deterministic clip of motion ``kind`` over ``photo``, for evaluation sets.

    ``photo``: H x W x 3 uint8 RGB (any size of at least 16 px a side; a photo smaller than the
    frame is upsampled). ``kind``: one of :data:`MOTION_KINDS`. ``size``: (width, height) of the
    frames in px, each at least 16. Returns ``frames`` x height x width x 3 uint8. Rendered in
    float64 on the CPU from a CPU ``torch.Generator`` seeded with ``seed``, so the same arguments
    give the same clip on every machine; ``layered`` cuts its layers from other parts of the photo.
    """
    _check_image(photo, "photo")
    if kind not in MOTION_KINDS:
        raise ValueError(f"unknown motion kind {kind!r}; known: {MOTION_KINDS}")
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    width, height = (int(v) for v in size)
    if width < 16 or height < 16:
        raise ValueError(f"size must be at least 16 x 16 px, got {size}")
    if min(photo.shape[:2]) < 16:
        raise ValueError(f"photo must be at least 16 px a side, got {photo.shape[:2]}")
    motion = _clip_motion((photo.shape[0], photo.shape[1]), kind, frames, (height, width), seed)
    src = torch.from_numpy(np.ascontiguousarray(photo.transpose(2, 0, 1))).double()[None] / 255.0
    video, _ = _render_clip(src, motion, (height, width), kind in _FILTERED)
    clip = torch.round(video[0].permute(1, 2, 3, 0) * 255.0).to(torch.uint8)
    return clip.numpy()


def _clip_motion(
    src_hw: tuple[int, int], kind: str, frames: int, out_hw: tuple[int, int], seed: int
) -> _Motion:
    """The float64 CPU parameters :func:`motion_clip` renders (one clip, layers from the photo)."""
    gen = torch.Generator().manual_seed(int(seed) % 2**63)
    draw = _Draw(gen, torch.device("cpu"), torch.float64)
    return _draw_motion(draw, kind, 1, frames, out_hw, src_hw, flip=False, random_origin=True)


def _render_clip(
    src: torch.Tensor, motion: _Motion, out_hw: tuple[int, int], filtered: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Render n clips whose backgrounds and layers all come from ``src`` (n, 3, Hs, Ws).

    ``filtered``: apply the blur/sharpen stage (``blur`` and ``sharpen`` clips). Returns the
    frames (n, 3, T, H, W) in [0, 1] and, for layered motion, the masks (n, L, T, H, W), else None.
    """
    n = src.shape[0]
    with torch.no_grad():
        video, _ = _warp(src, motion.centers, motion.mats, out_hw)
        alpha = None
        if motion.layers is not None:
            layer_src = (
                src.repeat_interleave(MAX_LAYERS, dim=0)
                if n > 1
                else src.expand(MAX_LAYERS, -1, -1, -1)
            )
            video, alpha = _composite(video, _cutouts(layer_src, motion.layers), motion.layers)
        if filtered:
            video = _filter(video, motion.sigmas, motion.weights)
        return _photometric(video, motion), alpha


def _resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bilinear resize of (N, 3, H, W) float to (N, 3, height, width)."""
    if image.shape[-2:] == (height, width):
        return image
    return F.interpolate(
        image, size=(height, width), mode="bilinear", align_corners=False, antialias=True
    )


def _resize_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Antialiased bilinear resize of an H x W x 3 uint8 image to height x width x 3 uint8."""
    if image.shape[:2] == (height, width):
        return image
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float()
    x = _resize(x, height, width).round_().clamp_(0.0, 255.0).to(torch.uint8)
    return x[0].permute(1, 2, 0).numpy()


def _positions(length: int, tile: int, stride: int) -> list[int]:
    """Evenly spread tile starts covering [0, length) with gaps of at most ``stride``."""
    count = math.ceil((length - tile) / stride) + 1
    if count == 1:
        return [(length - tile) // 2]
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


class PhotoBank:
    """Square tiles of photos as one uint8 tensor ``tiles`` (N, 3, tile, tile) on ``device``.

    Each photo (H x W x 3 uint8 RGB) is tiled at every scale of ``scales`` (relative to the
    photo) with tile starts at most ``stride`` px apart (default ``tile // 2``); at scale 1 a
    photo whose short side is below ``tile`` is upsampled to it, at smaller scales such photos
    are skipped. A tile whose mean absolute luma gradient is below ``min_gradient`` (8-bit levels
    per px) is dropped as flat, except that every photo keeps its most textured tile.
    ``source`` (N,) int64 on ``device`` is the photo index of each tile.
    """

    def __init__(
        self,
        photos: Sequence[np.ndarray],
        tile: int,
        device: torch.device | str,
        scales: Sequence[float] = (1.0, 0.5),
        stride: int | None = None,
        min_gradient: float = 2.0,
    ) -> None:
        if not photos:
            raise ValueError("no photos")
        if tile < 16:
            raise ValueError(f"tile must be at least 16 px, got {tile}")
        if not scales or any(not 0.0 < s <= 1.0 for s in scales):
            raise ValueError(f"scales must be in (0, 1], got {tuple(scales)}")
        stride = stride or tile // 2
        if stride < 1:
            raise ValueError(f"stride must be positive, got {stride}")
        self.tile = tile
        self.device = torch.device(device)
        luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        kept: list[np.ndarray] = []
        sources: list[int] = []
        for index, photo in enumerate(photos):
            _check_image(photo, f"photo {index}")
            height, width = photo.shape[:2]
            candidates: list[tuple[float, np.ndarray]] = []
            for scale in scales:
                if min(height, width) * scale < tile and scale < 1.0:
                    continue
                factor = max(scale, tile / min(height, width))
                h, w = max(tile, round(height * factor)), max(tile, round(width * factor))
                scaled = _resize_image(photo, h, w)  # h x w x 3 uint8
                y = scaled.astype(np.float32) @ luma
                gradient = np.zeros((h + 1, w + 1), np.float64)  # integral image of |grad y|
                gradient[1:, 2:] += np.abs(np.diff(y, axis=1))
                gradient[2:, 1:] += np.abs(np.diff(y, axis=0))
                gradient = gradient.cumsum(0).cumsum(1)
                for top in _positions(h, tile, stride):
                    for left in _positions(w, tile, stride):
                        bottom, right = top + tile, left + tile
                        total = (
                            gradient[bottom, right]
                            - gradient[top, right]
                            - gradient[bottom, left]
                            + gradient[top, left]
                        )
                        cut = scaled[top:bottom, left:right].transpose(2, 0, 1)
                        candidates.append((total / tile**2, cut))
            best = max(c[0] for c in candidates)
            for energy, cut in candidates:
                if energy >= min_gradient or energy == best:
                    kept.append(cut)
                    sources.append(index)
        self.tiles = torch.from_numpy(np.stack(kept)).to(self.device)
        self.source = torch.tensor(sources, dtype=torch.int64).to(self.device)

    def __len__(self) -> int:
        return self.tiles.shape[0]


class ClipBank:
    """Frames of real clips as one uint8 tensor ``frames`` (F, 3, H, W) on ``device``.

    Each clip (T x H x W x 3 uint8 RGB) is resized so its short side is ``short_side`` (default:
    the smallest short side among the clips, but at least ``crop``), then centre-cropped to the
    common size H x W (the smallest resized height and width); at most ``max_frames`` frames per
    clip are kept. ``starts`` and ``lengths`` (C,) int64 on ``device`` locate clip c in
    ``frames``; ``lengths_host`` has the lengths as Python ints (for argument checks).
    """

    def __init__(
        self,
        clips: Sequence[np.ndarray],
        crop: int,
        device: torch.device | str,
        short_side: int | None = None,
        max_frames: int | None = None,
    ) -> None:
        if not clips:
            raise ValueError("no clips")
        for index, clip in enumerate(clips):
            if not isinstance(clip, np.ndarray) or clip.dtype != np.uint8:
                raise ValueError(f"clip {index} must be a uint8 numpy array")
            if clip.ndim != 4 or clip.shape[3] != 3 or clip.shape[0] < 1:
                raise ValueError(f"clip {index} must be T x H x W x 3 RGB, got {clip.shape}")
            if min(clip.shape[1:3]) < crop / 2:
                raise ValueError(
                    f"clip {index} is {clip.shape[2]} x {clip.shape[1]} px, too small for "
                    f"{crop} px crops (short side must be at least {crop / 2:g})"
                )
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be positive, got {max_frames}")
        self.crop = crop
        self.device = torch.device(device)
        side = short_side or max(crop, min(min(c.shape[1:3]) for c in clips))
        if side < crop:
            raise ValueError(f"short_side {side} is below the crop {crop}")
        sizes = []
        for clip in clips:
            factor = side / min(clip.shape[1:3])
            sizes.append(
                (max(side, round(clip.shape[1] * factor)), max(side, round(clip.shape[2] * factor)))
            )
        self.height = min(s[0] for s in sizes)
        self.width = min(s[1] for s in sizes)
        self.lengths_host = [min(len(c), max_frames or len(c)) for c in clips]
        frames = torch.empty(
            (sum(self.lengths_host), 3, self.height, self.width), dtype=torch.uint8
        )
        at = 0
        for clip, (h, w), length in zip(clips, sizes, self.lengths_host, strict=True):
            top, left = (h - self.height) // 2, (w - self.width) // 2
            for first in range(0, length, 32):
                chunk = torch.from_numpy(clip[first : min(first + 32, length)]).permute(0, 3, 1, 2)
                if (h, w) != tuple(clip.shape[1:3]):
                    chunk = _resize(chunk.float(), h, w).round_().clamp_(0.0, 255.0)
                chunk = chunk[:, :, top : top + self.height, left : left + self.width]
                frames[at + first : at + first + chunk.shape[0]] = chunk.to(torch.uint8)
            at += length
        self.frames = frames.to(self.device)
        lengths = torch.tensor(self.lengths_host, dtype=torch.int64)
        self.lengths = lengths.to(self.device)
        self.starts = (torch.cumsum(lengths, 0) - lengths).to(self.device)

    def __len__(self) -> int:
        return len(self.lengths_host)

    def sample(
        self,
        count: int,
        frames: int,
        gen: torch.Generator,
        max_stride: int = 3,
        flip: bool = True,
        reverse: bool = True,
    ) -> torch.Tensor:
        """``count`` random clips of ``frames`` frames: (count, T, 3, crop, crop) uint8.

        The clip is drawn with probability proportional to its number of valid starts at
        stride 1, the stride uniformly in 1..min(``max_stride``, what the clip allows), then
        the start, the crop position, a left-right flip and a time reversal (each p 0.5) -
        all on the device from ``gen`` (a generator of the bank's device), with no host sync.
        """
        if frames > max(self.lengths_host):
            raise ValueError(f"{frames} frames exceed the longest clip ({max(self.lengths_host)})")
        draw = _Draw(gen, self.device, torch.float32)
        room = (self.lengths - (frames - 1)).clamp(min=0)
        cumulative = torch.cumsum(room, 0)
        pick = draw.index_below(cumulative[-1].expand(count))
        clip = torch.searchsorted(cumulative, pick, right=True)
        length = self.lengths[clip]
        longest = ((length - 1) // max(frames - 1, 1)).clamp(min=1, max=max_stride)
        stride = 1 + draw.index_below(longest)
        start = draw.index_below(length - (frames - 1) * stride)
        top = draw.index_below(
            torch.full((count,), self.height - self.crop + 1, device=self.device)
        )
        left = draw.index_below(
            torch.full((count,), self.width - self.crop + 1, device=self.device)
        )
        t = torch.arange(frames, device=self.device)
        if reverse:
            t = torch.where(draw.chance((count, 1), 0.5) > 0, frames - 1 - t, t)
        index = (self.starts[clip] + start)[:, None] + t * stride[:, None]  # (count, T)
        j = torch.arange(self.crop, device=self.device)
        cols = j.expand(count, -1)
        if flip:
            cols = torch.where(draw.chance((count, 1), 0.5) > 0, self.crop - 1 - j, j)
        rows = top[:, None] + j
        cols = left[:, None] + cols
        channel = torch.arange(3, device=self.device)
        lines = (index[:, :, None, None] * 3 + channel[:, None]) * self.height + rows[:, None, None]
        lines = self.frames.view(-1, self.width).index_select(0, lines.reshape(-1))
        lines = lines.view(count, frames * 3 * self.crop, self.width)
        picked = torch.gather(lines, 2, cols[:, None, :].expand(-1, lines.shape[1], -1))
        return picked.view(count, frames, 3, self.crop, self.crop)


class DeviceSampler:
    """Training batches (B, T, 3, crop, crop) float32 in [0, 1] drawn entirely on ``device``.

    ``photos``: H x W x 3 uint8 RGB stills (short side at least crop / 2), cut into a
    :class:`PhotoBank` of ``tile`` px tiles (default 2 x crop); ``clips``: T x H x W x 3 uint8
    RGB videos for a :class:`ClipBank`. Each sample is synthetic motion over a tile with
    probability ``synthetic_fraction`` (the batch's synthetic count is that fraction of B,
    stochastically rounded), of a kind drawn with ``kind_weights`` (default
    :data:`DEFAULT_KIND_WEIGHTS`), else a real clip; with only photos or only clips every sample
    is of that kind. ``still_fraction`` of the synthetic clips keep their camera still and
    ``slow_fraction`` pan it at 0-1 px/frame (real video often stands still or moves slowly; the
    paper-7.2 kinds alone never do). Samples are shuffled within the batch. The same ``seed`` and
    the same calls give the same batches on the same device; ``state_dict``/``load_state_dict``
    resume exactly.
    """

    def __init__(
        self,
        photos: Sequence[np.ndarray],
        clips: Sequence[np.ndarray],
        crop: int,
        device: torch.device | str,
        seed: int,
        synthetic_fraction: float = 0.5,
        *,
        tile: int | None = None,
        kind_weights: Mapping[str, float] | None = None,
        max_stride: int = 3,
        max_clip_frames: int | None = None,
        still_fraction: float = 0.0,
        slow_fraction: float = 0.0,
    ) -> None:
        if not isinstance(crop, int) or crop < 16 or crop % 16:
            raise ValueError(f"crop must be a positive multiple of 16, got {crop}")
        if not 0.0 <= synthetic_fraction <= 1.0:
            raise ValueError(f"synthetic_fraction must be in [0, 1], got {synthetic_fraction}")
        if not photos and not clips:
            raise ValueError("no sources: give photos, clips or both")
        if max_stride < 1:
            raise ValueError(f"max_stride must be at least 1, got {max_stride}")
        check_camera_shares(still_fraction, slow_fraction)
        tile = tile or 2 * crop
        if tile < crop:
            raise ValueError(f"tile ({tile}) must be at least the crop ({crop})")
        weights = dict(DEFAULT_KIND_WEIGHTS if kind_weights is None else kind_weights)
        unknown = sorted(set(weights) - set(MOTION_KINDS))
        if unknown:
            raise ValueError(f"unknown motion kinds {unknown}; known: {MOTION_KINDS}")
        if (
            any(w < 0 or not math.isfinite(w) for w in weights.values())
            or not sum(weights.values()) > 0
        ):
            raise ValueError(f"kind_weights must be finite, non-negative, not all zero: {weights}")
        for index, photo in enumerate(photos):
            _check_image(photo, f"photo {index}")
            if min(photo.shape[:2]) < crop / 2:
                raise ValueError(
                    f"photo {index} is {photo.shape[1]} x {photo.shape[0]} px, too small for "
                    f"{crop} px crops (short side must be at least {crop / 2:g})"
                )
        self.crop = crop
        self.device = torch.device(device)
        self.synthetic_fraction = float(synthetic_fraction)
        self.max_stride = max_stride
        self.still_fraction = float(still_fraction)
        self.slow_fraction = float(slow_fraction)
        self.kind_weights = torch.tensor(
            [weights.get(k, 0.0) for k in MOTION_KINDS], dtype=torch.float64
        )
        self.photos = PhotoBank(photos, tile, self.device) if photos else None
        self.clips = (
            ClipBank(clips, crop, self.device, max_frames=max_clip_frames) if clips else None
        )
        self._device_gen = torch.Generator(device=self.device)
        self._device_gen.manual_seed(int(seed) % 2**63)
        self._host_gen = torch.Generator()
        self._host_gen.manual_seed((int(seed) + 0x9E3779B97F4A7C15) % 2**63)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Both generator states (CPU uint8 tensors); loading them replays the same batches."""
        return {
            "device_rng": self._device_gen.get_state().clone(),
            "host_rng": self._host_gen.get_state().clone(),
        }

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore the generator states saved by :meth:`state_dict`."""
        missing = {"device_rng", "host_rng"} - set(state)
        if missing:
            raise ValueError(f"sampler state lacks {sorted(missing)}")
        self._device_gen.set_state(state["device_rng"].cpu())
        self._host_gen.set_state(state["host_rng"].cpu())

    def _synthetic_count(self, batch_size: int) -> int:
        if self.clips is None:
            return batch_size
        if self.photos is None:
            return 0
        u = float(torch.rand((), generator=self._host_gen, dtype=torch.float64))
        return min(batch_size, math.floor(batch_size * self.synthetic_fraction + u))

    def _synthetic(self, bank: PhotoBank, count: int, frames: int) -> torch.Tensor:
        """``count`` synthetic clips over ``bank``: (count, 3, T, crop, crop) float32 in [0, 1].

        The kinds are drawn on the host generator (they fix which stages run on which slice);
        every per-sample value is drawn on the device generator.
        """
        kinds = torch.multinomial(self.kind_weights, count, True, generator=self._host_gen)
        counts = torch.bincount(kinds, minlength=len(MOTION_KINDS)).tolist()
        # Render order: layered, then blur and sharpen, then the rest (slices stay contiguous).
        order = [
            "layered",
            *_FILTERED,
            *(k for k in MOTION_KINDS if k not in ("layered", *_FILTERED)),
        ]
        draw = _Draw(self._device_gen, self.device, torch.float32)
        tile = bank.tile
        window = min(tile, _cutout_window(self.crop))
        out_hw = (self.crop, self.crop)
        motions = [
            _draw_motion(
                draw,
                kind,
                counts[MOTION_KINDS.index(kind)],
                frames,
                out_hw,
                (tile, tile),
                flip=True,
                layer_src_hw=(window, window),
                still=self.still_fraction,
                slow=self.slow_fraction,
            )
            for kind in order
            if counts[MOTION_KINDS.index(kind)]
        ]
        motion = _cat_motions(motions)
        index = torch.randint(len(bank), (count,), generator=self._device_gen, device=self.device)
        src = bank.tiles.index_select(0, index).float().div_(255.0)
        video, _ = _warp(src, motion.centers, motion.mats, out_hw)
        layered = counts[MOTION_KINDS.index("layered")]
        if layered and motion.layers is not None:
            layer_index = torch.randint(
                len(bank), (layered * MAX_LAYERS,), generator=self._device_gen, device=self.device
            )
            corner = (tile - window) // 2
            centre = bank.tiles[:, :, corner : corner + window, corner : corner + window]
            rgb = centre.index_select(0, layer_index).float().div_(255.0)
            _composite(video[:layered], _cutouts(rgb, motion.layers), motion.layers)
        filtered = sum(counts[MOTION_KINDS.index(k)] for k in _FILTERED)
        if filtered:
            part = slice(layered, layered + filtered)
            video[part] = _filter(video[part], motion.sigmas[part], motion.weights[part])
        return _photometric(video, motion)

    def batch(self, batch_size: int, frames: int) -> torch.Tensor:
        """(``batch_size``, ``frames``, 3, crop, crop) float32 in [0, 1] on the device.

        No host synchronisation: every per-sample value is drawn on the device.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if frames < 1:
            raise ValueError(f"frames must be at least 1, got {frames}")
        if self.clips is not None and frames > max(self.clips.lengths_host):
            raise ValueError(
                f"{frames} frames exceed the longest clip ({max(self.clips.lengths_host)})"
            )
        synthetic = self._synthetic_count(batch_size)
        out = torch.empty(
            (batch_size, frames, 3, self.crop, self.crop), device=self.device, dtype=torch.float32
        )
        with torch.no_grad():
            # Scatter the synthetic (grouped by kind) and real samples to random batch positions.
            keys = torch.rand(batch_size, generator=self._device_gen, device=self.device)
            order = torch.argsort(keys, stable=True)
            if synthetic and self.photos is not None:
                video = self._synthetic(self.photos, synthetic, frames).permute(0, 2, 1, 3, 4)
                out.index_copy_(0, order[:synthetic], video)
            if synthetic < batch_size and self.clips is not None:
                real = self.clips.sample(
                    batch_size - synthetic, frames, self._device_gen, self.max_stride
                )
                out.index_copy_(0, order[synthetic:], real.float().div_(255.0))
        return out
