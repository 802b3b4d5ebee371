#!/usr/bin/env python
"""LFW standard-protocol accuracy of our face engine and of face_recognition, side by side, in one run.

Protocol (engine.evaluation.lfw): the 6,000 pairs of ``lfw/pairs.txt`` in 10 folds; the
labelled person is the face nearest the image centre; ten-fold accuracy (threshold chosen on
nine folds, tested on the tenth), accuracy at dlib's usual 0.6, and the images where no face
was found (their pairs count as "different person").

Systems:
- ``face_recognition`` (development only, needs dlib): its defaults as its users call it,
  ``face_locations(img)`` (HOG detector, upsample 1) then
  ``face_encodings(img, [box], num_jitters=1, model="small")`` (5-point landmarks).
- ``ours``: ``engine.faces.pipeline.FaceEngine.open(device=...).analyze(rgb, upsample=..., embed=True)``.

Both systems get the same pixels: the file decoded to RGB uint8 by Pillow, as
``face_recognition.load_image_file`` does (EXIF orientation ignored; LFW has none).

Usage (from the repository root)::

    .venv/bin/python scripts/eval_lfw.py --jobs 2 --json out/lfw.json
    .venv/bin/python scripts/eval_lfw.py --only face_recognition --limit 200
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from engine.evaluation.lfw import LfwPair, LfwReport, evaluate, load_pairs, nearest_to_centre, pair_distances  # noqa: E402
from engine.faces.types import Box  # noqa: E402

SYSTEMS = ("face_recognition", "ours")


def default_data_root() -> Path:
    return Path(os.environ.get("RFR_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


def load_rgb(path: Path) -> np.ndarray:
    """RGB uint8, decoded exactly as face_recognition.load_image_file does (Pillow, no EXIF rotation)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


# ---- per-process system state (set by the pool initializer) ----

_analyse: Callable[[np.ndarray], tuple[int, np.ndarray | None]] | None = None


def _init_face_recognition() -> Callable[[np.ndarray], tuple[int, np.ndarray | None]]:
    import face_recognition

    def analyse(rgb: np.ndarray) -> tuple[int, np.ndarray | None]:
        locations = face_recognition.face_locations(rgb)  # its default: HOG, upsample 1
        boxes = [Box(left=left, top=top, right=right, bottom=bottom) for top, right, bottom, left in locations]
        index = nearest_to_centre(boxes, rgb.shape[1], rgb.shape[0])
        if index is None:
            return 0, None
        encoding = face_recognition.face_encodings(rgb, [locations[index]], num_jitters=1, model="small")[0]
        return len(boxes), np.asarray(encoding, dtype=np.float64)

    return analyse


def _init_ours(device: str, upsample: int) -> Callable[[np.ndarray], tuple[int, np.ndarray | None]]:
    from engine.faces.pipeline import FaceEngine

    engine = FaceEngine.open(device=device)

    def analyse(rgb: np.ndarray) -> tuple[int, np.ndarray | None]:
        faces = engine.analyze(rgb, upsample=upsample, embed=True)
        index = nearest_to_centre([f.box for f in faces], rgb.shape[1], rgb.shape[0])
        if index is None:
            return 0, None
        embedding = faces[index].embedding
        if embedding is None:
            raise RuntimeError("FaceEngine.analyze(embed=True) returned a face without an embedding")
        return len(faces), np.asarray(embedding, dtype=np.float64)

    return analyse


def _worker_init(system: str, device: str, upsample: int) -> None:
    global _analyse
    _analyse = _init_face_recognition() if system == "face_recognition" else _init_ours(device, upsample)


def _worker_run(job: tuple[str, str]) -> tuple[str, int, np.ndarray | None, str | None]:
    """(relative path, faces found, template of the centre face or None, error or None)."""
    relpath, abspath = job
    assert _analyse is not None
    try:
        n_faces, template = _analyse(load_rgb(Path(abspath)))
    except Exception as exc:  # one bad image must not end a 20-minute run; it is counted and reported
        return relpath, 0, None, f"{type(exc).__name__}: {exc}"
    return relpath, n_faces, template, None


# ---- running and reporting ----


@dataclass
class SystemRun:
    name: str
    description: str
    report: LfwReport
    seconds: float
    several_faces: int
    errors: dict[str, str]
    distances: list[float | None]


def check_importable(system: str) -> str | None:
    """None if the system can run here, else a one-line reason."""
    try:
        if system == "face_recognition":
            import face_recognition  # noqa: F401
        else:
            from engine.faces.pipeline import FaceEngine  # noqa: F401
    except Exception as exc:
        what = "face_recognition (and dlib)" if system == "face_recognition" else "engine.faces.pipeline.FaceEngine"
        other = "ours" if system == "face_recognition" else "face_recognition"
        return f"{system}: {what} is not importable here ({type(exc).__name__}: {exc}); run with --only {other}"
    return None


def run_system(
    system: str, pairs: list[LfwPair], lfw_root: Path, jobs: int, device: str, upsample: int, threshold: float
) -> SystemRun:
    images = sorted({p.first for p in pairs} | {p.second for p in pairs})
    work = [(rel, str(lfw_root / rel)) for rel in images]
    templates: dict[str, np.ndarray | None] = {}
    several = 0
    errors: dict[str, str] = {}
    start = time.perf_counter()
    ctx = multiprocessing.get_context("spawn")  # dlib and OpenVINO do not like being forked after loading
    with ctx.Pool(jobs, initializer=_worker_init, initargs=(system, device, upsample)) as pool:
        for done, (rel, n_faces, template, error) in enumerate(pool.imap_unordered(_worker_run, work, 8), 1):
            templates[rel] = template
            several += n_faces > 1
            if error is not None:
                errors[rel] = error
            if done % 500 == 0 or done == len(work):
                rate = done / (time.perf_counter() - start)
                print(f"  {system}: {done}/{len(work)} images ({rate:.1f}/s)", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start
    report = evaluate(pairs, templates, threshold)
    distances = [float(d) if math.isfinite(d) else None for d in pair_distances(pairs, templates)]
    description = (
        "face_recognition 1.3 defaults: HOG detector upsample 1, 5-point landmarks, num_jitters=1"
        if system == "face_recognition"
        else f"FaceEngine.open(device={device!r}).analyze(upsample={upsample}, embed=True)"
    )
    return SystemRun(system, description, report, seconds, several, errors, distances)


def format_table(runs: list[SystemRun], threshold: float) -> str:
    def pct(x: float) -> str:
        return f"{100 * x:.2f} %"

    rows: list[tuple[str, list[str]]] = [
        ("10-fold accuracy ± std", [f"{pct(r.report.ten_fold.mean)} ± {pct(r.report.ten_fold.std)}" for r in runs]),
        (f"accuracy at {threshold:g}", [pct(r.report.accuracy_at_threshold) for r in runs]),
        (
            "10-fold thresholds (min-max)",
            [f"{min(r.report.ten_fold.thresholds):.4f}-{max(r.report.ten_fold.thresholds):.4f}" for r in runs],
        ),
        ("images with no face", [f"{len(r.report.images_without_face)} of {r.report.images}" for r in runs]),
        ("pairs affected", [f"{r.report.pairs_affected} of {r.report.pairs}" for r in runs]),
        ("images with several faces", [str(r.several_faces) for r in runs]),
        ("images that failed (errors)", [str(len(r.errors)) for r in runs]),
        (
            "time (wall, incl. model load)",
            [f"{r.seconds:.0f} s ({r.report.images / r.seconds:.1f} img/s)" for r in runs],
        ),
    ]
    label_w = max(len(label) for label, _ in rows)
    col_w = max(28, *(len(v) for _, values in rows for v in values), *(len(r.name) for r in runs))
    lines = [" " * label_w + "  " + "  ".join(r.name.ljust(col_w) for r in runs)]
    lines += [label.ljust(label_w) + "  " + "  ".join(v.ljust(col_w) for v in values) for label, values in rows]
    return "\n".join(line.rstrip() for line in lines)


def limit_pairs(pairs: list[LfwPair], limit: int | None) -> list[LfwPair]:
    """Keep the first ``limit // 20`` matched and mismatched pairs of every fold (at least one of each)."""
    if limit is None:
        return pairs
    per_half = max(1, limit // 20)
    kept: list[LfwPair] = []
    counts: dict[tuple[int, bool], int] = {}
    for p in pairs:
        key = (p.fold, p.same)
        if counts.get(key, 0) < per_half:
            counts[key] = counts.get(key, 0) + 1
            kept.append(p)
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-root", type=Path, default=default_data_root(), help="default: $RFR_DATA or ../shared/data"
    )
    parser.add_argument("--only", choices=SYSTEMS, help="run one system only")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--limit", type=int, help="quick run: about this many pairs, spread evenly over the 10 folds")
    parser.add_argument("--json", type=Path, help="write the full results (incl. per-pair distances) here")
    parser.add_argument("--device", default="CPU", help="OpenVINO device for ours (default CPU)")
    parser.add_argument("--upsample", type=int, default=0, help="detector upsampling for ours (default 0)")
    parser.add_argument("--threshold", type=float, default=0.6, help="fixed operating threshold (default 0.6)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be 1 or more")

    systems = [args.only] if args.only else list(SYSTEMS)
    problems = [reason for s in systems if (reason := check_importable(s))]
    if problems:
        for reason in problems:
            print(f"error: {reason}", file=sys.stderr)
        return 2

    lfw_root = args.data_root / "lfw"
    try:
        pairs = limit_pairs(load_pairs(lfw_root / "pairs.txt"), args.limit)
    except Exception as exc:
        diagnostics = getattr(exc, "diagnostics", None)
        print(f"error: {diagnostics() if diagnostics else exc}", file=sys.stderr)
        return 2
    n_images = len({p.first for p in pairs} | {p.second for p in pairs})
    n_folds = len({p.fold for p in pairs})
    print(f"LFW: {len(pairs)} pairs in {n_folds} folds, {n_images} images, from {lfw_root}", file=sys.stderr)

    runs = [run_system(s, pairs, lfw_root, args.jobs, args.device, args.upsample, args.threshold) for s in systems]
    print()
    print(f"LFW standard protocol: {len(pairs)} pairs in {n_folds} folds, {n_images} images, jobs={args.jobs}")
    print(format_table(runs, args.threshold))
    for run in runs:
        for rel, error in sorted(run.errors.items()):
            print(f"{run.name}: {rel}: {error}", file=sys.stderr)

    if args.json:
        out: dict[str, Any] = {
            "protocol": {
                "pairs_file": str(lfw_root / "pairs.txt"),
                "pairs": len(pairs),
                "folds": n_folds,
                "images": n_images,
                "limit": args.limit,
                "jobs": args.jobs,
                "decision": "same person iff finite distance <= threshold; no face => distance +inf (null here)",
                "multiple_faces": "the face whose box centre is nearest the image centre",
            },
            "systems": {
                r.name: {
                    "description": r.description,
                    **r.report.to_json(),
                    "images_with_several_faces": r.several_faces,
                    "errors": r.errors,
                    "seconds": r.seconds,
                    "distances": r.distances,
                }
                for r in runs
            },
            "pairs": [[p.first, p.second, p.same, p.fold] for p in pairs],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
