"""Enrolment metadata: demographic fields and provenance for subjects and images, from CSV or YAML.

CSV: one row per subject or per image, with a header. Columns: ``subject`` (required: the
subject's folder name), ``image`` (optional: a file name in that folder; empty means the row is
about the subject), ``sex``, ``ic_code``, ``date_of_birth``, ``capture_date``, ``age_range``,
``source``, ``face_x``, ``face_y``. Subject fields (sex, IC code, date of birth) must agree
across a subject's rows; image fields on a subject row are defaults for that subject's images.

``face_x`` and ``face_y`` (both or neither, on an image's own row only, never a subject default)
name the face of the person a photograph is of: a point on that face, in whole pixels from the
left and top of the photograph as displayed (EXIF orientation applied, as ``load_rgb`` decodes
it). Enrolment then takes the face holding the point instead of applying the dominant-face rule
(``engine.faces.pipeline.reference_face``): the way a person resolves a photograph refused as
``several_faces``.

YAML::

    subjects:
      SUBJECT_REF:
        sex: male
        ic_code: IC1
        date_of_birth: 1983-07-23
        capture_date: 2019-05-01      # default for this subject's images
        images:
          FILE.jpg: {capture_date: 2003-05-01, source: custody suite B}
          GROUP.jpg: {face_x: 212, face_y: 140}   # the face of the person, among several

Everything is validated before enrolment starts; errors name the row or key path.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from engine.errors import MetadataError
from engine.library.demographics import parse_age_range, parse_date, parse_ic_code, parse_sex, resolve_age_range

SUBJECT_FIELDS = ("sex", "ic_code", "date_of_birth")
IMAGE_FIELDS = ("capture_date", "age_range", "source")
POINT_FIELDS = ("face_x", "face_y")
"""Per image only: the point on the face of the person the photograph is of (never a subject default)."""
CSV_COLUMNS = ("subject", "image", *SUBJECT_FIELDS, *IMAGE_FIELDS, *POINT_FIELDS)
MAX_BYTES = 64 << 20
_PIXEL = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class ImageFields:
    capture_date: date | None = None
    age_range: str | None = None
    source: str | None = None
    face_point: tuple[int, int] | None = None  # (face_x, face_y): see the module's docstring

    def over(self, defaults: ImageFields) -> ImageFields:
        """These fields, falling back to ``defaults`` where not given; the face point is never inherited."""
        return ImageFields(
            self.capture_date or defaults.capture_date,
            self.age_range or defaults.age_range,
            self.source or defaults.source,
            self.face_point,
        )


@dataclass(frozen=True)
class SubjectFields:
    sex: str | None = None
    ic_code: str | None = None
    date_of_birth: date | None = None
    image_defaults: ImageFields = field(default_factory=ImageFields)


@dataclass
class Metadata:
    """Validated metadata, looked up by subject reference and image file name."""

    origin: str
    subjects: dict[str, SubjectFields] = field(default_factory=dict)
    images: dict[tuple[str, str], ImageFields] = field(default_factory=dict)
    where: dict[tuple[str, str | None], str] = field(default_factory=dict)  # for messages

    def subject(self, reference: str) -> SubjectFields:
        return self.subjects.get(reference, SubjectFields())

    def image(self, reference: str, filename: str) -> ImageFields:
        subject = self.subject(reference)
        return self.images.get((reference, filename), ImageFields()).over(subject.image_defaults)

    def age_range(self, reference: str, filename: str) -> str:
        fields = self.image(reference, filename)
        return resolve_age_range(self.subject(reference).date_of_birth, fields.capture_date, fields.age_range)

    def check_folders(self, folders: Mapping[str, Iterable[str]]) -> None:
        """Every subject and image named must exist in the enrolment folder (a typo would lose demographics)."""
        for reference in self.subjects:
            if reference not in folders:
                raise MetadataError(f"{self.where[(reference, None)]}: subject {reference!r} has no folder to enrol")
        for reference, filename in self.images:
            if filename not in set(folders.get(reference, ())):
                raise MetadataError(
                    f"{self.where[(reference, filename)]}: image {filename!r} is not in subject folder {reference!r}"
                )


def load_metadata(path: Path) -> Metadata:
    """Read and validate a CSV (``.csv``) or YAML (``.yaml``/``.yml``) metadata file."""
    suffix = path.suffix.lower()
    try:
        if path.stat().st_size > MAX_BYTES:
            raise MetadataError(f"metadata file {path} is larger than {MAX_BYTES >> 20} MiB")
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MetadataError(f"metadata file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MetadataError(f"metadata file {path} cannot be read as UTF-8 text ({exc.__class__.__name__})") from None
    if suffix == ".csv":
        return parse_csv(text, path.name)
    if suffix in (".yaml", ".yml"):
        return parse_yaml(text, path.name)
    raise MetadataError(f"metadata file {path} must end in .csv, .yaml or .yml")


def parse_csv(text: str, origin: str) -> Metadata:
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip() for c in (reader.fieldnames or [])]
    if "subject" not in columns:
        raise MetadataError(f"{origin}: the header row must have a 'subject' column")
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    if unknown:
        raise MetadataError(f"{origin}: unknown column {unknown[0]!r} (columns: {', '.join(CSV_COLUMNS)})")
    meta = Metadata(origin)
    for number, raw in enumerate(reader, start=2):
        if None in raw:
            raise MetadataError(f"{origin} row {number}: more values than columns")
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        _add(meta, f"{origin} row {number}", row)
    return meta


def parse_yaml(text: str, origin: str) -> Metadata:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise MetadataError(f"{origin}{where}: not valid YAML") from None
    if not isinstance(doc, dict) or set(doc) != {"subjects"} or not isinstance(doc["subjects"], dict):
        raise MetadataError(
            f"{origin}: the document must be a mapping with one key, 'subjects', mapping names to fields"
        )
    meta = Metadata(origin)
    for reference, body in doc["subjects"].items():
        key = f"{origin} subjects.{reference}"
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise MetadataError(f"{key}: must be a mapping of fields")
        images = body.get("images") or {}
        if not isinstance(images, dict):
            raise MetadataError(f"{key}.images: must be a mapping of file name to fields")
        _add(meta, key, {"subject": reference, **{k: v for k, v in body.items() if k != "images"}})
        for filename, fields in images.items():
            image_key = f"{key}.images.{filename}"
            if fields is not None and not isinstance(fields, dict):
                raise MetadataError(f"{image_key}: must be a mapping of fields")
            extra = set(fields or {}) - {*IMAGE_FIELDS, *POINT_FIELDS}
            if extra:
                raise MetadataError(
                    f"{image_key}: unknown key {sorted(extra)[0]!r}"
                    f" (image keys: {', '.join((*IMAGE_FIELDS, *POINT_FIELDS))})"
                )
            _add(meta, image_key, {"subject": reference, "image": filename, **(fields or {})})
    return meta


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, date) else str(value).strip()


def _add(meta: Metadata, where: str, row: Mapping[str, Any]) -> None:
    unknown = set(row) - set(CSV_COLUMNS)
    if unknown:
        raise MetadataError(f"{where}: unknown key {sorted(unknown)[0]!r} (keys: {', '.join(CSV_COLUMNS[2:])})")
    values = {k: _text(v) for k, v in row.items()}
    reference = values.get("subject", "")
    if not reference:
        raise MetadataError(f"{where}: the subject is empty")
    image = values.get("image") or None
    try:
        subject = SubjectFields(
            sex=parse_sex(values["sex"]) if values.get("sex") else None,
            ic_code=parse_ic_code(values["ic_code"]) if values.get("ic_code") else None,
            date_of_birth=parse_date(values["date_of_birth"], "date_of_birth") if values.get("date_of_birth") else None,
        )
        fields = ImageFields(
            capture_date=parse_date(values["capture_date"], "capture_date") if values.get("capture_date") else None,
            age_range=parse_age_range(values["age_range"]) if values.get("age_range") else None,
            source=values.get("source") or None,
            face_point=_face_point(values),
        )
    except ValueError as exc:
        raise MetadataError(f"{where}: {exc}") from None
    if image is None and fields.face_point is not None:
        raise MetadataError(
            f"{where}: face_x and face_y name the face in one photograph: give them on that image's row, "
            "not on the subject's"
        )
    merged = _merge_subject(meta, where, reference, subject)
    if image is None:
        meta.where.setdefault((reference, None), where)
        merged = replace(merged, image_defaults=_merge_defaults(meta, where, reference, merged.image_defaults, fields))
    else:
        if (reference, image) in meta.images:
            raise MetadataError(f"{where}: image {image!r} of {reference!r} is listed twice")
        meta.images[(reference, image)] = fields
        meta.where[(reference, image)] = where
        meta.where.setdefault((reference, None), where)
    meta.subjects[reference] = merged
    try:
        if image is not None:
            meta.age_range(reference, image)
        else:
            d = merged.image_defaults
            resolve_age_range(merged.date_of_birth, d.capture_date, d.age_range)
    except ValueError as exc:
        raise MetadataError(f"{where}: {exc}") from None


def _face_point(values: Mapping[str, str]) -> tuple[int, int] | None:
    """(face_x, face_y) from their text, both or neither; ValueError saying what to give otherwise."""
    x, y = values.get("face_x", ""), values.get("face_y", "")
    if not x and not y:
        return None
    if not x or not y:
        given, missing = ("face_x", "face_y") if x else ("face_y", "face_x")
        raise ValueError(
            f"{given} is given without {missing}: give both (a point on the face, in pixels from the "
            "photograph's left and top) or neither"
        )
    for name, text in (("face_x", x), ("face_y", y)):
        if not _PIXEL.fullmatch(text):
            raise ValueError(
                f"{name} {text!r} is not a whole number of pixels (0 or more, from the photograph's "
                f"{'left' if name == 'face_x' else 'top'})"
            )
    return int(x), int(y)


def _merge_subject(meta: Metadata, where: str, reference: str, new: SubjectFields) -> SubjectFields:
    old = meta.subjects.get(reference, SubjectFields())
    for name in SUBJECT_FIELDS:
        a, b = getattr(old, name), getattr(new, name)
        if a is not None and b is not None and a != b:
            raise MetadataError(
                f"{where}: {name} {_text(b)!r} for {reference!r} contradicts {_text(a)!r}"
                f" at {meta.where[(reference, None)]}"
            )
    return SubjectFields(
        sex=old.sex or new.sex,
        ic_code=old.ic_code or new.ic_code,
        date_of_birth=old.date_of_birth or new.date_of_birth,
        image_defaults=old.image_defaults,
    )


def _merge_defaults(meta: Metadata, where: str, reference: str, old: ImageFields, new: ImageFields) -> ImageFields:
    for name in IMAGE_FIELDS:
        a, b = getattr(old, name), getattr(new, name)
        if a is not None and b is not None and a != b:
            raise MetadataError(
                f"{where}: {name} {_text(b)!r} for {reference!r} contradicts {_text(a)!r}"
                f" at {meta.where[(reference, None)]}"
            )
    return new.over(old)
