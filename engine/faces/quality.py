"""Face image quality: the measures the Match Report must discuss about a Probe Image.

``assess_quality`` turns one found face (its box and dlib's five landmarks) into a
``FaceQuality``: face size, inter-eye distance, sharpness, brightness, contrast, clipped
shadows and highlights, head roll and yaw, and whether the face is cut by the image
edge. Each measure has a threshold below and a plain-language warning, written for a
custody officer and copied into the Match Report.

Thresholds. ISO/IEC 19794-5 asks for at least 90 px between the eye centres in a Full
Frontal image (its smallest Token image, 240 px wide, has 60 px) and ICAO 9303 portraits
for pose within about 5 degrees; forensic comparison of a Probe Image is judged less
strictly, and the guidance used here is 60 px or more between the eyes for comparing fine
detail, with faces under about 25 px unreliable. The photometric thresholds were set on
faces found by dlib's HOG detector in Labeled Faces in the Wild (news photographs, varied
capture), split by the Kumar et al. race attributes (Black, White, Asian, Indian; 200
images each), and rechecked with the engine's own detector (150 Black- and 150
White-labelled images): no photometric threshold flagged more than 4 % of any group, and
the brightness and shadow limits are low enough that well-exposed darker skin is not
reported as under-exposed (the 1st percentile of mean face brightness was 58 for
Black-labelled and 86 for White-labelled images).
These are warnings for the human adjudicator, never a gate on the search.
"""

from __future__ import annotations

import math

import numpy as np

from engine.faces.types import Box, FaceQuality, QualityMeasure

IED_RECOMMENDED_PX = 60.0
"""Eye-centre distance at or above which fine facial detail can be compared."""

IED_MINIMUM_PX = 25.0
"""Below this the face is too small for a reliable comparison at all."""

FACE_WIDTH_MIN_PX = 80
"""Narrowest face box without a warning: the embedding network reads the face at about 100 px
(150 px chip, 0.25 padding), so narrower faces are enlarged and the landmarks lose precision.
dlib boxes are about 2.5 eye distances wide (median over 744 faces), so 80 px is about 32 px
between the eyes."""

SHARPNESS_SIZE_PX = 128
"""The face box is resampled to this square before the Laplacian, so sharpness compares across resolutions."""

SHARPNESS_MIN = 15.0
"""Variance of the Laplacian at 128 px. LFW faces: median about 50, 5th percentile about 18;
a Gaussian blur of 1 % of the face width brings the median to 17 and 2 % to 6."""

BRIGHTNESS_MIN = 40.0
BRIGHTNESS_MAX = 210.0
"""Mean face luma (0-255, Rec. 601). Wide on purpose: skin tone changes mean brightness a lot,
and only real under- or over-exposure should be reported."""

CONTRAST_MIN = 20.0
"""Standard deviation of face luma; LFW 1st percentile is 23-26 in every group."""

CLIP_LOW = 5
CLIP_HIGH = 250
"""Luma at or below CLIP_LOW is crushed shadow, at or above CLIP_HIGH burnt-out highlight."""

OVEREXPOSED_MAX_FRACTION = 0.05
UNDEREXPOSED_MAX_FRACTION = 0.10
"""Most of the face area that may be clipped. The shadow limit is higher because the face box
includes hair and background: at 5 % it flagged 5.5 % of Indian-labelled and 3.0 % of
White-labelled LFW images, at 10 % between 0 and 2.5 % of each group."""

ANGLE_DECIMALS = 3
"""Pose angles are rounded to a thousandth of a degree, so float noise never decides a warning at the limit."""

ROLL_MAX_DEG = 15.0
"""In-plane tilt of the eye line. Alignment removes roll, but strong tilt rarely comes alone."""

YAW_MAX_DEG = 25.0
"""Left-right head turn. Looser than the ICAO 5 degrees because the estimate is coarse (see NOSE_DEPTH_RATIO)."""

NOSE_DEPTH_RATIO = 0.25
"""How far the base of the nose stands in front of the eye corners, as a fraction of the eye
distance: a head turned by yaw moves the nose sideways by this ratio times tan(yaw), in eye
distances. Fitted on 717 LFW faces against a 68-landmark perspective pose estimate (0.22 to
0.31 by forward and reverse regression), consistent with adult anthropometry. The true ratio varies
between people (nasal projection differs between individuals and populations), so the same head turn
reads larger for a more projecting nose: with the engine's detector, the yaw warning fired on 15 % of
150 Black-labelled and 32 % of 150 White-labelled LFW images. Part of that gap may be pose, part is
this estimator; yaw is a prompt for the adjudicator to look, not a measurement."""

EDGE_MAX_OUTSIDE_FRACTION = 0.02
"""Share of the face box that may fall outside the picture before the face counts as cut."""


def assess_quality(rgb: np.ndarray, box: Box, landmarks: np.ndarray) -> FaceQuality:
    """Measure the quality of one face in an RGB image.

    ``landmarks`` are dlib's five points in image pixels: 0 and 1 the corners of the
    image-right eye, 2 and 3 the image-left eye, 4 the base of the nose. Pose is a coarse
    estimate from those five points only: roll from the angle of the line between the eye
    centres (positive when the image-right eye is lower, i.e. the face is turned clockwise
    on screen), yaw from how far the nose sits to one side of the eyes' midpoint (positive
    towards the image's right). Pitch is not estimated.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"assess_quality needs an (H, W, 3) uint8 RGB image, got {rgb.shape} {rgb.dtype}")
    points = np.asarray(landmarks, dtype=np.float64)
    if points.shape != (5, 2):
        raise ValueError(f"assess_quality needs (5, 2) landmarks, got {points.shape}")
    height, width = rgb.shape[:2]
    left, top = max(box.left, 0), max(box.top, 0)
    right, bottom = min(box.right, width - 1), min(box.bottom, height - 1)
    if right < left or bottom < top:
        raise ValueError(f"face box {box.as_list()} does not overlap the {width}x{height} image")
    import cv2  # here, not at the top: the thresholds above are read at the terminal's start-up, OpenCV is not needed

    luma = cv2.cvtColor(np.ascontiguousarray(rgb[top : bottom + 1, left : right + 1]), cv2.COLOR_RGB2GRAY)

    image_right_eye = points[0:2].mean(axis=0)
    image_left_eye = points[2:4].mean(axis=0)
    eye_vector = image_right_eye - image_left_eye
    ied = float(np.hypot(*eye_vector))

    outside = 1.0 - (right - left + 1) * (bottom - top + 1) / box.area
    landmarks_inside = bool(np.all((points >= 0) & (points <= [width - 1, height - 1])))
    return FaceQuality(
        measures=(
            _face_width(box.width),
            _inter_eye_distance(ied),
            _sharpness(luma),
            _brightness(float(luma.mean())),
            _contrast(float(luma.std())),
            _overexposed(float(np.count_nonzero(luma >= CLIP_HIGH)) / luma.size),
            _underexposed(float(np.count_nonzero(luma <= CLIP_LOW)) / luma.size),
            _roll(math.degrees(math.atan2(eye_vector[1], eye_vector[0]))),
            _yaw(points[4], image_left_eye, image_right_eye, ied),
            _cut_by_edge(outside, landmarks_inside),
        )
    )


def _measure(name: str, value: float, unit: str, ok: bool, warning: str) -> QualityMeasure:
    return QualityMeasure(name=name, value=float(value), unit=unit, ok=ok, warning=None if ok else warning)


def _face_width(width_px: int) -> QualityMeasure:
    return _measure(
        "face_width",
        width_px,
        "px",
        width_px >= FACE_WIDTH_MIN_PX,
        f"Face is only {width_px} px wide ({FACE_WIDTH_MIN_PX} px or more is recommended): "
        "the face and its landmarks are located less precisely at this size.",
    )


def _inter_eye_distance(ied: float) -> QualityMeasure:
    if ied < IED_MINIMUM_PX:
        warning = (
            f"Face is very small ({ied:.0f} px between the eyes; at least {IED_MINIMUM_PX:.0f} px is needed and "
            f"{IED_RECOMMENDED_PX:.0f} px or more is recommended): the comparison is unreliable."
        )
    else:
        warning = (
            f"Face is small ({ied:.0f} px between the eyes; {IED_RECOMMENDED_PX:.0f} px or more is recommended): "
            "fine detail cannot be compared."
        )
    return _measure("inter_eye_distance", ied, "px", ied >= IED_RECOMMENDED_PX, warning)


def _sharpness(luma: np.ndarray) -> QualityMeasure:
    import cv2  # as in assess_quality

    size = (SHARPNESS_SIZE_PX, SHARPNESS_SIZE_PX)
    shrinking = luma.shape[0] >= SHARPNESS_SIZE_PX and luma.shape[1] >= SHARPNESS_SIZE_PX
    normalised = cv2.resize(luma, size, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    value = float(cv2.Laplacian(normalised, cv2.CV_64F).var())
    return _measure(
        "sharpness",
        value,
        f"laplacian_variance_at_{SHARPNESS_SIZE_PX}px",
        value >= SHARPNESS_MIN,
        f"Face is blurred (sharpness {value:.0f}; {SHARPNESS_MIN:.0f} or more is expected): "
        "fine detail such as marks and scars cannot be compared.",
    )


def _brightness(mean: float) -> QualityMeasure:
    if mean < BRIGHTNESS_MIN:
        warning = (
            f"Face is dark (mean brightness {mean:.0f} of 255; {BRIGHTNESS_MIN:.0f} or more is recommended): "
            "detail is lost in shadow."
        )
    else:
        warning = (
            f"Face is very bright (mean brightness {mean:.0f} of 255; {BRIGHTNESS_MAX:.0f} or less is recommended): "
            "detail is washed out."
        )
    return _measure("brightness", mean, "luma_0_255", BRIGHTNESS_MIN <= mean <= BRIGHTNESS_MAX, warning)


def _contrast(std: float) -> QualityMeasure:
    return _measure(
        "contrast",
        std,
        "luma_std",
        std >= CONTRAST_MIN,
        f"Face has low contrast (spread {std:.0f}; {CONTRAST_MIN:.0f} or more is recommended): "
        "the image may be hazy or washed out and features are hard to tell apart.",
    )


def _overexposed(fraction: float) -> QualityMeasure:
    return _measure(
        "overexposed",
        fraction,
        "fraction",
        fraction <= OVEREXPOSED_MAX_FRACTION,
        f"{fraction:.0%} of the face is burnt out to white ({OVEREXPOSED_MAX_FRACTION:.0%} or less is "
        "recommended): detail in those areas is lost.",
    )


def _underexposed(fraction: float) -> QualityMeasure:
    return _measure(
        "underexposed",
        fraction,
        "fraction",
        fraction <= UNDEREXPOSED_MAX_FRACTION,
        f"{fraction:.0%} of the face is lost in black shadow ({UNDEREXPOSED_MAX_FRACTION:.0%} or less is "
        "recommended): detail in those areas is lost.",
    )


def _roll(degrees: float) -> QualityMeasure:
    degrees = round(degrees, ANGLE_DECIMALS)
    return _measure(
        "roll",
        degrees,
        "deg",
        abs(degrees) <= ROLL_MAX_DEG,
        f"Head is tilted {abs(degrees):.0f}° ({ROLL_MAX_DEG:.0f}° or less is recommended): tilt is corrected "
        "automatically, but strong tilt usually comes with other pose changes; compare with care.",
    )


def _yaw(nose: np.ndarray, image_left_eye: np.ndarray, image_right_eye: np.ndarray, ied: float) -> QualityMeasure:
    eye_distance = max(ied, 1e-6)
    direction = (image_right_eye - image_left_eye) / eye_distance
    offset = float(np.dot(nose - (image_left_eye + image_right_eye) / 2.0, direction)) / eye_distance
    degrees = round(math.degrees(math.atan(offset / NOSE_DEPTH_RATIO)), ANGLE_DECIMALS)
    side = "right" if degrees > 0 else "left"
    return _measure(
        "yaw",
        degrees,
        "deg",
        abs(degrees) <= YAW_MAX_DEG,
        f"Face is turned about {abs(degrees):.0f}° towards the {side} of the image ({YAW_MAX_DEG:.0f}° or less "
        "is recommended; coarse estimate): features on the far side are hidden or foreshortened.",
    )


def _cut_by_edge(outside: float, landmarks_inside: bool) -> QualityMeasure:
    if outside > EDGE_MAX_OUTSIDE_FRACTION:
        detail = f"about {outside:.0%} of the face area is outside the picture"
    else:
        detail = "an eye or the nose is outside the picture"
    return _measure(
        "cut_by_edge",
        outside,
        "fraction",
        outside <= EDGE_MAX_OUTSIDE_FRACTION and landmarks_inside,
        f"Face is cut by the image edge ({detail}): the missing part cannot be compared.",
    )
