import io
import json
import math

import av
import numpy as np
import pytest
from av.video.frame import PictureType
from PIL import Image

from codec import Encoder, load_model
from codec.h26x.nal import nal_units, strip_sei
from codec.io.video import VideoError, write_png_frames
from codec.metrics import psnr
from codec.rd.anchors import JPEG_QUALITIES, encode_anchor, evaluate_jpeg
from codec.rd.bdrate import MIN_OVERLAP, bd_quality, bd_rate, quality_overlap
from codec.rd.dhvc import FRAME_HEADER_BYTES, default_lambdas
from codec.rd.eval import evaluate
from codec.rd.plot import plot_rd
from codec.rd.results import RdFileError, read_rd, write_rd
from codec.stream.bitstream import write_frame

GOP = 2
FRAMES = 3
LAMBDAS = [256.0, 2048.0]
QPS = (27, 37)


def _moving_frames(count: int, height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(count):
        r = 128 + 80 * np.sin((xx + 3 * t) / 5.0) * np.cos(yy / 7.0)
        g = 100 + 60 * np.cos((yy - 2 * t) / 4.0)
        b = 90 + 0.8 * xx + 0.5 * yy
        frames.append(np.stack([r, g, b], axis=-1))
    return np.clip(np.array(frames), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model():
    return load_model(checkpoint="none", preset="tiny", device="cpu")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    frames = _moving_frames(FRAMES, 64, 72)
    write_png_frames(folder, frames)
    return folder, frames


@pytest.fixture(scope="module")
def run(model, clip, tmp_path_factory):
    folder, _ = clip
    out = tmp_path_factory.mktemp("eval") / "rd.json"
    events = []
    rd = evaluate(
        folder,
        FRAMES,
        GOP,
        LAMBDAS,
        ["x264", "x265"],
        model,
        out,
        on_progress=events.append,
        qps=QPS,
    )
    return rd, out, events


def test_rd_json_follows_the_schema_and_equals_the_returned_dict(run):
    rd, out, _ = run
    assert json.loads(out.read_text()) == rd
    assert read_rd(out) == rd
    assert (rd["frames"], rd["gop"], rd["width"], rd["height"]) == (FRAMES, GOP, 72, 64)
    assert rd["model"]["preset"] == "tiny"
    assert rd["model"]["model_id"] == "tiny-random"
    assert set(rd["codecs"]) == {"dhvc", "x264", "x265"}
    assert [p["lambda"] for p in rd["codecs"]["dhvc"]] == LAMBDAS
    dhvc_keys = {"lambda", "bpp", "psnr", "ms_ssim", "bits_intra", "bits_inter_mean"}
    assert set(rd["codecs"]["dhvc"][0]) == dhvc_keys | {"inter_intra_ratio"}
    for anchor in ("x264", "x265"):
        assert [p["qp"] for p in rd["codecs"][anchor]] == list(QPS)
        assert set(rd["codecs"][anchor][0]) == {"qp", "bpp", "psnr", "ms_ssim"}
        assert set(rd["bd_rate"][anchor]) >= {"psnr", "ms_ssim"}
    for points in rd["codecs"].values():
        for p in points:
            assert p["bpp"] > 0 and np.isfinite(p["psnr"]) and 0 < p["ms_ssim"] <= 1


def test_dhvc_bpp_counts_the_bytes_a_dhvc_file_stores_and_splits_intra_from_inter(run, model, clip):
    rd, _, _ = run
    _, frames = clip
    encoder = Encoder(model, gop=GOP)
    encoded = [encoder.encode(f, lam=LAMBDAS[0]) for f in frames]
    bits = [8 * write_frame(io.BytesIO(), e) for e in encoded]  # bytes a .dhvc file stores
    assert bits[0] == 8 * (sum(len(s.data) for s in encoded[0].scales) + FRAME_HEADER_BYTES)
    point = rd["codecs"]["dhvc"][0]
    assert point["bpp"] == pytest.approx(sum(bits) / (FRAMES * 64 * 72))
    assert point["bits_intra"] == pytest.approx((bits[0] + bits[2]) / 2)  # frames 0 and 2 are I
    assert point["bits_inter_mean"] == pytest.approx(bits[1])
    assert point["inter_intra_ratio"] == pytest.approx(bits[1] / np.mean(bits[::2]))
    # the decoder reproduces the encoder's reconstruction, so PSNR can be checked against it
    expected_psnr = np.mean([psnr(f, e.x_hat) for f, e in zip(frames, encoded, strict=True)])
    assert point["psnr"] == pytest.approx(expected_psnr, abs=1e-6)


def test_anchor_points_lose_rate_and_quality_as_qp_rises(run):
    rd, _, _ = run
    for anchor in ("x264", "x265"):
        fine, coarse = rd["codecs"][anchor]
        assert fine["bpp"] > coarse["bpp"]
        assert fine["psnr"] > coarse["psnr"] > 25.0
        assert fine["ms_ssim"] > coarse["ms_ssim"]


def test_anchor_settings_are_stated_in_the_output(run):
    rd, _, _ = run
    for anchor in ("x264", "x265"):
        settings = rd["anchor_settings"][anchor]
        assert (settings["preset"], settings["tune"]) == ("medium", "zerolatency")
        assert (settings["keyint"], settings["bframes"], settings["qps"]) == (GOP, 0, list(QPS))
        assert settings["encoder_version"].startswith(anchor)


def test_progress_reports_every_dhvc_frame_and_every_anchor_point(run):
    _, _, events = run
    points_total = len(LAMBDAS) + 2 * len(QPS)
    assert all(e.points_total == points_total for e in events)
    dhvc = [e for e in events if e.codec == "dhvc"]
    assert len(dhvc) == FRAMES * len(LAMBDAS)
    assert [e.frames_done for e in dhvc[:FRAMES]] == [1, 2, 3]
    assert [e.setting for e in events if e.codec == "x265"] == ["qp=27", "qp=37"]
    assert events[-1].point == points_total


@pytest.mark.parametrize(("anchor", "decoder"), [("x264", "h264"), ("x265", "hevc")])
def test_anchor_streams_are_low_delay_with_an_i_frame_every_gop(anchor, decoder):
    frames = _moving_frames(6, 64, 64)
    coded, decoded, _ = encode_anchor(anchor, frames, gop=3, qp=30)
    assert len(coded) == 6 and len(decoded) == 6  # one packet per frame, none held back
    context = av.CodecContext.create(decoder, "r")
    kinds = []
    for data in coded:
        kinds += [PictureType(f.pict_type).name for f in context.decode(av.Packet(data))]
    assert kinds == ["I", "P", "P", "I", "P", "P"]


@pytest.mark.parametrize(("anchor", "decoder"), [("x264", "h264"), ("x265", "hevc")])
def test_anchor_streams_with_keyint_1_are_intra_only(anchor, decoder):
    coded, decoded, _ = encode_anchor(anchor, _moving_frames(4, 64, 64), gop=1, qp=30)
    assert len(coded) == 4 and len(decoded) == 4
    context = av.CodecContext.create(decoder, "r")
    kinds = []
    for data in coded:
        kinds += [PictureType(f.pict_type).name for f in context.decode(av.Packet(data))]
    assert kinds == ["I"] * 4


def test_anchor_bits_exclude_sei_and_odd_sizes_come_back_at_their_size():
    frames = _moving_frames(2, 65, 67)
    coded, decoded, version = encode_anchor("x264", frames, gop=2, qp=30)
    assert version.startswith("x264 - core")
    assert all(b"x264 - core" not in data for data in coded)
    assert decoded[0].shape == (65, 67, 3)
    assert psnr(frames[0], decoded[0]) > 30.0


def test_nal_units_split_at_three_and_four_byte_start_codes_and_sei_is_dropped():
    stream = b"\x00\x00\x00\x01\x67AB" + b"\x00\x00\x01\x06CD" + b"\x00\x00\x00\x01\x65EF"
    assert nal_units(stream) == [
        b"\x00\x00\x00\x01\x67AB",
        b"\x00\x00\x01\x06CD",
        b"\x00\x00\x00\x01\x65EF",
    ]
    assert strip_sei(stream, "x264") == b"\x00\x00\x00\x01\x67AB\x00\x00\x00\x01\x65EF"
    hevc = b"\x00\x00\x01\x40\x01V" + b"\x00\x00\x01\x4e\x01S" + b"\x00\x00\x01\x26\x01I"
    assert strip_sei(hevc, "x265") == b"\x00\x00\x01\x40\x01V\x00\x00\x01\x26\x01I"


def _curve(rates, psnrs):
    return [
        {"bpp": r, "psnr": q, "ms_ssim": 1 - 10 ** (-q / 20)}
        for r, q in zip(rates, psnrs, strict=True)
    ]


def test_bd_rate_of_a_curve_needing_20_percent_fewer_bits_is_minus_20():
    anchor = _curve([0.05, 0.1, 0.2, 0.4], [30.0, 33.0, 36.0, 39.0])
    test = _curve([0.04, 0.08, 0.16, 0.32], [30.0, 33.0, 36.0, 39.0])
    for metric in ("psnr", "ms_ssim"):
        value, reason = bd_rate(anchor, test, metric)
        assert reason is None
        assert value == pytest.approx(-20.0, abs=1e-6)
    value, _ = bd_rate(test, anchor, "psnr")
    assert value == pytest.approx(25.0, abs=1e-6)


def test_bd_rate_is_null_with_a_reason_when_curves_do_not_overlap_or_are_not_monotone():
    anchor = _curve([0.05, 0.1, 0.2], [30.0, 33.0, 36.0])
    value, reason = bd_rate(anchor, _curve([0.05, 0.1], [20.0, 25.0]), "psnr")
    assert value is None and "quality ranges do not overlap" in reason
    value, reason = bd_rate(anchor, _curve([0.05, 0.1, 0.2], [31.0, 30.0, 34.0]), "psnr")
    assert value is None and "not monotone" in reason
    value, reason = bd_rate(anchor, _curve([0.1], [32.0]), "psnr")
    assert value is None and "1 point" in reason


def _legend_texts(figure) -> list[str]:
    return [t.get_text() for ax in figure.axes for t in ax.get_legend().get_texts()]


def test_plot_rd_draws_every_codec_and_quotes_bd_rates_or_n_a(run, tmp_path):
    rd, _, _ = run
    rd = json.loads(json.dumps(rd))
    rd["bd_rate"]["x264"]["psnr"] = -12.345
    rd["bd_rate"]["x265"]["psnr"] = None
    figure = plot_rd(rd)
    assert [ax.get_xlabel() for ax in figure.axes] == ["rate (bits per pixel)"] * 2
    assert [ax.get_ylabel() for ax in figure.axes] == ["RGB PSNR (dB)", "RGB MS-SSIM (0-1)"]
    assert [len(ax.lines) for ax in figure.axes] == [3, 3]
    psnr_legend = _legend_texts(figure)[:3]
    assert psnr_legend == ["dhvc", "x264 (DHVC BD-rate -12.3%)", "x265 (BD-rate n/a)"]
    assert figure.get_suptitle().startswith("Rate-distortion on ")
    assert "72x64, 3 frames, GOP 2, model tiny-random" in figure.get_suptitle()
    path = tmp_path / "rd.png"
    figure.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rd_json_round_trips_and_a_bad_file_is_one_line_naming_it(tmp_path):
    rd = {"video": "clip", "codecs": {"dhvc": [{"lambda": 64.0, "bpp": 0.1}]}, "bd_rate": {}}
    path = write_rd(tmp_path / "out" / "rd.json", rd)
    assert read_rd(path) == rd
    with pytest.raises(ValueError):
        write_rd(tmp_path / "nan.json", {"codecs": {"dhvc": [{"bpp": float("nan")}]}})
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[]")
    for name, expected in [("bad.json", "not JSON"), ("list.json", "codecs"), ("no", "read")]:
        with pytest.raises(RdFileError, match=expected) as error:
            read_rd(tmp_path / name)
        assert str(tmp_path / name) in str(error.value)
        assert "\n" not in str(error.value)


def test_default_lambdas_span_the_model_range_log_spaced(model):
    values = default_lambdas(model)
    assert len(values) == 6
    assert values[0] == pytest.approx(model.config.lambda_min)
    assert values[-1] == pytest.approx(model.config.lambda_max)
    assert np.allclose(np.diff(np.log(values)), np.log(values[1] / values[0]))


def test_missing_video_and_too_small_frames_are_one_line_video_errors(model, tmp_path):
    with pytest.raises(VideoError, match="no such file"):
        evaluate(tmp_path / "none.mp4", 4, 4, [512], [], model, tmp_path / "rd.json")
    write_png_frames(tmp_path / "small", _moving_frames(2, 48, 96))
    with pytest.raises(VideoError, match=r"frames are 96x48; dhvc eval needs at least 64x64"):
        evaluate(tmp_path / "small", 2, 4, [512], [], model, tmp_path / "rd.json")
    assert not (tmp_path / "rd.json").exists()


def test_unknown_anchor_is_rejected_before_any_work(model, tmp_path):
    with pytest.raises(ValueError, match="unknown anchor"):
        evaluate(tmp_path / "none.mp4", 4, 4, [512], ["vp9"], model, tmp_path / "rd.json")


def test_bd_rate_is_not_reported_where_curves_overlap_over_less_than_half_their_range():
    anchor = _curve([0.05, 0.1, 0.2, 0.4], [30.0, 33.0, 36.0, 39.0])
    # quality 36.6-42.6 dB against 30-39 dB: they share 36.6-39, 2.4 of 12.6 dB (19%)
    narrow = _curve([0.3, 0.6, 1.2], [36.6, 39.6, 42.6])
    assert quality_overlap(anchor, narrow, "psnr") == pytest.approx(2.4 / 12.6)
    value, reason = bd_rate(anchor, narrow, "psnr")
    assert value is None
    assert reason.startswith("curves overlap over 19% of the quality range")
    # half of the joint range is enough: 30-39 against 34.5-43.5 share 4.5 of 13.5 dB (33%)
    # fails, 30-39 against 33-42 share 6 of 12 dB (50%) passes
    fails = _curve([0.1, 0.2, 0.4], [34.5, 39.0, 43.5])
    passes = _curve([0.1, 0.2, 0.4], [33.0, 37.5, 42.0])
    assert bd_rate(anchor, fails, "psnr")[0] is None
    assert quality_overlap(anchor, passes, "psnr") == pytest.approx(MIN_OVERLAP)
    value, reason = bd_rate(anchor, passes, "psnr")
    assert reason is None and value is not None


def test_bd_quality_needs_half_of_the_joint_log_rate_range():
    anchor = [{"bpp": r, "psnr": 30 + 5 * math.log2(r / 0.05)} for r in (0.05, 0.1, 0.2, 0.4)]
    # rates 0.05-0.4 against 0.3-1.2 bpp: they share log(0.4 / 0.3) of log(1.2 / 0.05), 9%
    far = [{"bpp": r, "psnr": 38 + 5 * math.log2(r / 0.3)} for r in (0.3, 0.6, 1.2)]
    value, reason = bd_quality(anchor, far, "psnr")
    assert value is None and reason.startswith("curves overlap over 9% of the log-rate range")


def test_bd_quality_is_the_mean_gain_of_a_curve_shifted_up_and_undefined_like_bd_rate():
    anchor = [{"bpp": r, "psnr": 30 + 5 * math.log2(r / 0.05)} for r in (0.05, 0.1, 0.2, 0.4)]
    better = [{"bpp": p["bpp"], "psnr": p["psnr"] + 1.5} for p in anchor]
    value, reason = bd_quality(anchor, better, "psnr")
    assert reason is None and value == pytest.approx(1.5, abs=1e-6)
    assert bd_quality(anchor, better[:1], "psnr")[0] is None


def test_jpeg_anchor_codes_stills_and_its_rate_points_follow_quality(model, clip, tmp_path):
    folder, frames = clip
    rd = evaluate(folder, FRAMES, 1, LAMBDAS, ["jpeg"], model, tmp_path / "rd.json", intra=True)
    points = rd["codecs"]["jpeg"]
    assert [p["quality"] for p in points] == list(JPEG_QUALITIES)
    pairs = zip(points, points[1:], strict=False)
    assert all(a["bpp"] > b["bpp"] and a["psnr"] > b["psnr"] for a, b in pairs)
    # the bits are the JPEG files' bytes, the quality that of the decoded files
    quality = JPEG_QUALITIES[0]
    files = []
    for frame in frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, "JPEG", quality=quality)
        files.append(buffer.getvalue())
    decoded = [np.array(Image.open(io.BytesIO(f)).convert("RGB")) for f in files]
    pixels = frames.shape[0] * frames.shape[1] * frames.shape[2]
    assert points[0]["bpp"] == 8 * sum(len(f) for f in files) / pixels
    assert points[0]["psnr"] == pytest.approx(
        np.mean([psnr(a, b) for a, b in zip(frames, decoded, strict=True)])
    )
    assert evaluate_jpeg(frames, quality) == points[0]
    assert rd["anchor_settings"]["jpeg"]["qualities"] == list(JPEG_QUALITIES)
    assert set(rd["bd_rate"]["jpeg"]) >= {"psnr", "ms_ssim"}
    assert read_rd(tmp_path / "rd.json") == rd


def test_jpeg_anchor_needs_intra_mode_and_a_valid_quality(model, clip, tmp_path):
    folder, frames = clip
    with pytest.raises(ValueError, match="jpeg anchor codes stills"):
        evaluate(folder, FRAMES, GOP, LAMBDAS, ["jpeg"], model, tmp_path / "rd.json")
    with pytest.raises(ValueError, match="quality must be 1..95"):
        evaluate_jpeg(frames, 100)
    assert not (tmp_path / "rd.json").exists()
