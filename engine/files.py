"""Careful file operations shared by the workspace, keys, snapshots and reports.

``read_regular_file`` is how every small file a person names is read (key files, public keys,
reports): it never follows a symbolic link, never blocks on a FIFO or a device, and reads at
most a bound, so a hostile or mistaken path fails with one line instead of hanging or filling
memory. ``write_new_file`` creates a file that did not exist (owner-only by default), durably.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from engine.errors import RfrError, StorageError

# What the operating system and SQLite say when a disk cannot take more.
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_FULL_WORDS = ("database or disk is full", "no space left on device", "disk quota exceeded")


def fsync_dir(directory: Path) -> None:
    """fsync a folder so a rename or a new entry in it survives power loss, not only the file's bytes."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_regular_file(
    path: Path,
    *,
    limit: int,
    what: str,
    error: type[RfrError] = RfrError,
    private: bool = False,
) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes; else ``error`` naming ``what``.

    Opened with ``O_NONBLOCK`` so a FIFO or device never hangs the open, and ``O_NOFOLLOW`` so a
    symbolic link is refused rather than followed. ``private`` also refuses a file other users
    can read (keys).
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist: check the path") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{what} {path} is a symbolic link: give the real file") from None
        raise error(f"{what} {path} cannot be read ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what} {path} is not a regular file: give the file itself")
        if private and os.name == "posix" and info.st_mode & 0o077:
            raise error(f"{what} {path} can be read by other users: run 'chmod 600 {path}'")
        if info.st_size > limit:
            raise error(f"{what} {path} is larger than {limit:,} bytes: this is not the right file")
        chunks: list[bytes] = []
        remaining = limit + 1  # bounded even if the file grows after fstat
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as exc:
        raise error(f"{what} {path} cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise error(f"{what} {path} is larger than {limit:,} bytes: this is not the right file")
    return data


def write_new_file(path: Path, data: bytes, *, what: str, error: type[RfrError] = RfrError, mode: int = 0o600) -> None:
    """Create ``path`` (which must not exist) with ``data``, fsynced; never over an existing file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise error(f"{what} {path} already exists: choose a new path; it is never overwritten") from None
    except OSError as exc:
        raise error(f"cannot create {what} {path} ({exc.strerror or exc})") from None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        Path(path).unlink(missing_ok=True)
        raise
    os.close(fd)
    fsync_dir(Path(path).absolute().parent)


def mount_point(path: Path) -> Path:
    """The mount point holding ``path`` (the disk a person would free space on)."""
    current = Path(path).absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return current


def storage_problem(exc: BaseException, where: Path | None = None) -> StorageError | None:
    """A one-line ``StorageError`` when ``exc`` means the disk is full, else None.

    SQLite reports a full disk as "database or disk is full"; Python as ENOSPC (or a quota). The
    workspace rolls the interrupted transaction back, so nothing is half-written.
    """
    text = str(exc).lower()
    target = where or (Path(exc.filename) if isinstance(exc, OSError) and exc.filename else None)
    full = isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS
    full = full or any(word in text for word in _FULL_WORDS)
    if not full and "disk i/o error" in text and target is not None:
        # SQLite says only "disk I/O error" when it cannot even create its write-ahead log: look.
        full = _free_bytes(target) < _NEARLY_FULL
    if not full:
        return None
    disk = f"the disk holding {mount_point(target)}" if target is not None else "the terminal's disk"
    return StorageError(
        f"{disk} is full: nothing was changed (the last step was rolled back); free space there, or ask an "
        "engineer to, then run it again"
    )


_NEARLY_FULL = 1 << 20


def _free_bytes(path: Path) -> int:
    import shutil

    try:
        return shutil.disk_usage(mount_point(path)).free
    except OSError:
        return _NEARLY_FULL
