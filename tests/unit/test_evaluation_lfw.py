"""The LFW protocol machinery: pairs parsing, threshold choice, ten-fold accuracy, missing-face policy."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import RfrError
from engine.evaluation.lfw import (
    MISSING_FACE_DISTANCE,
    LfwPair,
    PairsFileError,
    accuracy_at,
    choose_threshold,
    evaluate,
    image_path,
    load_pairs,
    nearest_to_centre,
    pair_distances,
    parse_pairs,
    ten_fold_accuracy,
    ten_fold_evaluation,
    unique_images,
)
from engine.faces.types import Box

INF = math.inf


class TestParsePairs:
    SMALL = "2\t1\nAnn_A\t1\t2\nBob_B\t1\tCat_C\t13\nDan_D\t2\t4\nEve_E\t1\tFay_F\t1\n"

    def test_small_file(self) -> None:
        pairs = parse_pairs(self.SMALL)
        assert pairs == [
            LfwPair("images/Ann_A/Ann_A_0001.jpg", "images/Ann_A/Ann_A_0002.jpg", True, 0),
            LfwPair("images/Bob_B/Bob_B_0001.jpg", "images/Cat_C/Cat_C_0013.jpg", False, 0),
            LfwPair("images/Dan_D/Dan_D_0002.jpg", "images/Dan_D/Dan_D_0004.jpg", True, 1),
            LfwPair("images/Eve_E/Eve_E_0001.jpg", "images/Fay_F/Fay_F_0001.jpg", False, 1),
        ]
        assert unique_images(pairs)[0] == "images/Ann_A/Ann_A_0001.jpg"
        assert len(unique_images(pairs)) == 8

    def test_spaces_and_blank_lines_are_accepted(self) -> None:
        assert parse_pairs(self.SMALL.replace("\t", " ") + "\n\n") == parse_pairs(self.SMALL)

    @pytest.mark.parametrize(
        ("text", "match"),
        [
            ("", "empty"),
            ("10\n", "header"),
            ("x\t1\nA\t1\t2\nB\t1\tC\t1\n", "not a whole number"),
            ("0\t1\n", "1 or more"),
            ("2\t1\nA\t1\t2\nB\t1\tC\t1\n", "promises 2 folds"),
            ("1\t1\nB\t1\tC\t1\nA\t1\t2\n", "line 2: expected a matched"),
            ("1\t1\nA\t1\t2\nA\t1\t2\n", "line 3: expected a mismatched"),
            ("1\t1\nA\t1\t0\nB\t1\tC\t1\n", "line 2: 0 must be 1 or more"),
        ],
    )
    def test_malformed_files_are_refused_with_the_line(self, text: str, match: str) -> None:
        with pytest.raises(PairsFileError, match=match) as info:
            parse_pairs(text)
        assert isinstance(info.value, RfrError)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(PairsFileError, match="cannot read the LFW pairs file"):
            load_pairs(tmp_path / "pairs.txt")

    def test_image_path(self) -> None:
        assert image_path("George_W_Bush", 42) == "images/George_W_Bush/George_W_Bush_0042.jpg"


def test_real_pairs_file(data_root: Path) -> None:
    """The standard protocol file: 6,000 pairs, 10 folds of 300 matched + 300 mismatched, 7,701 images on disk."""
    lfw = data_root / "lfw"
    pairs = load_pairs(lfw / "pairs.txt")
    assert len(pairs) == 6000
    assert Counter((p.fold, p.same) for p in pairs) == {(k, s): 300 for k in range(10) for s in (True, False)}
    assert pairs[0] == LfwPair(
        "images/Abel_Pacheco/Abel_Pacheco_0001.jpg", "images/Abel_Pacheco/Abel_Pacheco_0004.jpg", True, 0
    )
    assert all(p.first.split("/")[1] == p.second.split("/")[1] for p in pairs if p.same)
    assert all(p.first.split("/")[1] != p.second.split("/")[1] for p in pairs if not p.same)
    images = unique_images(pairs)
    assert len(images) == 7701
    missing = [rel for rel in images if not (lfw / rel).is_file()]
    assert missing == []


class TestChooseThreshold:
    def test_separable(self) -> None:
        threshold, acc = choose_threshold([0.1, 0.2, 0.3, 0.4], [True, True, False, False])
        assert threshold == pytest.approx(0.25)
        assert acc == 1.0

    def test_tie_goes_to_the_smallest_threshold(self) -> None:
        # Candidates -0.9, 0.2, 0.4, 0.6, 1.7 score 2, 3, 2, 3, 2 correct: 0.2 and 0.6 tie.
        threshold, acc = choose_threshold([0.1, 0.3, 0.5, 0.7], [True, False, True, False])
        assert threshold == pytest.approx(0.2)
        assert acc == 0.75

    def test_equal_distances_are_never_split(self) -> None:
        threshold, acc = choose_threshold([0.5, 0.5, 0.5, 0.9], [True, False, True, False])
        assert threshold == pytest.approx(0.7)
        assert acc == 0.75

    def test_missing_faces_are_always_different(self) -> None:
        # The inf pair is a matched pair, so it is wrong whatever the threshold.
        threshold, acc = choose_threshold([0.2, INF, 0.8], [True, True, False])
        assert threshold == pytest.approx(0.5)
        assert acc == pytest.approx(2 / 3)

    def test_no_finite_distance(self) -> None:
        assert choose_threshold([INF, INF, INF], [True, False, False]) == (0.0, pytest.approx(2 / 3))

    def test_order_of_input_does_not_matter(self) -> None:
        rng = np.random.default_rng(7)
        d = rng.random(200)
        s = rng.random(200) < 0.5
        perm = rng.permutation(200)
        assert choose_threshold(d, s) == choose_threshold(d[perm], s[perm])

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(st.sampled_from([0.0, 0.1, 0.25, 0.3, 0.5, 0.55, 0.7, 1.0, INF]), st.booleans()),
            min_size=1,
            max_size=30,
        )
    )
    def test_agrees_with_brute_force(self, rows: list[tuple[float, bool]]) -> None:
        d = [r[0] for r in rows]
        s = [r[1] for r in rows]
        threshold, acc = choose_threshold(d, s)
        assert accuracy_at(d, s, threshold) == pytest.approx(acc)
        finite = sorted({x for x in d if math.isfinite(x)})
        candidates = [-1.0, *finite, *[(a + b) / 2 for a, b in itertools.pairwise(finite)], 2.0]
        best = max(accuracy_at(d, s, t) for t in candidates)
        assert acc == pytest.approx(best)

        # ties go to the strictest decision: no optimal candidate accepts fewer pairs as 'same'
        def accepted(t: float) -> int:
            return sum(1 for x in d if x <= t)

        optimal = [t for t in candidates if accuracy_at(d, s, t) == pytest.approx(best)]
        assert accepted(threshold) == min(accepted(t) for t in optimal)


class TestAccuracyAt:
    def test_boundary_is_inclusive_and_inf_is_different(self) -> None:
        d = [0.6, 0.61, INF, INF]
        s = [True, False, True, False]
        assert accuracy_at(d, s, 0.6) == 0.75
        assert accuracy_at(d, s, 0.5999) == 0.5
        assert accuracy_at(d, s, INF) == 0.5  # even an infinite threshold never accepts a missing face

    @pytest.mark.parametrize(
        ("d", "s", "match"),
        [
            ([0.1, math.nan], [True, False], "NaN"),
            ([0.1, -INF], [True, False], "NaN or -inf"),
            ([0.1, 0.2], [True], "equal length"),
            ([], [], "no pairs"),
        ],
    )
    def test_bad_input(self, d: list[float], s: list[bool], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            accuracy_at(d, s, 0.6)


class TestTenFold:
    @staticmethod
    def synthetic() -> tuple[list[float], list[bool], list[int]]:
        """Ten folds of one matched pair (0.3) and one mismatched pair (0.9), except fold 0: 0.5 and 0.4.

        Holding out fold 0, the other nine are separable at 0.6; on fold 0 that accepts both pairs: 50 %.
        Holding out fold k > 0, training holds 8 x (0.3 T, 0.9 F) plus (0.4 F, 0.5 T): 0.35 and 0.7 both
        get 17 of 18 right and the tie goes to 0.35, which gets fold k fully right.
        Mean (0.5 + 9) / 10 = 0.95; population std sqrt((0.45^2 + 9 * 0.05^2) / 10) = 0.15.
        """
        d, s, f = [], [], []
        for k in range(10):
            same_d, diff_d = (0.5, 0.4) if k == 0 else (0.3, 0.9)
            d += [same_d, diff_d]
            s += [True, False]
            f += [k, k]
        return d, s, f

    def test_hand_computed(self) -> None:
        result = ten_fold_evaluation(*self.synthetic())
        assert result.mean == pytest.approx(0.95)
        assert result.std == pytest.approx(0.15)
        assert result.fold_accuracies == pytest.approx([0.5] + [1.0] * 9)
        assert result.thresholds == pytest.approx([0.6] + [0.35] * 9)
        mean, std, thresholds = ten_fold_accuracy(*self.synthetic())
        assert (mean, std, thresholds) == (result.mean, result.std, list(result.thresholds))

    def test_order_of_pairs_does_not_matter(self) -> None:
        d, s, f = (np.array(x) for x in self.synthetic())
        perm = np.random.default_rng(3).permutation(d.size)
        assert ten_fold_evaluation(d[perm], s[perm], f[perm]) == ten_fold_evaluation(d, s, f)

    def test_needs_two_folds(self) -> None:
        with pytest.raises(ValueError, match="two folds"):
            ten_fold_evaluation([0.1, 0.9], [True, False], [0, 0])


class TestNearestToCentre:
    def test_no_faces(self) -> None:
        assert nearest_to_centre([], 250, 250) is None

    def test_picks_the_central_face(self) -> None:
        boxes = [Box(0, 0, 49, 49), Box(100, 100, 149, 149), Box(180, 90, 229, 139)]
        assert nearest_to_centre(boxes, 250, 250) == 1

    def test_centre_uses_inclusive_pixel_coordinates(self) -> None:
        # Image centre of a 10-wide image is x = 4.5: box centres 4.0 and 5.0 are equally near, 5.5 is not.
        assert nearest_to_centre([Box(5, 0, 6, 9), Box(3, 0, 5, 9)], 10, 10) == 1
        assert nearest_to_centre([Box(5, 0, 5, 9), Box(4, 0, 4, 9)], 10, 10) == 0  # tie: the earlier box

    def test_vertical_distance_counts(self) -> None:
        assert nearest_to_centre([Box(0, 100, 49, 149), Box(100, 0, 149, 49)], 150, 250) == 0


class TestMissingFacePolicy:
    PAIRS: ClassVar[list[LfwPair]] = [
        LfwPair("a1", "a2", True, 0),
        LfwPair("a1", "b1", False, 0),
        LfwPair("c1", "c2", True, 1),
        LfwPair("b1", "c2", False, 1),
    ]

    def test_distances(self) -> None:
        templates = {
            "a1": np.array([0.0, 0.0], dtype=np.float32),
            "a2": np.array([3.0, 4.0], dtype=np.float32),
            "b1": np.array([6.0, 8.0]),
            "c1": None,
            "c2": np.array([1.0, 0.0]),
        }
        assert pair_distances(self.PAIRS, templates).tolist() == [
            5.0,
            10.0,
            MISSING_FACE_DISTANCE,
            pytest.approx(9.434, abs=1e-3),
        ]

    def test_report_counts_images_and_pairs(self) -> None:
        templates = {"a1": np.zeros(2), "a2": np.full(2, 0.1), "b1": np.ones(2), "c1": np.full(2, 5.0), "c2": None}
        report = evaluate(self.PAIRS, templates, threshold=0.6)
        assert report.images == 5
        assert report.images_without_face == ("c2",)
        assert report.pairs == 4
        assert report.pairs_affected == 2
        # a1-a2 (0.14, same) right, a1-b1 (1.41, different) right, c1-c2 missing: matched pair wrong, b1-c2 right
        assert report.accuracy_at_threshold == 0.75
        assert report.to_json()["images_without_face"] == 1
