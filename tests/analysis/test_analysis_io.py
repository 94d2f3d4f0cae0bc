"""Loading and validating trace files (DESIGN 5)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.io import (
    PACKET_FATES,
    TraceError,
    load_frames,
    load_packets,
    load_rd,
    load_run,
    load_summary,
)
from netsim.summary import flatten_summary
from tests.analysis.synthetic_traces import write_synthetic_run


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_synthetic_run(tmp_path / "loss40", frames=12, losses={4: 3})


def test_load_run_returns_typed_tables(run_dir: Path) -> None:
    run = load_run(run_dir)
    assert run.name == "loss40"
    assert run.num_scales == 4
    assert len(run.frames) == 12
    assert run.frames["frame"].dtype == np.int64
    assert run.frames["psnr"].dtype == np.float64
    assert run.frames["echo_sent"].dtype == np.int64
    assert list(run.frames["frame_type"].cat.categories) == ["I", "P", "R", "M"]
    assert run.packets["fate"].dtype == "category"
    assert list(run.packets["fate"].cat.categories) == list(PACKET_FATES)
    assert run.summary["scenario"] == "loss40"


def test_lost_packets_have_missing_arrival_time(run_dir: Path) -> None:
    packets = load_packets(run_dir)
    lost = packets[packets["fate"] == "lost"]
    assert len(lost) == 2
    assert lost["arrival_time_s"].isna().all()
    assert packets.loc[packets["fate"] == "delivered", "arrival_time_s"].notna().all()


def test_extra_columns_are_kept_and_parsed(run_dir: Path) -> None:
    table = pd.read_csv(run_dir / "frames.csv")
    table["encode_time_s"] = 0.25
    table["note"] = "x"
    table.to_csv(run_dir / "frames.csv", index=False)
    frames = load_frames(run_dir / "frames.csv")
    assert frames["encode_time_s"].dtype == np.float64
    assert (frames["note"] == "x").all()


def test_frames_are_sorted_by_frame_index(run_dir: Path) -> None:
    table = pd.read_csv(run_dir / "frames.csv").iloc[::-1]
    table.to_csv(run_dir / "frames.csv", index=False)
    assert load_frames(run_dir)["frame"].tolist() == list(range(12))


def test_echo_sent_accepts_booleans(run_dir: Path) -> None:
    table = pd.read_csv(run_dir / "frames.csv")
    table["echo_sent"] = table["echo_sent"] > 0
    table.to_csv(run_dir / "frames.csv", index=False)
    assert load_frames(run_dir)["echo_sent"].tolist()[3:6] == [0, 1, 0]


def test_missing_column_raises_one_line_naming_file_and_column(run_dir: Path) -> None:
    pd.read_csv(run_dir / "frames.csv").drop(columns=["psnr"]).to_csv(
        run_dir / "frames.csv", index=False
    )
    with pytest.raises(TraceError) as caught:
        load_frames(run_dir)
    message = str(caught.value)
    assert "\n" not in message
    assert "frames.csv" in message and "psnr" in message


def test_missing_scale_bit_columns_raise(run_dir: Path) -> None:
    pd.read_csv(run_dir / "frames.csv").drop(columns=["bits_s2"]).to_csv(
        run_dir / "frames.csv", index=False
    )
    with pytest.raises(TraceError, match="bits_s1, bits_s2, bits_s3"):
        load_frames(run_dir)


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("psnr", "high", "a number"),
        ("frame", "1.5", "an integer"),
        ("first_desynced_scale", "", "an integer"),
        ("frame_type", "B", "one of I, P, R"),
        ("echo_sent", "-1", "true/false or a non-negative integer"),
    ],
)
def test_wrong_dtype_raises_naming_column_and_row(
    run_dir: Path, column: str, value: str, expected: str
) -> None:
    table = pd.read_csv(run_dir / "frames.csv", dtype=str, keep_default_na=False)
    table.loc[2, column] = value
    table.to_csv(run_dir / "frames.csv", index=False)
    with pytest.raises(TraceError, match=rf"'{column}' must be {expected}.*data row 3"):
        load_frames(run_dir)


def test_unknown_fate_raises(run_dir: Path) -> None:
    table = pd.read_csv(run_dir / "packets.csv", dtype=str, keep_default_na=False)
    table.loc[0, "fate"] = "vanished"
    table.to_csv(run_dir / "packets.csv", index=False)
    with pytest.raises(TraceError, match="'fate' must be one of delivered"):
        load_packets(run_dir)


def test_duplicate_frame_rows_raise(run_dir: Path) -> None:
    table = pd.read_csv(run_dir / "frames.csv")
    pd.concat([table, table.iloc[[3]]]).to_csv(run_dir / "frames.csv", index=False)
    with pytest.raises(TraceError, match="repeats frame 3"):
        load_frames(run_dir)


@pytest.mark.parametrize("name", ["frames.csv", "packets.csv", "summary.json"])
def test_missing_file_raises_naming_it(run_dir: Path, name: str) -> None:
    (run_dir / name).unlink()
    with pytest.raises(TraceError, match=rf"{name}: file not found"):
        load_run(run_dir)


def test_missing_run_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="run folder not found"):
        load_run(tmp_path / "nothing")


def test_summary_must_name_scenario_and_seed(run_dir: Path) -> None:
    (run_dir / "summary.json").write_text(json.dumps({"scenario": "x"}))
    with pytest.raises(TraceError, match="missing key.*seed"):
        load_summary(run_dir)
    (run_dir / "summary.json").write_text("{not json")
    with pytest.raises(TraceError, match="not valid JSON"):
        load_summary(run_dir)


def test_empty_csv_raises(run_dir: Path) -> None:
    (run_dir / "packets.csv").write_text("")
    with pytest.raises(TraceError, match="packets.csv: not a CSV table"):
        load_packets(run_dir)


def test_flatten_summary_uses_dotted_keys() -> None:
    flat = flatten_summary({"a": 1, "loss": {"rate": 0.2, "burst": {"mean": 2}}, "l": [1, 2]})
    assert flat == {"a": 1, "loss.rate": 0.2, "loss.burst.mean": 2, "l": "[1, 2]"}


def write_rd(path: Path) -> Path:
    rd = {
        "video": "clip.y4m",
        "frames": 8,
        "gop": 8,
        "width": 64,
        "height": 64,
        "model": "small",
        "codecs": {
            "dhvc": [
                {"lambda": 1024, "bpp": 0.3, "psnr": 36.0, "ms_ssim": 0.98, "bits_intra": 1.0},
                {"lambda": 256, "bpp": 0.1, "psnr": 32.0, "ms_ssim": 0.95, "bits_intra": 1.0},
            ],
            "x264": [{"qp": 37, "bpp": 0.12, "psnr": 31.0, "ms_ssim": 0.94}],
        },
        "anchor_settings": {"preset": "medium"},
        "bd_rate": {"x264": {"psnr": -25.0, "ms_ssim": -30.0}},
    }
    path.write_text(json.dumps(rd))
    return path


def test_load_rd_gives_one_row_per_rate_point(tmp_path: Path) -> None:
    points, info = load_rd(write_rd(tmp_path / "rd.json"))
    assert points["codec"].tolist() == ["dhvc", "dhvc", "x264"]
    assert points["bpp"].tolist() == [0.1, 0.3, 0.12]  # sorted by rate within a codec
    assert points["parameter"].tolist() == ["lambda", "lambda", "qp"]
    assert info["bd_rate"]["x264"]["psnr"] == -25.0
    assert "codecs" not in info


def test_load_rd_rejects_a_point_without_psnr(tmp_path: Path) -> None:
    path = write_rd(tmp_path / "rd.json")
    data = json.loads(path.read_text())
    del data["codecs"]["x264"][0]["psnr"]
    path.write_text(json.dumps(data))
    with pytest.raises(TraceError, match=r"codecs.x264\[0\]: 'psnr' must be a number"):
        load_rd(path)
