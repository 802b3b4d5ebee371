"""Reading a medium: TUF verifies its metadata, then every package on it is checked and planned for this terminal.

``read_medium`` runs ``tuf.ngclient.Updater`` from the terminal's trusted state (kept in the
workspace, ``engine.media.trust``) through ``MediaFetcher``: signatures and thresholds, revoked
and unknown keys, rollback, freeze (expiry, judged by the terminal's clock), mix-and-match,
lengths and hashes, endless data, malformed metadata and root rotation are TUF's refusals,
each turned into one plain line here. Then what TUF leaves to us: the signed issue time
against the terminal's time floor; each manifest found on the medium fetched through TUF's
verified target information, opened with the force's media key (``engine.media.sealing``) and
parsed (``engine.media.format``); and the plan: which packages
are for this terminal (force, terminal groups, face model), which are next in their stream
(sequence numbers only increase; library deltas apply in order with no gap; a package whose
sequence was applied already with other content is a new signature over an old package, and is
refused), and what each would change. Nothing is written to the workspace: a refused medium
leaves it exactly as it was. Target files other than manifests are read once, when applying.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, TargetFile, Targets, Timestamp
from tuf.ngclient import Updater, UpdaterConfig

from engine.faces.models import Manifest as ModelManifest
from engine.library.demographics import resolve_age_range
from engine.library.enrol import MAX_IMAGE_BYTES
from engine.library.index import NDIM
from engine.media.fetcher import METADATA_URL, MediaFetcher, MediaFolder, MediaRefused, split_path
from engine.media.format import (
    MAX_MANIFEST_BYTES,
    Manifest,
    PackageRejected,
    blob_path,
    manifest_path,
    parse_manifest,
)
from engine.media.sealing import MediaKey, sealed_length
from engine.media.trust import capture_folder, load_state, metadata_folder
from engine.policy import Policy
from engine.policy.loader import MAX_POLICY_BYTES, load_policy_text
from engine.security.users import AccountChange, Accounts, CentralAccount, PasswordHash, Session
from engine.workspace import Workspace

ISSUED_FIELD = "x-rfr-issued"
MODEL_MANIFEST = "manifest.yaml"
MAX_MODEL_MANIFEST_BYTES = 1 << 20
FACE_MODEL = "face_resnet"  # the model whose identity templates record (engine.faces.pipeline.model_identity)
# How far behind the newest signed issue time the terminal's clock may be before it is refused.
CLOCK_TOLERANCE = timedelta(minutes=5)
MAX_MODEL_FILE_BYTES = 2 << 30
KIND_ORDER = {"policy": 0, "accounts": 1, "models": 2, "library": 3}
_MANIFEST_FILE = re.compile(r"^([0-9a-f]{64})\.([0-9]{8})\.json$")
_UPDATER_CONFIG = UpdaterConfig(
    max_root_rotations=64,
    timestamp_max_length=16_384,
    snapshot_max_length=16 << 20,
    targets_max_length=256 << 20,
)


@dataclass(frozen=True)
class MediaProgress:
    """Where reading or applying a medium is: ``phase``, ``done`` of ``total`` (files, bytes or rows), and what."""

    phase: str
    done: int
    total: int
    detail: str = ""


Progress = Callable[[MediaProgress], None]


@dataclass(frozen=True)
class Scope:
    """Who this terminal is, for packages: its force, its terminal groups, and the face model it uses."""

    force: str | None
    groups: tuple[str, ...]
    model_id: str
    model_sha256: str


class Status(StrEnum):
    APPLY = "to apply"
    APPLIED = "already applied"
    OLDER = "older than the last applied"
    OTHER = "not for this terminal"
    REFUSED = "refused"


@dataclass(frozen=True)
class LibraryChanges:
    name: str
    new_library: bool
    kind: str
    subjects_added: tuple[str, ...]
    images_added: int
    subjects_removed: tuple[str, ...]
    removals_not_held: int
    model_id: str

    def to_json(self, *, references: bool = True) -> dict[str, Any]:
        """What it changes; ``references=False`` for what is kept after applying: counts only (a weeded person's
        reference must not outlive their images)."""
        out: dict[str, Any] = {
            "library": self.name,
            "new_library": self.new_library,
            "kind": self.kind,
            "subjects_added": len(self.subjects_added),
            "images_added": self.images_added,
            "subjects_removed": len(self.subjects_removed),
            "removals_not_held": self.removals_not_held,
            "model_id": self.model_id,
        }
        if references:
            out["subjects_added_references"] = list(self.subjects_added[:1000])
            out["subjects_removed_references"] = list(self.subjects_removed[:1000])
        return out


@dataclass(frozen=True)
class PackageChanges:
    """What one package would change on this terminal, for the engineer to read before applying."""

    library: LibraryChanges | None = None
    users: tuple[AccountChange, ...] = ()
    policy_from: str | None = None
    policy_to: str | None = None
    model: str | None = None

    def lines(self) -> list[str]:
        out: list[str] = []
        lib = self.library
        if lib is not None:
            made = " (a new library)" if lib.new_library else ""
            out.append(f"library {lib.name}{made}, {lib.kind}, templates of face model {lib.model_id}")
            out.append(
                f"adds {len(lib.subjects_added)} subjects ({lib.images_added} images): {_some(lib.subjects_added)}"
            )
            gone = f"removes {len(lib.subjects_removed)} subjects (every image and template, index included)"
            if lib.subjects_removed:
                gone += f": {_some(lib.subjects_removed)}"
            if lib.removals_not_held:
                gone += f"; {lib.removals_not_held} named for removal are not held here"
            out.append(gone)
        if self.users:
            changed = [c for c in self.users if c.change != "none"]
            out.append(f"changes {len(changed)} of the {len(self.users)} accounts it names")
            out += [f"  {c.describe()}" for c in self.users]
        if self.policy_to is not None:
            out.append(f"policy {self.policy_from or 'the default file'} -> {self.policy_to}")
        if self.model is not None:
            out.append(f"face model -> {self.model} (used from the next start of the terminal)")
        return out

    def to_json(self, *, references: bool = True) -> dict[str, Any]:
        return {
            "library": None if self.library is None else self.library.to_json(references=references),
            "users": [c.to_json() for c in self.users],
            "policy": None if self.policy_to is None else {"from": self.policy_from, "to": self.policy_to},
            "model": self.model,
        }


def _some(references: tuple[str, ...], limit: int = 8) -> str:
    if not references:
        return "none"
    shown = ", ".join(references[:limit])
    return shown + (f" and {len(references) - limit} more" if len(references) > limit else "")


@dataclass(frozen=True)
class FoundPackage:
    """One package manifest found on the medium, and what this terminal makes of it."""

    path: str
    stream: str
    sequence: int
    status: Status
    reason: str = ""
    manifest: Manifest | None = field(default=None, repr=False)
    manifest_sha256: str | None = None
    changes: PackageChanges | None = None

    @property
    def package_id(self) -> str:
        return f"{self.stream}#{self.sequence}"

    def describe(self) -> str:
        text = f"{self.package_id}: {self.status.value}"
        return text + (f" ({self.reason})" if self.reason else "")

    def to_json(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "package": self.package_id,
            "stream": self.stream,
            "sequence": self.sequence,
            "status": self.status.value,
            "reason": self.reason,
            "kind": None if m is None else m.kind,
            "description": None if m is None else m.description,
            "created_at": None if m is None else m.created_at,
            "manifest_sha256": self.manifest_sha256,
            "changes": None if self.changes is None else self.changes.to_json(),
        }


@dataclass
class MediaReading:
    """A verified medium and its plan. Applying it (``engine.media.apply``) copies and checks the blobs then."""

    medium: Path
    issued_at: datetime
    root_version: int
    packages: list[FoundPackage]
    blobs: dict[str, TargetFile] = field(repr=False)
    captured: dict[str, tuple[int, bytes]] = field(repr=False)
    streams_at_read: dict[str, tuple[int, str]] = field(repr=False)
    media_key: MediaKey = field(repr=False)
    preloaded: dict[str, bytes] = field(default_factory=dict, repr=False)
    model_pins: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    @property
    def to_apply(self) -> list[FoundPackage]:
        chosen = [p for p in self.packages if p.status is Status.APPLY]
        return sorted(chosen, key=lambda p: (KIND_ORDER[_kind(p)], p.stream, p.sequence))

    @property
    def total_bytes(self) -> int:
        return sum(t.length for t in self.blobs.values())

    def lines(self) -> list[str]:
        out = [
            f"medium {self.medium}: signed metadata verified (root version {self.root_version}, "
            f"issued {self.issued_at:%Y-%m-%d %H:%M} UTC)"
        ]
        for package in self.packages:
            out.append(package.describe())
            if package.status is Status.APPLY and package.changes is not None:
                if package.manifest is not None and package.manifest.description:
                    out.append(f"  {package.manifest.description}")
                out += [f"  {line}" for line in package.changes.lines()]
        todo = self.to_apply
        out.append(
            f"{len(todo)} package(s) to apply, {self.total_bytes:,} bytes to copy"
            if todo
            else "nothing new on this medium for this terminal"
        )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "medium": str(self.medium),
            "issued_at": self.issued_at.isoformat(),
            "root_version": self.root_version,
            "packages": [p.to_json() for p in self.packages],
            "to_apply": [p.package_id for p in self.to_apply],
            "bytes_to_copy": self.total_bytes,
        }


def _kind(package: FoundPackage) -> str:
    return package.manifest.kind if package.manifest is not None else "library"


# ---- TUF's refusals, in one line each ---------------------------------------------------------------


def _detail(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return "".join(c if c.isprintable() else "?" for c in text)[:160]


def tuf_refusal(exc: BaseException) -> MediaRefused:
    """TUF's verdict on a medium as one line naming the refusal."""
    cause = exc.__cause__
    if isinstance(exc, tuf_errors.DownloadError) and isinstance(cause, MediaRefused):
        return cause
    detail = _detail(exc)
    if isinstance(exc, tuf_errors.UnsignedMetadataError):
        text = (
            f"metadata not signed by enough trusted keys ({detail}): the threshold is not met, and revoked or "
            "unknown keys do not count; medium refused"
        )
    elif isinstance(exc, tuf_errors.ExpiredMetadataError):
        text = (
            f"expired metadata ({detail}): the medium is stale or frozen; ask the central unit for a fresh one "
            "(or check this terminal's clock)"
        )
    elif isinstance(exc, tuf_errors.BadVersionNumberError):
        text = (
            f"metadata versions refused ({detail}): older than what this terminal already trusts, or not the "
            "versions the snapshot names (rollback or mix-and-match); medium refused"
        )
    elif isinstance(exc, tuf_errors.LengthOrHashMismatchError):
        text = f"a file does not match its signed length or hash ({detail}): medium refused"
    elif isinstance(exc, tuf_errors.DownloadLengthMismatchError):
        text = f"a file on the medium is longer than it may be ({detail}): endless data refused"
    elif isinstance(exc, tuf_errors.DownloadHTTPError):
        text = f"a file the signed metadata needs is not on the medium ({detail}): the medium is incomplete"
    elif isinstance(exc, tuf_errors.RepositoryError) and "serializ" in type(exc).__name__.lower():
        text = f"malformed metadata ({detail}): medium refused"
    elif isinstance(exc, tuf_errors.RepositoryError):
        text = f"metadata refused ({detail}): medium refused"
    else:
        text = f"the medium could not be read ({detail})"
    return MediaRefused(text)


# ---- reading --------------------------------------------------------------------------------------


def _manifest_candidates(media: MediaFolder) -> Iterator[tuple[str, str, int]]:
    """(target path, stream, sequence) of every manifest file on the medium (names only; nothing trusted yet)."""

    def files(folder: str) -> Iterator[int]:
        for name in media.listing(folder):
            found = _MANIFEST_FILE.fullmatch(name)
            if found:
                yield int(found.group(2))

    for kind in media.listing("targets/packages"):
        if kind == "library":
            for library in media.listing("targets/packages/library"):
                stream = f"library:{library}"
                try:
                    split_path(f"packages/library/{library}")
                except MediaRefused:
                    continue
                for sequence in files(f"targets/packages/library/{library}"):
                    yield manifest_path(stream, sequence), stream, sequence
        elif kind in ("accounts", "policy", "models"):
            for sequence in files(f"targets/packages/{kind}"):
                yield manifest_path(kind, sequence), kind, sequence


def target_file_path(target: TargetFile) -> str:
    """Where a target lies on the medium: TUF's consistent-snapshot name, its sha256 before its file name."""
    sha = target.hashes.get("sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise MediaRefused(f"target {target.path[:80]!r} is signed without a sha256: medium refused")
    folder, _, name = target.path.rpartition("/")
    return f"targets/{folder}/{sha}.{name}" if folder else f"targets/{sha}.{name}"


def _read_small(media: MediaFolder, target: TargetFile, limit: int) -> bytes:
    """A small target (a manifest, a policy) read whole from the medium and checked against TUF's length and hashes."""
    if target.length > limit:
        raise PackageRejected(f"{target.path} is larger than any such file this terminal accepts")
    data = b"".join(media.read_chunks(target_file_path(target), target.length))
    if len(data) > target.length:
        raise MediaRefused(f"{target.path} on the medium is longer than its signed length: endless data refused")
    try:
        target.verify_length_and_hashes(data)
    except tuf_errors.LengthOrHashMismatchError as exc:
        raise tuf_refusal(exc) from None
    return data


def _issued(captured: dict[str, tuple[int, bytes]]) -> datetime:
    timestamp = Metadata[Timestamp].from_bytes(captured["timestamp"][1]).signed
    raw = timestamp.unrecognized_fields.get(ISSUED_FIELD)
    if not isinstance(raw, str):
        raise MediaRefused(f"the timestamp metadata carries no signed issue time ({ISSUED_FIELD}): medium refused")
    try:
        issued = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise MediaRefused(f"the signed issue time {raw[:40]!r} is not an ISO date-time: medium refused") from None
    if issued.tzinfo is None:
        raise MediaRefused("the signed issue time has no time zone: medium refused")
    return issued.astimezone(UTC)


def check_clock(now: datetime, floor: datetime | None, issued: datetime) -> None:
    """Refuse a clock behind the newest signed issue time seen (the floor, or this medium's): expiry means nothing."""
    newest = max(floor, issued) if floor is not None else issued
    if now + CLOCK_TOLERANCE < newest:
        raise MediaRefused(
            f"this terminal's clock ({now:%Y-%m-%d %H:%M} UTC) is behind the newest signed issue time it has seen "
            f"({newest:%Y-%m-%d %H:%M} UTC): expiry cannot be judged; set the clock right, then read the medium again"
        )


def read_medium(
    ws: Workspace,
    medium: Path,
    scope: Scope,
    accounts: Accounts,
    policy: Policy,
    media_key: MediaKey,
    *,
    session: Session,
    progress: Progress | None = None,
) -> MediaReading:
    """Verify ``medium`` with TUF and plan each package on it for this terminal; nothing is written to the workspace.

    Raises ``MediaRefused`` (TUF's refusals, unsafe files, the clock) or ``PackageRejected`` (a package for
    this terminal that cannot be applied, or nothing on the medium for it).
    """
    say = progress or (lambda _p: None)
    if not scope.force:
        raise MediaRefused(
            "this terminal has no force configured, so no package can be for it: set 'force' in the terminal "
            "configuration (or RFR_FORCE)"
        )
    now = ws.now()
    state = load_state(ws)
    say(MediaProgress("verifying", 0, 1, "signed metadata"))
    with metadata_folder(ws, state) as folder, MediaFolder(medium) as media:
        try:
            updater = Updater(
                str(folder), METADATA_URL, None, None, MediaFetcher(media), _UPDATER_CONFIG, bootstrap=state.root
            )
            # Expiry is judged by the terminal's clock (the one the time floor checks), not the host's.
            updater._trusted_set.reference_time = now
            updater.refresh()
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
            raise tuf_refusal(exc) from None
        captured = capture_folder(folder)
        _only_delegates(captured)
        issued = _issued(captured)
        check_clock(now, state.time_floor, issued)
        candidates = sorted(set(_manifest_candidates(media)), key=lambda c: (c[1], c[2]))
        found: list[FoundPackage] = []
        for i, (path, stream, sequence) in enumerate(candidates):
            say(MediaProgress("verifying", i, len(candidates), path))
            found.append(_fetch(updater, media, media_key, path, stream, sequence))

        def target_of(path: str) -> TargetFile:
            return _blob_target(updater, path)

        def fetch_small(path: str, limit: int) -> bytes:
            return open_blob(media_key, path, _read_small(media, target_of(path), sealed_length(limit)))

        planner = _Planner(ws, scope, accounts, session, policy, target_of, fetch_small)
        packages = planner.plan(found)
        blobs: dict[str, TargetFile] = {}
        for i, package in enumerate(packages):
            if package.status is not Status.APPLY:
                continue
            assert package.manifest is not None
            try:
                for path in package.manifest.blobs():
                    blobs[path] = _blob_target(updater, path)
                _check_sizes(package.manifest, blobs)
            except PackageRejected as exc:
                packages[i] = _refuse(package, exc.diagnostics())
        captured = capture_folder(folder)  # with the delegated roles the walks loaded
    say(MediaProgress("verifying", len(candidates), len(candidates), "done"))
    refused = [p for p in packages if p.status is Status.REFUSED]
    if refused:
        more = f" (and {len(refused) - 1} more refused)" if len(refused) > 1 else ""
        raise PackageRejected(f"package {refused[0].package_id} refused: {refused[0].reason}{more}")
    reading = MediaReading(
        medium=media.where,
        issued_at=issued,
        root_version=_version(captured, "root"),
        packages=packages,
        blobs={path: t for path, t in blobs.items() if path not in planner.preloaded},
        captured=captured,
        streams_at_read=planner.streams,
        media_key=media_key,
        preloaded=planner.preloaded,
        model_pins=planner.model_pins,
    )
    if not reading.to_apply:
        if not packages:
            raise PackageRejected("the medium carries no package from the central unit: nothing to apply")
        unapplicable = [p for p in packages if p.status is Status.OTHER]
        if unapplicable:
            raise PackageRejected(f"nothing new on this medium is for this terminal: {unapplicable[0].describe()}")
    return reading


def _version(captured: dict[str, tuple[int, bytes]], role: str) -> int:
    return captured[role][0] if role in captured else 0


def _only_delegates(captured: dict[str, tuple[int, bytes]]) -> None:
    """The top-level targets role only delegates: a package it signed itself bypasses the roles' keys."""
    targets = Metadata[Targets].from_bytes(captured["targets"][1]).signed
    if targets.targets:
        raise MediaRefused(
            "the top-level targets metadata signs files itself instead of delegating them to the library, "
            "accounts and models roles: medium refused"
        )


def _fetch(
    updater: Updater, media: MediaFolder, media_key: MediaKey, path: str, stream: str, sequence: int
) -> FoundPackage:
    try:
        target = updater.get_targetinfo(path)
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
        raise tuf_refusal(exc) from None
    if target is None:
        return FoundPackage(path, stream, sequence, Status.OTHER, "on the medium but not signed by the central unit")
    try:
        data = media_key.open(path, _read_small(media, target, sealed_length(MAX_MANIFEST_BYTES)))
    except FileNotFoundError:
        return FoundPackage(path, stream, sequence, Status.REFUSED, "signed, but its manifest is not on the medium")
    try:
        manifest = parse_manifest(data)
    except PackageRejected as exc:
        return FoundPackage(path, stream, sequence, Status.REFUSED, exc.diagnostics())
    if manifest.path != path:
        return FoundPackage(
            path, stream, sequence, Status.REFUSED, f"the manifest says it is {manifest.path}, not {path}"
        )
    return FoundPackage(path, stream, sequence, Status.APPLY, "", manifest, hashlib.sha256(data).hexdigest())


def _blob_target(updater: Updater, path: str) -> TargetFile:
    try:
        target = updater.get_targetinfo(path)
    except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as exc:
        raise tuf_refusal(exc) from None
    if target is None:
        raise PackageRejected(f"it names {path}, which is not signed on this medium")
    return target


def open_blob(media_key: MediaKey, path: str, sealed: bytes) -> bytes:
    """A whole blob opened, and checked against its name (the keyed hash of its content)."""
    data = media_key.open(path, sealed)
    check_blob_name(path, media_key.name_of(data))
    return data


def check_blob_name(path: str, name: str) -> None:
    """Refuse a blob whose content is not what its name, which the manifest gives, pins."""
    if path.removeprefix("blobs/") != name:
        raise PackageRejected(f"{path} does not hold the content its name pins: a blob is named by its content")


def _check_sizes(manifest: Manifest, blobs: dict[str, TargetFile]) -> None:
    if manifest.library is not None:
        lib = manifest.library
        if lib.templates is not None and blobs[lib.templates].length != sealed_length(lib.template_rows * NDIM * 4):
            raise PackageRejected(
                f"its template array is {blobs[lib.templates].length:,} bytes sealed, not {lib.template_rows} "
                f"templates of {NDIM} float32 values"
            )
        for subject in lib.add:
            for image in subject.images:
                if blobs[image.blob].length > sealed_length(MAX_IMAGE_BYTES):
                    raise PackageRejected(f"image {image.blob} of {subject.reference} is larger than any image taken")
    if manifest.policy is not None and blobs[manifest.policy.blob].length > sealed_length(MAX_POLICY_BYTES):
        raise PackageRejected("its policy file is larger than any policy")
    if manifest.models is not None:
        for name, blob in manifest.models.files:
            if blobs[blob].length > sealed_length(MAX_MODEL_FILE_BYTES):
                raise PackageRejected(f"model file {name} is larger than any model this terminal loads")


def _refuse(package: FoundPackage, reason: str) -> FoundPackage:
    return FoundPackage(
        package.path,
        package.stream,
        package.sequence,
        Status.REFUSED,
        reason,
        package.manifest,
        package.manifest_sha256,
    )


class _Planner:
    """Decides each package's status in stream order against the workspace's streams, and what it changes."""

    def __init__(
        self,
        ws: Workspace,
        scope: Scope,
        accounts: Accounts,
        session: Session,
        policy: Policy,
        target_of: Callable[[str], TargetFile],
        fetch_small: Callable[[str, int], bytes],
    ) -> None:
        self.ws = ws
        self.scope = scope
        self.accounts = accounts
        self.session = session
        self.policy = policy  # the one in force after the packages planned so far
        self.target_of = target_of
        self.fetch_small = fetch_small
        self.preloaded: dict[str, bytes] = {}  # small blobs read (once) while planning: policy files
        self.model_pins: dict[str, tuple[str, str]] = {}  # model file blob -> (refusal, sha256 its manifest.yaml pins)
        rows = ws.query("SELECT stream, sequence, manifest_sha256 FROM media_streams")
        self.streams: dict[str, tuple[int, str]] = {str(r[0]): (int(r[1]), str(r[2])) for r in rows}
        self.applied = {
            (str(r[0]), int(r[1])): str(r[2])
            for r in ws.query("SELECT stream, sequence, manifest_sha256 FROM media_packages")
        }
        self.model_sha256 = scope.model_sha256
        self.model_id = scope.model_id

    def plan(self, found: list[FoundPackage]) -> list[FoundPackage]:
        last = dict(self.streams)
        out: list[FoundPackage] = []
        # Models first: a library package on the same medium may carry templates of the new model.
        for package in sorted(found, key=lambda p: (KIND_ORDER[_kind(p)], p.stream, p.sequence)):
            if package.status is not Status.APPLY:
                out.append(package)
                continue
            decided = self._decide(package, last)
            if decided.status is Status.APPLY:
                assert decided.manifest_sha256 is not None
                last[decided.stream] = (decided.sequence, decided.manifest_sha256)
            out.append(decided)
        return sorted(out, key=lambda p: (p.stream, p.sequence))

    def _decide(self, package: FoundPackage, last: dict[str, tuple[int, str]]) -> FoundPackage:
        m = package.manifest
        assert m is not None and package.manifest_sha256 is not None
        scope = self.scope
        if m.force != scope.force:
            return _status(package, Status.OTHER, f"it is for force {m.force}; this terminal is {scope.force}")
        if not m.for_terminal(m.force, scope.groups):
            mine = ", ".join(scope.groups) or "none configured"
            return _status(
                package, Status.OTHER, f"it is for terminal groups {', '.join(m.groups)}; this terminal's: {mine}"
            )
        done, done_sha = last.get(m.stream, (0, ""))
        if m.sequence <= done:
            applied_sha = done_sha if m.sequence == done else self.applied.get((m.stream, m.sequence))
            if applied_sha == package.manifest_sha256:
                return _status(package, Status.APPLIED, "")
            if applied_sha is not None:
                return _refuse(
                    package,
                    f"sequence {m.sequence} of {m.stream} was applied here with other content: a new signature "
                    "over an old package is refused (sequence numbers only increase)",
                )
            return _status(package, Status.OLDER, f"this terminal has applied {m.stream} up to {done}")
        if m.kind == "library" and m.sequence != done + 1:
            return _refuse(
                package,
                f"{m.stream} has been applied up to {done} here, so {done + 1} must come first: library deltas "
                "(weeding included) apply in order, with no gap",
            )
        try:
            changes = self._changes(m)
        except PackageRejected as exc:
            return _refuse(package, exc.diagnostics())
        except (ValueError, RuntimeError) as exc:  # UserError, LibraryError and the like are RfrErrors below
            return _refuse(package, _detail(exc))
        return FoundPackage(
            package.path, package.stream, package.sequence, Status.APPLY, "", m, package.manifest_sha256, changes
        )

    def _changes(self, m: Manifest) -> PackageChanges:
        from engine.errors import RfrError

        try:
            if m.library is not None:
                return PackageChanges(library=self._library(m))
            if m.accounts is not None:
                users = self.accounts.plan_central_accounts(
                    central_accounts(m), m.accounts.remove, by=self.session, policy=self.policy
                )
                return PackageChanges(users=tuple(users))
            if m.policy is not None:
                data = self.fetch_small(m.policy.blob, MAX_POLICY_BYTES)
                new = policy_from_package(m, data)
                before, self.policy = self.policy.version, new
                self.preloaded[m.policy.blob] = data
                return PackageChanges(policy_from=before, policy_to=new.version)
            return PackageChanges(model=self._models(m))
        except RfrError as exc:
            raise PackageRejected(exc.diagnostics()) from None

    def _models(self, m: Manifest) -> str:
        """Check a models package's files against the manifest.yaml it carries; the model libraries must then fit."""
        assert m.models is not None
        files = dict(m.models.files)
        if MODEL_MANIFEST not in files:
            raise PackageRejected(f"a models package carries its {MODEL_MANIFEST}, which pins every file")
        data = self.fetch_small(files[MODEL_MANIFEST], MAX_MODEL_MANIFEST_BYTES)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise PackageRejected(f"its {MODEL_MANIFEST} is not UTF-8 text") from None
        pins = ModelManifest.parse(text, f"{MODEL_MANIFEST} of package {m.stream}#{m.sequence}")
        pinned = {**pins.outputs, **pins.pinned}
        for name, blob in files.items():
            if name == MODEL_MANIFEST:
                continue
            digest = pinned.get(name)
            if digest is None:
                raise PackageRejected(f"model file {name} is not pinned by its {MODEL_MANIFEST}")
            if sealed_length(digest.size) != self.target_of(blob).length:
                raise PackageRejected(f"model file {name} does not meet the pin in its {MODEL_MANIFEST}")
            # Its content is checked as it is copied (only the sealed length can be checked now).
            self.model_pins[blob] = (f"model file {name} does not meet the pin in its {MODEL_MANIFEST}", digest.sha256)
        missing = sorted(set(pinned) - set(files))
        if missing:
            raise PackageRejected(f"it lacks {missing[0]}, which its {MODEL_MANIFEST} pins")
        try:
            sha = pins.model_sha256(FACE_MODEL)
        except KeyError:
            raise PackageRejected(f"its {MODEL_MANIFEST} pins no {FACE_MODEL} model") from None
        self.preloaded[files[MODEL_MANIFEST]] = data
        self.model_id, self.model_sha256 = m.models.model_id, sha
        return f"{m.models.model_id} ({sha[:12]})"

    def _library(self, m: Manifest) -> LibraryChanges:
        lib = m.library
        assert lib is not None
        if lib.add and lib.model_sha256 != self.model_sha256:
            raise PackageRejected(
                f"its templates are for face model {lib.model_id} ({lib.model_sha256[:12]}); this terminal uses "
                f"{self.model_id} ({self.model_sha256[:12]})"
            )
        row = self.ws.query_one("SELECT id, kind FROM libraries WHERE name = ?", (lib.name,))
        if row is not None and str(row[1]) != lib.kind:
            raise PackageRejected(f"library {lib.name} is {row[1]} on this terminal, the package says {lib.kind}")
        for subject in lib.add:
            born = date.fromisoformat(subject.date_of_birth) if subject.date_of_birth else None
            for image in subject.images:
                taken = date.fromisoformat(image.capture_date) if image.capture_date else None
                try:
                    resolve_age_range(born, taken, image.age_range)
                except ValueError as exc:
                    raise PackageRejected(f"subject {subject.reference}: {exc}") from None
        held: set[str] = set()
        if row is not None and lib.remove:
            for start in range(0, len(lib.remove), 500):
                batch = list(lib.remove[start : start + 500])
                marks = ",".join("?" * len(batch))
                held |= {
                    str(r[0])
                    for r in self.ws.query(
                        f"SELECT reference FROM subjects WHERE library_id = ? AND reference IN ({marks})",  # noqa: S608
                        (int(row[0]), *batch),
                    )
                }
        removed = tuple(r for r in lib.remove if r in held)
        return LibraryChanges(
            name=lib.name,
            new_library=row is None,
            kind=lib.kind,
            subjects_added=tuple(s.reference for s in lib.add),
            images_added=sum(len(s.images) for s in lib.add),
            subjects_removed=removed,
            removals_not_held=len(lib.remove) - len(removed),
            model_id=lib.model_id,
        )


def _status(package: FoundPackage, status: Status, reason: str) -> FoundPackage:
    return FoundPackage(
        package.path,
        package.stream,
        package.sequence,
        status,
        reason,
        package.manifest,
        package.manifest_sha256,
        package.changes,
    )


def policy_from_package(m: Manifest, data: bytes) -> Policy:
    """The policy a policy package carries, validated, and the version its manifest states."""
    assert m.policy is not None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PackageRejected("its policy file is not UTF-8 text") from None
    policy = load_policy_text(text, f"package {m.stream}#{m.sequence}")
    if policy.version != m.policy.version:
        raise PackageRejected(f"its policy file is version {policy.version}, the manifest says {m.policy.version}")
    return policy


def central_accounts(m: Manifest) -> list[CentralAccount]:
    """The accounts of an accounts package as ``engine.security.users`` takes them."""
    assert m.accounts is not None
    return [
        CentralAccount(
            username=u.username,
            display_name=u.display_name,
            roles=u.roles,
            rank=u.rank,
            first_password=None
            if u.first_password is None
            else PasswordHash(
                u.first_password.n, u.first_password.r, u.first_password.p, u.first_password.salt, u.first_password.hash
            ),
            locked=u.locked,
        )
        for u in m.accounts.users
    ]


__all__ = [
    "ISSUED_FIELD",
    "FoundPackage",
    "MediaProgress",
    "MediaReading",
    "PackageChanges",
    "Scope",
    "Status",
    "blob_path",
    "check_clock",
    "read_medium",
    "tuf_refusal",
]
