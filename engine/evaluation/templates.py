"""Templates of every LFW image, made in memory by the face engine (never written to disk).

Each image of ``lfw/images`` is analysed by ``FaceEngine`` in worker processes; the labelled person is
the face nearest the image centre (as ``engine.evaluation.lfw`` does). An image with no face, or one
the engine cannot read, gets a row of NaN and ``ok`` False; it is counted, never silently dropped.
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.errors import RfrError, UsageError
from engine.evaluation.lfw import nearest_to_centre

TEMPLATE_SIZE = 128
IMAGES_DIR = "images"


@dataclass(frozen=True)
class LfwTemplates:
    """One row per image, sorted by person then image number; in memory only (templates are biometric)."""

    images: list[str]  # "Person/Person_0001.jpg", relative to lfw/images
    persons: list[str]  # the labelled person of each image
    templates: npt.NDArray[np.float32]  # (n, 128); NaN rows where no face
    ok: npt.NDArray[np.bool_]  # (n,) a face was found and embedded
    model_id: str
    model_sha256: str
    several_faces: int = 0  # images where more than one face was found (the centre one was used)
    errors: dict[str, str] = field(default_factory=dict)  # image -> why it could not be read
    seconds: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.images)
        if len(self.persons) != n or self.templates.shape != (n, TEMPLATE_SIZE) or self.ok.shape != (n,):
            raise UsageError("LfwTemplates: images, persons, templates and ok must have one entry per image")

    @cached_property
    def people(self) -> list[str]:
        """The distinct people, sorted."""
        return sorted(set(self.persons))

    @cached_property
    def owner(self) -> npt.NDArray[np.int64]:
        """Per image: its person's index in ``people``."""
        index = {p: i for i, p in enumerate(self.people)}
        return np.array([index[p] for p in self.persons], dtype=np.int64)

    @property
    def images_without_face(self) -> int:
        return int((~self.ok).sum())


def list_images(lfw_root: Path, limit: int | None = None) -> tuple[list[str], list[str]]:
    """Images (``Person/Person_NNNN.jpg``) and their people, sorted; ``limit``: whole people until that many images."""
    folder = Path(lfw_root) / IMAGES_DIR
    if not folder.is_dir():
        raise UsageError(f"no LFW images at {folder}; set RFR_DATA to the folder holding lfw/ (or pass --data-root)")
    images: list[str] = []
    persons: list[str] = []
    for person_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(f.name for f in person_dir.glob("*.jpg"))
        if not files:
            continue
        if limit is not None and images and len(images) + len(files) > limit:
            break
        images += [f"{person_dir.name}/{f}" for f in files]
        persons += [person_dir.name] * len(files)
    if not images:
        raise UsageError(f"no .jpg images under {folder}; point at an LFW copy")
    return images, persons


_engine: Any = None


def _worker_init(device: str) -> None:
    global _engine
    from engine.faces.pipeline import FaceEngine

    _engine = FaceEngine.open(device=device)


def _worker_run(job: tuple[int, str, int]) -> tuple[int, int, npt.NDArray[np.float32] | None, str | None]:
    """(index, faces found, template of the centre face or None, error or None)."""
    from engine.faces.image_io import load_image

    index, path, upsample = job
    try:
        rgb = load_image(Path(path)).rgb
        faces = _engine.analyze(rgb, upsample=upsample, embed=True, quality=False)
    except RfrError as exc:  # an unreadable image is counted and reported, like an image with no face
        return index, 0, None, exc.diagnostics()
    chosen = nearest_to_centre([f.box for f in faces], rgb.shape[1], rgb.shape[0])
    if chosen is None:
        return index, 0, None, None
    return index, len(faces), np.asarray(faces[chosen].embedding, dtype=np.float32), None


def compute_templates(
    lfw_root: Path,
    jobs: int = 2,
    device: str = "CPU",
    limit: int | None = None,
    *,
    upsample: int = 0,
    progress: bool = True,
) -> LfwTemplates:
    """Template of the centre face of every LFW image (``limit``: whole people, in name order, up to that many)."""
    from engine.faces.pipeline import FaceEngine

    if jobs < 1:
        raise UsageError(f"jobs must be 1 or more, got {jobs}")
    lfw_root = Path(lfw_root)
    images, persons = list_images(lfw_root, limit)
    probe = FaceEngine.open(device=device)  # fails here, once, with a clear message if the models are wrong
    model_id, model_sha256 = probe.model_id, probe.model_sha256
    del probe
    vectors = np.full((len(images), TEMPLATE_SIZE), np.nan, dtype=np.float32)
    several = 0
    errors: dict[str, str] = {}
    start = time.perf_counter()
    work = [(i, str(lfw_root / IMAGES_DIR / rel), upsample) for i, rel in enumerate(images)]
    ctx = multiprocessing.get_context("spawn")  # OpenVINO must not be forked after loading
    with ctx.Pool(jobs, initializer=_worker_init, initargs=(device,)) as pool:
        for done, (i, n_faces, template, error) in enumerate(pool.imap_unordered(_worker_run, work, 16), 1):
            if template is not None:
                vectors[i] = template
            several += n_faces > 1
            if error is not None:
                errors[images[i]] = error
            if progress and (done % 1000 == 0 or done == len(work)):
                rate = done / (time.perf_counter() - start)
                print(f"  templates: {done}/{len(work)} images ({rate:.1f}/s)", file=sys.stderr, flush=True)
    ok = ~np.isnan(vectors[:, 0])
    return LfwTemplates(
        images=images,
        persons=persons,
        templates=vectors,
        ok=ok,
        model_id=model_id,
        model_sha256=model_sha256,
        several_faces=several,
        errors=errors,
        seconds=time.perf_counter() - start,
    )
