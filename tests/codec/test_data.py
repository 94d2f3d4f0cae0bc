import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from codec.data import (
    ClipDataset,
    ClipSampler,
    DataConfig,
    Motion,
    load_still,
    render_motion,
    sample_motion,
)
from codec.video import write_png_frames

CROP = 32


def _numbered_video(folder, count: int, height: int = 40, width: int = 48):
    """PNG frames whose red channel is 10 * frame index and whose green is a horizontal ramp."""
    frames = np.zeros((count, height, width, 3), np.uint8)
    frames[..., 0] = (10 * np.arange(count, dtype=np.uint8))[:, None, None]
    frames[..., 1] = np.linspace(0, 255, width).astype(np.uint8)[None, None, :]
    write_png_frames(folder, frames)
    return str(folder)


def _still_sampler(**overrides) -> ClipSampler:
    options = {"crop": CROP, "videos": (), "stills": ("chelsea", "coffee")}
    return ClipSampler(DataConfig(**(options | overrides)))


def _static(frames: int, center=(200.0, 150.0), scale: float = 1.0) -> dict:
    return {
        "centers_px": np.tile(np.array(center), (frames, 1)),
        "scales": np.full(frames, scale),
        "gains": np.ones(frames),
        "blur_sigmas_px": np.zeros(frames),
        "effects": (),
    }


@pytest.mark.parametrize("frames", [1, 3, 7])
def test_synthetic_clips_have_the_clip_shape_and_unit_range(frames):
    batch = _still_sampler().batch(2, frames, np.random.default_rng(0))
    assert batch.shape == (2, frames, 3, CROP, CROP)
    assert batch.dtype == torch.float32
    assert float(batch.min()) >= 0.0 and float(batch.max()) <= 1.0
    assert float(batch.std()) > 0.02  # real picture content, not a constant


@pytest.mark.parametrize("frames", [1, 3, 7])
def test_video_clips_have_the_clip_shape_and_unit_range(tmp_path, frames):
    source = _numbered_video(tmp_path / "v", 20)
    sampler = ClipSampler(
        DataConfig(crop=CROP, videos=(source,), stills=(), holdout_frames=0, cache_short_side=32)
    )
    clip = sampler.clip(frames, np.random.default_rng(1))
    assert clip.shape == (frames, 3, CROP, CROP)
    assert clip.dtype == np.float32
    assert clip.min() >= 0.0 and clip.max() <= 1.0


def test_the_same_seed_gives_the_same_clips_and_another_seed_other_clips(tmp_path):
    source = _numbered_video(tmp_path / "v", 12)
    config = DataConfig(crop=CROP, videos=(source,), stills=("astronaut",), holdout_frames=0)
    sampler = ClipSampler(config)
    first = sampler.batch(4, 3, np.random.default_rng(7))
    again = sampler.batch(4, 3, np.random.default_rng(7))
    other = sampler.batch(4, 3, np.random.default_rng(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_a_generator_state_saved_mid_stream_resumes_the_same_clips():
    sampler = _still_sampler()
    rng = np.random.default_rng(3)
    sampler.batch(2, 3, rng)
    state = rng.bit_generator.state
    expected = sampler.batch(2, 3, rng)
    resumed = np.random.default_rng()
    resumed.bit_generator.state = state
    assert torch.equal(sampler.batch(2, 3, resumed), expected)


def test_video_clips_use_one_stride_within_the_limit_and_skip_the_holdout(tmp_path):
    source = _numbered_video(tmp_path / "v", 24)
    config = DataConfig(
        crop=CROP, videos=(source,), stills=(), holdout_frames=4, max_stride=3, reverse=False
    )
    sampler = ClipSampler(config)
    rng = np.random.default_rng(0)
    strides = set()
    for _ in range(40):
        clip = sampler.clip(3, rng)
        index = np.round(clip[:, 0].mean(axis=(1, 2)) * 255 / 10).astype(int)
        steps = np.diff(index)
        assert steps[0] == steps[1] and 1 <= steps[0] <= 3
        assert index.min() >= 4
        strides.add(int(steps[0]))
    assert strides == {1, 2, 3}


def test_reverse_plays_some_clips_backwards(tmp_path):
    source = _numbered_video(tmp_path / "v", 10)
    config = DataConfig(crop=CROP, videos=(source,), stills=(), holdout_frames=0, reverse=True)
    sampler = ClipSampler(config)
    rng = np.random.default_rng(0)
    directions = set()
    for _ in range(20):
        red = sampler.clip(3, rng)[:, 0].mean(axis=(1, 2))
        directions.add(bool(red[1] > red[0]))
    assert directions == {True, False}


def test_a_pan_shifts_the_picture_by_its_velocity():
    still = load_still("coffee")
    motion = Motion(**(_static(3) | {"effects": ("pan",)}))
    motion.centers_px[:, 0] += 3.0 * np.arange(3)  # 3 px right per frame
    clip = render_motion(still, motion, CROP)
    # at scale 1 the window samples pixel centres exactly, so the shift is exact
    np.testing.assert_allclose(clip[1][:, :, :-3], clip[0][:, :, 3:], atol=1e-5)
    np.testing.assert_allclose(clip[2][:, :, :-6], clip[0][:, :, 6:], atol=1e-5)
    assert np.abs(clip[1] - clip[0]).mean() > 0.01


def test_a_zoom_changes_the_picture_but_keeps_its_centre():
    still = load_still("astronaut")
    parameters = _static(2, center=(256.0, 256.0))
    parameters["scales"] = np.array([1.0, 1.3])
    clip = render_motion(still, Motion(**parameters), 33)  # odd side: a true centre pixel
    assert np.abs(clip[1] - clip[0]).mean() > 0.01
    np.testing.assert_allclose(clip[1][:, 16, 16], clip[0][:, 16, 16], atol=1e-5)


def test_a_fade_scales_brightness_and_a_blur_removes_detail():
    still = load_still("chelsea")
    parameters = _static(2)
    parameters["gains"] = np.array([1.0, 0.8])
    parameters["blur_sigmas_px"] = np.array([0.0, 2.0])
    clip = render_motion(still, Motion(**parameters), CROP)
    assert clip[1].mean() == pytest.approx(0.8 * clip[0].mean(), rel=0.02)
    detail = [np.abs(np.diff(frame, axis=-1)).mean() for frame in clip]
    assert detail[1] < 0.7 * 0.8 * detail[0]  # sigma 2 px roughly halves the gradients


@pytest.mark.parametrize("seed", range(30))
def test_sampled_camera_windows_stay_inside_the_still(seed):
    rng = np.random.default_rng(seed)
    height, width, frames, crop = 300, 451, 7, 256
    motion = sample_motion(height, width, frames, crop, rng)
    half = motion.scales * crop / 2
    assert np.all(motion.centers_px[:, 0] - half >= -1e-6)
    assert np.all(motion.centers_px[:, 0] + half <= width + 1e-6)
    assert np.all(motion.centers_px[:, 1] - half >= -1e-6)
    assert np.all(motion.centers_px[:, 1] + half <= height + 1e-6)
    assert np.all(motion.gains > 0) and np.all(motion.blur_sigmas_px >= 0)


def test_most_synthetic_clips_move_and_every_effect_gets_drawn():
    rng = np.random.default_rng(0)
    effects = set()
    moving = 0
    for _ in range(60):
        motion = sample_motion(400, 600, 3, CROP, rng)
        effects.update(motion.effects)
        moving += bool({"pan", "zoom", "shake"} & set(motion.effects))
    assert effects == {"pan", "zoom", "shake", "fade", "blur"}
    assert moving >= 45
    clips = _still_sampler().batch(16, 3, np.random.default_rng(1))
    frame_change = (clips[:, 1:] - clips[:, :-1]).abs().mean(dim=(1, 2, 3, 4))
    assert int((frame_change > 0.005).sum()) >= 10


def test_clip_dataset_repeats_its_stream_and_batches_through_a_dataloader():
    dataset = ClipDataset(_still_sampler(), frames=3, seed=11)
    first = next(iter(DataLoader(dataset, batch_size=2)))
    again = next(iter(DataLoader(dataset, batch_size=2)))
    assert first.shape == (2, 3, 3, CROP, CROP)
    assert torch.equal(first, again)


def test_default_config_caches_both_sample_clips_without_their_eval_frames():
    sampler = ClipSampler(DataConfig(stills=()))
    assert [v.shape for v in sampler.videos] == [(154, 256, 602, 3), (36, 256, 455, 3)]


def test_config_rejects_unknown_stills_and_no_sources():
    with pytest.raises(ValueError, match="unknown stills"):
        DataConfig(stills=("lena",))
    with pytest.raises(ValueError, match="no clip source"):
        DataConfig(videos=(), stills=())
