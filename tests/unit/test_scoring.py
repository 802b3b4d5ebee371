"""Every score is shown as the policy says, with its calibrated meaning; a threshold not derived from it is refused."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
from pathlib import Path

import pytest

from engine.casework.export import equity_caveat, score_meaning, score_view
from engine.errors import CalibrationError, ModelError
from engine.faces.models import CALIBRATION_FILE, Manifest, models_dir
from engine.faces.pipeline import MODEL_ID
from engine.library.index import Candidate
from engine.policy import Policy, load_default_policy
from engine.scoring import (
    UNCALIBRATED,
    LibrarySize,
    ScoreMeaning,
    ScoreView,
    meaning_for_model,
    scoring_json,
    scoring_text,
)
from engine.scoring.calibration import FLOOR_WORDS, derive_threshold, load_verified_calibration


@pytest.fixture(scope="module")
def resnet_sha() -> str:
    return Manifest.load(models_dir() / "manifest.yaml").model_sha256("face_resnet")


@pytest.fixture(scope="module")
def meaning(resnet_sha: str) -> ScoreMeaning:
    return ScoreMeaning.load(load_default_policy(), MODEL_ID, resnet_sha)


def showing(show: str, decimals: int = 3) -> Policy:
    policy = load_default_policy()
    return dataclasses.replace(
        policy, score_display=dataclasses.replace(policy.score_display, show=show, decimals=decimals)
    )


def test_the_shipped_policy_and_calibration_agree(meaning: ScoreMeaning, resnet_sha: str) -> None:
    calibration = load_verified_calibration()
    policy = load_default_policy()
    assert meaning.threshold == derive_threshold(calibration, policy.operating_point.target_false_match_rate)
    assert policy.operating_point.calibration_id == calibration.id
    out = meaning.to_json(0.35)
    assert out["within_operating_threshold"] is True
    assert out["meaning"].startswith("estimated false-match rate below 1 in ")  # 0.35: closer than 30 errors
    assert out["calibration"] == calibration.id and out["model_sha256"] == resnet_sha
    assert out["policy_version"] == policy.version
    assert not meaning.within_threshold(meaning.threshold + 0.001)


def test_a_hand_typed_threshold_is_refused(resnet_sha: str, meaning: ScoreMeaning) -> None:
    policy = load_default_policy()
    point = dataclasses.replace(policy.operating_point, threshold=0.6)
    with pytest.raises(CalibrationError, match=rf"does not match {meaning.threshold:.3f}"):
        ScoreMeaning.load(dataclasses.replace(policy, operating_point=point), MODEL_ID, resnet_sha)


def test_a_policy_naming_another_calibration_is_refused(resnet_sha: str, meaning: ScoreMeaning) -> None:
    policy = load_default_policy()
    point = dataclasses.replace(policy.operating_point, calibration_id="lfw-2026-11.v1")
    with pytest.raises(CalibrationError, match=rf"installed calibration is '{meaning.calibration.id}'"):
        ScoreMeaning.load(dataclasses.replace(policy, operating_point=point), MODEL_ID, resnet_sha)


def test_a_calibration_of_another_model_build_is_refused() -> None:
    with pytest.raises(CalibrationError, match="re-run make evaluate"):
        ScoreMeaning.load(load_default_policy(), MODEL_ID, "0" * 64)


def test_an_edited_calibration_file_is_refused(tmp_path: Path, resnet_sha: str) -> None:
    shutil.copy(models_dir() / "manifest.yaml", tmp_path / "manifest.yaml")
    text = (models_dir() / CALIBRATION_FILE).read_text().replace("[0.500,", "[0.500 ,", 1)
    (tmp_path / CALIBRATION_FILE).write_text(text)
    with pytest.raises(ModelError, match=r"calibration\.yaml does not match models/manifest\.yaml"):
        ScoreMeaning.load(load_default_policy(), MODEL_ID, resnet_sha, tmp_path)


def test_a_model_nobody_calibrated_is_marked_uncalibrated_never_given_another_models_rates() -> None:
    assert meaning_for_model(load_default_policy(), "synthetic-test-engine-v1", "1" * 64) is None
    view = ScoreView("estimated_false_match_rate", 3, None)
    fields = view.fields(0.9, 0.1)
    assert fields["meaning"] == UNCALIBRATED and fields["estimated_false_match_rate"] is None
    assert fields["within_operating_threshold"] is None and view.cell(0.9, 0.1) == "uncalibrated"
    assert scoring_json(None, "m", "1" * 64)["calibrated"] is False


class TestScoreDisplay:
    """``score_display.show`` decides what every list, export and report carries."""

    def test_similarity_shows_the_similarity_to_the_policys_places(self, meaning: ScoreMeaning) -> None:
        view = ScoreView.of(showing("similarity", 2), meaning)
        assert view.fields(0.6666, 0.4) == {"score": 0.67, "within_operating_threshold": True}
        assert view.cell(0.6666, 0.4) == "0.67" and view.words(0.6666, 0.4) == "similarity 0.67"
        assert view.heading == "Similarity" and "not a probability" in view.note()

    def test_estimated_false_match_rate_shows_the_statement(self, meaning: ScoreMeaning) -> None:
        view = ScoreView.of(showing("estimated_false_match_rate"), meaning, LibrarySize(12_000, 12_000))
        d = meaning.threshold
        fields = view.fields(0.55, d)
        estimate = meaning.estimate(d)
        assert "score" not in fields and fields["distance"] == round(d, 6)
        assert fields["estimated_false_match_rate"] == estimate.rate and estimate.supported
        assert fields["false_match_words"] == view.cell(0.55, d) == estimate.phrase()
        assert fields["in_library"].startswith("in a library of 12,000 people, about ")
        assert fields["expected_different_people"] == pytest.approx(12_000 * estimate.rate)
        assert view.words(0.55, d) == f"{meaning.describe(d)}; {fields['in_library']}"
        assert view.note().startswith(f"Scores from face model {MODEL_ID}")

    def test_hidden_shows_and_exports_nothing(self, meaning: ScoreMeaning) -> None:
        view = ScoreView.of(showing("hidden"), meaning, LibrarySize(100, 100))
        assert view.fields(0.7, 0.3) == {} and view.cell(0.7, 0.3) == "" and view.words(0.7, 0.3) is None
        assert view.heading is None and view.threshold_words(0.3) is None and "hides them" in view.note()
        candidate = Candidate(1, 0.7, 0.3, "CUST-1", 1, 2, 3, "custody")
        assert candidate.to_json(view) == {"rank": 1, "subject": "CUST-1", "image_id": "2", "library": "custody"}
        assert "decimals" not in view.scoring_json(MODEL_ID, meaning.model_sha256)

    def test_a_search_export_carries_the_floor_and_the_equity_caveat(self, meaning: ScoreMeaning) -> None:
        scoring = ScoreView.of(showing("similarity"), meaning).scoring_json(MODEL_ID, meaning.model_sha256)
        assert scoring["score_display"] == "similarity" and scoring["calibration"] == meaning.calibration.id
        assert scoring["lowest_rate_words"].endswith(f"({FLOOR_WORDS})")
        assert scoring["equity_caveat"].startswith(f"Equity caveat: at the operating threshold {meaning.threshold:.3f}")
        assert f"calibration {meaning.calibration.id}, operating threshold {meaning.threshold}" in scoring_text(scoring)

    def test_evaluation_tools_see_every_field(self, meaning: ScoreMeaning) -> None:
        candidate = Candidate(1, 0.7, 0.36, "A", 1, 2, 3, "lfw")
        out = candidate.to_json(meaning)
        assert out["score"] == 0.7 and out["distance"] == 0.36 and out["meaning"] == meaning.describe(0.36)
        assert candidate.to_json(None)["meaning"] == UNCALIBRATED


def test_closer_faces_never_get_weaker_words(meaning: ScoreMeaning) -> None:
    """The 1:1 and the 1:N statements on the shipped calibration, distance by distance."""
    calibration = meaning.calibration
    library = LibrarySize(1_000_000, 1_000_000)
    expected = [meaning.in_library(d, library).expected for d in calibration.distances]
    assert all(a <= b for a, b in itertools.pairwise(expected))
    floor = {meaning.estimate(d).phrase() for d in calibration.distances if not meaning.estimate(d).supported}
    assert len(floor) == 1 and next(iter(floor)).endswith(f"({FLOOR_WORDS})")


def test_the_match_report_states_what_the_score_means(resnet_sha: str, meaning: ScoreMeaning) -> None:
    policy = load_default_policy()
    similarity = score_view(policy, MODEL_ID, resnet_sha)
    text = score_meaning(similarity, 0.7, 0.40)
    assert text.startswith(f"similarity {0.7:.{policy.score_display.decimals}f} (")
    assert f"within the operating threshold {meaning.threshold:.3f}" in text
    assert resnet_sha[:12] in text and policy.version in text and meaning.calibration.id in text
    assert "outside the operating threshold" in score_meaning(similarity, 0.3, 0.70)
    rates = score_view(showing("estimated_false_match_rate"), MODEL_ID, resnet_sha, LibrarySize(500, 800))
    text = score_meaning(rates, 0.7, 0.40)
    assert text.startswith("estimated false-match rate") and "in a library of 500 people (800 reference images)" in text
    assert score_meaning(score_view(showing("hidden"), MODEL_ID, resnet_sha), 0.7, 0.4).startswith("not shown")
    assert UNCALIBRATED in score_meaning(score_view(policy, "synthetic-test-engine-v1", "1" * 64), 0.7, 0.40)
    assert score_meaning(similarity, None, None) == "not kept"
    assert equity_caveat(similarity) == meaning.equity_caveat()
    assert "unknown" in equity_caveat(score_view(policy, "synthetic-test-engine-v1", "1" * 64))


@pytest.mark.parametrize("show", ["similarity", "estimated_false_match_rate", "hidden"])
def test_the_search_command_shows_scores_as_the_policy_says(meaning: ScoreMeaning, show: str) -> None:
    from types import SimpleNamespace

    from engine.cli.case import _search_json, _search_text

    library = LibrarySize(2_000, 2_400)
    view = ScoreView.of(showing(show), meaning, library)
    near, far = (
        Candidate(1, 0.71, 0.35, "CUST-1", 1, 11, 21, "custody"),
        Candidate(2, 0.5, 0.6, "CUST-2", 2, 12, 22, "custody"),
    )
    result = SimpleNamespace(
        case=SimpleNamespace(id="RFR-1", state=SimpleNamespace(value="searched")),
        candidates=(near, far),
        quality_warnings=(),
        libraries=("custody",),
        top_k=20,
        model_id=MODEL_ID,
        model_sha256=meaning.model_sha256,
    )
    payload = _search_json(result, view, "caution")  # type: ignore[arg-type]
    text = _search_text(payload, view)
    first = payload["probes"][0]["candidates"][0]
    assert payload["scoring"]["score_display"] == show and "Equity caveat" in text
    if show == "hidden":
        assert (
            set(first) == {"rank", "subject", "image_id", "library"}
            and "0.710" not in text
            and "1 in" not in text.split("Equity caveat")[0]
        )
    elif show == "similarity":
        assert first["score"] == 0.71 and "   1  0.710  CUST-1" in text and "estimated false-match rate" not in text
    else:
        assert "score" not in first and first["in_library"].startswith("in a library of 2,000 people (2,400")
        assert f"   1 {meaning.estimate(0.35).phrase()}  CUST-1" in text and first["in_library"] in text
