"""Pillow helpers that prepare a face photograph for the screen: crop with margin, zoom, overlays.

Text cannot be drawn over protocol pixels (Kitty, Sixel), so every overlay is drawn into the
picture itself before it is handed to the widget. All work happens in memory on copies; nothing
here writes a file. Coordinates are pixels of the picture given, ``(x, y)`` from the top left;
boxes are ``(left, top, right, bottom)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

Box = tuple[float, float, float, float]
Point = tuple[float, float]

# Beyond the photograph's edge a crop is filled with neutral grey, so padding is never mistaken
# for dark hair or a dark background.
PADDING_GREY = (128, 128, 128)
BOX_COLOUR = (255, 215, 0)
LANDMARK_FILL = (0, 229, 255)
OUTLINE = (0, 0, 0)


def picture_from_bgr(array: np.ndarray) -> Image.Image:
    """A Pillow RGB picture from an OpenCV-style ``HxWx3`` uint8 BGR array (the engine's layout)."""
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 BGR array, got shape {array.shape} and dtype {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(array[:, :, ::-1]), mode="RGB")


def _check_box(box: Box) -> None:
    left, top, right, bottom = box
    if not (right > left and bottom > top):
        raise ValueError(f"a face box needs right > left and bottom > top, got {box}")


def crop_face(picture: Image.Image, box: Box, margin: float = 0.5) -> Image.Image:
    """The face in ``box`` with ``margin`` times the box's size added on every side.

    The crop keeps the box's proportions and the face at its centre: where it reaches past the
    photograph's edge it is padded with neutral grey rather than shifted or squeezed.
    """
    _check_box(box)
    if margin < 0:
        raise ValueError(f"margin must be 0 or more, got {margin}")
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    crop = (
        round(left - margin * width),
        round(top - margin * height),
        round(right + margin * width),
        round(bottom + margin * height),
    )
    canvas = Image.new("RGB", (crop[2] - crop[0], crop[3] - crop[1]), PADDING_GREY)
    inside = (max(crop[0], 0), max(crop[1], 0), min(crop[2], picture.width), min(crop[3], picture.height))
    if inside[2] > inside[0] and inside[3] > inside[1]:
        canvas.paste(picture.convert("RGB").crop(inside), (inside[0] - crop[0], inside[1] - crop[1]))
    return canvas


def zoom(picture: Image.Image, factor: float, centre: Point | None = None) -> Image.Image:
    """The part of ``picture`` that ``factor`` times magnification shows around ``centre``.

    The result has the picture's aspect ratio (the widget scales it to fit); the window is moved,
    not shrunk, to stay inside the picture. ``factor`` 1 returns a copy of the whole picture.
    """
    if factor < 1:
        raise ValueError(f"zoom factor must be 1 or more, got {factor}")
    width = max(1, round(picture.width / factor))
    height = max(1, round(picture.height / factor))
    cx, cy = centre if centre is not None else (picture.width / 2, picture.height / 2)
    left = min(max(round(cx - width / 2), 0), picture.width - width)
    top = min(max(round(cy - height / 2), 0), picture.height - height)
    return picture.crop((left, top, left + width, top + height))


def draw_overlay(picture: Image.Image, *, box: Box | None = None, landmarks: Sequence[Point] = ()) -> Image.Image:
    """A copy of ``picture`` with the face box and the landmark points drawn on it.

    Lines and dots are sized from the face (or the picture) so they read the same at any
    resolution, and outlined in black so they show on light and dark skin alike.
    """
    out = picture.convert("RGB")  # always a copy
    if box is not None:
        _check_box(box)
    scale = max(box[2] - box[0], box[3] - box[1]) if box is not None else max(picture.size)
    line = max(1, round(scale / 80))
    radius = max(2, round(scale / 45))
    draw = ImageDraw.Draw(out)
    if box is not None:
        left, top, right, bottom = box
        draw.rectangle((left - line, top - line, right + line, bottom + line), outline=OUTLINE, width=line)
        draw.rectangle((left, top, right, bottom), outline=BOX_COLOUR, width=line)
    for x, y in landmarks:
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=LANDMARK_FILL, outline=OUTLINE, width=line)
    return out


def face_picture(
    picture: Image.Image,
    box: Box,
    landmarks: Sequence[Point] = (),
    *,
    margin: float = 0.5,
    zoom_factor: float = 1.0,
    overlay: bool = False,
) -> Image.Image:
    """The picture a comparison view shows: overlay (if asked), then crop with margin, then zoom.

    The overlay is drawn in the photograph's own coordinates before cropping, so the points
    land where the engine found them whatever the crop and zoom.
    """
    source = draw_overlay(picture, box=box, landmarks=landmarks) if overlay else picture
    return zoom(crop_face(source, box, margin), zoom_factor)
