"""Face image quality measures: synthetic images with known blur and exposure, landmarks with known pose.

Real-photo cases use face boxes and 5-point landmarks recorded once from dlib 20.0 (HOG detector,
``shape_predictor_5_face_landmarks.dat``) on the shared example photographs, so no dlib is needed here.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.faces import quality as q
from engine.faces.image_io import load_image
from engine.faces.quality import assess_quality
from engine.faces.types import Box, FaceQuality, QualityMeasure

FR = Path("examples/face_recognition")

# Recorded from dlib (see module docstring): box [left, top, right, bottom] and landmarks.
OBAMA_1080P_BOX = [882, 136, 1140, 394]
OBAMA_1080P_POINTS = [[1074, 215], [1032, 215], [929, 216], [968, 216], [1000, 295]]
OBAMA_240P_BOX = [190, 32, 252, 94]
OBAMA_240P_POINTS = [[239, 48], [230, 47], [206, 48], [215, 48], [222, 65]]
PARTIAL_FACE_BOX = [-54, 161, 185, 376]
PARTIAL_FACE_POINTS = [[154, 216], [110, 215], [11, 214], [49, 216], [71, 294]]


def _measure(quality: FaceQuality, name: str) -> QualityMeasure:
    found = [m for m in quality.measures if m.name == name]
    assert len(found) == 1, name
    return found[0]


def _frontal_landmarks(cx: float, cy: float, ied: float) -> np.ndarray:
    """dlib 5-point order for an upright frontal face with eye centres ``ied`` apart."""
    half, corner = ied / 2.0, ied * 0.2
    return np.array(
        [
            [cx + half + corner, cy],  # image-right eye, outer corner
            [cx + half - corner, cy],  # image-right eye, inner corner
            [cx - half - corner, cy],  # image-left eye, outer corner
            [cx - half + corner, cy],  # image-left eye, inner corner
            [cx, cy + 0.75 * ied],  # base of the nose
        ]
    )


def _texture(size: int, seed: int = 7) -> np.ndarray:
    """A face-sized grey texture with detail at many scales (deterministic)."""
    rng = np.random.default_rng(seed)
    base = np.zeros((size, size), np.float64)
    for cells in (4, 8, 16, 32, 64):
        layer = rng.uniform(-1, 1, (cells, cells))
        base += cv2.resize(layer, (size, size), interpolation=cv2.INTER_CUBIC) * (64.0 / cells) ** 0.5
    base = (base - base.mean()) / base.std()
    return base


def _face_image(
    *, mean: float = 120.0, std: float = 40.0, blur_sigma: float = 0.0, size: int = 200, margin: int = 50
) -> tuple[np.ndarray, Box, np.ndarray]:
    """An RGB image whose face box holds a texture with the given luma mean and spread, optionally blurred."""
    face = _texture(size) * std + mean
    if blur_sigma > 0:
        face = cv2.GaussianBlur(face, (0, 0), blur_sigma)
    canvas = np.full((size + 2 * margin, size + 2 * margin), 128.0)
    canvas[margin : margin + size, margin : margin + size] = face
    grey = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    rgb = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    box = Box(margin, margin, margin + size - 1, margin + size - 1)
    centre = margin + size / 2.0
    return rgb, box, _frontal_landmarks(centre, centre - size * 0.1, ied=size * 0.4)


# ---------------------------------------------------------------- size


def test_all_measures_present_and_serialisable() -> None:
    rgb, box, points = _face_image()
    quality = assess_quality(rgb, box, points)
    names = [m.name for m in quality.measures]
    assert names == [
        "face_width",
        "inter_eye_distance",
        "sharpness",
        "brightness",
        "contrast",
        "overexposed",
        "underexposed",
        "roll",
        "yaw",
        "cut_by_edge",
    ]
    assert quality.warnings == []
    assert all(m.ok and m.warning is None for m in quality.measures)
    as_json = quality.to_json()
    assert as_json["inter_eye_distance"] == {"value": 80.0, "unit": "px", "ok": True}


def test_inter_eye_distance_uses_eye_centres() -> None:
    rgb, box, _ = _face_image()
    points = _frontal_landmarks(150, 120, ied=38)
    measure = _measure(assess_quality(rgb, box, points), "inter_eye_distance")
    assert measure.value == pytest.approx(38.0)
    assert not measure.ok
    assert measure.warning == (
        "Face is small (38 px between the eyes; 60 px or more is recommended): fine detail cannot be compared."
    )


@pytest.mark.parametrize(
    ("ied", "ok", "words"), [(60.0, True, None), (59.5, False, "small"), (20.0, False, "very small")]
)
def test_inter_eye_distance_thresholds(ied: float, ok: bool, words: str | None) -> None:
    rgb, box, _ = _face_image()
    measure = _measure(assess_quality(rgb, box, _frontal_landmarks(150, 120, ied)), "inter_eye_distance")
    assert measure.ok is ok
    if words is None:
        assert measure.warning is None
    else:
        assert measure.warning is not None and measure.warning.startswith(f"Face is {words} (")


def test_face_width_is_box_width() -> None:
    rgb, _, points = _face_image()
    narrow = Box(100, 100, 100 + 63, 100 + 63)
    measure = _measure(assess_quality(rgb, narrow, points), "face_width")
    assert (measure.value, measure.ok) == (64.0, False)
    assert measure.warning is not None and "64 px wide (80 px or more" in measure.warning
    assert _measure(assess_quality(rgb, Box(10, 10, 89, 89), points), "face_width").ok


# ---------------------------------------------------------------- sharpness


def test_sharpness_falls_with_blur_and_warns() -> None:
    values = []
    for sigma in (0.0, 1.0, 2.0, 4.0, 8.0):
        rgb, box, points = _face_image(blur_sigma=sigma)
        values.append(_measure(assess_quality(rgb, box, points), "sharpness"))
    assert [m.value for m in values] == sorted((m.value for m in values), reverse=True)
    assert values[0].ok and values[0].value > 3 * q.SHARPNESS_MIN
    assert not values[-1].ok
    assert values[-1].warning is not None and values[-1].warning.startswith("Face is blurred (sharpness ")


def test_sharpness_is_comparable_across_resolutions() -> None:
    """The same face at 1x, 2x and 4x the pixels reads about the same sharpness."""
    master = _face_image(size=800, margin=0, blur_sigma=6.0)[0]
    readings = []
    for size in (200, 400, 800):
        rgb = cv2.resize(master, (size, size), interpolation=cv2.INTER_AREA)
        box = Box(0, 0, size - 1, size - 1)
        readings.append(
            _measure(assess_quality(rgb, box, _frontal_landmarks(size / 2, size / 2, size * 0.4)), "sharpness").value
        )
    assert max(readings) / min(readings) < 1.25, readings


def test_real_photo_sharpness_across_resolutions(data_root: Path) -> None:
    """obama-720p and -1080p are the same frame: scaled box and landmarks give similar sharpness and scaled size."""
    results = {}
    for height in (720, 1080):
        image = load_image(data_root / FR / f"examples/obama-{height}p.jpg")
        scale = height / 1080
        box = Box(*[round(v * scale) for v in OBAMA_1080P_BOX])
        points = np.array(OBAMA_1080P_POINTS, float) * scale
        results[height] = assess_quality(image.rgb, box, points)
    s720, s1080 = (_measure(results[h], "sharpness").value for h in (720, 1080))
    assert 0.75 < s720 / s1080 < 1.33
    ied720, ied1080 = (_measure(results[h], "inter_eye_distance").value for h in (720, 1080))
    assert ied720 / ied1080 == pytest.approx(720 / 1080, rel=0.01)
    assert results[1080].warnings == []


def test_real_small_face_is_reported(data_root: Path) -> None:
    image = load_image(data_root / FR / "examples/obama-240p.jpg")
    quality = assess_quality(image.rgb, Box(*OBAMA_240P_BOX), np.array(OBAMA_240P_POINTS, float))
    ied = _measure(quality, "inter_eye_distance")
    assert 22 < ied.value < 26
    assert ied.warning is not None and ied.warning.startswith("Face is very small (")
    assert not _measure(quality, "face_width").ok


def test_real_partial_face_is_cut_by_edge(data_root: Path) -> None:
    image = load_image(data_root / FR / "tests/test_images/obama_partial_face.jpg")
    quality = assess_quality(image.rgb, Box(*PARTIAL_FACE_BOX), np.array(PARTIAL_FACE_POINTS, float))
    edge = _measure(quality, "cut_by_edge")
    assert edge.value == pytest.approx(54 / 240)
    assert edge.warning == (
        "Face is cut by the image edge (about 22% of the face area is outside the picture): "
        "the missing part cannot be compared."
    )


# ---------------------------------------------------------------- exposure


def test_brightness_and_contrast_measured_on_face_region() -> None:
    rgb, box, points = _face_image(mean=100.0, std=30.0)
    quality = assess_quality(rgb, box, points)
    assert _measure(quality, "brightness").value == pytest.approx(100.0, abs=0.5)
    assert _measure(quality, "contrast").value == pytest.approx(30.0, rel=0.02)


@pytest.mark.parametrize(
    ("mean", "std", "failing", "warning_start"),
    [
        (25.0, 8.0, {"brightness", "contrast"}, "Face is dark (mean brightness 25 of 255"),
        (228.0, 8.0, {"brightness", "contrast"}, "Face is very bright (mean brightness 228 of 255"),
        (120.0, 10.0, {"contrast"}, "Face has low contrast (spread 10"),
        (60.0, 25.0, set(), None),  # darker skin, properly exposed: no warning
    ],
)
def test_exposure_warnings(mean: float, std: float, failing: set[str], warning_start: str | None) -> None:
    rgb, box, points = _face_image(mean=mean, std=std, blur_sigma=0.0)
    quality = assess_quality(rgb, box, points)
    photometric = ("brightness", "contrast", "overexposed", "underexposed")
    assert {name for name in photometric if not _measure(quality, name).ok} == failing
    if warning_start is not None:
        assert any(w.startswith(warning_start) for w in quality.warnings), quality.warnings


def test_clipping_fractions() -> None:
    rgb, box, points = _face_image()
    rgb = rgb.copy()
    face = rgb[box.top : box.bottom + 1, box.left : box.right + 1]
    face[:40] = 255  # 40 of 200 rows: 20 % burnt out
    face[-24:] = 0  # 12 % crushed
    quality = assess_quality(rgb, box, points)
    over, under = _measure(quality, "overexposed"), _measure(quality, "underexposed")
    assert over.value == pytest.approx(0.20)
    assert under.value == pytest.approx(0.12)
    assert over.warning is not None and over.warning.startswith("20% of the face is burnt out to white (5% or less")
    assert under.warning is not None and under.warning.startswith(
        "12% of the face is lost in black shadow (10% or less"
    )


def test_measures_ignore_pixels_outside_the_box() -> None:
    rgb, box, points = _face_image(margin=60)
    rgb = rgb.copy()
    rgb[: box.top] = 255
    rgb[box.bottom + 1 :] = 0
    assert assess_quality(rgb, box, points).warnings == []


# ---------------------------------------------------------------- pose


def _posed_landmarks(yaw_deg: float, roll_deg: float, ied: float = 80.0) -> np.ndarray:
    """Orthographic view of a 3D five-point head model turned by ``yaw`` then tilted by ``roll``.

    Eye corners lie in depth (outer corners further back), the nose base stands in front of the
    eye centres by NOSE_DEPTH_RATIO eye distances. Positive yaw moves the nose towards the
    image's right; positive roll lowers the image-right eye.
    """
    half, corner = ied / 2.0, ied * 0.2
    eye_depth = -0.15 * ied
    model = np.array(
        [
            [half + corner, 0.0, eye_depth - 0.1 * ied],
            [half - corner, 0.0, eye_depth + 0.1 * ied],
            [-half - corner, 0.0, eye_depth - 0.1 * ied],
            [-half + corner, 0.0, eye_depth + 0.1 * ied],
            [0.0, 0.75 * ied, eye_depth + q.NOSE_DEPTH_RATIO * ied],
        ]
    )
    yaw, roll = math.radians(yaw_deg), math.radians(roll_deg)
    x = model[:, 0] * math.cos(yaw) + model[:, 2] * math.sin(yaw)
    y = model[:, 1]
    xr = x * math.cos(roll) - y * math.sin(roll)
    yr = x * math.sin(roll) + y * math.cos(roll)
    return np.stack([xr + 150.0, yr + 120.0], axis=1)


@pytest.mark.parametrize("yaw", [-50.0, -30.0, -10.0, 0.0, 12.0, 25.0, 45.0])
@pytest.mark.parametrize("roll", [-35.0, -8.0, 0.0, 20.0])
def test_pose_recovered_from_landmarks(yaw: float, roll: float) -> None:
    rgb, box, _ = _face_image()
    quality = assess_quality(rgb, box, _posed_landmarks(yaw, roll))
    assert _measure(quality, "roll").value == pytest.approx(roll, abs=0.01)
    assert _measure(quality, "yaw").value == pytest.approx(yaw, abs=0.01)
    assert _measure(quality, "roll").ok is (abs(roll) <= q.ROLL_MAX_DEG)
    assert _measure(quality, "yaw").ok is (abs(yaw) <= q.YAW_MAX_DEG)


def test_pose_signs_follow_the_image() -> None:
    rgb, box, _ = _face_image()
    points = _frontal_landmarks(150, 120, 80)
    points[4, 0] += 40  # nose pushed towards the image-right eye
    points[0:2, 1] += 30  # image-right eye lower
    quality = assess_quality(rgb, box, points)
    yaw, roll = _measure(quality, "yaw"), _measure(quality, "roll")
    assert yaw.value > q.YAW_MAX_DEG and roll.value > q.ROLL_MAX_DEG
    assert yaw.warning is not None and "towards the right of the image" in yaw.warning
    assert roll.warning is not None and roll.warning.startswith(f"Head is tilted {roll.value:.0f}°")
    points[4, 0] -= 80
    left = _measure(assess_quality(rgb, box, points), "yaw")
    assert left.value < -q.YAW_MAX_DEG and left.warning is not None and "towards the left" in left.warning


def test_upside_down_face_is_flagged() -> None:
    rgb, box, _ = _face_image()
    roll = _measure(assess_quality(rgb, box, _posed_landmarks(0.0, 180.0)), "roll")
    assert abs(roll.value) == pytest.approx(180.0) and not roll.ok


def test_coincident_eyes_do_not_crash() -> None:
    rgb, box, _ = _face_image()
    points = np.array([[150, 120]] * 4 + [[160, 150]], float)
    quality = assess_quality(rgb, box, points)
    assert not _measure(quality, "inter_eye_distance").ok
    assert all(math.isfinite(m.value) for m in quality.measures)


# ---------------------------------------------------------------- edge


def test_face_cut_by_edge_fraction() -> None:
    rgb, _, points = _face_image(size=200, margin=50)  # 300 x 300 image
    box = Box(-50, 100, 149, 299)  # 200 wide, a quarter outside on the left
    measure = _measure(assess_quality(rgb, box, points), "cut_by_edge")
    assert measure.value == pytest.approx(0.25)
    assert not measure.ok


def test_face_inside_or_barely_over_edge_is_not_cut() -> None:
    rgb, _, points = _face_image(size=200, margin=50)
    assert _measure(assess_quality(rgb, Box(0, 0, 299, 299), points), "cut_by_edge").value == 0.0
    barely = _measure(assess_quality(rgb, Box(-3, 0, 296, 299), points), "cut_by_edge")
    assert barely.ok and barely.value == pytest.approx(0.01)


def test_landmark_outside_picture_means_cut() -> None:
    rgb, box, points = _face_image()
    points = points.copy()
    points[2:4, 0] = [-4.0, -1.0]
    measure = _measure(assess_quality(rgb, box, points), "cut_by_edge")
    assert not measure.ok
    assert measure.warning is not None and "an eye or the nose is outside the picture" in measure.warning


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("rgb", "points", "box"),
    [
        (np.zeros((10, 10), np.uint8), np.zeros((5, 2)), Box(0, 0, 5, 5)),
        (np.zeros((10, 10, 3), np.float32), np.zeros((5, 2)), Box(0, 0, 5, 5)),
        (np.zeros((10, 10, 3), np.uint8), np.zeros((68, 2)), Box(0, 0, 5, 5)),
        (np.zeros((10, 10, 3), np.uint8), np.zeros((5, 2)), Box(20, 20, 30, 30)),
    ],
)
def test_programming_errors_raise_value_error(rgb: np.ndarray, points: np.ndarray, box: Box) -> None:
    with pytest.raises(ValueError):
        assess_quality(rgb, box, points)
