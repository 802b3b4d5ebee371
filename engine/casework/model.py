"""Case records as read from the workspace: the case, its candidates and its reviews."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from engine.casework.form import SubmissionForm
from engine.casework.match_report import MatchReport


class CaseState(StrEnum):
    """``draft -> submitted -> approved | rejected -> searched -> adjudicated (-> peer_review) -> closed``."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    SEARCHED = "searched"
    ADJUDICATED = "adjudicated"
    PEER_REVIEW = "peer_review"
    CLOSED = "closed"


class Decision(StrEnum):
    """The RFR User's decision on one Potential Match."""

    VIABLE = "viable"
    NOT_VIABLE = "not_viable"


class Outcome(StrEnum):
    VIABLE_MATCH = "viable_match"
    NO_VIABLE_MATCH = "no_viable_match"


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
    probe_image_held: bool
    probe_template_held: bool
    probe_quality: dict[str, Any] | None
    candidates: tuple[CaseCandidate, ...]
    reviews: tuple[Review, ...]

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
            "probe": {
                "image_held": self.probe_image_held,
                "template_held": self.probe_template_held,
                "deleted_at": self.probe_deleted_at,
                "quality": self.probe_quality,
            },
            "candidates": [c.to_json() for c in self.candidates],
            "reviews": [r.to_json() for r in self.reviews],
        }


CASE_COLUMNS = (
    "id, state, form, created_by, created_at, updated_at, required_rank, approval_flags, monitoring_flags, "
    "approval_reasons, policy_version, policy_sha256, submitted_by, submitted_at, decided_by, decided_rank, "
    "decided_at, searched_by, searched_at, model_id, model_sha256, libraries_searched, peer_reviewed_by, outcome, "
    "closed_by, closed_at, probe_deleted_at"
)
CANDIDATE_COLUMNS = (
    "rank, score, distance, library, subject, subject_id, image_id, template_id, decision, decided_by, decided_at, "
    "match_report, reference_image IS NOT NULL"
)


def case_from_rows(
    row: tuple[Any, ...],
    probe: tuple[Any, ...] | None,
    candidates: list[tuple[Any, ...]],
    reviews: list[tuple[Any, ...]],
) -> Case:
    """Assemble a ``Case`` from its row, its probe row (image held, template held, quality), candidates, reviews."""
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
        probe_image_held=bool(probe and probe[0]),
        probe_template_held=bool(probe and probe[1]),
        probe_quality=json.loads(probe[2]) if probe and probe[2] else None,
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
    )
