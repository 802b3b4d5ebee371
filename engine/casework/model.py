"""Case records as read from the workspace: the case, its candidates and its reviews."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from engine.casework.form import SubmissionForm
from engine.casework.match_report import MatchReport


class CaseState(StrEnum):
    """``draft -> submitted -> approved | rejected -> searched -> adjudicated | peer_review -> closed``.

    A Viable Match makes a case ``adjudicated`` until its RFR User closes it; no Viable Match
    makes it ``peer_review``, and a peer reviewer's agreement closes it at once. Before
    adjudication a case can be ``withdrawn``; a case left waiting past the policy's days
    ``expired``. ``rejected``, ``closed``, ``withdrawn`` and ``expired`` are final.
    """

    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    SEARCHED = "searched"
    ADJUDICATED = "adjudicated"
    PEER_REVIEW = "peer_review"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        return self in (CaseState.REJECTED, CaseState.CLOSED, CaseState.WITHDRAWN, CaseState.EXPIRED)


class Decision(StrEnum):
    """The RFR User's decision on one Potential Match."""

    VIABLE = "viable"
    NOT_VIABLE = "not_viable"


class Outcome(StrEnum):
    VIABLE_MATCH = "viable_match"
    NO_VIABLE_MATCH = "no_viable_match"


class CaseStep(StrEnum):
    """A step taken on a case; each is accepted only in the states of ``STEP_STATES``."""

    SUBMIT = "submission"
    ADVICE = "recording advice"
    DECIDE = "decision"
    SEARCH = "search"
    ADJUDICATE = "adjudication"
    EXPORT_REPORT = "report"
    PEER_REVIEW = "peer review"
    CLOSE = "close"
    WITHDRAW = "withdrawal"


STEP_STATES: dict[CaseStep, tuple[CaseState, ...]] = {
    CaseStep.SUBMIT: (CaseState.DRAFT,),
    CaseStep.ADVICE: (CaseState.DRAFT, CaseState.SUBMITTED),
    CaseStep.DECIDE: (CaseState.SUBMITTED,),
    CaseStep.SEARCH: (CaseState.APPROVED,),
    CaseStep.ADJUDICATE: (CaseState.SEARCHED, CaseState.ADJUDICATED),
    CaseStep.EXPORT_REPORT: (CaseState.ADJUDICATED, CaseState.CLOSED),  # and only with a Viable Match
    CaseStep.PEER_REVIEW: (CaseState.PEER_REVIEW,),
    CaseStep.CLOSE: (CaseState.ADJUDICATED,),
    CaseStep.WITHDRAW: (CaseState.DRAFT, CaseState.SUBMITTED, CaseState.APPROVED, CaseState.SEARCHED),
}
"""The case states each step is accepted in: the one table ``Casework`` checks and the screens offer from."""


@dataclass(frozen=True)
class CaseCandidate:
    """One Potential Match of a case's candidate list, with the RFR User's decision on it."""

    rank: int
    score: float | None
    distance: float | None
    library: str
    subject: str
    subject_id: int
    image_id: int
    template_id: int
    decision: Decision | None
    decided_by: str | None
    decided_at: str | None
    report: MatchReport | None
    has_reference_image: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "score": None if self.score is None else round(self.score, 6),
            "distance": None if self.distance is None else round(self.distance, 6),
            "subject": self.subject,
            "image_id": str(self.image_id),
            "library": self.library,
            "decision": None if self.decision is None else self.decision.value,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "match_report": None if self.report is None else self.report.to_json(),
        }


@dataclass(frozen=True)
class Review:
    """An approval, a rejection or a peer review, with its reason."""

    kind: str
    actor: str
    rank: str | None
    agree: bool | None
    reason: str
    at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "by": self.actor,
            "rank": self.rank,
            "agree": self.agree,
            "reason": self.reason,
            "at": self.at,
        }


@dataclass(frozen=True)
class ProbeFace:
    """The face of the Probe Image the case searches with: which of how many, where, found how."""

    number: int
    faces_found: int
    box: tuple[int, int, int, int]
    landmarks: tuple[tuple[int, int], ...]
    upsample: int
    note: str | None
    width: int
    height: int

    def to_json(self) -> dict[str, Any]:
        return {
            "face": self.number,
            "faces_found": self.faces_found,
            "box": list(self.box),
            "landmarks": [list(p) for p in self.landmarks],
            "upsample": self.upsample,
            "note": self.note,
            "image_size": [self.width, self.height],
        }


@dataclass(frozen=True)
class ApprovedLibrary:
    """A library as an approval covered it: by identity and content version, never by name alone."""

    library_id: int
    name: str
    kind: str
    content_version: int
    authorisation: str | None
    expires_at: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "library_id": self.library_id,
            "name": self.name,
            "kind": self.kind,
            "content_version": self.content_version,
            "authorisation": self.authorisation,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True)
class Advice:
    """Technical (or legal) advice recorded on a flagged case: who gave it, when, what."""

    flag: str
    adviser: str
    given_on: str
    advice: str
    recorded_by: str
    recorded_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "flag": self.flag,
            "adviser": self.adviser,
            "given_on": self.given_on,
            "advice": self.advice,
            "recorded_by": self.recorded_by,
            "recorded_at": self.recorded_at,
        }


@dataclass(frozen=True)
class Case:
    """A case as stored: the form, the approval requirement, where it stands, and what was decided."""

    id: str
    state: CaseState
    form: SubmissionForm
    created_by: str
    created_at: str
    updated_at: str
    required_rank: str
    approval_flags: tuple[str, ...]
    monitoring_flags: tuple[str, ...]
    approval_reasons: tuple[str, ...]
    policy_version: str
    policy_sha256: str
    submitted_by: str | None
    submitted_at: str | None
    decided_by: str | None
    decided_rank: str | None
    decided_at: str | None
    searched_by: str | None
    searched_at: str | None
    model_id: str | None
    model_sha256: str | None
    libraries_searched: tuple[str, ...]
    peer_reviewed_by: str | None
    outcome: Outcome | None
    closed_by: str | None
    closed_at: str | None
    probe_deleted_at: str | None
    ended_reason: str | None
    probe_image_held: bool
    probe_template_held: bool
    probe_quality: dict[str, Any] | None
    probe_face: ProbeFace | None
    candidates: tuple[CaseCandidate, ...]
    reviews: tuple[Review, ...]
    approved_libraries: tuple[ApprovedLibrary, ...] = ()
    advice: tuple[Advice, ...] = ()

    @property
    def flags(self) -> list[str]:
        """Approval flags (e.g. technical advice) then monitoring flags (under 18, under 16)."""
        return [*self.approval_flags, *self.monitoring_flags]

    @property
    def adjudicators(self) -> frozenset[str]:
        return frozenset(c.decided_by for c in self.candidates if c.decided_by)

    @property
    def viable(self) -> tuple[CaseCandidate, ...]:
        return tuple(c for c in self.candidates if c.decision is Decision.VIABLE)

    def step_open(self, step: CaseStep) -> bool:
        """Whether the case stands where ``step`` is accepted (who may take it is checked when it is taken)."""
        if self.state not in STEP_STATES[step]:
            return False
        return step is not CaseStep.EXPORT_REPORT or self.outcome is Outcome.VIABLE_MATCH

    @property
    def review_of(self) -> Review | None:
        """The approval or rejection recorded on the case, if any."""
        return next((r for r in reversed(self.reviews) if r.kind in ("approval", "rejection")), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.id,
            "state": self.state.value,
            "required_rank": self.required_rank,
            "flags": self.flags,
            "approval_flags": list(self.approval_flags),
            "monitoring_flags": list(self.monitoring_flags),
            "approval_reasons": list(self.approval_reasons),
            "policy": {"version": self.policy_version, "sha256": self.policy_sha256},
            "form": self.form.to_json(),
            "created_by": self.created_by,
            "created_at": self.created_at,
            "submitted_by": self.submitted_by,
            "submitted_at": self.submitted_at,
            "decided_by": self.decided_by,
            "decided_rank": self.decided_rank,
            "decided_at": self.decided_at,
            "searched_by": self.searched_by,
            "searched_at": self.searched_at,
            "model_id": self.model_id,
            "libraries_searched": list(self.libraries_searched),
            "peer_reviewed_by": self.peer_reviewed_by,
            "outcome": None if self.outcome is None else self.outcome.value,
            "closed_by": self.closed_by,
            "closed_at": self.closed_at,
            "ended_reason": self.ended_reason,
            "probe": {
                "image_held": self.probe_image_held,
                "template_held": self.probe_template_held,
                "deleted_at": self.probe_deleted_at,
                "quality": self.probe_quality,
                "face": None if self.probe_face is None else self.probe_face.to_json(),
            },
            "approved_libraries": [a.to_json() for a in self.approved_libraries],
            "advice": [a.to_json() for a in self.advice],
            "candidates": [c.to_json() for c in self.candidates],
            "reviews": [r.to_json() for r in self.reviews],
        }


CASE_COLUMNS = (
    "id, state, form, created_by, created_at, updated_at, required_rank, approval_flags, monitoring_flags, "
    "approval_reasons, policy_version, policy_sha256, submitted_by, submitted_at, decided_by, decided_rank, "
    "decided_at, searched_by, searched_at, model_id, model_sha256, libraries_searched, peer_reviewed_by, outcome, "
    "closed_by, closed_at, probe_deleted_at, ended_reason"
)
PROBE_COLUMNS = (
    "image IS NOT NULL, template IS NOT NULL, quality, face_number, faces_found, face_box, face_landmarks, upsample, "
    "detection_note, width, height"
)
CANDIDATE_COLUMNS = (
    "rank, score, distance, library, subject, subject_id, image_id, template_id, decision, decided_by, decided_at, "
    "match_report, reference_image IS NOT NULL"
)


def _probe_face(probe: tuple[Any, ...] | None) -> ProbeFace | None:
    if probe is None or probe[3] is None or probe[5] is None:
        return None
    _, _, _, number, found, box, landmarks, upsample, note, width, height = probe
    return ProbeFace(
        number=int(number),
        faces_found=int(found),
        box=tuple(int(v) for v in json.loads(box)),  # type: ignore[arg-type]
        landmarks=tuple((int(x), int(y)) for x, y in json.loads(landmarks or "[]")),
        upsample=int(upsample or 0),
        note=note,
        width=int(width or 0),
        height=int(height or 0),
    )


def case_from_rows(
    row: tuple[Any, ...],
    probe: tuple[Any, ...] | None,
    candidates: list[tuple[Any, ...]],
    reviews: list[tuple[Any, ...]],
    approved: list[tuple[Any, ...]] = (),  # type: ignore[assignment]
    advice: list[tuple[Any, ...]] = (),  # type: ignore[assignment]
) -> Case:
    """Assemble a ``Case`` from its row, its probe row (``PROBE_COLUMNS``), candidates, reviews, approval, advice."""
    (
        case_id,
        state,
        form,
        created_by,
        created_at,
        updated_at,
        required_rank,
        approval_flags,
        monitoring_flags,
        approval_reasons,
        policy_version,
        policy_sha256,
        submitted_by,
        submitted_at,
        decided_by,
        decided_rank,
        decided_at,
        searched_by,
        searched_at,
        model_id,
        model_sha256,
        libraries_searched,
        peer_reviewed_by,
        outcome,
        closed_by,
        closed_at,
        probe_deleted_at,
        ended_reason,
    ) = row
    return Case(
        id=str(case_id),
        state=CaseState(state),
        form=SubmissionForm.from_json(json.loads(form)),
        created_by=created_by,
        created_at=created_at,
        updated_at=updated_at,
        required_rank=required_rank,
        approval_flags=tuple(json.loads(approval_flags)),
        monitoring_flags=tuple(json.loads(monitoring_flags)),
        approval_reasons=tuple(json.loads(approval_reasons)),
        policy_version=policy_version,
        policy_sha256=policy_sha256,
        submitted_by=submitted_by,
        submitted_at=submitted_at,
        decided_by=decided_by,
        decided_rank=decided_rank,
        decided_at=decided_at,
        searched_by=searched_by,
        searched_at=searched_at,
        model_id=model_id,
        model_sha256=model_sha256,
        libraries_searched=tuple(json.loads(libraries_searched)) if libraries_searched else (),
        peer_reviewed_by=peer_reviewed_by,
        outcome=Outcome(outcome) if outcome else None,
        closed_by=closed_by,
        closed_at=closed_at,
        probe_deleted_at=probe_deleted_at,
        ended_reason=ended_reason,
        probe_image_held=bool(probe and probe[0]),
        probe_template_held=bool(probe and probe[1]),
        probe_quality=json.loads(probe[2]) if probe and probe[2] else None,
        probe_face=_probe_face(probe),
        candidates=tuple(
            CaseCandidate(
                rank=int(c[0]),
                score=c[1],
                distance=c[2],
                library=c[3],
                subject=c[4],
                subject_id=int(c[5]),
                image_id=int(c[6]),
                template_id=int(c[7]),
                decision=Decision(c[8]) if c[8] else None,
                decided_by=c[9],
                decided_at=c[10],
                report=MatchReport.from_mapping(json.loads(c[11])) if c[11] else None,
                has_reference_image=bool(c[12]),
            )
            for c in candidates
        ),
        reviews=tuple(
            Review(kind=r[0], actor=r[1], rank=r[2], agree=None if r[3] is None else bool(r[3]), reason=r[4], at=r[5])
            for r in reviews
        ),
        approved_libraries=tuple(
            ApprovedLibrary(int(a[0]), str(a[1]), str(a[2]), int(a[3]), a[4], a[5]) for a in approved
        ),
        advice=tuple(Advice(*(str(v) for v in a)) for a in advice),
    )
