"""The case state machine: every transition checks the policy and the actor, and is audited with it.

``Casework`` is the one way casework changes. Each public method signs nothing in on its own:
it takes a ``Session`` from ``Accounts.login`` (the CLI signs in per call, the TUI once per
sitting), checks the actor's role and rank against the policy, changes the case and appends
the audit event in one transaction. A refusal is itself audited (``case.refused``, in its own
transaction, naming the rule) and raised as a one-line ``RfrError``.

Retention (the policy's ``retention`` section): a rejected case loses its Probe Image at once;
a case closed with no Viable Match loses its Probe Image, template, quality measures and
scores at once; a case closed with a Viable Match loses its template (the Match Report keeps
the images). Each deletion is audited, and the WAL is folded back afterwards so no copy lingers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine import audit
from engine.audit.clock import Clock, format_utc
from engine.casework.form import CompletedAs, SubmissionForm
from engine.casework.match_report import MatchReport
from engine.casework.model import (
    CANDIDATE_COLUMNS,
    CASE_COLUMNS,
    Case,
    CaseState,
    Decision,
    Outcome,
    case_from_rows,
)
from engine.casework.monitoring import OutcomeReport, outcome_report
from engine.errors import CaseError, ImageError, MatchReportError, PermissionRefused, RfrError
from engine.library.enrol import MAX_IMAGE_BYTES, FaceAnalyzer, ImageLoader, load_rgb
from engine.library.index import Candidate, indexes_for
from engine.library.store import Library, get_library, require_usable
from engine.policy import Policy
from engine.policy.store import record_policy
from engine.scoring import ScoreMeaning, meaning_for_model
from engine.security.users import WORKSPACE_ADMIN, Accounts, ReauthPurpose, Role, Session, User
from engine.workspace import Workspace

_MEDIA_TYPES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))
# Roles that may read casework (an engineer "never sees casework").
CASEWORK_READERS = (Role.RFR_USER, Role.TASKING_OFFICER, Role.APPROVER, Role.PEER_REVIEWER, Role.AUDITOR)
MAX_REASON = 2000
_INSERT_REVIEW = "INSERT INTO case_reviews (case_id, kind, actor, rank, agree, reason, at) VALUES (?, ?, ?, ?, ?, ?, ?)"
_CASE_COLUMNS_SETTABLE = frozenset(
    {
        "submitted_by",
        "submitted_at",
        "decided_by",
        "decided_rank",
        "decided_at",
        "searched_by",
        "searched_at",
        "model_id",
        "model_sha256",
        "libraries_searched",
        "peer_reviewed_by",
        "outcome",
        "closed_by",
        "closed_at",
    }
)


@dataclass(frozen=True)
class SearchResult:
    """What an approved search found: the case after it, and the candidate list in score order."""

    case: Case
    candidates: tuple[Candidate, ...]
    top_k: int
    libraries: tuple[str, ...]
    model_id: str
    quality_warnings: tuple[str, ...]
    meaning: ScoreMeaning | None
    """What the scores mean (calibration, threshold, versions); None for a model nobody calibrated."""
    model_sha256: str


@dataclass(frozen=True)
class ReportMaterial:
    """Everything a Match Report export shows: the case, the Probe Image and each Viable Match's image."""

    case: Case
    probe_image: bytes | None
    probe_media_type: str | None
    references: dict[int, tuple[bytes, str] | None]


def _media_type(data: bytes) -> str | None:
    return next((kind for magic, kind in _MEDIA_TYPES if data.startswith(magic)), None)


def _reason(action: str, reason: str | None) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise CaseError(f"{action} refused: give the reason (--reason TEXT); it is recorded on the case")
    if len(text) > MAX_REASON:
        raise CaseError(f"{action} refused: the reason is longer than {MAX_REASON} characters")
    return text


class Casework:
    """Cases in one workspace, under one policy, with users and sessions from ``accounts``."""

    def __init__(self, ws: Workspace, accounts: Accounts, policy: Policy, *, clock: Clock | None = None) -> None:
        self._ws = ws
        self._accounts = accounts
        self._policy = policy
        self._clock: Clock = clock or ws.now

    @property
    def policy(self) -> Policy:
        return self._policy

    # ---- plumbing -----------------------------------------------------------------------------

    def _now(self) -> str:
        return format_utc(self._clock())

    def _audit(self, conn: Any, actor: str, action: str, case_id: str | None, **details: object) -> None:
        audit.append(
            conn,
            actor,
            action,
            subjects={"case": case_id} if case_id else None,
            details=details,
            clock=self._clock,
            checkpoint_every=self._policy.audit.checkpoint_every_events,
        )

    @contextmanager
    def _refusals(self, action: str, actor: str, case_id: str | None) -> Iterator[None]:
        """Audit any refusal (after the refused transaction has rolled back), then let it propagate."""
        try:
            yield
        except RfrError as exc:
            with self._ws.transaction() as conn:
                self._audit(conn, actor, "case.refused", case_id, attempted=action, rule=exc.diagnostics())
            raise

    def _fetch(self, conn: Any | None, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if conn is None:
            return self._ws.query(sql, params)
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]

    def _read(self, case_id: str, conn: Any | None = None) -> Case:
        rows = self._fetch(conn, f"SELECT {CASE_COLUMNS} FROM cases WHERE id = ?", (case_id,))  # noqa: S608
        if not rows:
            raise CaseError(f"no case {case_id!r} on this terminal")
        probe = self._fetch(
            conn,
            "SELECT image IS NOT NULL, template IS NOT NULL, quality FROM case_probes WHERE case_id = ?",
            (case_id,),
        )
        candidates = self._fetch(
            conn,
            f"SELECT {CANDIDATE_COLUMNS} FROM case_candidates WHERE case_id = ? ORDER BY rank",  # noqa: S608
            (case_id,),
        )
        reviews = self._fetch(
            conn,
            "SELECT kind, actor, rank, agree, reason, at FROM case_reviews WHERE case_id = ? ORDER BY id",
            (case_id,),
        )
        return case_from_rows(rows[0], probe[0] if probe else None, candidates, reviews)

    def _user(self, session: Session) -> User:
        return self._accounts.check(session)

    @staticmethod
    def _require_role(user: User, role: Role, action: str, doing: str) -> None:
        if not user.has_role(role):
            raise PermissionRefused(f"{action} refused: {doing} needs the {role.label} role; {user.username} lacks it")

    @staticmethod
    def _require_state(case: Case, action: str, *allowed: CaseState) -> None:
        if case.state not in allowed:
            wanted = " or ".join(s.value for s in allowed)
            raise CaseError(f"{action} refused: case {case.id} is {case.state.value}, not {wanted}")

    def _set_state(self, conn: Any, case_id: str, state: CaseState, **columns: object) -> None:
        if not _CASE_COLUMNS_SETTABLE.issuperset(columns):
            raise ValueError(f"not a case column: {sorted(set(columns) - _CASE_COLUMNS_SETTABLE)}")
        assignments = "".join(f", {name} = ?" for name in columns)
        sql = f"UPDATE cases SET state = ?, updated_at = ?{assignments} WHERE id = ?"  # noqa: S608 - names checked above
        conn.execute(sql, (state.value, self._now(), *columns.values(), case_id))

    def case(self, case_id: str) -> Case:
        """A case as stored, without auditing a view (for the engine's own use and tests)."""
        return self._read(case_id)

    # ---- the Submission Form --------------------------------------------------------------------

    def new_case(self, session: Session, form: SubmissionForm, probe_image: bytes) -> Case:
        """Open a draft case from a completed form and its Probe Image (stored encrypted, not yet analysed)."""
        user = self._user(session)
        with self._refusals("new", user.username, None):
            if not (user.has_role(Role.RFR_USER) or user.has_role(Role.TASKING_OFFICER)):
                raise PermissionRefused(
                    f"case refused: completing an RFR Submission Form needs the {Role.RFR_USER.label} or "
                    f"{Role.TASKING_OFFICER.label} role; {user.username} holds neither"
                )
            if form.completed_by != user.username:
                raise PermissionRefused(
                    f"case refused: the form says it was completed by {form.completed_by}, but {user.username} is "
                    "signed in"
                )
            as_role = Role.RFR_USER if form.completed_as is CompletedAs.RFR_USER else Role.TASKING_OFFICER
            if not user.has_role(as_role):
                raise PermissionRefused(
                    f"case refused: the form says it was completed by the {as_role.label}, a role {user.username} "
                    "does not hold"
                )
            for name in form.libraries:
                require_usable(self._ws, get_library(self._ws, name))
            media_type = _media_type(probe_image)
            if media_type is None:
                raise ImageError("the Probe Image is not a JPEG or PNG file")
            if len(probe_image) > MAX_IMAGE_BYTES:
                raise ImageError(f"the Probe Image is larger than {MAX_IMAGE_BYTES >> 20} MiB")
            requirement = self._policy.required_approval(form)
            monitoring = self._policy.monitoring_flags(form.age_band)
            now = self._now()
            with self._ws.transaction() as conn:
                record_policy(conn, self._policy, self._clock)
                number = int(conn.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM cases").fetchone()[0])
                case_id = f"RFR-{number:06d}"
                conn.execute(
                    "INSERT INTO cases (id, number, state, created_by, created_at, updated_at, form, required_rank, "
                    "approval_flags, monitoring_flags, approval_reasons, policy_version, policy_sha256) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        case_id,
                        number,
                        CaseState.DRAFT.value,
                        user.username,
                        now,
                        now,
                        json.dumps(form.to_json(), sort_keys=True),
                        requirement.min_rank,
                        json.dumps(list(requirement.flags)),
                        json.dumps(list(monitoring)),
                        json.dumps(list(requirement.reasons)),
                        self._policy.version,
                        self._policy.sha256,
                    ),
                )
                conn.execute(
                    "INSERT INTO case_probes (case_id, image, media_type, sha256, byte_length) VALUES (?, ?, ?, ?, ?)",
                    (case_id, probe_image, media_type, hashlib.sha256(probe_image).hexdigest(), len(probe_image)),
                )
                self._audit(
                    conn,
                    user.username,
                    "case.create",
                    case_id,
                    use_case=form.use_case,
                    completed_as=form.completed_as.value,
                    age_band=form.age_band,
                    required_rank=requirement.min_rank,
                    approval_flags=list(requirement.flags),
                    monitoring_flags=list(monitoring),
                    libraries=list(form.libraries),
                    policy_version=self._policy.version,
                    policy_sha256=self._policy.sha256,
                )
            return self._read(case_id)

    def completed_as(self, user: User) -> CompletedAs:
        """How a user completing a form counts: as the RFR User if they hold that role, else as tasking officer."""
        return CompletedAs.RFR_USER if user.has_role(Role.RFR_USER) else CompletedAs.TASKING_OFFICER

    def submit(self, session: Session, case_id: str) -> Case:
        user = self._user(session)
        with self._refusals("submit", user.username, case_id):
            case = self._read(case_id)
            self._require_state(case, "submission", CaseState.DRAFT)
            if user.username != case.created_by:
                raise PermissionRefused(
                    f"submission refused: only {case.created_by}, who completed the form, may submit case {case.id}"
                )
            with self._ws.transaction() as conn:
                self._require_state(self._read(case_id, conn), "submission", CaseState.DRAFT)
                self._set_state(
                    conn, case_id, CaseState.SUBMITTED, submitted_by=user.username, submitted_at=self._now()
                )
                self._audit(conn, user.username, "case.submit", case_id, required_rank=case.required_rank)
            return self._read(case_id)

    # ---- approval -----------------------------------------------------------------------------

    def required_rank(self, case: Case) -> str:
        """The higher of the rank recorded at submission and the rank the policy in force asks for."""
        now_needed = self._policy.required_approval(case.form).min_rank
        recorded = case.required_rank
        if self._policy.is_rank(recorded) and self._policy.rank_at_least(recorded, now_needed):
            return recorded
        return now_needed

    def _check_decider(self, user: User, case: Case, action: str) -> None:
        self._require_role(user, Role.APPROVER, action, "deciding a submission")
        self._require_state(case, action, CaseState.SUBMITTED)
        if user.username in {case.created_by, case.submitted_by, case.form.completed_by}:
            raise PermissionRefused(f"{action} refused: nobody may approve or reject their own submission")

    def approve(self, session: Session, case_id: str, reason: str | None) -> Case:
        """Approve a submitted case: approver role, rank at or above the case's, not the submitter, fresh password."""
        user = self._user(session)
        with self._refusals("approve", user.username, case_id):
            case = self._read(case_id)
            self._check_decider(user, case, "approval")
            needed = self.required_rank(case)
            if user.rank is None or not self._policy.is_rank(user.rank):
                raise PermissionRefused(f"approval refused: case needs {needed}, you hold no rank")
            if not self._policy.rank_at_least(user.rank, needed):
                raise PermissionRefused(f"approval refused: case needs {needed}, you are {user.rank}")
            text = _reason("approval", reason)
            with self._ws.transaction() as conn:
                current = self._read(case_id, conn)
                self._check_decider(user, current, "approval")
                self._accounts.require_reauthentication(session, ReauthPurpose.APPROVE)
                now = self._now()
                self._set_state(
                    conn, case_id, CaseState.APPROVED, decided_by=user.username, decided_rank=user.rank, decided_at=now
                )
                conn.execute(
                    _INSERT_REVIEW,
                    (case_id, "approval", user.username, user.rank, 1, text, now),
                )
                record_policy(conn, self._policy, self._clock)
                self._audit(
                    conn,
                    user.username,
                    "case.approve",
                    case_id,
                    required_rank=needed,
                    approver_rank=user.rank,
                    reason=text,
                    flags=case.flags,
                    policy_version=self._policy.version,
                    policy_sha256=self._policy.sha256,
                )
            return self._read(case_id)

    def reject(self, session: Session, case_id: str, reason: str | None) -> Case:
        """Reject a submitted case (any approver but the submitter); its Probe Image is deleted at once."""
        user = self._user(session)
        with self._refusals("reject", user.username, case_id):
            case = self._read(case_id)
            self._check_decider(user, case, "rejection")
            text = _reason("rejection", reason)
            with self._ws.transaction() as conn:
                self._check_decider(user, self._read(case_id, conn), "rejection")
                now = self._now()
                self._set_state(
                    conn, case_id, CaseState.REJECTED, decided_by=user.username, decided_rank=user.rank, decided_at=now
                )
                conn.execute(
                    _INSERT_REVIEW,
                    (case_id, "rejection", user.username, user.rank, 0, text, now),
                )
                self._audit(conn, user.username, "case.reject", case_id, approver_rank=user.rank, reason=text)
                self._delete_probe_data(conn, user.username, case_id, "rejected_case_probe_data", keep_image=False)
            self._ws.checkpoint()
            return self._read(case_id)

    # ---- search -------------------------------------------------------------------------------

    def _check_search(self, user: User, case: Case) -> None:
        self._require_role(user, Role.RFR_USER, "search", "running a search")
        if case.state is not CaseState.APPROVED or not any(r.kind == "approval" for r in case.reviews):
            raise CaseError(
                f"search refused: case {case.id} is {case.state.value}: no search runs without a recorded approval "
                "that covers it"
            )

    def search(
        self,
        session: Session,
        case_id: str,
        engine: FaceAnalyzer,
        *,
        loader: ImageLoader = load_rgb,
        upsample: int = 0,
    ) -> SearchResult:
        """Run the approved search: the approved libraries only, the policy's candidate list size."""
        user = self._user(session)
        with self._refusals("search", user.username, case_id):
            case = self._read(case_id)
            self._check_search(user, case)
            libraries: list[Library] = []
            for name in case.form.libraries:
                library = get_library(self._ws, name)
                require_usable(self._ws, library)
                libraries.append(library)
            row = self._ws.query_one("SELECT image FROM case_probes WHERE case_id = ?", (case_id,))
            if row is None or row[0] is None:
                raise CaseError(f"search refused: case {case_id} holds no Probe Image")
            faces = engine.analyze(
                loader(bytes(row[0]), f"Probe Image of case {case_id}"), upsample=upsample, embed=True
            )
            faces = [f for f in faces if f.embedding is not None]
            if not faces:
                raise ImageError(f"no face found in the Probe Image of case {case_id}: nothing was searched")
            face = max(faces, key=lambda f: f.box.area)
            assert face.embedding is not None
            template = np.asarray(face.embedding, dtype=np.float32)
            quality = face.quality.to_json() if face.quality is not None else None
            warnings = tuple(face.quality.warnings) if face.quality is not None else ()
            top_k = self._policy.search.candidate_list_size
            meaning = meaning_for_model(self._policy, engine.model_id, engine.model_sha256)
            indexes = indexes_for(self._ws, engine.model_id, engine.model_sha256)
            candidates = tuple(indexes.search(template, libraries, top_k))
            with self._ws.transaction() as conn:
                self._check_search(user, self._read(case_id, conn))
                self._set_state(
                    conn,
                    case_id,
                    CaseState.SEARCHED,
                    searched_by=user.username,
                    searched_at=self._now(),
                    model_id=engine.model_id,
                    model_sha256=engine.model_sha256,
                    libraries_searched=json.dumps([lib.name for lib in libraries]),
                )
                conn.execute(
                    "UPDATE case_probes SET template = ?, quality = ? WHERE case_id = ?",
                    (template.astype("<f4").tobytes(), None if quality is None else json.dumps(quality), case_id),
                )
                conn.executemany(
                    "INSERT INTO case_candidates (case_id, rank, score, distance, library, subject, subject_id, "
                    "image_id, template_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            case_id,
                            c.rank,
                            c.score,
                            c.distance,
                            c.library,
                            c.subject,
                            c.subject_id,
                            c.image_id,
                            c.template_id,
                        )
                        for c in candidates
                    ],
                )
                self._audit(
                    conn,
                    user.username,
                    "case.search",
                    case_id,
                    libraries=[lib.name for lib in libraries],
                    candidate_list_size=top_k,
                    candidates=len(candidates),
                    model_id=engine.model_id,
                    model_sha256=engine.model_sha256,
                    calibration=None if meaning is None else meaning.calibration.reference,
                    threshold=None if meaning is None else meaning.threshold,
                    probe_quality_warnings=list(warnings),
                )
                if not candidates:
                    self._settle(conn, user.username, case_id)
            return SearchResult(
                self._read(case_id),
                candidates,
                top_k,
                tuple(lib.name for lib in libraries),
                engine.model_id,
                warnings,
                meaning,
                engine.model_sha256,
            )

    # ---- adjudication -------------------------------------------------------------------------

    def _check_adjudicate(self, user: User, case: Case) -> None:
        self._require_role(user, Role.RFR_USER, "adjudication", "adjudicating")
        self._require_state(case, "adjudication", CaseState.SEARCHED, CaseState.ADJUDICATED)

    def adjudicate(
        self, session: Session, case_id: str, rank: int, decision: Decision | str, report: MatchReport | None = None
    ) -> Case:
        """Decide one Potential Match. A Viable Match needs a Match Report covering factors (i) to (v)."""
        user = self._user(session)
        with self._refusals("adjudicate", user.username, case_id):
            try:
                decided = Decision(decision)
            except ValueError:
                raise CaseError(f"adjudication refused: decision {decision!r} is not viable or not_viable") from None
            case = self._read(case_id)
            self._check_adjudicate(user, case)
            candidate = next((c for c in case.candidates if c.rank == rank), None)
            if candidate is None:
                raise CaseError(
                    f"adjudication refused: case {case_id} has no Potential Match ranked {rank} "
                    f"(1 to {len(case.candidates)})"
                )
            if decided is Decision.VIABLE:
                if report is None:
                    raise MatchReportError(
                        "adjudication refused: a Viable Match needs a Match Report covering factors (i) to (v): "
                        "pass --report FILE"
                    )
                warnings = (case.probe_quality or {}).get("warnings") or []
                if warnings and not report.factor("probe_image_quality").relevant:
                    raise MatchReportError(
                        "adjudication refused: the Probe Image's measured quality has warnings "
                        f"({'; '.join(warnings)}): the Match Report must name factor (i) probe image quality as "
                        "relevant and say how it was weighed"
                    )
            reference: tuple[Any, ...] | None = None
            if decided is Decision.VIABLE:
                reference = self._ws.query_one(
                    "SELECT b.data, i.media_type FROM image_bytes b JOIN images i ON i.id = b.image_id "
                    "WHERE b.image_id = ?",
                    (candidate.image_id,),
                )
            with self._ws.transaction() as conn:
                self._check_adjudicate(user, self._read(case_id, conn))
                conn.execute(
                    "UPDATE case_candidates SET decision = ?, decided_by = ?, decided_at = ?, match_report = ?, "
                    "reference_image = ?, reference_media_type = ? WHERE case_id = ? AND rank = ?",
                    (
                        decided.value,
                        user.username,
                        self._now(),
                        None if report is None else json.dumps(report.to_json(), sort_keys=True),
                        None if reference is None else bytes(reference[0]),
                        None if reference is None else reference[1],
                        case_id,
                        rank,
                    ),
                )
                conn.execute("UPDATE cases SET peer_reviewed_by = NULL WHERE id = ?", (case_id,))
                self._audit(
                    conn,
                    user.username,
                    "case.adjudicate",
                    case_id,
                    candidate=rank,
                    library=candidate.library,
                    image_id=candidate.image_id,
                    decision=decided.value,
                    relevant_factors=list(report.relevant) if report is not None else None,
                )
                self._settle(conn, user.username, case_id)
            return self._read(case_id)

    def _settle(self, conn: Any, actor: str, case_id: str) -> None:
        """After a decision: undecided candidates keep the case searched; any Viable Match makes it adjudicated;
        none means a peer review before 'no viable match' can be declared."""
        decisions = [r[0] for r in conn.execute("SELECT decision FROM case_candidates WHERE case_id = ?", (case_id,))]
        if any(d is None for d in decisions):
            state, outcome = CaseState.SEARCHED, None
        elif Decision.VIABLE.value in decisions:
            state, outcome = CaseState.ADJUDICATED, Outcome.VIABLE_MATCH.value
        else:
            state, outcome = CaseState.PEER_REVIEW, None
        before = conn.execute("SELECT state FROM cases WHERE id = ?", (case_id,)).fetchone()[0]
        self._set_state(conn, case_id, state, outcome=outcome)
        if before != state.value:
            self._audit(conn, actor, "case.state", case_id, before=before, after=state.value, outcome=outcome)

    # ---- peer review --------------------------------------------------------------------------

    def _check_peer_review(self, user: User, case: Case) -> None:
        self._require_role(user, Role.PEER_REVIEWER, "peer review", "a peer review")
        self._require_state(case, "peer review", CaseState.PEER_REVIEW)
        if user.username in case.adjudicators:
            raise PermissionRefused("peer review refused: nobody may peer-review their own adjudication")

    def peer_review(self, session: Session, case_id: str, agree: bool, reason: str | None) -> Case:
        """Sign off (agree: no viable match) or send back (disagree) a case adjudicated with no Viable Match."""
        user = self._user(session)
        with self._refusals("peer_review", user.username, case_id):
            case = self._read(case_id)
            self._check_peer_review(user, case)
            text = _reason("peer review", reason)
            with self._ws.transaction() as conn:
                self._check_peer_review(user, self._read(case_id, conn))
                self._accounts.require_reauthentication(session, ReauthPurpose.PEER_REVIEW_SIGN_OFF)
                now = self._now()
                conn.execute(
                    _INSERT_REVIEW,
                    (case_id, "peer_review", user.username, user.rank, int(agree), text, now),
                )
                if agree:
                    self._set_state(
                        conn,
                        case_id,
                        CaseState.ADJUDICATED,
                        outcome=Outcome.NO_VIABLE_MATCH.value,
                        peer_reviewed_by=user.username,
                    )
                else:
                    self._set_state(conn, case_id, CaseState.SEARCHED, outcome=None, peer_reviewed_by=None)
                self._audit(
                    conn,
                    user.username,
                    "case.peer_review",
                    case_id,
                    agree=agree,
                    reason=text,
                    after=CaseState.ADJUDICATED.value if agree else CaseState.SEARCHED.value,
                )
            return self._read(case_id)

    # ---- closing and retention ------------------------------------------------------------------

    def _check_close(self, user: User, case: Case) -> None:
        self._require_role(user, Role.RFR_USER, "close", "closing a case")
        self._require_state(case, "close", CaseState.ADJUDICATED)
        if case.outcome is Outcome.VIABLE_MATCH:
            if not case.viable or any(c.report is None for c in case.viable):
                raise CaseError("close refused: every Viable Match needs its Match Report")
        elif (
            case.outcome is not Outcome.NO_VIABLE_MATCH
            or case.peer_reviewed_by is None
            or case.peer_reviewed_by in case.adjudicators
        ):
            raise CaseError(
                "close refused: 'no viable match' needs a peer review sign-off by someone other than the adjudicator"
            )

    def close(self, session: Session, case_id: str, reason: str | None = None) -> Case:
        """Close an adjudicated case and apply the retention rules at once."""
        user = self._user(session)
        with self._refusals("close", user.username, case_id):
            case = self._read(case_id)
            self._check_close(user, case)
            with self._ws.transaction() as conn:
                current = self._read(case_id, conn)
                self._check_close(user, current)
                self._set_state(conn, case_id, CaseState.CLOSED, closed_by=user.username, closed_at=self._now())
                outcome = current.outcome
                assert outcome is not None
                self._audit(
                    conn,
                    user.username,
                    "case.close",
                    case_id,
                    outcome=outcome.value,
                    viable_matches=len(current.viable),
                    reason=" ".join((reason or "").split()) or None,
                )
                if outcome is Outcome.NO_VIABLE_MATCH:
                    self._delete_probe_data(
                        conn, user.username, case_id, "no_viable_match_probe_data", keep_image=False
                    )
                else:
                    self._delete_probe_data(
                        conn, user.username, case_id, "viable_match_probe_template", keep_image=True
                    )
            self._ws.checkpoint()
            return self._read(case_id)

    def _delete_probe_data(self, conn: Any, actor: str, case_id: str, rule: str, *, keep_image: bool) -> None:
        """Delete probe-derived data now, inside the transition's transaction, and audit what went."""
        deleted = ["probe_template", "probe_quality"]
        if keep_image:
            conn.execute("UPDATE case_probes SET template = NULL WHERE case_id = ?", (case_id,))
        else:
            conn.execute(
                "UPDATE case_probes SET image = NULL, media_type = NULL, template = NULL, quality = NULL "
                "WHERE case_id = ?",
                (case_id,),
            )
            conn.execute(
                "UPDATE case_candidates SET score = NULL, distance = NULL, reference_image = NULL, "
                "reference_media_type = NULL WHERE case_id = ?",
                (case_id,),
            )
            conn.execute("UPDATE cases SET probe_deleted_at = ? WHERE id = ?", (self._now(), case_id))
            deleted = ["probe_image", "probe_template", "probe_quality", "candidate_scores", "reference_image_copies"]
        self._audit(conn, actor, "case.probe_deleted", case_id, rule=rule, deleted=deleted)

    # ---- reading --------------------------------------------------------------------------------

    def _reader(self, session: Session | None, action: str, case_id: str | None) -> str:
        if session is None:
            return WORKSPACE_ADMIN.name
        user = self._user(session)
        if not any(user.has_role(r) for r in CASEWORK_READERS):
            with self._refusals(action, user.username, case_id):
                raise PermissionRefused(
                    f"{action} refused: casework is seen only by RFR Users, tasking officers, approvers, "
                    "peer reviewers and auditors"
                )
        return user.username

    def show(self, session: Session | None, case_id: str) -> Case:
        """A case for display; the view is audited (every access is logged). No session: the workspace key holder."""
        actor = self._reader(session, "view", case_id)
        case = self._read(case_id)
        with self._ws.transaction() as conn:
            self._audit(conn, actor, "case.view", case_id)
        return case

    def report_material(self, session: Session | None, case_id: str, destination: str) -> ReportMaterial:
        """What the Match Report export needs; refused unless the case has a Viable Match. The export is audited."""
        actor = self._reader(session, "report", case_id)
        with self._refusals("report", actor, case_id):
            case = self._read(case_id)
            if not case.viable:
                raise CaseError(
                    f"report refused: case {case_id} has no Viable Match (it is {case.state.value}); a Match Report "
                    "is made only for a Viable Match"
                )
            probe = self._ws.query_one("SELECT image, media_type FROM case_probes WHERE case_id = ?", (case_id,))
            references: dict[int, tuple[bytes, str] | None] = {}
            for c in case.viable:
                row = self._ws.query_one(
                    "SELECT reference_image, reference_media_type FROM case_candidates WHERE case_id = ? AND rank = ?",
                    (case_id, c.rank),
                )
                references[c.rank] = (bytes(row[0]), str(row[1])) if row and row[0] is not None else None
            with self._ws.transaction() as conn:
                self._audit(
                    conn,
                    actor,
                    "case.report_export",
                    case_id,
                    destination=destination,
                    candidates=[c.rank for c in case.viable],
                )
        return ReportMaterial(
            case,
            bytes(probe[0]) if probe and probe[0] is not None else None,
            str(probe[1]) if probe and probe[1] else None,
            references,
        )

    def list_cases(self, session: Session | None, state: CaseState | None = None) -> list[Case]:
        """Cases in number order, optionally in one state (a queue: drafts, awaiting approval...). Audited."""
        actor = self._reader(session, "list", None)
        cases = [self._read(case_id) for case_id in self.case_ids()]
        chosen = [c for c in cases if state is None or c.state is state]
        with self._ws.transaction() as conn:
            self._audit(conn, actor, "case.list", None, state=None if state is None else state.value, cases=len(chosen))
        return chosen

    def outcome_report(self, session: Session | None, since: str, until: str) -> OutcomeReport:
        """Outcomes by the recorded demographic fields for ``[since, until)`` (the quarterly review). Audited."""
        actor = self._reader(session, "outcome report", None)
        report = outcome_report(self._ws, since, until)
        with self._ws.transaction() as conn:
            self._audit(
                conn, actor, "casework.outcome_report", None, since=since, until=until, closed_cases=report.cases
            )
        return report

    def case_ids(self) -> list[str]:
        return [str(r[0]) for r in self._ws.query("SELECT id FROM cases ORDER BY number")]


def probe_template(ws: Workspace, case_id: str) -> np.ndarray | None:
    """The stored probe template of a case, or None once retention has deleted it (tests and tools)."""
    row = ws.query_one("SELECT template FROM case_probes WHERE case_id = ?", (case_id,))
    if row is None or row[0] is None:
        return None
    return np.frombuffer(bytes(row[0]), dtype="<f4").copy()
