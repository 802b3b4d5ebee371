"""What a score means, and how the policy says it is shown: the one place screens, reports and exports ask.

Every score the terminal shows or exports goes through ``ScoreView``: it honours the policy's
``score_display`` (``similarity``, ``estimated_false_match_rate`` or ``hidden``, to ``decimals``
places) and carries, with the calibrated meaning, the model, calibration, threshold and policy versions
needed to reproduce it. ``ScoreMeaning`` holds the calibration under one policy: the 1:1 statement of a
distance ("estimated false-match rate about 1 in 44,000"), its 1:N meaning in the library searched
("in a library of 12,000 people, about 12 different people would score this close by chance") and
the equity caveat of the operating threshold. Loading refuses a policy whose threshold was not
derived from the installed calibration, and a calibration made for another model build: either
would silently change what "a match" means.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.policy import Policy
from engine.scoring.calibration import (
    Calibration,
    FalseMatchEstimate,
    LibraryMeaning,
    check_policy_threshold,
    load_verified_calibration,
    one_in,
)

INTELLIGENCE_LEAD = (
    "A Potential Match is an intelligence lead only: never a formal identification, never evidence. "
    "A high score or rank is not viability; the RFR User must Adjudicate every candidate."
)
UNCALIBRATED = (
    "uncalibrated: no calibration was measured for this face model, so the distance has no stated "
    "false-match rate; compare candidates by eye only"
)
SIMILARITY_NOTE = (
    "Similarity is the face model's display score, from 0 to 1, used to order the list: it is not a "
    "probability and it is not a Viable Match."
)
HIDDEN_NOTE = "Scores are not shown: the policy hides them. Assess each Potential Match by eye."
SHOWN = ("similarity", "estimated_false_match_rate", "hidden")
EVERYTHING = "everything"
"""Not a policy setting: evaluation tools (``rfr evaluate search``) on public benchmarks show every field."""


@dataclass(frozen=True)
class LibrarySize:
    """The people (subjects) and reference templates a search compared the Probe Image with."""

    people: int
    templates: int

    def to_json(self) -> dict[str, int]:
        return {"people": self.people, "templates": self.templates}

    @classmethod
    def from_json(cls, data: Any) -> LibrarySize | None:
        """From a recorded ``{"people", "templates"}``; None when it was not recorded (older searches)."""
        if not isinstance(data, dict):
            return None
        people, templates = data.get("people"), data.get("templates")
        if not isinstance(people, int) or not isinstance(templates, int) or people < 1:
            return None
        return cls(people, max(people, templates))


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

    def estimate(self, distance: float) -> FalseMatchEstimate:
        return self.calibration.false_match_rate(distance)

    def describe(self, distance: float) -> str:
        """The 1:1 statement: rate (or the floor), the counts behind it, distance and calibration."""
        return self.calibration.describe_score(distance)

    def in_library(self, distance: float, library: LibrarySize) -> LibraryMeaning:
        """The 1:N meaning: different people expected to score this close in a library of that size."""
        return self.calibration.in_library(distance, library.people, library.templates)

    def equity_caveat(self) -> str:
        """Within-group false-match rates at the operating threshold, for the Match Report."""
        return self.calibration.equity_caveat(self.threshold, self.target_false_match_rate)

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

    def meaning_fields(self, distance: float, library: LibrarySize | None = None) -> dict[str, Any]:
        """What one distance means: the calibrated fields a listed candidate carries."""
        estimate = self.estimate(distance)
        fields: dict[str, Any] = {
            "estimated_false_match_rate": estimate.rate,
            "false_match_rate_below": None if estimate.supported else estimate.floor_rate,
            "false_matches_behind_rate": estimate.events if estimate.supported else None,
            "statement_pairs": estimate.pairs,
            "false_match_words": estimate.phrase(),
            "meaning": self.describe(distance),
            "within_operating_threshold": self.within_threshold(distance),
        }
        if library is not None:
            in_library = self.in_library(distance, library)
            fields["in_library"] = in_library.phrase()
            fields["expected_different_people"] = in_library.expected
        return fields

    def to_json(self, distance: float, library: LibrarySize | None = None) -> dict[str, Any]:
        """Every field of one distance (for evaluation tools; casework goes through ``ScoreView``)."""
        return {"distance": round(float(distance), 6), **self.meaning_fields(distance, library), **self.versions()}


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


def _uncalibrated_fields() -> dict[str, Any]:
    return {"estimated_false_match_rate": None, "meaning": UNCALIBRATED, "within_operating_threshold": None}


@dataclass(frozen=True)
class ScoreView:
    """How the policy in force shows a score (which number, how many places) and what it means.

    ``show`` is the policy's ``score_display.show``, or ``EVERYTHING`` for evaluation tools.
    ``library``: the size of what a 1:N search compared with, when known (for the 1:N meaning).
    """

    show: str
    decimals: int
    meaning: ScoreMeaning | None
    library: LibrarySize | None = None

    def __post_init__(self) -> None:
        if self.show not in (*SHOWN, EVERYTHING):
            raise ValueError(f"score_display.show must be one of {', '.join(SHOWN)}, got {self.show!r}")

    @classmethod
    def of(cls, policy: Policy, meaning: ScoreMeaning | None, library: LibrarySize | None = None) -> ScoreView:
        display = policy.score_display
        return cls(display.show, display.decimals, meaning, library)

    @classmethod
    def everything(cls, meaning: ScoreMeaning | None, library: LibrarySize | None = None) -> ScoreView:
        return cls(EVERYTHING, 6, meaning, library)

    @property
    def hidden(self) -> bool:
        return self.show == "hidden"

    @property
    def heading(self) -> str | None:
        """The score column's heading, or None when the policy hides scores."""
        return {"similarity": "Similarity", "estimated_false_match_rate": "Estimated false-match rate"}.get(self.show)

    def fields(self, score: float | None, distance: float | None) -> dict[str, Any]:
        """The JSON fields of one candidate's score, as the policy shows it (nothing when it hides scores)."""
        if self.show == "hidden":
            return {}
        within = None if self.meaning is None or distance is None else self.meaning.within_threshold(distance)
        if self.show == "similarity":
            return {
                "score": None if score is None else round(score, self.decimals),
                "within_operating_threshold": within,
            }
        out: dict[str, Any] = {}
        if self.show == EVERYTHING:
            out["score"] = None if score is None else round(score, 6)
        if distance is None:
            return {**out, "distance": None, "meaning": "not kept"}
        out["distance"] = round(float(distance), 6)  # what the meaning was computed from, to reproduce it
        if self.meaning is None:
            return {**out, **_uncalibrated_fields()}
        return {**out, **self.meaning.meaning_fields(distance, self.library)}

    def cell(self, score: float | None, distance: float | None) -> str:
        """The short form for a list."""
        if self.show == "similarity":
            return "not kept" if score is None else f"{score:.{self.decimals}f}"
        if self.show in ("estimated_false_match_rate", EVERYTHING):
            if distance is None:
                return "not kept"
            if self.meaning is None:
                return "uncalibrated"
            return self.meaning.estimate(distance).phrase()
        return ""

    def words(self, score: float | None, distance: float | None) -> str | None:
        """The long form, beside one Potential Match; None when the policy hides scores."""
        if self.show == "similarity":
            return f"similarity {self.cell(score, distance)}"
        if self.show in ("estimated_false_match_rate", EVERYTHING):
            if distance is None or self.meaning is None:
                return f"estimated false-match rate: {self.cell(score, distance)}"
            text = self.meaning.describe(distance)
            if self.library is not None:
                text += f"; {self.meaning.in_library(distance, self.library).phrase()}"
            return text
        return None

    def threshold_words(self, distance: float | None) -> str | None:
        """Within or outside the operating threshold, when the policy shows scores and the meaning is known."""
        if self.hidden or self.meaning is None or distance is None:
            return None
        side = "within" if self.meaning.within_threshold(distance) else "outside"
        return (
            f"{side} the operating threshold {self.meaning.threshold:.3f} (target false-match rate "
            f"1 in {one_in(self.meaning.target_false_match_rate)})"
        )

    def note(self) -> str:
        """One sentence saying what the numbers are (and are not)."""
        if self.show == "similarity":
            return SIMILARITY_NOTE
        if self.show in ("estimated_false_match_rate", EVERYTHING):
            if self.meaning is None:
                return f"Estimated false-match rate: {UNCALIBRATED}."
            return scoring_text(scoring_json(self.meaning, self.meaning.model_id, self.meaning.model_sha256))
        return HIDDEN_NOTE

    def scoring_json(self, model_id: str, model_sha256: str) -> dict[str, Any]:
        """The versions a list of scores was made under, how they are shown, and the equity caveat."""
        out = {**scoring_json(self.meaning, model_id, model_sha256), "score_display": self.show}
        if self.show != "hidden":
            out["decimals"] = self.decimals
        if self.meaning is not None:
            floor = self.meaning.calibration.floor
            out["lowest_rate_shown"] = floor.floor_rate
            out["lowest_rate_words"] = floor.phrase()
            out["equity_caveat"] = self.meaning.equity_caveat()
        if self.library is not None:
            out["library"] = self.library.to_json()
        return out


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
