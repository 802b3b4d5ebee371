"""MMOD detector pre- and post-processing (engine.faces.detect), without dlib or the model.

Geometry is checked against the numbers in ../shared/DLIB_MODELS.md section 5; decoding,
NMS and box mapping against synthetic score maps with answers worked out by hand; the
bilinear resizing against digests recorded from dlib 20.0.1 (``dlib.resize_image``, the
same routine ``pyramid_up`` and the tensor pyramid use) on deterministic patterns.
"""

from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ImageError, ModelError, UsageError
from engine.faces import detect as D
from engine.faces.types import Box


def pattern(rows: int, cols: int) -> np.ndarray:
    """A deterministic, non-smooth RGB uint8 test image."""
    i, j, c = np.meshgrid(np.arange(rows), np.arange(cols), np.arange(3), indexing="ij")
    return ((i * 37 + j * 91 + c * 53 + (i * j) % 17) % 256).astype(np.uint8)


def naive_align_corners(planes: np.ndarray, out_rows: int, out_cols: int) -> np.ndarray:
    """Textbook align-corners bilinear resize in float64 (an independent reference)."""
    rows, cols = planes.shape[1:]
    y = np.arange(out_rows) * (rows - 1) / max(out_rows - 1, 1)
    x = np.arange(out_cols) * (cols - 1) / max(out_cols - 1, 1)
    t, left = np.floor(y).astype(int), np.floor(x).astype(int)
    b, right = np.minimum(t + 1, rows - 1), np.minimum(left + 1, cols - 1)
    fy, fx = (y - t)[None, :, None], (x - left)[None, None, :]
    f = planes.astype(np.float64)
    top = (1 - fx) * f[:, t][:, :, left] + fx * f[:, t][:, :, right]
    bot = (1 - fx) * f[:, b][:, :, left] + fx * f[:, b][:, :, right]
    return (1 - fy) * top + fy * bot


# ---------------------------------------------------------------------------- geometry


class TestPyramidGeometry:
    def test_fact_sheet_example_500x332(self) -> None:
        rects, rows, cols = D.pyramid_rects(332, 500)
        assert (rows, cols) == (1250, 522)
        assert len(rects) == 22
        assert rects[:3] == [Box(11, 11, 510, 342), Box(11, 353, 426, 628), Box(11, 639, 356, 868)]
        assert D.score_map_shape(rows, cols) == (153, 62)

    def test_build_pyramid_matches_geometry(self) -> None:
        tensor, rects = D.build_pyramid(np.zeros((332, 500, 3), np.uint8))
        assert tensor.shape == (1, 3, 1250, 522) and tensor.dtype == np.float32
        assert rects == D.pyramid_rects(332, 500)[0]

    @settings(max_examples=200, deadline=None)
    @given(rows=st.integers(1, 3000), cols=st.integers(1, 3000))
    def test_tiles_are_the_levels_placed_inside_without_overlap(self, rows: int, cols: int) -> None:
        rects, t_rows, t_cols = D.pyramid_rects(rows, cols)
        assert t_cols == cols + 22
        assert rects[0] == Box(11, 11, 10 + cols, 10 + rows)
        h, w = rows, cols
        for rect in rects[1:]:
            h, w = int(5 * h / 6), int(5 * w / 6)
            assert (rect.height, rect.width) == (h, w)
            assert h >= 5
        for i, a in enumerate(rects):
            assert 0 <= a.left and a.right < t_cols and 0 <= a.top and a.bottom < t_rows
            for b in rects[i + 1 :]:
                gap_x = max(a.left - b.right, b.left - a.right) - 1
                gap_y = max(a.top - b.bottom, b.top - a.bottom) - 1
                assert max(gap_x, gap_y) >= 0  # tiles never overlap
        column_one = [r for r in rects if r.left == 11]
        for a, b in itertools.pairwise(column_one):
            assert b.top - a.bottom - 1 == 10  # stacked downward with the 10-pixel padding

    def test_empty_image_has_no_tiles(self) -> None:
        assert D.pyramid_rects(0, 10) == ([], 0, 0)

    def test_upsampled_size(self) -> None:
        assert D.upsampled_size(332, 500, 0) == (332, 500)
        assert D.upsampled_size(332, 500, 1) == (665, 1002)
        assert D.upsampled_size(332, 500, 2) == (1331, 2006)


# ---------------------------------------------------------------------------- resizing


class TestPyramidTensor:
    def test_tile_zero_is_normalised_image_and_padding_is_zero(self) -> None:
        img = pattern(40, 57)
        tensor, rects = D.build_pyramid(img, (122.782, 117.001, 104.298))
        r0 = rects[0]
        avg = np.array([122.782, 117.001, 104.298], np.float32)
        expected = (np.moveaxis(img, 2, 0).astype(np.float32) - avg[:, None, None]) / np.float32(256)
        assert np.array_equal(tensor[0, :, r0.top : r0.bottom + 1, r0.left : r0.right + 1], expected)
        mask = np.zeros(tensor.shape[2:], bool)
        for r in rects:
            mask[r.top : r.bottom + 1, r.left : r.right + 1] = True
        assert not tensor[0][:, ~mask].any()

    def test_each_tile_is_align_corners_resize_of_previous(self) -> None:
        tensor, rects = D.build_pyramid(pattern(90, 131))
        planes = tensor[0]
        for prev, cur in itertools.pairwise(rects):
            src = planes[:, prev.top : prev.bottom + 1, prev.left : prev.right + 1]
            got = planes[:, cur.top : cur.bottom + 1, cur.left : cur.right + 1]
            want = naive_align_corners(src, cur.height, cur.width)
            # dlib accumulates sample positions in float32, hence the tolerance; a
            # half-pixel-centre resize (cv2.resize) would be off by ~0.1 here
            assert np.allclose(got, want, rtol=0, atol=1e-4)
            assert got[:, 0, 0].tolist() == src[:, 0, 0].tolist()  # corners align

    def test_pyramid_tensor_is_bit_identical_to_dlib(self) -> None:
        # Digest of the tensor built tile by tile with dlib.resize_image on float32 planes.
        # A float64 align-corners resize differs in ~32,000 values (up to 6e-6).
        tensor, rects = D.build_pyramid(pattern(61, 87))
        assert tensor.shape == (1, 3, 276, 109) and len(rects) == 13
        digest = hashlib.sha256(tensor.tobytes()).hexdigest()
        assert digest == "54e4ae60b5d800214dbb8fca3fbaf18925b3458a3b7fbe416b0c29e0c48ecac0"

    def test_pyramid_up_is_bit_identical_to_dlib(self) -> None:
        # dlib truncates float32 SIMD sums: 43 pixels differ from a float64 resize here.
        up = D.pyramid_up(pattern(23, 31))
        assert up.shape == (47, 64, 3) and up.dtype == np.uint8
        digest = hashlib.sha256(up.tobytes()).hexdigest()
        assert digest == "17ab3c4b98109ac55a58ee302de8545727c5b473f657895ad4eef3f37aa8f1bb"

    def test_pyramid_up_is_align_corners_with_truncation(self) -> None:
        img = pattern(30, 41)
        up = D.pyramid_up(img)
        want = np.moveaxis(naive_align_corners(np.moveaxis(img, 2, 0), 61, 84), 0, 2)
        diff = up.astype(int) - np.floor(want).astype(int)
        assert np.abs(diff).max() <= 1
        assert np.array_equal(up[0, 0], img[0, 0])
        # even the far corner may lose 1 to float32 weights and truncation, as in dlib
        assert np.abs(up[-1, -1].astype(int) - img[-1, -1]).max() <= 1

    @settings(max_examples=60, deadline=None)
    @given(rows=st.integers(1, 40), cols=st.integers(1, 40), out_rows=st.integers(1, 60), out_cols=st.integers(1, 60))
    def test_float_resize_any_size_close_to_align_corners(
        self, rows: int, cols: int, out_rows: int, out_cols: int
    ) -> None:
        src = (np.moveaxis(pattern(rows, cols), 2, 0).astype(np.float32) - 120) / 256
        got = D._resize_float(src, out_rows, out_cols)
        assert got.shape == (3, out_rows, out_cols)
        assert np.allclose(got, naive_align_corners(src, out_rows, out_cols), rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------- decoding


def geometry_500x332() -> list[Box]:
    return D.pyramid_rects(332, 500)[0]


class TestDecode:
    def test_cell_in_tile_zero(self) -> None:
        scores = np.full((153, 62), -1.0, np.float32)
        scores[5, 5] = 0.75
        boxes, conf = D.decode_score_map(scores, geometry_500x332())
        # centre 8*5+14 = 54; minus tile origin 11; +/- 39.5 -> 3.5 .. 82.5, rounded half up
        assert boxes.tolist() == [[4, 4, 83, 83]]
        assert conf.tolist() == [0.75]

    def test_cell_in_tile_one_is_scaled_up_once(self) -> None:
        scores = np.full((153, 62), -1.0, np.float32)
        scores[43, 10] = 0.5  # tensor point (94, 358) lies in tile 1 (11, 353, 426, 628)
        boxes, _ = D.decode_score_map(scores, geometry_500x332())
        # (94-39.5-11, 358-39.5-353, 94+39.5-11, 358+39.5-353) * 1.2 + 0.3
        # = (52.5, -41.1, 147.3, 53.7), but in double 43.5 * 1.2 + 0.3 is 52.49999999999999,
        # so dlib (and we) round the left edge down: (52, -41, 147, 54)
        assert boxes.tolist() == [[52, -41, 147, 54]]

    def test_rounding_is_lround_half_away_from_zero(self) -> None:
        # dlib's recorded boxes for faces cut by the left edge (Mohammed_Al-Douri_0006 at
        # [-13, 28, 67, 107]) show halves round away from zero; floor(x + 0.5) gives -12.
        scores = np.full((153, 62), -1.0, np.float32)
        scores[0, 0] = 0.5  # 14 - 39.5 - 11 = -36.5 -> -37; 14 + 39.5 - 11 = 42.5 -> 43
        boxes, _ = D.decode_score_map(scores, geometry_500x332())
        assert boxes.tolist() == [[-37, -37, 43, 43]]

    def test_point_between_tiles_uses_nearest_tile(self) -> None:
        rects = [Box(11, 11, 60, 60), Box(100, 11, 140, 44)]
        scores = np.full((12, 20), -1.0, np.float32)
        scores[1, 9] = 1.0  # point (86, 22): 26 from tile 0, 14 from tile 1 -> tile 1
        boxes, _ = D.decode_score_map(scores, rects)
        # (86-39.5-100, 22-39.5-11, 86+39.5-100, 22+39.5-11)*1.2+0.3 = (-63.9, -33.9, 30.9, 60.9)
        assert boxes.tolist() == [[-64, -34, 31, 61]]

    def test_threshold_is_strict_and_order_is_by_score(self) -> None:
        scores = np.full((153, 62), -1.0, np.float32)
        scores[5, 5], scores[5, 40], scores[20, 5] = 0.0, 0.9, 0.3
        boxes, conf = D.decode_score_map(scores, geometry_500x332(), threshold=0.0)
        assert conf.tolist() == pytest.approx([0.9, 0.3])
        assert boxes[0, 0] > boxes[1, 0]  # the 0.9 cell is the right-hand one
        _, conf = D.decode_score_map(scores, geometry_500x332(), threshold=-0.5)
        assert conf.tolist() == pytest.approx([0.9, 0.3, 0.0])

    def test_threshold_compares_in_double(self) -> None:
        scores = np.full((153, 62), -1.0, np.float32)
        scores[5, 5] = 0.1  # float32(0.1) = 0.10000000149 > 0.1 as doubles, not as float32
        _, conf = D.decode_score_map(scores, geometry_500x332(), threshold=0.1)
        assert len(conf) == 1

    def test_candidate_cap_keeps_the_best(self) -> None:
        scores = np.linspace(0.01, 1.0, 153 * 62, dtype=np.float32).reshape(153, 62)
        _, conf = D.decode_score_map(scores, geometry_500x332(), max_candidates=10)
        assert conf.tolist() == pytest.approx(np.sort(scores.ravel())[::-1][:10].tolist())


# ---------------------------------------------------------------------------- NMS


def overlap(a: list[int], b: list[int], covered: float = 1.0) -> bool:
    return bool(D.boxes_overlap(np.array([a]), np.array(b), D.DEFAULT_NMS_IOU, covered)[0])


class TestOverlapAndNms:
    def test_threshold_on_enclosing_box(self) -> None:
        # 100x100 boxes shifted by dx: inner/enclosing = (100-dx)/(100+dx); threshold 0.33828
        assert overlap([0, 0, 99, 99], [49, 0, 148, 99])  # 51/149 = 0.342
        assert not overlap([0, 0, 99, 99], [50, 0, 149, 99])  # 50/150 = 0.333

    def test_enclosing_box_not_union(self) -> None:
        # true IoU 5184/14816 = 0.35 would suppress; dlib's 5184/128^2 = 0.316 does not
        assert not overlap([0, 0, 99, 99], [28, 28, 127, 127])

    def test_areas_count_inclusive_pixels(self) -> None:
        # 3-pixel boxes sharing 2 pixels: 2/4 = 0.5 (exclusive areas would give 1/3)
        assert overlap([0, 0, 2, 0], [1, 0, 3, 0])

    def test_disjoint_and_percent_covered(self) -> None:
        assert not overlap([0, 0, 9, 9], [10, 0, 19, 9])
        small_inside_big = ([0, 0, 199, 199], [10, 10, 29, 29])
        assert not overlap(*small_inside_big)
        assert overlap(*small_inside_big, covered=0.5)

    def test_greedy_suppressed_boxes_do_not_suppress(self) -> None:
        a, b, c = [0, 0, 99, 99], [40, 0, 139, 99], [80, 0, 179, 99]  # a~b, b~c, not a~c
        keep = D.non_max_suppression(np.array([a, b, c]))
        assert keep.tolist() == [0, 2]

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300), st.integers(20, 120)), max_size=40))
    def test_nms_result_is_consistent(self, specs: list[tuple[int, int, int]]) -> None:
        boxes = np.array([[x, y, x + s - 1, y + s - 1] for x, y, s in specs], dtype=np.int64).reshape(-1, 4)
        keep = D.non_max_suppression(boxes)
        kept = set(keep.tolist())
        for i in range(len(boxes)):
            earlier_kept = [k for k in keep.tolist() if k < i]
            hits = D.boxes_overlap(boxes[earlier_kept].reshape(-1, 4), boxes[i], D.DEFAULT_NMS_IOU).any()
            assert (i in kept) == (not hits)


class TestMapDown:
    def test_one_level(self) -> None:
        # x/2 - 1.25, y/2 - 0.75: (3.75, 9.25, 53.25, 58.75)
        assert D.map_boxes_down(np.array([[10, 20, 109, 119]]), 1).tolist() == [[4, 9, 53, 59]]

    def test_two_levels_round_once(self) -> None:
        # ((10/2-1.25)/2-1.25, (20/2-0.75)/2-0.75, ...) = (0.625, 3.875, 25.375, 28.625)
        assert D.map_boxes_down(np.array([[10, 20, 109, 119]]), 2).tolist() == [[1, 4, 25, 29]]

    @given(st.integers(-50, 500), st.integers(-50, 500), st.integers(1, 300), st.integers(1, 3))
    def test_inverts_pyramid_up_point_mapping(self, x: int, y: int, size: int, levels: int) -> None:
        box = np.array([[x, y, x + size, y + size]], dtype=np.float64)
        up = box.copy()
        for _ in range(levels):
            up = (up + np.array([1.25, 0.75, 1.25, 0.75])) * 2
        up_int = np.floor(up + 0.5).astype(np.int64)  # dlib rounds the upsampled box to pixels
        assert D.map_boxes_down(up_int, levels).tolist() == box.astype(np.int64).tolist()


# ---------------------------------------------------------------------------- detector


class FakeNetwork:
    """A score-map function that records its inputs and returns chosen cells."""

    def __init__(self, cells: dict[tuple[int, int], float] | None = None, bad: str = "") -> None:
        self.cells = cells or {}
        self.bad = bad
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, tensor: np.ndarray) -> np.ndarray:
        self.calls.append(tensor.shape)
        rows, cols = D.score_map_shape(tensor.shape[2], tensor.shape[3])
        if self.bad == "shape":
            rows += 1
        out = np.full((1, 1, rows, cols), -2.0, np.float32)
        for (r, c), v in self.cells.items():
            out[0, 0, r, c] = v
        if self.bad == "nan":
            out[0, 0, 0, 0] = np.nan
        return out


class TestFaceDetector:
    def test_detections_sorted_in_original_coordinates(self) -> None:
        net = FakeNetwork({(5, 5): 0.4, (5, 40): 1.1, (43, 10): 0.7})
        dets = D.FaceDetector(net).detect(np.zeros((332, 500, 3), np.uint8))
        assert net.calls == [(1, 3, 1250, 522)]
        assert [d.confidence for d in dets] == pytest.approx([1.1, 0.7, 0.4])
        assert dets[1].box == Box(52, -41, 147, 54)
        assert dets[2].box == Box(4, 4, 83, 83)

    def test_upsampling_maps_boxes_back(self) -> None:
        net = FakeNetwork({(5, 5): 0.4})
        dets = D.FaceDetector(net).detect(np.zeros((100, 120, 3), np.uint8), upsample=1)
        up_rows, up_cols = D.upsampled_size(100, 120, 1)
        assert net.calls[0][2:] == D.pyramid_rects(up_rows, up_cols)[1:]
        # (4, 4, 83, 83) in the 201x242 image -> (0.75, 1.25, 40.25, 40.75)
        assert [d.box for d in dets] == [Box(1, 1, 40, 41)]

    def test_min_confidence_and_nms(self) -> None:
        net = FakeNetwork({(5, 5): 0.4, (5, 6): 0.5, (5, 40): 0.2})
        det = D.FaceDetector(net)
        dets = det.detect(np.zeros((332, 500, 3), np.uint8))
        assert [d.confidence for d in dets] == pytest.approx([0.5, 0.2])  # (5,5) overlaps (5,6)
        dets = det.detect(np.zeros((332, 500, 3), np.uint8), min_confidence=0.3)
        assert [d.confidence for d in dets] == pytest.approx([0.5])

    def test_greyscale_is_treated_as_rgb(self) -> None:
        seen: list[np.ndarray] = []

        def net(tensor: np.ndarray) -> np.ndarray:
            seen.append(tensor.copy())
            return FakeNetwork()(tensor)

        grey = pattern(50, 70)[:, :, 0]
        D.FaceDetector(net).detect(grey)
        D.FaceDetector(net).detect(np.repeat(grey[:, :, None], 3, axis=2))
        assert np.array_equal(seen[0], seen[1])

    def test_refuses_image_over_pixel_budget_without_allocating(self) -> None:
        net = FakeNetwork()
        huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (4000, 6000, 3))  # no memory behind it
        huge_grey = np.broadcast_to(np.zeros((1, 1), np.uint8), (100_000, 100_000))
        with pytest.raises(ImageError, match="megapixel limit") as err:
            D.FaceDetector(net).detect(huge, upsample=1)
        assert "\n" not in err.value.diagnostics()
        with pytest.raises(ImageError, match="megapixel limit"):
            D.FaceDetector(net).detect(huge_grey)  # refused before converting grey to RGB
        with pytest.raises(ImageError, match="megapixel limit"):
            D.FaceDetector(net, max_pixels=1_000_000).detect(np.zeros((600, 600, 3), np.uint8), upsample=1)
        assert net.calls == []
        D.FaceDetector(net).check_size(1080, 1920, 1)  # a 1080p CCTV still with one upsampling fits

    def test_budget_counts_upsampled_pixels(self) -> None:
        det = D.FaceDetector(FakeNetwork(), max_pixels=665 * 1002)
        det.check_size(332, 500, 1)
        with pytest.raises(ImageError):
            det.check_size(332, 501, 1)

    def test_tiny_image_finds_nothing_without_running_network(self) -> None:
        net = FakeNetwork()
        assert D.FaceDetector(net).detect(np.zeros((6, 6, 3), np.uint8)) == []
        assert net.calls == []

    @pytest.mark.parametrize(
        "image",
        [
            np.zeros((10, 10, 3), np.float32),
            np.zeros((10, 10, 4), np.uint8),
            np.zeros((10, 10, 3, 1), np.uint8),
            np.zeros((0, 10, 3), np.uint8),
        ],
    )
    def test_unusable_images_are_refused(self, image: np.ndarray) -> None:
        with pytest.raises(ImageError):
            D.FaceDetector(FakeNetwork()).detect(image)

    def test_bad_arguments(self) -> None:
        det = D.FaceDetector(FakeNetwork())
        with pytest.raises(UsageError, match="upsample"):
            det.detect(np.zeros((50, 50, 3), np.uint8), upsample=-1)
        with pytest.raises(UsageError, match="min_confidence"):
            det.detect(np.zeros((50, 50, 3), np.uint8), min_confidence=float("nan"))

    @pytest.mark.parametrize("bad", ["shape", "nan"])
    def test_wrong_network_output_is_a_model_error(self, bad: str) -> None:
        with pytest.raises(ModelError):
            D.FaceDetector(FakeNetwork(bad=bad)).detect(np.zeros((100, 100, 3), np.uint8))
