"""Small deterministic trace folders in the simulator's format (DESIGN 5) for analysis tests.

The decoder state follows DESIGN 2-3 in miniature: a lost scale s drops D to s when s < D, the
receiver echoes, the echo reaches the sender ``echo_delay`` frames later, and the next frame is
a re-sync frame from scale D which brings the decoder back in sync.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

NUM_SCALES = 4
FPS = 25.0
WIDTH, HEIGHT = 64, 64
FRAGMENTS = 2
SCALE_BITS_P = (400, 800, 1600, 3200)
SCALE_BITS_I = (2400, 4000, 6400, 9600)

FRAME_HEADER = [
    "frame", "frame_type", "resync_from", "lambda", "scales_received", "scales_decoded",
    "first_desynced_scale", "echo_sent", "bits_total", "bits_s1", "bits_s2", "bits_s3",
    "bits_s4", "bpp", "psnr", "ms_ssim", "capture_time_s", "decode_time_s",
]  # fmt: skip
PACKET_HEADER = [
    "seq", "frame", "scale", "fragment", "size_bytes", "send_time_s", "arrival_time_s", "fate",
]  # fmt: skip


def synthetic_rows(
    frames: int = 32,
    losses: Mapping[int, int] | None = None,
    echo_delay: int = 3,
    scales_sent: int = NUM_SCALES,
    loss_fate: str = "lost",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Frame and packet rows; ``losses`` maps a frame index to the scale whose packets are lost."""
    losses = dict(losses or {})
    in_sync = NUM_SCALES + 1
    d = in_sync
    pending: int | None = None  # frame index at which a re-sync arrives
    pending_scale = in_sync
    frame_rows: list[dict[str, Any]] = []
    packet_rows: list[dict[str, Any]] = []
    seq = 0
    for t in range(frames):
        if t == 0:
            frame_type, resync_from = "I", 1
        elif pending is not None and t >= pending:
            frame_type, resync_from = "R", pending_scale
            pending = None
        else:
            frame_type, resync_from = "P", 0
        bits = list(SCALE_BITS_I if frame_type == "I" else SCALE_BITS_P)
        if frame_type == "R":
            bits = [b if k + 1 < resync_from else 2 * b for k, b in enumerate(bits)]
        bits = [b if k < scales_sent else 0 for k, b in enumerate(bits)]
        lost_scale = losses.get(t)
        received = [k for k in range(1, scales_sent + 1) if k != lost_scale]
        if frame_type in ("I", "R") and resync_from <= d:
            d = in_sync
        echo = 0
        decoded = 0
        for k in range(1, NUM_SCALES + 1):
            if k in received and k < d and decoded == k - 1:
                decoded += 1
            elif k <= scales_sent and k < d and k not in received:
                d = k
                echo = k
        if echo:
            pending = t + echo_delay
            pending_scale = echo
        psnr = 30.0 + 2.0 * (min(d, scales_sent + 1) - 1) + 0.01 * t
        capture = t / FPS
        frame_rows.append(
            {
                "frame": t,
                "frame_type": frame_type,
                "resync_from": resync_from,
                "lambda": 256.0,
                "scales_received": len(received),
                "scales_decoded": decoded,
                "first_desynced_scale": d,
                "echo_sent": echo,
                "bits_total": sum(bits),
                **{f"bits_s{k + 1}": bits[k] for k in range(NUM_SCALES)},
                "bpp": sum(bits) / (WIDTH * HEIGHT),
                "psnr": round(psnr, 4),
                "ms_ssim": round(0.9 + 0.002 * psnr / 10, 5),
                "capture_time_s": capture,
                "decode_time_s": capture + 0.06,
            }
        )
        for k in range(1, scales_sent + 1):
            for fragment in range(FRAGMENTS):
                fate = loss_fate if k == lost_scale else "delivered"
                packet_rows.append(
                    {
                        "seq": seq,
                        "frame": t,
                        "scale": k,
                        "fragment": fragment,
                        "size_bytes": bits[k - 1] // (8 * FRAGMENTS),
                        "send_time_s": capture,
                        "arrival_time_s": "" if fate in ("lost", "queue_drop") else capture + 0.02,
                        "fate": fate,
                    }
                )
                seq += 1
    return frame_rows, packet_rows


def write_csv(path: Path, header: list[str], rows: Iterable[Mapping[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def write_synthetic_run(
    folder: Path,
    frames: int = 32,
    losses: Mapping[int, int] | None = None,
    echo_delay: int = 3,
    scales_sent: int = NUM_SCALES,
    seed: int = 0,
    name: str | None = None,
) -> Path:
    """Write frames.csv, packets.csv and summary.json of a synthetic run into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    frame_rows, packet_rows = synthetic_rows(frames, losses, echo_delay, scales_sent)
    write_csv(folder / "frames.csv", FRAME_HEADER, frame_rows)
    write_csv(folder / "packets.csv", PACKET_HEADER, packet_rows)
    lost = sum(row["fate"] != "delivered" for row in packet_rows)
    summary = {
        "scenario": name or folder.name,
        "seed": seed,
        "versions": {"python": "3.11"},
        "mean_psnr_db": sum(r["psnr"] for r in frame_rows) / len(frame_rows),
        "loss": {
            "packets_sent": len(packet_rows),
            "packets_not_in_time": lost,
            "packet_loss_rate": lost / len(packet_rows),
        },
        "run_times_s": {"total": 1.0},
    }
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder
