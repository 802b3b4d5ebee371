"""Parity with dlib: the converted models give dlib's boxes, landmarks and descriptors.

The reference is ``tests/fixtures/dlib_reference.json``, recorded from dlib 20.0.1 by
``scripts/make_reference_fixtures.py`` on real photographs from the shared data, so this
test needs no dlib. Images are decoded as dlib's Python tools decode them (no EXIF
rotation, alpha dropped) and the decoded pixels are checked against the recorded hash, so
a difference can only come from the engine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from engine.faces.pipeline import FaceEngine
from engine.faces.types import Box, Detection

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "dlib_reference.json"


@dataclass
class Case:
    path: str
    rgb: np.ndarray
    detections: dict[int, list[dict[str, Any]]]


def _decode_like_dlib(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    assert bgr is not None, f"cannot decode {path}"
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


@pytest.fixture(scope="module")
def cases(data_root: Path) -> list[Case]:
    doc = json.loads(FIXTURE.read_text())
    out = []
    for item in doc["images"]:
        rgb = _decode_like_dlib(data_root / item["path"])
        assert hashlib.sha256(rgb.tobytes()).hexdigest() == item["pixels_sha256"], (
            f"{item['path']} decodes differently from the recording: re-run scripts/make_reference_fixtures.py"
        )
        dets = {int(k): v for k, v in item["detections"].items() if v is not None}
        out.append(Case(item["path"], rgb, dets))
    assert len(out) >= 90 and sum(len(c.detections.get(0, [])) for c in out) >= 100
    return out


@pytest.fixture(scope="module")
def engine() -> FaceEngine:
    return FaceEngine.open("CPU")


def _box(b: list[int]) -> Box:
    return Box(*b)


def iou(a: Box, b: Box) -> float:
    ix = min(a.right, b.right) - max(a.left, b.left) + 1
    iy = min(a.bottom, b.bottom) - max(a.top, b.top) + 1
    inter = max(0, ix) * max(0, iy)
    return inter / float(a.area + b.area - inter)


def _all_reference_faces(cases: list[Case]) -> list[tuple[Case, dict[str, Any]]]:
    return [(c, d) for c in cases for up in c.detections for d in c.detections[up]]


def test_embedding_from_dlibs_landmarks_is_within_0_001_of_dlib(cases: list[Case], engine: FaceEngine) -> None:
    worst = 0.0
    faces = _all_reference_faces(cases)
    for case, ref in faces:
        pts = np.array(ref["landmarks"], dtype=np.int64)[None]
        ours = engine.embed_chips(engine.chips(case.rgb, pts))[0]
        dist = float(np.linalg.norm(ours - np.array(ref["descriptor"], dtype=np.float32)))
        worst = max(worst, dist)
        assert dist < 0.001, f"{case.path} box {ref['box']}: descriptor {dist:.6f} from dlib's"
    print(f"descriptor parity: {len(faces)} faces, worst euclidean distance {worst:.2e}")


def test_landmarks_equal_dlibs_for_at_least_99_percent_of_boxes(cases: list[Case], engine: FaceEngine) -> None:
    faces = _all_reference_faces(cases)
    equal = sum(
        np.array_equal(engine.landmarks(case.rgb, [_box(ref["box"])])[0], np.array(ref["landmarks"]))
        for case, ref in faces
    )
    print(f"landmark parity: {equal}/{len(faces)} boxes give dlib's integer points")
    assert equal / len(faces) >= 0.99


@pytest.mark.parametrize("upsample", [0, 1])
def test_detector_finds_dlibs_faces_and_the_pipeline_embeds_them_alike(
    cases: list[Case], engine: FaceEngine, upsample: int
) -> None:
    matched = total = extra = 0
    worst_conf = worst_embed = 0.0
    for case in cases:
        refs = case.detections.get(upsample)
        if refs is None:
            continue
        ours = engine.detect(case.rgb, upsample=upsample)
        total += len(refs)
        used: set[int] = set()
        for ref in refs:
            rbox = _box(ref["box"])
            best = max(range(len(ours)), key=lambda i: iou(ours[i].box, rbox), default=None)
            if best is None or best in used or iou(ours[best].box, rbox) < 0.9:
                continue
            used.add(best)
            matched += 1
            worst_conf = max(worst_conf, abs(ours[best].confidence - ref["confidence"]))
            face = engine.faces_at(case.rgb, [ours[best]], quality=False)[0]
            assert face.embedding is not None
            dist = float(np.linalg.norm(face.embedding - np.array(ref["descriptor"], dtype=np.float32)))
            worst_embed = max(worst_embed, dist)
            assert dist < 0.01, f"{case.path}: pipeline descriptor {dist:.4f} from dlib's"
        extra += len(ours) - len(used)
    print(
        f"detector parity (upsample {upsample}): {matched}/{total} of dlib's faces found at IoU>=0.9, "
        f"{extra} extra; worst confidence difference {worst_conf:.1e}; worst pipeline descriptor distance "
        f"{worst_embed:.1e}"
    )
    assert total >= 100
    assert matched / total >= 0.95


def test_no_face_is_an_empty_result(data_root: Path, engine: FaceEngine) -> None:
    dogs = _decode_like_dlib(data_root / "examples" / "dlib" / "faces" / "dogs.jpg")
    assert engine.analyze(dogs) == []


def test_detections_are_most_confident_first(cases: list[Case], engine: FaceEngine) -> None:
    group = next(c for c in cases if c.path.endswith("bald_guys.jpg"))
    dets: list[Detection] = engine.detect(group.rgb)
    assert len(dets) == len(group.detections[0]) >= 4
    assert [d.confidence for d in dets] == sorted((d.confidence for d in dets), reverse=True)
