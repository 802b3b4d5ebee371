"""Five-point face landmarks: dlib's regression-tree cascade, evaluated in numpy.

The model is ``shape_predictor_5_face_landmarks.dat`` converted to dense arrays (see
``engine.faces.dlib_format.ShapePredictorArrays``). Prediction follows dlib's
``shape_predictor::operator()`` step for step, including its float32 arithmetic, so the
integer landmarks agree exactly with dlib's: the chip, and so the template, depends on them.
All trees of a cascade, all feature pixels and all boxes are evaluated at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from engine.errors import ImageError, ModelError
from engine.faces.dlib_format import ShapePredictorArrays
from engine.faces.types import Box

F32 = np.float32
F64Array = npt.NDArray[np.float64]


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8:
        raise ImageError(f"image has pixel type {image.dtype}; decode it to 8-bit RGB first")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ImageError(f"image has shape {image.shape}; expected an RGB (H, W, 3) or greyscale (H, W) array")
    if image.size == 0:
        raise ImageError("image has no pixels; check the file decodes to a picture")


def pixel_intensity(pixels: np.ndarray) -> npt.NDArray[np.uint8]:
    """Grey levels of (..., 3) RGB pixels as dlib's ``get_pixel_intensity`` gives them: floor((R+G+B)/3)."""
    grey: npt.NDArray[np.uint8] = (pixels.astype(np.uint16).sum(axis=-1) // 3).astype(np.uint8)
    return grey


def similarity_transform(src: F64Array, dst: F64Array) -> tuple[F64Array, F64Array]:
    """The least-squares similarity ``x -> A @ x + t`` mapping points ``src`` onto ``dst``.

    This is Umeyama's estimator (dlib's ``find_similarity_transform``: rotation, uniform scale
    and translation, reflections excluded) in its closed 2-D form, where ``A = [[a, -b], [b, a]]``:
    it agrees with dlib's SVD route to ~1e-15, far below what the float32 landmark arithmetic
    and the integer rounding can see. ``src`` and ``dst`` are (..., P, 2); returns
    ``A`` (..., 2, 2) and ``t`` (..., 2), in double.
    """
    mean_src = src.mean(axis=-2)
    mean_dst = dst.mean(axis=-2)
    src_c = src - mean_src[..., None, :]
    dst_c = dst - mean_dst[..., None, :]
    sigma_src = (src_c**2).sum(axis=(-2, -1))
    dot = (src_c * dst_c).sum(axis=(-2, -1))
    cross = (src_c[..., 0] * dst_c[..., 1] - src_c[..., 1] * dst_c[..., 0]).sum(axis=-1)
    # dlib uses scale 1 when the source points coincide; the rotation is then undefined anyway.
    degenerate = sigma_src == 0
    safe_sigma = np.where(degenerate, 1.0, sigma_src)
    a = np.where(degenerate, 1.0, dot / safe_sigma)
    b = np.where(degenerate, 0.0, cross / safe_sigma)
    lin: F64Array = np.stack([np.stack([a, -b], axis=-1), np.stack([b, a], axis=-1)], axis=-2)
    t: F64Array = mean_dst - np.einsum("...ij,...j->...i", lin, mean_src)
    return lin, t


class ShapePredictor:
    """dlib's 5-point shape predictor: (image, face box) -> 5 integer landmarks.

    Landmark order is dlib's: the image-right eye (outer, inner corner), the image-left eye
    (outer, inner corner), then the base of the nose.
    """

    def __init__(self, arrays: ShapePredictorArrays) -> None:
        self._initial = np.ascontiguousarray(arrays.initial_shape, dtype=F32)
        n_parts = self._initial.shape[0]
        self._idx1 = np.ascontiguousarray(arrays.split_idx1, dtype=np.intp)
        self._idx2 = np.ascontiguousarray(arrays.split_idx2, dtype=np.intp)
        self._thresh = np.ascontiguousarray(arrays.split_thresh, dtype=F32)
        self._leaves = np.ascontiguousarray(arrays.leaves, dtype=F32)
        self._anchor = np.ascontiguousarray(arrays.anchor_idx, dtype=np.intp)
        self._deltas = np.ascontiguousarray(arrays.deltas, dtype=F32)
        n_cascades, n_trees, n_splits = self._idx1.shape
        n_leaves = n_splits + 1
        depth = n_leaves.bit_length() - 1
        n_features = self._anchor.shape[1]
        shapes_ok = (
            self._initial.shape == (n_parts, 2)
            and n_leaves == 1 << depth
            and self._idx2.shape == self._idx1.shape
            and self._thresh.shape == self._idx1.shape
            and self._leaves.shape == (n_cascades, n_trees, n_leaves, n_parts, 2)
            and self._anchor.shape == (n_cascades, n_features)
            and self._deltas.shape == (n_cascades, n_features, 2)
        )
        if not shapes_ok:
            raise ModelError("shape predictor arrays have inconsistent shapes; rebuild the models")
        in_range = (
            self._idx1.min() >= 0
            and self._idx2.min() >= 0
            and max(self._idx1.max(), self._idx2.max()) < n_features
            and self._anchor.min() >= 0
            and self._anchor.max() < n_parts
        )
        if not in_range:
            raise ModelError("shape predictor arrays index outside their feature pool; rebuild the models")
        self._depth = depth
        self._n_splits = n_splits
        self._n_trees = n_trees
        self._split_flat_len = n_trees * n_splits
        self._idx1_flat = self._idx1.reshape(n_cascades, -1)
        self._idx2_flat = self._idx2.reshape(n_cascades, -1)
        self._thresh_flat = self._thresh.reshape(n_cascades, -1)
        self._split_base = np.arange(n_trees, dtype=np.intp) * n_splits
        self._leaf_base = np.arange(n_trees, dtype=np.intp) * n_leaves
        self._leaves_flat = self._leaves.reshape(n_cascades, n_trees * n_leaves, n_parts * 2)
        self._initial64 = self._initial.astype(np.float64)

    @property
    def num_parts(self) -> int:
        return int(self._initial.shape[0])

    def predict(self, image: np.ndarray, box: Box) -> npt.NDArray[np.int64]:
        """The (5, 2) integer landmarks (x, y) of the face in ``box``."""
        points: npt.NDArray[np.int64] = self.predict_many(image, [box])[0]
        return points

    def predict_many(self, image: np.ndarray, boxes: Sequence[Box]) -> npt.NDArray[np.int64]:
        """Landmarks for several boxes of one image at once: (N, 5, 2) int64."""
        _check_image(image)
        n = len(boxes)
        if n == 0:
            return np.zeros((0, self.num_parts, 2), dtype=np.int64)
        rects = np.array([b.as_list() for b in boxes], dtype=np.float64)
        left, top = rects[:, 0:1], rects[:, 1:2]
        # dlib's unnormalizing transform maps (0,0),(1,0),(1,1) to the inclusive corners.
        width, height = rects[:, 2:3] - left, rects[:, 3:4] - top
        h_img, w_img = image.shape[:2]
        # Only the sampled pixels are converted to grey: converting a whole photograph costs more.
        flat_pixels = image.reshape(h_img * w_img, -1)
        rgb = image.ndim == 3
        current = np.broadcast_to(self._initial, (n, *self._initial.shape)).copy()
        n_parts = current.shape[1]
        row_offsets = (np.arange(n) * self._split_flat_len)[:, None]
        for cascade in range(self._idx1.shape[0]):
            lin = similarity_transform(self._initial64, current.astype(np.float64))[0].astype(F32)
            deltas = self._deltas[cascade]
            anchors = current[:, self._anchor[cascade], :]  # (N, F, 2) float32
            # float32, in dlib's order: (m00*dx + m01*dy) + anchor
            qx = (lin[:, 0, 0:1] * deltas[:, 0] + lin[:, 0, 1:2] * deltas[:, 1]) + anchors[:, :, 0]
            qy = (lin[:, 1, 0:1] * deltas[:, 0] + lin[:, 1, 1:2] * deltas[:, 1]) + anchors[:, :, 1]
            px = np.floor(left + qx.astype(np.float64) * width + 0.5)
            py = np.floor(top + qy.astype(np.float64) * height + 0.5)
            inside = (px >= 0) & (px < w_img) & (py >= 0) & (py < h_img)
            flat = np.where(inside, py * w_img + px, 0).astype(np.intp)
            sampled = flat_pixels[flat]
            grey = pixel_intensity(sampled) if rgb else sampled[..., 0]
            features = np.where(inside, grey, 0).astype(F32)  # (N, F)

            # Every split of every tree compared at once, then a depth-step walk over the outcomes.
            go_left = (features[:, self._idx1_flat[cascade]] - features[:, self._idx2_flat[cascade]]) > (
                self._thresh_flat[cascade]
            )
            go_left_flat = go_left.reshape(-1)
            node = np.zeros((n, self._n_trees), dtype=np.intp)
            for _ in range(self._depth):
                taken = go_left_flat[row_offsets + self._split_base + node]
                node = 2 * node + 2 - taken
            leaf_values = self._leaves_flat[cascade][self._leaf_base + node - self._n_splits]  # (N, T, P*2)
            # dlib adds the trees' leaves one after another in float32; cumsum keeps that order.
            stacked = np.concatenate([current.reshape(n, 1, 2 * n_parts), leaf_values], axis=1)
            current = np.cumsum(stacked, axis=1, dtype=F32)[:, -1].reshape(n, n_parts, 2)
        xs = np.floor(left + current[:, :, 0].astype(np.float64) * width + 0.5)
        ys = np.floor(top + current[:, :, 1].astype(np.float64) * height + 0.5)
        return np.stack([xs, ys], axis=-1).astype(np.int64)
