"""``rfr faces detect|embed|compare``: the face engine on image files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.cli import emit
from engine.errors import ImageError, RfrError
from engine.faces.embed import l2_distance
from engine.faces.image_io import load_image
from engine.faces.pipeline import MAX_UPSAMPLE, FaceEngine, largest_face
from engine.faces.types import Face
from engine.library.index import score_from_distance
from engine.policy import load_default_policy
from engine.scoring import INTELLIGENCE_LEAD, ScoreMeaning, ScoreView
from engine.scoring.meaning import HIDDEN_NOTE


def register(sub: Any) -> None:
    faces = sub.add_parser("faces", help="find, measure and compare faces in image files")
    fsub = faces.add_subparsers(dest="faces_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--upsample",
            type=int,
            default=0,
            metavar="N",
            help=f"upsample the image N times (0-{MAX_UPSAMPLE}) to find small faces, e.g. CCTV stills",
        )
        p.add_argument("--device", default=None, help="inference device: AUTO (default), CPU, GPU or NPU")
        p.add_argument("--json", action="store_true", help="machine-readable output")

    d = fsub.add_parser("detect", help="faces with boxes, confidence, 5 landmarks and quality")
    d.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    common(d)
    d.set_defaults(handler=lambda a: _run_images(a, embed=False))

    e = fsub.add_parser("embed", help="as detect, plus the 128-d template of each face")
    e.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    common(e)
    e.set_defaults(handler=lambda a: _run_images(a, embed=True))

    c = fsub.add_parser("compare", help="distance between the largest faces of two images")
    c.add_argument("image_a", type=Path, metavar="IMAGE_A")
    c.add_argument("image_b", type=Path, metavar="IMAGE_B")
    common(c)
    c.set_defaults(handler=_compare)


def _analyze(engine: FaceEngine, path: Path, upsample: int, embed: bool) -> list[Face]:
    image = load_image(path)
    return engine.analyze(image.rgb, upsample=upsample, embed=embed)


def _face_line(i: int, face: Face) -> str:
    b = face.box
    line = f"  face {i + 1}: box ({b.left},{b.top})-({b.right},{b.bottom}) confidence {face.confidence:.3f}"
    if face.quality is not None:
        for warning in face.quality.warnings:
            line += f"\n    quality: {warning}"
    return line


def _run_images(args: argparse.Namespace, embed: bool) -> int:
    engine = FaceEngine.open(args.device)
    images: list[dict[str, Any]] = []
    lines: list[str] = []
    failed = 0
    for path in args.images:
        try:
            faces = _analyze(engine, path, args.upsample, embed)
        except ImageError as exc:
            failed += 1
            images.append({"path": str(path), "error": exc.diagnostics()})
            lines.append(f"{path}: error: {exc.diagnostics()}")
            continue
        images.append({"path": str(path), "faces": [f.to_json(with_embedding=embed) for f in faces]})
        lines.append(f"{path}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
        lines.extend(_face_line(i, f) for i, f in enumerate(faces))
    payload = {"device": engine.device_used, "model": _model(engine), "images": images}
    emit(args, payload, "\n".join(lines))
    if failed:
        first = next(img["error"] for img in images if "error" in img)
        sys.stderr.write(f"rfr: {failed} of {len(images)} images could not be read; first: {first}\n")
        return 1
    return 0


def _model(engine: FaceEngine) -> dict[str, str]:
    return {"id": engine.model_id, "sha256": engine.model_sha256}


def _compare(args: argparse.Namespace) -> int:
    engine = FaceEngine.open(args.device)
    chosen: list[tuple[Path, Face]] = []
    for path in (args.image_a, args.image_b):
        face = largest_face(_analyze(engine, path, args.upsample, embed=True))
        if face is None:
            raise RfrError(f"no face found in {path}: try --upsample 1 for small faces, or another image")
        chosen.append((path, face))
    (pa, fa), (pb, fb) = chosen
    assert fa.embedding is not None and fb.embedding is not None
    policy = load_default_policy()
    meaning = ScoreMeaning.load(policy, engine.model_id, engine.model_sha256)
    view = ScoreView.of(policy, meaning)  # the policy's score_display, here as everywhere a score is shown
    distance = float(l2_distance(fa.embedding, fb.embedding))
    similarity = score_from_distance(distance)
    payload = {
        "device": engine.device_used,
        "model": _model(engine),
        "a": {"path": str(pa), "face": fa.to_json()},
        "b": {"path": str(pb), "face": fb.to_json()},
        "score_display": view.show,
        "score": {**view.fields(similarity, distance), **({} if view.hidden else meaning.versions())},
        "note": INTELLIGENCE_LEAD,
    }
    if view.hidden:
        text = f"{HIDDEN_NOTE}\n{INTELLIGENCE_LEAD}"
    else:
        text = (
            f"{view.words(similarity, distance)}.\n"
            + ("" if view.show == "estimated_false_match_rate" else f"{view.note()}\n")
            + f"{view.threshold_words(distance)} of policy {meaning.policy_version}.\n"
            f"{INTELLIGENCE_LEAD}"
        )
    emit(args, payload, text)
    return 0
