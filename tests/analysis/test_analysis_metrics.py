"""Per-run and per-sweep metrics computed from traces."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.io import load_run
from analysis.metrics import (
    RunDescription,
    annotate_frames,
    describe_rd,
    describe_runs,
    describe_table,
    desync_events,
    frame_interval_s,
    frame_series,
    grid_columns,
    loss_table,
    measured_loss,
    rate_share_by_scale,
    received_bits,
    run_metrics,
    seed_intervals,
    summary_table,
)
from tests.analysis.synthetic_traces import (
    FPS,
    SCALE_BITS_I,
    SCALE_BITS_P,
    write_synthetic_run,
)
from tests.analysis.test_analysis_figures import with_loss_window
from tests.analysis.test_analysis_io import write_rd


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
    assert table["summary.loss.packets_not_in_time"].tolist() == [2, 2]
    assert table["desync_events"].tolist() == [1, 1]


def test_measured_loss_counts_all_packets_and_the_exposed_ones(tmp_path: Path) -> None:
    # 32 frames x 4 scales x 2 fragments = 256 packets. Exposed: scales 2-4 of frames 4-28,
    # 25 x 3 x 2 = 150 packets. Frames 6 and 10 lose a scale (2 packets each) -> 4 lost.
    folder = write_synthetic_run(tmp_path / "loss20", 32, {6: 4, 10: 3})
    run = load_run(with_loss_window(folder, 0.2, 4, 28, [1]))
    loss = measured_loss(run)
    assert (loss.packets_sent, loss.packets_lost) == (256, 4)
    assert loss.loss_rate == pytest.approx(4 / 256)
    assert (loss.exposed_packets, loss.exposed_packets_lost) == (150, 4)
    assert loss.exposed_loss_rate == pytest.approx(4 / 150)
    assert loss.set_loss_rate == 0.2
    assert (loss.first_frame, loss.last_frame, loss.exposed_scales) == (4, 28, (2, 3, 4))
    metrics = run_metrics(run)
    assert metrics.exposed_loss_rate == pytest.approx(4 / 150)
    assert metrics.packet_loss_rate == pytest.approx(4 / 256)


def test_a_loss_outside_the_window_counts_only_among_all_packets(tmp_path: Path) -> None:
    # frame 2 is before the window (a queue drop would look like this): not exposed
    folder = write_synthetic_run(tmp_path / "r", 12, {2: 3, 6: 2})
    loss = measured_loss(load_run(with_loss_window(folder, 0.5, 4, None, [1])))
    assert (loss.packets_lost, loss.exposed_packets_lost) == (4, 2)
    assert (loss.first_frame, loss.last_frame) == (4, 11)  # open end: the run's last frame
    assert loss.exposed_packets == 8 * 3 * 2


def test_a_run_without_a_loss_window_has_no_exposed_rate(tmp_path: Path) -> None:
    loss = measured_loss(load_run(write_synthetic_run(tmp_path / "r", 8, {3: 4})))
    assert loss.packets_lost == 2
    assert math.isnan(loss.exposed_loss_rate) and math.isnan(loss.set_loss_rate)
    assert loss.exposed_packets == 0


def test_loss_table_has_a_row_per_label_in_order(tmp_path: Path) -> None:
    runs = {
        "b": load_run(write_synthetic_run(tmp_path / "b", 8, {3: 4})),
        "a": load_run(write_synthetic_run(tmp_path / "a", 8)),
    }
    table = loss_table(runs)
    assert table.index.tolist() == ["b", "a"]
    assert table["packets_lost"].tolist() == [2, 0]


def test_received_bits_drop_the_scales_that_did_not_arrive(lossy) -> None:
    received = received_bits(lossy.frames, lossy.packets)
    sent = lossy.frames.set_index("frame")["bits_total"]
    assert (sent - received).to_dict() == {
        **{frame: 0.0 for frame in range(16)},
        4: float(SCALE_BITS_P[2]),  # scale 3 lost
        6: float(SCALE_BITS_P[1]),  # scale 2 lost
    }
    frames = annotate_frames(lossy.frames, lossy.packets)
    assert frames.loc[4, "bpp_received"] == pytest.approx(
        frames.loc[4, "bpp"] * (1 - SCALE_BITS_P[2] / sum(SCALE_BITS_P))
    )
    assert (frames["bpp_received"] <= frames["bpp"]).all()
    assert frames["bits_received"].tolist() == received.tolist()


def test_a_partly_received_scale_counts_by_bytes(tmp_path: Path) -> None:
    run = load_run(write_synthetic_run(tmp_path / "r", 4))
    packets = run.packets.copy()
    first_fragment = (packets["frame"] == 1) & (packets["scale"] == 4) & (packets["fragment"] == 0)
    packets.loc[first_fragment, "fate"] = "late"
    received = received_bits(run.frames, packets)
    assert received[1] == pytest.approx(sum(SCALE_BITS_P) - SCALE_BITS_P[3] / 2)


def _sweep_table() -> pd.DataFrame:
    rows = []
    psnr = {0.2: [30.0, 32.0, 34.0], 0.4: [26.0, 27.0, 31.0]}
    for rate, values in psnr.items():
        for seed, value in enumerate(values):
            rows.append(
                {
                    "run": f"loss_{rate}__seed_{seed}",
                    "network.forward.loss.loss_rate": rate,
                    "seed": seed,
                    "frames": 32,
                    "mean_psnr_db": value,
                    "packet_loss_rate": rate / 2 + 0.01 * seed,
                    "summary.scenario.video.source": "sample:bikes",
                    "summary.scenario.video.width_px": 448,
                    "summary.scenario.video.height_px": 256,
                    "summary.scenario.codec.lam": 1024.0,
                }
            )
    rows.append({**rows[0], "network.forward.loss.loss_rate": 0.8, "mean_psnr_db": 20.0})
    return pd.DataFrame(rows)


def test_grid_columns_are_the_sweep_parameters() -> None:
    assert grid_columns(_sweep_table()) == ["network.forward.loss.loss_rate"]


def test_seed_intervals_give_mean_and_t_interval_per_grid_point() -> None:
    intervals = seed_intervals(_sweep_table())
    assert intervals["network.forward.loss.loss_rate"].tolist() == [0.2, 0.4, 0.8]
    assert intervals["seeds"].tolist() == [3, 3, 1]
    assert intervals["mean_psnr_db_mean"].tolist() == pytest.approx([32.0, 28.0, 20.0])
    # 0.2: sample std 2, t(0.975, 2) = 4.302653 -> half width 4.302653 * 2 / sqrt(3) = 4.968275
    # 0.4: values 26, 27, 31: std sqrt(7) -> half width 4.302653 * sqrt(7 / 3) = 6.572411
    assert intervals["mean_psnr_db_std"].tolist()[:2] == pytest.approx([2.0, math.sqrt(7.0)])
    assert intervals["mean_psnr_db_ci_low"].tolist()[:2] == pytest.approx(
        [32.0 - 4.968275, 28.0 - 6.572411], abs=1e-6
    )
    assert intervals["mean_psnr_db_ci_high"].tolist()[:2] == pytest.approx(
        [32.0 + 4.968275, 28.0 + 6.572411], abs=1e-6
    )
    assert intervals["packet_loss_rate_mean"].tolist() == pytest.approx([0.11, 0.21, 0.1])
    # one seed: a mean but no interval
    last = intervals.iloc[2]
    assert np.isnan([last["mean_psnr_db_std"], last["mean_psnr_db_ci_low"]]).all()
    assert np.isnan(last["mean_psnr_db_ci_high"])


def test_seed_intervals_take_the_confidence_level() -> None:
    table = _sweep_table()
    narrow = seed_intervals(table, values=["mean_psnr_db"], confidence=0.5)
    # t(0.75, 2) = 0.816497 -> half width 0.816497 * 2 / sqrt(3)
    assert narrow["mean_psnr_db_ci_high"].iloc[0] == pytest.approx(32.0 + 0.942809, abs=1e-6)
    with pytest.raises(ValueError, match="no column 'psnr'"):
        seed_intervals(table, values=["psnr"])
    with pytest.raises(ValueError, match="confidence"):
        seed_intervals(table, confidence=95)


def test_descriptions_say_what_was_measured(tmp_path: Path) -> None:
    assert describe_table(_sweep_table()) == RunDescription(
        ("sample:bikes",), ((448, 256),), (32,), (1024.0,), (0, 1, 2)
    )
    folder = with_loss_window(write_synthetic_run(tmp_path / "r", 8, seed=3), 0.2, 0, 7, [1])
    assert describe_runs([load_run(folder)]) == RunDescription(
        ("sample:bikes",), ((64, 64),), (8,), (256.0,), (3,)
    )
    rd = json.loads(write_rd(tmp_path / "rd.json").read_text())
    assert describe_rd(rd) == RunDescription(("clip.y4m",), ((64, 64),), (8,), (256.0, 1024.0), ())
