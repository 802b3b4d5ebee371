"""The evaluation protocol: which people choose the threshold, which people every stated rate comes from.

A rate measured on the pairs that chose the threshold flatters the threshold. So LFW's people are
split by LFW's own ten folds (``people.txt``: the first line is the number of folds, then for each
fold a count line and ``name<TAB>images`` lines):

- folds 1-5 are the DERIVATION people: the operating threshold is chosen (and any normaliser fitted)
  on them alone;
- folds 6-10 are the STATEMENT people, held out: every rate stated to a person comes from them.

Pairs within one half (people never cross halves):

- genuine: at most ``MAX_IMAGES_PER_PERSON`` images per person (the first ones by image number that
  have a face and are not a documented label error), every pair of those, so one person with 530
  images cannot stand for half of all genuine pairs;
- impostor: every pair of images (all of them) of two different people of the half, except two
  names of one person (``engine.evaluation.label_errors``).

Images without a face take part in no pair; they are counted and reported. People in no fold are
excluded and counted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engine.errors import RfrError
from engine.evaluation.label_errors import LabelErrors

DERIVATION_FOLDS = frozenset(range(1, 6))
STATEMENT_FOLDS = frozenset(range(6, 11))
MAX_IMAGES_PER_PERSON = 10
PEOPLE_FILE = "people.txt"

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class ProtocolError(RfrError):
    """LFW's people.txt is missing or not in its published format, or the templates do not fit it."""


def parse_folds(text: str, source: str = "people.txt") -> dict[str, int]:
    """Person -> fold (1-based) from the text of ``people.txt``."""
    lines = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]

    def whole(value: str, n: int) -> int:
        if not value.isdigit():
            raise ProtocolError(f"{source} line {n}: expected a count, got {value!r}; use LFW's people.txt")
        return int(value)

    if not lines:
        raise ProtocolError(f"{source} is empty; use LFW's people.txt")
    folds = whole(lines[0][1], lines[0][0])
    if folds < 1:
        raise ProtocolError(f"{source} line 1: number of folds must be 1 or more")
    out: dict[str, int] = {}
    at = 1
    for fold in range(1, folds + 1):
        if at >= len(lines):
            raise ProtocolError(f"{source} ends before fold {fold} of {folds}; use the complete people.txt")
        count = whole(lines[at][1], lines[at][0])
        at += 1
        for _ in range(count):
            if at >= len(lines):
                raise ProtocolError(f"{source} ends inside fold {fold}; use the complete people.txt")
            n, line = lines[at]
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise ProtocolError(f"{source} line {n}: expected 'name<TAB>images', got {line!r}")
            if parts[0] in out:
                raise ProtocolError(f"{source} line {n}: {parts[0]} is in two folds")
            out[parts[0]] = fold
            at += 1
    if at != len(lines):
        raise ProtocolError(f"{source} line {lines[at][0]}: text after the last fold")
    return out


def load_folds(lfw_root: Path) -> dict[str, int]:
    """Person -> fold (1-10) from ``<lfw_root>/people.txt``."""
    path = Path(lfw_root) / PEOPLE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        why = exc.strerror or exc
        raise ProtocolError(f"cannot read {path} ({why}); set RFR_DATA to the folder holding lfw/") from None
    return parse_folds(text, str(path))


@dataclass(frozen=True)
class HalfImages:
    """The images of one half that take part in pairs, and what was left out."""

    name: str  # "derivation" or "statement"
    folds: frozenset[int]
    rows: IntArray  # indices into the templates, sorted by person then image number
    owner: IntArray  # per row: index into ``people``
    people: tuple[str, ...]  # people of the half with at least one usable image, sorted
    balanced: npt.NDArray[np.bool_]  # per row: among the person's first MAX_IMAGES_PER_PERSON usable images
    same_person: frozenset[tuple[int, int]]  # owner index pairs that are one person (never impostors)
    images: int  # every image of the half's people
    images_without_face: int
    label_error_images: int  # usable images dropped as documented label errors

    def describe(self) -> str:
        first, last = min(self.folds), max(self.folds)
        return (
            f"LFW people.txt folds {first}-{last}: {len(self.people):,} people, {self.rows.size:,} images with a face"
        )


def split_half(
    images: Sequence[str],
    persons: Sequence[str],
    ok: npt.NDArray[np.bool_],
    folds: Mapping[str, int],
    half: frozenset[int],
    label_errors: LabelErrors,
    name: str,
) -> HalfImages:
    """The images of the people in ``half`` folds that take part in pairs (face found, not a label error)."""
    if not (len(images) == len(persons) == ok.shape[0]):
        raise ProtocolError("templates: images, persons and ok must have one entry per image")
    order = sorted(range(len(images)), key=lambda i: (persons[i], images[i]))
    in_half = [i for i in order if folds.get(persons[i]) in half]
    without_face = sum(1 for i in in_half if not ok[i])
    usable = [i for i in in_half if ok[i]]
    dropped = [i for i in usable if label_errors.excludes_image(images[i])]
    kept = [i for i in usable if not label_errors.excludes_image(images[i])]
    people = tuple(sorted({persons[i] for i in kept}))
    index = {p: k for k, p in enumerate(people)}
    owner = np.array([index[persons[i]] for i in kept], dtype=np.int64)
    balanced = np.zeros(len(kept), dtype=bool)
    seen: dict[int, int] = {}
    for r, o in enumerate(owner.tolist()):
        seen[o] = seen.get(o, 0) + 1
        balanced[r] = seen[o] <= MAX_IMAGES_PER_PERSON
    same = frozenset(
        (min(index[a], index[b]), max(index[a], index[b]))
        for pair in label_errors.same_person
        for a, b in [sorted(pair)]
        if a in index and b in index
    )
    return HalfImages(
        name=name,
        folds=half,
        rows=np.array(kept, dtype=np.int64),
        owner=owner,
        people=people,
        balanced=balanced,
        same_person=same,
        images=len(in_half),
        images_without_face=without_face,
        label_error_images=len(dropped),
    )


def genuine_distances(vectors: npt.NDArray[np.floating], half: HalfImages) -> FloatArray:
    """Euclidean distance of every same-person pair of the half's balanced images (float64)."""
    rows, owner = half.rows[half.balanced], half.owner[half.balanced]
    x = np.asarray(vectors[rows], dtype=np.float64)
    out: list[FloatArray] = []
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]]) if owner.size else np.array([], dtype=np.int64)
    ends = np.r_[starts[1:], owner.size]
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if e - s < 2:
            continue
        block = x[s:e]
        d = np.sqrt(np.maximum(((block[:, None, :] - block[None, :, :]) ** 2).sum(-1), 0.0))
        i, j = np.triu_indices(e - s, k=1)
        out.append(d[i, j])
    return np.concatenate(out) if out else np.empty(0)


def genuine_people(half: HalfImages) -> int:
    """People of the half with at least two balanced images (those behind the genuine pairs)."""
    counts = np.bincount(half.owner[half.balanced], minlength=len(half.people))
    return int(np.count_nonzero(counts >= 2))


def impostor_distances(vectors: npt.NDArray[np.floating], half: HalfImages, chunk: int = 512) -> FloatArray:
    """Euclidean distance of every pair of images of two different people of the half (float64), in chunks."""
    x = np.asarray(vectors[half.rows], dtype=np.float64)
    owner = half.owner
    n = x.shape[0]
    per = np.bincount(owner, minlength=len(half.people)).astype(np.int64)
    same_total = int(np.sum(per * (per - 1) // 2))
    cross_same = sum(int(per[a] * per[b]) for a, b in half.same_person)
    total = n * (n - 1) // 2 - same_total - cross_same
    out = np.empty(total, dtype=np.float64)
    forbid = np.full(len(half.people), -1, dtype=np.int64)  # one alias per person is all the errata hold
    for a, b in half.same_person:
        forbid[a], forbid[b] = b, a
    sq = np.einsum("ij,ij->i", x, x)
    at = 0
    for r0 in range(0, n, chunk):
        r1 = min(n, r0 + chunk)
        d2 = sq[r0:r1, None] + sq[None, r0:] - 2.0 * (x[r0:r1] @ x[r0:].T)
        np.maximum(d2, 0.0, out=d2)
        keep = np.arange(r0, n)[None, :] > np.arange(r0, r1)[:, None]
        keep &= owner[r0:r1, None] != owner[None, r0:]
        keep &= forbid[owner[r0:r1]][:, None] != owner[None, r0:]
        values = np.sqrt(d2[keep])
        out[at : at + values.size] = values
        at += values.size
    if at != total:
        raise ProtocolError(f"internal: {at} impostor pairs computed, {total} expected")
    return out


@dataclass(frozen=True)
class Split:
    """Both halves of LFW under the protocol, and what was left out of both."""

    derivation: HalfImages
    statement: HalfImages
    people_in_no_fold: int
    label_errors: LabelErrors
    seconds: float = 0.0


def split(
    images: Sequence[str],
    persons: Sequence[str],
    ok: npt.NDArray[np.bool_],
    folds: Mapping[str, int],
    label_errors: LabelErrors,
) -> Split:
    """Derivation and statement halves of the images (see the module docstring)."""
    start = time.perf_counter()
    known = set(persons)
    if not known & set(folds):
        raise ProtocolError("no person of the templates is in people.txt; point at the same LFW copy")
    return Split(
        derivation=split_half(images, persons, ok, folds, DERIVATION_FOLDS, label_errors, "derivation"),
        statement=split_half(images, persons, ok, folds, STATEMENT_FOLDS, label_errors, "statement"),
        people_in_no_fold=len(known - set(folds)),
        label_errors=label_errors,
        seconds=time.perf_counter() - start,
    )
