"""``dhvc eval`` over several sources and named sets: set-average curves, intra mode, errors."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from codec.cli import dhvc as cli
from codec.cli.dhvc import app
from codec.io.video import VideoError, read_frames, write_mp4, write_png_frames
from codec.rd.eval import evaluate
from codec.rd.plot import plot_rd
from codec.rd.sources import SET_FRAMES, SET_SIZE, SETS, load_sources, still_crop
from codec.train.synth import MOTION_KINDS, motion_clip

LAMBDAS = [256.0, 2048.0]
QPS = (27, 37)
TINY = ["--checkpoint", "none", "--preset", "tiny"]
FAST = [*TINY, "--lambdas", "256,2048", "--qps", "27,37"]
OLD_KEYS = {
    "video",
    "frames",
    "gop",
    "width",
    "height",
    "model",
    "codecs",
    "dhvc_settings",
    "anchor_settings",
    "metrics",
    "summary",
    "bd_rate",
}
runner = CliRunner()


def _frames(count: int, height: int, width: int, phase: float) -> np.ndarray:
    """Smooth moving frames; ``phase`` makes different sources differ."""
    yy, xx = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(count):
        r = 128 + 80 * np.sin((xx + 3 * t + phase) / 5.0) * np.cos(yy / 7.0)
        g = 100 + 60 * np.cos((yy - 2 * t) / (4.0 + phase))
        b = 90 + 0.8 * xx + 0.5 * yy
        frames.append(np.stack([r, g, b], axis=-1))
    return np.clip(np.array(frames), 0, 255).astype(np.uint8)


def _photo(height: int, width: int, seed: int) -> np.ndarray:
    """A photo-like still: smooth gradients plus a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 200 / width, yy * 200 / height, (xx + yy) * 100 / (width + height)], -1)
    return np.clip(base + rng.normal(0, 8, base.shape) + 20, 0, 255).astype(np.uint8)


def _write_image(path: Path, rgb: np.ndarray) -> None:
    """``rgb`` as a PNG (lossless) or JPEG file, written with PyAV."""
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    encoder = av.CodecContext.create("mjpeg" if jpeg else "png", "w")
    pix_fmt = "yuvj420p" if jpeg else "rgb24"
    encoder.width, encoder.height, encoder.pix_fmt = rgb.shape[1], rgb.shape[0], pix_fmt
    encoder.time_base = Fraction(1, 25)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
    packets = encoder.encode(frame) + encoder.encode(None)
    path.write_bytes(b"".join(bytes(p) for p in packets))


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    """A fake training pack: val/photos (two png, one jpg, one larger than 512x384) and a clip."""
    root = tmp_path_factory.mktemp("pack")
    photos = root / "val" / "photos"
    photos.mkdir(parents=True)
    _write_image(photos / "b_small.png", _photo(150, 200, 1))
    _write_image(photos / "a_photo.jpg", _photo(136, 180, 2))
    _write_image(photos / "c_large.png", _photo(420, 560, 3))
    (photos / "notes.txt").write_text("not a photo")
    write_mp4(root / "val" / "clips" / "walk.mp4", _frames(5, 80, 96, 0.0), fps=25)
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> list[Path]:
    """Two PNG folders of three 64 x 72 frames with different content."""
    paths = []
    for phase in (0.0, 2.5):
        folder = tmp_path_factory.mktemp("src")
        write_png_frames(folder, _frames(3, 64, 72, phase))
        paths.append(folder)
    return paths


@pytest.fixture(scope="module")
def two_sources(folders, tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("set") / "rd.json"
    events = []
    rd = evaluate(
        folders, 3, 2, LAMBDAS, ["x264", "x265"], tiny_model, out,
        on_progress=events.append, qps=QPS,
    )  # fmt: skip
    return rd, out, events


def test_set_average_points_are_the_means_of_the_per_source_points(two_sources, folders):
    rd, out, _ = two_sources
    assert json.loads(out.read_text()) == rd
    assert [s["video"] for s in rd["sources"]] == [str(f) for f in folders]
    average = rd["set_average"]
    assert average["sources"] == 2
    for codec, knob in (("dhvc", "lambda"), ("x264", "qp"), ("x265", "qp")):
        per_source = [s["codecs"][codec] for s in rd["sources"]]
        for i, point in enumerate(average["codecs"][codec]):
            assert point[knob] == per_source[0][i][knob] == per_source[1][i][knob]
            for key in ("bpp", "psnr", "ms_ssim"):
                assert point[key] == pytest.approx(np.mean([c[i][key] for c in per_source]))
    # the top level repeats the set average, so one-source readers plot the average
    assert rd["codecs"] == average["codecs"] and rd["bd_rate"] == average["bd_rate"]
    assert (rd["frames"], rd["width"], rd["height"]) == (6, 72, 64)


def test_set_average_reports_the_mean_of_per_source_bd_rates(two_sources):
    rd, _, _ = two_sources
    for anchor in ("x264", "x265"):
        mean = rd["set_average"]["bd_rate_mean_of_sources"][anchor]
        for metric in ("psnr", "ms_ssim"):
            values = [s["bd_rate"][anchor][metric] for s in rd["sources"]]
            defined = [v for v in values if v is not None]
            assert mean["sources"][metric] == len(defined)
            assert len(mean["left_out"][metric]) == 2 - len(defined)
            if defined:
                assert mean[metric] == pytest.approx(np.mean(defined))
            else:
                assert mean[metric] is None


def test_progress_counts_points_over_all_sources(two_sources, folders):
    _, _, events = two_sources
    per_source = len(LAMBDAS) + 2 * len(QPS)
    assert {e.points_total for e in events} == {2 * per_source}
    assert [e.point for e in events if e.codec != "dhvc"][-1] == 2 * per_source
    assert {(e.source_index, e.source) for e in events} == {
        (1, str(folders[0])),
        (2, str(folders[1])),
    }
    assert {e.sources_total for e in events} == {2}


def test_plot_rd_draws_the_set_average(two_sources):
    rd, _, _ = two_sources
    figure = plot_rd(rd)
    dhvc = figure.axes[0].lines[0]
    assert list(dhvc.get_xdata()) == sorted(p["bpp"] for p in rd["set_average"]["codecs"]["dhvc"])
    assert "set average of 2 sources" in figure.get_suptitle()


def test_one_source_keeps_the_per_source_layout(folders, tiny_model, tmp_path):
    rd = evaluate(folders[0], 2, 2, [512.0], ["x264"], tiny_model, tmp_path / "rd.json", qps=QPS)
    assert set(rd) == OLD_KEYS | {"intra"}
    assert rd["video"] == str(folders[0]) and rd["intra"] is False
    assert rd["dhvc_settings"]["motion"] == "blocks"
    assert [p["lambda"] for p in rd["codecs"]["dhvc"]] == [512.0]


def test_intra_codes_every_frame_as_i_with_dhvc_and_the_anchors(folders, tiny_model, tmp_path):
    rd = evaluate(
        folders[0], 3, 1, LAMBDAS, ["x264", "x265"], tiny_model, tmp_path / "rd.json",
        qps=QPS, intra=True,
    )  # fmt: skip
    assert rd["intra"] is True and rd["dhvc_settings"]["intra_only"] is True
    for point in rd["codecs"]["dhvc"]:
        assert point["bits_intra"] > 0 and point["bits_inter_mean"] is None
    for anchor in ("x264", "x265"):
        settings = rd["anchor_settings"][anchor]
        assert (settings["keyint"], settings["min_keyint"], settings["intra_only"]) == (1, 1, True)
        params = settings["options"][f"{anchor}-params"]
        assert "keyint=1:min-keyint=1" in params


def test_intra_with_a_gop_above_one_is_refused(folders, tiny_model, tmp_path):
    with pytest.raises(ValueError, match="gop must be 1"):
        evaluate(folders[0], 3, 4, LAMBDAS, [], tiny_model, tmp_path / "rd.json", intra=True)


def test_set_val_is_the_clips_then_motion_over_the_photos_sorted_by_name(pack):
    sources = load_sources(["set:val"], frames=3, size=(64, 64), pack_root=pack)
    names = [s.name for s in sources]
    kinds = [MOTION_KINDS[i % len(MOTION_KINDS)] for i in range(3)]
    assert names == [
        "set:val/clips/walk.mp4",
        f"set:val/photos/a_photo.jpg@{kinds[0]}",
        f"set:val/photos/b_small.png@{kinds[1]}",
        f"set:val/photos/c_large.png@{kinds[2]}",
    ]
    assert np.array_equal(sources[0].frames, read_frames(pack / "val/clips/walk.mp4", 3, (64, 64)))
    for i, name in enumerate(("a_photo.jpg", "b_small.png", "c_large.png")):
        photo = read_frames(pack / "val" / "photos" / name, 1)[0]
        expected = motion_clip(photo, kinds[i], 3, (64, 64), seed=i)
        assert sources[i + 1].frames.shape == (3, 64, 64, 3)
        assert np.array_equal(sources[i + 1].frames, expected)


def test_set_val_defaults_to_short_cheap_clips(pack):
    sources = load_sources(["set:val"], pack_root=pack)
    width, height = SET_SIZE
    assert sources[0].frames.shape == (5, height, width, 3)  # the clip has only 5 frames
    assert {s.frames.shape for s in sources[1:]} == {(SET_FRAMES, height, width, 3)}


def test_set_val_stills_are_photos_cropped_to_multiples_of_64(pack):
    sources = load_sources(["set:val-stills"], frames=5, pack_root=pack)
    shapes = {s.name.rsplit("/", 1)[1]: s.frames.shape for s in sources}
    assert shapes == {
        "a_photo.jpg": (1, 128, 128, 3),
        "b_small.png": (1, 128, 192, 3),
        "c_large.png": (1, 384, 512, 3),
    }
    photo = read_frames(pack / "val/photos/c_large.png", 1)[0]
    assert np.array_equal(sources[2].frames[0], photo[18:402, 24:536])
    assert still_crop(photo).shape == (384, 512, 3)
    assert set(SETS) == {"val", "val-stills"}


def test_unknown_set_and_missing_pack_are_video_errors(tmp_path):
    with pytest.raises(
        VideoError, match=r"set:nope: unknown set \(known: set:val, set:val-stills\)"
    ):
        load_sources(["set:nope"], pack_root=tmp_path)
    with pytest.raises(VideoError, match="run `make data`"):
        load_sources(["set:val"], pack_root=tmp_path / "absent")
    (tmp_path / "val" / "photos").mkdir(parents=True)
    with pytest.raises(VideoError, match="holds no png or jpg photos"):
        load_sources(["set:val-stills"], pack_root=tmp_path)


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["set:nope"], "set:nope: unknown set"),
        (["set:val"], "run `make data`"),
        (["set:val-stills", "--intra"], "run `make data`"),
        (["{folder}", "{missing}"], "nothing.mp4: no such file or folder"),
        (["{folder}", "--frames", "0"], "--frames must be at least 1, got 0"),
        (["{folder}", "--frames", "-3"], "--frames must be at least 1, got -3"),
        (["{folder}", "--gop", "0"], "--gop must be at least 1, got 0"),
        (["{folder}", "--intra", "--gop", "8"], "--gop must be 1, got 8"),
        (["{folder}", "--anchors", "vp9"], "unknown anchor"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_keeps_the_old_output(
    args, expected, folders, tmp_path
):
    out = tmp_path / "rd.json"
    out.write_text("{}\n")
    values = {"folder": str(folders[0]), "missing": str(tmp_path / "nothing.mp4")}
    args = [a.format(**values) for a in args]
    pack = ["--pack", str(tmp_path / "no-pack")]
    result = runner.invoke(app, ["eval", *args, "-o", str(out), *pack, *FAST])
    assert expected in _one_error_line(result)
    assert out.read_text() == "{}\n"


@pytest.fixture
def wide_console(monkeypatch):
    """The CLI's console 300 columns wide, so table rows are not folded in the tests."""
    monkeypatch.setattr(cli, "console", Console(stderr=True, width=300))


def _table_rows(output: str, title: str) -> list[list[str]]:
    """The body rows of the rich table titled ``title`` in ``output``, as lists of cells."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if title in line)
    rows = []
    for line in lines[start + 4 :]:  # title, top rule, header, header rule
        if not line.startswith("│"):
            break
        rows.append([cell.strip() for cell in line.strip("│").split("│")])
    return rows


def test_cli_evaluates_a_set_and_prints_rate_points_and_bd_rates_as_tables(
    folders, tmp_path, wide_console
):
    out = tmp_path / "rd.json"
    args = ["eval", *map(str, folders), "-o", str(out), "--frames", "2", "--anchors", "x264"]
    result = runner.invoke(app, [*args, *FAST])
    assert result.exit_code == 0, result.output
    rd = json.loads(out.read_text())
    assert len(rd["sources"]) == 2 and rd["gop"] == 32 and rd["intra"] is False
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "{" not in result.output  # tables, not dicts
    points = _table_rows(result.output, "Rate points (set average)")
    assert [row[:2] for row in points] == [
        ["dhvc", "lambda 256"],
        ["dhvc", "lambda 2048"],
        ["x264", "qp 37"],
        ["x264", "qp 27"],
    ]
    average = {p["lambda"]: p for p in rd["codecs"]["dhvc"]}
    assert points[1][2:] == [
        f"{average[2048.0]['bpp']:.4f}",
        f"{average[2048.0]['psnr']:.2f}",
        f"{average[2048.0]['ms_ssim']:.4f}",
    ]
    bd = _table_rows(result.output, "BD-rate of DHVC")
    assert [row[:2] for row in bd] == [
        [str(folders[0]), "x264"],
        [str(folders[1]), "x264"],
        ["set average of 2 sources (averaged curves)", "x264"],
        ["mean of per-source BD-rates", "x264"],
    ]
    for row, entry in zip(bd, [*rd["sources"], rd["set_average"]], strict=False):
        value = entry["bd_rate"]["x264"]["psnr"]
        assert row[2] == (f"{value:+.1f}%" if value is not None else row[2])
        assert value is not None or row[2].startswith("n/a")


def test_cli_intra_on_the_val_stills_of_a_pack(pack, tmp_path):
    out = tmp_path / "rd.json"
    args = ["eval", "set:val-stills", "--intra", "-o", str(out), "--pack", str(pack)]
    result = runner.invoke(app, [*args, "--anchors", "x264", *FAST])
    assert result.exit_code == 0, result.output
    rd = json.loads(out.read_text())
    assert (rd["gop"], rd["intra"], rd["frames"]) == (1, True, 3)
    assert rd["anchor_settings"]["x264"]["keyint"] == 1
    assert [s["frames"] for s in rd["sources"]] == [1, 1, 1]
    assert "Rate points (set average)" in result.output
