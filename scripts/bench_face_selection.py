#!/usr/bin/env python3
"""Which face a reference photograph is of, measured on LFW: small faces, and the dominant-face rule.

    .venv/bin/python scripts/bench_face_selection.py [--small 300] [--jobs 2] [--skip-dominant]

1. Small faces (``engine.faces.pipeline.find_faces``): ``--small`` people drawn with
   ``default_rng(150)`` from all LFW people sorted by name, each one's first photograph shrunk whole
   to 150x150 (OpenCV INTER_AREA; faces about 60 px, as in many CCTV stills): faces found at the
   detector's own size, and by ``find_faces`` (enlarging 2x, then 4x, only when nothing is found).
2. The dominant-face rule (``dominant_face``): every LFW photograph at upsampling 0. For each
   photograph with two or more faces, the face that is the labelled person is known where the
   person has other photographs with a single face: the face whose median distance to those is
   smallest, if below 0.6. For each area ratio, the photographs where a face is chosen (visible
   area at least that ratio times every other's, with and without also being strictly nearest
   the centre), and how many of the choices that can be checked chose the wrong person. The box
   area is shown beside the visible area for comparison.

Templates are held in memory only; nothing is written. A benchmark, not a test (about 10 minutes
on 2 cores for part 2).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("RFR_DATA", REPO.parent / "shared" / "data")).resolve()
IMAGES = DATA / "lfw" / "images"
RATIOS = (1.2, 1.44, 1.5, 2.0, 2.5)
SAME_PERSON = 0.6

_engine: Any = None


def _init() -> None:
    global _engine
    from engine.faces.pipeline import FaceEngine

    _engine = FaceEngine.open("CPU")


def _load(path: Path) -> np.ndarray:
    from engine.library.enrol import load_rgb

    return load_rgb(path.read_bytes(), str(path))


def small_faces(count: int) -> str:
    import cv2

    from engine.faces.pipeline import find_faces

    _init()
    people = sorted(p.name for p in IMAGES.iterdir() if p.is_dir())
    chosen = [people[i] for i in sorted(np.random.default_rng(150).choice(len(people), count, replace=False))]
    at_own_size = 0
    levels: dict[int, int] = {}
    for name in chosen:
        rgb = _load(sorted((IMAGES / name).glob("*.jpg"))[0])
        small = np.asarray(cv2.resize(rgb, (150, 150), interpolation=cv2.INTER_AREA), dtype=np.uint8)
        at_own_size += bool(_engine.analyze(small, upsample=0, embed=False))
        found = find_faces(_engine, small, embed=False)
        if found.faces:
            levels[found.upsample] = levels.get(found.upsample, 0) + 1
    by_level = ", ".join(f"{n} at {2**level}x" if level else f"{n} at 1x" for level, n in sorted(levels.items()))
    return (
        f"small faces: {count} LFW photographs shrunk to 150x150: a face at the detector's own size in "
        f"{at_own_size}; with find_faces in {sum(levels.values())} ({by_level})"
    )


def _faces(path: Path) -> tuple[str, tuple[int, int], list[tuple[Any, np.ndarray]]]:
    rgb = _load(path)
    faces = _engine.analyze(rgb, upsample=0, embed=True, quality=False)
    return path.parent.name, (int(rgb.shape[0]), int(rgb.shape[1])), [(f.box, f.embedding) for f in faces]


def dominant_rule(jobs: int) -> str:
    from engine.faces.pipeline import visible_area

    paths = sorted(IMAGES.glob("*/*.jpg"))
    # spawn: a forked copy of a process that has opened OpenVINO (part 1) dies in its thread pool
    with multiprocessing.get_context("spawn").Pool(jobs, initializer=_init) as pool:
        results = dict(zip(paths, pool.map(_faces, paths, chunksize=32), strict=True))
    singles: dict[str, list[tuple[Path, np.ndarray]]] = {}
    for path, (person, _shape, faces) in results.items():
        if len(faces) == 1:
            singles.setdefault(person, []).append((path, faces[0][1]))
    rows: list[tuple[list[Any], tuple[int, int], int | None]] = []
    for path, (person, shape, faces) in results.items():
        if len(faces) < 2:
            continue
        others = [v for p, v in singles.get(person, []) if p != path]
        truth = None
        if others:
            medians = [float(np.median([np.linalg.norm(e - o) for o in others])) for _, e in faces]
            best = int(np.argmin(medians))
            truth = best if medians[best] < SAME_PERSON else None
        rows.append(([b for b, _ in faces], shape, truth))
    checkable = sum(t is not None for *_, t in rows)
    lines = [
        f"dominant face: {len(results)} LFW photographs at upsampling 0, {len(rows)} with 2+ faces, {checkable} "
        "of them checkable (the person has other single-face photographs within 0.6 of one face)",
        "area  ratio | centre too | chosen | checkable | wrong",
    ]
    for label, area in (("visible", lambda b, s: visible_area(b, s)), ("box", lambda b, s: b.area)):
        for ratio in RATIOS:
            for centre in (True, False):
                chosen = [r for r in rows if _choice(r[0], r[1], area, ratio, centre) is not None]
                checked = [r for r in chosen if r[2] is not None]
                wrong = sum(_choice(r[0], r[1], area, ratio, centre) != r[2] for r in checked)
                lines.append(f"{label:7} {ratio:4} | {centre!s:10} | {len(chosen):6} | {len(checked):9} | {wrong:5}")
    return "\n".join(lines)


def _choice(
    boxes: Sequence[Any], shape: tuple[int, int], area: Callable[[Any, Any], int], ratio: float, centre: bool
) -> int | None:
    """The index of the face the rule chooses, or None (``dominant_face`` with the area and ratio given)."""
    order = sorted(range(len(boxes)), key=lambda i: area(boxes[i], shape), reverse=True)
    if area(boxes[order[0]], shape) < ratio * area(boxes[order[1]], shape):
        return None
    if not centre:
        return order[0]
    cy, cx = (shape[0] - 1) / 2, (shape[1] - 1) / 2

    def off(i: int) -> float:
        x, y = boxes[i].center
        return float((x - cx) ** 2 + (y - cy) ** 2)

    return order[0] if off(order[0]) < min(off(i) for i in order[1:]) else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=300, help="photographs for the small-face figure (0: skip)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-dominant", action="store_true", help="only the small-face figure")
    args = parser.parse_args()
    started = time.monotonic()
    if args.small:
        print(small_faces(args.small), flush=True)
    if not args.skip_dominant:
        print(dominant_rule(args.jobs), flush=True)
    print(f"{time.monotonic() - started:.0f} s on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
