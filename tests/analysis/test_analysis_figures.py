"""Figure functions draw what they are given, with titles, units and legends, as .png and .pdf."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from analysis.figures import (
    LOSS_STYLE,
    RESYNC_STYLE,
    describe,
    plot_echo_delay,
    plot_loss_resilience,
    plot_progressive,
    plot_psnr_vs_loss,
    plot_rate_share,
    plot_rd,
    save_figure,
)
from analysis.io import load_run
from analysis.metrics import (
    RunDescription,
    annotate_frames,
    describe_runs,
    frame_series,
    loss_table,
    rate_share_by_scale,
    seed_intervals,
)
from tests.analysis.synthetic_traces import write_synthetic_run
from tests.analysis.test_analysis_io import write_rd


def assert_labelled(figure: Figure) -> None:
    """Titled, every panel drawn on, x labelled, y labelled with its unit, and a legend."""
    assert figure.get_suptitle() or all(a.get_title() for a in figure.axes)
    for axes in figure.axes:
        assert axes.lines or axes.patches
        x_siblings = axes.get_shared_x_axes().get_siblings(axes)
        y_siblings = axes.get_shared_y_axes().get_siblings(axes)
        assert any(a.get_xlabel() for a in x_siblings)
        assert any("(" in a.get_ylabel() for a in y_siblings), "a y axis names its unit"
    assert figure.legends or any(a.get_legend() is not None for a in figure.axes)


def legend_texts(figure: Figure) -> list[str]:
    legends = list(figure.legends) + [a.get_legend() for a in figure.axes if a.get_legend()]
    return [t.get_text() for legend in legends for t in legend.get_texts()]


@pytest.fixture
def loss_runs(tmp_path: Path):
    losses = {"20% loss": {5: 4}, "80% loss": {5: 3, 9: 2, 14: 4}}
    return {
        label: load_run(write_synthetic_run(tmp_path / label.replace("% ", "_"), 20, lost))
        for label, lost in losses.items()
    }


def test_loss_resilience_has_a_column_per_loss_rate(tmp_path: Path, loss_runs) -> None:
    clean = load_run(write_synthetic_run(tmp_path / "clean", 20))
    reference = annotate_frames(clean.frames, clean.packets)
    figure = plot_loss_resilience(frame_series(loss_runs), reference)
    assert_labelled(figure)
    assert len(figure.axes) == 4
    assert [a.get_title() for a in figure.axes[:2]] == ["20% loss", "80% loss"]
    assert figure.axes[0].get_ylabel() == "PSNR (dB)"
    assert figure.axes[2].get_ylabel() == "rate (bits per pixel)"
    texts = legend_texts(figure)
    assert {"20% loss", "80% loss", "no loss", "frame with packet loss", "re-sync frame"} <= set(
        texts
    )
    # the loss markers of the 80% panel sit on the three lossy frames
    loss_line = next(line for line in figure.axes[1].lines if line.get_marker() == "X")
    assert [x for x, y in zip(*loss_line.get_data(), strict=True) if y == y] == [5, 9, 14]
    paths = save_figure(figure, tmp_path / "figures", "loss_resilience")
    assert [p.name for p in paths] == ["loss_resilience.png", "loss_resilience.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_progressive_draws_one_line_per_scale_count(tmp_path: Path) -> None:
    runs = {
        f"m = {m}": load_run(write_synthetic_run(tmp_path / f"m{m}", 10, scales_sent=m))
        for m in (1, 2, 3, 4)
    }
    figure = plot_progressive(frame_series(runs))
    assert_labelled(figure)
    assert legend_texts(figure) == ["m = 1", "m = 2", "m = 3", "m = 4"]
    assert len(figure.axes[0].lines) == 4
    save_figure(figure, tmp_path, "progressive")
    assert (tmp_path / "progressive.pdf").is_file()


def test_echo_delay_marks_loss_and_resyncs(tmp_path: Path) -> None:
    runs = {
        f"{d} frames": load_run(write_synthetic_run(tmp_path / f"e{d}", 14, {5: 4}, echo_delay=d))
        for d in (1, 3, 6)
    }
    clean = load_run(write_synthetic_run(tmp_path / "clean", 14))
    figure = plot_echo_delay(frame_series(runs), annotate_frames(clean.frames, clean.packets))
    assert_labelled(figure)
    texts = legend_texts(figure)
    assert texts[:4] == ["no loss", "1 frames", "3 frames", "6 frames"]
    resync_x = [
        x
        for line in figure.axes[0].lines
        if line.get_marker() == "^"
        for x, y in zip(*line.get_data(), strict=True)
        if y == y
    ]
    assert sorted(resync_x) == [6, 8, 11]


def test_rate_share_stacks_to_one_hundred_percent(tmp_path: Path) -> None:
    run = load_run(write_synthetic_run(tmp_path / "clean", 8))
    figure = plot_rate_share(rate_share_by_scale(run.frames))
    assert_labelled(figure)
    axes = figure.axes[0]
    tops = {}
    for patch in axes.patches:
        x = round(patch.get_x() + patch.get_width() / 2)
        tops[x] = max(tops.get(x, 0.0), patch.get_y() + patch.get_height())
    assert tops == pytest.approx({0: 100.0, 1: 100.0})
    assert axes.get_ylabel() == "share of frame bits (%)"
    assert [t.get_text() for t in axes.get_xticklabels()] == ["intra frames", "inter frames"]


def test_rd_plot_draws_each_codec_and_quotes_bd_rate(tmp_path: Path) -> None:
    figure = plot_rd(json.loads(write_rd(tmp_path / "rd.json").read_text()))
    assert_labelled(figure)
    assert [a.get_xlabel() for a in figure.axes] == ["rate (bits per pixel)"] * 2
    texts = legend_texts(figure)
    assert "dhvc" in texts
    assert any(t.startswith("x264") and "-25.0%" in t for t in texts)
    assert "clip.y4m 64x64" in figure.get_suptitle()


def with_loss_window(folder: Path, rate: float, first: int, last: int, exempt: list[int]) -> Path:
    """Record in a synthetic run's summary.json the scenario's Bernoulli loss window, as the
    simulator does, and the video it measured."""
    path = folder / "summary.json"
    summary = json.loads(path.read_text())
    loss = {"kind": "bernoulli", "loss_rate": rate, "first_frame": first, "last_frame": last}
    summary["scenario"] = {
        "name": folder.name,
        "video": {"source": "sample:bikes", "width_px": 64, "height_px": 64},
        "network": {"forward": {"loss": {**loss, "exempt_scales": exempt}}},
    }
    path.write_text(json.dumps(summary))
    return folder


def test_loss_panels_quote_the_measured_loss_rates_not_the_set_one(tmp_path: Path) -> None:
    # 20 frames x 4 scales x 2 fragments = 160 packets; scales 2-4 of frames 4-15 are exposed
    # (72 packets); frames 5 and 9 lose one scale's two packets each: 4 lost
    folder = write_synthetic_run(tmp_path / "loss20", 20, {5: 4, 9: 2})
    runs = {"loss rate set to 20%": load_run(with_loss_window(folder, 0.2, 4, 15, [1]))}
    figure = plot_loss_resilience(
        frame_series(runs), losses=loss_table(runs), description=describe_runs(runs.values())
    )
    assert figure.axes[0].get_title().split("\n") == [
        "loss rate set to 20%",
        "lost: 2.5% of all packets",  # 4 / 160
        "5.6% of exposed (scales 2-4, frames 4-15)",  # 4 / 72
    ]
    assert "sample:bikes, 64x64 px, 20 frames, lambda 256, seed 0" in figure.get_suptitle()


def test_rate_panel_shows_the_rate_received_beside_the_rate_sent(tmp_path: Path) -> None:
    runs = {"lossy": load_run(write_synthetic_run(tmp_path / "lossy", 12, {5: 4}))}
    figure = plot_loss_resilience(frame_series(runs))
    rate = figure.axes[1]
    sent = next(line for line in rate.lines if line.get_linestyle() == "-")
    received = next(line for line in rate.lines if line.get_linestyle() == ":")
    assert sent.get_color() == received.get_color()
    lost = [s - r for s, r in zip(sent.get_ydata(), received.get_ydata(), strict=True)]
    # only frame 5 lost bits: its scale 4 (3200 bits of 64 x 64 pixels)
    assert lost == pytest.approx([0.0] * 5 + [3200 / 4096] + [0.0] * 6)
    assert {"rate sent", "rate received in time"} <= set(legend_texts(figure))


def test_markers_stay_visible_on_lines_of_every_colour(tmp_path: Path) -> None:
    runs = {
        f"run {i}": load_run(write_synthetic_run(tmp_path / f"r{i}", 12, {5: 4})) for i in range(4)
    }
    figure = plot_loss_resilience(frame_series(runs))
    for axes in figure.axes:
        lines = [line for line in axes.lines if line.get_marker() in ("None", "", None)]
        markers = [line for line in axes.lines if line.get_marker() in ("X", "^")]
        assert len(markers) == 2
        line_colours = {to_rgba(line.get_color()) for line in lines}
        for marker in markers:
            assert to_rgba(marker.get_markeredgecolor()) not in line_colours
            assert marker.get_zorder() > max(line.get_zorder() for line in lines)
    assert LOSS_STYLE["marker"] != RESYNC_STYLE["marker"]


def _loss_figure(folder: Path) -> Figure:
    runs = {"80%": load_run(write_synthetic_run(folder, 16, {5: 3, 9: 2}))}
    return plot_loss_resilience(frame_series(runs), losses=loss_table(runs))


def test_the_same_input_gives_byte_identical_files(tmp_path: Path) -> None:
    first = save_figure(_loss_figure(tmp_path / "a"), tmp_path / "one", "loss")
    second = save_figure(_loss_figure(tmp_path / "b"), tmp_path / "two", "loss")
    for one, two in zip(first, second, strict=True):
        assert one.read_bytes() == two.read_bytes(), one.name
    assert b"matplotlib" not in first[0].read_bytes().lower()  # no version in the PNG
    assert b"CreationDate" not in first[1].read_bytes()
    # saving the same figure again leaves the files untouched, timestamps included
    before = [path.stat().st_mtime_ns for path in first]
    save_figure(_loss_figure(tmp_path / "c"), tmp_path / "one", "loss")
    assert [path.stat().st_mtime_ns for path in first] == before


def test_description_lists_what_was_measured() -> None:
    one = RunDescription(("sample:bikes",), ((448, 256),), (32,), (1024.0,), (1,))
    assert describe(one) == "sample:bikes, 448x256 px, 32 frames, lambda 1024, seed 1"
    many = RunDescription(("/data/clip.y4m",), (), (16, 32), (64.0, 512.0, 8192.0), (0, 1, 2))
    assert describe(many) == "clip.y4m, 16, 32 frames, lambda 64-8192 (3 values), seeds 0, 1, 2"


def test_psnr_vs_loss_draws_means_with_their_intervals() -> None:
    table = pd.DataFrame(
        {
            "loss": [0.2, 0.2, 0.2, 0.4, 0.4, 0.4, 0.8],
            "seed": [0, 1, 2, 0, 1, 2, 0],
            "mean_psnr_db": [30.0, 31.0, 32.0, 27.0, 27.0, 27.0, 20.0],
            "packet_loss_rate": [0.1, 0.15, 0.2, 0.3, 0.3, 0.3, 0.5],
        }
    )
    intervals = seed_intervals(table, by=["loss"])
    figure = plot_psnr_vs_loss(intervals, set_column="loss")
    assert_labelled(figure)
    axes = figure.axes[0]
    x, y = axes.lines[0].get_data()
    assert list(x) == pytest.approx([15.0, 30.0, 50.0])  # measured loss, percent
    assert list(y) == pytest.approx([31.0, 27.0, 20.0])
    assert [t.get_text() for t in axes.texts] == ["set 20%", "set 40%", "set 80%"]
    assert axes.get_xlabel() == "packets lost, measured (% of all packets sent)"
    assert any("95% t-interval" in t for t in legend_texts(figure))
    # the 3-seed point has a vertical bar of +/- t(0.975, 2) * 1 / sqrt(3); the 1-seed none
    segments = [s for c in axes.collections for s in c.get_segments() if len(s) == 2]
    bars = {(s[0][0], s[0][1], s[1][1]) for s in segments if s[0][0] == s[1][0]}
    half = 4.302652729911275 / math.sqrt(3)
    assert [b for b in bars if b[0] == 15.0] == [pytest.approx((15.0, 31.0 - half, 31.0 + half))]
    assert not [b for b in bars if b[0] == 50.0]
