"""What a package from the central unit holds: the one format the central side writes and terminals read.

A package travels as a TUF repository on removable media (see ``engine/media/__init__.py``).
Its content is one signed target, the manifest (``packages/<stream>/<sequence>.json``), and the
blob targets the manifest names (``blobs/<sha256>``: image bytes, a template array, a policy
file, model files), each verified by TUF's hashes before use. The manifest is JSON:

    {"format": 1, "kind": "library" | "accounts" | "policy" | "models",
     "stream": "library:custody" | "accounts" | "policy" | "models",
     "sequence": 7,                      # per stream, starting at 1, only ever increasing
     "force": "force-a", "groups": ["custody-suites"] | ["*"],
     "created_at": "2026-12-01T09:00:00Z", "description": "...",
     "library": {...} | "accounts": {...} | "policy": {...} | "models": {...}}

- library: ``{"name", "kind", "authorisation", "expires_at", "description",
  "model": {"model_id", "sha256"}, "templates": BLOB, "add": [subject...], "remove": [reference...]}``
  with each subject ``{"reference", "sex", "ic_code", "date_of_birth", "images": [{"blob", "sha256",
  "media_type", "capture_date", "age_range", "source", "template_row", "face_box"}]}``. ``templates``
  is a little-endian float32 array of shape (rows, 128); each image names its row. ``remove`` is
  the weeding: every image and template of those subjects goes, snapshots included.
- accounts: ``{"users": [{"username", "display_name", "roles", "rank", "first_password_hash":
  {"n", "r", "p", "salt", "hash"} | null, "locked": bool}], "remove": [username...]}``: a new
  account's first password (scrypt, set by the central unit and handed to the person, who changes
  it at first sign-in).
- policy: ``{"version", "blob"}``: the policy YAML file.
- models: ``{"model_id", "files": {name: BLOB}}``: a complete models folder (manifest, calibration, IR).

Parsing refuses anything else with a one-line ``PackageRejected`` naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from engine.errors import RfrError

FORMAT = 1
MAX_MANIFEST_BYTES = 256 << 20
KINDS = ("library", "accounts", "policy", "models")
Kind = Literal["library", "accounts", "policy", "models"]
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")
_STREAM = re.compile(r"^(library:[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}|accounts|policy|models)$")
_GROUP = re.compile(r"^(\*|[a-z0-9][a-z0-9._-]{0,63})$")
_SEXES = ("female", "male", "unknown")
_IC_CODES = ("IC0", "IC1", "IC2", "IC3", "IC4", "IC5", "IC6")
_AGE_RANGES = ("0-12", "13-15", "16-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+", "unknown")
_MEDIA_TYPES = ("image/jpeg", "image/png")


class PackageRejected(RfrError):
    """A package from removable media is refused: the message names the rule or the field."""


def blob_path(sha256: str) -> str:
    """The TUF target path of a blob: named by its hash, so a blob can never be swapped for another."""
    return f"blobs/{sha256}"


def manifest_path(stream: str, sequence: int) -> str:
    return f"packages/{stream.replace(':', '/')}/{sequence:08d}.json"


def _fail(where: str, message: str) -> PackageRejected:
    return PackageRejected(f"package manifest: {where}: {message}")


def _text(data: Mapping[str, Any], key: str, where: str, *, optional: bool = False, limit: int = 4000) -> str | None:
    value = data.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit or not value.isprintable():
        raise _fail(f"{where}.{key}", "must be printable text")
    return value


def _choice(data: Mapping[str, Any], key: str, where: str, choices: Sequence[str]) -> str:
    value = data.get(key)
    if value not in choices:
        raise _fail(f"{where}.{key}", f"{value!r} is not one of {', '.join(choices)}")
    return str(value)


def _sha(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise _fail(f"{where}.{key}", "must be a sha256 in lowercase hex")
    return value


def _blob(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.startswith("blobs/") or not _SHA256.fullmatch(value[6:]):
        raise _fail(f"{where}.{key}", "must name a blob (blobs/<sha256>)")
    return value


def _day(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise _fail(f"{where}.{key}", "must be a date (YYYY-MM-DD)") from None


def _only(data: Any, where: str, keys: set[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise _fail(where, "must be an object")
    extra = sorted(set(data) - keys)
    if extra:
        raise _fail(f"{where}.{extra[0]}", "is not a field of this format")
    return data


@dataclass(frozen=True)
class ImageEntry:
    blob: str
    sha256: str
    media_type: str
    capture_date: str | None
    age_range: str
    source: str
    template_row: int
    face_box: tuple[int, int, int, int]


@dataclass(frozen=True)
class SubjectEntry:
    reference: str
    sex: str
    ic_code: str
    date_of_birth: str | None
    images: tuple[ImageEntry, ...]


@dataclass(frozen=True)
class LibraryDelta:
    name: str
    kind: Literal["substantive", "temporary"]
    authorisation: str | None
    expires_at: str | None
    description: str
    model_id: str
    model_sha256: str
    templates: str | None  # blob of float32 (rows, 128); None when nothing is added
    add: tuple[SubjectEntry, ...]
    remove: tuple[str, ...]

    @property
    def template_rows(self) -> int:
        return sum(len(s.images) for s in self.add)


@dataclass(frozen=True)
class FirstPassword:
    n: int
    r: int
    p: int
    salt: bytes = field(repr=False)
    hash: bytes = field(repr=False)


@dataclass(frozen=True)
class UserEntry:
    username: str
    display_name: str
    roles: tuple[str, ...]
    rank: str | None
    first_password: FirstPassword | None
    locked: bool


@dataclass(frozen=True)
class AccountsDelta:
    users: tuple[UserEntry, ...]
    remove: tuple[str, ...]


@dataclass(frozen=True)
class PolicyUpdate:
    version: str
    blob: str


@dataclass(frozen=True)
class ModelsUpdate:
    model_id: str
    files: tuple[tuple[str, str], ...]  # (file name, blob)


@dataclass(frozen=True)
class Manifest:
    """A package's manifest, validated: what it is, for whom, which place in its stream, what it changes."""

    kind: Kind
    stream: str
    sequence: int
    force: str
    groups: tuple[str, ...]
    created_at: str
    description: str
    library: LibraryDelta | None = None
    accounts: AccountsDelta | None = None
    policy: PolicyUpdate | None = None
    models: ModelsUpdate | None = None

    @property
    def path(self) -> str:
        return manifest_path(self.stream, self.sequence)

    def blobs(self) -> tuple[str, ...]:
        """Every blob target the package needs, in a stable order."""
        found: list[str] = []
        if self.library is not None:
            if self.library.templates:
                found.append(self.library.templates)
            found += [image.blob for subject in self.library.add for image in subject.images]
        if self.policy is not None:
            found.append(self.policy.blob)
        if self.models is not None:
            found += [blob for _, blob in self.models.files]
        return tuple(dict.fromkeys(found))

    def for_terminal(self, force: str, groups: Sequence[str]) -> bool:
        return self.force == force and ("*" in self.groups or any(g in self.groups for g in groups))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT,
            "kind": self.kind,
            "stream": self.stream,
            "sequence": self.sequence,
            "force": self.force,
            "groups": list(self.groups),
            "created_at": self.created_at,
            "description": self.description,
        }
        if self.library is not None:
            lib = self.library
            out["library"] = {
                "name": lib.name,
                "kind": lib.kind,
                "authorisation": lib.authorisation,
                "expires_at": lib.expires_at,
                "description": lib.description,
                "model": {"model_id": lib.model_id, "sha256": lib.model_sha256},
                "templates": lib.templates,
                "add": [
                    {
                        "reference": s.reference,
                        "sex": s.sex,
                        "ic_code": s.ic_code,
                        "date_of_birth": s.date_of_birth,
                        "images": [
                            {
                                "blob": i.blob,
                                "sha256": i.sha256,
                                "media_type": i.media_type,
                                "capture_date": i.capture_date,
                                "age_range": i.age_range,
                                "source": i.source,
                                "template_row": i.template_row,
                                "face_box": list(i.face_box),
                            }
                            for i in s.images
                        ],
                    }
                    for s in lib.add
                ],
                "remove": list(lib.remove),
            }
        if self.accounts is not None:
            out["accounts"] = {
                "users": [
                    {
                        "username": u.username,
                        "display_name": u.display_name,
                        "roles": list(u.roles),
                        "rank": u.rank,
                        "first_password_hash": None
                        if u.first_password is None
                        else {
                            "n": u.first_password.n,
                            "r": u.first_password.r,
                            "p": u.first_password.p,
                            "salt": u.first_password.salt.hex(),
                            "hash": u.first_password.hash.hex(),
                        },
                        "locked": u.locked,
                    }
                    for u in self.accounts.users
                ],
                "remove": list(self.accounts.remove),
            }
        if self.policy is not None:
            out["policy"] = {"version": self.policy.version, "blob": self.policy.blob}
        if self.models is not None:
            out["models"] = {"model_id": self.models.model_id, "files": dict(self.models.files)}
        return out

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, indent=1).encode("utf-8")


def parse_manifest(data: bytes) -> Manifest:
    """A manifest from its (TUF-verified) bytes, every field checked; ``PackageRejected`` names the first wrong one."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise PackageRejected("package manifest: larger than any package this terminal accepts")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PackageRejected("package manifest: not JSON text") from None
    top = _only(
        raw,
        "manifest",
        {"format", "kind", "stream", "sequence", "force", "groups", "created_at", "description", *KINDS},
    )
    if top.get("format") != FORMAT:
        raise _fail("format", f"{top.get('format')!r} is not format {FORMAT}: this terminal needs updating first")
    kind = _choice(top, "kind", "manifest", KINDS)
    stream = _text(top, "stream", "manifest")
    assert stream is not None
    if (
        not _STREAM.fullmatch(stream)
        or (kind == "library") != stream.startswith("library:")
        or (kind != "library" and stream != kind)
    ):
        raise _fail("stream", f"{stream!r} is not the stream of a {kind} package")
    sequence = top.get("sequence")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or not 1 <= sequence < 2**40:
        raise _fail("sequence", "must be a whole number from 1")
    force = _text(top, "force", "manifest", limit=64)
    groups = top.get("groups")
    if (
        not isinstance(groups, list)
        or not groups
        or not all(isinstance(g, str) and _GROUP.fullmatch(g) for g in groups)
    ):
        raise _fail("groups", "must list terminal groups (or '*')")
    created = _text(top, "created_at", "manifest", limit=40)
    try:
        datetime.fromisoformat(str(created).replace("Z", "+00:00"))
    except ValueError:
        raise _fail("created_at", "must be an ISO date-time") from None
    description = _text(top, "description", "manifest", optional=True) or ""
    extra_kinds = [k for k in KINDS if k in top and k != kind]
    if extra_kinds or kind not in top:
        raise _fail(kind, f"a {kind} package carries exactly its own section")
    manifest = Manifest(
        kind=kind,  # type: ignore[arg-type]
        stream=stream,
        sequence=sequence,
        force=str(force),
        groups=tuple(groups),
        created_at=str(created),
        description=description,
    )
    section = top[kind]
    if kind == "library":
        return _replace(manifest, library=_library(section, stream.removeprefix("library:")))
    if kind == "accounts":
        return _replace(manifest, accounts=_accounts(section))
    if kind == "policy":
        data_ = _only(section, "policy", {"version", "blob"})
        return _replace(
            manifest,
            policy=PolicyUpdate(str(_text(data_, "version", "policy", limit=64)), _blob(data_, "blob", "policy")),
        )
    data_ = _only(section, "models", {"model_id", "files"})
    files = data_.get("files")
    if not isinstance(files, Mapping) or not files:
        raise _fail("models.files", "must name the model files")
    for name in files:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
            raise _fail("models.files", f"{name!r} is not a plain file name")
    pairs = tuple(sorted((name, _blob(files, name, "models.files")) for name in files))
    return _replace(manifest, models=ModelsUpdate(str(_text(data_, "model_id", "models", limit=128)), pairs))


def _replace(manifest: Manifest, **section: Any) -> Manifest:
    from dataclasses import replace

    return replace(manifest, **section)


def _library(section: Any, name_from_stream: str) -> LibraryDelta:
    data = _only(
        section,
        "library",
        {"name", "kind", "authorisation", "expires_at", "description", "model", "templates", "add", "remove"},
    )
    name = _text(data, "name", "library", limit=64)
    if name != name_from_stream or not _NAME.fullmatch(str(name)):
        raise _fail("library.name", f"{name!r} does not match the package's stream")
    kind = _choice(data, "kind", "library", ("substantive", "temporary"))
    authorisation = _text(data, "authorisation", "library", optional=True, limit=200)
    expires = _text(data, "expires_at", "library", optional=True, limit=40)
    if (kind == "temporary") != (authorisation is not None and expires is not None):
        raise _fail("library", "a temporary library has an authorisation and an expiry; a substantive one neither")
    if expires is not None:
        try:
            datetime.fromisoformat(expires.replace("Z", "+00:00"))
        except ValueError:
            raise _fail("library.expires_at", "must be an ISO date-time") from None
    model = _only(data.get("model"), "library.model", {"model_id", "sha256"})
    add_raw = data.get("add", [])
    remove_raw = data.get("remove", [])
    if not isinstance(add_raw, list) or not isinstance(remove_raw, list):
        raise _fail("library", "add and remove must be lists")
    subjects: list[SubjectEntry] = []
    rows: set[int] = set()
    for i, entry in enumerate(add_raw):
        where = f"library.add[{i}]"
        s = _only(entry, where, {"reference", "sex", "ic_code", "date_of_birth", "images"})
        images_raw = s.get("images")
        if not isinstance(images_raw, list) or not images_raw:
            raise _fail(f"{where}.images", "must list at least one image")
        images = []
        for j, image in enumerate(images_raw):
            at = f"{where}.images[{j}]"
            im = _only(
                image,
                at,
                {"blob", "sha256", "media_type", "capture_date", "age_range", "source", "template_row", "face_box"},
            )
            sha = _sha(im, "sha256", at)
            blob = _blob(im, "blob", at)
            row = im.get("template_row")
            if not isinstance(row, int) or isinstance(row, bool) or row < 0 or row in rows:
                raise _fail(f"{at}.template_row", "must be a template row used once")
            rows.add(row)
            box = im.get("face_box")
            if not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, int) for v in box):
                raise _fail(f"{at}.face_box", "must be four whole numbers")
            images.append(
                ImageEntry(
                    blob,
                    sha,
                    _choice(im, "media_type", at, _MEDIA_TYPES),
                    _day(im, "capture_date", at),
                    _choice(im, "age_range", at, _AGE_RANGES),
                    str(_text(im, "source", at, limit=500)),
                    row,
                    (box[0], box[1], box[2], box[3]),
                )
            )
        subjects.append(
            SubjectEntry(
                str(_text(s, "reference", where, limit=200)),
                _choice(s, "sex", where, _SEXES),
                _choice(s, "ic_code", where, _IC_CODES),
                _day(s, "date_of_birth", where),
                tuple(images),
            )
        )
    if rows and rows != set(range(len(rows))):
        raise _fail("library.add", "template rows must be 0 to n-1, each once")
    templates = data.get("templates")
    if subjects:
        templates = _blob(data, "templates", "library")
    elif templates is not None:
        raise _fail("library.templates", "names a template array but nothing is added")
    removals = []
    for i, reference in enumerate(remove_raw):
        if not isinstance(reference, str) or not reference.strip() or not reference.isprintable():
            raise _fail(f"library.remove[{i}]", "must be a subject reference")
        removals.append(reference)
    references = [s.reference for s in subjects]
    if len(set(references)) != len(references):
        raise _fail("library.add", "names a subject twice")
    return LibraryDelta(
        name=str(name),
        kind=kind,  # type: ignore[arg-type]
        authorisation=authorisation,
        expires_at=expires,
        description=_text(data, "description", "library", optional=True) or "",
        model_id=str(_text(model, "model_id", "library.model", limit=128)),
        model_sha256=_sha(model, "sha256", "library.model"),
        templates=templates,
        add=tuple(subjects),
        remove=tuple(removals),
    )


def _accounts(section: Any) -> AccountsDelta:
    data = _only(section, "accounts", {"users", "remove"})
    users_raw = data.get("users", [])
    remove_raw = data.get("remove", [])
    if not isinstance(users_raw, list) or not isinstance(remove_raw, list):
        raise _fail("accounts", "users and remove must be lists")
    users = []
    for i, entry in enumerate(users_raw):
        where = f"accounts.users[{i}]"
        u = _only(entry, where, {"username", "display_name", "roles", "rank", "first_password_hash", "locked"})
        roles = u.get("roles")
        if not isinstance(roles, list) or not roles or not all(isinstance(r, str) for r in roles):
            raise _fail(f"{where}.roles", "must list roles")
        first = u.get("first_password_hash")
        password = None
        if first is not None:
            f = _only(first, f"{where}.first_password_hash", {"n", "r", "p", "salt", "hash"})
            try:
                password = FirstPassword(
                    int(f["n"]), int(f["r"]), int(f["p"]), bytes.fromhex(str(f["salt"])), bytes.fromhex(str(f["hash"]))
                )
            except (KeyError, TypeError, ValueError):
                raise _fail(f"{where}.first_password_hash", "must be an scrypt hash (n, r, p, salt, hash)") from None
        locked = u.get("locked", False)
        if not isinstance(locked, bool):
            raise _fail(f"{where}.locked", "must be true or false")
        users.append(
            UserEntry(
                str(_text(u, "username", where, limit=32)),
                _text(u, "display_name", where, optional=True, limit=100) or "",
                tuple(roles),
                _text(u, "rank", where, optional=True, limit=100),
                password,
                locked,
            )
        )
    removals = [str(r) for r in remove_raw if isinstance(r, str)]
    if len(removals) != len(remove_raw):
        raise _fail("accounts.remove", "must list user names")
    return AccountsDelta(tuple(users), tuple(removals))
