"""The force's own labelled pairs: a CSV manifest read, checked and turned into the equity evaluation's pair sets.

LFW is press photography; what matters is how the engine does on custody photographs and CCTV stills.
The force lists pairs it has labelled, one per row, in a CSV file with a header row naming these
columns (any order; extra columns are ignored):

- ``pair_kind``: ``custody-custody`` (two custody photographs) or ``cctv-custody`` (``image_a`` is the
  CCTV or other probe still, ``image_b`` the custody photograph);
- ``image_a``, ``image_b``: image paths, relative to the manifest's folder (or absolute);
- ``same``: ``same`` or ``different`` (the two images show one person, or two);
- ``subject_a``, ``subject_b``: the force's identifiers of the people shown (pseudonymous references,
  never names); equal exactly when ``same``;
- ``sex_a``, ``sex_b``, ``ic_code_a``, ``ic_code_b``, ``age_range_a``, ``age_range_b``: the fields the
  policy records, in the library's vocabulary (``engine.library.demographics``); sex and IC code belong
  to the subject and must agree wherever the subject appears; the age range belongs to the image.

Impostors are matched on demographics, because people who look alike share them and a different-person
pair of a man and a woman says nothing about false matches: every ``different`` row must have the same
sex and IC code on both sides (the row is refused otherwise), and ``matched_impostors`` adds every
other different-subject pair of the manifest's images of the same kind and the same sex and IC code
(a CCTV still against another subject's custody photographs; a custody photograph against another
subject's). Genuine pairs keep at most ``MAX_IMAGES_PER_PERSON`` images per subject (the first listed),
as on LFW, so one prolific subject cannot dominate the FNMR.

Every problem is one line naming the file, the row and what to do. Templates are made in memory only.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.errors import RfrError
from engine.evaluation.demographics import majority
from engine.evaluation.equity import PairSet
from engine.evaluation.protocol import MAX_IMAGES_PER_PERSON
from engine.library.demographics import parse_age_range, parse_ic_code, parse_sex

PAIR_KINDS = ("custody-custody", "cctv-custody")
SAME_VALUES = {"same": True, "different": False}
COLUMNS = (
    "pair_kind",
    "image_a",
    "image_b",
    "same",
    "subject_a",
    "subject_b",
    "sex_a",
    "sex_b",
    "ic_code_a",
    "ic_code_b",
    "age_range_a",
    "age_range_b",
)
MAX_ROWS = 5_000_000


class ForcePairsError(RfrError):
    """The force's pair manifest cannot be used: the message names the row and what to fix."""


@dataclass(frozen=True)
class Image:
    """One image of the manifest: where it is, whose it is, its role and the subject's age range at capture."""

    path: Path
    subject: str
    role: str  # "custody" or "cctv"
    age_range: str


@dataclass(frozen=True)
class Subject:
    sex: str
    ic_code: str


@dataclass(frozen=True)
class ListedPair:
    kind: str
    a: int  # index into images
    b: int
    same: bool
    row: int


@dataclass
class ForcePairs:
    """The manifest as read: images, subjects with their recorded fields, and the listed pairs."""

    source: str
    images: list[Image] = field(default_factory=list)
    subjects: dict[str, Subject] = field(default_factory=dict)
    pairs: list[ListedPair] = field(default_factory=list)

    def subject_age_range(self, subject: str) -> str | None:
        """The age range most of the subject's images carry (strict majority), else None."""
        return majority(img.age_range for img in self.images if img.subject == subject)

    def summary(self) -> dict[str, Any]:
        by_kind: dict[str, dict[str, int]] = {}
        for p in self.pairs:
            counts = by_kind.setdefault(p.kind, {"same": 0, "different": 0})
            counts["same" if p.same else "different"] += 1
        return {
            "source": self.source,
            "images": len(self.images),
            "subjects": len(self.subjects),
            "listed_pairs": by_kind,
        }


def _fail(source: str, row: int | None, message: str) -> ForcePairsError:
    where = f"{source} row {row}" if row is not None else source
    return ForcePairsError(f"force pairs {where}: {message}")


def _cell(values: Mapping[str, str | None], key: str, source: str, row: int) -> str:
    value = (values.get(key) or "").strip()
    if not value:
        raise _fail(source, row, f"{key} is empty; every row needs {', '.join(COLUMNS)}")
    return value


def parse_manifest(text: str, source: str, base: Path, *, check_files: bool = True) -> ForcePairs:
    """Read the manifest text (see the module docstring); image paths are resolved against ``base``."""
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise _fail(source, None, f"is empty; the first row must name the columns {', '.join(COLUMNS)}")
    reader.fieldnames = header
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise _fail(source, 1, f"missing column {missing[0]!r}; the header must name {', '.join(COLUMNS)}")
    out = ForcePairs(source=source)
    index: dict[Path, int] = {}
    seen_pairs: dict[tuple[str, int, int], int] = {}
    for row, values in enumerate(reader, start=2):
        if row > MAX_ROWS:
            raise _fail(source, row, f"more than {MAX_ROWS:,} rows; split the manifest")
        if None in values:
            raise _fail(source, row, "has more cells than the header has columns; check for an unquoted comma")
        if all(not (v or "").strip() for v in values.values()):
            continue
        kind = _cell(values, "pair_kind", source, row).lower()
        if kind not in PAIR_KINDS:
            raise _fail(source, row, f"pair_kind {kind!r} is not one of {', '.join(PAIR_KINDS)}")
        same_text = _cell(values, "same", source, row).lower()
        if same_text not in SAME_VALUES:
            raise _fail(source, row, f"same {same_text!r} must be 'same' or 'different'")
        same = SAME_VALUES[same_text]
        sides: list[int] = []
        for side in ("a", "b"):
            subject = _cell(values, f"subject_{side}", source, row)
            try:
                sex = parse_sex(_cell(values, f"sex_{side}", source, row))
                ic = parse_ic_code(_cell(values, f"ic_code_{side}", source, row))
                age = parse_age_range(_cell(values, f"age_range_{side}", source, row))
            except ValueError as exc:
                raise _fail(source, row, f"{exc}") from None
            known = out.subjects.setdefault(subject, Subject(sex, ic))
            if known != Subject(sex, ic):
                raise _fail(
                    source,
                    row,
                    f"subject {subject!r} is {sex}/{ic} here but {known.sex}/{known.ic_code} in an earlier row; "
                    "a subject's sex and IC code must agree in every row",
                )
            path = Path(_cell(values, f"image_{side}", source, row))
            path = path if path.is_absolute() else base / path
            role = "cctv" if (kind == "cctv-custody" and side == "a") else "custody"
            if path in index:
                image = out.images[index[path]]
                if image.subject != subject:
                    raise _fail(source, row, f"image {path.name} is subject {image.subject!r} in an earlier row")
                if image.role != role:
                    raise _fail(
                        source, row, f"image {path.name} is a {image.role} image in an earlier row, {role} here"
                    )
                if image.age_range != age:
                    raise _fail(source, row, f"image {path.name} has age range {image.age_range} in an earlier row")
            else:
                if check_files and not path.is_file():
                    raise _fail(source, row, f"image {path} does not exist; paths are relative to the manifest")
                index[path] = len(out.images)
                out.images.append(Image(path, subject, role, age))
            sides.append(index[path])
        a, b = sides
        subject_a, subject_b = out.images[a].subject, out.images[b].subject
        if a == b:
            raise _fail(source, row, "image_a and image_b are the same image")
        if same and subject_a != subject_b:
            raise _fail(source, row, f"a 'same' pair must have one subject; got {subject_a!r} and {subject_b!r}")
        if not same and subject_a == subject_b:
            raise _fail(source, row, f"a 'different' pair must have two subjects; both are {subject_a!r}")
        if not same and out.subjects[subject_a] != out.subjects[subject_b]:
            sa, sb = out.subjects[subject_a], out.subjects[subject_b]
            raise _fail(
                source,
                row,
                f"a 'different' pair must match on sex and IC code (impostors matched on demographics); "
                f"got {sa.sex}/{sa.ic_code} and {sb.sex}/{sb.ic_code}",
            )
        key = (kind, min(a, b), max(a, b))
        if key in seen_pairs:
            raise _fail(source, row, f"repeats the pair of row {seen_pairs[key]}")
        seen_pairs[key] = row
        out.pairs.append(ListedPair(kind, a, b, same, row))
    if not out.pairs:
        raise _fail(source, None, "lists no pairs; add one row per labelled pair under the header")
    return out


def load_manifest(path: Path, *, check_files: bool = True) -> ForcePairs:
    """Read and check the manifest file; image paths are relative to its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise _fail(str(path), None, f"cannot be read ({why}); give the path of a UTF-8 CSV file") from None
    return parse_manifest(text, str(path), path.parent, check_files=check_files)


# ---------------------------------------------------------------------------------------------
# Pair sets for the equity evaluation
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KindPairs:
    """One pair kind's comparisons, by subject, ready for ``engine.evaluation.equity.sweep``."""

    kind: str
    pairs: PairSet
    listed_impostors: int
    matched_impostors: int
    genuine_dropped_for_balance: int
    genuine_without_face: int
    impostors_without_face: int

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subjects": len(self.pairs.people),
            "genuine_pairs": int(self.pairs.genuine_distance.size),
            "impostor_pairs": int(self.pairs.impostor_distance.size),
            "listed_impostor_pairs": self.listed_impostors,
            "matched_impostor_pairs_added": self.matched_impostors,
            "genuine_pairs_dropped_to_balance": self.genuine_dropped_for_balance,
            "genuine_pairs_without_face": self.genuine_without_face,
            "impostor_pairs_without_face": self.impostors_without_face,
        }


def _balanced_images(manifest: ForcePairs) -> set[int]:
    """Per subject, the first ``MAX_IMAGES_PER_PERSON`` images in the order the manifest lists them."""
    kept: dict[str, int] = {}
    out: set[int] = set()
    for i, image in enumerate(manifest.images):
        if kept.get(image.subject, 0) < MAX_IMAGES_PER_PERSON:
            kept[image.subject] = kept.get(image.subject, 0) + 1
            out.add(i)
    return out


def kind_pairs(
    manifest: ForcePairs,
    templates: npt.NDArray[np.floating],
    *,
    matched_impostors: bool = True,
) -> list[KindPairs]:
    """For each pair kind in the manifest: genuine and impostor comparisons by subject.

    ``templates``: one row per manifest image (NaN where no face was found). A pair with an image
    without a face makes no comparison and is counted. Impostors are the listed ``different`` rows
    plus, with ``matched_impostors``, every other pair of images of the kind's roles from two subjects
    of the same sex and IC code.
    """
    t = np.asarray(templates, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != len(manifest.images):
        raise ForcePairsError("force pairs: templates must have one row per manifest image")
    ok: npt.NDArray[np.bool_] = np.asarray(~np.isnan(t).any(axis=1), dtype=np.bool_)
    balanced = _balanced_images(manifest)
    out: list[KindPairs] = []
    for kind in PAIR_KINDS:
        rows = [p for p in manifest.pairs if p.kind == kind]
        if not rows:
            continue
        subjects = sorted({manifest.images[i].subject for p in rows for i in (p.a, p.b)})
        person = {s: k for k, s in enumerate(subjects)}
        g_pairs = [p for p in rows if p.same]
        kept = [p for p in g_pairs if p.a in balanced and p.b in balanced]
        g_face = [p for p in kept if ok[p.a] and ok[p.b]]
        listed = {(min(p.a, p.b), max(p.a, p.b)) for p in rows if not p.same}
        impostor = set(listed)
        if matched_impostors:
            impostor |= _matched(manifest, kind, subjects)
        imp_face = sorted((a, b) for a, b in impostor if ok[a] and ok[b])

        def dist(a: int, b: int) -> float:
            return float(np.linalg.norm(t[a] - t[b]))

        imp_d = np.array([dist(a, b) for a, b in imp_face])
        images = np.zeros(len(subjects), dtype=np.int64)
        for i in {i for p in rows for i in (p.a, p.b)} | {i for ab in impostor for i in ab}:
            if ok[i] and manifest.images[i].subject in person:
                images[person[manifest.images[i].subject]] += 1
        pairs = PairSet(
            people=tuple(subjects),
            images=images,
            genuine_person=np.array([person[manifest.images[p.a].subject] for p in g_face], dtype=np.int64),
            genuine_distance=np.array([dist(p.a, p.b) for p in g_face]),
            impostor_a=np.array([person[manifest.images[a].subject] for a, _ in imp_face], dtype=np.int64),
            impostor_b=np.array([person[manifest.images[b].subject] for _, b in imp_face], dtype=np.int64),
            impostor_distance=imp_d,
            complete_to=float(imp_d.max()) if imp_d.size else 0.0,
            exhaustive=False,
        )
        out.append(
            KindPairs(
                kind,
                pairs,
                listed_impostors=len(listed),
                matched_impostors=len(impostor) - len(listed),
                genuine_dropped_for_balance=len(g_pairs) - len(kept),
                genuine_without_face=len(kept) - len(g_face),
                impostors_without_face=len(impostor) - len(imp_face),
            )
        )
    return out


def _matched(manifest: ForcePairs, kind: str, subjects: list[str]) -> set[tuple[int, int]]:
    """Every different-subject pair of this kind's images whose subjects share sex and IC code."""
    wanted = set(subjects)
    roles = ("cctv", "custody") if kind == "cctv-custody" else ("custody", "custody")
    first = [i for i, im in enumerate(manifest.images) if im.role == roles[0] and im.subject in wanted]
    second = [i for i, im in enumerate(manifest.images) if im.role == roles[1] and im.subject in wanted]
    out: set[tuple[int, int]] = set()
    for a in first:
        sa = manifest.images[a].subject
        for b in second:
            sb = manifest.images[b].subject
            if sa != sb and manifest.subjects[sa] == manifest.subjects[sb]:
                out.add((min(a, b), max(a, b)))
    return out


def subject_labels(manifest: ForcePairs, subjects: tuple[str, ...]) -> dict[str, list[str | None]]:
    """Per grouping ("sex", "ic_code", "age_range"), each subject's group (None when not recorded or mixed)."""
    out: dict[str, list[str | None]] = {"sex": [], "ic_code": [], "age_range": []}
    for s in subjects:
        rec = manifest.subjects[s]
        out["sex"].append(None if rec.sex == "unknown" else rec.sex)
        out["ic_code"].append(None if rec.ic_code == "IC0" else rec.ic_code)
        age = manifest.subject_age_range(s)
        out["age_range"].append(None if age in (None, "unknown") else age)
    return out


def templates_for(
    manifest: ForcePairs, embed: Callable[[list[Path]], npt.NDArray[np.floating]]
) -> npt.NDArray[np.floating]:
    """Templates of every manifest image, in manifest order, by ``embed`` (paths -> rows, NaN for no face)."""
    rows = embed([im.path for im in manifest.images])
    if rows.shape[0] != len(manifest.images):
        raise ForcePairsError("force pairs: the embedder returned a different number of templates than images")
    return rows
