"""Applying a verified medium: check the free space, stage every file encrypted, then switch in one transaction.

1. Free space: what staging, the database (and its write-ahead log) and model folders will
   take is checked before a byte is copied (``check_free_space``).
2. Staging: each file a package needs is read from the medium once, in one streaming pass:
   its length counted (more than TUF's signed length is endless data, refused at once), its
   hashes computed (every algorithm TUF's target information names, over the sealed bytes),
   its seal opened with the force's media key (``engine.media.sealing``) and its name checked
   against the keyed hash of what it held, and its bytes encrypted under the workspace key
   into the staging folder (``engine.media.staging``), fsynced. Memory stays bounded by the
   chunk size whatever the file's size; images (at most ``MAX_IMAGE_BYTES``) are also decoded
   as they are copied, as enrolment decodes what it stores. A models package's files are then
   written into a new versioned folder of the workspace, fsynced, not yet in use.
3. One workspace transaction: the streams are checked unchanged since the medium was read,
   then every package in order (policy, accounts, models, libraries): library additions stored
   as enrolment stores them (``engine.library.enrol.store_reference_image``) from the verified
   local copies, weeding (every image, template and row of the subjects; the library's index
   snapshot is taken out of use, so no index keeps them), accounts
   (``Accounts.apply_central_accounts``), the policy in force, the model folder in force; each
   package recorded with its stream and sequence and audited with who applied it; TUF's trusted
   metadata and the time floor stored. The commit is the switch: a crash before it leaves the
   terminal exactly as before, after it exactly as after.
4. Afterwards: staging removed (a crash leaves it for ``staging.sweep`` at the next open; model
   folders no committed row names are removed then too).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import TargetFile

from engine import audit
from engine.audit.clock import format_utc
from engine.errors import ImageError, RfrError
from engine.faces.models import Manifest as ModelManifest
from engine.files import fsync_dir
from engine.library.enrol import NewImage, load_rgb, store_reference_image
from engine.library.index import NDIM
from engine.library.metadata import ImageFields, Metadata, SubjectFields
from engine.library.snapshot import remove_snapshots
from engine.library.store import (
    LibraryKind,
    bump_content_version,
    ensure_model,
    get_library_by_id,
    insert_library,
    parse_expiry,
    record_event,
    weed_subjects,
)
from engine.media.fetcher import READ_CHUNK, MediaFolder, MediaRefused
from engine.media.format import PackageRejected
from engine.media.reader import (
    FACE_MODEL,
    MODEL_MANIFEST,
    FoundPackage,
    MediaProgress,
    MediaReading,
    Progress,
    central_accounts,
    check_blob_name,
    policy_from_package,
    target_file_path,
    tuf_refusal,
)
from engine.media.sealing import MediaKey
from engine.media.staging import LockedFolder, StagingArea
from engine.media.trust import store_state
from engine.policy import Policy
from engine.policy.store import set_policy_in_force
from engine.security.users import Accounts, Session
from engine.workspace import Workspace

MODELS_DIR = "models"
_MARGIN = 64 << 20
_TEMPLATE_BYTES = NDIM * 4
_MEDIA_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))

# How much room the disk holding the workspace has (tests give it less).
disk_usage: Callable[[Path], Any] = shutil.disk_usage


@dataclass
class Staged:
    """A medium's files, copied and checked: where each is staged and what was learnt while copying."""

    area: StagingArea
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # image blob -> decoded (width, height)
    model_folders: dict[str, LockedFolder] = field(default_factory=dict)  # package id -> its new model folder

    def remove(self, *, keep_models: bool) -> None:
        """Remove the staged copies; the new model folders too, unless the commit put them in use."""
        self.area.remove()
        for folder in self.model_folders.values():
            if keep_models:
                folder.release()
            else:
                folder.remove()


@dataclass(frozen=True)
class PackageOutcome:
    package_id: str
    kind: str
    detail: dict[str, Any]

    def describe(self) -> str:
        d = self.detail
        if self.kind == "policy":
            what = f"policy version {d['policy_version']} in force"
        elif self.kind == "accounts":
            what = (
                f"{_n(d['users_added'], 'account')} added, {d['users_changed']} changed, {d['users_removed']} removed"
            )
        elif self.kind == "models":
            what = f"face model {d['model_id']} installed"
        else:
            parts = [f"library {d['library']}"]
            if "images_added" in d:
                parts.append(f"{_n(d['images_added'], 'image')} added")
                if d["images_retemplated"] or d["duplicates"]:
                    parts.append(f"{d['images_retemplated']} given templates, {d['duplicates']} already held")
            if "subjects_removed" in d:
                removed = f"{_n(d['subjects_removed'], 'subject')} removed"
                parts.append(f"{removed} with {_n(d['images_removed'], 'image')}")
            what = ", ".join(parts)
        return f"{self.package_id} applied: {what}"

    def to_json(self) -> dict[str, Any]:
        return {"package": self.package_id, "kind": self.kind, **self.detail}


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@dataclass
class ApplyResult:
    """What applying a medium did."""

    packages: list[PackageOutcome]
    libraries: list[int]  # library ids whose content changed (their indexes are brought up to date)
    weeded_libraries: list[int]
    policy: Policy | None  # the new policy in force, if a package set one
    model_folder: Path | None  # a new face model, used from the next start of the terminal
    notices: list[str] = field(default_factory=list)
    created_libraries: list[int] = field(default_factory=list)

    @property
    def restart_required(self) -> bool:
        return self.model_folder is not None

    def lines(self) -> list[str]:
        out = [p.describe() for p in self.packages]
        if self.policy is not None:
            out.append(f"the policy in force is now version {self.policy.version}")
        if self.model_folder is not None:
            out.append("the new face model is used from the next start of the terminal: restart it")
        return out + self.notices

    def to_json(self) -> dict[str, Any]:
        return {
            "packages": [p.to_json() for p in self.packages],
            "policy_in_force": None if self.policy is None else self.policy.version,
            "restart_required": self.restart_required,
            "notices": self.notices,
        }


# ---- 1. free space ---------------------------------------------------------------------------------


def space_needed(reading: MediaReading) -> int:
    """Bytes the apply may take on the workspace's disk at its peak.

    Staged copies (plus 28 bytes a chunk), the database pages of images and templates twice over
    (the write-ahead log holds them until it is folded back) and once more for the index rebuilt
    from them, model folders, and a margin.
    """
    staged = reading.total_bytes + 28 * (reading.total_bytes // READ_CHUNK + len(reading.blobs))
    rows = 0
    models = 0
    for package in reading.to_apply:
        manifest = package.manifest
        assert manifest is not None
        if manifest.library is not None:
            rows += sum(reading.blobs[b].length for b in manifest.blobs())
            rows += manifest.library.template_rows * _TEMPLATE_BYTES
        if manifest.models is not None:
            models += sum(reading.blobs[b].length for _, b in manifest.models.files if b in reading.blobs)
    return staged + 3 * rows + models + _MARGIN


def check_free_space(ws: Workspace, reading: MediaReading) -> None:
    """Refuse before copying anything when the workspace's disk lacks the room the apply needs."""
    needed = space_needed(reading)
    free = int(disk_usage(ws.directory).free)
    if free < needed:
        raise MediaRefused(
            f"not enough free space on the disk holding the workspace: applying this medium needs {needed:,} bytes, "
            f"{free:,} are free; nothing was copied or changed: free space there, then apply it again"
        )


# ---- 2. staging ---------------------------------------------------------------------------------------


def _image_owners(reading: MediaReading) -> dict[str, tuple[str, str, str, str]]:
    """image blob -> (package id, subject reference, stated media type, stated sha256), for the images added."""
    owners: dict[str, tuple[str, str, str, str]] = {}
    for package in reading.to_apply:
        lib = package.manifest.library if package.manifest is not None else None
        for subject in lib.add if lib is not None else ():
            for image in subject.images:
                owners[image.blob] = (package.package_id, subject.reference, image.media_type, image.sha256)
    return owners


def _pins(reading: MediaReading, owners: dict[str, tuple[str, str, str, str]]) -> dict[str, tuple[str, str]]:
    """blob -> (the refusal, the sha256 its content must have): images (their manifest's) and model files (pinned)."""
    pins = dict(reading.model_pins)
    for blob, (package_id, reference, _media_type, sha256) in owners.items():
        refusal = f"package {package_id}: image {blob} of {reference} is not the image whose sha256 its manifest states"
        pins[blob] = (refusal, sha256)
    return pins


def stage(
    ws: Workspace,
    reading: MediaReading,
    *,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Staged:
    """Copy every file the packages need from the medium, checking and encrypting it in one pass."""
    say = progress or (lambda _p: None)
    check_free_space(ws, reading)
    staged = Staged(StagingArea(ws))
    owners = _image_owners(reading)
    pins = _pins(reading, owners)
    total = reading.total_bytes
    done = 0
    try:
        with MediaFolder(reading.medium) as media:
            for path in sorted(reading.blobs):
                target = reading.blobs[path]
                say(MediaProgress("copying", done, total, path))

                def step(n: int, path: str = path, before: int = done) -> None:
                    if cancel is not None and cancel.is_set():
                        raise MediaRefused("applying was cancelled: nothing was changed")
                    say(MediaProgress("copying", before + n, total, path))

                size = _copy(media, reading.media_key, target, staged, owners.get(path), pins.get(path), step)
                done += size
        say(MediaProgress("copying", total, total, "done"))
        _write_model_folders(ws, reading, staged)
    except BaseException:
        staged.remove(keep_models=False)
        raise
    say(MediaProgress("staged", total, total, ""))
    return staged


def _copy(
    media: MediaFolder,
    media_key: MediaKey,
    target: TargetFile,
    staged: Staged,
    image: tuple[str, str, str, str] | None,
    pin: tuple[str, str] | None,
    step: Callable[[int], None],
) -> int:
    """Stream one target from the medium into staging: length, hashes, opening and encryption in the same pass."""
    try:
        hashers = {algo: hashlib.new(algo) for algo in target.hashes}
    except ValueError:
        raise MediaRefused(f"{target.path} is signed with a hash this terminal does not know: medium refused") from None
    name = target.path.removeprefix("blobs/")
    writer = staged.area.writer(name)
    opener = media_key.opener(target.path)
    # What the content must be: the sha256 a manifest pins (an image's, a model file's), else its keyed name.
    namer = media_key.namer() if pin is None else hashlib.sha256()
    collected = bytearray() if image is not None else None
    length = 0
    # An opening refused is held until the end: TUF's verdict on the sealed bytes (their hashes) comes first.
    unopened: list[MediaRefused] = []

    def keep(open_next: Callable[[], bytes]) -> None:
        if unopened:
            return
        try:
            plain = open_next()
        except MediaRefused as exc:
            unopened.append(exc)
            return
        namer.update(plain)
        writer.write(plain)
        if collected is not None:
            collected.extend(plain)

    try:
        for chunk in media.read_chunks(target_file_path(target), target.length):
            length += len(chunk)
            if length > target.length:
                raise MediaRefused(
                    f"{target.path} on the medium is longer than its signed {target.length:,} bytes: "
                    "endless data refused"
                )
            for hasher in hashers.values():
                hasher.update(chunk)
            keep(partial(opener.feed, chunk))
            step(length)
        if length != target.length:
            raise tuf_refusal(
                tuf_errors.LengthOrHashMismatchError(f"{target.path}: {length} bytes, signed {target.length}")
            )
        for algo, hasher in hashers.items():
            if hasher.hexdigest() != target.hashes[algo]:
                raise tuf_refusal(tuf_errors.LengthOrHashMismatchError(f"{target.path}: its {algo} differs"))
        keep(opener.finish)
        if unopened:
            raise unopened[0]
        if pin is None:
            check_blob_name(target.path, namer.hexdigest())
        elif namer.hexdigest() != pin[1]:
            raise PackageRejected(pin[0])
        writer.finish()
    except FileNotFoundError:
        writer.abort()
        raise MediaRefused(f"{target.path} is signed but not on the medium: the medium is incomplete") from None
    except BaseException:
        writer.abort()
        raise
    if collected is not None and image is not None:
        staged.sizes[target.path] = _decoded_size(bytes(collected), target.path, image)
        collected[:] = bytes(len(collected))
    return length


def _decoded_size(data: bytes, path: str, owner: tuple[str, str, str, str]) -> tuple[int, int]:
    package_id, reference, stated, _sha256 = owner
    actual = next((media for magic, media in _MEDIA_MAGIC if data.startswith(magic)), None)
    if actual != stated:
        raise PackageRejected(f"package {package_id}: image {path} of {reference} is not the {stated} it claims to be")
    try:
        rgb = load_rgb(data, f"{path} of {reference}")
    except ImageError as exc:
        raise PackageRejected(f"package {package_id}: {exc.diagnostics()}") from None
    return int(rgb.shape[1]), int(rgb.shape[0])


def _write_model_folders(ws: Workspace, reading: MediaReading, staged: Staged) -> None:
    """Each models package's files into a new folder of the workspace (not in use until the commit names it)."""
    for package in reading.to_apply:
        models = package.manifest.models if package.manifest is not None else None
        if models is None:
            continue
        held = LockedFolder(ws.directory / MODELS_DIR)  # held until the commit names it (or it is removed)
        staged.model_folders[package.package_id] = held
        folder = held.path
        for name, blob in models.files:
            data = reading.preloaded.get(blob)
            fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                if data is not None:
                    os.write(fd, data)
                else:
                    with staged.area.open(blob.removeprefix("blobs/")) as source:
                        for chunk in source.chunks():
                            view = memoryview(chunk)
                            while view:
                                view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(folder)


# ---- 3. the one transaction ----------------------------------------------------------------------------


def apply_staged(
    ws: Workspace,
    reading: MediaReading,
    staged: Staged,
    accounts: Accounts,
    policy: Policy,
    *,
    by: Session,
    progress: Progress | None = None,
) -> ApplyResult:
    """Switch everything in at once: one transaction, committed or not at all (``by``: the engineer applying it)."""
    say = progress or (lambda _p: None)
    result = ApplyResult([], [], [], None, None)
    todo = reading.to_apply
    rows = sum(p.manifest.library.template_rows for p in todo if p.manifest is not None and p.manifest.library)
    counter = _Counter(say, rows)
    engineer = by.username
    with ws.transaction() as conn:
        streams = {
            str(r[0]): (int(r[1]), str(r[2]))
            for r in conn.execute("SELECT stream, sequence, manifest_sha256 FROM media_streams").fetchall()
        }
        if streams != reading.streams_at_read:
            raise MediaRefused("packages were applied on this terminal since the medium was read: read it again")
        for package in todo:
            manifest = package.manifest
            assert manifest is not None and package.manifest_sha256 is not None and package.changes is not None
            conn.execute(
                "INSERT INTO media_packages (package_id, stream, sequence, kind, manifest_sha256, description,"
                " created_at, issued_at, applied_at, applied_by, changes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    package.package_id,
                    package.stream,
                    package.sequence,
                    manifest.kind,
                    package.manifest_sha256,
                    manifest.description,
                    manifest.created_at,
                    format_utc(reading.issued_at),
                    format_utc(ws.now()),
                    engineer,
                    json.dumps(package.changes.to_json(references=False), sort_keys=True),
                ),
            )
            detail = _apply_one(conn, ws, reading, staged, package, accounts, policy, result, by, counter)
            if result.policy is not None:
                policy = result.policy
            conn.execute(
                "INSERT INTO media_streams (stream, sequence, manifest_sha256, package_id, applied_at, applied_by)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (stream) DO UPDATE SET sequence = excluded.sequence,"
                " manifest_sha256 = excluded.manifest_sha256, package_id = excluded.package_id,"
                " applied_at = excluded.applied_at, applied_by = excluded.applied_by",
                (
                    package.stream,
                    package.sequence,
                    package.manifest_sha256,
                    package.package_id,
                    format_utc(ws.now()),
                    engineer,
                ),
            )
            audit.append(
                conn,
                engineer,
                "media.package_applied",
                subjects={"package": package.package_id},
                details={
                    "stream": package.stream,
                    "sequence": package.sequence,
                    "kind": manifest.kind,
                    "manifest_sha256": package.manifest_sha256,
                    "issued_at": format_utc(reading.issued_at),
                    "created_at": manifest.created_at,
                    **{k: v for k, v in detail.items() if not isinstance(v, list)},
                },
                clock=ws.clock,
            )
            result.packages.append(PackageOutcome(package.package_id, manifest.kind, detail))
        store_state(conn, reading.captured, reading.issued_at)
        for library_id in result.weeded_libraries:
            # No index snapshot may keep weeded templates: taken out of use just before the commit (a crash
            # before it leaves the rows as they were and the index is rebuilt from them at next use).
            conn.execute("DELETE FROM index_snapshots WHERE library_id = ?", (library_id,))
            remove_snapshots(ws.index_dir, library_id)
        audit.append(
            conn,
            engineer,
            "media.applied",
            details={
                "packages": [p.package_id for p in todo],
                "root_version": reading.root_version,
                "issued_at": format_utc(reading.issued_at),
            },
            clock=ws.clock,
        )
        say(MediaProgress("committing", rows, rows, ""))
    say(MediaProgress("committed", rows, rows, ""))
    return result


class _Counter:
    def __init__(self, say: Progress, total: int) -> None:
        self.say = say
        self.total = total
        self.done = 0

    def step(self, what: str) -> None:
        self.done += 1
        if self.done % 64 == 1 or self.done == self.total:
            self.say(MediaProgress("applying", self.done, self.total, what))


def _apply_one(
    conn: Any,
    ws: Workspace,
    reading: MediaReading,
    staged: Staged,
    package: FoundPackage,
    accounts: Accounts,
    policy: Policy,
    result: ApplyResult,
    session: Session,
    counter: _Counter,
) -> dict[str, Any]:
    manifest = package.manifest
    assert manifest is not None
    pid = package.package_id
    by = session.username
    if manifest.policy is not None:
        new = policy_from_package(manifest, reading.preloaded[manifest.policy.blob])
        set_policy_in_force(conn, new, by=by, package_id=pid, clock=ws.clock)
        audit.append(
            conn,
            by,
            "policy.in_force",
            details={"version": new.version, "sha256": new.sha256, "package": pid, "previous": policy.version},
            clock=ws.clock,
        )
        result.policy = new
        return {"policy_version": new.version}
    if manifest.accounts is not None:
        try:
            changes = accounts.apply_central_accounts(
                conn, central_accounts(manifest), manifest.accounts.remove, package=pid, by=session, policy=policy
            )
        except RfrError as exc:
            raise PackageRejected(f"package {pid}: {exc.diagnostics()}") from None
        counts = {kind: sum(1 for c in changes if c.change == kind) for kind in ("add", "change", "remove")}
        return {"users_added": counts["add"], "users_changed": counts["change"], "users_removed": counts["remove"]}
    if manifest.models is not None:
        folder = staged.model_folders[pid].path
        pins = ModelManifest.parse(reading.preloaded[dict(manifest.models.files)[MODEL_MANIFEST]].decode(), pid)
        conn.execute(
            "INSERT INTO media_models (package_id, model_id, model_sha256, folder, installed_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (pid, manifest.models.model_id, pins.model_sha256(FACE_MODEL), folder.name, format_utc(ws.now())),
        )
        audit.append(
            conn,
            by,
            "media.model_installed",
            details={"package": pid, "model_id": manifest.models.model_id, "folder": folder.name},
            clock=ws.clock,
        )
        result.model_folder = folder
        return {"model_id": manifest.models.model_id}
    return _apply_library(conn, ws, reading, staged, package, result, by, counter)


def _apply_library(
    conn: Any,
    ws: Workspace,
    reading: MediaReading,
    staged: Staged,
    package: FoundPackage,
    result: ApplyResult,
    by: str,
    counter: _Counter,
) -> dict[str, Any]:
    manifest = package.manifest
    assert manifest is not None and manifest.library is not None
    lib = manifest.library
    pid = package.package_id
    expires: datetime | None = parse_expiry(lib.expires_at) if lib.expires_at else None
    row = conn.execute(
        "SELECT id, kind, authorisation, expires_at FROM libraries WHERE name = ?", (lib.name,)
    ).fetchone()
    if row is None:
        library_id = insert_library(
            conn,
            ws,
            lib.name,
            LibraryKind(lib.kind),
            lib.authorisation,
            expires,
            lib.description,
            by,
            {"package": pid},
        )
        result.created_libraries.append(library_id)
    else:
        library_id = int(row[0])
        if str(row[1]) != lib.kind:
            raise PackageRejected(f"package {pid}: library {lib.name} is {row[1]} here, the package says {lib.kind}")
        wanted = None if expires is None else expires.isoformat(timespec="seconds")
        if (row[2], row[3]) != (lib.authorisation, wanted):
            conn.execute(
                "UPDATE libraries SET authorisation = ?, expires_at = ? WHERE id = ?",
                (lib.authorisation, wanted, library_id),
            )
    library = get_library_by_id(ws, library_id)
    detail: dict[str, Any] = {"library": lib.name}
    if lib.remove:
        weeded = weed_subjects(conn, library_id, lib.remove)
        result.weeded_libraries.append(library_id)
        record_event(
            conn,
            ws,
            by,
            "weed",
            library_id,
            lib.name,
            {"package": pid, "subjects": weeded.subjects, "images": weeded.images, "templates": weeded.templates},
        )
        detail.update(subjects_removed=weeded.subjects, images_removed=weeded.images)
    added = retemplated = duplicates = 0
    if lib.add:
        assert lib.templates is not None
        model_ref = ensure_model(conn, lib.model_id, lib.model_sha256)
        now = ws.now().isoformat(timespec="seconds")
        with staged.area.open(lib.templates.removeprefix("blobs/")) as templates:
            for subject in lib.add:
                fields = SubjectFields(subject.sex, subject.ic_code, _date(subject.date_of_birth), ImageFields())
                for image in subject.images:
                    vector = templates.read_at(image.template_row * _TEMPLATE_BYTES, _TEMPLATE_BYTES)
                    if not np.all(np.isfinite(np.frombuffer(vector, dtype="<f4"))):
                        raise PackageRejected(f"package {pid}: the template of {image.blob} is not finite numbers")
                    with staged.area.open(image.blob.removeprefix("blobs/")) as source:
                        data = source.read_all()
                    width, height = staged.sizes[image.blob]
                    meta = Metadata(
                        f"package {pid}",
                        subjects={subject.reference: fields},
                        images={
                            (subject.reference, image.sha256): ImageFields(
                                _date(image.capture_date), image.age_range, image.source
                            )
                        },
                    )
                    new = NewImage(
                        subject.reference,
                        image.sha256,
                        data,
                        bytes.fromhex(image.sha256),
                        image.media_type,
                        width,
                        height,
                    )
                    stored = store_reference_image(
                        conn,
                        library,
                        model_ref,
                        new,
                        meta,
                        f"package {pid}",
                        by,
                        pid,
                        vector,
                        list(image.face_box),
                        now,
                    )
                    if stored is None:
                        duplicates += 1
                    elif stored[1] == "retemplated":
                        retemplated += 1
                    else:
                        added += 1
                    counter.step(pid)
        detail.update(images_added=added, images_retemplated=retemplated, duplicates=duplicates)
        record_event(
            conn,
            ws,
            by,
            "package",
            library_id,
            lib.name,
            {"package": pid, "images": added, "retemplated": retemplated, "duplicates": duplicates},
        )
    if lib.add or lib.remove:
        bump_content_version(conn, library_id)
        result.libraries.append(library_id)
    return detail


def _date(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)
