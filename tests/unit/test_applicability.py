"""Which accuracy figures apply to a probe: the under-16 sentence, the degraded-probe sentences, the pinned figures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from engine.errors import CalibrationError
from engine.faces.models import Manifest, models_dir
from engine.faces.types import FaceQuality, QualityMeasure
from engine.policy import load_default_policy
from engine.scoring import applicability as ap
from engine.scoring.applicability import (
    NOT_EVALUATED,
    UNDER_16,
    StatedRate,
    load_degraded_figures,
    parse_degraded_figures,
    percent,
    probe_caveats,
)

THRESHOLD = 0.5
MODEL = "a" * 64


def _condition(
    key: str,
    kind: str,
    label: str,
    ied: float,
    sharpness: float,
    misses: int,
    pairs: int = 1000,
    enlarged: bool = False,
) -> dict[str, Any]:
    rate = misses / pairs
    return {
        "key": key,
        "kind": kind,
        "label": label,
        "enlarged": enlarged,
        "measured": {"inter_eye_distance": ied, "sharpness": sharpness},
        "people": 300,
        "probes": 300,
        "not_found": 0,
        "fnmr": {"events": misses, "trials": pairs, "low": max(0.0, rate - 0.02), "high": min(1.0, rate + 0.02)},
        "fmr": {"events": 100, "trials": 300000, "low": 0.0002, "high": 0.0005},
    }


CONDITIONS = [
    _condition("clean", "clean", "as captured (LFW photographs)", 40.0, 35.0, 20),
    _condition("ied16", "inter_eye_distance", "16 px between the eyes", 16.0, 17.0, 400),
    _condition("ied24", "inter_eye_distance", "24 px between the eyes", 24.0, 30.0, 150),
    _condition("ied32", "inter_eye_distance", "32 px between the eyes", 32.0, 32.0, 60),
    _condition("ied48", "inter_eye_distance", "48 px between the eyes", 48.0, 36.0, 19, enlarged=True),
    _condition("blur1", "blur", "Gaussian blur, sigma 1 px", 40.0, 12.0, 50),
    _condition("blur3", "blur", "Gaussian blur, sigma 3 px", 40.0, 3.0, 500),
    _condition("jpeg8", "jpeg", "JPEG quality 8", 40.0, 50.0, 270),
    _condition("cctv", "cctv", "CCTV-like: 24 px between the eyes, blur sigma 1 px", 24.0, 14.0, 330),
]


def _figures_bytes(threshold: float = THRESHOLD, conditions: list[dict[str, Any]] | None = None) -> bytes:
    content = {
        "format": 1,
        "generated_by": "test",
        "model_id": "dlib_face_recognition_resnet_model_v1",
        "model_sha256": MODEL,
        "calibration": "lfw-test.v1",
        "threshold": threshold,
        "dataset": "synthetic",
        "conditions": conditions if conditions is not None else CONDITIONS,
    }
    return json.dumps(content).encode()


FIGURES = parse_degraded_figures(_figures_bytes())


def _quality(ied: float = 70.0, sharpness: float = 40.0) -> FaceQuality:
    return FaceQuality(
        measures=(
            QualityMeasure("inter_eye_distance", ied, "px", ied >= 60.0, None if ied >= 60.0 else "small"),
            QualityMeasure("sharpness", sharpness, "lap", sharpness >= 15.0, None if sharpness >= 15.0 else "blurred"),
            QualityMeasure("roll", 3.0, "deg", True),
        )
    )


# ---- the rule of 30 ----


@pytest.mark.parametrize(
    ("events", "trials", "expected"),
    [
        (30, 1000, "3.0 % (95 % interval 1.0 % to 5.0 %)"),
        (29, 1000, "fewer than 3.0 % (the lowest rate this evaluation can show)"),
        (0, 300000, "fewer than 0.010 % (the lowest rate this evaluation can show)"),
        (310, 1000, "31 % (95 % interval 1.0 % to 5.0 %)"),
        (5, 20, "no rate: only 20 pairs, fewer than the 30 errors a rate needs"),
    ],
)
def test_a_rate_is_stated_only_with_30_errors_behind_it(events: int, trials: int, expected: str) -> None:
    assert StatedRate(events, trials, 0.01, 0.05).text() == expected


def test_percentages_keep_two_significant_figures() -> None:
    assert [percent(x) for x in (0.31, 0.0421, 0.00384, 0.0, 1.0)] == ["31 %", "4.2 %", "0.38 %", "0 %", "100 %"]


def test_a_rate_with_more_errors_than_pairs_is_refused() -> None:
    with pytest.raises(ValueError, match="events <= trials"):
        StatedRate(11, 10, 0.0, 1.0)


# ---- under 16 ----


@pytest.mark.parametrize("band", ["under13", "13-15"])
def test_under_16_probes_are_told_no_accuracy_figure_applies(band: str) -> None:
    policy = load_default_policy()
    # Even with a poor face: the degraded figures are adults' too, so none is cited.
    assert probe_caveats(_quality(ied=18.0), policy.age_band(band), figures=FIGURES) == [UNDER_16]
    assert UNDER_16 == (
        "No accuracy figure applies to probes of people under 16: the engine has not been evaluated on children."
    )


def test_the_cases_recorded_under_16_flag_serves_as_well_as_the_age_band() -> None:
    assert probe_caveats(_quality(), True, figures=FIGURES) == [UNDER_16]
    assert probe_caveats(_quality(), False, figures=FIGURES) == []


@pytest.mark.parametrize("band", ["16-17", "adult", "unknown"])
def test_a_good_probe_of_someone_16_or_over_has_no_caveat(band: str) -> None:
    assert probe_caveats(_quality(), load_default_policy().age_band(band), figures=FIGURES) == []


def test_no_form_and_no_quality_means_no_caveat() -> None:
    assert probe_caveats(None, None, figures=FIGURES) == []


# ---- degraded probes ----


def test_a_small_face_is_told_the_miss_rate_at_the_nearest_inter_eye_distance() -> None:
    (sentence,) = probe_caveats(_quality(ied=18.0), None, figures=FIGURES)
    assert sentence.startswith("This face has 18 px between the eyes (60 px or more is recommended).")
    assert "reduced to about this inter-eye distance (16 px between the eyes)" in sentence
    assert "40 % (95 % interval 38 % to 42 %) of same-person pairs were missed at the operating threshold" in sentence


def test_the_nearest_condition_is_chosen_on_a_log_scale_and_never_an_enlargement() -> None:
    def cited(ied: float) -> str:
        (sentence,) = probe_caveats(_quality(ied=ied), None, figures=FIGURES)
        return sentence

    assert "(24 px between the eyes)" in cited(20.0)  # log: 20 is nearer 24 than 16
    assert "(32 px between the eyes)" in cited(34.0)
    # 55 px is nearest the 48 px condition, but that one is an enlargement: LFW's own size is cited.
    assert "at LFW's own size (about 40 px between the eyes)" in cited(55.0)
    assert "fewer than 3.0 % (the lowest rate this evaluation can show)" in cited(55.0)


def test_a_blurred_face_is_told_the_miss_rate_at_the_nearest_sharpness() -> None:
    (sentence,) = probe_caveats(_quality(sharpness=4.0), None, figures=FIGURES)
    assert sentence.startswith("This face is blurred (sharpness 4; 15 or more is expected).")
    assert "(Gaussian blur, sigma 3 px: median sharpness 3)" in sentence
    assert "50 % (95 % interval 48 % to 52 %)" in sentence


def test_small_and_blurred_together_also_cite_the_cctv_like_combination() -> None:
    ied, blur, combined = probe_caveats(_quality(ied=22.0, sharpness=13.0), None, figures=FIGURES)
    assert "(24 px between the eyes)" in ied
    assert "(Gaussian blur, sigma 1 px: median sharpness 12)" in blur
    assert combined.startswith("A face both small and blurred fares worse than either alone")
    assert "(24 px between the eyes, blur sigma 1 px), 33 % (95 % interval 31 % to 35 %)" in combined


def test_the_stored_quality_of_a_case_gives_the_same_sentences_as_the_face_quality() -> None:
    quality = _quality(ied=22.0, sharpness=13.0)
    stored = json.loads(json.dumps(quality.to_json()))  # as case_probes.quality holds it
    assert probe_caveats(stored, None, figures=FIGURES) == probe_caveats(quality, None, figures=FIGURES)


def test_figures_from_another_threshold_or_model_are_not_cited() -> None:
    small = _quality(ied=18.0)
    assert probe_caveats(small, None, threshold=0.45, figures=FIGURES) == [NOT_EVALUATED]
    assert probe_caveats(small, None, model_sha256="b" * 64, figures=FIGURES) == [NOT_EVALUATED]
    assert len(probe_caveats(small, None, threshold=THRESHOLD, model_sha256=MODEL, figures=FIGURES)) == 1


# ---- the figures file ----


def test_a_changed_figures_file_is_refused(tmp_path: Path) -> None:
    data = _figures_bytes()
    path = tmp_path / "degraded_figures.json"
    tampered = data.replace(b'"events": 400', b'"events": 40')  # 40 % of pairs missed becomes 4 %
    assert tampered != data
    path.write_bytes(tampered)
    with pytest.raises(CalibrationError, match="sha256 does not match"):
        load_degraded_figures(path, hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"not json", "not JSON"),
        (json.dumps({"format": 2}).encode(), "format must be 1"),
        (_figures_bytes(conditions=[]), "holds no conditions"),
        (_figures_bytes(conditions=[{"key": "x"}]), "malformed"),
    ],
)
def test_a_malformed_figures_file_is_refused_with_a_reason(data: bytes, problem: str) -> None:
    with pytest.raises(CalibrationError, match=problem):
        parse_degraded_figures(data)


def test_the_installed_figures_match_their_pin_and_the_operating_point_in_force() -> None:
    """Re-running ``scripts/evaluate_degraded.py --install`` keeps file and pin together; a new calibration
    or policy threshold makes this fail until the figures are measured again at it."""
    data = ap.DEGRADED_FIGURES_FILE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == ap.DEGRADED_FIGURES_SHA256
    figures = load_degraded_figures()
    policy = load_default_policy()
    assert figures.threshold == pytest.approx(policy.operating_point.threshold, abs=1e-9)
    assert figures.calibration == policy.operating_point.calibration_id
    assert figures.model_sha256 == Manifest.load(models_dir() / "manifest.yaml").model_sha256("face_resnet")
    kinds = {c.kind for c in figures.conditions}
    assert {"clean", "inter_eye_distance", "blur", "jpeg", "cctv"} <= kinds
