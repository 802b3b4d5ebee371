"""The terminal's trust in the central unit: the pinned root, and TUF's trusted state kept in the workspace.

An engineer installs the central unit's root metadata once (``rfr media trust ROOT.json``),
after comparing its fingerprint with the one the central unit gave them by another channel;
it is kept in the encrypted workspace and recorded in the audit log. Later roots arrive on
the media, each signed by the keys of the one before (TUF's root rotation): nobody installs a
second root by hand. After each applied medium TUF's trusted metadata (newest root,
timestamp, snapshot, targets and delegated roles) is stored back in the workspace with the
newest signed issue time seen (the time floor), and before each read the Updater's metadata
folder is rewritten from those rows: deleting or replacing the folder loses nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Root

from engine import audit
from engine.audit.clock import format_utc, parse_utc
from engine.files import fsync_dir
from engine.media.fetcher import MediaRefused
from engine.workspace import Workspace

METADATA_DIR = "media-tuf"
MAX_ROOT_BYTES = 512_000
TOP_ROLES = ("root", "timestamp", "snapshot", "targets")
_ROLE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class TrustInfo:
    """The pinned root as the engineer should check it against the central unit's own record."""

    version: int
    sha256: str
    root_threshold: int
    root_keys: tuple[str, ...]
    expires: str
    installed_by: str
    installed_at: str
    newest_version: int
    time_floor: str | None

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "root_keys": list(self.root_keys)}


@dataclass(frozen=True)
class TrustedState:
    """What the terminal trusts now: newest root bytes and the other roles' metadata, by role name."""

    root: bytes
    metadata: dict[str, tuple[int, bytes]]
    time_floor: datetime | None


def _root_of(data: bytes) -> Metadata[Root]:
    try:
        md = Metadata[Root].from_bytes(data)
    except tuf_errors.RepositoryError as exc:
        raise MediaRefused(f"the root file is not TUF root metadata ({_one_line(exc)}): ask the central unit") from None
    if not isinstance(md.signed, Root):
        raise MediaRefused("the file is TUF metadata but not a root: give the central unit's root.json")
    return md


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def check_root(data: bytes, now: datetime) -> Metadata[Root]:
    """A root fit to pin: signed by its own threshold of root keys, consistent snapshots, not expired."""
    md = _root_of(data)
    root = md.signed
    try:
        root.verify_delegate(Root.type, md.signed_bytes, md.signatures)
    except tuf_errors.UnsignedMetadataError:
        raise MediaRefused(
            f"the root (version {root.version}) is not signed by {root.roles[Root.type].threshold} of its own root "
            "keys: it cannot be trusted; ask the central unit for its root"
        ) from None
    missing = [role for role in TOP_ROLES if role not in root.roles]
    if missing:
        raise MediaRefused(f"the root names no key for the {missing[0]} role: ask the central unit for its root")
    if not root.consistent_snapshot:
        raise MediaRefused("the root does not use consistent snapshots, which this terminal requires")
    if root.is_expired(now):
        raise MediaRefused(
            f"the root expired at {root.expires:%Y-%m-%d %H:%M} UTC (this terminal's clock says "
            f"{now:%Y-%m-%d %H:%M}): ask the central unit for its current root, or check the clock"
        )
    return md


def install_root(ws: Workspace, data: bytes, *, by: str) -> TrustInfo:
    """Pin ``data`` as the terminal's root (once; recorded). Later roots only ever arrive on media."""
    md = check_root(data, ws.now())
    sha = hashlib.sha256(data).hexdigest()
    root = md.signed
    with ws.transaction() as conn:
        row = conn.execute("SELECT pinned_sha256, pinned_version FROM media_trust WHERE id = 1").fetchone()
        if row is not None:
            if row[0] == sha:
                raise MediaRefused(f"this root (version {root.version}, sha256 {sha[:16]}...) is already installed")
            raise MediaRefused(
                f"a root is already installed (version {row[1]}, sha256 {str(row[0])[:16]}...): later roots arrive on "
                "the media, signed by the root before them; a terminal never takes a second root by hand"
            )
        now = format_utc(ws.now())
        conn.execute(
            "INSERT INTO media_trust (id, pinned_root, pinned_version, pinned_sha256, installed_by, installed_at)"
            " VALUES (1, ?, ?, ?, ?, ?)",
            (data, root.version, sha, by, now),
        )
        conn.execute("INSERT INTO media_metadata (role, version, data) VALUES ('root', ?, ?)", (root.version, data))
        role = root.roles[Root.type]
        audit.append(
            conn,
            by,
            "media.trust_installed",
            details={
                "root_version": root.version,
                "root_sha256": sha,
                "root_threshold": role.threshold,
                "root_keys": sorted(role.keyids),
                "expires": format_utc(root.expires),
            },
            clock=ws.clock,
        )
    info = trust_info(ws)
    assert info is not None
    return info


def trust_info(ws: Workspace) -> TrustInfo | None:
    row = ws.query_one(
        "SELECT pinned_root, pinned_version, pinned_sha256, installed_by, installed_at, time_floor FROM media_trust"
    )
    if row is None:
        return None
    pinned = _root_of(bytes(row[0])).signed
    newest = ws.query_one("SELECT version FROM media_metadata WHERE role = 'root'")
    role = pinned.roles[Root.type]
    return TrustInfo(
        version=int(row[1]),
        sha256=str(row[2]),
        root_threshold=role.threshold,
        root_keys=tuple(sorted(role.keyids)),
        expires=format_utc(pinned.expires),
        installed_by=str(row[3]),
        installed_at=str(row[4]),
        newest_version=int(newest[0]) if newest else int(row[1]),
        time_floor=row[5],
    )


def load_state(ws: Workspace) -> TrustedState:
    """The trusted state to start a read from; refused when no root was ever installed."""
    with ws.reading() as conn:
        trust = conn.execute("SELECT time_floor FROM media_trust WHERE id = 1").fetchone()
        rows = conn.execute("SELECT role, version, data FROM media_metadata").fetchall()
    if trust is None:
        raise MediaRefused(
            "this terminal trusts no central unit yet: an engineer installs the central unit's root first "
            "('rfr media trust ROOT.json --as ENGINEER')"
        )
    metadata = {str(r[0]): (int(r[1]), bytes(r[2])) for r in rows}
    root = metadata.pop("root")[1]
    return TrustedState(root, metadata, parse_utc(trust[0]) if trust[0] else None)


@contextmanager
def metadata_folder(ws: Workspace, state: TrustedState) -> Iterator[Path]:
    """The Updater's metadata folder, rewritten from the workspace's rows, held by this read alone while it lasts."""
    fd = os.open(ws.directory / f".{METADATA_DIR}.lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MediaRefused("another medium is being read on this terminal: wait for it to finish") from None
        yield prepare_folder(ws, state)
    finally:
        os.close(fd)


def prepare_folder(ws: Workspace, state: TrustedState) -> Path:
    """The Updater's metadata folder, rewritten from the workspace's rows (whatever was in it is discarded)."""
    folder = ws.directory / METADATA_DIR
    if folder.is_symlink() or folder.exists():
        if folder.is_symlink() or not folder.is_dir():
            folder.unlink()
        else:
            shutil.rmtree(folder)
    folder.mkdir(mode=0o700)
    for role, (_version, data) in sorted(state.metadata.items()):
        if not _ROLE_NAME.fullmatch(role):
            continue
        _write(folder / f"{role}.json", data)
    fsync_dir(folder)
    return folder


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def capture_folder(folder: Path) -> dict[str, tuple[int, bytes]]:
    """TUF's trusted metadata as the Updater left it in ``folder`` (it writes only what it verified), by role."""
    captured: dict[str, tuple[int, bytes]] = {}
    history = folder / "root_history"
    versions = sorted(int(p.name.split(".")[0]) for p in history.glob("*.root.json") if p.name.split(".")[0].isdigit())
    if versions:
        data = (history / f"{versions[-1]}.root.json").read_bytes()
        captured["root"] = (versions[-1], data)
    for path in folder.glob("*.json"):
        role = path.name.removesuffix(".json")
        if role == "root" or path.is_symlink() or not _ROLE_NAME.fullmatch(role):
            continue
        data = path.read_bytes()
        captured[role] = (_version_of(data), data)
    return captured


def _version_of(data: bytes) -> int:
    try:
        version = json.loads(data)["signed"]["version"]
    except (ValueError, KeyError, TypeError):
        return 0
    return int(version) if isinstance(version, int) else 0


def store_state(conn: Any, captured: dict[str, tuple[int, bytes]], time_floor: datetime) -> None:
    """Keep TUF's trusted metadata and the time floor (inside the apply's transaction)."""
    for role, (version, data) in captured.items():
        conn.execute(
            "INSERT INTO media_metadata (role, version, data) VALUES (?, ?, ?) ON CONFLICT (role) DO UPDATE SET"
            " version = excluded.version, data = excluded.data",
            (role, version, data),
        )
    conn.execute(
        "UPDATE media_trust SET time_floor = ? WHERE id = 1 AND (time_floor IS NULL OR time_floor < ?)",
        (format_utc(time_floor), format_utc(time_floor)),
    )
