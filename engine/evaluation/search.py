"""Identification measured without a workspace: a throwaway gallery built in memory from photographs.

``rfr evaluate search`` uses this to measure rank-1 and rank-K on public photographs without
creating, reading or changing any Permitted Image Reference Library. The gallery folder is laid
out as enrolment expects (one subfolder per subject, ``engine.library.enrol.scan_folder``), each
photograph's face is chosen by enrolment's rules (``engine.faces.pipeline.reference_face``: found
at any size, the only face or the clearly dominant one), and every probe is searched by the code
that searches a library (``engine.library.index.MemoryIndex``: the graph beside its exact float32
templates, exact re-ranking, ties by template id). A probe's face is found the same way; with
several faces and none clearly dominant, the officer would choose one in casework, so the
evaluation either reports the probe as not searched (``PROBE_FACE_RULES`` "dominant", the default)
or takes the face nearest the centre in the officer's place ("centre": LFW labels the person at
the centre). A gallery photograph refused as ``several_faces`` is likewise lost (``GALLERY_FACE_RULES``
"rules", the default), or resolved as a person would resolve it at enrolment, by naming a point on
the face ("centre": ``face_at_point`` on the faces already found, the point at the image centre, so
the code that enrols a face a person named is what runs). Templates and decoded images are held only in memory
and never written anywhere.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.errors import ImageError, LibraryError, UsageError
from engine.faces.pipeline import FoundFaces, ReferenceFace, face_at_point, nearest_to_centre, reference_face
from engine.library.enrol import MAX_IMAGE_BYTES, FaceAnalyzer, ImageLoader, Skipped, scan_folder
from engine.library.index import NDIM, Candidate, IndexSettings, MemoryIndex, profile_name, score_from_distance
from engine.scoring import ScoreMeaning

PROBE_FACE_RULES = ("dominant", "centre")
"""Which face of a probe is searched: as enrolment chooses (else no search), or else the one nearest the centre."""

GALLERY_FACE_RULES = ("rules", "centre")
"""A gallery photograph with several faces and none clearly dominant: refused (enrolment's rules), or the face
holding the image centre enrolled as if a person had named it there (``face_x``, ``face_y`` in enrolment metadata)."""

Progress = Callable[[str, int, int], None]
"""Called as (stage "gallery" or "probes", done, total)."""


@dataclass(frozen=True)
class GalleryPhoto:
    """One enrolled gallery photograph: its subject and where it came from (relative to the gallery)."""

    subject: str
    subject_number: int
    image: str


@dataclass
class GalleryReport:
    """What building the gallery did with each photograph."""

    directory: str
    subjects: int = 0
    photos: int = 0
    enrolled: int = 0
    refused: list[Skipped] = field(default_factory=list)
    chose_dominant_face: list[str] = field(default_factory=list)
    face_named_at_centre: list[str] = field(default_factory=list)  # ``gallery_face="centre"``: a person's stand-in
    enlarged: list[str] = field(default_factory=list)  # found only at an enlargement (``find_faces``)

    def to_json(self) -> dict[str, Any]:
        by_reason: dict[str, int] = {}
        for s in self.refused:
            by_reason[s.reason] = by_reason.get(s.reason, 0) + 1
        return {
            "directory": self.directory,
            "subjects": self.subjects,
            "photos": self.photos,
            "enrolled": self.enrolled,
            "refused": len(self.refused),
            "refused_by_reason": by_reason,
            "chose_dominant_face": len(self.chose_dominant_face),
            "face_named_at_centre": len(self.face_named_at_centre),
            "enlarged": len(self.enlarged),
            "refusals": [s.to_json() for s in self.refused],
        }


class Gallery:
    """Reference templates held only in memory, searched as a library is. Close it (or use ``with``)."""

    def __init__(self, name: str, index: MemoryIndex, photos: dict[int, GalleryPhoto], report: GalleryReport) -> None:
        self.name = name
        self.index = index
        self.photos = photos
        self.report = report

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.index.close()
        self.photos.clear()

    @classmethod
    def build(
        cls,
        directory: Path,
        analyzer: FaceAnalyzer,
        loader: ImageLoader,
        *,
        upsample: int = 0,
        gallery_face: str = "rules",
        settings: IndexSettings | None = None,
        progress: Progress | None = None,
    ) -> Gallery:
        """Every photograph of every subject folder of ``directory``, its face chosen as enrolment chooses
        (``gallery_face``: see ``GALLERY_FACE_RULES``)."""
        if gallery_face not in GALLERY_FACE_RULES:
            raise UsageError(f"the gallery face rule is one of {', '.join(GALLERY_FACE_RULES)}, not {gallery_face!r}")
        directory = Path(directory)
        folders, stray = scan_folder(directory)
        report = GalleryReport(str(directory), subjects=len(folders), photos=sum(len(p) for p in folders.values()))
        report.refused.extend(stray)
        photos: dict[int, GalleryPhoto] = {}
        ids: list[int] = []
        vectors: list[NDArray[np.float32]] = []
        seen: set[bytes] = set()
        done = 0
        for number, (subject, paths) in enumerate(folders.items(), start=1):
            for path in paths:
                where = str(path.relative_to(directory))
                outcome = _gallery_template(path, where, analyzer, loader, upsample, seen, gallery_face)
                done += 1
                if progress is not None:
                    progress("gallery", done, report.photos)
                if isinstance(outcome, Skipped):
                    report.refused.append(outcome)
                    continue
                vector, chosen = outcome
                template_id = len(ids) + 1  # enrolment order, as a fresh library's row ids
                ids.append(template_id)
                vectors.append(vector)
                photos[template_id] = GalleryPhoto(subject, number, where)
                if chosen.chose_dominant:
                    report.chose_dominant_face.append(where)
                if chosen.named_by_person:
                    report.face_named_at_centre.append(where)
                if chosen.found.enlarged:
                    report.enlarged.append(where)
        report.enrolled = len(ids)
        if not ids:
            raise LibraryError(f"no photograph in {directory} gave a usable face: the gallery would be empty")
        index = MemoryIndex(settings)
        try:
            index.add(np.asarray(ids, np.uint64), np.stack(vectors))
        except BaseException:
            index.close()
            raise
        return cls(directory.name or str(directory), index, photos, report)

    def search(self, template: NDArray[np.float32], top_k: int) -> tuple[list[Candidate], bool]:
        """The ``top_k`` nearest gallery photographs, and whether comparing every template gives the same list."""
        ranked = self.index.rank(template, top_k)
        exhaustive = self.index.nearest(template, top_k)
        same = bool(np.array_equal(ranked.keys, exhaustive.keys))
        out = []
        for rank, (key, d2) in enumerate(zip(ranked.keys, ranked.d2, strict=True), start=1):
            photo = self.photos[int(key)]
            distance = float(np.sqrt(d2))
            out.append(
                Candidate(
                    rank,
                    score_from_distance(distance),
                    distance,
                    photo.subject,
                    photo.subject_number,
                    int(key),
                    int(key),
                    self.name,
                )
            )
        return out, same

    def index_json(self) -> dict[str, Any]:
        settings = self.index.settings
        return {
            "profile": profile_name(settings),
            "expansion_search": int(self.index.graph.expansion_search),
            "templates": len(self.index),
            "cells": len(self.index.exact.centroids),
        }


def _read_photo(path: Path, loader: ImageLoader, what: str) -> tuple[bytes, NDArray[np.uint8]]:
    """The bytes and decoded RGB of a photograph, with enrolment's size limit; ImageError when unusable."""
    try:
        if not path.is_file():
            raise ImageError(f"{what} {path} does not exist or is not a file")
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise ImageError(f"{what} {path} is {size} bytes; the limit is {MAX_IMAGE_BYTES >> 20} MiB")
        data = path.read_bytes()
    except OSError as exc:
        raise ImageError(f"cannot read {what} {path} ({exc.strerror})") from None
    return data, loader(data, str(path))


def _gallery_template(
    path: Path,
    where: str,
    analyzer: FaceAnalyzer,
    loader: ImageLoader,
    upsample: int,
    seen: set[bytes],
    gallery_face: str = "rules",
) -> Skipped | tuple[NDArray[np.float32], ReferenceFace]:
    try:
        data, rgb = _read_photo(path, loader, "gallery photograph")
    except ImageError as exc:
        return Skipped(where, "unreadable", exc.diagnostics())
    digest = hashlib.sha256(data).digest()
    if digest in seen:
        return Skipped(where, "duplicate", "the same photograph (identical bytes) is already in this gallery")
    seen.add(digest)
    try:
        chosen = reference_face(analyzer, rgb, start=upsample)
        if chosen.reason == "several_faces" and gallery_face == "centre":
            # In a person's place: the point named is the image centre, through the same code as enrolment's.
            centre = ((int(rgb.shape[1]) - 1) // 2, (int(rgb.shape[0]) - 1) // 2)
            chosen = face_at_point(analyzer, rgb, chosen.found, centre)  # the faces already found, not again
    except ImageError as exc:
        return Skipped(where, "unreadable", exc.diagnostics())
    if chosen.face is None:
        return Skipped(where, chosen.reason or "no_face", chosen.detail or "no face found")
    vector = _usable_template(chosen.face.embedding)
    if vector is None:
        return Skipped(where, "no_template", "the face engine returned no usable template for the face")
    return vector, chosen


def _usable_template(embedding: NDArray[Any] | None) -> NDArray[np.float32] | None:
    if embedding is None:
        return None
    vector = np.asarray(embedding, dtype=np.float32)
    return vector if vector.shape == (NDIM,) and bool(np.all(np.isfinite(vector))) else None


def probe_paths(target: Path) -> list[Path]:
    """A probe file, or every file under a probe folder (sorted; hidden ones left out)."""
    if target.is_dir():
        return sorted(
            p
            for p in target.rglob("*")
            if not any(part.startswith(".") for part in p.relative_to(target).parts) and not p.is_dir()
        )
    return [target]


@dataclass(frozen=True)
class ProbeResult:
    """One probe's entry: its candidates, or the error that stopped it (never both)."""

    path: str
    candidates: list[Candidate]
    error: str | None = None
    found: FoundFaces | None = None
    face_chosen: str | None = None  # "only", "dominant" or "centre" (nearest the centre, in the officer's place)
    same_as_exhaustive: bool | None = None

    def to_json(self, gallery: Gallery, meaning: ScoreMeaning | None) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path}
        if self.error is not None:
            out["error"] = self.error
        if self.found is not None and self.found.faces:
            out["faces"] = len(self.found.faces)
            out["upsample"] = self.found.upsample
            if self.found.note:
                out["note"] = self.found.note
        if self.face_chosen is not None:
            out["face_chosen"] = self.face_chosen
        out["candidates"] = [
            {**c.to_json(meaning), "image": gallery.photos[c.template_id].image} for c in self.candidates
        ]
        return out


def search_probe(
    gallery: Gallery,
    path: Path,
    analyzer: FaceAnalyzer,
    loader: ImageLoader,
    top_k: int,
    *,
    upsample: int = 0,
    probe_face: str = "dominant",
) -> ProbeResult:
    """Search one probe; an unreadable probe, or one with no face to search, is an entry with its error."""
    if probe_face not in PROBE_FACE_RULES:
        raise UsageError(f"the probe face rule is one of {', '.join(PROBE_FACE_RULES)}, not {probe_face!r}")
    try:
        _data, rgb = _read_photo(path, loader, "probe image")
        chosen = reference_face(analyzer, rgb, start=upsample)
    except ImageError as exc:
        return ProbeResult(str(path), [], exc.diagnostics())
    found = chosen.found
    face, how = chosen.face, "dominant" if chosen.chose_dominant else "only"
    if face is None and found.faces and probe_face == "centre":
        face, how = nearest_to_centre(found.faces, rgb.shape), "centre"
    if face is None:
        if found.faces:
            why = f"{len(found.faces)} faces found and none clearly dominant (the largest and nearest the centre)"
        else:
            why = found.note or "no face found"
        return ProbeResult(str(path), [], f"{why}: nothing was searched", found)
    vector = _usable_template(face.embedding)
    if vector is None:
        return ProbeResult(str(path), [], "the face engine returned no usable template: nothing was searched")
    candidates, same = gallery.search(vector, top_k)
    return ProbeResult(str(path), candidates, None, found, how, same)


def search_probes(
    gallery: Gallery,
    paths: Sequence[Path],
    analyzer: FaceAnalyzer,
    loader: ImageLoader,
    top_k: int,
    *,
    upsample: int = 0,
    probe_face: str = "dominant",
    progress: Progress | None = None,
) -> list[ProbeResult]:
    """Every probe searched in turn; one that fails is reported in its entry and the batch goes on."""
    results = []
    for done, path in enumerate(paths, start=1):
        results.append(search_probe(gallery, path, analyzer, loader, top_k, upsample=upsample, probe_face=probe_face))
        if progress is not None:
            progress("probes", done, len(paths))
    return results


def evaluation_json(
    gallery: Gallery,
    results: Sequence[ProbeResult],
    meaning: ScoreMeaning | None,
    scoring: dict[str, Any],
    top_k: int,
    notice: str,
    probe_face: str = "dominant",
    gallery_face: str = "rules",
) -> dict[str, Any]:
    """The search JSON of the library search, with what was built and how it was searched."""
    searched = [r for r in results if r.error is None]
    return {
        "probes": [r.to_json(gallery, meaning) for r in results],
        "scoring": scoring,
        "top_k": top_k,
        "probe_face": probe_face,
        "gallery_face": gallery_face,
        "gallery": gallery.report.to_json(),
        "index": {
            **gallery.index_json(),
            "probes_searched": len(searched),
            "same_as_exhaustive": sum(1 for r in searched if r.same_as_exhaustive),
        },
        "notice": notice,
    }
