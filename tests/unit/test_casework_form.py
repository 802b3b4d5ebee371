"""The RFR Submission Form and the Match Report: every required field is checked and named when missing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.casework import FACTORS, MatchReport, SubmissionForm
from engine.casework.form import CompletedAs, ProbeSource
from engine.errors import FormError, MatchReportError
from engine.policy import Policy, load_default_policy


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_default_policy()


CHECKS = {
    "local_intelligence": ("exhausted", "Local intelligence and PNC searched: no trace"),
    "circulation": ("exhausted", "Circulated to the local teams: nobody recognised him"),
    "other_enquiries": ("exhausted", "House-to-house and witness statements taken"),
    "biometric_identification": ("unviable", "No fingerprints or DNA were recovered"),
}
NOW = datetime(2025, 1, 5, 12, 0, tzinfo=UTC)


def fields(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "completed_by": "alice",
        "use_case": "identify_unknown_subject",
        "reference": "OCC/2025/0001",
        "offence": "burglary dwelling",
        "justification": "Identify the suspect of a series of burglaries; no other lead remains open to us.",
        "pre_rfr_checks": CHECKS,
        "probe_source": "police",
        "probe_captured": "2025-01-02T14:00",
        "probe_obtained": "Exported from the victim's doorbell camera by PC 1234",
        "age_band": "adult",
        "libraries": ["custody"],
        "now": NOW,
    }
    base.update(overrides)
    return base


def test_a_complete_form_round_trips(policy: Policy) -> None:
    form = SubmissionForm.create(policy, **fields(coverings="  baseball   cap "))
    assert form.probe_source is ProbeSource.POLICE and form.probe_captured == "2025-01-02T14:00Z"
    assert form.coverings == "baseball cap" and form.completed_as is CompletedAs.RFR_USER
    assert [c.key for c in form.pre_rfr_checks] == [c.key for c in policy.pre_rfr_checks]
    assert form.check("biometric_identification").status.value == "unviable"  # type: ignore[union-attr]
    assert SubmissionForm.from_json(form.to_json()) == form


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"justification": ""}, "justification is missing"),
        ({"justification": "   "}, "justification is missing"),
        ({"justification": "because"}, "justification: too short"),
        ({"justification": "see above"}, "justification: 'see above' is not an answer"),
        ({"use_case": "fishing_expedition"}, "use_case: unknown use case 'fishing_expedition'"),
        ({"use_case": ""}, "use_case is missing"),
        ({"age_band": "toddler"}, "age_band: unknown age band 'toddler'"),
        ({"reference": ""}, "reference is missing"),
        ({"offence": ""}, "offence is missing"),
        ({"libraries": []}, "libraries: name at least one Permitted Image Reference Library"),
        ({"probe_source": "twitter"}, "probe_source 'twitter'"),
        ({"reference": "A\x00B"}, "reference contains control characters"),
        # Found (issue 14): Pre-RFR Checks of "none", "n/a" or "xxxxxxxxxxxx" were stored as "checks exhausted".
        ({"pre_rfr_checks": {**CHECKS, "circulation": ("exhausted", "none")}}, "circulation: 'none' is not an answer"),
        ({"pre_rfr_checks": {**CHECKS, "circulation": ("exhausted", "n/a")}}, "circulation: 'n/a' is not an answer"),
        (
            {"pre_rfr_checks": {**CHECKS, "circulation": ("exhausted", "xxxxxxxxxxxx")}},
            "pre_rfr_checks.circulation: too little said",
        ),
        ({"pre_rfr_checks": {k: v for k, v in CHECKS.items() if k != "circulation"}}, "circulation is missing"),
        (
            {"pre_rfr_checks": {**CHECKS, "circulation": ("tried", "asked around the station")}},
            "is not exhausted or unviable",
        ),
        (
            {"pre_rfr_checks": {**CHECKS, "horoscope": ("exhausted", "read the stars carefully")}},
            "unknown Pre-RFR Check",
        ),
        # Found: probe source and provenance were optional.
        ({"probe_source": ""}, "probe_source is missing"),
        ({"probe_captured": ""}, "probe_captured is missing"),
        ({"probe_captured": "last week"}, "probe_captured 'last week' is not a date"),
        ({"probe_captured": "2025-02-01"}, "probe_captured 2025-02-01 is in the future"),
        ({"probe_obtained": ""}, "probe_obtained is missing"),
        ({"probe_obtained": "email"}, "probe_obtained: too short"),
    ],
)
def test_an_incomplete_form_is_refused_naming_the_field(policy: Policy, overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(FormError) as caught:
        SubmissionForm.create(policy, **fields(**overrides))
    message = caught.value.diagnostics()
    assert message.startswith("submission form: ") and field in message and "\n" not in message


GOOD_REPORT = """
factors:
  probe_image_quality: {relevant: true, assessment: "CCTV still, face about 90 px wide, slight motion blur"}
  reference_image_quality: {relevant: false, assessment: "custody image, frontal and sharp"}
  time_lapse: {relevant: true, assessment: "about six years; hairline receded, same ear shape"}
  lighting: {relevant: false, assessment: "even in both"}
  other: {relevant: true, assessment: "glasses in the probe only; compared nose and ears"}
reasoning: "Ears, nose and the scar above the left eyebrow agree; differences are explained by age."
"""


def test_a_complete_match_report_names_the_relevant_factors(tmp_path: Path) -> None:
    path = tmp_path / "report.yaml"
    path.write_text(GOOD_REPORT)
    report = MatchReport.from_file(path)
    assert [f.key for f in report.factors] == list(FACTORS)
    assert report.relevant == ("probe_image_quality", "time_lapse", "other")
    assert MatchReport.from_mapping(report.to_json()) == report


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('  lighting: {relevant: false, assessment: "even in both"}\n', ""), "factors.lighting"),
        (
            lambda t: t.replace('relevant: false, assessment: "even', 'relevant: maybe, assessment: "even'),
            "lighting.relevant",
        ),
        (lambda t: t.replace('assessment: "even in both"', 'assessment: ""'), "factors.lighting.assessment"),
        (lambda t: t.split("reasoning:")[0], "reasoning is missing"),
        (lambda t: t.replace("  other:", "  weather: {relevant: true, assessment: x}\n  other:"), "factors.weather"),
        (lambda t: t + "\nsignature: x\n", "unknown key 'signature'"),
        (lambda t: "factors: [", "not valid YAML"),
        (lambda t: "just text", "expected a mapping"),
    ],
)
def test_an_incomplete_match_report_is_refused(edit: Any, message: str) -> None:
    with pytest.raises(MatchReportError, match=message):
        MatchReport.from_yaml(edit(GOOD_REPORT))


def test_an_unreadable_report_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(MatchReportError, match="does not exist"):
        MatchReport.from_file(tmp_path / "missing.yaml")
    (tmp_path / "big.yaml").write_bytes(b"x" * (300 * 1024))
    with pytest.raises(MatchReportError, match="larger than"):
        MatchReport.from_file(tmp_path / "big.yaml")


def test_a_report_file_that_is_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "report.yaml"
    os.mkfifo(fifo)
    with pytest.raises(MatchReportError, match="is not a regular file"):
        MatchReport.from_file(fifo)


def test_substance_rules_apply_to_each_factor_and_the_reasoning(policy: Policy) -> None:
    report = MatchReport.from_yaml(GOOD_REPORT)
    report.check_substance(policy)
    lazy = MatchReport.from_yaml(GOOD_REPORT.replace('"even in both"', '"x"'))
    with pytest.raises(MatchReportError, match=r"factors\.lighting\.assessment: 'x' is not an answer"):
        lazy.check_substance(policy)
