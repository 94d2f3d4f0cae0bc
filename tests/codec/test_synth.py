"""Device-side training clips (codec.train.synth): shapes, determinism, resume, motion kinds,
clips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from codec.train.synth import (
    MAX_LAYERS,
    MOTION_KINDS,
    ClipBank,
    DeviceSampler,
    PhotoBank,
    _clip_motion,
    _Draw,
    _draw_motion,
    _filter,
    _render_clip,
    _warp,
    motion_clip,
)

CPU = torch.device("cpu")


def _texture(height: int, width: int, seed: int, smooth: float = 1.2) -> np.ndarray:
    """A textured H x W x 3 uint8 photo: smoothed noise stretched over 20..235."""
    rng = np.random.default_rng(seed)
    image = gaussian_filter(rng.random((height, width, 3)), sigma=(smooth, smooth, 0))
    low, high = image.min(axis=(0, 1)), image.max(axis=(0, 1))
    return np.round(20 + 215 * (image - low) / (high - low)).astype(np.uint8)


def _clip(frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """A T x H x W x 3 uint8 clip: a texture drifting one pixel right per frame."""
    base = _texture(height, width + frames, seed)
    return np.stack([base[:, frames - t : frames - t + width] for t in range(frames)])


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return [_texture(96, 128, 1), _texture(80, 112, 2)]


@pytest.fixture(scope="module")
def clips() -> list[np.ndarray]:
    return [_clip(12, 40, 56, 3), _clip(9, 48, 64, 4)]


def _luma(frame: np.ndarray) -> np.ndarray:
    """H x W float luma of an H x W x 3 uint8 frame."""
    return frame.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _shift_error(a: np.ndarray, b: np.ndarray, dx: int, dy: int, margin: int) -> float:
    """Mean |b(x) - a(x - d)| over the interior (``margin`` px kept clear of the borders)."""
    h, w = a.shape
    inner = b[margin : h - margin, margin : w - margin]
    moved = a[margin - dy : h - margin - dy, margin - dx : w - margin - dx]
    return float(np.abs(inner - moved).mean())


def _best_shift(a: np.ndarray, b: np.ndarray, radius: int) -> tuple[int, int, float]:
    """The integer displacement (dx, dy) with b(x) ~ a(x - d), and its error."""
    errors = {
        (dx, dy): _shift_error(a, b, dx, dy, radius)
        for dx in range(-radius, radius + 1)
        for dy in range(-radius, radius + 1)
    }
    (dx, dy), error = min(errors.items(), key=lambda item: item[1])
    return dx, dy, error


def _high_frequency(frame: np.ndarray) -> float:
    """Mean squared horizontal plus vertical luma differences."""
    y = _luma(frame)
    return float((np.diff(y, axis=0) ** 2).mean() + (np.diff(y, axis=1) ** 2).mean())


def _camera_shift(motion, t: int) -> np.ndarray:
    """Background content displacement (dx, dy) in output px from frame 0 to frame t."""
    centers = motion.centers[0].numpy()
    return -(centers[t] - centers[0]) / float(motion.mats[0, 0, 1, 1])


# --- the sampler -----------------------------------------------------------------------------


def test_batch_shape_dtype_range(photos, clips):
    sampler = DeviceSampler(photos, clips, 32, "cpu", seed=0)
    for frames in (1, 3, 7):
        batch = sampler.batch(5, frames)
        assert batch.shape == (5, frames, 3, 32, 32)
        assert batch.dtype == torch.float32 and batch.device == CPU
        assert float(batch.min()) >= 0.0 and float(batch.max()) <= 1.0
        assert torch.isfinite(batch).all()
    assert sampler.batch(1, 3).shape == (1, 3, 3, 32, 32)


def test_same_seed_same_batches_other_seed_differs(photos, clips):
    first = DeviceSampler(photos, clips, 32, "cpu", seed=7)
    second = DeviceSampler(photos, clips, 32, "cpu", seed=7)
    other = DeviceSampler(photos, clips, 32, "cpu", seed=8)
    for frames in (3, 1, 7):
        a, b, c = first.batch(6, frames), second.batch(6, frames), other.batch(6, frames)
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


def test_state_dict_resumes_exactly(photos, clips):
    sampler = DeviceSampler(photos, clips, 32, "cpu", seed=3)
    sampler.batch(4, 3)
    state = sampler.state_dict()
    ahead = [sampler.batch(4, frames) for frames in (3, 7, 1)]
    sampler.load_state_dict(state)
    again = [sampler.batch(4, frames) for frames in (3, 7, 1)]
    fresh = DeviceSampler(photos, clips, 32, "cpu", seed=99)
    fresh.load_state_dict(state)
    elsewhere = [fresh.batch(4, frames) for frames in (3, 7, 1)]
    for x, y, z in zip(ahead, again, elsewhere, strict=True):
        assert torch.equal(x, y) and torch.equal(x, z)
    with pytest.raises(ValueError, match="lacks"):
        sampler.load_state_dict({"device_rng": state["device_rng"]})


def test_photos_only_and_clips_only(photos, clips):
    only_photos = DeviceSampler(photos, [], 32, "cpu", seed=1, synthetic_fraction=0.0)
    assert only_photos.clips is None
    assert only_photos.batch(4, 3).shape == (4, 3, 3, 32, 32)
    only_clips = DeviceSampler([], clips, 32, "cpu", seed=1, synthetic_fraction=1.0)
    assert only_clips.photos is None
    batch = only_clips.batch(4, 3)
    assert batch.shape == (4, 3, 3, 32, 32)
    levels = batch * 255.0  # real frames are copied, not resampled: exact 8-bit levels
    assert torch.allclose(levels, levels.round(), atol=1e-4)


@pytest.mark.parametrize("kind", MOTION_KINDS)
def test_sampler_renders_each_kind(photos, kind):
    sampler = DeviceSampler(photos, [], 32, "cpu", seed=2, kind_weights={kind: 1.0})
    batch = sampler.batch(3, 3)
    assert batch.shape == (3, 3, 3, 32, 32)
    assert float(batch.min()) >= 0.0 and float(batch.max()) <= 1.0
    assert (batch[:, 1:] - batch[:, :1]).abs().amax() > 0.01  # something changes


def test_photo_bank_tiles(photos):
    bank = PhotoBank(photos, 64, "cpu")
    assert bank.tiles.dtype == torch.uint8 and bank.tiles.shape[1:] == (3, 64, 64)
    assert set(bank.source.tolist()) == {0, 1}
    flat = np.full((100, 100, 3), 128, np.uint8)
    flat[:10, :10] = 0  # texture in one corner only
    single = PhotoBank([flat], 64, "cpu", scales=(1.0,), stride=18)
    assert 1 <= len(single) < 9  # flat tiles are dropped, the most textured one is kept
    small = PhotoBank([_texture(40, 50, 5)], 64, "cpu")  # upsampled to fill a tile
    assert len(small) >= 1


# --- real clips -------------------------------------------------------------------------------


def _coded_clips() -> list[np.ndarray]:
    """Clips whose pixels encode (clip, frame, column): R = 40 + 60 c, G = 10 + 7 f, B = 5 x."""
    out = []
    for c, length in enumerate((5, 9, 16)):
        clip = np.empty((length, 40, 48, 3), np.uint8)
        clip[..., 0] = 40 + 60 * c
        clip[..., 1] = (10 + 7 * np.arange(length))[:, None, None]
        clip[..., 2] = 5 * np.arange(48)
        out.append(clip)
    return out


def test_clip_sampling_stays_inside_one_clip():
    lengths = (5, 9, 16)
    sampler = DeviceSampler([], _coded_clips(), 32, "cpu", seed=4)
    batch = np.round(sampler.batch(64, 4).numpy() * 255.0).astype(int)  # B, T, 3, H, W
    strides, flips, reversals = set(), set(), set()
    for clip in batch:
        red, green, blue = clip[:, 0], clip[:, 1], clip[:, 2]
        assert (red == red[0, 0, 0]).all()  # one clip throughout
        c = (red[0, 0, 0] - 40) // 60
        assert (green == green[:, :1, :1]).all()
        index = (green[:, 0, 0] - 10) // 7
        assert ((index >= 0) & (index < lengths[c])).all()
        steps = np.diff(index)
        assert (steps == steps[0]).all() and 1 <= abs(steps[0]) <= 3
        assert abs(steps[0]) * 3 < lengths[c]  # the stride fits the clip
        strides.add(abs(int(steps[0])))
        reversals.add(bool(steps[0] < 0))
        columns = np.diff(blue[0, 0]) // 5
        assert (columns == columns[0]).all() and abs(columns[0]) == 1
        assert (blue == blue[:1, :1, :]).all()  # same columns on every row and frame
        flips.add(bool(columns[0] < 0))
    assert strides == {1, 2, 3} and flips == {False, True} and reversals == {False, True}
    with pytest.raises(ValueError, match="longest clip"):
        sampler.batch(2, 17)


def test_clip_bank_common_size():
    bank = ClipBank([_clip(4, 40, 56, 6), _clip(3, 60, 50, 7)], 32, "cpu")
    assert bank.frames.shape == (7, 3, 40, 40)  # short side 40, widths 56 and 40 -> 40
    assert bank.starts.tolist() == [0, 4] and bank.lengths.tolist() == [4, 3]
    gen = torch.Generator().manual_seed(0)
    assert bank.sample(5, 3, gen).shape == (5, 3, 3, 32, 32)


# --- motion kinds -----------------------------------------------------------------------------


def test_warp_pans_on_the_pixel_grid():
    """A camera moving (3, -2) px per frame at scale 1 copies shifted crops exactly."""
    src = torch.from_numpy(_texture(64, 64, 8).transpose(2, 0, 1)).double()[None] / 255.0
    c0 = torch.tensor([20.0 + 15.5, 30.0 + 15.5], dtype=torch.float64)  # (W - 1) / 2 = 15.5
    velocity = torch.tensor([3.0, -2.0], dtype=torch.float64)
    centers = (c0 + velocity * torch.arange(3.0, dtype=torch.float64)[:, None])[None]
    mats = torch.eye(2, dtype=torch.float64).expand(1, 3, 2, 2)
    video, _ = _warp(src, centers, mats, (32, 32))
    for t in range(3):
        left, top = 20 + 3 * t, 30 - 2 * t
        assert torch.allclose(video[0, :, t], src[0, :, top : top + 32, left : left + 32])


def test_drawn_motions_stay_inside_with_paper_magnitudes():
    gen = torch.Generator().manual_seed(11)
    draw = _Draw(gen, CPU, torch.float64)
    out_hw, tile, frames = (32, 32), 64, 7
    for kind in MOTION_KINDS:
        motion = _draw_motion(draw, kind, 200, frames, out_hw, (tile, tile), flip=True)
        scale = motion.mats[..., 1, 1]
        assert (motion.mats[..., 0, 0].abs() == scale).all() and (scale > 0).all()
        half = scale[..., None] * 16.0
        assert (motion.centers - half >= -0.5 - 1e-9).all()
        assert (motion.centers + half <= tile - 0.5 + 1e-9).all()
        ratio = (scale[:, 1:] / scale[:, :-1]).log().abs()
        assert float(ratio.max()) <= 0.03 + 1e-9  # zoom at most 3 % per frame
        if kind != "shake":
            step = (motion.centers[:, 1:] - motion.centers[:, :-1]).norm(dim=-1)
            assert float((step / scale[:, :1]).max()) <= 6.0 + 1e-6  # pan <= 6 px per frame
        native = scale[:, 0] == 1.0
        assert 0.3 < float(native.double().mean()) < 0.7  # half the clips start on the grid
        offset = motion.centers[native, 0] - 15.5
        assert float((offset == offset.round()).all(-1).double().mean()) > 0.9
        assert float(motion.sigmas.max()) <= 2.0
        if kind in ("fade", "darken"):
            assert float(motion.gains.min()) >= 0.7
    sigmas = _draw_motion(draw, "blur", 200, frames, out_hw, (tile, tile), flip=True).sigmas
    assert float((sigmas[:, 0] == 0).double().mean()) > 0.6  # frame 0 sharp in most blur clips


def test_still_and_slow_cameras():
    out_hw, tile, frames, n = (32, 32), 96, 6, 400

    def drawn(kind: str, **shares: float):
        draw = _Draw(torch.Generator().manual_seed(5), CPU, torch.float64)
        return _draw_motion(draw, kind, n, frames, out_hw, (tile, tile), flip=True, **shares)

    def steps(motion) -> torch.Tensor:  # output px moved per frame, per clip
        moved = (motion.centers[:, 1:] - motion.centers[:, :-1]).norm(dim=-1)
        return (moved / motion.mats[:, :1, 1, 1]).amax(1)

    for kind in ("pan_zoom", "shake", "layered", "fade"):
        still = drawn(kind, still=1.0)
        assert (still.centers == still.centers[:, :1]).all()
        assert (still.mats == still.mats[:, :1]).all()
        slow = drawn(kind, slow=1.0)
        assert (slow.mats == slow.mats[:, :1]).all()  # no zoom
        if kind != "shake":
            assert float(steps(slow).max()) <= 1.0 + 1e-9
    assert float(steps(drawn("pan_zoom")).median()) > 2.0  # the paper's pans are faster
    mixed = drawn("pan_zoom", still=0.3, slow=0.4)
    share_still = float((steps(mixed) == 0).double().mean())
    share_slow = float(((steps(mixed) > 0) & (steps(mixed) <= 1.0)).double().mean())
    assert 0.24 < share_still < 0.36 and 0.34 < share_slow < 0.48
    layered = drawn("layered", still=1.0)  # the cut-outs still move over a still background
    assert (layered.layers.centers[:, :, 1:] != layered.layers.centers[:, :, :-1]).any()
    # Without shares the draws are unchanged: evaluation clips stay what they were.
    plain, zero = drawn("pan_zoom"), drawn("pan_zoom", still=0.0, slow=0.0)
    assert torch.equal(plain.centers, zero.centers)


def test_sampler_still_clips_repeat_their_first_frame(photos):
    sampler = DeviceSampler(
        photos, [], 32, "cpu", seed=3, kind_weights={"pan_zoom": 1.0}, still_fraction=1.0
    )
    batch = sampler.batch(4, 3)
    assert torch.equal(batch[:, 1:], batch[:, :1].expand_as(batch[:, 1:]))


def test_pan_zoom_moves_the_picture():
    photo = _texture(160, 200, 9, smooth=2.0)
    seed, checked = 0, 0
    while checked < 3:
        motion = _clip_motion(photo.shape[:2], "pan_zoom", 3, (64, 64), seed)
        expected = _camera_shift(motion, 1)
        clip = motion_clip(photo, "pan_zoom", 3, (64, 64), seed)
        seed += 1
        if np.abs(expected).max() < 2.0:
            continue  # a zoom with little or no pan
        a, b = _luma(clip[0]), _luma(clip[1])
        dx, dy, error = _best_shift(a, b, 8)
        assert abs(dx - expected[0]) <= 1.0 and abs(dy - expected[1]) <= 1.0
        assert error < 0.35 * _shift_error(a, b, 0, 0, 8)
        checked += 1


def test_shake_jitters_frame_to_frame():
    photo = _texture(160, 200, 10, smooth=2.0)
    clip = motion_clip(photo, "shake", 5, (64, 64), 4)
    motion = _clip_motion(photo.shape[:2], "shake", 5, (64, 64), 4)
    found = []
    for t in range(1, 5):
        dx, dy, _ = _best_shift(_luma(clip[0]), _luma(clip[t]), 10)
        expected = _camera_shift(motion, t)
        assert abs(dx - expected[0]) <= 1.0 and abs(dy - expected[1]) <= 1.0
        found.append((dx, dy))
    assert len(set(found)) > 1


def test_photometric_kinds_change_brightness_and_colour():
    texture, size = _texture(160, 200, 11, smooth=2.0), (64, 64)
    colour = np.array([200.0, 60.0, 120.0])
    flat = np.broadcast_to(colour.astype(np.uint8), (100, 120, 3)).copy()
    for seed in range(3):
        mean = _luma_stats(motion_clip(texture, "lighten", 5, size, seed))[0]
        assert (np.diff(mean) > 0).all()
        mean = _luma_stats(motion_clip(texture, "darken", 5, size, seed))[0]
        assert (np.diff(mean) < 0).all()
        motion = _clip_motion(flat.shape[:2], "fade", 5, size, seed)
        gains, offsets = motion.gains[0].numpy(), motion.offsets[0].numpy()
        target = offsets[-1] / (1.0 - gains[-1])  # the colour faded to
        clip = motion_clip(flat, "fade", 5, size, seed).astype(np.float64)
        assert np.allclose(
            clip.mean(axis=(1, 2)), gains[:, None] * colour + 255.0 * offsets, atol=0.6
        )
        distance = np.abs(clip.mean(axis=(1, 2)) - 255.0 * target).sum(axis=1)
        assert (np.diff(distance) < 0).all()
        clip = motion_clip(flat, "pulse", 7, size, seed).astype(np.float64)
        gains = _clip_motion(flat.shape[:2], "pulse", 7, size, seed).gains[0].numpy()
        assert np.allclose(clip.mean(axis=(1, 2)), gains[:, None] * colour, atol=0.6)
        assert np.ptp(gains) > 0.05 and (np.diff(gains) > 0).any() and (np.diff(gains) < 0).any()


def _luma_stats(clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lumas = [_luma(frame) for frame in clip]
    return np.array([y.mean() for y in lumas]), np.array([y.std() for y in lumas])


def test_blur_and_sharpen_change_high_frequencies():
    photo = _texture(160, 200, 12, smooth=1.0)
    size = (64, 64)
    for seed in range(2):
        clip = motion_clip(photo, "blur", 5, size, seed)
        sigmas = _clip_motion(photo.shape[:2], "blur", 5, size, seed).sigmas[0].numpy()
        energy = np.array([_high_frequency(frame) for frame in clip])
        sharp, soft = int(sigmas.argmin()), int(sigmas.argmax())
        assert sigmas[sharp] == 0.0 and sigmas[soft] >= 0.5
        assert energy[soft] < 0.6 * energy[sharp]
        clip = motion_clip(photo, "sharpen", 5, size, seed)
        energy = np.array([_high_frequency(frame) for frame in clip])
        assert energy[-1] > 1.2 * energy[0]


def test_filter_matches_a_reference_convolution():
    gen = torch.Generator().manual_seed(0)
    video = torch.rand((2, 3, 3, 20, 24), generator=gen, dtype=torch.float64)
    sigmas = torch.tensor([[0.0, 1.0, 2.0], [0.5, 1.5, 0.7]], dtype=torch.float64)
    weights = torch.tensor([[1.0, 1.0, 1.0], [-1.0, -0.5, 0.0]], dtype=torch.float64)
    out = _filter(video, sigmas, weights)
    taps = torch.arange(-6, 7, dtype=torch.float64)
    for i in range(2):
        for t in range(3):
            kernel = torch.exp(-0.5 * (taps / max(float(sigmas[i, t]), 1e-3)) ** 2)
            kernel = (kernel / kernel.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
            x = F.pad(video[i, :, t][None], (6, 6, 6, 6), mode="reflect")
            x = F.conv2d(F.conv2d(x, kernel, groups=3), kernel.transpose(-1, -2), groups=3)
            expected = video[i, :, t] + weights[i, t] * (x[0] - video[i, :, t])
            assert torch.allclose(out[i, :, t], expected, atol=1e-12)


def _region_error(a: np.ndarray, b: np.ndarray, region: np.ndarray, shift: np.ndarray) -> float:
    """Mean |b(x) - a(x - d)| over ``region`` (8 px from the borders) for d = round(shift)."""
    dx, dy = (int(v) for v in np.round(shift))
    moved = np.roll(a, (dy, dx), axis=(0, 1))
    keep = region.copy()
    keep[:8], keep[-8:], keep[:, :8], keep[:, -8:] = False, False, False, False
    return float(np.abs(b - moved)[keep].mean())


def test_layered_cutouts_move_differently_from_the_background():
    photo = _texture(200, 240, 13, smooth=1.5)
    src = torch.from_numpy(photo.transpose(2, 0, 1)).double()[None] / 255.0
    seed, checked = 0, 0
    while checked < 2:
        motion = _clip_motion(photo.shape[:2], "layered", 2, (80, 80), seed)
        seed += 1
        video, alpha = _render_clip(src, motion, (80, 80), filtered=False)
        layers = motion.layers
        top = int(layers.active[0].sum()) - 1  # the last active layer covers the others
        position = torch.linalg.solve(
            layers.mats[0, top], (layers.origin[0, top, None, :] - layers.centers[0, top])
        )
        layer_shift = (position[1] - position[0]).numpy()  # layer content, output px
        camera_shift = _camera_shift(motion, 1)
        if np.abs(layer_shift - camera_shift).max() < 3.0:
            continue  # the two motions are too alike to tell apart on the integer grid
        frames = np.round(video[0].permute(1, 2, 3, 0).numpy() * 255.0)
        a, b = _luma(frames[0]), _luma(frames[1])
        mask = alpha[0].numpy()  # L, T, H, W
        inside = mask[top, 1] > 0.999
        outside = mask[:, 0].sum(0) + mask[:, 1].sum(0) < 1e-3
        assert inside.sum() > 100 and outside.sum() > 100

        on_layer = _region_error(a, b, inside, layer_shift)
        assert on_layer < 0.5 * _region_error(a, b, inside, camera_shift)
        on_background = _region_error(a, b, outside, camera_shift)
        assert on_background < 0.5 * _region_error(a, b, outside, layer_shift)
        assert MAX_LAYERS >= int(layers.active[0].sum()) >= 1
        checked += 1


# --- motion_clip ------------------------------------------------------------------------------


def test_motion_clip_is_deterministic_with_the_asked_size():
    photo = _texture(90, 120, 14)
    for kind in MOTION_KINDS:
        clip = motion_clip(photo, kind, 3, (48, 32), 5)
        assert clip.shape == (3, 32, 48, 3) and clip.dtype == np.uint8
        assert np.array_equal(clip, motion_clip(photo, kind, 3, (48, 32), 5))
        assert not np.array_equal(clip, motion_clip(photo, kind, 3, (48, 32), 6))
    big = motion_clip(photo, "pan_zoom", 2, (160, 128), 0)  # larger than the photo: upsampled
    assert big.shape == (2, 128, 160, 3)


# --- argument checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crop": 40}, "multiple of 16"),
        ({"crop": 0}, "multiple of 16"),
        ({"photos": [], "clips": []}, "no sources"),
        ({"photos": [np.zeros((10, 12, 3), np.uint8)]}, "too small"),
        ({"photos": [np.zeros((64, 64), np.uint8)]}, "H x W x 3"),
        ({"photos": [np.zeros((64, 64, 3), np.float32)]}, "uint8"),
        ({"clips": [np.zeros((4, 10, 12, 3), np.uint8)]}, "too small"),
        ({"clips": [np.zeros((4, 64, 64), np.uint8)]}, "T x H x W x 3"),
        ({"synthetic_fraction": 1.5}, "synthetic_fraction"),
        ({"kind_weights": {"spin": 1.0}}, "unknown motion kinds"),
        ({"kind_weights": {"blur": 0.0}}, "not all zero"),
        ({"tile": 16}, "tile"),
        ({"still_fraction": -0.1}, "still_fraction"),
        ({"still_fraction": 0.6, "slow_fraction": 0.5}, "sum of at most 1"),
    ],
)
def test_sampler_rejects_bad_arguments(photos, clips, kwargs, message):
    args = {"photos": photos, "clips": clips, "crop": 32, "device": "cpu", "seed": 0}
    with pytest.raises(ValueError, match=message):
        DeviceSampler(**(args | kwargs))


def test_batch_and_motion_clip_reject_bad_arguments(photos, clips):
    sampler = DeviceSampler(photos, clips, 32, "cpu", seed=0)
    with pytest.raises(ValueError, match="frames"):
        sampler.batch(2, 0)
    with pytest.raises(ValueError, match="batch_size"):
        sampler.batch(0, 3)
    photo = _texture(64, 64, 15)
    with pytest.raises(ValueError, match="unknown motion kind"):
        motion_clip(photo, "zoom", 3, (32, 32), 0)
    with pytest.raises(ValueError, match="frames"):
        motion_clip(photo, "blur", 0, (32, 32), 0)
    with pytest.raises(ValueError, match="size"):
        motion_clip(photo, "blur", 3, (8, 32), 0)
    with pytest.raises(ValueError, match="uint8"):
        motion_clip(photo.astype(np.float32), "blur", 3, (32, 32), 0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_without_host_sync(photos, clips):
    first = DeviceSampler(photos, clips, 32, "cuda", seed=5)
    second = DeviceSampler(photos, clips, 32, "cuda", seed=5)
    first.batch(4, 3)  # warm-up (lazy CUDA initialisation may synchronise)
    torch.cuda.set_sync_debug_mode("error")
    try:
        batch = first.batch(8, 3)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    second.batch(4, 3)
    assert batch.device.type == "cuda" and batch.shape == (8, 3, 3, 32, 32)
    assert torch.equal(batch, second.batch(8, 3))
