"""Enrolment: put a folder of reference images (one subfolder per subject) into a library.

Each image is committed in its own transaction (subject, image, bytes and template together),
so an interrupted enrolment (Ctrl-C, kill -9, power loss) leaves every image fully in or not
there at all; the in-memory index follows each commit and its snapshot is saved at the end (a
snapshot left behind by a crash is caught up at the next open). Image bytes are stored exactly
as read: nothing is re-encoded. Images that are duplicates (same bytes already in the library),
unreadable, or show no face, or several faces with none clearly dominant, are reported and
skipped; a face too small for the detector is looked for again enlarged (``reference_face``).
An image whose metadata names the face (``face_x``, ``face_y``: a point on it) is enrolled with
the face holding that point, or skipped when no single face does.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from engine.errors import ImageError, LibraryError, MetadataError
from engine.faces.types import Face
from engine.library.index import NDIM, IndexSet
from engine.library.metadata import Metadata, load_metadata
from engine.library.registry import indexes_for
from engine.library.store import Library, bump_content_version, ensure_model, record_event, require_usable
from engine.workspace import Workspace

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DUPLICATE = "the same image (identical bytes) is already in this library"
_NEW_SUBJECT, _ENROLLED, _RETEMPLATED = "new subject", "enrolled", "retemplated"
_INDEX_BATCH = 65536  # templates held before they are added to the index
MAX_IMAGE_BYTES = 32 << 20
_MEDIA_TYPES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))


class FaceAnalyzer(Protocol):
    """What enrolment and search need from the face engine (``engine.faces.pipeline.FaceEngine``)."""

    @property
    def model_id(self) -> str: ...

    @property
    def model_sha256(self) -> str: ...

    def analyze(self, rgb: NDArray[np.uint8], upsample: int = 0, embed: bool = True) -> list[Face]: ...


ImageLoader = Callable[[bytes, str], NDArray[np.uint8]]


def load_rgb(data: bytes, name: str) -> NDArray[np.uint8]:
    """Decode image bytes with the face engine's hardened loader (EXIF orientation applied) to RGB uint8.

    Enrolment decodes the very bytes it stores, so what was analysed is what is kept.
    """
    from engine.faces.image_io import load_image

    return np.asarray(load_image(data, name=name).rgb, dtype=np.uint8)


@dataclass(frozen=True)
class Skipped:
    """An image that was not enrolled, and why (``reason`` is a stable code, ``detail`` for people)."""

    path: str
    reason: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class EnrolProgress:
    done: int
    total: int
    enrolled: int
    skipped: int
    path: str


@dataclass
class EnrolmentReport:
    library: str
    total: int = 0
    enrolled: int = 0
    subjects_added: int = 0
    retemplated: int = 0  # images already in the library that gained a template for the current model
    skipped: list[Skipped] = field(default_factory=list)
    chose_dominant_face: list[str] = field(default_factory=list)  # enrolled with the clearly dominant of several
    face_named_by_person: list[str] = field(default_factory=list)  # enrolled with the face the metadata's point named
    cancelled: bool = False
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        by_reason: dict[str, int] = {}
        for s in self.skipped:
            by_reason[s.reason] = by_reason.get(s.reason, 0) + 1
        return {
            "library": self.library,
            "images_found": self.total,
            "enrolled": self.enrolled,
            "subjects_added": self.subjects_added,
            "retemplated": self.retemplated,
            "chose_dominant_face": len(self.chose_dominant_face),
            "face_named_by_person": len(self.face_named_by_person),
            "skipped_by_reason": by_reason,
            "skipped": [s.to_json() for s in self.skipped],
            "cancelled": self.cancelled,
            "seconds": round(self.seconds, 3),
        }


def scan_folder(directory: Path) -> tuple[dict[str, list[Path]], list[Skipped]]:
    """Subject folders and their image files (sorted), and the files that are not where they should be."""
    if not directory.is_dir():
        raise LibraryError(f"enrolment folder {directory} does not exist or is not a folder")
    subjects: dict[str, list[Path]] = {}
    stray: list[Skipped] = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            stray.append(
                Skipped(str(entry), "not_in_subject_folder", "files must be in a folder named after the subject")
            )
            continue
        if not entry.is_dir():
            continue
        images: list[Path] = []
        for item in sorted(entry.iterdir()):
            if item.name.startswith(".") or item.is_dir():
                continue
            if item.suffix.lower() in IMAGE_SUFFIXES and item.is_file():
                images.append(item)
            else:
                stray.append(Skipped(str(item), "not_an_image", f"only {', '.join(IMAGE_SUFFIXES)} files are enrolled"))
        subjects[entry.name] = images
    return subjects, stray


def enroll_directory(
    ws: Workspace,
    library: Library,
    directory: Path,
    face_engine: FaceAnalyzer,
    metadata: Path | Metadata | None = None,
    progress: Callable[[EnrolProgress], None] | None = None,
    cancel: threading.Event | None = None,
    *,
    added_by: str,
    package_id: str | None = None,
    upsample: int = 0,
    loader: ImageLoader = load_rgb,
    indexes: IndexSet | None = None,
) -> EnrolmentReport:
    """Enrol every image of every subject folder of ``directory`` into ``library``.

    Metadata is validated, and checked against the folders and the library, before anything
    changes. ``cancel`` stops after the current image; what was enrolled stays, consistently.
    """
    started = time.monotonic()
    require_usable(ws, library)
    directory = Path(directory)
    folders, stray = scan_folder(directory)
    meta = load_metadata(metadata) if isinstance(metadata, Path) else (metadata or Metadata("no metadata"))
    meta.check_folders({ref: [p.name for p in paths] for ref, paths in folders.items()})
    _check_against_library(ws, library, meta)
    if indexes is None:
        indexes = indexes_for(ws, face_engine.model_id, face_engine.model_sha256)
    elif indexes.model_sha256 != face_engine.model_sha256.lower():
        raise LibraryError("the index set was opened for another face model than the engine enrolling")
    indexes.get(library)
    with ws.transaction() as conn:
        model_ref = ensure_model(conn, face_engine.model_id, face_engine.model_sha256)
    report = EnrolmentReport(library.name, total=sum(len(p) for p in folders.values()))
    report.skipped.extend(stray)
    source_default = f"enrolment from folder {directory.name}"
    done = 0
    pending: list[tuple[int, NDArray[np.float32]]] = []
    try:
        for reference, paths in folders.items():
            for path in paths:
                if cancel is not None and cancel.is_set():
                    report.cancelled = True
                    break
                outcome = _enrol_one(
                    ws,
                    library,
                    model_ref,
                    reference,
                    path,
                    face_engine,
                    meta,
                    loader,
                    upsample,
                    source_default,
                    added_by,
                    package_id,
                    pending,
                    report,
                )
                if len(pending) >= _INDEX_BATCH:
                    _flush(indexes, library, pending)
                if isinstance(outcome, Skipped):
                    report.skipped.append(outcome)
                elif outcome == _RETEMPLATED:
                    report.retemplated += 1
                else:
                    report.enrolled += 1
                    report.subjects_added += int(outcome == _NEW_SUBJECT)
                done += 1
                if progress is not None:
                    progress(EnrolProgress(done, report.total, report.enrolled, len(report.skipped), str(path)))
            if report.cancelled:
                break
    finally:
        _flush(indexes, library, pending)
        if report.enrolled or report.retemplated:
            indexes.save(library)
            with ws.transaction() as conn:
                record_event(
                    conn,
                    ws,
                    added_by,
                    "enrol",
                    library.id,
                    library.name,
                    {
                        "images": report.enrolled,
                        "subjects_added": report.subjects_added,
                        "retemplated": report.retemplated,
                        "chose_dominant_face": len(report.chose_dominant_face),
                        "face_named_by_person": len(report.face_named_by_person),
                        "skipped": len(report.skipped),
                        "cancelled": report.cancelled,
                        "package": package_id,
                    },
                )
    report.seconds = time.monotonic() - started
    return report


def _check_against_library(ws: Workspace, library: Library, meta: Metadata) -> None:
    """Refuse metadata that contradicts what the library already records about a subject."""
    for reference, fields in meta.subjects.items():
        row = ws.query_one(
            "SELECT sex, ic_code, date_of_birth FROM subjects WHERE library_id = ? AND reference = ?",
            (library.id, reference),
        )
        if row is None:
            continue
        stored = {"sex": row[0], "ic_code": row[1], "date_of_birth": row[2]}
        given = {
            "sex": fields.sex,
            "ic_code": fields.ic_code,
            "date_of_birth": fields.date_of_birth.isoformat() if fields.date_of_birth else None,
        }
        for name, value in given.items():
            if value is not None and stored[name] not in (None, "unknown", "IC0", value):
                raise MetadataError(
                    f"{meta.where[(reference, None)]}: {name} {value!r} contradicts {stored[name]!r} already recorded"
                    f" for {reference!r} in library {library.name!r}"
                )


def _media_type(data: bytes) -> str | None:
    return next((media for magic, media in _MEDIA_TYPES if data.startswith(magic)), None)


def _enrol_one(
    ws: Workspace,
    library: Library,
    model_ref: int,
    reference: str,
    path: Path,
    face_engine: FaceAnalyzer,
    meta: Metadata,
    loader: ImageLoader,
    upsample: int,
    source_default: str,
    added_by: str | None,
    package_id: str | None,
    pending: list[tuple[int, NDArray[np.float32]]],
    report: EnrolmentReport,
) -> Skipped | str:
    """Enrol one image: ``_NEW_SUBJECT``, ``_ENROLLED``, ``_RETEMPLATED``, or why it was skipped.

    How the face was chosen, when not the only one, is listed in ``report`` (dominant, or named by a person).

    An image already in the library (same bytes) is a duplicate, unless it has no template for
    the current face model yet: then it gains one (a model upgrade re-enrols without doubling images).
    """
    where = str(path)
    read = read_reference_image(path)
    if isinstance(read, Skipped):
        return read
    data, media_type = read
    digest = hashlib.sha256(data).digest()
    if _existing_image(ws.query_one, library, digest, model_ref) == "current":
        return Skipped(where, "duplicate", DUPLICATE)
    point = meta.image(reference, path.name).face_point
    made = reference_template(data, where, face_engine, loader=loader, upsample=upsample, point=point)
    if isinstance(made, Skipped):
        return made
    rgb, face, vector = made.rgb, made.face, made.vector
    blob = vector.tobytes()
    now = ws.now().isoformat(timespec="seconds")
    new = NewImage(reference, path.name, data, digest, media_type, int(rgb.shape[1]), int(rgb.shape[0]))
    with ws.transaction() as conn:
        stored = store_reference_image(
            conn, library, model_ref, new, meta, source_default, added_by, package_id, blob, face.box.as_list(), now
        )
        if stored is None:
            return Skipped(where, "duplicate", DUPLICATE)
        template_id, outcome = stored
        bump_content_version(conn, library.id)
    pending.append((template_id, vector))
    if made.chosen_by == "dominant":
        report.chose_dominant_face.append(where)
    elif made.chosen_by == "person":
        report.face_named_by_person.append(where)
    return outcome


def read_reference_image(path: Path) -> tuple[bytes, str] | Skipped:
    """A reference image's bytes and media type, or why it cannot be enrolled (too large, unreadable, not an image).

    Shared by the terminal's enrolment and the central unit's (``engine.central.enrol``): one set of rules.
    """
    where = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            return Skipped(where, "too_large", f"{size} bytes; the limit is {MAX_IMAGE_BYTES >> 20} MiB")
        data = path.read_bytes()
    except OSError as exc:
        return Skipped(where, "unreadable", f"cannot read the file ({exc.strerror})")
    media_type = _media_type(data)
    if media_type is None:
        return Skipped(where, "unreadable", "not a JPEG or PNG image")
    return data, media_type


@dataclass(frozen=True)
class ReferenceTemplate:
    """The face enrolled from a reference image: the decoded pixels, the face chosen and its template."""

    rgb: NDArray[np.uint8] = field(repr=False)
    face: Face
    vector: NDArray[np.float32] = field(repr=False)  # little-endian float32, shape (NDIM,), finite
    chosen_by: str  # "only", "dominant" or "person" (``engine.faces.types.FACE_CHOSEN_BY``)


def reference_template(
    data: bytes,
    where: str,
    face_engine: FaceAnalyzer,
    *,
    loader: ImageLoader = load_rgb,
    upsample: int = 0,
    point: tuple[int, int] | None = None,
) -> ReferenceTemplate | Skipped:
    """The template of the one face of a reference image (``reference_face``'s rules), or why there is none.

    ``point`` (x, y), when a person named the face: the face holding it, in the pixels ``loader``
    decodes (``load_rgb``: EXIF orientation applied, as the photograph is displayed). Shared by the
    terminal's enrolment and the central unit's (``engine.central.enrol``): one set of rules.
    """
    try:
        rgb = loader(data, where)
    except ImageError as exc:
        return Skipped(where, "unreadable", exc.diagnostics())
    # Imported here, not at the top: the pipeline brings OpenVINO and OpenCV (~0.1 s), which the terminal's start-up
    # (engine.terminal imports this module) should not wait for; the models load later, in their own thread.
    from engine.faces.pipeline import reference_face

    try:
        chosen = reference_face(face_engine, rgb, start=upsample, point=point)  # enlarged when no face at ``upsample``
    except ImageError as exc:
        return Skipped(where, "unreadable", exc.diagnostics())
    if chosen.face is None:
        return Skipped(where, chosen.reason or "no_face", chosen.detail or "no face found")
    face = chosen.face
    if face.embedding is None:
        return Skipped(where, "no_template", "the face engine returned no template for the face")
    vector = np.asarray(face.embedding, dtype="<f4")
    if vector.shape != (NDIM,) or not np.all(np.isfinite(vector)):
        return Skipped(where, "no_template", f"the face engine returned an unusable template of shape {vector.shape}")
    return ReferenceTemplate(rgb, face, vector, chosen.chosen_by or "only")


def _flush(indexes: IndexSet, library: Library, pending: list[tuple[int, NDArray[np.float32]]]) -> None:
    """Add committed templates to the index in one batch, which ``IndexSet.add`` inserts shuffled.

    One at a time they would go in a subject's images in a row, the order that cost the graph
    recall (see ``engine.library.index._add_vectors``). Rows committed but not yet added when the
    process dies are in the database and not the snapshot: the next open rebuilds.
    """
    if pending:
        ids = np.array([template_id for template_id, _ in pending], dtype=np.uint64)
        indexes.add(library, ids, np.stack([vector for _, vector in pending]).astype(np.float32))
        pending.clear()


@dataclass(frozen=True)
class NewImage:
    """A reference image about to be stored: its subject, its exact bytes and its decoded size."""

    reference: str
    filename: str
    data: bytes
    digest: bytes
    media_type: str
    width: int
    height: int


def _insert_image(
    conn: Any,
    library: Library,
    new: NewImage,
    meta: Metadata,
    source_default: str,
    added_by: str | None,
    package_id: str | None,
    now: str,
) -> tuple[int, bool]:
    """Insert the subject (if new), the image row and its bytes; return the image id and whether the subject is new."""
    subject = meta.subject(new.reference)
    fields = meta.image(new.reference, new.filename)
    dob = subject.date_of_birth.isoformat() if subject.date_of_birth else None
    subject_id, created = _subject_row(conn, library, new.reference, subject.sex, subject.ic_code, dob, now)
    image_id = conn.execute(
        "INSERT INTO images (library_id, subject_id, sha256, media_type, byte_length, width, height, capture_date,"
        " age_range, source, added_by, package_id, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            library.id,
            subject_id,
            new.digest,
            new.media_type,
            len(new.data),
            new.width,
            new.height,
            fields.capture_date.isoformat() if fields.capture_date else None,
            meta.age_range(new.reference, new.filename),
            fields.source or source_default,
            added_by,
            package_id,
            now,
        ),
    ).lastrowid
    conn.execute("INSERT INTO image_bytes (image_id, data) VALUES (?, ?)", (image_id, new.data))
    return int(image_id), created


def store_reference_image(
    conn: Any,
    library: Library,
    model_ref: int,
    new: NewImage,
    meta: Metadata,
    source_default: str,
    added_by: str | None,
    package_id: str | None,
    template: bytes,
    face_box: list[int],
    now: str,
) -> tuple[int, str] | None:
    """Store one reference image and its template inside the caller's transaction: (template id, outcome).

    The one way an image enters a library, for enrolment from a folder and for library packages
    from the central unit (``engine.media``). None when the same bytes are in the library with a
    template of this model already (a duplicate); an image there without one gains it. The
    caller raises the library's content version.
    """
    existing = _existing_image(lambda sql, params: conn.execute(sql, params).fetchone(), library, new.digest, model_ref)
    if existing == "current":
        return None
    if isinstance(existing, int):
        return _insert_template(conn, existing, library, model_ref, template, face_box, now), _RETEMPLATED
    image_id, created = _insert_image(conn, library, new, meta, source_default, added_by, package_id, now)
    template_id = _insert_template(conn, image_id, library, model_ref, template, face_box, now)
    return template_id, _NEW_SUBJECT if created else _ENROLLED


def _insert_template(
    conn: Any, image_id: int, library: Library, model_ref: int, blob: bytes, box: list[int], now: str
) -> int:
    return int(
        conn.execute(
            "INSERT INTO templates (image_id, library_id, model_ref, vector, vector_sha256, face_box, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (image_id, library.id, model_ref, blob, hashlib.sha256(blob).digest(), json.dumps(box), now),
        ).lastrowid
    )


def _existing_image(
    fetch_one: Callable[[str, tuple[Any, ...]], Any], library: Library, digest: bytes, model_ref: int
) -> int | str | None:
    """``"current"`` if the same bytes are in the library with a current-model template, else the image id, or None."""
    row = fetch_one(
        "SELECT i.id, EXISTS (SELECT 1 FROM templates t WHERE t.image_id = i.id AND t.model_ref = ?)"
        " FROM images i WHERE i.library_id = ? AND i.sha256 = ?",
        (model_ref, library.id, digest),
    )
    if row is None:
        return None
    return "current" if row[1] else int(row[0])


def _subject_row(
    conn: Any, library: Library, reference: str, sex: str | None, ic_code: str | None, dob: str | None, now: str
) -> tuple[int, bool]:
    row = conn.execute(
        "SELECT id, sex, ic_code, date_of_birth FROM subjects WHERE library_id = ? AND reference = ?",
        (library.id, reference),
    ).fetchone()
    if row is None:
        cur = conn.execute(
            "INSERT INTO subjects (library_id, reference, sex, ic_code, date_of_birth, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (library.id, reference, sex or "unknown", ic_code or "IC0", dob, now),
        )
        return int(cur.lastrowid), True
    subject_id = int(row[0])
    # Fill in what was unknown; contradictions were refused before enrolment started.
    if sex and row[1] == "unknown":
        conn.execute("UPDATE subjects SET sex = ? WHERE id = ?", (sex, subject_id))
    if ic_code and row[2] == "IC0":
        conn.execute("UPDATE subjects SET ic_code = ? WHERE id = ?", (ic_code, subject_id))
    if dob and row[3] is None:
        conn.execute("UPDATE subjects SET date_of_birth = ? WHERE id = ?", (dob, subject_id))
    return subject_id, False
