#!/usr/bin/env python
"""Record dlib's 5-point landmarks and face chips on real photographs, as test fixtures.

Development only: needs ``dlib`` (PyPI ``dlib-bin``) and the ``face_recognition_models``
files. The tests read only the JSON this writes (``tests/fixtures/dlib_landmarks_chips.json``)
and so need no dlib; they check ``engine.faces.landmarks`` and ``engine.faces.align``
against it.

Images come from the data root (``$RFR_DATA`` or ``../shared/data``) and are decoded with
OpenCV exactly as the tests decode them: ``cv2.imread(path, IMREAD_COLOR |
IMREAD_IGNORE_ORIENTATION)`` then BGR to RGB. The sha256 of each decoded array is recorded
so a test can tell a decoder difference from an engine regression.

Recorded:
- ``landmarks``: for every face dlib's CNN detector finds (``mmod_human_face_detector``,
  upsample 1 for small images, 0 for large ones; at most ``MAX_FACES_PER_IMAGE``) the box and
  ``dlib.shape_predictor``'s 5 points; plus, per image, one jittered box and one box pushed half off the image edge.
- ``chips``: ``dlib.get_face_chip(img, shape, size, padding)`` for real landmark sets (including
  the large faces that go through dlib's pyramid) and for rotated, scaled and off-image
  variants of them: the sha256 of the chip bytes (C order), a few pixel values, and the
  pyramid level dlib samples from (-1 = the image itself).

The script also reports how the numpy implementations agree with what it records.

Usage (from the repository root)::

    .venv/bin/python scripts/make_alignment_fixtures.py
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import dlib
import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from engine.faces.align import extract_face_chip  # noqa: E402
from engine.faces.dlib_format import read_shape_predictor  # noqa: E402
from engine.faces.landmarks import ShapePredictor  # noqa: E402
from engine.faces.types import Box  # noqa: E402

DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "dlib_landmarks_chips.json"
FORMAT_VERSION = 1
DECODER = "cv2.imread(path, IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION), BGR to RGB"

# (image, CNN upsample): small and large faces, several faces, a face cut by the edge, a PNG.
NAMED_IMAGES = [
    ("examples/face_recognition/examples/obama-240p.jpg", 1),
    ("examples/face_recognition/examples/obama-1080p.jpg", 0),
    ("examples/face_recognition/tests/test_images/obama3.jpg", 0),
    ("examples/face_recognition/examples/two_people.jpg", 0),
    ("examples/face_recognition/tests/test_images/obama_partial_face.jpg", 0),
    ("examples/face_recognition/examples/lin-manuel-miranda.png", 0),
    ("examples/dlib/faces/bald_guys.jpg", 0),
]
LFW_SEED = 20250517
LFW_SAMPLE = 8
RNG_SEED = 5
MAX_FACES_PER_IMAGE = 6

# Variants of real landmark sets for chips: (rotation in degrees, scale, shift as a fraction
# of the image size, chip size, padding). Together they reach pyramid levels -1, 0 and 1+,
# upside-down faces, faces cut by each edge and a face wholly outside the image.
CHIP_VARIANTS = [
    (30.0, 1.0, (0.0, 0.0), 150, 0.25),
    (-75.0, 0.4, (0.0, 0.0), 150, 0.25),
    (170.0, 1.0, (0.0, 0.0), 150, 0.25),
    (10.0, 3.0, (0.0, 0.0), 150, 0.25),
    (0.0, 6.0, (0.0, 0.0), 150, 0.25),
    (45.0, 1.0, (-0.45, 0.0), 150, 0.25),
    (-20.0, 1.5, (0.4, 0.4), 150, 0.25),
    (90.0, 0.2, (-0.45, -0.45), 150, 0.25),
    (5.0, 1.0, (3.0, 0.0), 150, 0.25),
    (-5.0, 1.2, (0.0, -0.4), 150, 0.25),
    (15.0, 1.0, (0.0, 0.0), 80, 0.25),
    (-10.0, 2.0, (0.0, 0.0), 151, 0.5),
]
SAMPLE_PIXELS = [(0, 0), (37, 112), (75, 75), (100, 30), (149, 149)]


def data_root() -> Path:
    return Path(os.environ.get("RFR_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


def models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        sys.exit("face_recognition_models is not installed")
    return Path(spec.origin).parent / "models"


def load_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None:
        sys.exit(f"cannot decode {path}")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def dlib_landmarks(predictor: Any, img: np.ndarray, box: list[int]) -> list[list[int]]:
    shape = predictor(img, dlib.rectangle(*box))
    return [[p.x, p.y] for p in shape.parts()]


def pyramid_level(details: Any, size: int) -> int:
    """The pyramid level dlib's extract_image_chips samples for this chip (-1 = the image)."""
    pyr = dlib.pyramid_down(2)
    rect = details.rect
    level = -1
    while pyr.rect_down(rect).area() > size * size:
        level += 1
        rect = pyr.rect_down(rect)
    return level


def variant(landmarks: np.ndarray, shape: tuple[int, ...], spec: tuple[Any, ...]) -> np.ndarray:
    degrees, scale, (fx, fy), _, _ = spec
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    centre = landmarks.mean(axis=0)
    moved = (landmarks - centre) @ rot.T * scale + centre + np.array([fx * shape[1], fy * shape[0]])
    return np.floor(moved + 0.5).astype(np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    root = data_root()
    lfw = sorted(str(p.relative_to(root)) for p in (root / "lfw" / "images").glob("*/*.jpg"))
    images = NAMED_IMAGES + [(rel, 1) for rel in random.Random(LFW_SEED).sample(lfw, LFW_SAMPLE)]

    mdir = models_dir()
    detector = dlib.cnn_face_detection_model_v1(str(mdir / "mmod_human_face_detector.dat"))
    predictor = dlib.shape_predictor(str(mdir / "shape_predictor_5_face_landmarks.dat"))
    ours = ShapePredictor(read_shape_predictor(mdir / "shape_predictor_5_face_landmarks.dat"))
    rng = np.random.default_rng(RNG_SEED)

    image_info: dict[str, Any] = {}
    landmark_records: list[dict[str, Any]] = []
    real_sets: list[tuple[str, np.ndarray]] = []
    pixels: dict[str, np.ndarray] = {}
    for rel, upsample in images:
        img = load_rgb(root / rel)
        pixels[rel] = img
        image_info[rel] = {"shape": list(img.shape), "sha256": hashlib.sha256(img.tobytes()).hexdigest()}
        t0 = time.perf_counter()
        dets = detector(img, upsample)
        print(f"{rel}: {len(dets)} face(s) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        boxes = [[d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()] for d in dets][:MAX_FACES_PER_IMAGE]
        for i, box in enumerate(boxes):
            pts = dlib_landmarks(predictor, img, box)
            landmark_records.append({"image": rel, "kind": "detection", "box": box, "landmarks": pts})
            if i < 2:
                real_sets.append((rel, np.array(pts, dtype=np.int64)))
        if boxes:
            left, top, right, bottom = boxes[0]
            w = right - left
            dx, dy = (int(v) for v in rng.normal(0, 0.15 * w, 2))
            grow = int(rng.uniform(-0.2, 0.3) * w)
            jittered = [left + dx - grow, top + dy - grow, right + dx + grow, bottom + dy + grow]
            off = (
                [-(w // 2), top, w - w // 2, bottom]
                if left < img.shape[1] // 2
                else [
                    img.shape[1] - w // 2,
                    top,
                    img.shape[1] + w - w // 2,
                    bottom,
                ]
            )
            for kind, box in (("jittered", jittered), ("off_image", off)):
                pts = dlib_landmarks(predictor, img, box)
                landmark_records.append({"image": rel, "kind": kind, "box": box, "landmarks": pts})

    chip_records: list[dict[str, Any]] = []
    chip_inputs: list[tuple[str, np.ndarray, int, float, str]] = [
        (rel, pts, 150, 0.25, "real") for rel, pts in real_sets[:12]
    ]
    for i, spec in enumerate(CHIP_VARIANTS):
        rel, pts = real_sets[(3 * i + 1) % len(real_sets)]
        chip_inputs.append((rel, variant(pts, pixels[rel].shape, spec), spec[3], spec[4], "variant"))
    for rel, pts, size, padding, kind in chip_inputs:
        img = pixels[rel]
        shape = dlib.full_object_detection(dlib.rectangle(0, 0, 1, 1), [dlib.point(int(x), int(y)) for x, y in pts])
        chip = dlib.get_face_chip(img, shape, size=size, padding=padding)
        level = pyramid_level(dlib.get_face_chip_details(shape, size, padding), size)
        samples = [[r, c, [int(v) for v in chip[r, c]]] for r, c in SAMPLE_PIXELS if r < size and c < size]
        chip_records.append(
            {
                "image": rel,
                "kind": kind,
                "landmarks": pts.tolist(),
                "size": size,
                "padding": padding,
                "level": level,
                "sha256": hashlib.sha256(np.ascontiguousarray(chip).tobytes()).hexdigest(),
                "zero_pixels": int((chip == 0).all(axis=-1).sum()),
                "samples": samples,
            }
        )

    fixture = {
        "format": FORMAT_VERSION,
        "generator": "scripts/make_alignment_fixtures.py",
        "dlib_version": dlib.__version__,
        "opencv_version": cv2.__version__,
        "decoder": DECODER,
        "images": image_info,
        "landmarks": landmark_records,
        "chips": chip_records,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fixture, indent=1) + "\n")

    agree = sum(
        bool((ours.predict(pixels[r["image"]], Box(*r["box"])) == np.array(r["landmarks"])).all())
        for r in landmark_records
    )
    chips_agree = sum(
        hashlib.sha256(
            extract_face_chip(pixels[r["image"]], np.array(r["landmarks"]), r["size"], r["padding"]).tobytes()
        ).hexdigest()
        == r["sha256"]
        for r in chip_records
    )
    levels = sorted({r["level"] for r in chip_records})
    print(
        f"wrote {args.out}: {len(landmark_records)} boxes (numpy agrees on {agree}), "
        f"{len(chip_records)} chips at levels {levels} (numpy byte-identical on {chips_agree})",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
