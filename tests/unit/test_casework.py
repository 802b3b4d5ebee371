"""The case state machine: each rule of the policy, each refusal, retention, audit, the Match Report export.

Runs on a real encrypted workspace with the deterministic synthetic face engine (the real
engine is exercised end to end in tests/integration/test_case_cli.py).
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine import audit
from engine.casework import (
    Case,
    CaseState,
    Casework,
    MatchReport,
    Outcome,
    SubmissionForm,
    probe_template,
    render_match_report,
    write_report_file,
)
from engine.errors import (
    CaseError,
    FormError,
    ImageError,
    LibraryError,
    MatchReportError,
    PermissionRefused,
    ReauthenticationRequired,
)
from engine.faces.types import Face, FaceQuality, QualityMeasure
from engine.library import create_library, enroll_directory
from engine.library.synthetic import SyntheticFaceEngine, load_rgb_with_opencv, synthetic_jpeg, write_subject_folders
from engine.policy import Policy, load_default_policy
from engine.policy.model import Search
from engine.security.keys import WorkspaceKey
from engine.security.users import WORKSPACE_ADMIN, Accounts, ReauthPurpose, ScryptParams, Session
from engine.workspace import Workspace
from tests.plaintext import image_needles

PASSWORD = "correct horse battery"
FAST = ScryptParams(n=2**10)
CANDIDATES = 4
# name: (roles, rank)
PEOPLE: dict[str, tuple[list[str], str | None]] = {
    "alice": (["rfr_user"], "Constable"),
    "bob": (["rfr_user", "approver"], "Inspector"),
    "ivan": (["approver"], "Inspector"),
    "sue": (["approver"], "Superintendent"),
    "bandc": (["approver"], "Police Staff Band A"),
    "pat": (["peer_reviewer"], None),
    "rita": (["rfr_user", "peer_reviewer"], "Sergeant"),
    "eve": (["engineer"], None),
    "ann": (["auditor"], None),
    "tom": (["tasking_officer"], "Sergeant"),
}
REPORT = {
    "factors": {
        "probe_image_quality": {"relevant": True, "assessment": "CCTV still, small face, some blur"},
        "reference_image_quality": {"relevant": False, "assessment": "custody image, frontal, sharp"},
        "time_lapse": {"relevant": True, "assessment": "about three years; weight gain"},
        "lighting": {"relevant": False, "assessment": "even"},
        "other": {"relevant": False, "assessment": "no coverings or eyewear"},
    },
    "reasoning": "Ear shape, nose and eyebrow scar agree; differences explained by time.",
}


@dataclass
class World:
    ws: Workspace
    policy: Policy
    accounts: Accounts
    cases: Casework
    engine: SyntheticFaceEngine

    def login(self, name: str) -> Session:
        return self.accounts.login(name, PASSWORD)

    def form(self, by: str = "alice", **overrides: Any) -> SubmissionForm:
        fields: dict[str, Any] = {
            "completed_by": by,
            "use_case": "identify_unknown_subject",
            "reference": "OCC/2025/0042",
            "offence": "robbery",
            "justification": "Identify the robber of a shop; all other lines of enquiry are exhausted.",
            "pre_checks_tried": "CCTV trawl, PNC, local intelligence",
            "age_band": "adult",
            "libraries": ["custody"],
        }
        fields.update(overrides)
        return SubmissionForm.create(self.policy, **fields)

    def new(self, by: str = "alice", probe: bytes | None = None, **overrides: Any) -> Case:
        return self.cases.new_case(self.login(by), self.form(by, **overrides), probe or synthetic_jpeg(3, 9))

    def approved(self, by: str = "alice", approver: str = "ivan", **overrides: Any) -> Case:
        case = self.new(by, **overrides)
        self.cases.submit(self.login(by), case.id)
        return self.cases.approve(self.login(approver), case.id, "necessary and proportionate")

    def searched(self, by: str = "alice") -> Case:
        case = self.approved(by)
        return self.cases.search(self.login(by), case.id, self.engine, loader=load_rgb_with_opencv).case

    def events(self, action: str | None = None) -> list[audit.AuditEvent]:
        return [e for e in audit.events(self.ws._require_open()) if action is None or e.action == action]

    def verify(self) -> audit.VerifyResult:
        conn = self.ws._require_open()
        return audit.verify(conn, audit.terminal_public_key(conn))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    policy = replace(load_default_policy(), search=Search(candidate_list_size=CANDIDATES))
    ws = Workspace.create(tmp_path / "ws", WorkspaceKey.generate())
    accounts = Accounts(ws._require_open(), policy, scrypt=FAST, transaction=ws.transaction, clock=ws.now)
    for name, (roles, rank) in PEOPLE.items():
        accounts.add_user(name, PASSWORD, roles, rank=rank, by=WORKSPACE_ADMIN)
    engine = SyntheticFaceEngine()
    for name, seed in (("custody", 0), ("other", 7)):
        library = create_library(ws, name, "substantive")
        write_subject_folders(tmp_path / name, {f"{name}-{i}": 2 for i in range(4)}, seed=seed)
        enroll_directory(ws, library, tmp_path / name, engine, loader=load_rgb_with_opencv)
    with ws:
        yield World(ws, policy, accounts, Casework(ws, accounts, policy), engine)


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
    with pytest.raises(PermissionRefused, match="needs the RFR User or Tasking officer / SPOC role; eve holds neither"):
        world.cases.new_case(world.login("eve"), world.form("eve"), synthetic_jpeg(3, 9))
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


# ---- approval -----------------------------------------------------------------------------------


def submitted(world: World, by: str = "alice", **overrides: Any) -> Case:
    case = world.new(by, **overrides)
    return world.cases.submit(world.login(by), case.id)


def test_approval_needs_the_computed_rank(world: World) -> None:
    case = submitted(world, age_band="under13")
    with pytest.raises(PermissionRefused) as caught:
        world.cases.approve(world.login("ivan"), case.id, "proportionate")
    assert caught.value.diagnostics() == "approval refused: case needs Superintendent, you are Inspector"
    approved = world.cases.approve(world.login("sue"), case.id, "proportionate; child at risk")
    assert approved.state is CaseState.APPROVED and approved.decided_rank == "Superintendent"
    assert approved.reviews[-1].reason == "proportionate; child at risk"
    event = world.events("case.approve")[-1]
    assert event.actor == "sue" and event.details["required_rank"] == "Superintendent"


def test_a_staff_equivalent_grade_counts_as_its_rank(world: World) -> None:
    case = submitted(world, age_band="under13")
    assert world.cases.approve(world.login("bandc"), case.id, "proportionate").state is CaseState.APPROVED


def test_nobody_approves_their_own_submission(world: World) -> None:
    case = submitted(world, "bob")
    with pytest.raises(PermissionRefused, match="nobody may approve or reject their own submission"):
        world.cases.approve(world.login("bob"), case.id, "fine")
    with pytest.raises(PermissionRefused, match="nobody may approve or reject their own submission"):
        world.cases.reject(world.login("bob"), case.id, "fine")
    assert world.cases.case(case.id).state is CaseState.SUBMITTED


def test_approval_refusals(world: World) -> None:
    draft = world.new()
    with pytest.raises(CaseError, match="is draft, not submitted"):
        world.cases.approve(world.login("ivan"), draft.id, "fine")
    case = submitted(world)
    with pytest.raises(PermissionRefused, match="needs the Approver role; rita lacks it"):
        world.cases.approve(world.login("rita"), case.id, "fine")
    with pytest.raises(CaseError, match="give the reason"):
        world.cases.approve(world.login("ivan"), case.id, "  ")
    rules = [e.details["rule"] for e in world.events("case.refused")]
    assert any("is draft, not submitted" in r for r in rules) and any("give the reason" in r for r in rules)


def test_approval_needs_a_fresh_password(world: World) -> None:
    first, second = submitted(world), submitted(world)
    session = world.login("ivan")  # signing in counts as one fresh password entry
    world.cases.approve(session, first.id, "fine")
    with pytest.raises(ReauthenticationRequired, match="approving needs your password entered again"):
        world.cases.approve(session, second.id, "fine")
    assert world.cases.case(second.id).state is CaseState.SUBMITTED
    world.accounts.reauthenticate(session, PASSWORD, ReauthPurpose.APPROVE)
    assert world.cases.approve(session, second.id, "fine").state is CaseState.APPROVED


def test_rejection_deletes_the_probe_image_at_once(world: World) -> None:
    case = submitted(world)
    rejected = world.cases.reject(world.login("ivan"), case.id, "not proportionate for a minor theft")
    assert rejected.state is CaseState.REJECTED and not rejected.probe_image_held
    assert world.ws.query("SELECT image FROM case_probes WHERE case_id = ?", (case.id,)) == [(None,)]
    deleted = world.events("case.probe_deleted")[-1]
    assert deleted.subjects == {"case": case.id} and deleted.details["rule"] == "rejected_case_probe_data"
    with pytest.raises(CaseError, match="is rejected: no search runs without a recorded approval"):
        world.cases.search(world.login("alice"), case.id, world.engine, loader=load_rgb_with_opencv)
    with pytest.raises(CaseError, match="give the reason"):
        world.cases.reject(world.login("ivan"), submitted(world).id, None)


# ---- search -------------------------------------------------------------------------------------


def test_no_search_without_approval(world: World) -> None:
    for case in (world.new(), submitted(world)):
        with pytest.raises(CaseError, match="no search runs without a recorded approval that covers it"):
            world.cases.search(world.login("alice"), case.id, world.engine, loader=load_rgb_with_opencv)
        assert probe_template(world.ws, case.id) is None
    assert world.events("case.search") == []


def test_search_runs_on_the_approved_libraries_with_the_policy_list_size(world: World) -> None:
    case = world.approved()
    with pytest.raises(PermissionRefused, match="running a search needs the RFR User role; ivan lacks it"):
        world.cases.search(world.login("ivan"), case.id, world.engine, loader=load_rgb_with_opencv)
    result = world.cases.search(world.login("alice"), case.id, world.engine, loader=load_rgb_with_opencv)
    assert result.case.state is CaseState.SEARCHED and result.top_k == CANDIDATES
    assert len(result.candidates) == CANDIDATES == len(result.case.candidates)
    assert {c.library for c in result.candidates} == {"custody"}  # "other" was not approved
    assert result.libraries == ("custody",) and result.case.libraries_searched == ("custody",)
    stored = probe_template(world.ws, case.id)
    expected = world.engine.analyze(load_rgb_with_opencv(synthetic_jpeg(3, 9), "probe"))[0].embedding
    assert stored is not None and expected is not None and np.array_equal(stored, expected)
    event = world.events("case.search")[-1]
    assert event.details["libraries"] == ["custody"] and event.details["candidate_list_size"] == CANDIDATES
    with pytest.raises(CaseError, match="is searched: no search runs"):
        world.cases.search(world.login("alice"), case.id, world.engine, loader=load_rgb_with_opencv)


def test_a_probe_without_a_face_searches_nothing(world: World) -> None:
    case = world.cases.new_case(world.login("alice"), world.form(), synthetic_jpeg(3, 0, kind="none"))
    world.cases.submit(world.login("alice"), case.id)
    world.cases.approve(world.login("ivan"), case.id, "fine")
    with pytest.raises(ImageError, match="no face found in the Probe Image"):
        world.cases.search(world.login("alice"), case.id, world.engine, loader=load_rgb_with_opencv)
    assert world.cases.case(case.id).state is CaseState.APPROVED


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


def test_quality_warnings_must_be_weighed_in_the_report(world: World) -> None:
    class WarningEngine(SyntheticFaceEngine):
        def analyze(self, rgb: Any, upsample: int = 0, embed: bool = True) -> list[Face]:
            faces = super().analyze(rgb, upsample, embed)
            warning = QualityMeasure("sharpness", 2.0, "laplacian", False, "the face is blurred")
            for face in faces:
                face.quality = FaceQuality((warning,))
            return faces

    case = world.approved()
    world.cases.search(world.login("alice"), case.id, WarningEngine(), loader=load_rgb_with_opencv)
    careless = {
        **REPORT,
        "factors": {**REPORT["factors"], "probe_image_quality": {"relevant": False, "assessment": "ok"}},
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
    assert back.state is CaseState.SEARCHED and back.peer_reviewed_by is None
    case = world.cases.adjudicate(world.login("rita"), case.id, 2, "not_viable")
    assert case.state is CaseState.PEER_REVIEW
    session = world.login("pat")
    agreed = world.cases.peer_review(session, case.id, True, "agree: none is viable")
    assert agreed.state is CaseState.ADJUDICATED and agreed.outcome is Outcome.NO_VIABLE_MATCH
    assert agreed.peer_reviewed_by == "pat" and [r.kind for r in agreed.reviews][-2:] == ["peer_review", "peer_review"]


def test_peer_review_sign_off_needs_a_fresh_password(world: World) -> None:
    first = adjudicate_all(world, world.searched(), "not_viable")
    second = adjudicate_all(world, world.searched(), "not_viable")
    session = world.login("pat")
    world.cases.peer_review(session, first.id, True, "agree")
    with pytest.raises(ReauthenticationRequired, match="signing off a peer review needs your password"):
        world.cases.peer_review(session, second.id, True, "agree")


def test_closing_with_no_viable_match_deletes_the_probe_data_at_once(world: World) -> None:
    case = adjudicate_all(world, world.searched(), "not_viable")
    world.cases.peer_review(world.login("pat"), case.id, True, "agree: none is viable")
    assert probe_template(world.ws, case.id) is not None
    with pytest.raises(PermissionRefused, match="closing a case needs the RFR User role"):
        world.cases.close(world.login("pat"), case.id)
    closed = world.cases.close(world.login("alice"), case.id)
    assert closed.state is CaseState.CLOSED and closed.outcome is Outcome.NO_VIABLE_MATCH
    assert probe_template(world.ws, case.id) is None and not closed.probe_image_held and closed.probe_quality is None
    assert all(c.score is None and c.distance is None for c in closed.candidates)
    assert world.ws.query("SELECT image, template FROM case_probes WHERE case_id = ?", (case.id,)) == [(None, None)]
    deleted = world.events("case.probe_deleted")[-1]
    assert deleted.details["rule"] == "no_viable_match_probe_data" and "probe_template" in deleted.details["deleted"]
    assert [e.action for e in world.events()][-2:] == ["case.close", "case.probe_deleted"]


def test_closing_with_a_viable_match_keeps_the_images_for_the_report(world: World) -> None:
    case = adjudicate_all(world, world.searched(), "viable")
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


# ---- reading, export, audit ---------------------------------------------------------------------


def test_reading_casework_is_audited_and_not_for_engineers(world: World) -> None:
    case = world.new()
    with pytest.raises(PermissionRefused, match="casework is seen only by"):
        world.cases.show(world.login("eve"), case.id)
    assert world.cases.show(world.login("ann"), case.id).id == case.id
    assert world.cases.show(None, case.id).id == case.id
    views = world.events("case.view")
    assert [e.actor for e in views] == ["ann", "workspace-admin"]
    with pytest.raises(CaseError, match="no case 'RFR-999999'"):
        world.cases.show(None, "RFR-999999")


def test_match_report_export(world: World, tmp_path: Path) -> None:
    case = adjudicate_all(world, world.searched(), "viable")
    out = tmp_path / "report.html"
    material = world.cases.report_material(world.login("alice"), case.id, str(out))
    text = render_match_report(material, world.policy)
    write_report_file(out, text)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert text.count("data:image/jpeg;base64,") == 2
    assert world.policy.score_display.intelligence_lead_statement in text
    for needle in (
        "(i) probe image quality",
        "(v) any other subject",
        "Ear shape, nose",
        "OCC/2025/0042",
        world.policy.sha256,
        "uncalibrated: no calibration was measured for this face model",
    ):
        assert needle in text
    with pytest.raises(CaseError, match="already exists"):
        write_report_file(out, text)
    assert world.events("case.report_export")[-1].details["destination"] == str(out)
    nothing = world.searched()
    with pytest.raises(CaseError, match="has no Viable Match"):
        world.cases.report_material(None, nothing.id, str(tmp_path / "x.html"))


def test_the_audit_chain_verifies_after_a_whole_case(world: World) -> None:
    case = adjudicate_all(world, world.searched(), "not_viable")
    world.cases.peer_review(world.login("pat"), case.id, True, "agree")
    world.cases.close(world.login("alice"), case.id)
    actions = [e.action for e in world.events() if e.subjects.get("case") == case.id]
    assert actions[:4] == ["case.create", "case.submit", "case.approve", "case.search"]
    assert actions[-3:] == ["case.peer_review", "case.close", "case.probe_deleted"]
    result = world.verify()
    assert result.ok, result.problems


def test_no_biometric_bytes_reach_the_workspace_files_unencrypted(world: World) -> None:
    case = world.searched()
    template = probe_template(world.ws, case.id)
    assert template is not None
    world.ws.checkpoint()
    needles = {"probe template's first 16 bytes": template.astype("<f4").tobytes()[:16]}
    needles |= image_needles([synthetic_jpeg(3, 9)])  # the Probe Image world.searched() submitted
    for path in world.ws.directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert [what for what, needle in needles.items() if needle in data] == [], path
    with pytest.raises(FormError):
        world.form(justification="")


# ---- monitoring: outcomes by the recorded demographic fields ------------------------------------


def test_outcome_report_counts_decisions_by_recorded_demographics(world: World) -> None:
    viable = adjudicate_all(world, world.searched(), "viable")
    world.cases.close(world.login("alice"), viable.id)
    young = world.approved(age_band="16-17")
    young = world.cases.search(world.login("alice"), young.id, world.engine, loader=load_rgb_with_opencv).case
    adjudicate_all(world, young, "not_viable")
    world.cases.peer_review(world.login("pat"), young.id, True, "none is viable")
    world.cases.close(world.login("alice"), young.id)
    open_case = adjudicate_all(world, world.searched(), "not_viable")  # not closed: no case outcome yet
    man = viable.candidates[0].subject_id
    with world.ws.transaction() as conn:  # the library's recorded fields for its subjects
        conn.execute("UPDATE subjects SET sex = 'female', ic_code = 'IC3'")
        conn.execute("UPDATE subjects SET sex = 'male', ic_code = 'IC1' WHERE id = ?", (man,))

    report = world.cases.outcome_report(world.login("ann"), "2000-01-01", "2100-01-01")
    assert (report.cases, report.viable_match_cases) == (2, 1)
    assert report.potential_matches == 3 * CANDIDATES and report.viable_potential_matches == 1
    by_case = {b.field_name: {r.value: r for r in b.rows} for b in report.by_case}
    assert by_case["age_band"]["adult"].outcomes == {"viable_match": 1}
    assert by_case["age_band"]["16-17"].outcomes == {"no_viable_match": 1}
    assert by_case["under_18"]["yes"].records == 1 and by_case["under_16"]["no"].records == 2
    assert all(r.too_small and r.positive is None for r in by_case["age_band"].values())  # 1 case is no rate
    by_match = {b.field_name: {r.value: r for r in b.rows} for b in report.by_potential_match}
    candidates = [c for case in (viable, young, open_case) for c in world.cases.case(case.id).candidates]
    males = sum(c.subject_id == man for c in candidates)
    assert males >= 1 and by_match["sex"]["male"].records == males and by_match["ic_code"]["IC1"].records == males
    assert by_match["sex"]["male"].outcomes.get("viable") == 1 and "viable" not in by_match["sex"]["female"].outcomes
    assert sum(r.records for r in by_match["sex"].values()) == 3 * CANDIDATES
    assert sum(r.outcomes.get("viable", 0) for r in by_match["library"].values()) == 1
    payload = report.to_json()
    assert payload["closed_cases"] == 2 and payload["min_records"] == 30
    assert world.events("casework.outcome_report")[-1].actor == "ann"
    # An empty period is empty, not an error; somebody without casework access is refused.
    assert world.cases.outcome_report(None, "1990-01-01", "1991-01-01").cases == 0
    with pytest.raises(PermissionRefused, match="outcome report refused"):
        world.cases.outcome_report(world.login("eve"), "2000-01-01", "2100-01-01")


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
    from engine.cli.audit import quarter_of

    assert quarter_of(date.fromisoformat(day)) == (date.fromisoformat(start), date.fromisoformat(end))
