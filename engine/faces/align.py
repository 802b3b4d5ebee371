"""Face-chip alignment: dlib's ``get_face_chip`` reproduced pixel for pixel in numpy.

The face embedding network was trained on chips cut exactly this way, so the chip must
match dlib's to the byte: the same similarity to a mean face, the same centred rectangle,
the same pyramid_down<2> levels for large faces, the same double-precision bilinear
sampling with truncation, and zero wherever a bilinear neighbour falls outside the image
(or outside the crop dlib takes around the face). ``../shared/DLIB_MODELS.md`` section 7.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from engine.errors import ImageError
from engine.faces.landmarks import similarity_transform

F64Array = npt.NDArray[np.float64]
U8Array = npt.NDArray[np.uint8]

# dlib's mean positions of the 5 landmarks in a unit face square: the image-right eye
# (outer, inner corner), the image-left eye (outer, inner corner), the base of the nose.
_MEAN_FACE_5 = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ],
    dtype=np.float64,
)

# (left, top, right, bottom) in dlib's drectangle convention: width = right - left + 1.
_Rect = tuple[float, float, float, float]


@dataclass(frozen=True)
class ChipTransform:
    """Where a face chip comes from: chip pixel (c, r) shows image point ``linear @ (c, r) + offset``.

    ``rect`` and ``angle`` are dlib's ``chip_details`` (the unrotated chip rectangle in the
    image, and its rotation in radians); ``scale`` is image pixels per chip pixel. The mapping
    also holds for large faces cut from a pyramid level: dlib's pyramid geometry maps that
    level's rectangle back onto this one.
    """

    size: int
    rect: _Rect
    angle: float
    linear: F64Array  # (2, 2)
    offset: F64Array  # (2,)

    @property
    def scale(self) -> float:
        return float(math.sqrt(self.linear[0, 0] ** 2 + self.linear[1, 0] ** 2))

    def to_image(self, chip_points: npt.ArrayLike) -> F64Array:
        """Map (..., 2) chip coordinates (x, y) to image coordinates."""
        pts = np.asarray(chip_points, dtype=np.float64)
        out: F64Array = pts @ self.linear.T + self.offset
        return out

    def to_chip(self, image_points: npt.ArrayLike) -> F64Array:
        """Map (..., 2) image coordinates (x, y) to chip coordinates."""
        pts = np.asarray(image_points, dtype=np.float64)
        out: F64Array = (pts - self.offset) @ np.linalg.inv(self.linear).T
        return out


def _rect_area(rect: _Rect) -> float:
    left, top, right, bottom = rect
    if top > bottom or left > right:
        return 0.0
    return (right - left + 1) * (bottom - top + 1)


def _rect_down(rect: _Rect) -> _Rect:
    """pyramid_down<2>::rect_down: each corner maps to (x/2 - 1.25, y/2 - 0.75)."""
    left, top, right, bottom = rect
    return (left / 2.0 - 1.25, top / 2.0 - 0.75, right / 2.0 - 1.25, bottom / 2.0 - 0.75)


def _rotate(center: tuple[float, float], point: tuple[float, float], sin_a: float, cos_a: float) -> tuple[float, float]:
    """dlib's rotate_point, operation for operation."""
    px, py = point[0] - center[0], point[1] - center[1]
    return (cos_a * px - sin_a * py + center[0], sin_a * px + cos_a * py + center[1])


def _rect_center(rect: _Rect) -> tuple[float, float]:
    left, top, right, bottom = rect
    return ((left + right) / 2.0, (top + bottom) / 2.0)


def _round_half_up(v: float) -> int:
    return math.floor(v + 0.5)


def chip_transform(landmarks: npt.ArrayLike, size: int = 150, padding: float = 0.25) -> ChipTransform:
    """dlib's ``get_face_chip_details`` for 5 landmarks, plus the chip-to-image mapping it implies.

    ``landmarks`` are dlib's 5 points in its order (integers, as dlib stores them; floats are
    rounded half up). ``padding`` is used as given; dlib's Python ``get_face_chip`` passes it
    through float32, which changes nothing for the default 0.25.
    """
    pts = np.asarray(landmarks)
    if pts.shape != (5, 2):
        raise ImageError(f"face chip needs 5 landmarks as (5, 2) points, got shape {pts.shape}")
    if size < 2:
        raise ValueError("chip size must be at least 2 pixels")
    if not padding >= 0:
        raise ValueError("chip padding must be non-negative")
    # dlib takes the landmarks as integer points.
    img_pts = np.floor(pts.astype(np.float64) + 0.5) if pts.dtype.kind == "f" else pts.astype(np.float64)
    chip_pts = (padding + _MEAN_FACE_5) / (2 * padding + 1) * float(size)
    lin, t = similarity_transform(chip_pts, img_pts)
    px, py = float(lin[0, 0]), float(lin[1, 0])
    angle = math.atan2(py, px)
    scale = math.sqrt(px * px + py * py)
    half = float(size) / 2.0
    cx = float(lin[0, 0]) * half + float(lin[0, 1]) * half + float(t[0])
    cy = float(lin[1, 0]) * half + float(lin[1, 1]) * half + float(t[1])
    w = size * scale - 1
    rect = (cx - w / 2, cy - w / 2, cx + w / 2, cy + w / 2)
    linear, offset = _sampling_affine(rect, angle, size)
    return ChipTransform(size=size, rect=rect, angle=angle, linear=linear, offset=offset)


def _sampling_affine(rect: _Rect, angle: float, size: int) -> tuple[F64Array, F64Array]:
    """The affine map from chip pixels to ``rect``'s rotated corners (dlib's find_affine_transform)."""
    sin_a, cos_a = math.sin(angle), math.cos(angle)
    center = _rect_center(rect)
    left, top, right, bottom = rect
    tl = _rotate(center, (left, top), sin_a, cos_a)
    tr = _rotate(center, (right, top), sin_a, cos_a)
    bl = _rotate(center, (left, bottom), sin_a, cos_a)
    n = float(size - 1)
    linear = np.array([[(tr[0] - tl[0]) / n, (bl[0] - tl[0]) / n], [(tr[1] - tl[1]) / n, (bl[1] - tl[1]) / n]])
    return linear, np.array(tl, dtype=np.float64)


_PYRAMID_KERNEL = np.array([1, 4, 6, 4, 1], dtype=np.float32)
_ROWS_PER_BLOCK = 16  # keeps the bilinear temporaries small (fewer page faults)


def pyramid_down2(image: U8Array) -> U8Array:
    """dlib's pyramid_down<2>: a 5x5 [1 4 6 4 1] filter, keep every other pixel, truncate.

    Output pixel (i, j) is the filtered input at (2i + 2, 2j + 2) divided by 256 and
    truncated; the output is floor((n - 3) / 2) pixels on a side, and dlib gives an empty
    image when either side of the input is 8 pixels or fewer. OpenCV does the filtering in
    float32, which is exact here: every partial sum is an integer below 2**24.
    """
    rows, cols = image.shape[:2]
    if rows <= 8 or cols <= 8:
        return np.zeros((0, 0, *image.shape[2:]), dtype=np.uint8)
    out_r, out_c = (rows - 3) // 2, (cols - 3) // 2
    filtered = cv2.sepFilter2D(image, cv2.CV_32F, _PYRAMID_KERNEL, _PYRAMID_KERNEL, borderType=cv2.BORDER_CONSTANT)
    kept = filtered[2 : 2 * out_r + 1 : 2, 2 : 2 * out_c + 1 : 2]
    out: U8Array = (kept * np.float32(1 / 256)).astype(np.uint8).reshape(out_r, out_c, *image.shape[2:])
    return out


def _bilinear(source: U8Array, linear: F64Array, offset: F64Array, size: int) -> U8Array:
    """dlib's transform_image with interpolate_bilinear and a black background.

    Chip pixel (c, r) samples ``source`` at ``linear @ (c, r) + offset`` from its floor
    neighbours in double precision, truncating to uint8; if any neighbour is outside, it is 0.
    """
    channels = source.shape[2]
    src_r, src_c = source.shape[:2]
    out = np.zeros((size, size, channels), dtype=np.uint8)
    if src_r < 2 or src_c < 2:
        return out
    flat = source.reshape(src_r * src_c, channels)
    cols = np.arange(size, dtype=np.float64)[None, :]
    for r0 in range(0, size, _ROWS_PER_BLOCK):
        rows = np.arange(r0, min(r0 + _ROWS_PER_BLOCK, size), dtype=np.float64)[:, None]
        # dlib's point_transform_affine: (m00*c + m01*r) + b0, in double.
        x = (linear[0, 0] * cols + linear[0, 1] * rows + offset[0]).reshape(-1)
        y = (linear[1, 0] * cols + linear[1, 1] * rows + offset[1]).reshape(-1)
        left = np.floor(x)
        top = np.floor(y)
        valid = (left >= 0) & (top >= 0) & (left + 1 < src_c) & (top + 1 < src_r)
        if not valid.any():
            continue
        lr = (x - left)[:, None]
        tb = (y - top)[:, None]
        base = np.where(valid, top * src_c + left, 0).astype(np.intp)
        tl = np.take(flat, base, axis=0).astype(np.float64)
        tr = np.take(flat, base + 1, axis=0).astype(np.float64)
        bl = np.take(flat, base + src_c, axis=0).astype(np.float64)
        br = np.take(flat, base + src_c + 1, axis=0).astype(np.float64)
        # (1-tb)*((1-lr)*tl + lr*tr) + tb*((1-lr)*bl + lr*br), dlib's order, computed in place.
        one_minus_lr = 1 - lr
        tl *= one_minus_lr
        tr *= lr
        tl += tr
        bl *= one_minus_lr
        br *= lr
        bl += br
        tl *= 1 - tb
        bl *= tb
        tl += bl
        tl[~valid] = 0.0
        # assign_pixel clamps to [0, 255] and then truncates.
        np.clip(tl, 0, 255, out=tl)
        out[r0 : r0 + rows.shape[0]] = tl.astype(np.uint8).reshape(rows.shape[0], size, channels)
    return out


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f"face chip needs an 8-bit RGB image (H, W, 3), got {image.dtype} with shape {image.shape}")


def extract_face_chip(image: np.ndarray, landmarks: npt.ArrayLike, size: int = 150, padding: float = 0.25) -> U8Array:
    """The aligned (size, size, 3) face chip, byte-identical to ``dlib.get_face_chip``."""
    _check_image(image)
    tf = chip_transform(landmarks, size, padding)
    return _extract(image, tf)


def _extract(image: U8Array, tf: ChipTransform) -> U8Array:
    size = tf.size
    chip_area = float(size * size)
    height, width = image.shape[:2]
    left, top, right, bottom = tf.rect

    # dlib's fast path: no rotation and exactly one image pixel per chip pixel is a plain copy.
    if tf.angle == 0 and right - left + 1 == size and bottom - top + 1 == size:
        return _copy_square(image, _round_half_up(left), _round_half_up(top), size)

    # Pyramid depth (how many halvings keep the chip rectangle larger than the chip) sets the crop border.
    grow = 2.0
    rect = _rect_down(tf.rect)
    while _rect_area(rect) > chip_area:
        rect = _rect_down(rect)
        grow = grow * 2 + 2  # 2 more pixels of border per level, doubled by each level above

    # The crop: the rotated rectangle's bounding box, grown, clipped to the image, rounded.
    sin_a, cos_a = math.sin(tf.angle), math.cos(tf.angle)
    center = _rect_center(tf.rect)
    corners = [_rotate(center, p, sin_a, cos_a) for p in ((left, top), (right, top), (left, bottom), (right, bottom))]
    bx0 = max(min(p[0] for p in corners) - grow, 0.0)
    by0 = max(min(p[1] for p in corners) - grow, 0.0)
    bx1 = min(max(p[0] for p in corners) + grow, float(width - 1))
    by1 = min(max(p[1] for p in corners) + grow, float(height - 1))
    crop_l, crop_t, crop_r, crop_b = (_round_half_up(v) for v in (bx0, by0, bx1, by1))
    if crop_l > crop_r or crop_t > crop_b:
        crop_l, crop_t, crop_r, crop_b = 0, 0, -1, -1  # dlib's empty rectangle
    crop = image[crop_t : crop_b + 1, crop_l : crop_r + 1]

    # Which pyramid level to sample, and the chip rectangle in that level's coordinates. For one
    # chip this is level depth - 1 (dlib builds `depth` levels and samples the last one).
    rect = (left - crop_l, top - crop_t, right - crop_l, bottom - crop_t)
    level = -1
    while _rect_area(_rect_down(rect)) > chip_area:
        level += 1
        rect = _rect_down(rect)
    source = crop
    for _ in range(level + 1):
        source = pyramid_down2(source)
    linear, offset = _sampling_affine(rect, tf.angle, size)
    return _bilinear(source, linear, offset, size)


def _copy_square(image: U8Array, left: int, top: int, size: int) -> U8Array:
    """dlib's basic_extract_image_chip: copy the square at (left, top), zero outside the image."""
    height, width = image.shape[:2]
    out = np.zeros((size, size, image.shape[2]), dtype=np.uint8)
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + size, width), min(top + size, height)
    if x0 < x1 and y0 < y1:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
    return out
