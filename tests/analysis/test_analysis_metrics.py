"""Per-run and per-sweep metrics computed from traces."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.io import load_run
from analysis.metrics import (
    annotate_frames,
    desync_events,
    frame_interval_s,
    frame_series,
    rate_share_by_scale,
    run_metrics,
    summary_table,
)
from tests.analysis.synthetic_traces import FPS, SCALE_BITS_I, SCALE_BITS_P, write_synthetic_run


@pytest.fixture
def lossy(tmp_path: Path):
    # scale 3 lost in frame 4, scale 2 in frame 6; echo delay 3 -> re-sync from 2 at frame 9
    return load_run(write_synthetic_run(tmp_path / "lossy", frames=16, losses={4: 3, 6: 2}))


def test_desync_events_count_frames_until_back_in_sync(lossy) -> None:
    events = desync_events(lossy.frames)
    assert events["frame"].tolist() == [4, 6]
    assert events["desynced_scale"].tolist() == [3, 2]
    assert events["recovered_frame"].tolist() == [9.0, 9.0]
    assert events["frames_to_recover"].tolist() == [5.0, 3.0]
    assert events["recovered"].all()


def test_an_unrecovered_event_has_nan_recovery(tmp_path: Path) -> None:
    run = load_run(write_synthetic_run(tmp_path / "r", frames=8, losses={6: 4}, echo_delay=5))
    events = desync_events(run.frames)
    assert events["frame"].tolist() == [6]
    assert not events["recovered"].iloc[0]
    assert math.isnan(events["frames_to_recover"].iloc[0])
    metrics = run_metrics(run)
    assert metrics.unrecovered_events == 1
    assert math.isnan(metrics.mean_frames_to_recover)


def test_no_loss_means_no_events(tmp_path: Path) -> None:
    run = load_run(write_synthetic_run(tmp_path / "clean", frames=6))
    assert desync_events(run.frames).empty
    metrics = run_metrics(run)
    assert (metrics.desync_events, metrics.frames_desynced, metrics.resyncs) == (0, 0, 0)
    assert metrics.packet_loss_rate == 0.0


def test_run_metrics_summarise_the_run(lossy) -> None:
    metrics = run_metrics(lossy)
    frames = lossy.frames
    assert metrics.name == "lossy"
    assert metrics.frames == 16
    assert metrics.mean_psnr_db == pytest.approx(frames["psnr"].mean())
    assert metrics.min_psnr_db == pytest.approx(frames["psnr"].min())
    assert metrics.mean_bpp == pytest.approx(frames["bpp"].mean())
    assert metrics.frames_with_loss == 2
    assert metrics.frames_desynced == 5  # frames 4..8
    assert metrics.resyncs == 1
    assert metrics.echoes == 2
    assert metrics.desync_events == 2
    assert metrics.mean_frames_to_recover == pytest.approx(4.0)
    assert metrics.max_frames_to_recover == pytest.approx(5.0)
    assert metrics.packets_lost == 4
    assert metrics.packet_loss_rate == pytest.approx(4 / 128)
    assert metrics.mean_rate_kbps == pytest.approx(frames["bits_total"].mean() * FPS / 1000)


def test_frame_interval_is_the_capture_step(lossy) -> None:
    assert frame_interval_s(lossy.frames) == pytest.approx(1 / FPS)


def test_annotated_frames_mark_losses_and_resyncs(lossy) -> None:
    frames = annotate_frames(lossy.frames, lossy.packets)
    assert frames.loc[frames["loss"], "frame"].tolist() == [4, 6]
    assert frames.loc[frames["resync"], "frame"].tolist() == [9]
    assert frames["psnr_at_loss"].notna().tolist() == frames["loss"].tolist()
    assert frames.loc[9, "bpp_at_resync"] == frames.loc[9, "bpp"]
    assert frames["packets_lost"].sum() == 4
    assert frames.loc[4, "scales_hit"] == 1


@pytest.mark.parametrize("fate", ["queue_drop", "late"])
def test_queue_drops_and_late_packets_count_as_loss(tmp_path: Path, fate: str) -> None:
    run = load_run(write_synthetic_run(tmp_path / "q", frames=8, losses={3: 4}))
    packets = pd.read_csv(run.path / "packets.csv")
    packets["fate"] = packets["fate"].replace("lost", fate)
    packets.to_csv(run.path / "packets.csv", index=False)
    assert run_metrics(load_run(run.path)).packets_lost == 2


def test_fec_recovered_packets_are_not_loss(tmp_path: Path) -> None:
    run = load_run(write_synthetic_run(tmp_path / "f", frames=8, losses={3: 4}))
    packets = pd.read_csv(run.path / "packets.csv")
    packets["fate"] = packets["fate"].replace("lost", "fec_recovered")
    packets.to_csv(run.path / "packets.csv", index=False)
    assert run_metrics(load_run(run.path)).frames_with_loss == 0


def test_rate_share_separates_intra_and_inter(lossy) -> None:
    share = rate_share_by_scale(lossy.frames)
    assert share["coding"].unique().tolist() == ["intra", "inter"]
    intra = share[share["coding"] == "intra"]
    assert intra["share"].sum() == pytest.approx(1.0)
    assert intra["share"].tolist() == pytest.approx([b / sum(SCALE_BITS_I) for b in SCALE_BITS_I])
    inter = share[share["coding"] == "inter"]
    assert inter["share"].tolist() == pytest.approx([b / sum(SCALE_BITS_P) for b in SCALE_BITS_P])
    assert inter["share_start"].tolist() == pytest.approx(
        [0.0, *(inter["share"].cumsum().tolist()[:-1])]
    )


def test_frame_series_keeps_run_order(tmp_path: Path) -> None:
    runs = {
        "80% loss": load_run(write_synthetic_run(tmp_path / "a", frames=4)),
        "20% loss": load_run(write_synthetic_run(tmp_path / "b", frames=4)),
    }
    series = frame_series(runs)
    assert list(series["label"].cat.categories) == ["80% loss", "20% loss"]
    assert len(series) == 8


def test_summary_table_has_a_row_per_run_with_parameters(tmp_path: Path) -> None:
    runs = [
        load_run(write_synthetic_run(tmp_path / f"r{seed}", frames=8, seed=seed, losses={2: 3}))
        for seed in (0, 1)
    ]
    table = summary_table(runs, {"r0": {"loss.loss_rate": 0.2, "seed": 0}})
    assert table["run"].tolist() == ["r0", "r1"]
    assert table.loc[0, "loss.loss_rate"] == 0.2
    assert math.isnan(table.loc[1, "loss.loss_rate"])
    assert table["summary.seed"].tolist() == [0, 1]
    assert table["summary.loss.packets_lost"].tolist() == [2, 2]
    assert table["desync_events"].tolist() == [1, 1]
