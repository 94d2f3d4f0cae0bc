"""Figure functions draw what they are given, with titles, units and legends, as .png and .pdf."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from analysis.figures import (
    plot_echo_delay,
    plot_loss_resilience,
    plot_progressive,
    plot_rate_share,
    plot_rd,
    save_figure,
)
from analysis.io import load_rd, load_run
from analysis.metrics import annotate_frames, frame_series, rate_share_by_scale
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
    loss_line = next(line for line in figure.axes[1].lines if line.get_marker() == "x")
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
    points, info = load_rd(write_rd(tmp_path / "rd.json"))
    figure = plot_rd(points, info)
    assert_labelled(figure)
    assert [a.get_xlabel() for a in figure.axes] == ["rate (bits per pixel)"] * 2
    texts = legend_texts(figure)
    assert "dhvc" in texts
    assert any(t.startswith("x264") and "-25.0%" in t for t in texts)
    assert "clip.y4m 64x64" in figure.get_suptitle()
