"""Reading a mounted medium as hostile input: TUF's fetcher over a folder, one path component at a time.

TUF's default fetcher speaks HTTP; a terminal reads a mounted folder. ``MediaFetcher`` gives
``tuf.ngclient.Updater`` the files under ``rfr-packages/metadata/``, and ``MediaFolder`` opens
target files under ``rfr-packages/targets/`` for the package reader. Every path is opened one
component at a time relative to the folder above it (``openat`` through ``os.open(dir_fd=...)``)
with ``O_NOFOLLOW``, so no symbolic link anywhere below the mount point is followed; a
component that is empty, ``.``, ``..`` or anything but plain letters, digits, spaces, ``.``,
``_`` and ``-`` is refused (no traversal, no absolute path); each entry is looked at (``lstat``) before it
is opened, so a device file or a FIFO is refused without being opened (opening some devices has
effects), and the opened file must be the same regular file with one link only (a hard link
could point anywhere on the medium's file system). A missing file is TUF's 404, which is how
the Updater knows the newest root version has been reached. Reads are bounded by the length
the caller allows.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from tuf.api import exceptions as tuf_errors
from tuf.ngclient import FetcherInterface

from engine.errors import RfrError

REPOSITORY = "rfr-packages"
METADATA_URL = "rfr-media:/metadata/"
_COMPONENT = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9 ._-]{0,254}$")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
READ_CHUNK = 1 << 20
MAX_LISTING = 100_000


class MediaRefused(RfrError):
    """The medium, or something on it, is refused; the message says what and what to do."""


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def split_path(path: str) -> list[str]:
    """The components of a path on the medium, each one checked: never absolute, never ``..``, plain names only."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        raise MediaRefused(f"the medium names an unsafe path {path[:80]!r} (absolute or not plain): medium refused")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", "..") or not _COMPONENT.fullmatch(part):
            raise MediaRefused(
                f"the medium names an unsafe path {path[:80]!r} (component {part[:40]!r}): medium refused"
            )
    return parts


class MediaFolder:
    """The ``rfr-packages`` folder of a mounted medium, opened once; every read is relative to it."""

    def __init__(self, mount: Path) -> None:
        self.mount = Path(mount)
        try:
            top = os.open(self.mount, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise MediaRefused(
                f"media folder {self.mount} does not exist: check the path, or mount the medium"
            ) from None
        except OSError as exc:
            raise MediaRefused(f"media folder {self.mount} cannot be opened ({exc.strerror or exc})") from None
        try:
            try:
                self._fd = self._open_dir(top, REPOSITORY)
                self.where = self.mount / REPOSITORY
            except FileNotFoundError:
                if self.mount.name != REPOSITORY:
                    raise MediaRefused(
                        f"{self.mount} holds no {REPOSITORY} folder: this is not a medium from the central unit"
                    ) from None
                self._fd = os.dup(top)  # given the rfr-packages folder itself
                self.where = self.mount
        finally:
            os.close(top)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> MediaFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_dir(self, parent: int, name: str) -> int:
        info = self._look(parent, name)
        if not stat.S_ISDIR(info.st_mode):
            raise MediaRefused(f"{name!r} on the medium is {_kind(info.st_mode)}, not a folder: medium refused")
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:
            raise self._refusal(name, exc) from None
        opened = os.fstat(fd)
        if (opened.st_ino, opened.st_dev) != (info.st_ino, info.st_dev):
            os.close(fd)
            raise MediaRefused(f"{name!r} on the medium changed while it was read: medium refused")
        return fd

    @staticmethod
    def _look(parent: int, name: str) -> os.stat_result:
        try:
            return os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise MediaFolder._refusal(name, exc) from None

    @staticmethod
    def _refusal(name: str, exc: OSError) -> MediaRefused:
        if exc.errno == errno.ELOOP:
            return MediaRefused(f"{name!r} on the medium is a symbolic link: medium refused")
        if exc.errno == errno.ENOTDIR:
            return MediaRefused(f"{name!r} on the medium is not a folder: medium refused")
        return MediaRefused(f"{name!r} on the medium cannot be read ({exc.strerror or exc}): check the medium")

    def _walk(self, parts: list[str]) -> int:
        """A new descriptor of the folder ``parts`` (relative to rfr-packages); FileNotFoundError when missing."""
        fd = os.dup(self._fd)
        try:
            for part in parts:
                child = self._open_dir(fd, part)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open_file(self, path: str) -> tuple[int, int]:
        """(descriptor, size) of the regular file at ``path``; FileNotFoundError when it is not there."""
        parts = split_path(path)
        folder = self._walk(parts[:-1])
        try:
            name = parts[-1]
            info = self._look(folder, name)
            if not stat.S_ISREG(info.st_mode):
                raise MediaRefused(f"{path!r} on the medium is {_kind(info.st_mode)}: medium refused")
            if info.st_nlink != 1:
                raise MediaRefused(
                    f"{path!r} on the medium is a hard link ({info.st_nlink} names for one file): medium refused"
                )
            try:
                fd = os.open(name, _FILE_FLAGS, dir_fd=folder)
            except OSError as exc:
                raise self._refusal(path, exc) from None
        finally:
            os.close(folder)
        opened = os.fstat(fd)
        if (
            (opened.st_ino, opened.st_dev) != (info.st_ino, info.st_dev)
            or not stat.S_ISREG(opened.st_mode)
            or opened.st_nlink != 1
        ):
            os.close(fd)
            raise MediaRefused(f"{path!r} on the medium changed while it was read: medium refused")
        return fd, opened.st_size

    def read_chunks(self, path: str, limit: int, chunk: int = READ_CHUNK) -> Iterator[bytes]:
        """The bytes of ``path`` chunk by chunk, at most ``limit + 1`` of them (the caller sees an overlong file)."""
        fd, _size = self.open_file(path)
        try:
            remaining = limit + 1
            while remaining > 0:
                piece = os.read(fd, min(chunk, remaining))
                if not piece:
                    return
                remaining -= len(piece)
                yield piece
        finally:
            os.close(fd)

    def listing(self, path: str) -> list[str]:
        """Names of the entries of the folder ``path`` (no entry is followed or opened); [] when it is missing."""
        try:
            fd = self._walk(split_path(path))
        except FileNotFoundError:
            return []
        try:
            names: list[str] = []
            with os.scandir(fd) as entries:
                for entry in entries:
                    names.append(entry.name)
                    if len(names) > MAX_LISTING:
                        raise MediaRefused(f"{path!r} on the medium holds more than {MAX_LISTING:,} entries: refused")
            return sorted(names)
        finally:
            os.close(fd)


class MediaFetcher(FetcherInterface):
    """TUF's fetcher for a mounted medium's metadata: ``rfr-media:/metadata/NAME`` is ``rfr-packages/metadata/NAME``."""

    def __init__(self, folder: MediaFolder) -> None:
        self.folder = folder

    def _fetch(self, url: str) -> Iterator[bytes]:
        if not url.startswith(METADATA_URL):
            raise MediaRefused(f"the medium was asked for {url[:80]!r}, which is not metadata on it")
        path = "metadata/" + url.removeprefix(METADATA_URL)
        try:
            fd, _size = self.folder.open_file(path)
        except FileNotFoundError:
            raise tuf_errors.DownloadHTTPError(f"{path} is not on the medium", 404) from None
        return self._chunks(fd)

    @staticmethod
    def _chunks(fd: int) -> Iterator[bytes]:
        # TUF stops reading (and refuses) once more than the allowed length arrived: endless data.
        try:
            while piece := os.read(fd, 64 * 1024):
                yield piece
        finally:
            os.close(fd)
