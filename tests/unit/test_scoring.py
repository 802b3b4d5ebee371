"""Every score carries its calibrated meaning; a threshold not derived from the calibration is refused."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from engine.casework.export import score_meaning
from engine.errors import CalibrationError, ModelError
from engine.faces.models import CALIBRATION_FILE, Manifest, models_dir
from engine.faces.pipeline import MODEL_ID
from engine.policy import load_default_policy
from engine.scoring import (
    UNCALIBRATED,
    ScoreMeaning,
    candidate_meaning,
    meaning_for_model,
    scoring_json,
    scoring_text,
)


@pytest.fixture(scope="module")
def resnet_sha() -> str:
    return Manifest.load(models_dir() / "manifest.yaml").model_sha256("face_resnet")


def test_the_shipped_policy_and_calibration_agree(resnet_sha: str) -> None:
    meaning = ScoreMeaning.load(load_default_policy(), MODEL_ID, resnet_sha)
    assert meaning.threshold == 0.542
    out = meaning.to_json(0.35)
    assert out["within_operating_threshold"] is True
    assert out["meaning"].startswith("estimated false-match rate about 1 in ")
    assert out["calibration"] == "lfw-2026-11.v1" and out["model_sha256"] == resnet_sha
    assert out["policy_version"] == load_default_policy().version
    assert not meaning.within_threshold(0.60)


def test_a_hand_typed_threshold_is_refused(resnet_sha: str) -> None:
    policy = load_default_policy()
    point = dataclasses.replace(policy.operating_point, threshold=0.6)
    with pytest.raises(CalibrationError, match=r"does not match 0\.542"):
        ScoreMeaning.load(dataclasses.replace(policy, operating_point=point), MODEL_ID, resnet_sha)


def test_a_policy_naming_another_calibration_is_refused(resnet_sha: str) -> None:
    policy = load_default_policy()
    point = dataclasses.replace(policy.operating_point, calibration_id="lfw-2025-01.v1")
    with pytest.raises(CalibrationError, match=r"installed calibration is 'lfw-2026-11\.v1'"):
        ScoreMeaning.load(dataclasses.replace(policy, operating_point=point), MODEL_ID, resnet_sha)


def test_a_calibration_of_another_model_build_is_refused() -> None:
    with pytest.raises(CalibrationError):
        ScoreMeaning.load(load_default_policy(), MODEL_ID, "0" * 64)


def test_an_edited_calibration_file_is_refused(tmp_path: Path, resnet_sha: str) -> None:
    shutil.copy(models_dir() / "manifest.yaml", tmp_path / "manifest.yaml")
    text = (models_dir() / CALIBRATION_FILE).read_text().replace("[0.500,", "[0.500 ,", 1)
    (tmp_path / CALIBRATION_FILE).write_text(text)
    with pytest.raises(ModelError, match=r"calibration\.yaml does not match models/manifest\.yaml"):
        ScoreMeaning.load(load_default_policy(), MODEL_ID, resnet_sha, tmp_path)


def test_a_model_nobody_calibrated_is_marked_uncalibrated_never_given_another_models_rates() -> None:
    assert meaning_for_model(load_default_policy(), "synthetic-test-engine-v1", "1" * 64) is None
    fields = candidate_meaning(None, 0.1)
    assert fields["meaning"] == UNCALIBRATED and fields["estimated_false_match_rate"] is None
    assert fields["within_operating_threshold"] is None
    assert scoring_json(None, "m", "1" * 64)["calibrated"] is False


def test_the_engines_model_gets_the_calibrated_meaning(resnet_sha: str) -> None:
    meaning = meaning_for_model(load_default_policy(), MODEL_ID, resnet_sha)
    assert meaning is not None
    near, far = candidate_meaning(meaning, 0.40), candidate_meaning(meaning, 0.75)
    assert near["within_operating_threshold"] is True and far["within_operating_threshold"] is False
    assert near["false_match_rate_upper_bound"] < far["false_match_rate_upper_bound"]
    scoring = scoring_json(meaning, MODEL_ID, resnet_sha)
    assert scoring["calibrated"] is True and scoring["calibration"] == "lfw-2026-11.v1"
    assert "calibration lfw-2026-11.v1, operating threshold 0.542" in scoring_text(scoring)


def test_the_match_report_states_what_the_score_means(resnet_sha: str) -> None:
    policy = load_default_policy()
    text = score_meaning(policy, 0.40, MODEL_ID, resnet_sha)
    assert text.startswith("estimated false-match rate") and "within the operating threshold 0.542" in text
    assert resnet_sha[:12] in text and policy.version in text
    assert "outside the operating threshold" in score_meaning(policy, 0.70, MODEL_ID, resnet_sha)
    assert UNCALIBRATED in score_meaning(policy, 0.40, "synthetic-test-engine-v1", "1" * 64)
    assert score_meaning(policy, None, MODEL_ID, resnet_sha) == "not kept"
