"""One table from a scenario's codec kind to its adapter (DESIGN 4b, house style 19).

Scenario validation, the frames.csv ``codec`` column, summary.json and the figures read the codec
kinds from here, so each kind is named once: ``dhvc`` below, ``x264`` and ``x265`` by the
standard codecs' table (``codec.h26x.nal.STANDARD_CODECS``). A built-in adapter's module is
imported the first time its entry is asked for (the table itself imports no codec), and
registers its ``CodecEntry`` then; a user's codec registers its own entry with
``register_codec`` (see the README, "Adding a codec").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from codec.h26x.realtime import STANDARD_CODECS

if TYPE_CHECKING:
    import numpy as np

    from netsim.codecs.base import LoadedCodec
    from netsim.scenario import CodecSpec, Scenario

DHVC = "dhvc"
"""The kind of the neural codec under test, the default of every scenario."""

DEFAULT_CODEC = DHVC
"""The codec of a scenario that names none (and of traces written before codecs had a name)."""

_BUILTIN_MODULES: dict[str, str] = {
    DHVC: "netsim.codecs.dhvc",
    **dict.fromkeys(STANDARD_CODECS, "netsim.codecs.h26x"),
}
"""Built-in kinds, in the order traces and figures list them, and the module of each adapter."""


def _accept(_: object) -> None:
    """A check that has nothing to refuse."""


@dataclass(frozen=True)
class CodecEntry:
    """What the simulator needs to know of one codec kind.

    ``load(scenario, originals, device)`` does the run's setup (load a model, build the
    encoder settings) and returns a ``LoadedCodec`` whose ``adapter()`` the run drives;
    ``originals`` is the video (N x H x W x 3 uint8), ``device`` ``cpu`` or ``cuda``.
    ``check_scenario`` raises ``netsim.scenario.FieldError`` (its field path from the
    scenario's root) when this codec cannot run the scenario. ``settings_field`` names the
    ``codec`` section's field that holds this kind's settings (None: it has none), which the
    kind then requires and every other kind refuses; ``check_settings`` checks the ``codec``
    section further (``FieldError`` with a path below ``codec``). ``recoveries``: the
    answers to feedback it offers (``codec.recovery``), its default first. ``motions``: the
    reference motions it offers (``codec.motion``), its default first; none, and it refuses
    the field.
    """

    kind: str
    load: Callable[[Scenario, np.ndarray, str], LoadedCodec]
    check_scenario: Callable[[Scenario], None] = _accept
    settings_field: str | None = None
    check_settings: Callable[[CodecSpec], None] = _accept
    recoveries: tuple[str, ...] = ("resync",)
    motions: tuple[str, ...] = ()


class CodecRegistry:
    """The codec kinds a scenario may name and their entries."""

    def __init__(self, builtin_modules: dict[str, str]) -> None:
        self._builtin_modules = dict(builtin_modules)
        self._entries: dict[str, CodecEntry] = {}

    def kinds(self) -> tuple[str, ...]:
        """Every kind: the built-in ones in their order, then those registered since."""
        extra = [kind for kind in self._entries if kind not in self._builtin_modules]
        return (*self._builtin_modules, *extra)

    def entry(self, kind: str) -> CodecEntry:
        """The entry of ``kind``; ``KeyError`` (with the known kinds) for an unknown one."""
        if kind not in self._entries and kind in self._builtin_modules:
            importlib.import_module(self._builtin_modules[kind])  # registers its entries
        try:
            return self._entries[kind]
        except KeyError:
            raise KeyError(
                f"unknown codec kind {kind!r} (known: {', '.join(self.kinds())})"
            ) from None

    def register(self, entry: CodecEntry) -> None:
        """Add ``entry``; a kind is registered once (``ValueError`` otherwise)."""
        if entry.kind in self._entries:
            raise ValueError(f"codec kind {entry.kind!r} is already registered")
        self._entries[entry.kind] = entry

    def unregister(self, kind: str) -> None:
        """Remove a kind registered with ``register`` (built-in kinds stay known)."""
        self._entries.pop(kind, None)


REGISTRY = CodecRegistry(_BUILTIN_MODULES)
"""The one codec table of the process."""


def codec_kinds() -> tuple[str, ...]:
    """Every codec kind a scenario may name (``CodecRegistry.kinds``)."""
    return REGISTRY.kinds()


def builtin_codec_kinds() -> tuple[str, ...]:
    """The kinds the testbed ships: DHVC, then the standard codecs it is compared with."""
    return tuple(_BUILTIN_MODULES)


def codec_entry(kind: str) -> CodecEntry:
    """The entry of ``kind`` (``CodecRegistry.entry``)."""
    return REGISTRY.entry(kind)


def register_codec(entry: CodecEntry) -> None:
    """Make ``entry.kind`` available to scenarios (``CodecRegistry.register``)."""
    REGISTRY.register(entry)


@contextmanager
def registered_codec(entry: CodecEntry) -> Iterator[CodecEntry]:
    """``entry`` registered for the duration of a ``with`` block (tests, notebooks)."""
    register_codec(entry)
    try:
        yield entry
    finally:
        REGISTRY.unregister(entry.kind)
