"""Permitted Image Reference Libraries: create, list, look up, purge, composition figures.

Substantive libraries are standing (custody images). Temporary libraries exist for one
operation: they carry the authorisation reference and an expiry, cannot be searched or added
to once the authorisation has lapsed, and ``purge_expired`` destroys them (subjects, images,
templates, index snapshot).

Every change is made by a named actor (an engineer, or ``system`` for what the terminal does
by itself under the policy) and recorded in the one hash-chained, signed audit log
(``record_event``), in the same transaction as the change. Every change of a library's
content also raises its ``content_version``, which an approval records: a case never
searches a library that changed since it was approved.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from engine import audit
from engine.errors import LibraryError
from engine.library.demographics import AGE_RANGES, IC_CODES, SEXES
from engine.library.snapshot import remove_snapshots
from engine.workspace import Workspace

MAX_NAME = 64


class LibraryKind(StrEnum):
    SUBSTANTIVE = "substantive"
    TEMPORARY = "temporary"


@dataclass(frozen=True)
class Library:
    """One Permitted Image Reference Library."""

    id: int
    name: str
    kind: LibraryKind
    authorisation: str | None
    expires_at: datetime | None
    created_at: datetime
    created_by: str | None
    description: str
    index_salt: bytes = field(repr=False)
    content_version: int = 0

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "authorisation": self.authorisation,
            "expires_at": _iso(self.expires_at),
            "created_at": _iso(self.created_at),
            "created_by": self.created_by,
            "description": self.description,
            "content_version": self.content_version,
        }


_SELECT_LIBRARY = (
    "SELECT id, name, kind, authorisation, expires_at, created_at, created_by, description, index_salt, "
    "content_version FROM libraries"
)


def _library(row: tuple[Any, ...]) -> Library:
    return Library(
        id=int(row[0]),
        name=str(row[1]),
        kind=LibraryKind(row[2]),
        authorisation=row[3],
        expires_at=None if row[4] is None else datetime.fromisoformat(row[4]),
        created_at=datetime.fromisoformat(row[5]),
        created_by=row[6],
        description=str(row[7]),
        index_salt=bytes(row[8]),
        content_version=int(row[9]),
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def parse_expiry(text: str) -> datetime:
    """``YYYY-MM-DD`` (the authorisation lapses at the end of that day, UTC) or a full ISO date-time."""
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value) + timedelta(days=1), time(0, 0), UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise LibraryError(f"expiry {text!r} is not a date (YYYY-MM-DD) or an ISO date-time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def create_library(
    ws: Workspace,
    name: str,
    kind: LibraryKind | str,
    *,
    authorisation: str | None = None,
    expires_at: datetime | None = None,
    description: str = "",
    created_by: str,
) -> Library:
    """Create a library (``created_by``: the engineer). A temporary one needs an authorisation and a future expiry."""
    name = name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise LibraryError(f"library name must be 1 to {MAX_NAME} printable characters")
    try:
        kind = LibraryKind(kind)
    except ValueError:
        raise LibraryError(f"library kind {kind!r} is not 'substantive' or 'temporary'") from None
    now = ws.now()
    if kind is LibraryKind.TEMPORARY:
        if not authorisation or not authorisation.strip():
            raise LibraryError("a temporary library needs its authorisation reference (--authorisation REF)")
        if expires_at is None:
            raise LibraryError("a temporary library needs the date its authorisation lapses (--expires DATE)")
        if expires_at <= now:
            raise LibraryError(f"expiry {_iso(expires_at)} is not in the future")
        authorisation = authorisation.strip()
    elif authorisation is not None or expires_at is not None:
        raise LibraryError("a substantive library has no authorisation reference or expiry: use --kind temporary")
    with ws.transaction() as conn:
        library_id = insert_library(conn, ws, name, kind, authorisation, expires_at, description, created_by)
    return get_library_by_id(ws, library_id)


def insert_library(
    conn: Any,
    ws: Workspace,
    name: str,
    kind: LibraryKind,
    authorisation: str | None,
    expires_at: datetime | None,
    description: str,
    created_by: str,
    detail: dict[str, Any] | None = None,
) -> int:
    """Insert a checked library and record it, inside the caller's transaction (``create_library``, packages)."""
    if conn.execute("SELECT 1 FROM libraries WHERE name = ?", (name,)).fetchone():
        raise LibraryError(f"library {name!r} already exists")
    cur = conn.execute(
        "INSERT INTO libraries (name, kind, authorisation, expires_at, description, created_at, created_by,"
        " index_salt) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            name,
            kind.value,
            authorisation,
            _iso(expires_at),
            description,
            _iso(ws.now()),
            created_by,
            secrets.token_bytes(16),
        ),
    )
    library_id = int(cur.lastrowid)
    record_event(
        conn,
        ws,
        created_by,
        "create",
        library_id,
        name,
        {"kind": kind.value, "authorisation": authorisation, "expires_at": _iso(expires_at), **(detail or {})},
    )
    return library_id


@dataclass(frozen=True)
class Weeded:
    """What weeding took out of one library: the subjects found, and their images and templates."""

    subjects: int
    images: int
    templates: int


def weed_subjects(conn: Any, library_id: int, references: list[str] | tuple[str, ...]) -> Weeded:
    """Delete every image, template and the row of each named subject, inside the caller's transaction.

    The caller records it, raises the content version and takes the library's index snapshot
    out of use (the rows are gone; an index built before would still hold their templates).
    """
    subjects = images = templates = 0
    for start in range(0, len(references), 500):
        batch = list(references[start : start + 500])
        marks = ",".join("?" * len(batch))
        ids = [
            int(r[0])
            for r in conn.execute(
                f"SELECT id FROM subjects WHERE library_id = ? AND reference IN ({marks})",  # noqa: S608 - placeholders
                (library_id, *batch),
            ).fetchall()
        ]
        if not ids:
            continue
        id_marks = ",".join("?" * len(ids))
        image_ids = f"SELECT id FROM images WHERE subject_id IN ({id_marks})"  # noqa: S608 - placeholders only
        templates += conn.execute(f"DELETE FROM templates WHERE image_id IN ({image_ids})", ids).rowcount  # noqa: S608
        conn.execute(f"DELETE FROM image_bytes WHERE image_id IN ({image_ids})", ids)  # noqa: S608
        images += conn.execute(f"DELETE FROM images WHERE subject_id IN ({id_marks})", ids).rowcount  # noqa: S608
        subjects += conn.execute(f"DELETE FROM subjects WHERE id IN ({id_marks})", ids).rowcount  # noqa: S608
    return Weeded(subjects, images, templates)


def list_libraries(ws: Workspace) -> list[Library]:
    return [_library(r) for r in ws.query(_SELECT_LIBRARY + " ORDER BY name")]


def get_library(ws: Workspace, name: str) -> Library:
    row = ws.query_one(_SELECT_LIBRARY + " WHERE name = ?", (name,))
    if row is None:
        known = ", ".join(lib.name for lib in list_libraries(ws)) or "none yet"
        raise LibraryError(f"no library called {name!r} (libraries: {known})")
    return _library(row)


def get_library_by_id(ws: Workspace, library_id: int) -> Library:
    row = ws.query_one(_SELECT_LIBRARY + " WHERE id = ?", (library_id,))
    if row is None:
        raise LibraryError(f"library #{library_id} no longer exists")
    return _library(row)


def require_usable(ws: Workspace, library: Library) -> None:
    """Refuse a temporary library whose authorisation has lapsed (it is due for purging)."""
    if library.expired(ws.now()):
        raise LibraryError(
            f"temporary library {library.name!r} lapsed at {_iso(library.expires_at)}: it can no longer be used"
        )


def record_event(
    conn: Any, ws: Workspace, actor: str, action: str, library_id: int, name: str, detail: dict[str, Any]
) -> None:
    """Record a library event (``library.<action>``) in the audit log, inside the caller's transaction.

    Never pass biometric data in ``detail``: the audit log leaves the terminal for oversight.
    """
    audit.append(
        conn,
        actor,
        f"library.{action}",
        subjects={"library": library_id},
        details={"name": name, **detail},
        clock=ws.clock,
    )


def bump_content_version(conn: Any, library_id: int) -> None:
    """The library's content changed (inside the caller's transaction): approvals made before no longer cover it."""
    conn.execute("UPDATE libraries SET content_version = content_version + 1 WHERE id = ?", (library_id,))


@dataclass(frozen=True)
class PurgeRecord:
    library: str
    authorisation: str | None
    expires_at: str | None
    subjects: int
    images: int
    templates: int

    def to_json(self) -> dict[str, Any]:
        return {
            "library": self.library,
            "authorisation": self.authorisation,
            "expires_at": self.expires_at,
            "subjects": self.subjects,
            "images": self.images,
            "templates": self.templates,
        }


# Called after a library's rows and snapshot file are gone, so in-memory indexes can let go too.
_purge_hooks: list[Callable[[Workspace, int], None]] = []


def on_library_destroyed(hook: Callable[[Workspace, int], None]) -> None:
    if hook not in _purge_hooks:
        _purge_hooks.append(hook)


def purge_expired(ws: Workspace, actor: str = audit.SYSTEM_ACTOR) -> list[PurgeRecord]:
    """Destroy every temporary library whose authorisation has lapsed; return what was destroyed.

    Each library goes in one transaction (rows and the purge record together), then its index
    snapshot file is deleted and the WAL is checkpointed so no copy of the rows lingers in it.
    """
    now = ws.now()
    lapsed = [lib for lib in list_libraries(ws) if lib.expired(now)]
    records: list[PurgeRecord] = []
    for lib in lapsed:
        records.append(_destroy(ws, lib, "purge", actor, {"reason": "authorisation lapsed"}))
    if records:
        ws.checkpoint()
    return records


def delete_library(ws: Workspace, name: str, actor: str, reason: str) -> PurgeRecord:
    """Destroy a library now (any kind), recording who did it and why."""
    record = _destroy(ws, get_library(ws, name), "delete", actor, {"reason": reason})
    ws.checkpoint()
    return record


def _destroy(ws: Workspace, lib: Library, action: str, actor: str, detail: dict[str, Any]) -> PurgeRecord:
    with ws.transaction() as conn:

        def count(table: str) -> int:
            return int(conn.execute(f"SELECT count(*) FROM {table} WHERE library_id = ?", (lib.id,)).fetchone()[0])  # noqa: S608

        record = PurgeRecord(
            lib.name, lib.authorisation, _iso(lib.expires_at), count("subjects"), count("images"), count("templates")
        )
        # Children first: cheaper than relying on cascades row by row, same result.
        conn.execute(
            "DELETE FROM image_bytes WHERE image_id IN (SELECT id FROM images WHERE library_id = ?)", (lib.id,)
        )
        for table in ("templates", "images", "subjects", "index_snapshots", "index_tuning"):
            conn.execute(f"DELETE FROM {table} WHERE library_id = ?", (lib.id,))  # noqa: S608
        conn.execute("DELETE FROM libraries WHERE id = ?", (lib.id,))
        record_event(
            conn,
            ws,
            actor,
            action,
            lib.id,
            lib.name,
            {
                **detail,
                "kind": lib.kind.value,
                "authorisation": lib.authorisation,
                "subjects": record.subjects,
                "images": record.images,
                "templates": record.templates,
            },
        )
    for hook in _purge_hooks:  # first: dropping an index waits for a save of it in progress
        hook(ws, lib.id)
    remove_snapshots(ws.index_dir, lib.id)
    return record


def ensure_model(conn: Any, model_id: str, model_sha256: str) -> int:
    """The row id for a face model, registering it on first use."""
    sha = model_sha256.lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise LibraryError(f"model sha256 {model_sha256!r} is not a sha256 hex digest")
    row = conn.execute("SELECT id, model_id FROM models WHERE sha256 = ?", (sha,)).fetchone()
    if row is not None:
        return int(row[0])
    return int(conn.execute("INSERT INTO models (model_id, sha256) VALUES (?, ?)", (model_id, sha)).lastrowid)


def find_model(ws: Workspace, model_sha256: str) -> int | None:
    row = ws.query_one("SELECT id FROM models WHERE sha256 = ?", (model_sha256.lower(),))
    return None if row is None else int(row[0])


@dataclass(frozen=True)
class Composition:
    """Composition figures of one library, as the policy's monitoring requires."""

    library: str
    kind: str
    subjects: int
    images: int
    templates: dict[str, int]  # model id -> templates
    subjects_by_sex: dict[str, int]
    subjects_by_ic_code: dict[str, int]
    images_by_sex: dict[str, int]
    images_by_ic_code: dict[str, int]
    images_by_age_range: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "library": self.library,
            "kind": self.kind,
            "subjects": {
                "total": self.subjects,
                "by_sex": self.subjects_by_sex,
                "by_ic_code": self.subjects_by_ic_code,
            },
            "images": {
                "total": self.images,
                "by_sex": self.images_by_sex,
                "by_ic_code": self.images_by_ic_code,
                "by_age_range": self.images_by_age_range,
            },
            "templates": self.templates,
        }


def composition(ws: Workspace, library: Library) -> Composition:
    """Counts by sex, IC code and age range (age at capture, per image). Every category is listed, zeros too."""

    def grouped(sql: str, keys: tuple[str, ...] | list[str]) -> dict[str, int]:
        counts = dict.fromkeys(keys, 0)
        for key, n in ws.query(sql, (library.id,)):
            counts[str(key)] = int(n)
        return counts

    subjects_sql = "SELECT {col}, count(*) FROM subjects WHERE library_id = ? GROUP BY {col}"
    images_sql = (
        "SELECT s.{col}, count(*) FROM images i JOIN subjects s ON s.id = i.subject_id"
        " WHERE i.library_id = ? GROUP BY s.{col}"
    )
    templates = {
        str(model_id): int(n)
        for model_id, n in ws.query(
            "SELECT m.model_id || ' (' || substr(m.sha256, 1, 12) || ')', count(*) FROM templates t"
            " JOIN models m ON m.id = t.model_ref WHERE t.library_id = ? GROUP BY m.id ORDER BY m.id",
            (library.id,),
        )
    }
    total_subjects = ws.query_one("SELECT count(*) FROM subjects WHERE library_id = ?", (library.id,))
    total_images = ws.query_one("SELECT count(*) FROM images WHERE library_id = ?", (library.id,))
    return Composition(
        library=library.name,
        kind=library.kind.value,
        subjects=int(total_subjects[0]) if total_subjects else 0,
        images=int(total_images[0]) if total_images else 0,
        templates=templates,
        subjects_by_sex=grouped(subjects_sql.format(col="sex"), SEXES),
        subjects_by_ic_code=grouped(subjects_sql.format(col="ic_code"), list(IC_CODES)),
        images_by_sex=grouped(images_sql.format(col="sex"), SEXES),
        images_by_ic_code=grouped(images_sql.format(col="ic_code"), list(IC_CODES)),
        images_by_age_range=grouped(
            "SELECT age_range, count(*) FROM images WHERE library_id = ? GROUP BY age_range", AGE_RANGES
        ),
    )


def library_counts(ws: Workspace, library: Library) -> dict[str, int]:
    row = ws.query_one(
        "SELECT (SELECT count(*) FROM subjects WHERE library_id = :id), (SELECT count(*) FROM images WHERE"
        " library_id = :id), (SELECT count(*) FROM templates WHERE library_id = :id)",
        {"id": library.id},
    )
    assert row is not None
    return {"subjects": int(row[0]), "images": int(row[1]), "templates": int(row[2])}
