"""Pillow helpers for face pictures: crop with margin, zoom, overlays, all keeping the aspect ratio."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rfr_tui.widgets.picture import (
    BOX_COLOUR,
    LANDMARK_FILL,
    PADDING_GREY,
    crop_face,
    draw_overlay,
    face_picture,
    picture_from_bgr,
    zoom,
)
from tests.tui.support import FACE_BOX, FACE_LANDMARKS, drawn_face


def test_a_crop_adds_the_margin_on_every_side_keeping_the_box_proportions() -> None:
    face = crop_face(drawn_face(), FACE_BOX, margin=0.25)
    # box 120x160, plus a quarter of each side on both sides
    assert face.size == (180, 240)
    # the crop's centre is the box's centre: the face's skin, not the background
    assert face.getpixel((90, 120)) == drawn_face().getpixel((120, 150))


def test_a_crop_past_the_edge_is_padded_with_grey_not_shifted() -> None:
    picture = drawn_face()
    face = crop_face(picture, (0.0, 0.0, 100.0, 100.0), margin=0.5)
    assert face.size == (200, 200)
    assert face.getpixel((10, 10)) == PADDING_GREY
    assert face.getpixel((50, 50)) == picture.getpixel((0, 0))  # the photograph starts where the box does
    assert face.getpixel((199, 199)) == picture.getpixel((149, 149))


@pytest.mark.parametrize("box", [(10.0, 10.0, 10.0, 50.0), (10.0, 60.0, 50.0, 20.0)])
def test_an_empty_or_inverted_box_is_refused(box: tuple[float, float, float, float]) -> None:
    with pytest.raises(ValueError, match="right > left and bottom > top"):
        crop_face(drawn_face(), box)


def test_zoom_keeps_the_aspect_ratio_and_stays_inside_the_picture() -> None:
    picture = drawn_face()
    twice = zoom(picture, 2.0)
    assert twice.size == (120, 150)
    assert twice.getpixel((60, 75)) == picture.getpixel((120, 150))
    corner = zoom(picture, 4.0, centre=(0.0, 0.0))  # moved inside, not shrunk
    assert corner.size == (60, 75)
    assert corner.getpixel((0, 0)) == picture.getpixel((0, 0))
    assert zoom(picture, 1.0).tobytes() == picture.tobytes()
    with pytest.raises(ValueError, match="1 or more"):
        zoom(picture, 0.5)


def test_the_overlay_draws_each_landmark_and_the_box_on_a_copy() -> None:
    picture = drawn_face()
    before = picture.tobytes()
    drawn = draw_overlay(picture, box=FACE_BOX, landmarks=FACE_LANDMARKS)
    assert picture.tobytes() == before
    for x, y in FACE_LANDMARKS:
        assert drawn.getpixel((int(x), int(y))) == LANDMARK_FILL
    assert drawn.getpixel((int(FACE_BOX[0]), 150)) == BOX_COLOUR
    assert drawn.getpixel((120, int(FACE_BOX[1]))) == BOX_COLOUR


def test_a_face_picture_puts_the_landmarks_where_the_engine_found_them_after_crop_and_zoom() -> None:
    shown = face_picture(drawn_face(), FACE_BOX, FACE_LANDMARKS, margin=0.5, zoom_factor=1.5, overlay=True)
    # crop: box 120x160 plus 60/80 each side = 240x320 from (0, -10); zoom 1.5 about the centre
    assert shown.size == (160, 213)
    left, top = 40, 53  # where the zoom window starts in the crop
    for x, y in FACE_LANDMARKS:
        assert shown.getpixel((round(x - 0 - left), round(y + 10 - top))) == LANDMARK_FILL
    plain_view = face_picture(drawn_face(), FACE_BOX, FACE_LANDMARKS, margin=0.5, zoom_factor=1.5)
    assert not (np.asarray(plain_view) == LANDMARK_FILL).all(axis=2).any()


def test_a_bgr_array_becomes_an_rgb_picture() -> None:
    bgr = np.zeros((2, 3, 3), dtype=np.uint8)
    bgr[0, 0] = (255, 0, 0)  # blue in OpenCV's order
    picture = picture_from_bgr(bgr)
    assert picture.size == (3, 2)
    assert picture.getpixel((0, 0)) == (0, 0, 255)
    with pytest.raises(ValueError, match="HxWx3 uint8 BGR"):
        picture_from_bgr(np.zeros((2, 3), dtype=np.uint8))


def test_helpers_accept_pictures_in_other_modes() -> None:
    grey = Image.new("L", (100, 100), 200)
    assert crop_face(grey, (25.0, 25.0, 75.0, 75.0)).mode == "RGB"
    assert draw_overlay(grey, landmarks=[(50.0, 50.0)]).getpixel((50, 50)) == LANDMARK_FILL
