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

from engine.evaluation.calibration import Calibration, check_policy_threshold
from engine.faces.models import load_verified_calibration
from engine.policy import Policy

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

    def to_json(self, distance: float) -> dict[str, Any]:
        """The fields every exported score carries."""
        estimate = self.calibration.false_match_rate(distance)
        return {
            "distance": round(float(distance), 6),
            "estimated_false_match_rate": estimate.rate,
            "false_match_rate_upper_bound": estimate.upper_bound,
            "meaning": self.describe(distance),
            "within_operating_threshold": self.within_threshold(distance),
            **self.versions(),
        }
