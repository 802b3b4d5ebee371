"""Building packages (``engine.media.format``) into the central repository, with sequence numbers that only increase.

``build_library`` (additions from an enrolment output, and weeding removals), ``build_accounts``
(users and role changes; a new account's or a reset's first password made here, hashed with the
terminal's scrypt parameters), ``build_policy`` (a policy file, validated as the terminal
validates it) and ``build_models`` (a models folder, checked against its own manifest). Each:

- takes the next sequence of its stream from the ledger (``central/issued.json``), or checks the
  one given: a number already issued is refused, and a library stream never skips one (terminals
  apply library deltas in order, with no gap);
- validates its manifest by parsing it back with the terminal's own reader (``parse_manifest``),
  so what is built is what a terminal accepts;
- seals the manifest and every blob with the force's media key (``engine.media.sealing``: nothing
  on a medium is readable without it; blobs are named by a keyed hash of their content), writes
  them as targets into the media folder and records the package as pending; ``Repository.sign``
  then signs it (nothing unsigned is trusted by terminals).
"""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from engine.central import CentralError
from engine.central.outputs import EnrolmentOutput
from engine.central.repository import ROLE_OF_KIND, Pending, Repository
from engine.errors import PolicyError, RfrError
from engine.files import read_regular_file, write_new_file
from engine.library.enrol import MAX_IMAGE_BYTES
from engine.media.format import (
    MAX_MANIFEST_BYTES,
    AccountsDelta,
    FirstPassword,
    ImageEntry,
    Kind,
    LibraryDelta,
    Manifest,
    ModelsUpdate,
    PackageRejected,
    PolicyUpdate,
    SubjectEntry,
    UserEntry,
    blob_path,
    parse_manifest,
)
from engine.media.sealing import MediaKey
from engine.security.users import DEFAULT_SCRYPT, ScryptParams, hash_password, parse_roles, validate_username

_PASSWORD_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # noqa: S105 (no 0/o, 1/l: read aloud or copied by hand)
MAX_USERS_FILE = 16 << 20
MAX_REMOVALS_FILE = 256 << 20


@dataclass(frozen=True)
class Target:
    """Who the package is for: a force and terminal groups (or ``*``)."""

    force: str
    groups: tuple[str, ...]
    description: str = ""


@dataclass
class BuiltPackage:
    kind: str
    stream: str
    sequence: int
    manifest_path: str
    blobs: int
    bytes: int
    summary: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "stream": self.stream,
            "sequence": self.sequence,
            "manifest": self.manifest_path,
            "blobs": self.blobs,
            "bytes": self.bytes,
            **self.summary,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _next_sequence(repo: Repository, stream: str, asked: int | None, *, in_order: bool) -> int:
    last = repo.ledger().last(stream)
    if asked is None:
        return last + 1
    if asked <= last:
        raise CentralError(
            f"sequence {asked} of stream {stream} was already issued (the last issued is {last}): a sequence number "
            f"is never reused; the next is {last + 1}"
        )
    if in_order and asked != last + 1:
        raise CentralError(
            f"sequence {asked} of stream {stream} would skip {last + 1}: terminals apply library deltas in order "
            "with no gap"
        )
    return asked


def _finish(
    repo: Repository,
    media_key: MediaKey,
    manifest: Manifest,
    blobs: dict[str, bytes],
    summary: dict[str, Any],
    *,
    ledger_update: Callable[[dict[str, Any]], None] | None = None,
    enrolment: str | None = None,
    before_commit: Callable[[], None] | None = None,
    written: dict[str, tuple[int, str]] | None = None,
) -> BuiltPackage:
    """Validate the manifest with the terminal's reader, write targets, then the ledger and the pending record.

    ``blobs`` are plaintext, sealed here. ``written``: targets already sealed and put in the repository while
    the package was built (a library's images, one at a time so that a package of any size is built in
    bounded memory): (length, sha256 of the sealed file).
    """
    data = manifest.to_bytes()
    if len(data) > MAX_MANIFEST_BYTES:
        raise CentralError(
            f"the {manifest.kind} package's manifest would be {len(data):,} bytes, over the {MAX_MANIFEST_BYTES:,} "
            "a terminal accepts: split it (a smaller enrolment manifest per package)"
        )
    try:
        parse_manifest(data)
    except PackageRejected as exc:
        raise CentralError(f"the package would be refused by terminals: {exc.diagnostics()}") from None
    targets: dict[str, tuple[int, str]] = {}
    size = 0
    for path in manifest.blobs():
        if written and path in written:
            length, sha256 = written[path]
        else:
            length, sha256 = repo.put_target(path, media_key.seal(path, blobs[path]))
        targets[path] = (length, sha256)
        size += length
    targets[manifest.path] = repo.put_target(manifest.path, media_key.seal(manifest.path, data))
    if before_commit is not None:
        before_commit()
    ledger = repo.ledger()
    stream = ledger.streams.setdefault(manifest.stream, {})
    stream["last"] = manifest.sequence
    stream.setdefault("issued", {})[str(manifest.sequence)] = manifest.created_at
    if ledger_update is not None:
        ledger_update(stream)
    if enrolment is not None:
        ledger.enrolments[enrolment] = f"{manifest.stream}/{manifest.sequence}"
    repo.add_pending(Pending(manifest.stream, manifest.sequence, ROLE_OF_KIND[manifest.kind], manifest.path, targets))
    repo.save_ledger(ledger)  # last: a crash before it leaves the sequence free, and stray targets unsigned
    return BuiltPackage(
        manifest.kind,
        manifest.stream,
        manifest.sequence,
        manifest.path,
        len(targets) - 1,
        size + targets[manifest.path][0],
        summary,
    )


def _manifest(kind: Kind, stream: str, sequence: int, target: Target, **section: Any) -> Manifest:
    # parse_manifest refuses an empty description (to_json writes it as ""), so a package always says what it is.
    description = target.description.strip() or f"{stream} package {sequence} for {target.force}"
    return Manifest(
        kind=kind,
        stream=stream,
        sequence=sequence,
        force=target.force,
        groups=tuple(target.groups),
        created_at=_now(),
        description=description,
        **section,
    )


# Library


@dataclass(frozen=True)
class LibraryTarget:
    """The library a delta is for: its name (the stream ``library:<name>``), kind and authorisation."""

    name: str
    kind: str = "substantive"
    authorisation: str | None = None
    expires_at: str | None = None
    description: str = ""


def read_removals(path: Path) -> list[str]:
    """Subject references to weed, one a line (blank lines and ``#`` comments ignored)."""
    raw = read_regular_file(path, limit=MAX_REMOVALS_FILE, what="removal list", error=CentralError)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CentralError(f"removal list {path} is not UTF-8 text") from None
    references = []
    for number, line in enumerate(text.splitlines(), start=1):
        reference = line.split("#", 1)[0].strip()
        if not reference:
            continue
        if not reference.isprintable() or len(reference) > 200:
            raise CentralError(f"removal list {path} line {number}: not a subject reference")
        references.append(reference)
    if len(set(references)) != len(references):
        raise CentralError(f"removal list {path} names a subject twice")
    return references


def build_library(
    repo: Repository,
    target: Target,
    library: LibraryTarget,
    *,
    media_key: MediaKey,
    enrolment: Path | None,
    passphrase: Callable[[], str],
    removals: Sequence[str] = (),
    sequence: int | None = None,
) -> BuiltPackage:
    """A library delta: the enrolled images of an enrolment output (additions) and subjects to weed (removals)."""
    stream = f"library:{library.name}"
    with repo.locked():
        number = _next_sequence(repo, stream, sequence, in_order=True)
        known = repo.ledger().streams.get(stream, {}).get("library_kind")
        if known is not None and known != library.kind:
            raise CentralError(f"library {library.name} is {known}: its packages cannot make it {library.kind}")
        subjects: list[SubjectEntry] = []
        blobs: dict[str, bytes] = {}
        written: dict[str, tuple[int, str]] = {}
        summary: dict[str, Any] = {"subjects_added": 0, "images_added": 0, "subjects_removed": len(removals)}
        enrolment_id = None
        model_id = model_sha256 = None
        templates: str | None = None
        if enrolment is not None:
            output = EnrolmentOutput.open(enrolment, passphrase())
            enrolment_id = output.header.id
            already = repo.ledger().enrolments.get(enrolment_id)
            if already is not None:
                raise CentralError(f"enrolment {enrolment} was already packaged as {already}: it is never sent twice")
            model_id, model_sha256 = output.header.model_id, output.header.model_sha256
            subjects, vectors, skipped = _library_additions(output, repo, media_key, written)
            if vectors:
                array = np.ascontiguousarray(np.stack(vectors).astype("<f4"))
                data = array.tobytes()
                templates = blob_path(media_key.name_of(data))
                blobs[templates] = data
            summary |= {
                "subjects_added": len(subjects),
                "images_added": len(vectors),
                "images_skipped": skipped,
            }
        if model_sha256 is None:
            model_id, model_sha256 = _stream_model(repo, stream)
        if not subjects and not removals:
            raise CentralError("the library package would change nothing: give --enrolment, --remove, or both")
        both = {s.reference for s in subjects} & set(removals)
        if both:
            raise CentralError(f"subject {sorted(both)[0]!r} is both added and removed by this package")
        delta = LibraryDelta(
            name=library.name,
            kind=library.kind,  # type: ignore[arg-type]
            authorisation=library.authorisation,
            expires_at=library.expires_at,
            description=library.description.strip() or f"the {library.kind} library {library.name}",
            model_id=str(model_id),
            model_sha256=str(model_sha256),
            templates=templates,
            add=tuple(subjects),
            remove=tuple(removals),
        )
        manifest = _manifest("library", stream, number, target, library=delta)

        def remember(entry: dict[str, Any]) -> None:
            entry["library_kind"] = library.kind
            entry["model"] = {"model_id": model_id, "sha256": model_sha256}

        return _finish(
            repo, media_key, manifest, blobs, summary, ledger_update=remember, enrolment=enrolment_id, written=written
        )


def _stream_model(repo: Repository, stream: str) -> tuple[str, str]:
    model = repo.ledger().streams.get(stream, {}).get("model")
    if not isinstance(model, dict):
        raise CentralError(
            f"a weeding-only package for {stream} needs the stream's face model: package an enrolment into it first"
        )
    return str(model["model_id"]), str(model["sha256"])


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _library_additions(
    output: EnrolmentOutput, repo: Repository, media_key: MediaKey, written: dict[str, tuple[int, str]]
) -> tuple[list[SubjectEntry], list[Any], dict[str, int]]:
    """Subjects with their enrolled images (bytes re-read and checked against the enrolled hash), in manifest order.

    Each image is sealed and put in the repository as a target as soon as it is read and checked (``written``),
    so memory holds one image at a time, not the package: a force's first load is many gigabytes.
    """
    manifest = output.manifest()
    meta = manifest.metadata
    rows = {row.row: row for row in manifest.rows}
    images: dict[str, list[ImageEntry]] = {}
    vectors: list[Any] = []
    skipped: dict[str, int] = {}
    seen: set[str] = set()
    default_source = f"central enrolment {manifest.name}"
    for outcome in output.outcomes():
        if outcome.status != "enrolled":
            reason = outcome.reason or "skipped"
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        assert outcome.sha256 is not None and outcome.box is not None
        if outcome.sha256 in seen:
            skipped["duplicate"] = skipped.get("duplicate", 0) + 1
            continue
        row = rows[outcome.row]
        data = read_regular_file(row.path, limit=MAX_IMAGE_BYTES, what="image", error=CentralError)
        if _sha(data) != outcome.sha256:
            raise CentralError(
                f"image {row.path} changed since it was enrolled: enrol it again (a new enrolment) before packaging"
            )
        seen.add(outcome.sha256)
        blob = blob_path(media_key.name_of(data))
        written[blob] = repo.put_target(blob, media_key.seal(blob, data))
        fields = meta.image(row.reference, row.image)
        images.setdefault(row.reference, []).append(
            ImageEntry(
                blob=blob,
                sha256=outcome.sha256,
                media_type=str(outcome.media_type),
                capture_date=fields.capture_date.isoformat() if fields.capture_date else None,
                age_range=meta.age_range(row.reference, row.image),
                source=fields.source or default_source,
                template_row=len(vectors),
                face_box=outcome.box,
            )
        )
        vectors.append(outcome.vector)
    subjects = []
    for reference, entries in images.items():
        subject = meta.subject(reference)
        subjects.append(
            SubjectEntry(
                reference=reference,
                sex=subject.sex or "unknown",
                ic_code=subject.ic_code or "IC0",
                date_of_birth=subject.date_of_birth.isoformat() if subject.date_of_birth else None,
                images=tuple(entries),
            )
        )
    return subjects, vectors, skipped


# Accounts


@dataclass(frozen=True)
class AccountChange:
    username: str
    display_name: str
    roles: tuple[str, ...]
    rank: str | None
    first_password: bool
    locked: bool


def read_accounts(path: Path) -> tuple[list[AccountChange], list[str]]:
    """Users to add or change, and users to remove, from CSV or YAML; the message names the row or entry.

    CSV columns: ``username`` (required), ``display_name``, ``roles`` (separated by ``;``), ``rank``,
    ``first_password`` (yes: a new account or a reset), ``locked`` (yes/no), ``action`` (``set``,
    the default, or ``remove``). YAML: ``{users: [{username, display_name, roles: [...], rank,
    first_password: true|false, locked: true|false}], remove: [username, ...]}``.
    """
    raw = read_regular_file(path, limit=MAX_USERS_FILE, what="accounts file", error=CentralError)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CentralError(f"accounts file {path} is not UTF-8 text") from None
    entries: list[tuple[str, dict[str, Any]]] = []
    removals: list[str] = []
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            raise CentralError(f"accounts file {path} is not valid YAML") from None
        if not isinstance(doc, dict) or set(doc) - {"users", "remove"}:
            raise CentralError(f"accounts file {path}: the document must map 'users' (and 'remove') only")
        users = doc.get("users") or []
        if not isinstance(users, list) or not all(isinstance(u, dict) for u in users):
            raise CentralError(f"accounts file {path}: 'users' must be a list of mappings")
        entries = [(f"{path.name} users[{i}]", dict(u)) for i, u in enumerate(users)]
        removals = [str(r) for r in doc.get("remove") or []]
    elif path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        columns = {"username", "display_name", "roles", "rank", "first_password", "locked", "action"}
        unknown = sorted(set(reader.fieldnames or []) - columns)
        if "username" not in (reader.fieldnames or []) or unknown:
            raise CentralError(
                f"accounts file {path}: the header must have 'username'"
                + (f"; unknown column {unknown[0]!r}" if unknown else "")
            )
        for number, row in enumerate(reader, start=2):
            if None in row:
                raise CentralError(f"accounts file {path} row {number}: more values than columns")
            values = {k: (v or "").strip() for k, v in row.items()}
            action = values.pop("action", "") or "set"
            if action == "remove":
                removals.append(values["username"])
                continue
            if action != "set":
                raise CentralError(f"accounts file {path} row {number}: action must be 'set' or 'remove'")
            values["roles"] = [r.strip() for r in values.get("roles", "").split(";") if r.strip()]
            entries.append((f"{path.name} row {number}", values))
    else:
        raise CentralError(f"accounts file {path} must end in .csv, .yaml or .yml")
    changes = [_account(where, values) for where, values in entries]
    for name in removals:
        try:
            validate_username(name)
        except RfrError as exc:
            raise CentralError(f"accounts file {path} remove {name!r}: {exc.diagnostics()}") from None
    names = [c.username for c in changes] + removals
    if len(set(names)) != len(names):
        raise CentralError(f"accounts file {path} names a user twice")
    if not names:
        raise CentralError(f"accounts file {path} changes no account")
    return changes, removals


def _checked(check: Callable[[], Any], where: str) -> Any:
    try:
        return check()
    except RfrError as exc:
        raise CentralError(f"{where}: {exc.diagnostics()}") from None


def _yes(value: Any, where: str, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value or "").strip().lower()
    if text in ("", "no", "false", "0"):
        return False
    if text in ("yes", "true", "1"):
        return True
    raise CentralError(f"{where}: {name} must be yes or no")


def _account(where: str, values: dict[str, Any]) -> AccountChange:
    extra = sorted(set(values) - {"username", "display_name", "roles", "rank", "first_password", "locked"})
    if extra:
        raise CentralError(f"{where}: unknown key {extra[0]!r}")
    username = _checked(lambda: validate_username(str(values.get("username", ""))), where)
    roles = values.get("roles") or []
    if not isinstance(roles, list):
        raise CentralError(f"{where}: roles must be a list")
    parsed = _checked(lambda: parse_roles([str(r) for r in roles]), where)
    display = str(values.get("display_name") or "").strip()
    if not display:
        # The manifest format writes an empty display name as "", which its reader refuses: always give one.
        raise CentralError(f"{where}: display_name is required (the person's name as the terminal shows it)")
    rank = str(values.get("rank") or "").strip() or None
    for name, text in (("display_name", display), ("rank", rank or "")):
        if len(text) > 100 or (text and not text.isprintable()):
            raise CentralError(f"{where}: {name} must be printable text of at most 100 characters")
    return AccountChange(
        username,
        display,
        tuple(sorted(r.value for r in parsed)),
        rank,
        _yes(values.get("first_password"), where, "first_password"),
        _yes(values.get("locked"), where, "locked"),
    )


def first_password() -> str:
    """A first password to hand over: 20 characters in four groups (about 100 bits), changed at first sign-in."""
    groups = ("".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(5)) for _ in range(4))
    return "-".join(groups)


def build_accounts(
    repo: Repository,
    target: Target,
    changes: Sequence[AccountChange],
    removals: Sequence[str],
    *,
    media_key: MediaKey,
    passwords_out: Path | None,
    sequence: int | None = None,
    scrypt: ScryptParams = DEFAULT_SCRYPT,
) -> BuiltPackage:
    """Users and role changes; new first passwords written (0600) to ``passwords_out`` for handing over."""
    needing = [c.username for c in changes if c.first_password]
    if needing and passwords_out is None:
        raise CentralError(
            f"{len(needing)} account(s) get a first password: give --first-passwords-out FILE (a new file, "
            "kept 0600) to hand them over"
        )
    if passwords_out is not None and passwords_out.exists():
        raise CentralError(f"{passwords_out} already exists: choose a new file; it is never overwritten")
    with repo.locked():
        number = _next_sequence(repo, "accounts", sequence, in_order=False)
        handed: list[tuple[str, str]] = []
        users = []
        for change in changes:
            password = None
            if change.first_password:
                text = first_password()
                handed.append((change.username, text))
                hashed = hash_password(text, scrypt)
                password = FirstPassword(hashed.n, hashed.r, hashed.p, hashed.salt, hashed.digest)
            users.append(
                UserEntry(change.username, change.display_name, change.roles, change.rank, password, change.locked)
            )
        manifest = _manifest(
            "accounts", "accounts", number, target, accounts=AccountsDelta(tuple(users), tuple(removals))
        )

        def hand_over() -> None:
            if passwords_out is not None and handed:
                lines = "".join(f"{name}\t{text}\n" for name, text in handed)
                note = (
                    f"# First passwords of accounts package {number} ({target.force}). Hand each to its person "
                    "alone; it must be changed at first sign-in. Destroy this file once handed over.\n"
                )
                write_new_file(passwords_out, (note + lines).encode(), what="first passwords file", error=CentralError)

        summary = {"users_changed": len(users), "users_removed": len(removals), "first_passwords": len(handed)}
        return _finish(repo, media_key, manifest, {}, summary, before_commit=hand_over)


# Policy


def build_policy(
    repo: Repository, target: Target, policy_file: Path, *, media_key: MediaKey, sequence: int | None = None
) -> BuiltPackage:
    """A policy version: the file as the terminal will validate it (``engine.policy.load_policy_text``)."""
    from engine.policy.loader import MAX_POLICY_BYTES, load_policy_text

    data = read_regular_file(policy_file, limit=MAX_POLICY_BYTES, what="policy file", error=CentralError)
    try:
        policy = load_policy_text(data.decode("utf-8"), source=str(policy_file))
    except UnicodeDecodeError:
        raise CentralError(f"policy file {policy_file} is not UTF-8 text") from None
    except PolicyError as exc:
        raise CentralError(exc.diagnostics()) from None
    with repo.locked():
        number = _next_sequence(repo, "policy", sequence, in_order=False)
        blob = blob_path(media_key.name_of(data))
        manifest = _manifest("policy", "policy", number, target, policy=PolicyUpdate(policy.version, blob))
        return _finish(repo, media_key, manifest, {blob: data}, {"policy_version": policy.version})


# Models


def build_models(
    repo: Repository, target: Target, models_dir: Path, *, media_key: MediaKey, sequence: int | None = None
) -> BuiltPackage:
    """A complete models folder: manifest.yaml and every file it pins, each checked against it."""
    from engine.errors import ModelError
    from engine.faces.models import Manifest as ModelManifest
    from engine.faces.pipeline import MODEL_ID

    models_dir = Path(models_dir)
    try:
        pins = ModelManifest.load(models_dir / "manifest.yaml")
        names = sorted({*pins.outputs, *pins.pinned})
        files = {name: pins.read_verified(models_dir, name) for name in names}
    except ModelError as exc:
        raise CentralError(exc.diagnostics()) from None
    files["manifest.yaml"] = read_regular_file(
        models_dir / "manifest.yaml", limit=1 << 20, what="model manifest", error=CentralError
    )
    named = {name: blob_path(media_key.name_of(data)) for name, data in files.items()}
    blobs = {named[name]: data for name, data in files.items()}
    pairs = tuple(sorted(named.items()))
    with repo.locked():
        number = _next_sequence(repo, "models", sequence, in_order=False)
        manifest = _manifest("models", "models", number, target, models=ModelsUpdate(MODEL_ID, pairs))
        summary = {"model_id": MODEL_ID, "model_sha256": pins.model_sha256("face_resnet"), "files": len(files)}
        return _finish(repo, media_key, manifest, blobs, summary)


def parse_expiry_date(text: str) -> str:
    """A temporary library's expiry (YYYY-MM-DD, end of that day UTC) as the manifest's ISO date-time."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise CentralError(f"--expires {text!r} is not a date (YYYY-MM-DD)") from None
    return datetime.combine(day, time(23, 59, 59), UTC).isoformat().replace("+00:00", "Z")
