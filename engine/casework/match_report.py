"""The Match Report: the RFR User's reasons for declaring a Potential Match a Viable Match.

The policy asks the report to consider at least (i) probe image quality, (ii) reference
library image quality, (iii) the time lapse between the two images, (iv) lighting conditions
and (v) any other subject, system or environmental factor, to name which were relevant and
to say how differences were evaluated. A report is written as YAML::

    factors:
      probe_image_quality: {relevant: true, assessment: "CCTV still, face 90 px wide, slight blur"}
      reference_image_quality: {relevant: false, assessment: "custody image, frontal, sharp"}
      time_lapse: {relevant: true, assessment: "about 6 years; hairline receded, same ear shape"}
      lighting: {relevant: false, assessment: "even in both"}
      other: {relevant: true, assessment: "glasses in the probe only; compared the nose and ears"}
    reasoning: "Why, taken together, the officer is satisfied the match is viable."
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.errors import MatchReportError
from engine.files import read_regular_file
from engine.policy import Policy

MAX_REPORT_BYTES = 256 * 1024
MAX_TEXT = 8000

# key -> the policy's words, in the policy's order (i) to (v)
FACTORS: dict[str, str] = {
    "probe_image_quality": "(i) probe image quality",
    "reference_image_quality": "(ii) reference library image quality",
    "time_lapse": "(iii) the time lapse between the two images",
    "lighting": "(iv) lighting conditions",
    "other": "(v) any other subject, system or environmental factor",
}


@dataclass(frozen=True)
class Factor:
    """One factor of the Match Report: whether it was relevant, and how the officer evaluated it."""

    key: str
    relevant: bool
    assessment: str

    @property
    def title(self) -> str:
        return FACTORS[self.key]


@dataclass(frozen=True)
class MatchReport:
    """A complete Match Report: all five factors, each named relevant or not, and the reasoning."""

    factors: tuple[Factor, ...]
    reasoning: str

    @property
    def relevant(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.factors if f.relevant)

    def factor(self, key: str) -> Factor:
        return next(f for f in self.factors if f.key == key)

    def check_substance(self, policy: Policy) -> None:
        """Refuse a report whose assessments or reasoning say nothing (``x``, ``n/a``) under the policy's text rules."""
        for f in self.factors:
            problem = policy.text_rules.problem(f.assessment, "short")
            if problem is not None:
                raise MatchReportError(
                    f"match report: factors.{f.key}.assessment: {problem}: say how {f.title} was evaluated"
                )
        problem = policy.text_rules.problem(self.reasoning, "reasoning")
        if problem is not None:
            raise MatchReportError(
                f"match report: reasoning: {problem}: set out why, taken together, the match is viable"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "factors": {f.key: {"relevant": f.relevant, "assessment": f.assessment} for f in self.factors},
            "reasoning": self.reasoning,
        }

    @classmethod
    def from_mapping(cls, data: object) -> MatchReport:
        """Validate a parsed report; ``MatchReportError`` names the missing or malformed factor or key."""
        if not isinstance(data, Mapping):
            raise MatchReportError("match report: expected a mapping with 'factors' and 'reasoning'")
        unknown = sorted(str(k) for k in data if k not in ("factors", "reasoning"))
        if unknown:
            raise MatchReportError(f"match report: unknown key {unknown[0]!r}: use 'factors' and 'reasoning'")
        raw_factors = data.get("factors")
        if not isinstance(raw_factors, Mapping):
            raise MatchReportError("match report: factors is missing: consider each of " + ", ".join(FACTORS.values()))
        extra = sorted(str(k) for k in raw_factors if k not in FACTORS)
        if extra:
            raise MatchReportError(
                f"match report: factors.{extra[0]} is not a factor: use {', '.join(FACTORS)} (put others under 'other')"
            )
        factors = []
        for key, title in FACTORS.items():
            entry = raw_factors.get(key)
            if not isinstance(entry, Mapping):
                raise MatchReportError(f"match report: factors.{key} is missing: the report must consider {title}")
            relevant = entry.get("relevant")
            if not isinstance(relevant, bool):
                raise MatchReportError(
                    f"match report: factors.{key}.relevant must be true or false: name whether {title} was relevant"
                )
            assessment = _text(f"factors.{key}.assessment", entry.get("assessment"), f"say how {title} was evaluated")
            factors.append(Factor(key, relevant, assessment))
        reasoning = _text("reasoning", data.get("reasoning"), "set out why the match is viable")
        return cls(tuple(factors), reasoning)

    @classmethod
    def from_yaml(cls, text: str) -> MatchReport:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise MatchReportError(f"match report: not valid YAML{where}") from None
        return cls.from_mapping(data)

    @classmethod
    def from_file(cls, path: Path) -> MatchReport:
        raw = read_regular_file(Path(path), limit=MAX_REPORT_BYTES, what="match report", error=MatchReportError)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MatchReportError(f"match report {path} is not UTF-8 text") from None
        return cls.from_yaml(text)


def _text(field: str, value: object, hint: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise MatchReportError(f"match report: {field} is missing: {hint}")
    text = value.strip()
    if len(text) > MAX_TEXT:
        raise MatchReportError(f"match report: {field} is longer than {MAX_TEXT} characters")
    if any(not ch.isprintable() and ch not in "\n\t" for ch in text):
        raise MatchReportError(f"match report: {field} contains control characters")
    return text
