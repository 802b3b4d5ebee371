"""The case state machine: every transition checks the policy and the actor, and is audited with it.

``Casework`` is the one way casework changes, and an approved case is the one way a Probe Image
is ever searched against a Permitted Image Reference Library. Each method takes a ``Session``
from ``Accounts.login``, checks the actor's role and rank against the policy, changes the case
and appends the audit event in one transaction. A refusal is itself audited (``case.refused``,
in its own transaction, naming the rule) and raised as a one-line ``RfrError``.

What a case holds and how long (the policy's ``retention``):

- ``new_case`` decodes the Probe Image, finds its faces (enlarging when none is found at the
  photograph's own size) and records which face the case is about; an image that can never be
  searched is refused there and then.
- An approval records each library it covers by identity (row id and content version) and
  authorisation; a library deleted, re-created, changed or re-authorised since cannot be
  searched by that case, which goes back to the approvers.
- Rejection, withdrawal, expiry and a peer reviewer's "no viable match" delete the Probe Image,
  its template, quality measures and scores at once; closing a case with a Viable Match deletes
  its template (the Match Report keeps the images). Each deletion is audited, and the WAL is
  folded back afterwards so no copy lingers.
- ``sweep`` expires cases left waiting past the policy's days; the terminal runs it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from engine import audit
from engine.audit.clock import format_utc, parse_utc
from engine.audit.log import SYSTEM_ACTOR
from engine.casework.form import CompletedAs, SubmissionForm
from engine.casework.match_report import MatchReport
from engine.casework.model import (
    CANDIDATE_COLUMNS,
    CASE_COLUMNS,
    PROBE_COLUMNS,
    STEP_STATES,
    Case,
    CaseState,
    CaseStep,
    Decision,
    Outcome,
    case_from_rows,
)
from engine.casework.monitoring import OutcomeReport, outcome_report
from engine.errors import CaseError, FormError, ImageError, LibraryError, MatchReportError, PermissionRefused, RfrError
from engine.faces.types import Face
from engine.library.enrol import MAX_IMAGE_BYTES, FaceAnalyzer, ImageLoader, load_rgb
from engine.library.index import Candidate
from engine.library.registry import indexes_for
from engine.library.store import Library, PurgeRecord, get_library, get_library_by_id, list_libraries, require_usable
from engine.policy import Policy
from engine.policy.store import record_policy
from engine.scoring import LibrarySize, ScoreMeaning, meaning_for_model
from engine.security.users import Accounts, ReauthPurpose, Role, Session, User

if TYPE_CHECKING:
    from engine.library.service import Libraries
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
        "ended_reason",
    }
)
# States a case expires in when left waiting (the policy's retention periods).
_EXPIRING = (CaseState.DRAFT, CaseState.SUBMITTED, CaseState.APPROVED, CaseState.SEARCHED, CaseState.PEER_REVIEW)


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
    library: LibrarySize | None = None
    """The people and templates searched: what a candidate's distance means in 1:N depends on it."""


@dataclass(frozen=True)
class ReportMaterial:
    """Everything a Match Report export shows: the case, the Probe Image and each Viable Match's image."""

    case: Case
    probe_image: bytes | None
    probe_media_type: str | None
    references: dict[int, tuple[bytes, str] | None]
    exported_by: str = ""
    exported_at: str = ""
    library: LibrarySize | None = None  # the people and templates searched, as recorded when the search ran


@dataclass(frozen=True)
class ProbeView:
    """The Probe Image and the faces found in it, for the people who decide on the case to see."""

    case_id: str
    image: bytes
    media_type: str
    face: Any  # engine.casework.model.ProbeFace


@dataclass(frozen=True)
class Display:
    """How the person saw the Probe Image and the Potential Match side by side (the application says)."""

    renderer: str
    fit_to_judge: bool


@dataclass(frozen=True)
class FaceSeen:
    """One face found in a photograph, as shown to the people deciding: where it is and how good."""

    number: int
    box: tuple[int, int, int, int]
    landmarks: tuple[tuple[int, int], ...]
    warnings: tuple[str, ...]
    quality: dict[str, Any] | None

    @classmethod
    def of(cls, number: int, face: Face) -> FaceSeen:
        return cls(
            number,
            tuple(int(v) for v in face.box.as_list()),  # type: ignore[arg-type]
            tuple((int(x), int(y)) for x, y in np.asarray(face.landmarks)),
            tuple(face.quality.warnings) if face.quality is not None else (),
            face.quality.to_json() if face.quality is not None else None,
        )


@dataclass(frozen=True)
class ProbeExamination:
    """The faces of a Probe Image before the case is made (numbered left to right), and how they were found."""

    faces: tuple[FaceSeen, ...]
    note: str | None
    width: int
    height: int
    upsample: int


@dataclass(frozen=True)
class CandidateView:
    """A Potential Match's reference image with its face found again, for the side-by-side comparison."""

    rank: int
    image: bytes
    media_type: str
    face: FaceSeen | None


@dataclass
class SweepReport:
    """What one retention sweep did."""

    cases_expired: list[tuple[str, str]] = field(default_factory=list)  # (case, state it expired in)
    cases_closed: list[str] = field(default_factory=list)
    libraries_destroyed: list[PurgeRecord] = field(default_factory=list)
    account_requests_lapsed: int = 0

    @property
    def anything(self) -> bool:
        return bool(self.cases_expired or self.cases_closed or self.libraries_destroyed or self.account_requests_lapsed)

    def lines(self) -> list[str]:
        out = [f"case {c} expired ({s} too long): its probe data was deleted" for c, s in self.cases_expired]
        out += [f"case {c} closed by the terminal (Viable Match left open too long)" for c in self.cases_closed]
        out += [
            f"temporary library {r.library!r} destroyed: authorisation {r.authorisation} lapsed at {r.expires_at}"
            for r in self.libraries_destroyed
        ]
        if self.account_requests_lapsed:
            out.append(f"{self.account_requests_lapsed} account change request(s) lapsed unconfirmed")
        return out


def _media_type(data: bytes) -> str | None:
    return next((kind for magic, kind in _MEDIA_TYPES if data.startswith(magic)), None)


def _reason(action: str, reason: str | None) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise CaseError(f"{action} refused: give the reason (--reason TEXT); it is recorded on the case")
    if len(text) > MAX_REASON:
        raise CaseError(f"{action} refused: the reason is longer than {MAX_REASON} characters")
    return text


def _left_to_right(faces: list[Face]) -> list[Face]:
    """Faces numbered as a person reads the picture: left to right, then top to bottom."""
    return sorted(faces, key=lambda f: (f.box.left, f.box.top))


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two boxes (left, top, right, bottom, inclusive)."""
    w = min(a[2], b[2]) - max(a[0], b[0]) + 1
    h = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    area = (a[2] - a[0] + 1) * (a[3] - a[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1) - inter
    return inter / area


class Casework:
    """Cases in one workspace, under one policy, with users and sessions from ``accounts``."""

    def __init__(
        self,
        ws: Workspace,
        accounts: Accounts,
        policy: Policy,
        *,
        faces: Callable[[], FaceAnalyzer],
        libraries: Libraries | None = None,
        loader: ImageLoader = load_rgb,
    ) -> None:
        self._ws = ws
        self._accounts = accounts
        self._policy = policy
        self._faces = faces
        self._libraries = libraries
        self._loader = loader

    @property
    def policy(self) -> Policy:
        return self._policy

    # ---- plumbing -----------------------------------------------------------------------------

    def _now(self) -> str:
        return format_utc(self._ws.now())

    def _audit(self, conn: Any, actor: str, action: str, case_id: str | None, **details: object) -> None:
        audit.append(
            conn,
            actor,
            action,
            subjects={"case": case_id} if case_id else None,
            details=details,
            clock=self._ws.clock,
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
        probe = self._fetch(conn, f"SELECT {PROBE_COLUMNS} FROM case_probes WHERE case_id = ?", (case_id,))  # noqa: S608
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
        approved = self._fetch(
            conn,
            "SELECT library_id, name, kind, content_version, authorisation, expires_at FROM case_approved_libraries "
            "WHERE case_id = ? ORDER BY name",
            (case_id,),
        )
        advice = self._fetch(
            conn,
            "SELECT flag, adviser, given_on, advice, recorded_by, recorded_at FROM case_advice WHERE case_id = ? "
            "ORDER BY id",
            (case_id,),
        )
        return case_from_rows(rows[0], probe[0] if probe else None, candidates, reviews, approved, advice)

    def _user(self, session: Session) -> User:
        return self._accounts.check(session)

    @staticmethod
    def _require_role(user: User, role: Role, action: str, doing: str) -> None:
        if not user.has_role(role):
            raise PermissionRefused(f"{action} refused: {doing} needs the {role.label} role; {user.username} lacks it")

    @staticmethod
    def _require_state(case: Case, step: CaseStep, action: str | None = None) -> None:
        allowed = STEP_STATES[step]
        action = action or step.value
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

    def _check_libraries(self, use_case: str, libraries: list[Library], action: str) -> None:
        """Each library usable, and of a kind the use case may search (the policy's use-case rules)."""
        allowed = self._policy.use_case(use_case).library_kinds
        for lib in libraries:
            require_usable(self._ws, lib)
            if lib.kind.value not in allowed:
                kinds = " or ".join(f"{k} libraries" for k in allowed)
                raise PermissionRefused(
                    f"{action} refused: use case {use_case} may search only {kinds}; {lib.name!r} is {lib.kind.value}"
                )

    # ---- the Submission Form --------------------------------------------------------------------

    def new_case(self, session: Session, form: SubmissionForm, probe_image: bytes, *, face: int | None = None) -> Case:
        """Open a draft case from a completed form and its Probe Image, checked, with its face chosen.

        The Probe Image is decoded and its faces found now (enlarged when none is found at its
        own size), so an image that can never be searched is refused at once. With several faces,
        ``face`` (numbered left to right from 1) says which one the case is about.
        """
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
            self._check_libraries(form.use_case, [get_library(self._ws, n) for n in form.libraries], "case")
            chosen, found, rgb = self._choose_face(probe_image, face)
            media_type = _media_type(probe_image)
            requirement = self._policy.required_approval(form)
            monitoring = self._policy.monitoring_flags(form.age_band)
            now = self._now()
            with self._ws.transaction() as conn:
                record_policy(conn, self._policy, self._ws.clock)
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
                chosen_face = found.faces[chosen]
                conn.execute(
                    "INSERT INTO case_probes (case_id, image, media_type, sha256, byte_length, quality, width, height, "
                    "faces_found, face_number, face_box, face_landmarks, upsample, detection_note) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        case_id,
                        probe_image,
                        media_type,
                        hashlib.sha256(probe_image).hexdigest(),
                        len(probe_image),
                        None if chosen_face.quality is None else json.dumps(chosen_face.quality.to_json()),
                        int(rgb.shape[1]),
                        int(rgb.shape[0]),
                        len(found.faces),
                        chosen + 1,
                        json.dumps(chosen_face.box.as_list()),
                        json.dumps(np.asarray(chosen_face.landmarks).astype(int).tolist()),
                        found.upsample,
                        found.note,
                    ),
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
                    faces_found=len(found.faces),
                    face=chosen + 1,
                    upsample=found.upsample,
                    policy_version=self._policy.version,
                    policy_sha256=self._policy.sha256,
                )
            return self._read(case_id)

    def _find_probe_faces(self, probe_image: bytes) -> tuple[Any, np.ndarray]:
        """Decode the Probe Image and find its faces (enlarged when none at its own size), left to right."""
        from engine.faces.pipeline import find_faces  # the face engine is loaded only when a probe is analysed

        if _media_type(probe_image) is None:
            raise ImageError("the Probe Image is not a JPEG or PNG file: export it as JPEG or PNG")
        if len(probe_image) > MAX_IMAGE_BYTES:
            raise ImageError(f"the Probe Image is larger than {MAX_IMAGE_BYTES >> 20} MiB")
        rgb = self._loader(probe_image, "the Probe Image")
        found = find_faces(self._faces(), rgb, embed=False)
        found.faces[:] = _left_to_right(found.faces)
        return found, rgb

    def examine_probe(self, session: Session, probe_image: bytes) -> ProbeExamination:
        """The faces of a Probe Image, so the officer can choose one before the case is made.

        Nothing is stored; the look is recorded (counts only, nothing biometric).
        """
        user = self._user(session)
        with self._refusals("examine probe", user.username, None):
            if not (user.has_role(Role.RFR_USER) or user.has_role(Role.TASKING_OFFICER)):
                raise PermissionRefused(
                    f"examining a Probe Image refused: it needs the {Role.RFR_USER.label} or "
                    f"{Role.TASKING_OFFICER.label} role; {user.username} holds neither"
                )
            found, rgb = self._find_probe_faces(probe_image)
            with self._ws.transaction() as conn:
                self._audit(
                    conn,
                    user.username,
                    "case.probe_examined",
                    None,
                    faces_found=len(found.faces),
                    upsample=found.upsample,
                )
        return ProbeExamination(
            tuple(FaceSeen.of(i + 1, f) for i, f in enumerate(found.faces)),
            found.note,
            int(rgb.shape[1]),
            int(rgb.shape[0]),
            found.upsample,
        )

    def _choose_face(self, probe_image: bytes, face: int | None) -> tuple[int, Any, np.ndarray]:
        """Decode the Probe Image, find its faces, and say which the case is about (index into the faces)."""
        found, rgb = self._find_probe_faces(probe_image)
        if not found.faces:
            raise ImageError(
                f"no face was found in the Probe Image ({found.note or 'at its own size'}): nothing could be searched; "
                "use a clearer image of the face"
            )
        count = len(found.faces)
        if face is None:
            if count > 1:
                raise FormError(
                    f"submission form: face: the Probe Image shows {count} faces: choose the one to search with "
                    f"--face N (1 to {count}, numbered left to right)"
                )
            return 0, found, rgb
        if not 1 <= face <= count:
            raise FormError(f"submission form: face {face}: the Probe Image shows {count} face(s): choose 1 to {count}")
        return face - 1, found, rgb

    def completed_as(self, user: User) -> CompletedAs:
        """How a user completing a form counts: as the RFR User if they hold that role, else as tasking officer."""
        return CompletedAs.RFR_USER if user.has_role(Role.RFR_USER) else CompletedAs.TASKING_OFFICER

    def probe(self, session: Session, case_id: str) -> ProbeView:
        """The Probe Image with its chosen face, for whoever decides on the case (readers only; audited)."""
        actor = self._reader(session, "view probe", case_id)
        case = self._read(case_id)
        row = self._ws.query_one("SELECT image, media_type FROM case_probes WHERE case_id = ?", (case_id,))
        if row is None or row[0] is None:
            raise CaseError(f"case {case_id} no longer holds its Probe Image (deleted {case.probe_deleted_at})")
        with self._ws.transaction() as conn:
            self._audit(conn, actor, "case.view_probe", case_id)
        return ProbeView(case_id, bytes(row[0]), str(row[1]), case.probe_face)

    def submit(self, session: Session, case_id: str) -> Case:
        user = self._user(session)
        with self._refusals("submit", user.username, case_id):
            case = self._read(case_id)
            self._require_state(case, CaseStep.SUBMIT)
            if user.username != case.created_by:
                raise PermissionRefused(
                    f"submission refused: only {case.created_by}, who completed the form, may submit case {case.id}"
                )
            if self._past_expiry(case):
                self._expire(case_id, case.state)
                raise CaseError(
                    f"submission refused: draft {case_id} is older than the policy's "
                    f"{self._policy.retention.case_expiry_days.draft} days: it has expired and its Probe Image was "
                    "deleted; complete a new form"
                )
            with self._ws.transaction() as conn:
                self._require_state(self._read(case_id, conn), CaseStep.SUBMIT)
                self._set_state(
                    conn, case_id, CaseState.SUBMITTED, submitted_by=user.username, submitted_at=self._now()
                )
                self._audit(conn, user.username, "case.submit", case_id, required_rank=case.required_rank)
            return self._read(case_id)

    # ---- technical advice -----------------------------------------------------------------------

    def record_advice(
        self, session: Session, case_id: str, *, flag: str, adviser: str, given_on: str, advice: str
    ) -> Case:
        """Record the advice a flagged case needs before approval: who gave it, when, and what it said."""
        user = self._user(session)
        with self._refusals("advice", user.username, case_id):
            case = self._read(case_id)
            self._require_state(case, CaseStep.ADVICE)
            if user.username not in {case.created_by, case.submitted_by}:
                raise PermissionRefused(
                    f"recording advice refused: only who completed or submitted case {case_id} records its advice"
                )
            if flag not in case.approval_flags:
                raise CaseError(
                    f"recording advice refused: case {case_id} carries no flag {flag!r} "
                    f"(its flags: {', '.join(case.approval_flags) or 'none'})"
                )
            who = " ".join(adviser.split())
            if len(who) < 3:
                raise FormError("advice: adviser is missing: name who gave the advice and their team")
            try:
                given = date.fromisoformat(given_on.strip())
            except ValueError:
                raise FormError(f"advice: given_on {given_on!r} is not a date (YYYY-MM-DD)") from None
            if given > self._ws.now().date():
                raise FormError(f"advice: given_on {given} is in the future")
            text = " ".join(advice.split())
            problem = self._policy.text_rules.problem(text, "reasoning")
            if problem is not None:
                raise FormError(f"advice: {problem}: set out what the advice said")
            with self._ws.transaction() as conn:
                conn.execute(
                    "INSERT INTO case_advice (case_id, flag, adviser, given_on, advice, recorded_by, recorded_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (case_id, flag, who, given.isoformat(), text, user.username, self._now()),
                )
                conn.execute("UPDATE cases SET updated_at = ? WHERE id = ?", (self._now(), case_id))
                self._audit(conn, user.username, "case.advice", case_id, flag=flag, adviser=who, given_on=str(given))
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
        self._require_state(case, CaseStep.DECIDE, action)
        if user.username in {case.created_by, case.submitted_by, case.form.completed_by}:
            raise PermissionRefused(f"{action} refused: nobody may approve or reject their own submission")

    def _check_advice(self, case: Case) -> None:
        for key in case.approval_flags:
            flag = self._policy.flag(key)
            if flag.requires_recorded_advice and not any(a.flag == key for a in case.advice):
                raise CaseError(
                    f"approval refused: case {case.id} is flagged {key}: the advice ({flag.description.rstrip('.')}) "
                    "must be recorded on the case first (rfr case advice)"
                )

    def approve(self, session: Session, case_id: str, reason: str | None) -> Case:
        """Approve a submitted case: approver role, rank at or above the case's, not the submitter, fresh password.

        The approval records each library by identity and content version: it covers those, as they are now.
        """
        user = self._user(session)
        with self._refusals("approve", user.username, case_id):
            case = self._read(case_id)
            self._check_decider(user, case, "approval")
            needed = self.required_rank(case)
            if user.rank is None or not self._policy.is_rank(user.rank):
                raise PermissionRefused(f"approval refused: case needs {needed}, you hold no rank")
            if not self._policy.rank_at_least(user.rank, needed):
                raise PermissionRefused(f"approval refused: case needs {needed}, you are {user.rank}")
            self._check_advice(case)
            text = _reason("approval", reason)
            libraries = [get_library(self._ws, n) for n in case.form.libraries]
            self._check_libraries(case.form.use_case, libraries, "approval")
            with self._ws.transaction() as conn:
                current = self._read(case_id, conn)
                self._check_decider(user, current, "approval")
                self._accounts.require_reauthentication(session, ReauthPurpose.APPROVE)
                now = self._now()
                self._set_state(
                    conn, case_id, CaseState.APPROVED, decided_by=user.username, decided_rank=user.rank, decided_at=now
                )
                conn.execute(_INSERT_REVIEW, (case_id, "approval", user.username, user.rank, 1, text, now))
                conn.execute("DELETE FROM case_approved_libraries WHERE case_id = ?", (case_id,))
                for lib in libraries:
                    conn.execute(
                        "INSERT INTO case_approved_libraries (case_id, library_id, name, kind, content_version, "
                        "authorisation, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            case_id,
                            lib.id,
                            lib.name,
                            lib.kind.value,
                            lib.content_version,
                            lib.authorisation,
                            None if lib.expires_at is None else lib.expires_at.isoformat(timespec="seconds"),
                        ),
                    )
                record_policy(conn, self._policy, self._ws.clock)
                self._audit(
                    conn,
                    user.username,
                    "case.approve",
                    case_id,
                    required_rank=needed,
                    approver_rank=user.rank,
                    reason=text,
                    flags=case.flags,
                    libraries=[
                        {"id": lib.id, "name": lib.name, "content_version": lib.content_version} for lib in libraries
                    ],
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
                conn.execute(_INSERT_REVIEW, (case_id, "rejection", user.username, user.rank, 0, text, now))
                self._audit(conn, user.username, "case.reject", case_id, approver_rank=user.rank, reason=text)
                self._delete_probe_data(conn, user.username, case_id, "rejected_case_probe_data", keep_image=False)
            self._ws.checkpoint()
            return self._read(case_id)

    # ---- withdrawal and expiry --------------------------------------------------------------------

    def withdraw(self, session: Session, case_id: str, reason: str | None) -> Case:
        """End a case before adjudication (who completed, submitted or searched it); its probe data goes at once."""
        user = self._user(session)
        with self._refusals("withdraw", user.username, case_id):
            case = self._read(case_id)
            self._check_withdraw(user, case)
            text = _reason("withdrawal", reason)
            with self._ws.transaction() as conn:
                current = self._read(case_id, conn)
                self._check_withdraw(user, current)
                self._set_state(
                    conn,
                    case_id,
                    CaseState.WITHDRAWN,
                    closed_by=user.username,
                    closed_at=self._now(),
                    ended_reason=text,
                )
                self._audit(conn, user.username, "case.withdraw", case_id, before=current.state.value, reason=text)
                self._delete_probe_data(conn, user.username, case_id, "withdrawn_case_probe_data", keep_image=False)
            self._ws.checkpoint()
            return self._read(case_id)

    @staticmethod
    def _check_withdraw(user: User, case: Case) -> None:
        Casework._require_state(case, CaseStep.WITHDRAW)
        if case.viable:
            raise CaseError(
                f"withdrawal refused: case {case.id} already has a Viable Match; finish adjudication and close it"
            )
        if user.username not in {case.created_by, case.submitted_by, case.searched_by}:
            raise PermissionRefused(
                f"withdrawal refused: only who completed, submitted or searched case {case.id} may withdraw it"
            )

    def _past_expiry(self, case: Case) -> bool:
        days = getattr(self._policy.retention.case_expiry_days, case.state.value, None)
        if days is None:
            return False
        return self._ws.now() - parse_utc(case.updated_at) > timedelta(days=int(days))

    def _expire(self, case_id: str, state: CaseState) -> None:
        with self._ws.transaction() as conn:
            current = self._read(case_id, conn)
            if current.state is not state:
                return
            days = getattr(self._policy.retention.case_expiry_days, state.value)
            rule = f"left {state.value} for more than {days} days"
            self._set_state(
                conn, case_id, CaseState.EXPIRED, closed_by=SYSTEM_ACTOR, closed_at=self._now(), ended_reason=rule
            )
            self._audit(conn, SYSTEM_ACTOR, "case.expire", case_id, before=state.value, rule=rule)
            self._delete_probe_data(conn, SYSTEM_ACTOR, case_id, "case_expiry_days", keep_image=False)

    def sweep(self) -> SweepReport:
        """Expire every case left waiting past the policy's days; close Viable Match cases left open."""
        report = SweepReport()
        states = [s.value for s in (*_EXPIRING, CaseState.ADJUDICATED)]
        marks = ", ".join("?" for _ in states)
        ids = [str(r[0]) for r in self._ws.query(f"SELECT id FROM cases WHERE state IN ({marks})", tuple(states))]  # noqa: S608
        for case_id in ids:
            case = self._read(case_id)
            if case.state is CaseState.ADJUDICATED:
                if self._ws.now() - parse_utc(case.updated_at) > timedelta(
                    days=self._policy.retention.case_expiry_days.searched
                ):
                    self._close(SYSTEM_ACTOR, case_id, "closed by the terminal: a Viable Match left open too long")
                    report.cases_closed.append(case_id)
            elif self._past_expiry(case):
                self._expire(case_id, case.state)
                report.cases_expired.append((case_id, case.state.value))
        if report.cases_expired or report.cases_closed:
            self._ws.checkpoint()
        return report

    # ---- search -------------------------------------------------------------------------------

    def _check_search(self, user: User, case: Case) -> None:
        self._require_role(user, Role.RFR_USER, "search", "running a search")
        if not case.step_open(CaseStep.SEARCH) or not any(r.kind == "approval" for r in case.reviews):
            raise CaseError(
                f"search refused: case {case.id} is {case.state.value}: no search runs without a recorded approval "
                "that covers it"
            )
        if not case.approved_libraries:
            raise CaseError(f"search refused: case {case.id}'s approval names no library: ask for a new approval")

    def _approved_libraries(self, case: Case) -> tuple[list[Library], str | None]:
        """The libraries the approval covered, as they are now; or why the approval no longer covers them."""
        libraries: list[Library] = []
        for approved in case.approved_libraries:
            try:
                lib = get_library_by_id(self._ws, approved.library_id)
            except LibraryError:
                return [], f"library {approved.name!r} was deleted since the approval"
            expires = None if lib.expires_at is None else lib.expires_at.isoformat(timespec="seconds")
            if lib.name != approved.name or lib.kind.value != approved.kind:
                return [], f"library {approved.name!r} was replaced since the approval"
            if (lib.authorisation, expires) != (approved.authorisation, approved.expires_at):
                return [], f"library {approved.name!r} was re-authorised since the approval"
            if lib.content_version != approved.content_version:
                return [], (
                    f"library {approved.name!r} changed since the approval (content version {lib.content_version}, "
                    f"approved {approved.content_version})"
                )
            libraries.append(lib)
        named = {lib.name for lib in list_libraries(self._ws)}
        for name in case.form.libraries:
            if name in named and name not in {a.name for a in case.approved_libraries}:
                return [], f"library {name!r} is not the one the approval covered"
        return libraries, None

    def _lapse_approval(self, case_id: str, why: str) -> None:
        """The approval no longer covers the libraries: the case goes back to the approvers."""
        with self._ws.transaction() as conn:
            self._set_state(conn, case_id, CaseState.SUBMITTED, decided_by=None, decided_rank=None, decided_at=None)
            conn.execute("DELETE FROM case_approved_libraries WHERE case_id = ?", (case_id,))
            self._audit(conn, SYSTEM_ACTOR, "case.approval_lapsed", case_id, rule=why)

    def search(self, session: Session, case_id: str) -> SearchResult:
        """Run the approved search: the approved libraries only, as approved; the policy's candidate list size."""
        user = self._user(session)
        with self._refusals("search", user.username, case_id):
            case = self._read(case_id)
            self._check_search(user, case)
            libraries, lapsed = self._approved_libraries(case)
            if lapsed is not None:
                self._lapse_approval(case_id, lapsed)
                raise CaseError(
                    f"search refused: {lapsed}; the approval no longer covers it, so case {case_id} is back with "
                    "the approvers for a fresh approval"
                )
            self._check_libraries(case.form.use_case, libraries, "search")
            row = self._ws.query_one("SELECT image FROM case_probes WHERE case_id = ?", (case_id,))
            if row is None or row[0] is None or case.probe_face is None:
                raise CaseError(f"search refused: case {case_id} holds no Probe Image")
            engine = self._faces()
            face = self._chosen_face(engine, bytes(row[0]), case)
            assert face.embedding is not None
            template = np.asarray(face.embedding, dtype=np.float32)
            quality = face.quality.to_json() if face.quality is not None else None
            warnings = tuple(face.quality.warnings) if face.quality is not None else ()
            top_k = self._policy.search.candidate_list_size
            meaning = meaning_for_model(self._policy, engine.model_id, engine.model_sha256)
            indexes = indexes_for(self._ws, engine.model_id, engine.model_sha256)
            candidates = tuple(indexes.search(template, libraries, top_k))
            searched = indexes.population(libraries)
            with self._ws.transaction() as conn:
                current = self._read(case_id, conn)
                self._check_search(user, current)
                if self._approved_libraries(current)[1] is not None:
                    raise CaseError(
                        f"search refused: a library of case {case_id} changed during the search: search again"
                    )
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
                    libraries=[
                        {"id": lib.id, "name": lib.name, "content_version": lib.content_version} for lib in libraries
                    ],
                    candidate_list_size=top_k,
                    candidates=len(candidates),
                    searched=searched.to_json(),
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
                searched,
            )

    def _chosen_face(self, engine: FaceAnalyzer, image: bytes, case: Case) -> Face:
        """The face recorded at ``new_case``, found again at the same enlargement, with its template."""
        probe = case.probe_face
        assert probe is not None
        rgb = self._loader(image, f"Probe Image of case {case.id}")
        faces = [f for f in engine.analyze(rgb, upsample=probe.upsample, embed=True) if f.embedding is not None]
        best = max(faces, key=lambda f: _overlap(tuple(f.box.as_list()), probe.box), default=None)  # type: ignore[arg-type]
        if best is None or _overlap(tuple(best.box.as_list()), probe.box) < 0.5:  # type: ignore[arg-type]
            raise ImageError(
                f"the face chosen in the Probe Image of case {case.id} is no longer found (the face engine changed "
                "since the case was made): nothing was searched; withdraw the case and make a new one"
            )
        return best

    # ---- adjudication -------------------------------------------------------------------------

    def _check_adjudicate(self, user: User, case: Case) -> None:
        self._require_role(user, Role.RFR_USER, "adjudication", "adjudicating")
        self._require_state(case, CaseStep.ADJUDICATE)

    def adjudicate(
        self,
        session: Session,
        case_id: str,
        rank: int,
        decision: Decision | str,
        report: MatchReport | None = None,
        *,
        display: Display | None = None,
    ) -> Case:
        """Decide one Potential Match. A Viable Match needs a Match Report covering factors (i) to (v).

        ``display``: how the pictures were shown (the application's renderer). Under the policy's
        ``adjudication.require_graphics_renderer`` a Viable Match is refused from pictures too coarse
        to judge. The command line shows no pictures (``None``), and says so in the record.
        """
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
                needs_pixels = self._policy.adjudication.require_graphics_renderer
                if display is not None and not display.fit_to_judge and needs_pixels:
                    raise CaseError(
                        f"adjudication refused: a Viable Match cannot be declared from pictures drawn in "
                        f"{display.renderer}, too coarse to judge a face: use a graphics terminal (Kitty or Sixel; "
                        "see the README)"
                    )
                if report is None:
                    raise MatchReportError(
                        "adjudication refused: a Viable Match needs a Match Report covering factors (i) to (v): "
                        "pass --report FILE"
                    )
                report.check_substance(self._policy)
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
                    compared_on="not shown (command line)" if display is None else display.renderer,
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
        self._require_state(case, CaseStep.PEER_REVIEW)
        if user.username in case.adjudicators:
            raise PermissionRefused("peer review refused: nobody may peer-review their own adjudication")

    def peer_review(self, session: Session, case_id: str, agree: bool, reason: str | None) -> Case:
        """Agree (no viable match: the case closes and its probe data is deleted now) or send back (disagree)."""
        user = self._user(session)
        with self._refusals("peer_review", user.username, case_id):
            case = self._read(case_id)
            self._check_peer_review(user, case)
            text = _reason("peer review", reason)
            with self._ws.transaction() as conn:
                self._check_peer_review(user, self._read(case_id, conn))
                self._accounts.require_reauthentication(session, ReauthPurpose.PEER_REVIEW_SIGN_OFF)
                now = self._now()
                conn.execute(_INSERT_REVIEW, (case_id, "peer_review", user.username, user.rank, int(agree), text, now))
                after = CaseState.CLOSED if agree else CaseState.SEARCHED
                if agree:
                    self._set_state(
                        conn,
                        case_id,
                        CaseState.CLOSED,
                        outcome=Outcome.NO_VIABLE_MATCH.value,
                        peer_reviewed_by=user.username,
                        closed_by=user.username,
                        closed_at=now,
                    )
                else:
                    self._set_state(conn, case_id, CaseState.SEARCHED, outcome=None, peer_reviewed_by=None)
                self._audit(
                    conn, user.username, "case.peer_review", case_id, agree=agree, reason=text, after=after.value
                )
                if agree:
                    self._delete_probe_data(
                        conn, user.username, case_id, "no_viable_match_probe_data", keep_image=False
                    )
            if agree:
                self._ws.checkpoint()
            return self._read(case_id)

    # ---- closing and retention ------------------------------------------------------------------

    def _check_close(self, user: User, case: Case) -> None:
        self._require_role(user, Role.RFR_USER, "close", "closing a case")
        self._require_state(case, CaseStep.CLOSE)
        if case.outcome is not Outcome.VIABLE_MATCH or not case.viable or any(c.report is None for c in case.viable):
            raise CaseError("close refused: every Viable Match needs its Match Report")

    def close(self, session: Session, case_id: str, reason: str | None = None) -> Case:
        """Close a case adjudicated with a Viable Match; its probe template is deleted at once."""
        user = self._user(session)
        with self._refusals("close", user.username, case_id):
            self._check_close(user, self._read(case_id))
            return self._close(user.username, case_id, " ".join((reason or "").split()) or None, user)

    def _close(self, actor: str, case_id: str, reason: str | None, user: User | None = None) -> Case:
        with self._ws.transaction() as conn:
            current = self._read(case_id, conn)
            if user is not None:
                self._check_close(user, current)
            elif current.state is not CaseState.ADJUDICATED:
                return current
            self._set_state(conn, case_id, CaseState.CLOSED, closed_by=actor, closed_at=self._now())
            self._audit(
                conn,
                actor,
                "case.close",
                case_id,
                outcome=Outcome.VIABLE_MATCH.value,
                viable_matches=len(current.viable),
                reason=reason,
            )
            self._delete_probe_data(conn, actor, case_id, "viable_match_probe_template", keep_image=True)
        self._ws.checkpoint()
        return self._read(case_id)

    def _delete_probe_data(self, conn: Any, actor: str, case_id: str, rule: str, *, keep_image: bool) -> None:
        """Delete probe-derived data now, inside the transition's transaction, and audit what went."""
        deleted = ["probe_template"]
        if keep_image:
            conn.execute("UPDATE case_probes SET template = NULL WHERE case_id = ?", (case_id,))
        else:
            conn.execute(
                "UPDATE case_probes SET image = NULL, media_type = NULL, template = NULL, quality = NULL, "
                "face_box = NULL, face_landmarks = NULL WHERE case_id = ?",
                (case_id,),
            )
            conn.execute(
                "UPDATE case_candidates SET score = NULL, distance = NULL, reference_image = NULL, "
                "reference_media_type = NULL WHERE case_id = ?",
                (case_id,),
            )
            conn.execute("UPDATE cases SET probe_deleted_at = ? WHERE id = ?", (self._now(), case_id))
            deleted = [
                "probe_image",
                "probe_template",
                "probe_quality",
                "probe_face",
                "candidate_scores",
                "reference_image_copies",
            ]
        self._audit(conn, actor, "case.probe_deleted", case_id, rule=rule, deleted=deleted)

    # ---- reading --------------------------------------------------------------------------------

    def _reader(self, session: Session, action: str, case_id: str | None) -> str:
        user = self._user(session)
        if not any(user.has_role(r) for r in CASEWORK_READERS):
            with self._refusals(action, user.username, case_id):
                raise PermissionRefused(
                    f"{action} refused: casework is seen only by RFR Users, tasking officers, approvers, "
                    "peer reviewers and auditors"
                )
        return user.username

    def show(self, session: Session, case_id: str) -> Case:
        """A case for display; the view is audited (every access is logged)."""
        actor = self._reader(session, "view", case_id)
        case = self._read(case_id)
        with self._ws.transaction() as conn:
            self._audit(conn, actor, "case.view", case_id)
        return case

    def report_material(self, session: Session, case_id: str, destination: str) -> ReportMaterial:
        """What the Match Report export needs; only once adjudication is complete with a Viable Match. Audited."""
        actor = self._reader(session, "report", case_id)
        with self._refusals("report", actor, case_id):
            case = self._read(case_id)
            if not case.step_open(CaseStep.EXPORT_REPORT):
                raise CaseError(
                    f"report refused: case {case_id} is {case.state.value}"
                    + ("" if case.outcome is None else f" ({case.outcome.value})")
                    + ": a Match Report is exported only once every Potential Match is adjudicated and one is a "
                    "Viable Match"
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
            exported_by=actor,
            exported_at=self._now(),
            library=self._searched(case_id),
        )

    def _searched(self, case_id: str) -> LibrarySize | None:
        """The people and templates the case's search compared with, as its audit event recorded them."""
        row = self._ws.query_one(
            "SELECT details FROM audit_events WHERE action = 'case.search' AND json_extract(subjects, '$.case') = ? "
            "ORDER BY seq DESC LIMIT 1",
            (case_id,),
        )
        if row is None:
            return None
        try:
            details = json.loads(row[0])
        except (TypeError, ValueError):
            return None
        return LibrarySize.from_json(details.get("searched") if isinstance(details, dict) else None)

    def searched_library(self, session: Session, case_id: str) -> LibrarySize | None:
        """What the case's search compared with (people, templates), for the 1:N meaning; readers of the case only."""
        self._reader(session, "view", case_id)
        return self._searched(case_id)

    def candidate_view(self, session: Session, case_id: str, rank: int) -> CandidateView:
        """One Potential Match's reference image with its face found again (landmarks, quality), to compare.

        Readers only; the look is recorded. The face is the one the library's template was made from.
        """
        actor = self._reader(session, "view candidate", case_id)
        case = self._read(case_id)
        candidate = next((c for c in case.candidates if c.rank == rank), None)
        if candidate is None:
            raise CaseError(f"case {case_id} has no Potential Match ranked {rank}")
        row = self._ws.query_one(
            "SELECT reference_image, reference_media_type FROM case_candidates WHERE case_id = ? AND rank = ?",
            (case_id, rank),
        )
        if row is None or row[0] is None:
            row = self._ws.query_one(
                "SELECT b.data, i.media_type FROM image_bytes b JOIN images i ON i.id = b.image_id "
                "WHERE b.image_id = ?",
                (candidate.image_id,),
            )
        if row is None or row[0] is None:
            raise CaseError(f"the reference image of Potential Match {rank} is no longer held (its library changed)")
        image, media_type = bytes(row[0]), str(row[1])
        box_row = self._ws.query_one("SELECT face_box FROM templates WHERE id = ?", (candidate.template_id,))
        seen = None
        if box_row is not None:
            stored = tuple(int(v) for v in json.loads(box_row[0]))
            faces = self._faces().analyze(self._loader(image, f"reference image {candidate.image_id}"), embed=False)
            best = max(faces, key=lambda f: _overlap(tuple(f.box.as_list()), stored), default=None)  # type: ignore[arg-type]
            if best is not None and _overlap(tuple(best.box.as_list()), stored) >= 0.5:  # type: ignore[arg-type]
                seen = FaceSeen.of(1, best)
        with self._ws.transaction() as conn:
            self._audit(conn, actor, "case.view_candidate", case_id, candidate=rank, image_id=candidate.image_id)
        return CandidateView(rank, image, media_type, seen)

    def list_cases(self, session: Session, state: CaseState | None = None, *, mine: bool = False) -> list[Case]:
        """Cases in number order, optionally in one state (a queue) or only the reader's own. Audited."""
        actor = self._reader(session, "list", None)
        cases = [self._read(case_id) for case_id in self.case_ids()]
        chosen = [
            c
            for c in cases
            if (state is None or c.state is state)
            and (not mine or actor in {c.created_by, c.submitted_by, c.searched_by, *c.adjudicators})
        ]
        with self._ws.transaction() as conn:
            self._audit(conn, actor, "case.list", None, state=None if state is None else state.value, cases=len(chosen))
        return chosen

    def outcome_report(self, session: Session, since: str, until: str) -> OutcomeReport:
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
