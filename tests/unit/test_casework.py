"""The case state machine: each rule of the policy, each refusal, retention, audit, the Match Report export.

Runs on a real terminal (encrypted workspace, audit signing key, accounts made by two engineers)
with the deterministic synthetic face engine (the real engine is exercised end to end in
tests/integration/test_case_cli.py). Each finding of issue 14 about casework has its test here,
named after what the review found.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyrage
import pytest

from engine import audit
from engine.casework import (
    Case,
    CaseState,
    MatchReport,
    Outcome,
    ReportSealing,
    SubmissionForm,
    probe_template,
    read_report_recipients,
    render_match_report,
    write_report_file,
)
from engine.errors import (
    CaseError,
    ConfigError,
    FormError,
    ImageError,
    LibraryError,
    MatchReportError,
    PermissionRefused,
    ReauthenticationRequired,
)
from engine.faces.types import Face, FaceQuality, QualityMeasure
from engine.library import create_library, delete_library
from engine.policy import Policy, load_default_policy
from engine.policy.model import Search
from engine.scoring.applicability import UNDER_16
from engine.security.users import ReauthPurpose, Session
from engine.terminal import Terminal
from engine.version import software_version
from tests.plaintext import image_needles
from tests.synthetic import SyntheticFaceEngine, synthetic_jpeg, write_subject_folders
from tests.terminals import PASSWORD, make_terminal, provision, reopen

CANDIDATES = 4
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# name: (roles, rank)
PEOPLE: dict[str, tuple[list[str], str | None]] = {
    "alice": (["rfr_user"], "Constable"),
    "bob": (["rfr_user", "approver"], "Inspector"),
    "ivan": (["approver"], "Inspector"),
    "sue": (["approver"], "Superintendent"),
    "bandc": (["approver"], "Police Staff Band A"),
    "pat": (["peer_reviewer"], None),
    "rita": (["rfr_user", "peer_reviewer"], "Sergeant"),
    "ann": (["auditor"], None),
    "tom": (["tasking_officer"], "Sergeant"),
}
CHECKS = {
    "local_intelligence": ("exhausted", "Local briefing and intelligence systems searched; no trace"),
    "circulation": ("exhausted", "Circulated to response and neighbourhood teams; nobody knew him"),
    "other_enquiries": ("exhausted", "Witnesses spoken to and shop records checked without result"),
    "biometric_identification": ("unviable", "No fingerprints or DNA were left at the scene"),
}
REPORT = {
    "factors": {
        "probe_image_quality": {"relevant": True, "assessment": "CCTV still, small face, some blur"},
        "reference_image_quality": {"relevant": False, "assessment": "custody image, frontal, sharp"},
        "time_lapse": {"relevant": True, "assessment": "about three years; weight gain"},
        "lighting": {"relevant": False, "assessment": "even light in both images"},
        "other": {"relevant": False, "assessment": "no coverings or eyewear in either"},
    },
    "reasoning": "Ear shape, nose and an eyebrow scar agree; the differences are explained by three years.",
}


class Clock:
    """A clock the test moves; the terminal reads it for every record."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@dataclass
class World:
    terminal: Terminal
    policy: Policy
    engine: SyntheticFaceEngine
    clock: Clock
    root: Path

    @property
    def cases(self) -> Any:
        return self.terminal.cases

    @property
    def ws(self) -> Any:
        return self.terminal.ws

    def login(self, name: str) -> Session:
        return self.terminal.accounts.login(name, PASSWORD)

    def form(self, by: str = "alice", **overrides: Any) -> SubmissionForm:
        fields: dict[str, Any] = {
            "completed_by": by,
            "use_case": "identify_unknown_subject",
            "reference": "OCC/2025/0042",
            "offence": "robbery",
            "justification": "Identify the robber of a shop; all other lines of enquiry are exhausted now.",
            "pre_rfr_checks": CHECKS,
            "probe_source": "police",
            "probe_captured": "2026-02-27T21:40",
            "probe_obtained": "Exported from the shop's CCTV system by PC 1234",
            "age_band": "adult",
            "libraries": ["custody"],
            "now": self.clock.now,
        }
        fields.update(overrides)
        return SubmissionForm.create(self.policy, **fields)

    def new(self, by: str = "alice", probe: bytes | None = None, face: int | None = None, **overrides: Any) -> Case:
        return self.cases.new_case(self.login(by), self.form(by, **overrides), probe or synthetic_jpeg(3, 9), face=face)

    def submitted(self, by: str = "alice", **overrides: Any) -> Case:
        case = self.new(by, **overrides)
        return self.cases.submit(self.login(by), case.id)

    def approved(self, by: str = "alice", approver: str = "ivan", **overrides: Any) -> Case:
        case = self.submitted(by, **overrides)
        return self.cases.approve(self.login(approver), case.id, "necessary and proportionate")

    def searched(self, by: str = "alice") -> Case:
        case = self.approved(by)
        return self.cases.search(self.login(by), case.id).case

    def events(self, action: str | None = None) -> list[audit.AuditEvent]:
        with self.ws.reading() as conn:
            return [e for e in audit.events(conn) if action is None or e.action == action]

    def verify(self) -> audit.VerifyResult:
        with self.ws.reading() as conn:
            return audit.verify(conn, self.ws.audit_public_key)

    def later(self, **delta: float) -> None:
        self.clock.now += timedelta(**delta)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    policy = replace(load_default_policy(), search=Search(candidate_list_size=CANDIDATES))
    clock = Clock()
    engine = SyntheticFaceEngine()
    terminal = make_terminal(tmp_path / "ws", clock=clock, engine=engine, policy=policy)
    sessions = provision(terminal, PEOPLE)
    for name, seed in (("custody", 0), ("other", 7)):
        terminal.libraries.create(sessions["eng1"], name, "substantive")
        write_subject_folders(tmp_path / name, {f"{name}-{i}": 2 for i in range(4)}, seed=seed)
        terminal.libraries.enrol(sessions["eng1"], name, tmp_path / name)
    with terminal:
        yield World(terminal, policy, engine, clock, tmp_path)


def adjudicate_all(world: World, case: Case, decision: str, by: str = "alice") -> Case:
    for candidate in case.candidates:
        report = MatchReport.from_mapping(REPORT) if decision == "viable" and candidate.rank == 1 else None
        this = decision if candidate.rank == 1 else "not_viable"
        case = world.cases.adjudicate(world.login(by), case.id, candidate.rank, this, report)
    return case


# ---- the form and the approval requirement ------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "rank", "flags"),
    [
        ({"age_band": "adult"}, "Inspector", []),
        ({"age_band": "unknown"}, "Inspector", []),
        ({"age_band": "16-17"}, "Inspector", ["under_18"]),
        ({"age_band": "13-15"}, "Inspector", ["under_18", "under_16"]),
        ({"age_band": "under13"}, "Superintendent", ["under_18", "under_16"]),
        ({"relevant_disability": True}, "Inspector", ["technical_advice"]),
        ({"pre_dates_gender_reassignment": True}, "Inspector", ["technical_advice"]),
        (
            {"age_band": "under13", "relevant_disability": True},
            "Superintendent",
            ["technical_advice", "under_18", "under_16"],
        ),
    ],
)
def test_required_rank_and_flags_come_from_the_form(
    world: World, overrides: dict[str, Any], rank: str, flags: list[str]
) -> None:
    case = world.new(**overrides)
    assert (case.state, case.required_rank, case.flags) == (CaseState.DRAFT, rank, flags)
    assert case.policy_version == world.policy.version and case.policy_sha256 == world.policy.sha256
    stored = world.ws.query("SELECT version FROM policy_versions WHERE sha256 = ?", (world.policy.sha256,))
    assert stored == [(world.policy.version,)]
    created = world.events("case.create")[-1]
    assert created.details["monitoring_flags"] == [f for f in flags if f.startswith("under")]
    assert created.details["policy_sha256"] == world.policy.sha256


def test_a_tasking_officer_may_complete_the_form(world: World) -> None:
    with pytest.raises(PermissionRefused, match="completed by the RFR User, a role tom does not hold"):
        world.new("tom")
    case = world.new("tom", completed_as="tasking_officer")
    assert case.form.completed_as.value == "tasking_officer"


def test_who_may_open_a_case(world: World) -> None:
    with pytest.raises(
        PermissionRefused, match="needs the RFR User or Tasking officer / SPOC role; eng1 holds neither"
    ):
        world.cases.new_case(world.login("eng1"), world.form("eng1"), synthetic_jpeg(3, 9))
    with pytest.raises(PermissionRefused, match="completed by alice, but bob is signed in"):
        world.cases.new_case(world.login("bob"), world.form("alice"), synthetic_jpeg(3, 9))
    with pytest.raises(LibraryError, match="no library called 'nowhere'"):
        world.new(libraries=["nowhere"])
    with pytest.raises(ImageError, match="not a JPEG or PNG"):
        world.new(probe=b"GIF89a not a probe")
    assert world.cases.case_ids() == []
    refused = world.events("case.refused")
    assert len(refused) == 4 and refused[0].details["attempted"] == "new"


def test_only_the_person_who_completed_the_form_submits_it(world: World) -> None:
    case = world.new()
    with pytest.raises(PermissionRefused, match="only alice, who completed the form, may submit"):
        world.cases.submit(world.login("bob"), case.id)
    assert world.cases.submit(world.login("alice"), case.id).state is CaseState.SUBMITTED
    with pytest.raises(CaseError, match="is submitted, not draft"):
        world.cases.submit(world.login("alice"), case.id)


# ---- the Probe Image is checked, and its face chosen, when the case is made (issue 14) -----------


def test_a_probe_without_a_face_is_refused_at_new_not_stuck_in_approved(world: World) -> None:
    # Found: a probe with no face was drafted, approved, and then stuck in "approved" for ever.
    with pytest.raises(ImageError, match="no face was found in the Probe Image"):
        world.new(probe=synthetic_jpeg(3, 0, kind="none"))
    assert world.cases.case_ids() == []
    assert world.engine.calls >= 3  # tried enlarged before giving up


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        (synthetic_jpeg(3, 9)[: len(synthetic_jpeg(3, 9)) // 2], "truncated"),
        (
            # a 30000 x 30000 JPEG header: a decompression bomb
            b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
            b"\xff\xc0\x00\x11\x08\x75\x30\x75\x30\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01\xff\xd9",
            "megapixels",
        ),
    ],
)
def test_a_probe_that_can_never_be_searched_is_refused_at_new(world: World, probe: bytes, message: str) -> None:
    # Found: `case new` drafted, and an approver approved, a decompression bomb and a truncated JPEG.
    with pytest.raises(ImageError, match=message):
        world.new(probe=probe)
    assert world.cases.case_ids() == []


def test_with_several_faces_the_officer_chooses_one_and_the_approver_sees_which(world: World) -> None:
    # Found: a probe with two faces silently searched one, and the approver never saw which.
    pair = synthetic_jpeg(5, 1, kind="pair")
    with pytest.raises(FormError, match=r"shows 2 faces: choose the one to search with --face N \(1 to 2"):
        world.new(probe=pair)
    with pytest.raises(FormError, match="face 3: the Probe Image shows 2 face"):
        world.new(probe=pair, face=3)
    case = world.new(probe=pair, face=2)
    assert case.probe_face is not None and (case.probe_face.number, case.probe_face.faces_found) == (2, 2)
    assert case.probe_face.box[0] > 0  # the right-hand face, numbered left to right
    view = world.cases.probe(world.login("ivan"), case.id)  # what the approver sees
    assert view.image == pair and view.face.number == 2
    assert world.events("case.view_probe")[-1].actor == "ivan"
    world.cases.submit(world.login("alice"), case.id)
    world.cases.approve(world.login("ivan"), case.id, "proportionate")
    result = world.cases.search(world.login("alice"), case.id)
    stored = probe_template(world.ws, case.id)
    chosen = max(world.engine.analyze(_decode(pair)), key=lambda f: f.box.left)
    assert stored is not None and chosen.embedding is not None and np.array_equal(stored, chosen.embedding)
    assert result.case.probe_face == case.probe_face


def _decode(data: bytes) -> Any:
    from engine.library.enrol import load_rgb

    return load_rgb(data, "probe")


# ---- use-case rules, technical advice -----------------------------------------------------------


def test_use_case_2_searches_only_temporary_libraries(world: World) -> None:
    # Found: use case 2 (find other imagery) ran against the substantive custody library.
    with pytest.raises(PermissionRefused, match="use case find_other_imagery may search only temporary libraries"):
        world.new(use_case="find_other_imagery")
    eng = world.login("eng1")
    world.terminal.libraries.create(
        eng, "op-x", "temporary", authorisation="AUTH/7", expires_at=world.clock.now + timedelta(days=30)
    )
    write_subject_folders(world.root / "opx", {"opx-1": 2}, seed=11)
    world.terminal.libraries.enrol(eng, "op-x", world.root / "opx")
    case = world.new(use_case="find_other_imagery", libraries=["op-x"])
    assert case.form.libraries == ("op-x",)


def test_flagged_cases_need_the_advice_recorded_before_approval(world: World) -> None:
    # Found: the technical-advice flag led to nothing that recorded the advice.
    case = world.submitted(relevant_disability=True)
    with pytest.raises(CaseError, match=r"flagged technical_advice: the advice .* must be recorded on the case first"):
        world.cases.approve(world.login("ivan"), case.id, "proportionate")
    with pytest.raises(FormError, match="advice: 'n/a' is not an answer"):
        world.cases.record_advice(
            world.login("alice"),
            case.id,
            flag="technical_advice",
            adviser="FRT team",
            given_on="2026-03-01",
            advice="n/a",
        )
    with pytest.raises(PermissionRefused, match="only who completed or submitted case"):
        world.cases.record_advice(
            world.login("bob"),
            case.id,
            flag="technical_advice",
            adviser="FRT team",
            given_on="2026-03-01",
            advice="The FRT team advise that the facial scarring may reduce the match score; adjudicate with care.",
        )
    advised = world.cases.record_advice(
        world.login("alice"),
        case.id,
        flag="technical_advice",
        adviser="J. Smith, FRT team",
        given_on="2026-03-01",
        advice="The FRT team advise that the facial scarring may reduce the match score; adjudicate with care.",
    )
    assert [(a.adviser, a.given_on, a.recorded_by) for a in advised.advice] == [
        ("J. Smith, FRT team", "2026-03-01", "alice")
    ]
    assert world.cases.approve(world.login("ivan"), case.id, "proportionate").state is CaseState.APPROVED


# ---- approval -----------------------------------------------------------------------------------


def test_approval_needs_the_computed_rank(world: World) -> None:
    case = world.submitted(age_band="under13")
    with pytest.raises(PermissionRefused) as caught:
        world.cases.approve(world.login("ivan"), case.id, "proportionate")
    assert caught.value.diagnostics() == "approval refused: case needs Superintendent, you are Inspector"
    approved = world.cases.approve(world.login("sue"), case.id, "proportionate; child at risk")
    assert approved.state is CaseState.APPROVED and approved.decided_rank == "Superintendent"
    assert approved.reviews[-1].reason == "proportionate; child at risk"
    event = world.events("case.approve")[-1]
    assert event.actor == "sue" and event.details["required_rank"] == "Superintendent"


def test_a_staff_equivalent_grade_counts_as_its_rank(world: World) -> None:
    case = world.submitted(age_band="under13")
    assert world.cases.approve(world.login("bandc"), case.id, "proportionate").state is CaseState.APPROVED


def test_nobody_approves_their_own_submission(world: World) -> None:
    case = world.submitted("bob")
    with pytest.raises(PermissionRefused, match="nobody may approve or reject their own submission"):
        world.cases.approve(world.login("bob"), case.id, "fine")
    with pytest.raises(PermissionRefused, match="nobody may approve or reject their own submission"):
        world.cases.reject(world.login("bob"), case.id, "fine")
    assert world.cases.case(case.id).state is CaseState.SUBMITTED


def test_approval_refusals(world: World) -> None:
    draft = world.new()
    with pytest.raises(CaseError, match="is draft, not submitted"):
        world.cases.approve(world.login("ivan"), draft.id, "fine")
    case = world.submitted()
    with pytest.raises(PermissionRefused, match="needs the Approver role; rita lacks it"):
        world.cases.approve(world.login("rita"), case.id, "fine")
    with pytest.raises(CaseError, match="give the reason"):
        world.cases.approve(world.login("ivan"), case.id, "  ")
    rules = [e.details["rule"] for e in world.events("case.refused")]
    assert any("is draft, not submitted" in r for r in rules) and any("give the reason" in r for r in rules)


def test_approval_needs_a_fresh_password(world: World) -> None:
    first, second = world.submitted(), world.submitted()
    session = world.login("ivan")  # signing in counts as one fresh password entry
    world.cases.approve(session, first.id, "fine")
    with pytest.raises(ReauthenticationRequired, match="approving needs your password entered again"):
        world.cases.approve(session, second.id, "fine")
    assert world.cases.case(second.id).state is CaseState.SUBMITTED
    world.terminal.accounts.reauthenticate(session, PASSWORD, ReauthPurpose.APPROVE)
    assert world.cases.approve(session, second.id, "fine").state is CaseState.APPROVED


def test_rejection_deletes_the_probe_image_at_once(world: World) -> None:
    case = world.submitted()
    rejected = world.cases.reject(world.login("ivan"), case.id, "not proportionate for a minor theft")
    assert rejected.state is CaseState.REJECTED and not rejected.probe_image_held
    assert world.ws.query("SELECT image FROM case_probes WHERE case_id = ?", (case.id,)) == [(None,)]
    deleted = world.events("case.probe_deleted")[-1]
    assert deleted.subjects == {"case": case.id} and deleted.details["rule"] == "rejected_case_probe_data"
    with pytest.raises(CaseError, match="is rejected: no search runs without a recorded approval"):
        world.cases.search(world.login("alice"), case.id)
    with pytest.raises(CaseError, match="give the reason"):
        world.cases.reject(world.login("ivan"), world.submitted().id, None)


# ---- approval binds to what was approved (issue 14) ------------------------------------------------


def test_an_approval_does_not_cover_a_library_recreated_under_the_same_name(world: World) -> None:
    # Found: deleting an approved library and creating another under the same name with another
    # authorisation and other people: the approved case searched the new one.
    case = world.approved()
    eng = world.login("eng1")
    world.terminal.libraries.delete(eng, "custody", "replaced")
    world.terminal.libraries.create(eng, "custody", "substantive")
    write_subject_folders(world.root / "impostors", {"someone-else": 2}, seed=99)
    world.terminal.libraries.enrol(eng, "custody", world.root / "impostors")
    with pytest.raises(CaseError) as caught:
        world.cases.search(world.login("alice"), case.id)
    assert caught.value.diagnostics() == (
        "search refused: library 'custody' was deleted since the approval; the approval no longer covers it, so "
        f"case {case.id} is back with the approvers for a fresh approval"
    )
    after = world.cases.case(case.id)
    assert after.state is CaseState.SUBMITTED and after.candidates == () and probe_template(world.ws, case.id) is None
    assert (
        world.events("case.approval_lapsed")[-1].details["rule"] == "library 'custody' was deleted since the approval"
    )
    again = world.cases.approve(world.login("ivan"), case.id, "the new custody library is proportionate too")
    assert again.approved_libraries[0].library_id != case.approved_libraries[0].library_id


def test_an_approval_does_not_cover_a_library_changed_since(world: World) -> None:
    case = world.approved()
    write_subject_folders(world.root / "more", {"late-arrival": 1}, seed=42)
    world.terminal.libraries.enrol(world.login("eng1"), "custody", world.root / "more")
    with pytest.raises(
        CaseError, match=r"library 'custody' changed since the approval \(content version \d+, approved"
    ):
        world.cases.search(world.login("alice"), case.id)
    assert world.cases.case(case.id).state is CaseState.SUBMITTED


def test_an_approval_does_not_cover_a_library_reauthorised_since(world: World) -> None:
    eng = world.login("eng1")
    world.terminal.libraries.create(
        eng, "op-y", "temporary", authorisation="AUTH/1", expires_at=world.clock.now + timedelta(days=9)
    )
    write_subject_folders(world.root / "opy", {"opy-1": 2}, seed=12)
    world.terminal.libraries.enrol(eng, "op-y", world.root / "opy")
    case = world.approved(libraries=["op-y"])
    with world.ws.transaction() as conn:  # as a package from the central unit would (issue 16)
        conn.execute("UPDATE libraries SET authorisation = 'AUTH/2' WHERE name = 'op-y'")
    with pytest.raises(CaseError, match="library 'op-y' was re-authorised since the approval"):
        world.cases.search(world.login("alice"), case.id)


def test_the_approval_records_each_library_by_identity(world: World) -> None:
    case = world.approved()
    (bound,) = case.approved_libraries
    library = world.terminal.libraries.get("custody")
    assert (bound.library_id, bound.content_version, bound.name) == (library.id, library.content_version, "custody")
    assert world.events("case.approve")[-1].details["libraries"] == [
        {"id": library.id, "name": "custody", "content_version": library.content_version}
    ]


# ---- search -------------------------------------------------------------------------------------


def test_no_search_without_approval(world: World) -> None:
    for case in (world.new(), world.submitted()):
        with pytest.raises(CaseError, match="no search runs without a recorded approval that covers it"):
            world.cases.search(world.login("alice"), case.id)
        assert probe_template(world.ws, case.id) is None
    assert world.events("case.search") == []


def test_search_runs_on_the_approved_libraries_with_the_policy_list_size(world: World) -> None:
    case = world.approved()
    with pytest.raises(PermissionRefused, match="running a search needs the RFR User role; ivan lacks it"):
        world.cases.search(world.login("ivan"), case.id)
    result = world.cases.search(world.login("alice"), case.id)
    assert result.case.state is CaseState.SEARCHED and result.top_k == CANDIDATES
    assert len(result.candidates) == CANDIDATES == len(result.case.candidates)
    assert {c.library for c in result.candidates} == {"custody"}  # "other" was not approved
    assert result.libraries == ("custody",) and result.case.libraries_searched == ("custody",)
    stored = probe_template(world.ws, case.id)
    expected = world.engine.analyze(_decode(synthetic_jpeg(3, 9)))[0].embedding
    assert stored is not None and expected is not None and np.array_equal(stored, expected)
    event = world.events("case.search")[-1]
    assert [lib["name"] for lib in event.details["libraries"]] == ["custody"]
    assert event.details["candidate_list_size"] == CANDIDATES
    with pytest.raises(CaseError, match="is searched: no search runs"):
        world.cases.search(world.login("alice"), case.id)


# ---- adjudication, peer review, close -----------------------------------------------------------


def test_a_viable_match_needs_a_match_report(world: World) -> None:
    case = world.searched()
    with pytest.raises(MatchReportError, match="a Viable Match needs a Match Report covering factors"):
        world.cases.adjudicate(world.login("alice"), case.id, 1, "viable")
    with pytest.raises(CaseError, match="no Potential Match ranked 99"):
        world.cases.adjudicate(world.login("alice"), case.id, 99, "not_viable")
    with pytest.raises(PermissionRefused, match="adjudicating needs the RFR User role"):
        world.cases.adjudicate(world.login("pat"), case.id, 1, "not_viable")
    report = MatchReport.from_mapping(REPORT)
    after = world.cases.adjudicate(world.login("alice"), case.id, 1, "viable", report)
    assert after.state is CaseState.SEARCHED  # the others are still to be adjudicated
    assert after.candidates[0].report == report and after.candidates[0].has_reference_image
    after = adjudicate_all(world, after, "viable")
    assert after.state is CaseState.ADJUDICATED and after.outcome is Outcome.VIABLE_MATCH
    assert world.events("case.adjudicate")[0].details["relevant_factors"] == ["probe_image_quality", "time_lapse"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"factors": {**REPORT["factors"], "lighting": {"relevant": False, "assessment": "x"}}},
            "factors.lighting.assessment: 'x' is not an answer",
        ),
        (
            {"factors": {**REPORT["factors"], "time_lapse": {"relevant": True, "assessment": "n/a"}}},
            "factors.time_lapse.assessment: 'n/a' is not an answer",
        ),
        ({"reasoning": "looks like him"}, "reasoning: too short"),
        ({"reasoning": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}, "reasoning: too little said"),
    ],
)
def test_match_report_factors_and_reasoning_need_substance(world: World, change: dict[str, Any], message: str) -> None:
    # Found: Match Report factors of "x" were accepted.
    case = world.searched()
    with pytest.raises(MatchReportError, match=message):
        world.cases.adjudicate(
            world.login("alice"), case.id, 1, "viable", MatchReport.from_mapping({**REPORT, **change})
        )
    assert world.cases.case(case.id).candidates[0].decision is None


def test_quality_warnings_must_be_weighed_in_the_report(tmp_path: Path) -> None:
    class WarningEngine(SyntheticFaceEngine):
        def analyze(self, rgb: Any, upsample: int = 0, embed: bool = True) -> list[Face]:
            faces = super().analyze(rgb, upsample, embed)
            warning = QualityMeasure("sharpness", 2.0, "laplacian", False, "the face is blurred")
            for face in faces:
                face.quality = FaceQuality((warning,))
            return faces

    policy = replace(load_default_policy(), search=Search(candidate_list_size=CANDIDATES))
    with make_terminal(tmp_path / "ws", engine=WarningEngine(), policy=policy) as terminal:
        sessions = provision(terminal, {k: PEOPLE[k] for k in ("alice", "ivan")})
        terminal.libraries.create(sessions["eng1"], "custody", "substantive")
        write_subject_folders(tmp_path / "c", {"c-1": 2, "c-2": 2}, seed=0)
        terminal.libraries.enrol(sessions["eng1"], "custody", tmp_path / "c")
        world = World(terminal, policy, SyntheticFaceEngine(), Clock(), tmp_path)
        world.clock.now = datetime.now(UTC)
        case = world.approved()
        world.cases.search(world.login("alice"), case.id)
        careless = {
            **REPORT,
            "factors": {
                **REPORT["factors"],
                "probe_image_quality": {"relevant": False, "assessment": "good enough to compare"},
            },
        }
        with pytest.raises(MatchReportError, match=r"measured quality has warnings \(the face is blurred\)"):
            world.cases.adjudicate(world.login("alice"), case.id, 1, "viable", MatchReport.from_mapping(careless))
        world.cases.adjudicate(world.login("alice"), case.id, 1, "viable", MatchReport.from_mapping(REPORT))


def test_no_viable_match_goes_through_peer_review_by_someone_else(world: World) -> None:
    case = adjudicate_all(world, world.searched("rita"), "not_viable", by="rita")
    assert case.state is CaseState.PEER_REVIEW and case.outcome is None
    with pytest.raises(CaseError, match="is peer_review, not adjudicated"):
        world.cases.close(world.login("rita"), case.id)
    with pytest.raises(CaseError, match="is peer_review, not searched or adjudicated"):
        world.cases.adjudicate(world.login("rita"), case.id, 1, "not_viable")
    with pytest.raises(PermissionRefused, match="nobody may peer-review their own adjudication"):
        world.cases.peer_review(world.login("rita"), case.id, True, "agree")
    with pytest.raises(PermissionRefused, match="needs the Peer reviewer role"):
        world.cases.peer_review(world.login("alice"), case.id, True, "agree")
    with pytest.raises(CaseError, match="give the reason"):
        world.cases.peer_review(world.login("pat"), case.id, True, "")
    back = world.cases.peer_review(world.login("pat"), case.id, False, "rank 2 deserves another look")
    assert back.state is CaseState.SEARCHED and back.peer_reviewed_by is None and back.probe_image_held
    case = world.cases.adjudicate(world.login("rita"), case.id, 2, "not_viable")
    assert case.state is CaseState.PEER_REVIEW
    agreed = world.cases.peer_review(world.login("pat"), case.id, True, "agree: none is viable")
    assert agreed.state is CaseState.CLOSED and agreed.outcome is Outcome.NO_VIABLE_MATCH
    assert agreed.peer_reviewed_by == "pat" and agreed.closed_by == "pat"
    assert [r.kind for r in agreed.reviews][-2:] == ["peer_review", "peer_review"]


def test_peer_review_sign_off_needs_a_fresh_password(world: World) -> None:
    first = adjudicate_all(world, world.searched(), "not_viable")
    second = adjudicate_all(world, world.searched(), "not_viable")
    session = world.login("pat")
    world.cases.peer_review(session, first.id, True, "agree")
    with pytest.raises(ReauthenticationRequired, match="signing off a peer review needs your password"):
        world.cases.peer_review(session, second.id, True, "agree")


def test_no_viable_match_probe_data_is_deleted_when_the_peer_reviewer_agrees(world: World) -> None:
    # Found: after the peer reviewer agreed "no viable match", the image and template were still held
    # until someone ran `case close`.
    case = adjudicate_all(world, world.searched(), "not_viable")
    assert probe_template(world.ws, case.id) is not None
    closed = world.cases.peer_review(world.login("pat"), case.id, True, "agree: none is viable")
    assert closed.state is CaseState.CLOSED and closed.outcome is Outcome.NO_VIABLE_MATCH
    assert probe_template(world.ws, case.id) is None and not closed.probe_image_held and closed.probe_quality is None
    assert closed.probe_face is None
    assert all(c.score is None and c.distance is None for c in closed.candidates)
    assert world.ws.query("SELECT image, template FROM case_probes WHERE case_id = ?", (case.id,)) == [(None, None)]
    deleted = world.events("case.probe_deleted")[-1]
    assert deleted.details["rule"] == "no_viable_match_probe_data" and deleted.actor == "pat"
    assert [e.action for e in world.events() if e.subjects.get("case") == case.id][-2:] == [
        "case.peer_review",
        "case.probe_deleted",
    ]
    with pytest.raises(CaseError, match="is closed, not adjudicated"):
        world.cases.close(world.login("alice"), case.id)


def test_closing_with_a_viable_match_keeps_the_images_for_the_report(world: World) -> None:
    case = adjudicate_all(world, world.searched(), "viable")
    with pytest.raises(PermissionRefused, match="closing a case needs the RFR User role"):
        world.cases.close(world.login("pat"), case.id)
    closed = world.cases.close(world.login("alice"), case.id, "lead disseminated")
    assert closed.outcome is Outcome.VIABLE_MATCH and closed.probe_image_held
    assert probe_template(world.ws, case.id) is None  # the template goes on close
    assert world.events("case.probe_deleted")[-1].details["rule"] == "viable_match_probe_template"
    with pytest.raises(CaseError, match="is closed"):
        world.cases.adjudicate(world.login("alice"), case.id, 1, "not_viable")


def test_changing_the_only_viable_decision_sends_the_case_to_peer_review(world: World) -> None:
    case = adjudicate_all(world, world.searched(), "viable")
    assert case.state is CaseState.ADJUDICATED
    case = world.cases.adjudicate(world.login("alice"), case.id, 1, "not_viable")
    assert case.state is CaseState.PEER_REVIEW and case.outcome is None


# ---- withdrawal and expiry (issue 14) ------------------------------------------------------------


@pytest.mark.parametrize("stage", ["draft", "submitted", "approved", "searched"])
def test_a_case_is_withdrawn_before_adjudication_and_its_probe_data_goes(world: World, stage: str) -> None:
    case = {"draft": world.new, "submitted": world.submitted, "approved": world.approved, "searched": world.searched}[
        stage
    ]()
    with pytest.raises(PermissionRefused, match=f"only who completed, submitted or searched case {case.id}"):
        world.cases.withdraw(world.login("bob"), case.id, "not needed")
    with pytest.raises(CaseError, match="give the reason"):
        world.cases.withdraw(world.login("alice"), case.id, "")
    ended = world.cases.withdraw(world.login("alice"), case.id, "the suspect was identified by a witness")
    assert ended.state is CaseState.WITHDRAWN and not ended.probe_image_held and not ended.probe_template_held
    assert ended.ended_reason == "the suspect was identified by a witness" and ended.probe_face is None
    assert world.events("case.probe_deleted")[-1].details["rule"] == "withdrawn_case_probe_data"
    assert world.ws.query("SELECT image, template, face_box FROM case_probes WHERE case_id = ?", (case.id,)) == [
        (None, None, None)
    ]


def test_a_case_with_a_viable_match_cannot_be_withdrawn(world: World) -> None:
    case = world.searched()
    world.cases.adjudicate(world.login("alice"), case.id, 1, "viable", MatchReport.from_mapping(REPORT))
    with pytest.raises(CaseError, match="already has a Viable Match"):
        world.cases.withdraw(world.login("alice"), case.id, "changed my mind")


def test_an_old_draft_cannot_be_submitted_it_expires(world: World) -> None:
    # Found: drafts older than the policy's 7 days could still be submitted.
    case = world.new()
    world.later(days=7, hours=1)
    with pytest.raises(
        CaseError, match="older than the policy's 7 days: it has expired and its Probe Image was deleted"
    ):
        world.cases.submit(world.login("alice"), case.id)
    ended = world.cases.case(case.id)
    assert ended.state is CaseState.EXPIRED and not ended.probe_image_held
    assert world.events("case.expire")[-1].actor == "system"


def test_the_sweep_expires_cases_left_waiting_and_closes_forgotten_viable_matches(world: World) -> None:
    # Found: abandoned cases kept their probe for ever; approved cases never searched stayed approved.
    fresh = world.approved()
    stale_approved = world.approved()
    stale_review = adjudicate_all(world, world.searched(), "not_viable")
    viable = adjudicate_all(world, world.searched(), "viable")
    with world.ws.transaction() as conn:
        old = (world.clock.now - timedelta(days=40)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        for case in (stale_approved, stale_review, viable):
            conn.execute("UPDATE cases SET updated_at = ? WHERE id = ?", (old, case.id))
    report = world.terminal.sweep()
    assert report.cases_expired == [(stale_approved.id, "approved"), (stale_review.id, "peer_review")]
    assert report.cases_closed == [viable.id]
    assert world.cases.case(fresh.id).state is CaseState.APPROVED
    for case in (stale_approved, stale_review):
        ended = world.cases.case(case.id)
        assert ended.state is CaseState.EXPIRED and not ended.probe_image_held
        assert probe_template(world.ws, case.id) is None
    closed = world.cases.case(viable.id)
    assert closed.state is CaseState.CLOSED and closed.closed_by == "system" and closed.probe_image_held
    assert probe_template(world.ws, viable.id) is None
    assert not world.terminal.sweep().anything
    assert world.verify().ok


def test_the_terminal_sweeps_when_it_opens(world: World) -> None:
    case = world.approved()
    world.later(days=8)
    world.terminal.close()
    with reopen(world.root / "ws", clock=world.clock, engine=world.engine, policy=world.policy) as again:
        assert again.cases.case(case.id).state is CaseState.EXPIRED


# ---- reading, export, audit ---------------------------------------------------------------------


def test_reading_casework_is_audited_and_not_for_engineers(world: World) -> None:
    case = world.new()
    with pytest.raises(PermissionRefused, match="casework is seen only by"):
        world.cases.show(world.login("eng1"), case.id)
    assert world.cases.show(world.login("ann"), case.id).id == case.id
    views = world.events("case.view")
    assert [e.actor for e in views] == ["ann"]
    with pytest.raises(CaseError, match="no case 'RFR-999999'"):
        world.cases.show(world.login("ann"), "RFR-999999")


def test_match_report_export(world: World, tmp_path: Path) -> None:
    case = adjudicate_all(world, world.searched(), "viable")
    out = tmp_path / "report.html.age"
    material = world.cases.report_material(world.login("alice"), case.id, str(out))
    text = render_match_report(material, world.policy)
    write_report_file(out, text, ReportSealing(passphrase="passed on by telephone"))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    sealed = out.read_bytes()
    assert sealed.startswith(b"age-encryption.org/v1\n") and b"data:image" not in sealed  # never in plaintext
    assert pyrage.passphrase.decrypt(sealed, "passed on by telephone").decode("utf-8") == text
    with pytest.raises(CaseError, match="already exists"):
        write_report_file(out, text, ReportSealing(passphrase="passed on by telephone"))
    assert text.count("data:image/jpeg;base64,") == 2
    assert world.policy.score_display.intelligence_lead_statement in text
    for needle in (
        "(i) probe image quality",
        "(v) any other subject",
        "Ear shape, nose",
        "OCC/2025/0042",
        world.policy.sha256,
        "uncalibrated: no calibration was measured for this face model",
        "No fingerprints or DNA were left at the scene",  # each Pre-RFR Check
        "Exported from the shop&#x27;s CCTV system by PC 1234",
        f"by alice at {material.exported_at} with {software_version()}",
        "face 1 of 1 in the Probe Image",
        "The Probe Image is within what the evaluation measured",
    ):
        assert needle in text, needle
    assert UNDER_16 not in text
    assert world.events("case.report_export")[-1].details["destination"] == str(out)


def test_the_report_says_no_accuracy_figure_applies_to_an_under_16_probe(world: World) -> None:
    submitted = world.submitted(age_band="13-15")
    world.cases.approve(world.login("ivan"), submitted.id, "proportionate")
    case = adjudicate_all(world, world.cases.search(world.login("alice"), submitted.id).case, "viable")
    text = render_match_report(world.cases.report_material(world.login("alice"), case.id, "x"), world.policy)
    assert UNDER_16 in text and "within what the evaluation measured" not in text


def test_a_report_is_exported_only_after_adjudication(world: World, tmp_path: Path) -> None:
    # Found: a report could be exported before adjudication was complete.
    case = world.searched()
    world.cases.adjudicate(world.login("alice"), case.id, 1, "viable", MatchReport.from_mapping(REPORT))
    with pytest.raises(CaseError, match="is searched: a Match Report is exported only once every Potential Match"):
        world.cases.report_material(world.login("alice"), case.id, str(tmp_path / "x.html"))
    nothing = adjudicate_all(world, world.searched(), "not_viable")
    with pytest.raises(CaseError, match="a Match Report is exported only once"):
        world.cases.report_material(world.login("alice"), nothing.id, str(tmp_path / "y.html"))


def test_the_report_carries_the_recorded_advice(world: World, tmp_path: Path) -> None:
    case = world.submitted(pre_dates_gender_reassignment=True)
    world.cases.record_advice(
        world.login("alice"),
        case.id,
        flag="technical_advice",
        adviser="J. Smith, FRT team",
        given_on="2026-03-01",
        advice="Compare ear and eye-region features; the FRT team see no legal concern with the search.",
    )
    world.cases.approve(world.login("ivan"), case.id, "proportionate")
    case = adjudicate_all(world, world.cases.search(world.login("alice"), case.id).case, "viable")
    text = render_match_report(world.cases.report_material(world.login("alice"), case.id, "x"), world.policy)
    assert "J. Smith, FRT team, 2026-03-01: Compare ear and eye-region features" in text


def test_the_audit_chain_verifies_after_a_whole_case(world: World) -> None:
    case = adjudicate_all(world, world.searched(), "not_viable")
    world.cases.peer_review(world.login("pat"), case.id, True, "agree")
    actions = [e.action for e in world.events() if e.subjects.get("case") == case.id]
    assert actions[:4] == ["case.create", "case.submit", "case.approve", "case.search"]
    assert actions[-2:] == ["case.peer_review", "case.probe_deleted"]
    result = world.verify()
    assert result.ok, result.problems


def test_no_biometric_bytes_reach_the_workspace_files_unencrypted(world: World) -> None:
    case = world.searched()
    template = probe_template(world.ws, case.id)
    assert template is not None
    world.ws.checkpoint()
    needles = {"probe template's first 16 bytes": template.astype("<f4").tobytes()[:16]}
    needles |= image_needles([synthetic_jpeg(3, 9)])  # the Probe Image world.searched() submitted
    for path in world.root.rglob("*"):
        if path.is_file() and "ws" in path.parts:
            data = path.read_bytes()
            assert [what for what, needle in needles.items() if needle in data] == [], path


# ---- monitoring: outcomes by the recorded demographic fields ------------------------------------


def test_outcome_report_counts_decisions_by_recorded_demographics(world: World) -> None:
    viable = adjudicate_all(world, world.searched(), "viable")
    world.cases.close(world.login("alice"), viable.id)
    young = world.approved(age_band="16-17")
    young = world.cases.search(world.login("alice"), young.id).case
    adjudicate_all(world, young, "not_viable")
    world.cases.peer_review(world.login("pat"), young.id, True, "none is viable")
    adjudicate_all(world, world.searched(), "not_viable")  # not reviewed: still open, so in no outcome figure
    man = viable.candidates[0].subject_id
    with world.ws.transaction() as conn:  # the library's recorded fields for its subjects
        conn.execute("UPDATE subjects SET sex = 'female', ic_code = 'IC3'")
        conn.execute("UPDATE subjects SET sex = 'male', ic_code = 'IC1' WHERE id = ?", (man,))

    report = world.cases.outcome_report(world.login("ann"), "2000-01-01", "2100-01-01")
    assert (report.searches, report.cases, report.viable_match_cases) == (3, 2, 1)
    # One population: the Potential Matches of the 2 cases closed, not of the case still open.
    assert report.potential_matches == 2 * CANDIDATES and report.viable_potential_matches == 1
    by_case = {b.field_name: {r.value: r for r in b.rows} for b in report.by_case}
    assert by_case["age_band"]["adult"].outcomes == {"viable_match": 1}
    assert by_case["age_band"]["16-17"].outcomes == {"no_viable_match": 1}
    assert by_case["under_18"]["yes"].records == 1 and by_case["under_16"]["no"].records == 2
    assert all(r.too_small and r.positive is None for r in by_case["age_band"].values())  # 1 case is no rate
    by_match = {b.field_name: {r.value: r for r in b.rows} for b in report.by_potential_match}
    candidates = [c for case in (viable, young) for c in world.cases.case(case.id).candidates]
    males = sum(c.subject_id == man for c in candidates)
    assert males >= 1 and by_match["sex"]["male"].records == males and by_match["ic_code"]["IC1"].records == males
    assert by_match["sex"]["male"].outcomes.get("viable") == 1 and "viable" not in by_match["sex"]["female"].outcomes
    assert sum(r.records for r in by_match["sex"].values()) == 2 * CANDIDATES
    assert sum(r.outcomes.get("viable", 0) for r in by_match["library"].values()) == 1
    payload = report.to_json()
    assert payload["closed_cases"] == 2 and payload["min_records"] == 30
    assert world.events("casework.outcome_report")[-1].actor == "ann"
    # An empty period is empty, not an error; somebody without casework access is refused.
    assert world.cases.outcome_report(world.login("ann"), "1990-01-01", "1991-01-01").cases == 0
    with pytest.raises(PermissionRefused, match="outcome report refused"):
        world.cases.outcome_report(world.login("eng1"), "2000-01-01", "2100-01-01")


@pytest.mark.parametrize(
    ("day", "start", "end"),
    [
        ("2026-01-01", "2026-01-01", "2026-04-01"),
        ("2026-03-31", "2026-01-01", "2026-04-01"),
        ("2026-08-15", "2026-07-01", "2026-10-01"),
        ("2026-12-31", "2026-10-01", "2027-01-01"),
    ],
)
def test_the_default_period_is_the_calendar_quarter(day: str, start: str, end: str) -> None:
    from engine.casework.monitoring import quarter_of

    assert quarter_of(date.fromisoformat(day)) == (date.fromisoformat(start), date.fromisoformat(end))


def test_library_administration_is_in_the_one_signed_log(world: World) -> None:
    # Found: library create/enrol/delete took no named user and were logged to a separate table outside
    # the signed chain (actor os-user:root).
    actions = [(e.actor, e.action) for e in world.events() if e.action.startswith("library.")]
    assert ("eng1", "library.create") in actions and ("eng1", "library.enrol") in actions
    with pytest.raises(PermissionRefused, match="creating a library refused: it needs the Engineer role; alice"):
        world.terminal.libraries.create(world.login("alice"), "mine", "substantive")
    delete_library(world.ws, "other", "eng2", "weeded")
    assert world.events()[-1].action == "library.delete" and world.events()[-1].actor == "eng2"
    assert world.verify().ok
    with pytest.raises(LibraryError, match="already exists"):
        create_library(world.ws, "custody", "substantive", created_by="eng1")


def test_a_match_report_is_only_ever_sealed(tmp_path: Path) -> None:
    """No passphrase and no recipients is refused; a short passphrase too; recipients come from a checked file."""
    with pytest.raises(CaseError, match="only exported encrypted"):
        ReportSealing()
    with pytest.raises(CaseError, match="too short: use at least 12 characters"):
        ReportSealing(passphrase="short")
    assert "passphrase" not in repr(ReportSealing(passphrase="a long enough passphrase"))
    unit = pyrage.x25519.Identity.generate()
    listed = tmp_path / "recipients.txt"
    listed.write_text(f"# disclosure unit\n{unit.to_public()}  # since 2026\n\n")
    sealing = ReportSealing(read_report_recipients(listed))
    assert pyrage.decrypt(sealing.seal(b"<html>report</html>"), [unit]) == b"<html>report</html>"
    listed.write_text("age1notakey\n")
    with pytest.raises(ConfigError, match="line 1: not an age public key"):
        read_report_recipients(listed)
    listed.write_text("# nobody\n")
    with pytest.raises(ConfigError, match="names no recipient"):
        read_report_recipients(listed)
