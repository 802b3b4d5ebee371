"""The RFR Submission Form as a typed, validated object.

Every Probe Image comes with a completed form (DOMAIN.md): who completed it, the use case,
the crime or occurrence reference and offence type, the legitimate aim and why the search is
necessary and proportionate, confirmation that the Pre-RFR Checks are exhausted or unviable
(with what was tried), the Probe Image's provenance, the subject factors the officer can see
or suspects, and the Permitted Image Reference Libraries to search. ``SubmissionForm.create``
refuses an incomplete form with a message naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from engine.errors import FormError, PolicyError
from engine.policy import Policy

MAX_TEXT = 4000
MIN_JUSTIFICATION = 20


class CompletedAs(StrEnum):
    """Who completed the form: a tasking officer / SPOC, or the RFR User for business-as-usual work."""

    TASKING_OFFICER = "tasking_officer"
    RFR_USER = "rfr_user"


class ProbeSource(StrEnum):
    """Whether the Probe Image is police-originated."""

    POLICE = "police"
    OTHER = "other"
    NOT_STATED = "not_stated"


NOT_STATED = "not stated"


def _text(field: str, value: object, *, required: bool, hint: str, minimum: int = 1) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise FormError(f"submission form: {field} must be text")
    text = " ".join(value.split())
    if not text:
        if required:
            raise FormError(f"submission form: {field} is missing: {hint}")
        return ""
    if len(text) < minimum:
        raise FormError(f"submission form: {field} is too short (at least {minimum} characters): {hint}")
    if len(text) > MAX_TEXT:
        raise FormError(f"submission form: {field} is longer than {MAX_TEXT} characters")
    if not text.isprintable():
        raise FormError(f"submission form: {field} contains control characters")
    return text


@dataclass(frozen=True)
class SubmissionForm:
    """A completed, validated RFR Submission Form (build it with ``create``)."""

    completed_by: str
    completed_as: CompletedAs
    use_case: str
    reference: str
    offence: str
    justification: str
    pre_checks_exhausted: bool
    pre_checks_tried: str
    probe_source: ProbeSource
    probe_captured: str
    probe_obtained: str
    age_band: str
    relevant_disability: bool
    pre_dates_gender_reassignment: bool
    coverings: str
    injuries: str
    libraries: tuple[str, ...]

    @classmethod
    def create(
        cls,
        policy: Policy,
        *,
        completed_by: str,
        use_case: str,
        reference: str,
        offence: str,
        justification: str,
        pre_checks_tried: str,
        age_band: str,
        libraries: Sequence[str],
        pre_checks_exhausted: bool = True,
        completed_as: CompletedAs | str = CompletedAs.RFR_USER,
        probe_source: ProbeSource | str = ProbeSource.NOT_STATED,
        probe_captured: str = "",
        probe_obtained: str = "",
        relevant_disability: bool = False,
        pre_dates_gender_reassignment: bool = False,
        coverings: str = "",
        injuries: str = "",
    ) -> SubmissionForm:
        """Validate every field against the policy; raise ``FormError`` naming the first field at fault."""
        if not isinstance(use_case, str) or not use_case.strip():
            raise FormError("submission form: use_case is missing: choose one of the permitted use cases")
        try:
            policy.use_case(use_case.strip())
        except PolicyError as exc:
            raise FormError(f"submission form: use_case: {exc.diagnostics()}") from None
        if not isinstance(age_band, str) or not age_band.strip():
            raise FormError("submission form: age_band is missing: give the apparent age band")
        try:
            policy.age_band(age_band.strip())
        except PolicyError as exc:
            raise FormError(f"submission form: age_band: {exc.diagnostics()}") from None
        try:
            completed = CompletedAs(completed_as)
        except ValueError:
            raise FormError(
                f"submission form: completed_as {completed_as!r}: use {', '.join(c.value for c in CompletedAs)}"
            ) from None
        try:
            source = ProbeSource(probe_source)
        except ValueError:
            raise FormError(
                f"submission form: probe_source {probe_source!r}: use {', '.join(s.value for s in ProbeSource)}"
            ) from None
        if not pre_checks_exhausted:
            raise FormError(
                "submission form: pre_checks: confirm that all Pre-RFR Checks have been exhausted or are unviable"
            )
        names = [" ".join(str(n).split()) for n in libraries]
        if not names or not all(names):
            raise FormError("submission form: libraries: name at least one Permitted Image Reference Library")
        return cls(
            completed_by=_text("completed_by", completed_by, required=True, hint="who completed the form"),
            completed_as=completed,
            use_case=use_case.strip(),
            reference=_text("reference", reference, required=True, hint="give the crime or occurrence reference"),
            offence=_text("offence", offence, required=True, hint="give the offence type"),
            justification=_text(
                "justification",
                justification,
                required=True,
                minimum=MIN_JUSTIFICATION,
                hint="state the legitimate aim and why the search is necessary and proportionate",
            ),
            pre_checks_exhausted=True,
            pre_checks_tried=_text(
                "pre_checks",
                pre_checks_tried,
                required=True,
                hint="confirm all Pre-RFR Checks are exhausted or unviable and say what was tried",
            ),
            probe_source=source,
            probe_captured=_text("probe_captured", probe_captured, required=False, hint="") or NOT_STATED,
            probe_obtained=_text("probe_obtained", probe_obtained, required=False, hint="") or NOT_STATED,
            age_band=age_band.strip(),
            relevant_disability=bool(relevant_disability),
            pre_dates_gender_reassignment=bool(pre_dates_gender_reassignment),
            coverings=_text("coverings", coverings, required=False, hint=""),
            injuries=_text("injuries", injuries, required=False, hint=""),
            libraries=tuple(dict.fromkeys(names)),
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["completed_as"] = self.completed_as.value
        data["probe_source"] = self.probe_source.value
        data["libraries"] = list(self.libraries)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SubmissionForm:
        """A stored form as recorded (it was validated under the case's policy when the case was created)."""
        fields = dict(data)
        fields["completed_as"] = CompletedAs(fields["completed_as"])
        fields["probe_source"] = ProbeSource(fields["probe_source"])
        fields["libraries"] = tuple(fields["libraries"])
        return cls(**fields)
