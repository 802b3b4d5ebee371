"""Staging: package files copied from the medium, encrypted, on the workspace's own disk, until applied.

Targets hold images and templates (biometric data), so they are never written in plaintext:
each is encrypted as it is read, chunk by chunk (AES-256-GCM, a key derived from the
workspace key with a random salt that only the running process holds), into a staging folder
inside the workspace folder, on the same file system as the database, and fsynced. Memory
stays bounded whatever the size of a target (one chunk at a time). File layout::

    magic (8) | chunk size (u32 BE) | chunk 0: nonce (12) | ciphertext + tag ... | last chunk (flagged final)

Each chunk's associated data binds the file's name, its position and whether it is the last,
so reordering, truncating or extending a staged file is refused. A staging folder holds an
advisory lock while its process lives: one left by a crash is unlocked, undecryptable (its salt
died with the process) and removed by ``sweep`` at the next open.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.errors import RfrError
from engine.files import fsync_dir
from engine.workspace import Workspace

STAGING_DIR = "media-staging"
KEY_LABEL = "rfr/media-staging/v1"
MAGIC = b"RFRSTG\x00\x01"
CHUNK = 1 << 20
_HEAD = struct.Struct(">8sI")
_NONCE = 12
_TAG = 16
_LOCK = ".lock"


class StagingError(RfrError):
    """A staged copy cannot be read back as it was written (the disk changed under it)."""


def _ad(name: str, index: int, final: bool) -> bytes:
    return MAGIC + name.encode() + b"\x00" + struct.pack(">Q?", index, final)


class LockedFolder:
    """A new private folder ``<root>/<random>/`` that this process holds (an advisory lock) while it works in it.

    ``sweep`` removes the folders under a root that no live process holds: what a crash left.
    """

    def __init__(self, root: Path) -> None:
        root.mkdir(mode=0o700, exist_ok=True)
        self.path = root / secrets.token_hex(8)
        self.path.mkdir(mode=0o700)
        self._lock = os.open(self.path / _LOCK, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fsync_dir(root)

    def release(self) -> None:
        """Keep the folder, let go of it: it is in use by something recorded now (a model folder after the commit)."""
        if self._lock >= 0:
            (self.path / _LOCK).unlink(missing_ok=True)
            os.close(self._lock)
            self._lock = -1

    def remove(self) -> None:
        """Delete the folder and let go of its lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1
        if self.path.parent.is_dir():
            fsync_dir(self.path.parent)


class StagingArea(LockedFolder):
    """One apply's staging folder: ``<workspace>/media-staging/<random>/``, locked while in use."""

    def __init__(self, ws: Workspace, chunk_size: int = CHUNK) -> None:
        super().__init__(ws.directory / STAGING_DIR)
        self._ws = ws
        self._salt = secrets.token_bytes(16)  # in memory only: a copy left by a crash can never be read
        self.chunk_size = chunk_size
        self.lengths: dict[str, int] = {}

    def _aead(self, name: str) -> AESGCM:
        return AESGCM(self._ws.derive_key(KEY_LABEL, salt=self._salt, context=name.encode()))

    def _file(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"staged file name {name!r} is not a plain name")
        return self.path / name

    def writer(self, name: str) -> StagedWriter:
        return StagedWriter(self._file(name), name, self._aead(name), self.chunk_size, self)

    def open(self, name: str) -> StagedFile:
        return StagedFile(self._file(name), name, self._aead(name), self.lengths[name])


class StagedWriter:
    """Encrypts what it is given, one chunk at a time, into a new staged file; ``finish`` fsyncs it."""

    def __init__(self, path: Path, name: str, aead: AESGCM, chunk_size: int, area: StagingArea) -> None:
        self._path = path
        self._name = name
        self._aead = aead
        self._chunk = chunk_size
        self._area = area
        self._buffer = bytearray()
        self._index = 0
        self.length = 0
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._write(_HEAD.pack(MAGIC, chunk_size))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def _seal(self, piece: bytes, final: bool) -> None:
        nonce = secrets.token_bytes(_NONCE)
        self._write(nonce + self._aead.encrypt(nonce, piece, _ad(self._name, self._index, final)))
        self._index += 1

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.length += len(data)
        # A full chunk is sealed only once more follows, so the last chunk is never empty (unless the file is).
        while len(self._buffer) > self._chunk:
            self._seal(bytes(self._buffer[: self._chunk]), final=False)
            del self._buffer[: self._chunk]

    def finish(self) -> int:
        """Seal the last chunk, fsync and close; the plaintext length."""
        self._seal(bytes(self._buffer), final=True)
        self._buffer.clear()
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        self._area.lengths[self._name] = self.length
        return self.length

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._path.unlink(missing_ok=True)


class StagedFile:
    """A staged file read back: in order (``chunks``) or at any offset (``read_at``), one chunk in memory."""

    def __init__(self, path: Path, name: str, aead: AESGCM, length: int) -> None:
        self._name = name
        self._aead = aead
        self.length = length
        self._handle = open(path, "rb")  # closed by close()
        magic, chunk = _HEAD.unpack(self._handle.read(_HEAD.size))
        if magic != MAGIC or chunk <= 0:
            raise StagingError(f"staged copy {name} is damaged: apply the medium again")
        self._chunk = chunk
        self._count = max(1, -(-length // chunk))
        self._cached: tuple[int, bytes] | None = None

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> StagedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _chunk_at(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        size = min(self._chunk, self.length - index * self._chunk)
        self._handle.seek(_HEAD.size + index * (_NONCE + self._chunk + _TAG))
        sealed = self._handle.read(_NONCE + size + _TAG)
        try:
            final = index == self._count - 1
            plain = self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], _ad(self._name, index, final))
        except InvalidTag:
            raise StagingError(f"staged copy {self._name} fails authentication: apply the medium again") from None
        self._cached = (index, plain)
        return plain

    def chunks(self) -> Iterator[bytes]:
        for index in range(self._count):
            yield self._chunk_at(index)

    def read_all(self) -> bytes:
        return b"".join(self.chunks())

    def read_at(self, offset: int, size: int) -> bytes:
        if offset < 0 or offset + size > self.length:
            raise StagingError(f"staged copy {self._name} has no bytes {offset}-{offset + size}")
        out = bytearray()
        while size > 0:
            index, start = divmod(offset, self._chunk)
            piece = self._chunk_at(index)[start : start + size]
            out += piece
            offset += len(piece)
            size -= len(piece)
        return bytes(out)


def sweep(ws: Workspace) -> int:
    """Remove staging folders no live process holds (left by a crash or power cut); how many."""
    return sweep_folders(ws.directory / STAGING_DIR)


def sweep_folders(root: Path, keep: Callable[[str], bool] = lambda _name: False) -> int:
    """Remove the folders under ``root`` that no live process holds and ``keep`` does not name; how many."""
    if not root.is_dir():
        return 0
    removed = 0
    for entry in root.iterdir():
        if not entry.is_dir() or entry.is_symlink() or keep(entry.name):
            continue
        try:
            fd = os.open(entry / _LOCK, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = -1
        try:
            if fd >= 0:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # in use by a running apply
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
        finally:
            if fd >= 0:
                os.close(fd)
    if removed:
        fsync_dir(root)
    return removed
