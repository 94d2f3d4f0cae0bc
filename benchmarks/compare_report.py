"""The comparison's tables, as the README quotes them, from what `make compare` wrote.

Reads the sweep tables under ``results/sweeps/compare_*`` and the single runs under
``results/compare/`` and prints Markdown: mean PSNR, packets per frame sent and the share of
frames under 25 dB per codec and Bernoulli loss rate (means over the seeds); the burst and
cellular networks; the equal-FEC-budget row against each codec's own clean run; early
decoding. A table whose runs are missing is skipped with a line saying which. Usage::

    python benchmarks/compare_report.py [--results results]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

LOSS = "network.forward.loss.loss_rate"
RATES = (0.0, 0.05, 0.1, 0.2, 0.4)
EARLY_RATES = (0.05, 0.1, 0.2)
ROWS = {
    "dhvc": "DHVC, paper layout",
    "dhvc_best": "DHVC, best configuration",
    "x264": "x264",
    "x265": "x265",
}
UNDER_25 = "summary.damage.frames_under_25db_share"
PACKETS_PER_FRAME = "summary.damage.packets_per_frame"


def sweep_table(results: Path, name: str) -> pd.DataFrame | None:
    """The sweep table of ``results/sweeps/<name>``, or None (with a line) when missing."""
    path = results / "sweeps" / name / "sweep_table.csv"
    if not path.is_file():
        print(f"<!-- {path}: missing; run make compare -->")
        return None
    return pd.read_csv(path)


def by_rate(table: pd.DataFrame, column: str) -> pd.Series:
    return table.groupby(LOSS)[column].mean()


def cell(value: float | None, digits: int = 2, scale: float = 1.0, suffix: str = "") -> str:
    return "-" if value is None or pd.isna(value) else f"{scale * value:.{digits}f}{suffix}"


def bernoulli_tables(results: Path) -> None:
    tables = {key: sweep_table(results, f"compare_{key}") for key in ROWS}
    tables = {key: table for key, table in tables.items() if table is not None}
    header = "| Bernoulli loss | " + " | ".join(f"{r:.0%}" for r in RATES) + " |"
    print(header)
    print("| --- " * (len(RATES) + 1) + "|")
    for key, table in tables.items():
        psnr = by_rate(table, "mean_psnr_db")
        print(f"| {ROWS[key]} | " + " | ".join(cell(psnr.get(r)) for r in RATES) + " |")
    for label, column, digits, scale, suffix in (
        ("packets/frame", PACKETS_PER_FRAME, 2, 1.0, ""),
        ("frames under 25 dB", UNDER_25, 1, 100.0, "%"),
    ):
        parts = []
        for rate in RATES:
            values = [by_rate(t, column).get(rate) for t in tables.values()]
            parts.append(" / ".join(cell(v, digits, scale, suffix) for v in values))
        names = " / ".join(ROWS[key].replace("DHVC, ", "") for key in tables)
        print(f"| {label}: {names} | " + " | ".join(parts) + " |")
    print()


def network_row(runs: list[dict]) -> str:
    """Mean PSNR (frames under 25 dB; packets lost) over the summaries of ``runs``."""
    n = len(runs)
    psnr = sum(s["mean_psnr_db"] for s in runs) / n
    under = sum(s["damage"]["frames_under_25db_share"] for s in runs) / n
    lost = sum(s["loss"]["packet_loss_rate"] for s in runs) / n
    return f"{psnr:.2f} dB ({100 * under:.1f}%; {100 * lost:.1f}%)"


def summaries(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/summary.json"))]


def network_tables(results: Path) -> None:
    print("| network | " + " | ".join(ROWS.values()) + " |")
    print("| --- " * (len(ROWS) + 1) + "|")
    for network in ("burst", "cellular"):
        cells = []
        for key in ROWS:
            if network == "burst":
                runs = summaries(results / "sweeps" / f"compare_{key}_burst")
            else:
                path = results / "compare" / f"compare_{key}_cellular" / "summary.json"
                runs = [json.loads(path.read_text())] if path.is_file() else []
            cells.append(network_row(runs) if runs else "-")
        print(f"| {network} | " + " | ".join(cells) + " |")
    print("(mean PSNR; frames under 25 dB; packets lost)\n")


def fec_table(results: Path) -> None:
    print("| 10% loss, equal FEC budget | with FEC | its own clean run | loss from clean |")
    print("| --- | --- | --- | --- |")
    for key, clean_key in (("dhvc_best_fec", "dhvc_best"), ("x264_fec", "x264")):
        fec, clean = (
            sweep_table(results, f"compare_{key}"),
            sweep_table(results, f"compare_{clean_key}"),
        )
        if fec is None or clean is None:
            continue
        with_fec = fec["mean_psnr_db"].mean()
        own_clean = by_rate(clean, "mean_psnr_db").get(0.0)
        wire = fec["summary.loss.packets_sent"].mean()
        print(
            f"| {ROWS[clean_key]} | {with_fec:.2f} dB ({wire:.0f} packets) | "
            f"{cell(own_clean)} dB | {cell(with_fec - own_clean)} dB |"
        )
    print()


def early_table(results: Path) -> None:
    print(
        "| Bernoulli loss, early decoding | " + " | ".join(f"{r:.0%}" for r in EARLY_RATES) + " |"
    )
    print("| --- " * (len(EARLY_RATES) + 1) + "|")
    for key in ("dhvc_best", "x264"):
        table = sweep_table(results, f"compare_{key}_early")
        if table is None:
            continue
        psnr, under = by_rate(table, "mean_psnr_db"), by_rate(table, UNDER_25)
        cells = [f"{cell(psnr.get(r))} ({cell(under.get(r), 1, 100.0, '%')})" for r in EARLY_RATES]
        print(f"| {ROWS[key]} | " + " | ".join(cells) + " |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    args = parser.parse_args()
    bernoulli_tables(args.results)
    network_tables(args.results)
    fec_table(args.results)
    early_table(args.results)


if __name__ == "__main__":
    main()
