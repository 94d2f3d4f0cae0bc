"""Writing files and folders so that nothing is lost: the project's one definition.

Every writer of results, checkpoints, streams, tables and figures goes through this module
(``codec`` is the lowest layer, so ``netsim`` and ``analysis`` import it too):

* ``atomic_file(target)`` yields a temporary path beside ``target``; when the block succeeds the
  file is flushed to disk and renamed over ``target`` (``os.replace``, atomic on every platform).
  ``write_bytes_atomic`` and ``write_text_atomic`` are the one-call forms.
* ``atomic_folder(target, fill)`` calls ``fill(staging)`` on a fresh folder beside ``target`` and
  swaps it in whole. On Linux the swap is one ``renameat2(RENAME_EXCHANGE)`` system call: at
  every moment ``target`` names either the complete old folder or the complete new one, and
  the old one is removed afterwards. Where the exchange is not available (other systems, or a
  file system without it, such as NFS), the old folder is renamed aside and the new one renamed
  in with SIGINT, SIGTERM and SIGHUP held back between the two renames; a process killed
  outright in that instant leaves the old folder under its temporary ``.old`` name, and the
  next write of the same target (``cleanup_stale``) renames it back first.
* Temporary entries are named ``.{name}.{pid}.{host}.{random}.{kind}`` (``kind``: ``partial``
  or ``old``; ``host``: a tag of the machine, boot and PID namespace). ``cleanup_stale(target)``
  removes the ones of ``target`` whose process is gone (same ``host`` tag) or, for other hosts
  (shared folders), that are older than ``STALE_AGE_S``; every write calls it first.
* Files and folders are created with modes 0o666 and 0o777, so they follow the umask (the
  ``tempfile`` functions would make them 0o600 and 0o700 whatever the umask).
* ``check_writable_target(path)`` checks, before any long work, that ``path`` can be written.

A symbolic link at ``target`` is followed: what it points to is replaced, not the link.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "STALE_AGE_S",
    "TargetError",
    "atomic_file",
    "atomic_folder",
    "check_writable_target",
    "cleanup_stale",
    "naming_target",
    "write_bytes_atomic",
    "write_text_atomic",
]

STALE_AGE_S = 24 * 3600.0
"""Age after which a temporary entry of another host (or of a process whose liveness cannot be
told) counts as abandoned."""

_KINDS = ("partial", "old")
_NAME_CHARS = 120
"""Temporary names keep at most this many characters of the target's name (names are limited
to 255 bytes)."""


class TargetError(OSError):
    """An output path that cannot be written; the message is one line naming it."""


def _host_tag() -> str:
    """Six hex digits naming this machine, boot and PID namespace: process ids are compared
    only between entries with the same tag."""
    parts = [socket.gethostname()]
    for source in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        with contextlib.suppress(OSError):
            parts.append(
                os.readlink(source) if source.endswith("/pid") else Path(source).read_text()
            )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:6]


_HOST = _host_tag()


def _short(name: str) -> str:
    return name[:_NAME_CHARS]


def _pattern(target: Path) -> re.Pattern[str]:
    name = re.escape(_short(target.name))
    return re.compile(rf"\.{name}\.(\d+)\.([0-9a-f]{{6}})\.[0-9a-f]{{6}}\.({'|'.join(_KINDS)})")


def _temp_path(target: Path, kind: str) -> Path:
    """A new name beside ``target`` (nothing is created)."""
    token = secrets.token_hex(3)
    return target.with_name(f".{_short(target.name)}.{os.getpid()}.{_HOST}.{token}.{kind}")


def _create(target: Path, *, folder: bool) -> Path:
    """Create an empty temporary file or folder beside ``target`` (modes follow the umask)."""
    while True:
        path = _temp_path(target, "partial")
        try:
            if folder:
                os.mkdir(path, 0o777)
            else:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return path


def _resolve(target: str | os.PathLike[str]) -> Path:
    """``target`` as an absolute path, following a symbolic link at ``target`` itself."""
    path = Path(os.path.abspath(target))
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _pid_alive(pid: int) -> bool | None:
    """Whether process ``pid`` runs (None: cannot tell here)."""
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def cleanup_stale(target: str | os.PathLike[str]) -> list[Path]:
    """Remove the abandoned temporary entries of ``target`` (see the module's notes); returns
    them. An abandoned ``.old`` folder while ``target`` is missing is the old result of a swap
    killed half-way: it is renamed back to ``target`` instead."""
    target = _resolve(target)
    pattern = _pattern(target)
    prefix = f".{_short(target.name)}."
    try:
        names = [n for n in os.listdir(target.parent) if n.startswith(prefix)]
    except OSError:
        return []
    now = time.time()
    stale: list[tuple[float, Path, str]] = []
    for name in names:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        pid, host, kind = int(match[1]), match[2], match[3]
        path = target.parent / name
        try:
            mtime = path.lstat().st_mtime
        except FileNotFoundError:
            continue
        if host == _HOST and pid == os.getpid():
            continue
        alive = _pid_alive(pid) if host == _HOST else None
        if alive is False or (alive is None and now - mtime > STALE_AGE_S):
            stale.append((mtime, path, kind))
    handled = []
    for _, path, kind in sorted(stale, reverse=True):  # the newest .old is restored first
        if kind == "old" and path.is_dir() and not os.path.lexists(target):
            with contextlib.suppress(OSError):
                os.rename(path, target)
                handled.append(path)
                continue
        _remove(path)
        handled.append(path)
    return handled


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file or a folder) to disk, where the system allows it."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Flush everything in ``folder`` to disk: one ``syncfs`` of its file system on Linux (far
    cheaper than a ``fsync`` per file for folders of many frames), else each entry."""
    if _SYNCFS is not None:
        with contextlib.suppress(OSError):
            fd = os.open(folder, os.O_RDONLY)
            try:
                if _SYNCFS(fd) == 0:
                    return
            finally:
                os.close(fd)
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync(Path(root, name))
        _fsync(Path(root))


@contextmanager
def atomic_file(target: str | os.PathLike[str], *, durable: bool = True) -> Iterator[Path]:
    """A temporary path beside ``target`` (an empty file, mode per the umask) for the block to
    write; renamed over ``target`` when the block succeeds, removed when it fails. Creates the
    parent folders. ``durable``: flush the file to disk before the rename (``fsync``), so that
    not even a power cut leaves a truncated ``target``; ``False`` for many small files that a
    caller flushes together (the frames of ``atomic_folder``)."""
    final = _resolve(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    cleanup_stale(final)
    temp = _create(final, folder=False)
    try:
        yield temp
        if durable:
            _fsync(temp)
        os.replace(temp, final)
        if durable:
            _fsync(final.parent)
    finally:
        if os.path.lexists(temp):
            _remove(temp)


def write_bytes_atomic(
    target: str | os.PathLike[str], data: bytes, *, durable: bool = True
) -> Path:
    """Write ``data`` to ``target`` atomically (``atomic_file``); returns ``target``."""
    with atomic_file(target, durable=durable) as temp:
        temp.write_bytes(data)
    return Path(target)


def write_text_atomic(target: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``target`` atomically (``atomic_file``); returns ``target``."""
    with atomic_file(target) as temp:
        temp.write_text(text, encoding=encoding)
    return Path(target)


@contextmanager
def naming_target(target: str | os.PathLike[str], *, folder: bool = False) -> Iterator[None]:
    """Re-raise an ``OSError`` from writing ``target`` (a full disk, a quota, an I/O error) as
    a ``TargetError`` whose one line names the file as the user will find it: ``target``, or
    for a ``folder`` target the file in it that the error names. Temporary names beside or
    inside the target (``atomic_file``, ``atomic_folder``) are never shown."""
    try:
        yield
    except TargetError:
        raise
    except OSError as err:
        path = Path(target)
        if folder and isinstance(err.filename, str) and err.filename:
            path = path / Path(err.filename).name
        reason = err.strerror or str(err) or type(err).__name__
        raise TargetError(f"{path}: cannot write: {reason}") from None


def atomic_folder(target: str | os.PathLike[str], fill: Callable[[Path], None]) -> Path:
    """Call ``fill(staging)`` on a new empty folder beside ``target``, then put it in place of
    ``target`` as a whole (see the module's notes for the guarantee); returns ``target``.

    An existing ``target`` must be a folder; its contents are replaced, nothing of them is kept.
    If ``fill`` (or anything before the swap) fails, ``target`` is left as it was.
    """
    final = _resolve(target)
    if os.path.lexists(final) and not final.is_dir():
        raise TargetError(f"{target}: exists and is not a folder")
    final.parent.mkdir(parents=True, exist_ok=True)
    cleanup_stale(final)
    staging = _create(final, folder=True)
    try:
        fill(staging)
        _fsync_tree(staging)
        _swap_in(staging, final)
    finally:
        if os.path.lexists(staging):  # the unfinished new folder, or the old one swapped out
            _remove(staging)
    return Path(target)


def _swap_in(staging: Path, target: Path) -> None:
    """Put folder ``staging`` at ``target``; afterwards ``staging`` is gone or holds the old
    folder (for the caller to remove)."""
    if not os.path.lexists(target):
        try:
            os.rename(staging, target)
        except OSError as err:  # created meanwhile: swap with it
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        else:
            _fsync(target.parent)
            return
    if _exchange(staging, target):
        _fsync(target.parent)
        return
    old = _temp_path(target, "old")
    with _signals_held():
        os.rename(target, old)
        try:
            os.rename(staging, target)
        except BaseException:
            os.rename(old, target)
            raise
    _fsync(target.parent)
    _remove(old)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_EXCHANGE_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV}


def _renameat2() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # libc older than glibc 2.28, or not found
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    function.argtypes += [ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_RENAMEAT2 = _renameat2()


def _syncfs() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = [ctypes.c_int], ctypes.c_int
    return function


_SYNCFS = _syncfs()


def _exchange(a: Path, b: Path) -> bool:
    """Exchange the entries ``a`` and ``b`` in one atomic step; False where this system or file
    system cannot (nothing was changed then)."""
    if _RENAMEAT2 is None:
        return False
    result = _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in _EXCHANGE_UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back SIGINT, SIGTERM and SIGHUP for the block (POSIX), so Ctrl-C or a polite kill
    cannot land between two renames that belong together."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def check_writable_target(path: str | os.PathLike[str], *, folder: bool = True) -> None:
    """Raise ``TargetError`` (one line) unless ``path`` can be written as a folder (or, with
    ``folder=False``, a file): an existing ``path`` is of that kind, and the nearest existing
    folder on its way lets entries be created (tried by creating and removing one). Creates
    nothing that stays."""
    target = Path(os.path.abspath(path))
    if os.path.lexists(target) and target.is_dir() != folder:
        kind = "is a folder" if target.is_dir() else "exists and is not a folder"
        raise TargetError(f"{path}: {kind}")
    child, ancestor = target, target.parent
    while not os.path.exists(ancestor) and ancestor != ancestor.parent:
        child, ancestor = ancestor, ancestor.parent
    if not ancestor.is_dir():
        raise TargetError(f"{path}: cannot be created, {ancestor} is not a folder")
    try:
        probe = _create(child, folder=True)
    except OSError as err:
        raise TargetError(f"{path}: cannot write in {ancestor}: {err.strerror}") from None
    with contextlib.suppress(OSError):
        os.rmdir(probe)
