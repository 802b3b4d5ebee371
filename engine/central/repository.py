"""The central unit's TUF repository: packages signed into the folder that is copied to removable media.

Layout of ``REPO`` (``rfr central package build|sign --repo REPO``)::

    rfr-packages/                   copied to the media as it is; terminals read it with tuf.ngclient
      metadata/1.root.json, 2.root.json ...   every root version (a terminal walks them from its pinned root)
      metadata/timestamp.json                 signs the current snapshot; carries "x-rfr-issued"
      metadata/<v>.snapshot.json              consistent snapshots: every version kept
      metadata/<v>.targets.json               top-level targets: only delegates
      metadata/<v>.library.json, <v>.accounts.json, <v>.models.json   the delegated roles' targets
      targets/packages/<stream>/<sha256>.<sequence>.json              a package's manifest
      targets/blobs/<sha256>.<sha256>                                  the blobs manifests name
    central/                        the central unit's own records, never copied
      issued.json                   the last sequence issued per stream (and enrolments packaged)
      pending/                      packages built and not yet signed

Delegations (non-terminating, in this order): ``library`` signs ``packages/library/*/*`` and
``blobs/*``; ``accounts`` signs ``packages/accounts/*``, ``packages/policy/*`` and ``blobs/*``;
``models`` signs ``packages/models/*`` and ``blobs/*``. A blob is named by its hash, so a blob
shared by packages of two roles is the same bytes whoever lists it; the terminal uses a blob only
when a manifest signed by the right role names it. (TUF matches a path pattern component by
component, so a library manifest, four components deep, needs ``packages/library/*/*``.)

Signing (``sign``) adds every pending package to its role, bumps the changed roles (and any that
would expire before the new timestamp), then snapshot, then timestamp, and writes the timestamp
last by an atomic rename: a crash leaves the previous repository state whole. Expiry periods are
``Expiry``: see its docstring and the README ("The central unit") for how to choose them.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from engine.central import CentralError
from engine.central.keys import DELEGATED_ROLES, FIRST_ROOT, KeyRing, PublicKeys, renewed_root, root_bytes
from engine.central.sealed import remove_temporaries, write_atomic
from engine.files import read_regular_file

MEDIA_FOLDER = "rfr-packages"
ISSUED_AT_FIELD = "x-rfr-issued"
ROLE_OF_KIND = {"library": "library", "accounts": "accounts", "policy": "accounts", "models": "models"}
DELEGATED_PATHS = {
    "library": ["packages/library/*/*", "blobs/*"],
    "accounts": ["packages/accounts/*", "packages/policy/*", "blobs/*"],
    "models": ["packages/models/*", "blobs/*"],
}
_MAX_METADATA = 1 << 30
_CHUNK = 1 << 20
_ROOT_NAME = re.compile(r"^(\d+)\.root\.json$")
_SERIALIZER = JSONSerializer(compact=False)


@dataclass(frozen=True)
class Expiry:
    """How long each role's metadata stays valid after it is signed, in days.

    Terminals are air-gapped: a medium signed today may reach the last terminal weeks later, and
    a terminal's clock may run ahead of the true time (it then sees metadata expire early). So
    every period must exceed the longest time from signing to the last terminal applying the
    medium, plus the clock drift tolerated. The timestamp is the shortest: it alone bounds how
    long an old medium (a freeze attack: withholding newer packages) is still accepted. The
    defaults suit a monthly media round: 30 days timestamp, 60 snapshot, 180 delegated roles
    (library, accounts, models), 365 top-level targets; root's own period is set by
    ``keys init`` / ``keys renew-root`` (365). Each must be at least the one before it.
    """

    timestamp: int = 30
    snapshot: int = 60
    delegated: int = 180
    targets: int = 365

    def __post_init__(self) -> None:
        if not 1 <= self.timestamp <= self.snapshot <= self.delegated <= self.targets <= 3660:
            raise CentralError(
                "expiry periods must satisfy 1 <= timestamp <= snapshot <= delegated <= targets <= 3660 days "
                f"(given {self.timestamp}, {self.snapshot}, {self.delegated}, {self.targets})"
            )


@dataclass
class Ledger:
    """Sequence numbers issued per stream, library kinds per stream, and enrolments already packaged."""

    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    enrolments: dict[str, str] = field(default_factory=dict)

    def last(self, stream: str) -> int:
        return int(self.streams.get(stream, {}).get("last", 0))

    def to_json(self) -> dict[str, Any]:
        return {"format": 1, "streams": self.streams, "enrolments": self.enrolments}


@dataclass(frozen=True)
class Pending:
    """A package built and not yet signed: its manifest path, its role, and every target it needs."""

    stream: str
    sequence: int
    role: str
    manifest: str
    targets: dict[str, tuple[int, str]]  # path -> (length, sha256)

    def to_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "sequence": self.sequence,
            "role": self.role,
            "manifest": self.manifest,
            "targets": {path: {"length": n, "sha256": h} for path, (n, h) in self.targets.items()},
        }

    @classmethod
    def from_json(cls, data: Any) -> Pending:
        return cls(
            str(data["stream"]),
            int(data["sequence"]),
            str(data["role"]),
            str(data["manifest"]),
            {str(p): (int(t["length"]), str(t["sha256"])) for p, t in data["targets"].items()},
        )


@dataclass
class SignReport:
    packages: list[str] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    expires: dict[str, str] = field(default_factory=dict)
    issued_at: str = ""
    media_folder: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "packages": self.packages,
            "versions": self.versions,
            "expires": self.expires,
            "issued_at": self.issued_at,
            "media_folder": self.media_folder,
        }


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _sha256_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    length = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            length += len(chunk)
    return length, digest.hexdigest()


class Repository:
    """A central repository folder: the media folder, the ledger and the pending packages."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.media = self.root / MEDIA_FOLDER
        self.metadata = self.media / "metadata"
        self.targets = self.media / "targets"
        self.central = self.root / "central"
        self.pending_dir = self.central / "pending"

    @classmethod
    def create_or_open(cls, root: Path) -> Repository:
        repo = cls(root)
        for folder in (repo.metadata, repo.targets, repo.pending_dir):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(repo.central, 0o700)
        return repo

    @classmethod
    def open(cls, root: Path) -> Repository:
        repo = cls(root)
        if not repo.pending_dir.is_dir() or not repo.metadata.is_dir():
            raise CentralError(f"{root} is not a central repository: build a package into it first")
        return repo

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One build or sign at a time: sequence numbers and versions are read, then written."""
        fd = os.open(self.central / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CentralError(f"another central command is using {self.root}: wait for it to finish") from None
            yield
        finally:
            os.close(fd)

    # The ledger of sequence numbers

    def ledger(self) -> Ledger:
        path = self.central / "issued.json"
        if not path.exists():
            return Ledger()
        try:
            data = json.loads(read_regular_file(path, limit=64 << 20, what="ledger", error=CentralError))
            return Ledger(dict(data["streams"]), dict(data["enrolments"]))
        except (ValueError, KeyError, TypeError):
            raise CentralError(
                f"ledger {path} is malformed: restore it from backup (sequence numbers depend on it)"
            ) from None

    def save_ledger(self, ledger: Ledger) -> None:
        write_atomic(self.central / "issued.json", json.dumps(ledger.to_json(), indent=1, sort_keys=True).encode())

    # Targets

    def target_file(self, path: str, sha256: str) -> Path:
        """Where target ``path`` with hash ``sha256`` lies (TUF's consistent-snapshot name: hash-prefixed)."""
        directory, _, name = path.rpartition("/")
        return self.targets / directory / f"{sha256}.{name}"

    def put_target(self, path: str, data: bytes) -> tuple[int, str]:
        sha256 = hashlib.sha256(data).hexdigest()
        where = self.target_file(path, sha256)
        if not where.exists():
            where.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(where, data, mode=0o644)
        return len(data), sha256

    def add_pending(self, pending: Pending) -> None:
        name = f"{pending.stream.replace(':', '.')}.{pending.sequence:08d}.json"
        write_atomic(self.pending_dir / name, json.dumps(pending.to_json(), indent=1).encode())

    def pending(self) -> list[tuple[Path, Pending]]:
        remove_temporaries(self.pending_dir)
        found = []
        for path in sorted(self.pending_dir.glob("*.json")):
            try:
                found.append((path, Pending.from_json(json.loads(path.read_bytes()))))
            except (ValueError, KeyError, TypeError):
                raise CentralError(f"pending package {path} is malformed: build that package again") from None
        return sorted(found, key=lambda item: (item[1].stream, item[1].sequence))

    # Metadata on disk

    def _write_metadata(self, name: str, metadata: Metadata[Any]) -> bytes:
        data = metadata.to_bytes(_SERIALIZER)
        write_atomic(self.metadata / name, data, mode=0o644)
        return data

    def _read_metadata(self, name: str) -> tuple[Metadata[Any], bytes]:
        path = self.metadata / name
        data = read_regular_file(path, limit=_MAX_METADATA, what="metadata", error=CentralError)
        try:
            return Metadata.from_bytes(data), data
        except Exception:
            raise CentralError(f"metadata {path} cannot be read as TUF metadata: restore it from backup") from None

    def latest_root(self) -> Metadata[Root] | None:
        versions = [int(m.group(1)) for p in self.metadata.glob("*.root.json") if (m := _ROOT_NAME.fullmatch(p.name))]
        if not versions:
            return None
        root, _ = self._read_metadata(f"{max(versions)}.root.json")
        assert isinstance(root.signed, Root)
        return root

    # Signing

    def sign(self, keys: KeyRing, expiry: Expiry = Expiry(), now: datetime | None = None) -> SignReport:
        """Sign every pending package into the repository (first creating its metadata if it has none)."""
        moment = (now or datetime.now(UTC)).replace(microsecond=0)
        with self.locked():
            return _Signing(self, keys, expiry, moment).run()

    def renew_root(self, keys: KeyRing, days: int, now: datetime | None = None) -> Metadata[Root]:
        """The next root version with a new expiry, same keys (a threshold of root keys signs it)."""
        if not 1 <= days <= 3660:
            raise CentralError("the root expiry must be between 1 and 3660 days")
        moment = (now or datetime.now(UTC)).replace(microsecond=0)
        with self.locked():
            current = self.latest_root()
            if current is None:
                raise CentralError(f"{self.root} has no root metadata yet: sign a package into it first")
            root = renewed_root(current, keys, moment + timedelta(days=days))
            self._write_metadata(f"{root.signed.version}.root.json", root)
            return root


class _Signing:
    """One signing run: the current metadata read, pending packages added, versions bumped, all written."""

    def __init__(self, repo: Repository, keys: KeyRing, expiry: Expiry, now: datetime) -> None:
        self.repo = repo
        self.keys = keys
        self.expiry = expiry
        self.now = now
        self.timestamp_expires = now + timedelta(days=expiry.timestamp)
        self.report = SignReport(issued_at=_utc(now), media_folder=str(repo.media))

    def run(self) -> SignReport:
        repo = self.repo
        root = repo.latest_root() or self._first_root()
        self._check_keys(root.signed)
        if root.signed.expires < self.timestamp_expires:
            raise CentralError(
                f"root metadata version {root.signed.version} expires {_utc(root.signed.expires)}, before the new "
                "timestamp would: renew it first ('rfr central keys renew-root', which needs the root keys)"
            )
        roles, snapshot_meta, snapshot_version, timestamp_version = self._current()
        fresh: set[str] = set()  # roles made in this run: version 1 as made
        if "targets" not in roles:
            roles["targets"] = self._first_targets()
            fresh.add("targets")
        for name in DELEGATED_ROLES:
            if name not in roles:
                roles[name] = Metadata(Targets(version=1))
                fresh.add(name)
        pending = repo.pending()
        changed: set[str] = set(fresh)
        for _, package in pending:
            self._add(roles, package)
            changed.add(package.role)
            self.report.packages.append(package.manifest)
        for name in ("targets", *DELEGATED_ROLES):
            if roles[name].signed.expires < self.timestamp_expires:
                changed.add(name)  # would expire before the timestamp: re-signed
        # Every key this run needs, opened before anything is written: a wrong passphrase changes nothing.
        signers = {name: self.keys.signer(name) for name in (*sorted(changed), "snapshot", "timestamp")}
        for name in ("targets", *DELEGATED_ROLES):
            if name in changed:
                signed = roles[name].signed
                if name not in fresh:
                    signed.version += 1
                days = self.expiry.targets if name == "targets" else self.expiry.delegated
                signed.expires = self.now + timedelta(days=days)
                roles[name].signatures.clear()
                roles[name].sign(signers[name])
                data = repo._write_metadata(f"{signed.version}.{name}.json", roles[name])
                snapshot_meta[f"{name}.json"] = _meta(signed.version, data)
            self.report.versions[name] = roles[name].signed.version
            self.report.expires[name] = _utc(roles[name].signed.expires)
        # A new snapshot and timestamp every time: the issue time moves on, and neither is left to expire.
        snapshot = Metadata(
            Snapshot(
                version=snapshot_version + 1,
                expires=self.now + timedelta(days=self.expiry.snapshot),
                meta=dict(sorted(snapshot_meta.items())),
            )
        )
        snapshot.sign(signers["snapshot"])
        snapshot_data = repo._write_metadata(f"{snapshot.signed.version}.snapshot.json", snapshot)
        timestamp = Metadata(
            Timestamp(
                version=timestamp_version + 1,
                expires=self.timestamp_expires,
                snapshot_meta=_meta(snapshot.signed.version, snapshot_data),
                unrecognized_fields={ISSUED_AT_FIELD: _utc(self.now)},
            )
        )
        timestamp.sign(signers["timestamp"])
        repo._write_metadata("timestamp.json", timestamp)  # last, by an atomic rename: the switch
        for path, _ in pending:
            path.unlink()
        self.report.versions |= {
            "root": root.signed.version,
            "snapshot": snapshot.signed.version,
            "timestamp": timestamp.signed.version,
        }
        self.report.expires |= {
            "root": _utc(root.signed.expires),
            "snapshot": _utc(snapshot.signed.expires),
            "timestamp": _utc(timestamp.signed.expires),
        }
        return self.report

    def _first_root(self) -> Metadata[Root]:
        """A new repository starts from the root made with the keys (``keys init``): copied, then verified."""
        source = self.keys.directory / FIRST_ROOT
        data = read_regular_file(source, limit=1 << 20, what="root metadata", error=CentralError)
        root: Metadata[Any] = Metadata.from_bytes(data)
        if not isinstance(root.signed, Root) or root.signed.version != 1:
            raise CentralError(f"{source} is not root metadata version 1")
        try:
            root.signed.verify_delegate(Root.type, root.signed_bytes, root.signatures)
        except Exception:
            raise CentralError(f"{source} is not signed by its own root keys: make the keys again") from None
        write_atomic(self.repo.metadata / "1.root.json", root_bytes(root), mode=0o644)
        return root

    def _check_keys(self, root: Root) -> None:
        public = self.keys.public
        for role in ("timestamp", "snapshot", "targets"):
            if public.one(role).keyid not in root.roles[role].keyids:
                raise CentralError(
                    f"the {role} key in {self.keys.directory} is not the one this repository's root names: "
                    "give the keys folder this repository was made with"
                )

    def _current(self) -> tuple[dict[str, Metadata[Any]], dict[str, MetaFile], int, int]:
        """The roles as the current timestamp and snapshot name them (empty for a new repository)."""
        if not (self.repo.metadata / "timestamp.json").exists():
            return {}, {}, 0, 0
        timestamp, _ = self.repo._read_metadata("timestamp.json")
        snapshot_version = timestamp.signed.snapshot_meta.version
        snapshot, _ = self.repo._read_metadata(f"{snapshot_version}.snapshot.json")
        roles: dict[str, Metadata[Any]] = {}
        for name, meta in snapshot.signed.meta.items():
            role = name.removesuffix(".json")
            roles[role], _ = self.repo._read_metadata(f"{meta.version}.{name}")
        return roles, dict(snapshot.signed.meta), snapshot_version, timestamp.signed.version

    def _first_targets(self) -> Metadata[Targets]:
        public: PublicKeys = self.keys.public
        delegated = {
            name: DelegatedRole(name, [public.one(name).keyid], 1, False, paths=list(DELEGATED_PATHS[name]))
            for name in DELEGATED_ROLES
        }
        keys: dict[str, Key] = {public.one(name).keyid: public.one(name) for name in DELEGATED_ROLES}
        return Metadata(Targets(version=1, delegations=Delegations(keys=keys, roles=delegated)))

    def _add(self, roles: dict[str, Metadata[Any]], package: Pending) -> None:
        if package.role not in DELEGATED_ROLES:
            raise CentralError(f"pending package {package.manifest} names an unknown role {package.role!r}")
        role = roles[package.role]
        listed: dict[str, TargetFile] = role.signed.targets
        if package.manifest in listed:
            raise CentralError(
                f"{package.manifest} is already signed in this repository: a sequence number is never reused; "
                f"build the {package.stream} package again with the next sequence"
            )
        for path, (length, sha256) in package.targets.items():
            on_disk = self.repo.target_file(path, sha256)
            if not on_disk.is_file() or _sha256_file(on_disk) != (length, sha256):
                raise CentralError(
                    f"target {on_disk} is missing or altered since it was built: build the package again"
                )
            old = listed.get(path)
            if old is not None and old.hashes.get("sha256") != sha256:
                raise CentralError(f"{path} is already signed with other bytes: a target is never replaced")
            listed[path] = TargetFile(length, {"sha256": sha256}, path)


def _meta(version: int, data: bytes) -> MetaFile:
    return MetaFile(version=version, length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()})
