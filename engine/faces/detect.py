"""MMOD CNN face detector: dlib's tiled image pyramid in, score map out, face boxes back.

The network itself (``mmod_human_face_detector``) is an injected callable that maps the
pyramid tensor to its score map, so this module builds no graphs and loads no models.
Everything around it reproduces dlib 20 (``cnn_face_detection_model_v1``) step by step,
following ``../shared/DLIB_MODELS.md`` section 5, so that boxes are the same as dlib's:

1. ``upsample`` times ``pyramid_up``: (h, w) -> (2h+1, 2w+2), bilinear, truncated to uint8;
2. the tiled pyramid (``pyramid_down<6>``: levels of 5/6 the size, padding 10, outer
   padding 11) of normalised floats, each tile resized from the previous one;
3. every score-map cell with score > threshold becomes an 80x80 window, mapped back
   through its tile to image coordinates;
4. greedy non-maximum suppression with dlib's overlap test;
5. boxes mapped back down through the upsampling.

Boxes round half away from zero (lround), as dlib 20's drectangle -> rectangle conversion
does; floor(x + 0.5) differs for negative halves, which occur for faces cut by the top or
left edge at pyramid level 0.

Bilinear resizing emulates dlib's float32 SIMD arithmetic (accumulated float32 sample
positions, truncation, summation order) so that the pyramid tensor and the upsampled
image are bit-identical to dlib's rather than merely close.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from engine.errors import ImageError, ModelError, UsageError
from engine.faces.types import Box, Detection

ScoreMapFn = Callable[[np.ndarray], np.ndarray]
"""The network: tensor [1, 3, H, W] float32 -> score map [1, 1, H', W'] float32."""

# Pixel budget of the (upsampled) image the detector will run on. Peak memory with the
# OpenVINO CPU plugin measured 0.6 GB at 2 MP, 2.4 GB at 10 MP, 4.7 GB at 20 MP, so 20 MP keeps
# a detection within ~5 GB on a small terminal (1080p with one upsampling is 8.3 MP).
MAX_PIXELS = 20_000_000
"""Largest image, in pixels after upsampling, that ``FaceDetector.detect`` accepts.

Memory grows linearly with it: the pyramid tensor is about 3.6x the image area in three
float32 channels (44 bytes per image pixel, 1.8 GB at this limit), and with the OpenVINO
CPU plugin a detection peaked at about 0.23 GB per megapixel in all (2.4 GB at 10 MP,
4.7 GB at 20 MP; so about 9.5 GB at this limit). The limit bounds a single detection
instead of letting a hostile or careless image exhaust memory; lower it for small
terminals."""

MAX_CANDIDATES = 20_000
"""At most this many highest-scoring cells go into non-maximum suppression.

Greedy NMS decides each box only from boxes that score higher, so the kept boxes among the
top N are exactly dlib's; cutting the tail only matters for a very low ``min_confidence``."""

DEFAULT_NMS_IOU = 0.3382761351109955
"""NMS overlap threshold stored in ``mmod_human_face_detector.dat`` (loss_mmod options)."""

DEFAULT_NMS_COVERED = 1.0
"""NMS percent-covered threshold stored in the model file (1.0: never triggers)."""

DEFAULT_AVG = (122.782, 117.001, 104.298)
"""Per-channel (R, G, B) means stored in the model's input layer."""

PYRAMID_RATE = 6  # pyramid_down<6>: each level is 5/6 the size of the previous one
PYRAMID_PADDING = 10
PYRAMID_OUTER_PADDING = 11
PYRAMID_MIN_HEIGHT = 5
DETECTOR_WINDOW = 80  # the single 80x80 sliding window stored in the model file

# Geometry of the network: three 5x5 stride-2 unpadded convolutions, then size-preserving
# 5x5 and 9x9 stride-1 convolutions. Each stride-2 layer maps an output point p to input
# point 2p + 2, so score-map cell (r, c) sits at tensor point (8c + 14, 8r + 14).
_DOWNSAMPLING_CONVS = 3
_CELL_STRIDE = 8
_CELL_OFFSET = 14


# --------------------------------------------------------------------------------------
# Pyramid geometry


def pyramid_rects(
    rows: int, cols: int, padding: int = PYRAMID_PADDING, outer_padding: int = PYRAMID_OUTER_PADDING
) -> tuple[list[Box], int, int]:
    """Tile rectangles of dlib's tiled ``pyramid_down<6>`` pyramid and the tensor size.

    Returns (tiles in level order as inclusive boxes, tensor rows, tensor cols); dlib's
    ``compute_tiled_image_pyramid_details``. Level 0 is the image itself.
    """
    if rows <= 0 or cols <= 0:
        return [], 0, 0
    sizes = [(rows, cols)]  # (height, width) per level
    nr, nc = rows, cols
    while True:
        # find_pyramid_down_output_image_size: floor(rate * n) with rate = (N-1)/N in double
        rate = (PYRAMID_RATE - 1.0) / PYRAMID_RATE
        nr, nc = math.floor(rate * nr), math.floor(rate * nc)
        if nr * nc == 0 or nr < PYRAMID_MIN_HEIGHT:
            break
        sizes.append((nr, nc))

    total_height = sum(h + padding for h, _ in sizes) - 2 * padding
    height = 0
    prev_width = 0
    h0, w0 = sizes[0]
    for h, w in sizes:
        # The first column ends once the next level fits beside the previous one and the
        # second column (stacked upward) would be tall enough to hold the rest.
        if w <= w0 - prev_width - padding and (height - h0) * 2 >= total_height - h0:
            break
        height += h + padding
        prev_width = w
    height -= padding
    tensor_rows = height + 2 * outer_padding
    tensor_cols = w0 + 2 * outer_padding

    rects: list[Box] = []
    y = outer_padding
    i = 0
    while y < height + outer_padding and i < len(sizes):
        h, w = sizes[i]
        rects.append(Box(outer_padding, y, outer_padding + w - 1, y + h - 1))
        y += h + padding
        i += 1
    y -= padding
    first = rects[0]
    while i < len(sizes):
        h, w = sizes[i]
        right, bottom = outer_padding + w0 - 1, y - 1
        rect = Box(right - (w - 1), bottom - (h - 1), right, bottom)
        # Stop at the first level that would overlap the image itself; drop the rest.
        if _intersect_area(first, rect) > 0:
            break
        rects.append(rect)
        y -= h + padding
        i += 1
    return rects, tensor_rows, tensor_cols


def _intersect_area(a: Box, b: Box) -> int:
    w = min(a.right, b.right) - max(a.left, b.left) + 1
    h = min(a.bottom, b.bottom) - max(a.top, b.top) + 1
    return w * h if w > 0 and h > 0 else 0


def score_map_shape(tensor_rows: int, tensor_cols: int) -> tuple[int, int]:
    """Score-map size the network produces for a tensor of this size (may be <= 0)."""
    r, c = tensor_rows, tensor_cols
    for _ in range(_DOWNSAMPLING_CONVS):
        r, c = 1 + (r - 5) // 2, 1 + (c - 5) // 2
    return r, c


def upsampled_size(rows: int, cols: int, times: int) -> tuple[int, int]:
    """Image size after ``times`` applications of dlib's ``pyramid_up`` (2h+1, 2w+2)."""
    for _ in range(times):
        rows, cols = 2 * rows + 1, 2 * cols + 2
    return rows, cols


# --------------------------------------------------------------------------------------
# dlib's bilinear resize (align corners), emulating its float32 SIMD arithmetic


def _accumulate(start: float, step: float, count: int, dtype: type[np.floating]) -> np.ndarray:
    """``start + step``, ``start + 2*step``, ... accumulated one addition at a time in dtype."""
    seq = np.full(count + 1, step, dtype=dtype)
    seq[0] = start
    return np.add.accumulate(seq, dtype=dtype)[1:]


class _Sampling:
    """Sample positions and weights of dlib's ``resize_image(..., interpolate_bilinear)``.

    dlib walks each output row with double y += y_scale. Columns go four at a time in SSE
    lanes: lane positions start as float32 and grow by float32(4*x_scale) per block, are
    truncated to the left index, and the block loop stops at the first block whose last
    lane's right neighbour would fall outside the image; the remaining columns use a
    scalar loop with double x += x_scale.
    """

    def __init__(self, in_rows: int, in_cols: int, out_rows: int, out_cols: int) -> None:
        xs = (in_cols - 1) / max(out_cols - 1, 1)
        ys = (in_rows - 1) / max(out_rows - 1, 1)

        y = _accumulate(-ys, ys, out_rows, np.float64)
        top = np.floor(y).astype(np.intp)
        self.top = top
        self.bottom = np.minimum(top + 1, in_rows - 1)
        self.tb = y - top  # double
        self.tb32 = self.tb.astype(np.float32)
        self.inv_tb32 = (1.0 - self.tb).astype(np.float32)

        # SIMD blocks of four columns.
        x0 = -4 * xs
        n_blocks = out_cols // 4 + 2
        lanes = np.empty((n_blocks + 1, 4), dtype=np.float32)
        lanes[0] = np.array([x0, x0 + xs, x0 + 2 * xs, x0 + 3 * xs], dtype=np.float64).astype(np.float32)
        lanes[1:] = np.float32(4 * xs)
        xf = np.add.accumulate(lanes, axis=0, dtype=np.float32)[1:]
        left_f = xf.astype(np.int64)  # truncation, as _mm_cvttps_epi32
        stops = np.nonzero(left_f[:, 3] + 1 >= in_cols)[0]
        simd_blocks = int(stops[0]) if stops.size else n_blocks
        n_simd = min(4 * simd_blocks, out_cols)
        xf = xf.reshape(-1)[:n_simd]
        left = left_f.reshape(-1)[:n_simd]
        self.n_simd = n_simd
        self.left = left.astype(np.intp)
        self.right = self.left + 1
        self.lr32 = xf - left.astype(np.float32)
        self.inv_lr32 = np.float32(1) - self.lr32

        # Scalar tail.
        n_tail = out_cols - n_simd
        xt = _accumulate(-xs + n_simd * xs, xs, n_tail, np.float64)
        tleft = np.floor(xt).astype(np.intp)
        self.tail_left = tleft
        self.tail_right = np.minimum(tleft + 1, in_cols - 1)
        self.tail_lr = xt - tleft  # double


_ROW_CHUNK = 32  # output rows blended at a time, so temporaries stay in cache


def _resize_planes(src: np.ndarray, out: np.ndarray) -> None:
    """Resize planes ``src`` (C, H, W) into ``out`` (C, H', W') as dlib's ``resize_image``.

    float32 planes follow dlib's float path (the scalar tail in float/double); uint8 planes
    follow its rgb_pixel path (the scalar tail in double) and are truncated to uint8.
    """
    n_planes, out_rows, out_cols = out.shape
    s = _Sampling(src.shape[1], src.shape[2], out_rows, out_cols)
    n = s.n_simd
    if n:
        weights = np.empty((4, _ROW_CHUNK, n), dtype=np.float32)
        acc = np.empty((_ROW_CHUNK, n), dtype=np.float32)
        tmp = np.empty((_ROW_CHUNK, n), dtype=np.float32)
        for r0 in range(0, out_rows, _ROW_CHUNK):
            r1 = min(r0 + _ROW_CHUNK, out_rows)
            k = r1 - r0
            # Gather the left and right source columns of the source rows this chunk reads.
            lo, hi = int(s.top[r0]), int(s.bottom[r1 - 1]) + 1
            band = src[:, lo:hi]
            cols_l = np.take(band, s.left, axis=2)
            cols_r = np.take(band, s.right, axis=2)
            top, bottom = s.top[r0:r1] - lo, s.bottom[r0:r1] - lo
            inv_tb, tb = s.inv_tb32[r0:r1, None], s.tb32[r0:r1, None]
            w = weights[:, :k]
            np.multiply(inv_tb, s.inv_lr32, out=w[0])
            np.multiply(inv_tb, s.lr32, out=w[1])
            np.multiply(tb, s.inv_lr32, out=w[2])
            np.multiply(tb, s.lr32, out=w[3])
            a, t = acc[:k], tmp[:k]
            for c in range(n_planes):
                # Summation order as dlib's SSE code: ((tl + tr) + bl) + br, all float32.
                np.multiply(w[0], cols_l[c, top], out=a)
                np.multiply(w[1], cols_r[c, top], out=t)
                a += t
                np.multiply(w[2], cols_l[c, bottom], out=t)
                a += t
                np.multiply(w[3], cols_r[c, bottom], out=t)
                a += t
                if out.dtype == np.uint8:
                    out[c, r0:r1, :n] = a.astype(np.int32)  # truncation, as _mm_cvttps_epi32
                else:
                    out[c, r0:r1, :n] = a
    if s.tail_left.size:
        tl = np.take(src, s.tail_left, axis=2)
        tr = np.take(src, s.tail_right, axis=2)
        tb64 = s.tb[:, None]
        if out.dtype == np.uint8:
            lr = s.tail_lr  # dlib's rgb scalar loop works in double
            t64 = tl.astype(np.float64)
            r64 = tr.astype(np.float64)
            top_mix = (1 - lr) * t64[:, s.top] + lr * r64[:, s.top]
            bot_mix = (1 - lr) * t64[:, s.bottom] + lr * r64[:, s.bottom]
            out[:, :, n:] = ((1 - tb64) * top_mix + tb64 * bot_mix).astype(np.int32)
        else:
            lr32 = s.tail_lr.astype(np.float32)  # dlib's float scalar loop keeps lr_frac as float
            inv_lr = np.float32(1) - lr32
            top32 = inv_lr * tl[:, s.top] + lr32 * tr[:, s.top]
            bot32 = inv_lr * tl[:, s.bottom] + lr32 * tr[:, s.bottom]
            val = (1.0 - tb64) * top32.astype(np.float64) + tb64 * bot32.astype(np.float64)
            out[:, :, n:] = val.astype(np.float32)


def _resize_float(src: np.ndarray, out_rows: int, out_cols: int) -> np.ndarray:
    """Resize float32 planes (C, H, W) exactly as dlib's float ``resize_image`` does."""
    out = np.empty((src.shape[0], out_rows, out_cols), dtype=np.float32)
    _resize_planes(src, out)
    return out


def _resize_rgb_u8(src: np.ndarray, out_rows: int, out_cols: int) -> np.ndarray:
    """Resize an RGB uint8 image (H, W, 3) exactly as dlib's rgb ``resize_image`` does."""
    out = np.empty((3, out_rows, out_cols), dtype=np.uint8)
    _resize_planes(np.ascontiguousarray(np.moveaxis(src, 2, 0)), out)
    return np.ascontiguousarray(np.moveaxis(out, 0, 2))


def pyramid_up(rgb: np.ndarray) -> np.ndarray:
    """dlib's ``pyramid_up`` with ``pyramid_down<2>``: (h, w, 3) -> (2h+1, 2w+2, 3) uint8."""
    rows, cols = upsampled_size(rgb.shape[0], rgb.shape[1], 1)
    return _resize_rgb_u8(rgb, rows, cols)


# --------------------------------------------------------------------------------------
# Pyramid tensor


def build_pyramid(rgb: np.ndarray, avg: Sequence[float] = DEFAULT_AVG) -> tuple[np.ndarray, list[Box]]:
    """The network input for an RGB uint8 image: tensor [1, 3, TH, TW] float32 and tiles.

    Tile 0 holds (pixel - avg) / 256 per channel; each later tile is the previous tile
    resized to the next level's size, on the normalised floats, as dlib's
    ``input_rgb_image_pyramid::to_tensor`` does. Everything else is zero.
    """
    rows, cols = rgb.shape[0], rgb.shape[1]
    rects, t_rows, t_cols = pyramid_rects(rows, cols)
    tensor = np.zeros((1, 3, t_rows, t_cols), dtype=np.float32)
    if not rects:
        return tensor, rects
    planes = tensor[0]
    prev = rects[0]
    tile = planes[:, prev.top : prev.bottom + 1, prev.left : prev.right + 1]
    mean = np.asarray(avg, dtype=np.float32).reshape(3, 1, 1)
    np.subtract(np.moveaxis(rgb, 2, 0), mean, out=tile, dtype=np.float32)
    tile *= np.float32(1.0 / 256.0)  # exact: a power of two
    for rect in rects[1:]:
        # Each tile is resized from the previous tile in place, as dlib does on the tensor.
        _resize_planes(tile, planes[:, rect.top : rect.bottom + 1, rect.left : rect.right + 1])
        tile = planes[:, rect.top : rect.bottom + 1, rect.left : rect.right + 1]
    return tensor, rects


# --------------------------------------------------------------------------------------
# Decoding, NMS, mapping back


def _lround(x: np.ndarray) -> np.ndarray:
    """dlib's ``lround``: halves round away from zero.

    Box corners at pyramid level 0 are always x.5, so for faces cut by the left or top
    edge (negative corners) floor(x + 0.5) would be one pixel off dlib; measured: with
    lround 233/233 fixture boxes are identical, with floor(x + 0.5) 231/233.
    """
    rounded: np.ndarray = (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)
    return rounded


def decode_score_map(
    scores: np.ndarray,
    rects: Sequence[Box],
    threshold: float = 0.0,
    max_candidates: int = MAX_CANDIDATES,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate boxes from a 2-D score map, before NMS, highest score first.

    Returns (boxes (n, 4) int64 as inclusive left, top, right, bottom in the pyramid's
    level-0 image coordinates, scores (n,) float64). Only cells with score > threshold
    count; ties keep raster order. At most ``max_candidates`` best cells are kept.
    """
    if scores.ndim != 2:
        raise ValueError("score map must be 2-D")
    if not rects:
        return np.zeros((0, 4), dtype=np.int64), np.zeros(0, dtype=np.float64)
    flat = scores.reshape(-1).astype(np.float64)  # dlib compares the score as a double
    idx = np.flatnonzero(flat > threshold)
    if idx.size > max_candidates:
        part = np.argpartition(-flat[idx], max_candidates - 1)[:max_candidates]
        idx = np.sort(idx[part])
    cand = flat[idx]
    order = np.argsort(-cand, kind="stable")
    idx, cand = idx[order], cand[order]
    r, c = np.divmod(idx, scores.shape[1])

    # Window centre in tensor space; the window is centre +/- (80 - 1) / 2.
    px = (_CELL_STRIDE * c + _CELL_OFFSET).astype(np.int64)
    py = (_CELL_STRIDE * r + _CELL_OFFSET).astype(np.int64)
    half = (DETECTOR_WINDOW - 1) / 2.0

    # Tile lookup: the first tile containing the (integer) centre, else the nearest tile.
    tiles = np.array([[b.left, b.top, b.right, b.bottom] for b in rects], dtype=np.int64)
    nx = np.clip(px[:, None], tiles[None, :, 0], tiles[None, :, 2])
    ny = np.clip(py[:, None], tiles[None, :, 1], tiles[None, :, 3])
    dist = np.hypot((nx - px[:, None]).astype(np.float64), (ny - py[:, None]).astype(np.float64))
    inside = dist == 0
    level = np.where(inside.any(axis=1), np.argmax(inside, axis=1), np.argmin(dist, axis=1))

    ox = tiles[level, 0].astype(np.float64)
    oy = tiles[level, 1].astype(np.float64)
    box = np.stack([px - half - ox, py - half - oy, px + half - ox, py + half - oy], axis=1)
    # pyramid_down<6>::point_up, once per level: p * (6/5) + 0.3
    ratio = PYRAMID_RATE / (PYRAMID_RATE - 1.0)
    for lv in range(1, int(level.max(initial=0)) + 1):
        sel = level >= lv
        box[sel] = box[sel] * ratio + 0.3
    return _lround(box), cand


def boxes_overlap(a: np.ndarray, b: np.ndarray, iou: float, covered: float = DEFAULT_NMS_COVERED) -> np.ndarray:
    """dlib's ``test_box_overlap`` between box ``b`` (4,) and each row of ``a`` (n, 4).

    Overlap when the intersection over the *smallest enclosing box* exceeds ``iou``, or
    the intersection covers more than ``covered`` of either box. Areas count inclusive
    pixels. Disjoint boxes never overlap.
    """
    iw = np.minimum(a[:, 2], b[2]) - np.maximum(a[:, 0], b[0]) + 1
    ih = np.minimum(a[:, 3], b[3]) - np.maximum(a[:, 1], b[1]) + 1
    inner = np.where((iw > 0) & (ih > 0), iw * ih, 0).astype(np.float64)
    ow = np.maximum(a[:, 2], b[2]) - np.minimum(a[:, 0], b[0]) + 1
    oh = np.maximum(a[:, 3], b[3]) - np.minimum(a[:, 1], b[1]) + 1
    outer = (ow * oh).astype(np.float64)
    area_a = ((a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)).astype(np.float64)
    area_b = float((b[2] - b[0] + 1) * (b[3] - b[1] + 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        hit = (inner / outer > iou) | (inner / area_a > covered) | (inner / area_b > covered)
    result: np.ndarray = (inner > 0) & hit
    return result


def non_max_suppression(
    boxes: np.ndarray, iou: float = DEFAULT_NMS_IOU, covered: float = DEFAULT_NMS_COVERED
) -> np.ndarray:
    """Greedy NMS over boxes already sorted best first; returns the indices kept, in order."""
    kept = np.empty((len(boxes), 4), dtype=np.int64)
    keep: list[int] = []
    for i in range(len(boxes)):
        if keep and boxes_overlap(kept[: len(keep)], boxes[i], iou, covered).any():
            continue
        kept[len(keep)] = boxes[i]
        keep.append(i)
    return np.asarray(keep, dtype=np.intp)


def map_boxes_down(boxes: np.ndarray, levels: int) -> np.ndarray:
    """Boxes in an image upsampled ``levels`` times -> boxes in the original image.

    ``pyramid_down<2>::rect_down(rect, levels)``: each corner goes through
    (x/2 - 1.25, y/2 - 0.75) once per level in double, then rounds once.
    """
    if levels == 0:
        return boxes.copy()
    p = boxes.astype(np.float64)
    shift = np.array([1.25, 0.75, 1.25, 0.75])
    for _ in range(levels):
        p = p / 2.0 - shift
    return _lround(p)


# --------------------------------------------------------------------------------------
# The detector


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ImageError("face detection needs an 8-bit image; convert the image to 8-bit RGB first")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ImageError(f"face detection needs an RGB or greyscale image, got shape {image.shape}; convert it to RGB")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError("the image is empty (zero pixels); choose another image")


class FaceDetector:
    """dlib's MMOD CNN face detector around an injected score-map function.

    ``score_map`` runs the network (tensor [1, 3, H, W] -> score map [1, 1, H', W']);
    ``avg`` and ``nms_iou`` come from the model file. ``detect`` returns what
    ``dlib.cnn_face_detection_model_v1(path)(rgb, upsample)`` returns, as ``Detection``s.
    """

    def __init__(
        self,
        score_map: ScoreMapFn,
        avg: Sequence[float] = DEFAULT_AVG,
        nms_iou: float = DEFAULT_NMS_IOU,
        *,
        nms_covered: float = DEFAULT_NMS_COVERED,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        if len(avg) != 3:
            raise ValueError("avg needs three channel means (R, G, B)")
        self._score_map = score_map
        self.avg = tuple(float(a) for a in avg)
        self.nms_iou = float(nms_iou)
        self.nms_covered = float(nms_covered)
        self.max_pixels = int(max_pixels)

    def check_size(self, rows: int, cols: int, upsample: int = 0) -> None:
        """Refuse (ImageError) an image that would exceed the pixel budget once upsampled."""
        up_rows, up_cols = upsampled_size(rows, cols, upsample)
        if up_rows * up_cols > self.max_pixels:
            raise ImageError(
                f"image of {cols}x{rows} pixels upsampled {upsample} time(s) is {up_cols}x{up_rows}, over the "
                f"{self.max_pixels / 1e6:g} megapixel limit for face detection; use less upsampling or a smaller image"
            )

    def detect(self, rgb: np.ndarray, upsample: int = 0, min_confidence: float = 0.0) -> list[Detection]:
        """Faces in an RGB (or greyscale) uint8 image, best first.

        Boxes are in the original image's pixels (dlib's inclusive rectangles; they may
        extend past the image edges, as dlib's do). ``min_confidence`` is dlib's
        ``adjust_threshold``: cells must score strictly above it.
        """
        if isinstance(upsample, bool) or not isinstance(upsample, int | np.integer) or upsample < 0:
            raise UsageError(f"upsample must be a whole number 0 or more, got {upsample!r}")
        upsample = int(upsample)
        if not math.isfinite(min_confidence):
            raise UsageError(f"min_confidence must be a finite number, got {min_confidence!r}")
        _check_image(rgb)
        self.check_size(rgb.shape[0], rgb.shape[1], upsample)  # before allocating anything
        image = rgb if rgb.ndim == 3 else np.repeat(rgb[:, :, None], 3, axis=2)  # grey -> RGB, as dlib

        for _ in range(upsample):
            image = pyramid_up(image)
        tensor, rects = build_pyramid(image, self.avg)
        expected = score_map_shape(tensor.shape[2], tensor.shape[3])
        if expected[0] <= 0 or expected[1] <= 0:
            return []  # too small for the network to see anything
        scores = np.asarray(self._score_map(tensor), dtype=np.float32)
        if scores.size != expected[0] * expected[1]:
            raise ModelError(
                f"face detector returned a score map of shape {scores.shape}, expected {expected}; "
                "the detector model does not match this software, reinstall the models"
            )
        scores = scores.reshape(expected)
        if not np.isfinite(scores).all():
            raise ModelError("face detector returned non-finite scores; the model or inference device is faulty")

        boxes, conf = decode_score_map(scores, rects, threshold=min_confidence)
        keep = non_max_suppression(boxes, self.nms_iou, self.nms_covered)
        boxes = map_boxes_down(boxes[keep], upsample)
        conf = conf[keep]
        return [Detection(Box(*(int(v) for v in b)), float(s)) for b, s in zip(boxes, conf, strict=True)]
