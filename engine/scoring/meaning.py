"""What a score means: the calibrated false-match rate, the operating threshold, and their versions.

Every score the terminal shows or exports goes through ``ScoreMeaning`` so that it carries
its calibrated meaning ("estimated false-match rate about 1 in 40,000") and the model,
calibration, threshold and policy versions needed to reproduce it. Loading refuses a policy
whose threshold was not derived from the installed calibration, and a calibration made for
another model build: either would silently change what "a match" means.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.policy import Policy
from engine.scoring.calibration import Calibration, check_policy_threshold, load_verified_calibration

INTELLIGENCE_LEAD = (
    "A Potential Match is an intelligence lead only: never a formal identification, never evidence. "
    "A high score or rank is not viability; the RFR User must Adjudicate every candidate."
)


@dataclass(frozen=True)
class ScoreMeaning:
    """Turns distances into what a person can weigh, under one policy, model and calibration."""

    calibration: Calibration
    threshold: float
    target_false_match_rate: float
    model_id: str
    model_sha256: str
    policy_version: str
    policy_sha256: str

    @classmethod
    def load(cls, policy: Policy, model_id: str, model_sha256: str, models_dir: Path | None = None) -> ScoreMeaning:
        calibration = load_verified_calibration(models_dir)
        calibration.check_model(model_id, model_sha256)
        point = policy.operating_point
        threshold = check_policy_threshold(
            point.threshold, calibration, point.target_false_match_rate, point.calibration_id
        )
        return cls(
            calibration,
            float(point.threshold) if point.threshold is not None else threshold,
            point.target_false_match_rate,
            model_id,
            model_sha256,
            policy.version,
            policy.sha256,
        )

    def within_threshold(self, distance: float) -> bool:
        return distance <= self.threshold

    def describe(self, distance: float) -> str:
        return self.calibration.describe_score(distance)

    def versions(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "model_sha256": self.model_sha256,
            "calibration": self.calibration.reference,
            "threshold": self.threshold,
            "target_false_match_rate": self.target_false_match_rate,
            "policy_version": self.policy_version,
            "policy_sha256": self.policy_sha256,
        }

    def meaning_fields(self, distance: float) -> dict[str, Any]:
        """What one distance means: the fields each listed candidate carries beside its score."""
        estimate = self.calibration.false_match_rate(distance)
        return {
            "estimated_false_match_rate": estimate.rate,
            "false_match_rate_upper_bound": estimate.upper_bound,
            "meaning": self.describe(distance),
            "within_operating_threshold": self.within_threshold(distance),
        }

    def to_json(self, distance: float) -> dict[str, Any]:
        """The fields every exported score carries."""
        return {"distance": round(float(distance), 6), **self.meaning_fields(distance), **self.versions()}


UNCALIBRATED = (
    "uncalibrated: no calibration was measured for this face model, so the distance has no stated "
    "false-match rate; compare candidates by eye only"
)


def meaning_for_model(
    policy: Policy, model_id: str, model_sha256: str, models_dir: Path | None = None
) -> ScoreMeaning | None:
    """The score meaning for a model, or None when the installed calibration measured another model.

    None is for engines nobody calibrated (the test engine; a model not yet evaluated): their
    scores are shown as uncalibrated, never with another model's rates. A calibration that fails
    its hash, or a policy threshold that disagrees with it, is still refused.
    """
    calibration = load_verified_calibration(models_dir)
    if (calibration.model_id, calibration.model_sha256) != (model_id, model_sha256):
        return None
    return ScoreMeaning.load(policy, model_id, model_sha256, models_dir)


def scoring_json(meaning: ScoreMeaning | None, model_id: str, model_sha256: str) -> dict[str, Any]:
    """The versions a list of scores was made under, so every result can be reproduced."""
    if meaning is None:
        return {"calibrated": False, "model_id": model_id, "model_sha256": model_sha256, "meaning": UNCALIBRATED}
    return {"calibrated": True, **meaning.versions()}


def scoring_text(scoring: dict[str, Any]) -> str:
    """One line naming the versions a list of scores was made under (from ``scoring_json``)."""
    if not scoring["calibrated"]:
        return f"Scores from face model {scoring['model_id']}: {scoring['meaning']}."
    return (
        f"Scores from face model {scoring['model_id']} ({scoring['model_sha256'][:12]}), calibration "
        f"{scoring['calibration']}, operating threshold "
        f"{scoring['threshold']} (target false-match rate {scoring['target_false_match_rate']}), "
        f"policy {scoring['policy_version']}."
    )


def candidate_meaning(meaning: ScoreMeaning | None, distance: float) -> dict[str, Any]:
    """The meaning fields of one candidate's distance, calibrated or plainly marked as not."""
    if meaning is None:
        return {
            "estimated_false_match_rate": None,
            "false_match_rate_upper_bound": None,
            "meaning": UNCALIBRATED,
            "within_operating_threshold": None,
        }
    return meaning.meaning_fields(distance)
