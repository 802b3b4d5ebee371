"""The RFR Submission Form as a typed, validated object.

Every Probe Image comes with a completed form (DOMAIN.md): who completed it, the use case,
the crime or occurrence reference and offence type, the legitimate aim and why the search is
necessary and proportionate, each of the policy's Pre-RFR Checks confirmed exhausted or
unviable with what was done, the Probe Image's provenance (source, when it was captured, how it
was obtained), the subject factors the officer can see or suspects, and the Permitted Image
Reference Libraries to search. ``SubmissionForm.create`` refuses an incomplete form with a
message naming the field; written answers must carry substance under the policy's
``text_rules`` (so "n/a", "none" or "xxxxxxxx" are refused, not stored as "checks exhausted").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Literal

from engine.errors import FormError, PolicyError
from engine.policy import Policy

MAX_TEXT = 4000


class CompletedAs(StrEnum):
    """Who completed the form: a tasking officer / SPOC, or the RFR User for business-as-usual work."""

    TASKING_OFFICER = "tasking_officer"
    RFR_USER = "rfr_user"


class ProbeSource(StrEnum):
    """Whether the Probe Image is police-originated."""

    POLICE = "police"
    OTHER = "other"


class CheckStatus(StrEnum):
    """How a Pre-RFR Check stands: done without identifying the subject, or not possible here."""

    EXHAUSTED = "exhausted"
    UNVIABLE = "unviable"


@dataclass(frozen=True)
class PreRfrCheckAnswer:
    """One Pre-RFR Check of the policy's checklist, confirmed with what was done (or why it could not be)."""

    key: str
    status: CheckStatus
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"key": self.key, "status": self.status.value, "detail": self.detail}


def _clean(field: str, value: object, *, required: bool, hint: str) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise FormError(f"submission form: {field} must be text")
    text = " ".join(value.split())
    if not text and required:
        raise FormError(f"submission form: {field} is missing: {hint}")
    if len(text) > MAX_TEXT:
        raise FormError(f"submission form: {field} is longer than {MAX_TEXT} characters")
    if text and not text.isprintable():
        raise FormError(f"submission form: {field} contains control characters")
    return text


def _answer(policy: Policy, field: str, value: object, tier: Literal["short", "reasoning"], hint: str) -> str:
    """A written answer that must carry substance under the policy's text rules."""
    text = _clean(field, value, required=True, hint=hint)
    problem = policy.text_rules.problem(text, tier)
    if problem is not None:
        raise FormError(f"submission form: {field}: {problem}: {hint}")
    return text


def parse_capture_time(value: object, now: datetime) -> str:
    """When the Probe Image was captured: an ISO date or date-time (UTC unless it says), not in the future."""
    text = _clean("probe_captured", value, required=True, hint="give when the Probe Image was captured (YYYY-MM-DD)")
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if day > now.date():
                raise FormError(f"submission form: probe_captured {text} is in the future: check the date")
            return day.isoformat()
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FormError(
            f"submission form: probe_captured {text!r} is not a date: give YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment > now:
        raise FormError(f"submission form: probe_captured {text} is in the future: check the date and time")
    return moment.strftime("%Y-%m-%dT%H:%MZ")


@dataclass(frozen=True)
class SubmissionForm:
    """A completed, validated RFR Submission Form (build it with ``create``)."""

    completed_by: str
    completed_as: CompletedAs
    use_case: str
    reference: str
    offence: str
    justification: str
    pre_rfr_checks: tuple[PreRfrCheckAnswer, ...]
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
        pre_rfr_checks: Mapping[str, tuple[str, str]],
        probe_source: ProbeSource | str,
        probe_captured: str,
        probe_obtained: str,
        age_band: str,
        libraries: Sequence[str],
        completed_as: CompletedAs | str = CompletedAs.RFR_USER,
        relevant_disability: bool = False,
        pre_dates_gender_reassignment: bool = False,
        coverings: str = "",
        injuries: str = "",
        now: datetime | None = None,
    ) -> SubmissionForm:
        """Validate every field against the policy; raise ``FormError`` naming the first field at fault.

        ``pre_rfr_checks`` maps each of the policy's check keys to (status, what was done).
        """
        moment = now or datetime.now(UTC)
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
        if not probe_source:
            raise FormError("submission form: probe_source is missing: say whether the Probe Image is police or other")
        try:
            source = ProbeSource(probe_source)
        except ValueError:
            raise FormError(
                f"submission form: probe_source {probe_source!r}: use {', '.join(s.value for s in ProbeSource)}"
            ) from None
        names = [" ".join(str(n).split()) for n in libraries]
        if not names or not all(names):
            raise FormError("submission form: libraries: name at least one Permitted Image Reference Library")
        return cls(
            completed_by=_clean("completed_by", completed_by, required=True, hint="who completed the form"),
            completed_as=completed,
            use_case=use_case.strip(),
            reference=_clean("reference", reference, required=True, hint="give the crime or occurrence reference"),
            offence=_clean("offence", offence, required=True, hint="give the offence type"),
            justification=_answer(
                policy,
                "justification",
                justification,
                "reasoning",
                "state the legitimate aim and why the search is necessary and proportionate",
            ),
            pre_rfr_checks=_checks(policy, pre_rfr_checks),
            probe_source=source,
            probe_captured=parse_capture_time(probe_captured, moment),
            probe_obtained=_answer(
                policy, "probe_obtained", probe_obtained, "short", "say how the Probe Image was obtained and from whom"
            ),
            age_band=age_band.strip(),
            relevant_disability=bool(relevant_disability),
            pre_dates_gender_reassignment=bool(pre_dates_gender_reassignment),
            coverings=_clean("coverings", coverings, required=False, hint=""),
            injuries=_clean("injuries", injuries, required=False, hint=""),
            libraries=tuple(dict.fromkeys(names)),
        )

    def check(self, key: str) -> PreRfrCheckAnswer | None:
        return next((c for c in self.pre_rfr_checks if c.key == key), None)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["completed_as"] = self.completed_as.value
        data["probe_source"] = self.probe_source.value
        data["pre_rfr_checks"] = [c.to_json() for c in self.pre_rfr_checks]
        data["libraries"] = list(self.libraries)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SubmissionForm:
        """A stored form as recorded (it was validated under the case's policy when the case was created)."""
        fields = dict(data)
        fields["completed_as"] = CompletedAs(fields["completed_as"])
        fields["probe_source"] = ProbeSource(fields["probe_source"])
        fields["pre_rfr_checks"] = tuple(
            PreRfrCheckAnswer(c["key"], CheckStatus(c["status"]), c["detail"]) for c in fields["pre_rfr_checks"]
        )
        fields["libraries"] = tuple(fields["libraries"])
        return cls(**fields)


def _checks(policy: Policy, given: Mapping[str, tuple[str, str]]) -> tuple[PreRfrCheckAnswer, ...]:
    """Every check of the policy's list, each exhausted or unviable with substance; nothing else."""
    if not isinstance(given, Mapping):
        raise FormError("submission form: pre_rfr_checks must name each check with its status and what was done")
    for key in given:
        try:
            policy.pre_rfr_check(str(key))
        except PolicyError as exc:
            raise FormError(f"submission form: pre_rfr_checks: {exc.diagnostics()}") from None
    answers = []
    for check in policy.pre_rfr_checks:
        field = f"pre_rfr_checks.{check.key}"
        if check.key not in given:
            raise FormError(
                f"submission form: {field} is missing: confirm '{check.label}' was exhausted, or say why it is "
                "unviable; every Pre-RFR Check must be answered"
            )
        entry = given[check.key]
        if not isinstance(entry, tuple | list) or len(entry) != 2:
            raise FormError(f"submission form: {field}: give its status (exhausted or unviable) and what was done")
        status_text, detail = entry
        try:
            status = CheckStatus(str(status_text).strip().lower())
        except ValueError:
            raise FormError(f"submission form: {field}: status {status_text!r} is not exhausted or unviable") from None
        hint = "say what was done" if status is CheckStatus.EXHAUSTED else "say why it is unviable here"
        answers.append(PreRfrCheckAnswer(check.key, status, _answer(policy, field, detail, "short", hint)))
    return tuple(answers)
