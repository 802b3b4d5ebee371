"""Degraded probes and error-versus-discard: degradations that do what they say, figures with known answers."""

from __future__ import annotations

import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from engine.evaluation import degraded as dg
from engine.evaluation.degraded import Condition, Seen, condition_figures, cross_fmr_interval
from engine.evaluation.probe_quality import QUALITY_SCORES, discard_curves, error_versus_discard
from engine.faces.types import Box

THRESHOLD = 0.5


def _photo(size: int = 120, seed: int = 3) -> np.ndarray:
    """A colour picture with detail at many scales (deterministic)."""
    rng = np.random.default_rng(seed)
    base = np.zeros((size, size, 3), np.float64)
    for cells in (4, 8, 16, 32, 64):
        base += cv2.resize(rng.uniform(-1, 1, (cells, cells, 3)), (size, size), interpolation=cv2.INTER_CUBIC) * 20
    return np.clip(128 + base, 0, 255).astype(np.uint8)


def _laplacian_variance(rgb: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


# ---- degradations ----


def test_resizing_to_an_inter_eye_distance_scales_the_picture_by_target_over_measured() -> None:
    photo = _photo(200)
    small, scale = dg.resize_to_ied(photo, ied=40.0, target=16.0)
    assert small.shape == (80, 80, 3) and scale == pytest.approx(0.4)
    large, scale = dg.resize_to_ied(photo, ied=40.0, target=64.0)
    assert large.shape == (320, 320, 3) and scale == pytest.approx(1.6)
    with pytest.raises(ValueError, match="positive"):
        dg.resize_to_ied(photo, ied=0.0, target=16.0)


def test_more_blur_leaves_less_detail() -> None:
    photo = _photo()
    detail = [_laplacian_variance(dg.gaussian_blur(photo, s)) for s in dg.BLUR_SIGMAS]
    assert _laplacian_variance(photo) > detail[0] > detail[1] > detail[2] > detail[3]


def test_lower_jpeg_quality_loses_more_of_the_picture() -> None:
    photo = _photo()
    error = [float(np.abs(dg.jpeg_roundtrip(photo, q).astype(int) - photo).mean()) for q in dg.JPEG_QUALITIES]
    assert 0 < error[0] < error[1] < error[2]
    assert dg.jpeg_roundtrip(photo, 50).shape == photo.shape


def test_noise_has_the_stated_spread_and_is_repeatable_from_its_seed() -> None:
    flat = np.full((200, 200, 3), 128, np.uint8)
    a = dg.add_noise(flat, 5.0, np.random.default_rng(1))
    assert float(a.astype(float).std()) == pytest.approx(5.0, rel=0.05)
    assert np.array_equal(a, dg.add_noise(flat, 5.0, np.random.default_rng(1)))


def test_the_cctv_recipe_reduces_blurs_adds_noise_and_compresses_repeatably() -> None:
    photo = _photo(200)
    cctv = next(c for c in dg.CONDITIONS if c.kind == "cctv")
    out, scale = dg.degrade(photo, cctv, 40.0, np.random.default_rng(9))
    again, _ = dg.degrade(photo, cctv, 40.0, np.random.default_rng(9))
    assert scale == pytest.approx(dg.CCTV.ied / 40.0) and out.shape == (120, 120, 3)
    assert np.array_equal(out, again)
    reduced, _ = dg.resize_to_ied(photo, 40.0, dg.CCTV.ied)
    assert _laplacian_variance(out) != _laplacian_variance(reduced)


def test_every_condition_named_in_the_brief_is_swept() -> None:
    keys = [c.key for c in dg.CONDITIONS]
    assert keys == [
        "clean", "ied16", "ied24", "ied32", "ied48", "ied64", "blur1", "blur2", "blur3", "blur5",
        "jpeg50", "jpeg20", "jpeg8", "cctv",
    ]  # fmt: skip
    photo = _photo()
    assert dg.degrade(photo, dg.CONDITIONS[0], 40.0, np.random.default_rng(0))[0] is photo
    with pytest.raises(ValueError, match="unknown degradation"):
        dg.degrade(photo, Condition("x", "fog", "fog"), 40.0, np.random.default_rng(0))


def test_the_probe_face_is_the_one_where_the_clean_face_was() -> None:
    def face(left: int, width: int) -> SimpleNamespace:
        return SimpleNamespace(box=Box(left, 10, left + width - 1, 10 + width - 1))

    near, far = face(40, 20), face(0, 20)
    assert dg.pick_face([far, near], centre=(52.0, 22.0), width=20.0) is near
    assert dg.pick_face([far], centre=(52.0, 22.0), width=20.0) is None  # 42 px away: more than half a face
    assert dg.pick_face([], centre=(52.0, 22.0), width=20.0) is None


# ---- figures with known answers ----


def _unit(angle: float) -> np.ndarray:
    return np.array([math.cos(angle), math.sin(angle)])


def _world() -> tuple[np.ndarray, np.ndarray]:
    """Three people, three clean images each, on a unit circle far apart: gallery and owners."""
    gallery = np.array([_unit(2.0 * p) * 2.0 + 0.1 * _unit(k) for p in range(3) for k in range(3)])
    return gallery, np.repeat(np.arange(3), 3)


def _seen(template: np.ndarray | None, ied: float = 20.0, scale: float = 1.0) -> Seen:
    quality = {"inter_eye_distance": (ied, ied >= 60), "sharpness": (30.0, True), "face_width": (50.0, False)}
    return Seen(
        None if template is None else template.astype(np.float32), None if template is None else quality, scale=scale
    )


def test_a_probe_not_found_is_a_miss_on_every_one_of_its_pairs_and_a_failure_to_enrol() -> None:
    gallery, owner = _world()
    probes = [_seen(gallery[0]), _seen(None), _seen(gallery[6] + [0.0, 0.6])]  # person 2 drifts beyond 0.5
    figures = condition_figures(
        Condition("t", "blur", "t"), probes, [0, 1, 2], [0, 3, 6], gallery, owner, 3, THRESHOLD, n_boot=200
    )
    # Own photograph left out: 2 mated pairs per probe. Person 1 (not found): 2 misses; person 2: both beyond.
    assert (figures.fnmr.events, figures.fnmr.trials) == (4, 6)
    assert (figures.fnmr_compared.events, figures.fnmr_compared.trials) == (2, 4)
    assert (figures.not_found.events, figures.not_found.trials) == (1, 3)
    assert (figures.fmr.events, figures.fmr.trials) == (0, 2 * 6)  # two found probes, six other-person images each
    assert figures.measured == {"inter_eye_distance": 20.0, "sharpness": 30.0, "face_width": 50.0}
    assert figures.quality_warned["inter_eye_distance"] == 1.0 and figures.quality_warned["sharpness"] == 0.0


def test_a_false_match_is_counted_and_two_names_of_one_person_are_never_compared() -> None:
    gallery, owner = _world()
    lookalike = gallery[3]  # person 0's probe lands on person 1's first image
    probes = [_seen(lookalike), _seen(gallery[4]), _seen(gallery[7])]
    plain = condition_figures(Condition("t", "jpeg", "t"), probes, [0, 1, 2], [0, 3, 6], gallery, owner, 3, THRESHOLD)
    assert (plain.fmr.events, plain.fmr.trials) == (3, 3 * 6)  # probe 0 matches each of person 1's three images
    aliased = condition_figures(
        Condition("t", "jpeg", "t"), probes, [0, 1, 2], [0, 3, 6], gallery, owner, 3, THRESHOLD, [(1, 0)]
    )
    assert (aliased.fmr.events, aliased.fmr.trials) == (0, 3 * 6 - 2 * 3)


def test_enlarged_conditions_are_marked_and_never_cited() -> None:
    gallery, owner = _world()
    probes = [_seen(gallery[0], scale=1.5), _seen(gallery[3], scale=1.5), _seen(gallery[6], scale=0.5)]
    figures = condition_figures(
        Condition("t", "inter_eye_distance", "t", 64.0), probes, [0, 1, 2], [0, 3, 6], gallery, owner, 3, THRESHOLD
    )
    assert figures.enlarged == pytest.approx(2 / 3) and figures.citable_enlarged
    assert figures.run_time_json()["enlarged"] is True


def test_the_run_time_figures_are_what_applicability_reads() -> None:
    from engine.scoring.applicability import _rate

    gallery, owner = _world()
    probes = [_seen(gallery[0]), _seen(None), _seen(gallery[6])]
    out = condition_figures(
        Condition("b", "blur", "blur"), probes, [0, 1, 2], [0, 3, 6], gallery, owner, 3, 0.5
    ).run_time_json()
    rate = _rate(out["fnmr"], "fnmr", "test")
    assert (rate.events, rate.trials) == (2, 6) and out["not_found"] == 1


def test_the_cross_fmr_interval_is_exact_when_every_pair_of_people_has_the_same_rate() -> None:
    # Each person has 1 probe and 2 gallery images; every probe falsely matches exactly one image of every
    # other person: FMR 1/2 in any resample, however people are drawn, if trials and events are both right.
    people = 5
    false_a = [a for a in range(people) for b in range(people) if a != b]
    false_b = [b for a in range(people) for b in range(people) if a != b]
    low, high = cross_fmr_interval(false_a, false_b, [1] * people, [2] * people, n_boot=300)
    assert low == pytest.approx(0.5) and high == pytest.approx(0.5)
    # Two names of one person: their comparisons leave both the events and the trials.
    kept = [(a, b) for a, b in zip(false_a, false_b, strict=True) if {a, b} != {0, 1}]
    low, high = cross_fmr_interval(
        [a for a, _ in kept], [b for _, b in kept], [1] * people, [2] * people, [(0, 1)], n_boot=300
    )
    assert low == pytest.approx(0.5) and high == pytest.approx(0.5)


def test_the_cross_fmr_interval_widens_when_one_person_holds_the_false_matches() -> None:
    people = 20
    false_a = [0] * 10
    false_b = list(range(1, 11))
    low, high = cross_fmr_interval(false_a, false_b, [1] * people, [3] * people, n_boot=500)
    rate = 10 / (people * (people - 1) * 3)
    assert low < rate < high and low == 0.0  # resamples without person 0 have no false match at all


# ---- error versus discard ----


def test_discarding_the_worst_units_removes_the_misses_a_good_measure_predicts() -> None:
    units = 100
    score = np.arange(units, dtype=float)  # unit 0 is worst
    distances = np.where(np.arange(units) < 10, 0.9, 0.1)  # the ten worst units are missed
    points = error_versus_discard(
        distances, np.arange(units), np.arange(units), score, THRESHOLD, (0.0, 0.05, 0.1, 0.2), n_boot=200
    )
    assert [(p.fnmr.events, p.fnmr.trials) for p in points] == [(10, 100), (5, 95), (0, 90), (0, 80)]
    assert [p.cut for p in points] == [0.0, 5.0, 10.0, 20.0]
    assert [p.units_kept for p in points] == [100, 95, 90, 80]


def test_a_measure_that_predicts_nothing_leaves_the_curve_flat() -> None:
    units = 1000
    rng = np.random.default_rng(5)
    distances = np.where(rng.random(units) < 0.2, 0.9, 0.1)
    points = error_versus_discard(
        distances, np.arange(units), np.arange(units), rng.random(units), THRESHOLD, (0.0, 0.5), n_boot=200
    )
    assert abs(points[0].fnmr.rate - points[1].fnmr.rate) < 0.04


def test_a_pair_of_two_images_leaves_when_either_image_is_discarded() -> None:
    pairs = np.array([[0, 1], [1, 2], [2, 3]])
    points = error_versus_discard(
        [0.1, 0.9, 0.1], pairs, [0, 0, 1], np.array([3.0, 0.0, 2.0, 1.0]), THRESHOLD, (0.0, 0.25)
    )
    assert [(p.fnmr.events, p.fnmr.trials) for p in points] == [(1, 3), (0, 1)]


def test_ties_are_broken_so_exactly_the_stated_fraction_is_discarded() -> None:
    points = error_versus_discard(np.full(40, 0.1), np.arange(40), np.arange(40), np.zeros(40), THRESHOLD, (0.1, 0.25))
    assert [p.units_kept for p in points] == [36, 30]


def test_a_missing_template_is_a_miss_while_kept_and_bad_input_is_refused() -> None:
    points = error_versus_discard([math.inf, 0.1], [0, 1], [0, 1], [0.0, 1.0], THRESHOLD, (0.0, 0.5))
    assert [(p.fnmr.events, p.fnmr.trials) for p in points] == [(1, 2), (0, 1)]
    with pytest.raises(ValueError, match="fractions"):
        error_versus_discard([0.1], [0], [0], [1.0], THRESHOLD, (1.0,))
    with pytest.raises(ValueError, match="index unit_score"):
        error_versus_discard([0.1], [3], [0], [1.0], THRESHOLD)


def test_every_engine_measure_gets_a_curve_and_worse_pose_ranks_lower() -> None:
    quality = [
        {"inter_eye_distance": (40.0, False), "sharpness": (30.0, True), "face_width": (90.0, True),
         "contrast": (40.0, True), "yaw": (-30.0, False), "roll": (2.0, True)},
        {"inter_eye_distance": (20.0, False), "sharpness": (5.0, False), "face_width": (50.0, False),
         "contrast": (40.0, True), "yaw": (5.0, True), "roll": (-20.0, False)},
    ]  # fmt: skip
    curves = discard_curves([0.9, 0.1], [0, 1], [0, 1], quality, THRESHOLD, (0.0, 0.5), n_boot=100)
    assert [c.measure for c in curves] == [q.name for q in QUALITY_SCORES]
    dropped_first = {c.measure: c.points[1].fnmr.events for c in curves}  # 0: unit 0 (the miss) was dropped
    assert dropped_first == {
        "inter_eye_distance": 1, "sharpness": 1, "face_width": 1, "contrast": dropped_first["contrast"],
        "yaw": 0, "roll": 1, "warnings": 1,
    }  # fmt: skip
    assert curves[4].points[1].cut == 5.0  # worst |yaw| kept
