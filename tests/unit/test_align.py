"""Face chips: byte-identical to dlib's ``get_face_chip`` on recorded cases, and right on known inputs.

dlib's chips were recorded by ``scripts/make_alignment_fixtures.py`` into
``tests/fixtures/dlib_landmarks_chips.json`` (sha256 of the chip bytes plus a few pixels) for
real faces, including large ones that dlib cuts from an image pyramid, and for rotated,
scaled and off-image variants.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from engine.errors import ImageError
from engine.faces.align import chip_transform, extract_face_chip, pyramid_down2

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "dlib_landmarks_chips.json"
RECORDED: dict[str, Any] = json.loads(FIXTURE.read_text())
CHIPS: list[dict[str, Any]] = RECORDED["chips"]

# dlib's 5-point mean face in the unit square (the chip's reference points).
MEAN_FACE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)


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


def _chip_id(record: dict[str, Any]) -> str:
    return f"{Path(record['image']).stem}-{record['kind']}-L{record['level']}-{record['size']}"


def _placed_landmarks(scale: float, angle: float, centre: tuple[float, float], size: int = 150) -> np.ndarray:
    """Integer landmarks of a face whose chip reference points map by this similarity."""
    chip_pts = (0.25 + MEAN_FACE) / 1.5 * size - size / 2
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return np.floor(chip_pts @ (scale * rot).T + np.array(centre) + 0.5).astype(np.int64)


# --- against dlib ---------------------------------------------------------------------------


def test_fixture_covers_pyramid_levels_and_off_image_chips() -> None:
    assert len(CHIPS) >= 20
    assert {-1, 0, 1} <= {c["level"] for c in CHIPS}
    assert any(c["kind"] == "real" and c["level"] >= 0 for c in CHIPS), "no real large face"
    assert any(0 < c["zero_pixels"] < c["size"] ** 2 for c in CHIPS), "no chip cut by the image edge"
    assert any(c["zero_pixels"] == c["size"] ** 2 for c in CHIPS), "no chip wholly off the image"


@pytest.mark.parametrize("record", CHIPS, ids=_chip_id)
def test_chip_is_byte_identical_to_dlib(record: dict[str, Any], data_root: Path) -> None:
    img = load_recorded_image(data_root, record["image"])
    chip = extract_face_chip(img, np.array(record["landmarks"]), record["size"], record["padding"])
    assert chip.shape == (record["size"], record["size"], 3) and chip.dtype == np.uint8
    samples = {(r, c): [int(v) for v in chip[r, c]] for r, c, _ in record["samples"]}
    expected_samples = {(r, c): v for r, c, v in record["samples"]}
    assert samples == expected_samples
    assert int((chip == 0).all(axis=-1).sum()) == record["zero_pixels"]
    assert hashlib.sha256(chip.tobytes()).hexdigest() == record["sha256"]


# --- geometry -------------------------------------------------------------------------------


def _least_squares_similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, float, float, float]:
    """(a, b, tx, ty) of x -> [[a, -b], [b, a]] x + t minimising the squared error, by a generic solver."""
    rows = []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows.append(([x, -y, 1.0, 0.0], u))
        rows.append(([y, x, 0.0, 1.0], v))
    a_mat = np.array([r for r, _ in rows])
    rhs = np.array([v for _, v in rows])
    a, b, tx, ty = np.linalg.lstsq(a_mat, rhs, rcond=None)[0]
    return float(a), float(b), float(tx), float(ty)


@pytest.mark.parametrize(("scale", "angle", "centre"), [(2.5, 0.4, (400.0, 300.0)), (0.3, -2.9, (-20.0, 55.0))])
def test_chip_transform_is_dlibs_chip_geometry(scale: float, angle: float, centre: tuple[float, float]) -> None:
    landmarks = _placed_landmarks(scale, angle, centre)
    tf = chip_transform(landmarks)
    a, b, tx, ty = _least_squares_similarity((0.25 + MEAN_FACE) / 1.5 * 150, landmarks.astype(np.float64))
    s = math.hypot(a, b)
    centre_img = (a * 75 - b * 75 + tx, b * 75 + a * 75 + ty)  # T(75, 75): the chip centre in the image
    assert tf.angle == pytest.approx(math.atan2(b, a), abs=1e-9)
    half = (150 * s - 1) / 2  # dlib's centred_drect of side 150 * s
    expected_rect = (centre_img[0] - half, centre_img[1] - half, centre_img[0] + half, centre_img[1] + half)
    assert tf.rect == pytest.approx(expected_rect, abs=1e-7)
    # Chip pixels 0..149 span the rectangle: its centre is chip (74.5, 74.5), its step (150 s - 1) / 149.
    assert tf.to_image([74.5, 74.5]) == pytest.approx(centre_img, abs=1e-7)
    assert tf.scale == pytest.approx((150 * s - 1) / 149, rel=1e-9)
    step = tf.to_image([1.0, 0.0]) - tf.to_image([0.0, 0.0])
    assert math.atan2(step[1], step[0]) == pytest.approx(tf.angle, abs=1e-9)
    pts = np.array([[0.0, 0.0], [149.0, 0.0], [12.5, 77.25]])
    assert np.allclose(tf.to_chip(tf.to_image(pts)), pts, atol=1e-9)
    # and the placement used to make the landmarks is recovered, up to their integer rounding
    assert tf.angle == pytest.approx(angle, abs=0.02)
    assert s == pytest.approx(scale, rel=0.02 + 0.5 / (50 * scale))


def test_reference_placement_gives_unit_scale_and_no_rotation() -> None:
    tf = chip_transform(_placed_landmarks(1.0, 0.0, (75.0, 75.0)))
    assert tf.angle == pytest.approx(0.0, abs=0.01)
    assert tf.scale == pytest.approx(1.0, abs=0.01)
    assert tf.to_image([74.5, 74.5]) == pytest.approx([75.0, 75.0], abs=0.5)


def test_chip_samples_a_linear_ramp_where_the_transform_says() -> None:
    # Bilinear interpolation reproduces a linear image exactly, so each chip pixel holds the
    # truncated image coordinate it was sampled from: a known answer for the geometry.
    xs, ys = np.meshgrid(np.arange(256), np.arange(256))
    img = np.stack([xs, ys, np.full_like(xs, 77)], axis=-1).astype(np.uint8)
    landmarks = _placed_landmarks(0.8, -0.3, (128.0, 120.0))
    tf = chip_transform(landmarks)
    chip = extract_face_chip(img, landmarks)
    grid = np.stack(np.meshgrid(np.arange(150.0), np.arange(150.0)), axis=-1)
    where = tf.to_image(grid)
    inside = (where >= 0).all(axis=-1) & (where < 254.999).all(axis=-1)
    assert inside.mean() > 0.8
    for channel in (0, 1):
        exact = where[..., channel][inside]
        got = chip[..., channel][inside].astype(np.float64)
        # truncation: floor of the coordinate, or one less when it sits on an integer
        assert np.all((got == np.floor(exact)) | ((got == np.floor(exact) - 1) & (exact - np.floor(exact) < 1e-9)))
    assert np.all(chip[..., 2][inside] == 77)


def test_pixels_whose_neighbours_leave_the_image_are_black() -> None:
    img = np.full((120, 160, 3), 200, dtype=np.uint8)
    landmarks = _placed_landmarks(1.0, 0.2, (10.0, 60.0))  # face centred near the left edge
    tf = chip_transform(landmarks)
    chip = extract_face_chip(img, landmarks)
    grid = np.stack(np.meshgrid(np.arange(150.0), np.arange(150.0)), axis=-1)
    where = tf.to_image(grid)
    clearly_out = (where[..., 0] < -0.01) | (where[..., 1] < -0.01) | (where[..., 1] > 119.01)
    clearly_in = (where[..., 0] > 0.01) & (where[..., 0] < 158.99) & (where[..., 1] > 0.01) & (where[..., 1] < 118.99)
    assert clearly_out.any() and clearly_in.any()
    assert np.all(chip[clearly_out] == 0)
    assert np.all(np.isin(chip[clearly_in], [199, 200]))  # a flat area, up to dlib's truncation


def test_face_wholly_outside_the_image_gives_a_black_chip() -> None:
    img = np.full((100, 100, 3), 255, dtype=np.uint8)
    chip = extract_face_chip(img, _placed_landmarks(1.0, 0.0, (900.0, -500.0)))
    assert chip.shape == (150, 150, 3) and not chip.any()


def test_large_face_through_the_pyramid_keeps_a_flat_image_flat() -> None:
    img = np.full((1400, 1400, 3), (10, 120, 250), dtype=np.uint8)
    chip = extract_face_chip(img, _placed_landmarks(5.0, 0.3, (700.0, 700.0)))  # two pyramid levels
    assert np.all(chip == np.array([10, 120, 250], dtype=np.uint8))


# --- dlib's pyramid_down<2> -----------------------------------------------------------------


def _pyramid_reference(image: np.ndarray) -> np.ndarray:
    """The definition, written out: out(i, j) = sum w[a] w[b] in(2i+a, 2j+b) / 256, truncated."""
    w = [1, 4, 6, 4, 1]
    rows, cols = image.shape[:2]
    out_r, out_c = (rows - 3) // 2, (cols - 3) // 2
    src = image.astype(np.int64)
    acc = np.zeros((out_r, out_c, *image.shape[2:]), dtype=np.int64)
    for a in range(5):
        for b in range(5):
            acc += w[a] * w[b] * src[a : a + 2 * out_r : 2, b : b + 2 * out_c : 2]
    return (acc // 256).astype(np.uint8)


@pytest.mark.parametrize(("rows", "cols"), [(9, 9), (10, 13), (31, 17), (64, 65), (9, 200)])
def test_pyramid_down2_matches_its_definition(rows: int, cols: int) -> None:
    img = np.random.default_rng(rows * cols).integers(0, 256, (rows, cols, 3), dtype=np.uint8)
    out = pyramid_down2(img)
    assert out.shape == ((rows - 3) // 2, (cols - 3) // 2, 3)
    assert np.array_equal(out, _pyramid_reference(img))
    white = np.full((rows, cols, 3), 255, dtype=np.uint8)
    assert np.all(pyramid_down2(white) == 255)


@pytest.mark.parametrize(("rows", "cols"), [(8, 100), (100, 8), (3, 3), (0, 0)])
def test_pyramid_down2_of_a_tiny_image_is_empty(rows: int, cols: int) -> None:
    assert pyramid_down2(np.zeros((rows, cols, 3), dtype=np.uint8)).size == 0


# --- input handling -------------------------------------------------------------------------


def test_unusable_inputs_are_refused() -> None:
    rgb = np.zeros((50, 50, 3), dtype=np.uint8)
    landmarks = _placed_landmarks(0.2, 0.0, (25.0, 25.0))
    with pytest.raises(ImageError, match="8-bit RGB"):
        extract_face_chip(np.zeros((50, 50), dtype=np.uint8), landmarks)
    with pytest.raises(ImageError, match="8-bit RGB"):
        extract_face_chip(rgb.astype(np.float32), landmarks)
    with pytest.raises(ImageError, match="5 landmarks"):
        extract_face_chip(rgb, landmarks[:4])
