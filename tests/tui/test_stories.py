"""The issue's user stories, end to end: each person signs in at the sign-in screen as themselves, by key.

1. An officer submits a case with its Probe Image; an Inspector approves it with the password again; the
   officer searches, compares, decides every other Potential Match not viable, declares a Viable Match
   with a Match Report (refused on half-cell pictures, accepted on a graphics terminal), exports the
   Match Report to a folder of their choosing and closes the case.
2. A second case ends in "no viable match": a peer reviewer agrees, and the probe data is gone.
3. A locked account (by failed passwords, or by an engineer) is refused at the sign-in screen.
4. The idle lock hides everything; only the same person's password opens it; anyone else signs them out.

After every step the engine is asked what happened: the case's state and the audit log (who did what, in
order), and at the end the audit chain and its signed heads are verified. Last, a check that every screen
of the application is opened by some test.
"""

from __future__ import annotations

import ast
import html
import importlib
import inspect
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyrage
import pytest
from textual.screen import Screen
from textual.widgets import DataTable, Input, Select, TextArea

import rfr_tui
from engine import audit
from engine.casework import FACTORS, CaseState, Decision, Outcome, probe_template
from engine.errors import CaseError, SessionExpired
from engine.security.keys import KdfSpec, WorkspaceKey
from engine.terminal import Terminal, TerminalConfig
from rfr_tui.app import RfrApp
from rfr_tui.dialogs.confirm import ConfirmDialog
from rfr_tui.dialogs.help import HelpDialog
from rfr_tui.dialogs.new_secret import NewSecretDialog
from rfr_tui.dialogs.reason import ReasonDialog
from rfr_tui.screens.adjudication import CandidatesScreen, CompareScreen, MatchReportScreen
from rfr_tui.screens.approval import ApprovalQueueScreen, DecisionScreen
from rfr_tui.screens.base import DeskScreen, RfrScreen
from rfr_tui.screens.cases import CaseScreen, MyCasesScreen
from rfr_tui.screens.home import HomeScreen
from rfr_tui.screens.oversight_base import OversightScreen, TableScreen
from rfr_tui.screens.password import OwnPasswordScreen
from rfr_tui.screens.peer_review import PeerReviewQueueScreen, PeerReviewScreen
from rfr_tui.screens.sign_in import LockScreen, SignInScreen, UnlockScreen
from rfr_tui.screens.submission import NewSubmissionScreen
from rfr_tui.screens.users import UsersScreen
from rfr_tui.widgets import face_image, file_chooser
from rfr_tui.widgets.comparison import ComparisonView
from rfr_tui.widgets.face_image import FaceImage, Renderer
from rfr_tui.widgets.file_chooser import FileChooserDialog, Place, PlaceTree
from rfr_tui.widgets.probe_preview import ProbePreview
from rfr_tui.widgets.state_label import StateLabel
from tests.terminals import FAST, PASSWORD, make_terminal, provision, synthetic_faces
from tests.tui.casework_world import (
    CANDIDATES,
    PEOPLE,
    PROBE_WIDTH,
    REPORT,
    Clock,
    World,
    done,
    face_jpeg,
    fill,
    make_world,
    reason_then_password,
    screen_text,
    shown,
    sign_in,
    signed_in,
    table_rows,
    until,
)
from tests.tui.support import run

SIZE = (120, 40)
TESTS = Path(__file__).parent
REFERENCE = "OCC/2026/0451"
JUSTIFICATION = "Identify the man who robbed a corner shop at knifepoint; every other line of enquiry is exhausted."
CHECKS = (
    ("exhausted", "Briefing and local intelligence systems searched, no trace"),
    ("exhausted", "Circulated to response and neighbourhood teams; nobody knew him"),
    ("exhausted", "Witnesses and the shop's own records checked without result"),
    ("unviable", "No fingerprints or DNA were left at the scene"),
)
APPROVAL = "Necessary and proportionate: a robbery with a knife, every other line of enquiry tried"
REPORT_PASSPHRASE = "givenbytelephone"
PEER_AGREES = "Every Potential Match differs from the probe in ear shape and hairline: no viable match"
# Reads are audited too (every view of a case, a probe, a list); the steps of a story are the changes.
READS = frozenset(
    {"case.view", "case.view_probe", "case.list", "case.view_candidate", "library.list", "user.list", "audit.view"}
)


# ---- the world the stories happen in ---------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The casework world (alice an RFR User, ivan an Inspector, pat a peer reviewer, eng1 and eng2 engineers),
    with a USB stick holding the Probe Image and an empty folder for reports, the only place offered."""
    stick = tmp_path / "stick"
    (stick / "reports").mkdir(parents=True)
    (stick / "cctv-still.jpg").write_bytes(face_jpeg(2, width=PROBE_WIDTH, blur=True))
    monkeypatch.setattr(file_chooser, "default_places", lambda home=None: [Place("USB stick", stick)])
    built = make_world(tmp_path)
    with built.terminal:
        yield built


class Trail:
    """The audit log, read step by step: each ``steps()`` gives the (actor, action) of the changes recorded
    since the last call, in the order they were recorded (reads left out, see ``READS``)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.seen = 0
        self.events: list[audit.AuditEvent] = []

    def new(self) -> list[audit.AuditEvent]:
        with self.world.terminal.ws.reading() as conn:
            found = list(audit.events(conn, first=self.seen + 1))
        if found:
            self.seen = found[-1].seq
        self.events += found
        return found

    def steps(self) -> list[tuple[str, str]]:
        return [(e.actor, e.action) for e in self.new() if e.action not in READS]

    def last(self, action: str) -> audit.AuditEvent:
        return [e for e in self.events if e.action == action][-1]

    def verified(self) -> audit.VerifyResult:
        """The whole log checked against the terminal's audit signing key: every event, link and signed head."""
        with self.world.terminal.ws.reading() as conn:
            return audit.verify(conn, self.world.terminal.ws.audit_public_key)


# ---- driving the application by key ----------------------------------------------------------------


async def sign_out(pilot: Any) -> None:
    await pilot.press("ctrl+q")
    await done(pilot)
    assert isinstance(pilot.app.screen, SignInScreen) and pilot.app.session is None
    assert len(pilot.app.screen_stack) == 2  # the default screen and the sign-in screen: nothing of the last person


def problem(app: Any) -> str:
    return shown(app.screen.query_one("#problem"))


async def press_until(pilot: Any, key: str, condition: Any, what: str, most: int = 10) -> None:
    """Press ``key`` until ``condition()`` holds (moving a cursor to a row), at most ``most`` times."""
    for _ in range(most):
        if condition():
            return
        await pilot.press(key)
        await pilot.pause()
    assert condition(), f"{key} pressed {most} times and still not {what}"


async def choose_in_tree(pilot: Any, label: str) -> None:
    """In the file chooser, the cursor moved down to ``label`` among the place's entries."""
    tree = pilot.app.screen.query_one(PlaceTree)
    for _ in range(200):
        if tree.root.children:
            break
        await pilot.pause(0.02)
    labels = [str(node.label) for node in tree.root.children]
    assert label in labels, labels
    await pilot.press(*["down"] * (labels.index(label) + 1))


async def fill_form(pilot: Any) -> None:
    """The RFR Submission Form, field after field by Tab, as the officer fills it."""
    app = pilot.app
    screen = app.screen
    assert app.focused is screen.query_one("#use_case")
    await pilot.press("enter")  # the first of the policy's use cases: identify an unknown subject
    await pilot.press("tab")
    await fill(pilot, REFERENCE)
    await pilot.press("tab")
    await fill(pilot, "robbery")
    await pilot.press("tab")
    await fill(pilot, JUSTIFICATION)
    for status, detail in CHECKS:
        await pilot.press("tab")
        await pilot.press(*(["right"] if status == "unviable" else []), "enter")
        await pilot.press("tab")
        await fill(pilot, detail)
    await pilot.press("tab")
    assert app.focused is screen.query_one("#probe_source")
    await pilot.press("enter")  # police-originated
    await pilot.press("tab")
    await fill(pilot, "2026-02-27T21:40")
    await pilot.press("tab")
    await fill(pilot, "Exported from the shop's CCTV system by PC 1234")
    await pilot.press("tab")
    assert app.focused is screen.query_one("#age_band")
    await pilot.press("down", "down", "down", "enter")  # adult (18 or over)
    await pilot.press("tab", "tab", "tab")  # past the two subject-factor boxes, left unticked
    await fill(pilot, "Hood up, face uncovered")
    await pilot.press("tab", "tab")
    assert app.focused is screen.query_one("#libraries")
    await pilot.press("space")  # custody


async def fill_match_report(pilot: Any) -> None:
    """Factors (i) to (v) by key: relevant or not (Enter opens the choice, arrows, Enter), Tab, the assessment;
    then the reasoning."""
    screen = pilot.app.screen
    assert isinstance(screen, MatchReportScreen)
    for key in FACTORS:
        factor = REPORT["factors"][key]
        assert pilot.app.focused is screen.query_one(f"#relevant-{key}", Select)
        await pilot.press("enter", *(["down"] if factor["relevant"] else ["down", "down"]), "enter")
        await pilot.press("tab")
        await fill(pilot, factor["assessment"])
        await pilot.press("tab")
    assert pilot.app.focused is screen.query_one("#reasoning")
    await fill(pilot, REPORT["reasoning"])


async def put_match_report(pilot: Any) -> None:
    """The same Match Report put in the form directly (``fill_match_report`` proves the keys, once a story)."""
    screen = pilot.app.screen
    assert isinstance(screen, MatchReportScreen)
    for key in FACTORS:
        screen.query_one(f"#relevant-{key}", Select).value = REPORT["factors"][key]["relevant"]
        screen.query_one(f"#assessment-{key}", Input).value = REPORT["factors"][key]["assessment"]
    screen.query_one("#reasoning", TextArea).text = REPORT["reasoning"]
    await pilot.pause()


# ---- 1. submitted, approved, searched, a Viable Match, its Match Report exported, closed ----------------


def test_an_officer_submits_an_inspector_approves_and_the_officer_finds_and_reports_a_viable_match(
    world: World, tmp_path: Path
) -> None:
    trail = Trail(world)
    trail.new()  # the terminal's making: people and the library
    written = tmp_path / "stick" / "reports" / "RFR-000001-match-report.html.age"
    statement = world.policy.score_display.intelligence_lead_statement

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        app.animation_level = "none"  # Tab scrolls the long form to each field at once
        async with app.run_test(size=SIZE) as pilot:
            # -- alice, the officer: the RFR Submission Form and the Probe Image, submitted.
            await signed_in(pilot, "alice")
            assert trail.steps() == [("alice", "user.sign_in")]
            await pilot.press("n")
            await done(pilot)
            form = app.screen
            assert isinstance(form, NewSubmissionScreen)
            await fill_form(pilot)
            await pilot.press("ctrl+o")
            await pilot.pause()
            assert isinstance(app.screen, FileChooserDialog)
            await choose_in_tree(pilot, "cctv-still.jpg")
            await pilot.press("enter")
            await done(pilot)
            assert app.screen is form
            preview = form.query_one(ProbePreview)
            assert preview.examination is not None and len(preview.examination.faces) == 1 and preview.chosen == 1
            assert "Face 1: ⚠ the face is blurred" in shown(preview.query_one("#probe-faces"))
            assert trail.steps() == [("alice", "case.probe_examined")]
            assert world.cases.case_ids() == []  # nothing is kept until the case is made

            await pilot.press("ctrl+s")
            await done(pilot)
            case_screen = app.screen
            assert isinstance(case_screen, CaseScreen)
            case_id = case_screen.case_id
            case = world.cases.case(case_id)
            assert (case.state, case.created_by, case.required_rank) == (CaseState.SUBMITTED, "alice", "Inspector")
            assert (case.form.reference, case.form.justification) == (REFERENCE, JUSTIFICATION)
            assert case.form.check("biometric_identification").status.value == "unviable"  # type: ignore[union-attr]
            assert case.probe_image_held and case.probe_face is not None
            assert trail.steps() == [("alice", "case.create"), ("alice", "case.submit")]
            assert case_screen.query_one("#case-state", StateLabel).words == "Awaiting approval"
            await sign_out(pilot)
            assert trail.steps() == [("alice", "user.sign_out")]

            # -- ivan, an Inspector: the queue, everything on one screen, approved with his password again.
            await signed_in(pilot, "ivan")
            await pilot.press("a")
            await done(pilot)
            queue = app.screen
            assert isinstance(queue, ApprovalQueueScreen)
            assert [row[0] for row in table_rows(queue.query_one(DataTable))] == [case_id]
            await pilot.press("enter")
            await done(pilot)
            assert isinstance(app.screen, DecisionScreen)
            text = screen_text(app)
            assert "Approval needed from: Inspector or above" in text and REFERENCE in text
            assert app.screen.query_one("#decision-picture", FaceImage).picture is not None
            await pilot.press("a")
            await done(pilot)
            await reason_then_password(pilot, APPROVAL)
            assert app.screen is queue
            approved = world.cases.case(case_id)
            assert (approved.state, approved.decided_by, approved.decided_rank) == (
                CaseState.APPROVED,
                "ivan",
                "Inspector",
            )
            assert trail.steps() == [
                ("ivan", "user.sign_in"),
                ("ivan", "user.reauthenticate"),
                ("ivan", "case.approve"),
            ]
            assert trail.last("case.approve").details["reason"] == APPROVAL
            await sign_out(pilot)
            assert trail.steps() == [("ivan", "user.sign_out")]

            # -- alice again: My cases, the case, the search.
            await signed_in(pilot, "alice")
            await pilot.press("c")
            await done(pilot)
            assert isinstance(app.screen, MyCasesScreen)
            await pilot.press("enter")
            await done(pilot)
            case_screen = app.screen
            assert isinstance(case_screen, CaseScreen) and case_screen.case_id == case_id
            # The search runs in a worker (held here at the face engine): the progress line says what it is
            # doing, and the interface still answers keys; nothing is recorded until it is done.
            engine = world.engine
            assert engine is not None
            engine.release.clear()
            try:
                await pilot.press("r")
                await until(pilot, engine.held.is_set, "the search to reach the face engine")
                assert case_screen.busy and case_screen.query_one("#case-work").display
                assert shown(case_screen.query_one("#case-progress-line")) == (
                    "Finding the face in the Probe Image and searching 1 library..."
                )
                await pilot.press("f1")
                await pilot.pause()
                assert isinstance(app.screen, HelpDialog)
                await pilot.press("escape")
                await pilot.pause()
                assert app.screen is case_screen and world.cases.case(case_id).state is CaseState.APPROVED
                assert trail.steps() == [("alice", "user.sign_in")]
            finally:
                engine.release.set()
            await done(pilot)
            assert not case_screen.busy and not case_screen.query_one("#case-work").display
            searched = world.cases.case(case_id)
            assert searched.state is CaseState.SEARCHED and len(searched.candidates) == CANDIDATES
            assert trail.steps() == [("alice", "case.search")]
            assert trail.last("case.search").details["candidates"] == CANDIDATES
            assert shown(case_screen.query_one("#case-message")) == (
                f"✔ Search complete: {CANDIDATES} Potential Matches from custody. Press j to Adjudicate them."
            )

            # The candidates; the comparison; every other Potential Match not viable, from the comparison.
            await pilot.press("j")
            await done(pilot)
            candidates = app.screen
            assert isinstance(candidates, CandidatesScreen)
            assert statement in screen_text(app)
            await pilot.press("enter")
            await done(pilot)
            compare = app.screen
            assert isinstance(compare, CompareScreen)
            view = compare.query_one(ComparisonView)
            assert view.rank == 1 and view.renderer is Renderer.HALFCELL
            for rank in range(2, CANDIDATES + 1):
                await pilot.press("n", "x")  # the next Potential Match, not viable
                await done(pilot)
                assert view.rank == rank
            assert [c.decision for c in world.cases.case(case_id).candidates] == [None] + [Decision.NOT_VIABLE] * 3
            assert trail.steps() == [("alice", "case.adjudicate")] * 3

            # A Viable Match from half-cell pictures: the engine refuses, and says to use a graphics terminal.
            await pilot.press(*["p"] * (CANDIDATES - 1))
            await done(pilot)
            assert view.rank == 1
            await pilot.press("v")
            await done(pilot)
            report = app.screen
            assert isinstance(report, MatchReportScreen)
            await put_match_report(pilot)  # complete: what stops it is how the pictures were seen
            await pilot.press("ctrl+s")
            await done(pilot)
            assert app.screen is report and "use a graphics terminal" in report.problems["form"]
            assert world.cases.case(case_id).state is CaseState.SEARCHED
            assert trail.steps() == [("alice", "case.refused")]
            assert "half-cell blocks" in trail.last("case.refused").details["rule"]
            await pilot.press("escape", "y")  # leave the form (it asks), and the comparison
            await done(pilot)
            await pilot.press("escape")
            await done(pilot)
            assert app.screen is candidates

            # On a graphics terminal (Sixel, forced here as the adjudication tests do): recorded.
            face_image.use_renderer(Renderer.SIXEL)
            await pilot.press("enter")
            await done(pilot)
            view = app.screen.query_one(ComparisonView)
            assert view.rank == 1 and view.renderer is Renderer.SIXEL
            await pilot.press("v")
            await done(pilot)
            await fill_match_report(pilot)
            await pilot.press("ctrl+s")
            await done(pilot)
            assert isinstance(app.screen, CompareScreen)
            adjudicated = world.cases.case(case_id)
            assert (adjudicated.state, adjudicated.outcome) == (CaseState.ADJUDICATED, Outcome.VIABLE_MATCH)
            assert [c.rank for c in adjudicated.viable] == [1] and adjudicated.viable[0].report is not None
            assert trail.steps() == [("alice", "case.adjudicate"), ("alice", "case.state")]
            declared = trail.last("case.adjudicate")
            assert (declared.details["decision"], declared.details["compared_on"]) == ("viable", "Sixel")
            await pilot.press("escape")
            await done(pilot)
            await pilot.press("escape")
            await done(pilot)
            assert app.screen is case_screen
            assert case_screen.query_one("#case-state", StateLabel).words == "Adjudicated (Viable Match)"

            # The Match Report, to the folder she chooses on the USB stick.
            await pilot.press("e")
            await pilot.pause()
            chooser = app.screen
            assert isinstance(chooser, FileChooserDialog) and chooser.saving
            await choose_in_tree(pilot, "reports")
            await pilot.press("tab", "enter")  # the name suggested
            await pilot.pause()
            assert isinstance(app.screen, NewSecretDialog)  # encrypted with the passphrase she chooses
            await pilot.press(*REPORT_PASSPHRASE, "enter", *REPORT_PASSPHRASE, "enter")
            await done(pilot)
            assert app.screen is case_screen and written.is_file()
            assert f"Match Report written to {written}" in shown(case_screen.query_one("#case-message"))
            assert trail.steps() == [("alice", "case.report_export")]
            assert trail.last("case.report_export").details["destination"] == str(written)

            # Closed: the probe template goes; the Match Report keeps the pictures it needs.
            await pilot.press("c")
            await done(pilot)
            assert isinstance(app.screen, ConfirmDialog)
            await pilot.press("y")
            await done(pilot)
            assert app.screen is case_screen
            assert case_screen.query_one("#case-state", StateLabel).words == "Closed (Viable Match)"
            closed = world.cases.case(case_id)
            assert closed.state is CaseState.CLOSED and closed.closed_by == "alice"
            assert probe_template(world.terminal.ws, case_id) is None and not closed.probe_template_held
            assert trail.steps() == [("alice", "case.close"), ("alice", "case.probe_deleted")]
            await sign_out(pilot)
            assert trail.steps() == [("alice", "user.sign_out")]

    run(body)
    # The exported Match Report: the owner's alone, and saying what the officer said, factor by factor.
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    sealed = written.read_bytes()
    assert sealed.startswith(b"age-encryption.org/v1\n") and b"data:image" not in sealed  # nothing in plaintext
    text = pyrage.passphrase.decrypt(sealed, REPORT_PASSPHRASE).decode("utf-8")  # as age -d opens it
    assert "RFR Match Report: case RFR-000001" in text and html.escape(REFERENCE) in text
    assert html.escape(statement) in text
    viable = world.cases.case("RFR-000001").viable[0]
    assert "<h2>Viable Match: Potential Match ranked 1</h2>" in text and html.escape(viable.subject) in text
    for key, title in FACTORS.items():
        factor = REPORT["factors"][key]
        relevant = "relevant" if factor["relevant"] else "not relevant"
        assert f"<tr><th>{html.escape(title)}</th><td>{relevant}</td><td>{html.escape(factor['assessment'])}</td>" in (
            text
        ), key
    assert f"<p>{html.escape(REPORT['reasoning'])}</p>" in text
    assert 'src="data:image/' in text  # the probe and reference pictures travel inside the report, nowhere else
    # The whole story, in the order it happened, each step by the person who took it, under signed heads.
    story = [(e.actor, e.action) for e in trail.events if e.action not in READS]
    print(story)
    verdict = trail.verified()
    assert verdict.ok, verdict.problems
    assert verdict.signed_through == trail.seen


# ---- 2. a second case: no Viable Match, peer reviewed, its probe data gone --------------------------------


def test_a_case_with_no_viable_match_is_peer_reviewed_and_its_probe_data_is_deleted(world: World) -> None:
    # Submitted and approved through the engine: story 1 walks those screens.
    case = world.approved(reference="OCC/2026/0517")
    trail = Trail(world)
    trail.new()

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            # -- alice searches, and decides every Potential Match not viable; the last one asks first.
            await signed_in(pilot, "alice")
            await pilot.press("c")
            await done(pilot)
            await pilot.press("enter")
            await done(pilot)
            case_screen = app.screen
            assert isinstance(case_screen, CaseScreen) and case_screen.case_id == case.id
            await pilot.press("r")
            await done(pilot)
            assert world.cases.case(case.id).state is CaseState.SEARCHED
            assert trail.steps() == [("alice", "user.sign_in"), ("alice", "case.search")]
            await pilot.press("j")
            await done(pilot)
            assert isinstance(app.screen, CandidatesScreen)
            await pilot.press("x", "down", "x", "down", "x", "down", "x")
            await done(pilot)
            assert isinstance(app.screen, ConfirmDialog)
            assert f"sends case {case.id} to peer review" in screen_text(app)
            assert [c.decision for c in world.cases.case(case.id).candidates] == [Decision.NOT_VIABLE] * 3 + [None]
            await pilot.press("y")
            await done(pilot)
            assert world.cases.case(case.id).state is CaseState.PEER_REVIEW
            assert trail.steps() == [("alice", "case.adjudicate")] * 4 + [("alice", "case.state")]
            assert trail.last("case.state").details["after"] == "peer_review"
            await pilot.press("escape")
            await done(pilot)
            assert app.screen is case_screen
            assert case_screen.query_one("#case-state", StateLabel).words == "Awaiting peer review"
            assert case_screen.query(FaceImage)  # the Probe Image is still held, until the review
            await sign_out(pilot)
            assert trail.steps() == [("alice", "user.sign_out")]

            # -- pat, a peer reviewer: the queue, the same comparison, agreement signed off with the password.
            await signed_in(pilot, "pat")
            await pilot.press("p")
            await done(pilot)
            queue = app.screen
            assert isinstance(queue, PeerReviewQueueScreen)
            assert [row[0] for row in table_rows(queue.query_one(DataTable))] == [case.id]
            await pilot.press("enter")
            await done(pilot)
            review = app.screen
            assert isinstance(review, PeerReviewScreen)
            assert review.query_one(ComparisonView).loaded
            await pilot.press("a")
            await done(pilot)
            assert isinstance(app.screen, ConfirmDialog) and "deleted at once" in screen_text(app)
            await pilot.press("y")
            await done(pilot)
            await reason_then_password(pilot, PEER_AGREES)
            assert app.screen is queue and "No adjudication is waiting for a peer review." in screen_text(app)
            closed = world.cases.case(case.id)
            assert (closed.state, closed.outcome, closed.peer_reviewed_by) == (
                CaseState.CLOSED,
                Outcome.NO_VIABLE_MATCH,
                "pat",
            )
            steps = trail.steps()
            assert steps[:3] == [("pat", "user.sign_in"), ("pat", "user.reauthenticate"), ("pat", "case.peer_review")]
            assert ("pat", "case.probe_deleted") in steps
            assert trail.last("case.peer_review").details["reason"] == PEER_AGREES
            assert trail.last("case.probe_deleted").details["rule"] == "no_viable_match_probe_data"
            await sign_out(pilot)
            assert trail.steps() == [("pat", "user.sign_out")]

            # -- alice opens the case again: nothing of the Probe Image is left to show.
            await signed_in(pilot, "alice")
            await pilot.press("c")
            await done(pilot)
            await pilot.press("enter")
            await done(pilot)
            assert isinstance(app.screen, CaseScreen)
            assert not app.screen.query(FaceImage)
            assert "The Probe Image and everything derived from it were deleted" in screen_text(app)
            assert trail.steps() == [("alice", "user.sign_in")]
            await sign_out(pilot)
            assert trail.steps() == [("alice", "user.sign_out")]

    run(body)
    closed = world.cases.case(case.id)
    assert not closed.probe_image_held and not closed.probe_template_held
    assert probe_template(world.terminal.ws, case.id) is None
    # The store itself, not the screen: the probe's row keeps only its hash and length (the record of what
    # was searched); the picture, the face found in it, its template and the candidates' scores are gone.
    ws = world.terminal.ws
    probe_row = ws.query_one(
        "SELECT image, media_type, template, quality, face_box, face_landmarks, sha256 FROM case_probes "
        "WHERE case_id = ?",
        (case.id,),
    )
    assert probe_row is not None and tuple(probe_row[:6]) == (None,) * 6 and probe_row[6]
    with ws.reading() as conn:
        candidates = conn.execute(
            "SELECT score, distance, reference_image, decision FROM case_candidates WHERE case_id = ? ORDER BY rank",
            (case.id,),
        ).fetchall()
    assert [tuple(c) for c in candidates] == [(None, None, None, "not_viable")] * CANDIDATES
    assert all(c.score is None and c.distance is None for c in closed.candidates)
    with pytest.raises(CaseError, match="no longer holds its Probe Image"):
        world.cases.probe(world.login("alice"), case.id)
    assert trail.steps()[-1] == ("alice", "user.sign_in")  # looking for the probe afterwards changed nothing
    verdict = trail.verified()
    assert verdict.ok and verdict.signed_through == trail.seen, verdict.problems


# ---- 3. a locked account is refused at the sign-in screen -------------------------------------------------


def one_plain_sentence(text: str) -> bool:
    """One line, one sentence (clauses joined by ':' or ';'), no markup, no traceback."""
    return bool(text) and "\n" not in text and ". " not in text and "Traceback" not in text and "[" not in text


@pytest.fixture
def people(tmp_path: Path) -> Iterator[World]:
    """The casework world's people on a terminal without libraries (for the stories that need no case)."""
    clock = Clock()
    terminal = make_terminal(tmp_path / "ws", clock=clock)
    provision(terminal, PEOPLE)
    with terminal:
        yield World(terminal, terminal.policy, clock, tmp_path)


def test_an_officer_who_fails_her_password_too_often_is_locked_out_and_refused(people: World) -> None:
    world = people
    lockout = world.policy.lockout
    trail = Trail(world)
    trail.new()

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, SignInScreen)
            await fill(pilot, "alice")
            await pilot.press("enter")
            for attempt in range(1, lockout.max_failed_attempts + 1):
                assert app.focused is screen.query_one("#password", Input)  # the name stays; the password again
                await fill(pilot, f"not my password, try {attempt}")
                await pilot.press("enter")
                await done(pilot)
                assert app.screen is screen and app.session is None
                if attempt < lockout.max_failed_attempts:
                    assert problem(app) == "wrong username or password"
                    assert trail.steps() == [("alice", "user.sign_in_refused")]
                    assert trail.last("user.sign_in_refused").details["reason"] == "wrong password"
            assert problem(app).startswith("wrong password: account 'alice' is now locked for ")
            assert trail.steps() == [("alice", "user.locked_out")]
            assert trail.last("user.locked_out").details["failed_attempts"] == lockout.max_failed_attempts

            # Her own password now: refused, in one plain sentence, and recorded.
            await fill(pilot, PASSWORD)
            await pilot.press("enter")
            await done(pilot)
            assert app.screen is screen and app.session is None
            said = problem(app)
            assert said.startswith("account 'alice' is locked until ") and "ask an engineer" in said
            assert one_plain_sentence(said), said
            assert trail.steps() == [("alice", "user.sign_in_refused")]
            assert trail.last("user.sign_in_refused").details["reason"] == "locked out"

    run(body)
    assert world.terminal.accounts.get_user("alice").is_locked(world.clock.now)


def test_an_engineer_locks_an_officers_account_and_her_next_sign_in_is_refused(people: World) -> None:
    world = people
    elsewhere = world.terminal.sign_in("alice", PASSWORD)  # a session of hers already open
    trail = Trail(world)
    trail.new()

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            await signed_in(pilot, "eng1")
            await pilot.press("u")
            await done(pilot)
            users = app.screen
            assert isinstance(users, UsersScreen)
            await press_until(pilot, "down", lambda: users.selected_user() == "alice", "on alice's account")
            await pilot.press("l")
            await done(pilot)
            assert isinstance(app.screen, ReasonDialog)
            await fill(pilot, "Suspended pending a professional standards inquiry")
            await pilot.press("enter")
            await done(pilot)
            assert app.screen is users
            assert "Locked alice" in shown(users.query_one("#users-note"))
            assert trail.steps() == [("eng1", "user.sign_in"), ("eng1", "user.lock")]
            locked = trail.last("user.lock")
            assert locked.subjects == {"user": "alice"}
            assert locked.details["reason"] == "Suspended pending a professional standards inquiry"
            assert not world.terminal.accounts.is_signed_in(elsewhere)  # her open session ended with the lock
            await sign_out(pilot)
            assert trail.steps() == [("eng1", "user.sign_out")]

            await sign_in(pilot, "alice")
            assert isinstance(app.screen, SignInScreen) and app.session is None
            said = problem(app)
            assert said == "account 'alice' is locked; ask an engineer to unlock it"
            assert one_plain_sentence(said)
            assert trail.steps() == [("alice", "user.sign_in_refused")]
            assert trail.last("user.sign_in_refused").details["reason"] == "locked by an engineer"

    run(body)


# ---- 4. the idle lock ------------------------------------------------------------------------------------


class Ticks:
    """The application's monotonic clock (seconds), moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class QuickIdleApp(RfrApp):
    """The application, checking for idleness often (it checks every few seconds; the clock is the test's)."""

    IDLE_CHECK_SECONDS = 0.02


IVAN_OWN = "a quite different passphrase, 7"


def test_the_idle_lock_hides_everything_and_only_the_same_person_unlocks_it(world: World) -> None:
    case = world.submitted()
    world.terminal.accounts.change_password("ivan", PASSWORD, IVAN_OWN)  # another person, their own password
    idle = world.policy.sessions.idle_timeout_minutes * 60
    ticks = Ticks()
    trail = Trail(world)
    trail.new()

    async def body() -> None:
        app = QuickIdleApp(terminal=world.terminal, clock=ticks)

        async def idle_for(seconds: float) -> None:
            ticks.now += seconds  # the application's clock, and the terminal's
            world.later(seconds=seconds)
            await pilot.pause(0.15)

        async with app.run_test(size=SIZE) as pilot:
            await signed_in(pilot, "alice")
            first = app.session
            await pilot.press("c")
            await done(pilot)
            await pilot.press("enter")
            await done(pilot)
            case_screen = app.screen
            assert isinstance(case_screen, CaseScreen)
            picture = case_screen.query_one("#case-probe-picture", FaceImage)
            assert picture.picture is not None and not picture.concealed
            drawn = app.export_screenshot()
            assert case.id in drawn and case.form.reference in drawn
            trail.new()

            # One second short of the policy's idle time: nothing happens. At it: locked.
            await idle_for(idle - 1)
            assert app.screen is case_screen and not app.locked
            await idle_for(1)
            lock = app.screen
            assert isinstance(lock, LockScreen) and app.locked
            assert picture.concealed  # the pictures are out of the screen (and the terminal's memory)
            drawn = app.export_screenshot()
            assert case.id not in drawn and case.form.reference not in drawn and "Probe" not in drawn
            assert "alice, type your password to go on" in screen_text(app)
            assert app.focused is lock.query_one("#password", Input)
            assert first is not None and _expired(world, first)  # the terminal ended it for idleness too

            # Another person's password does not open it (it is checked as alice's, and counts against hers).
            await fill(pilot, IVAN_OWN)
            await pilot.press("enter")
            await done(pilot)
            assert app.screen is lock and app.locked and picture.concealed
            assert problem(app) == "wrong username or password"
            assert trail.steps() == [("alice", "user.sign_in_refused")]

            # Hers does: the case and its picture come back, on a fresh session.
            await fill(pilot, PASSWORD)
            await pilot.press("enter")
            await done(pilot)
            assert app.screen is case_screen and not app.locked and not picture.concealed
            assert app.session is not None and app.session.username == "alice" and app.session != first
            assert trail.steps() == [("alice", "user.sign_in")]

            # Idle again; someone else at the terminal signs her out (ctrl+o) and signs in as themselves.
            await idle_for(idle)
            assert isinstance(app.screen, LockScreen)
            second = app.session
            await pilot.press("ctrl+o")
            await done(pilot)
            assert isinstance(app.screen, SignInScreen) and app.session is None
            assert len(app.screen_stack) == 2 and not list(app.query(FaceImage))
            assert second is not None and not world.terminal.accounts.is_signed_in(second)
            assert trail.steps() == [("alice", "user.sign_out")]
            await signed_in(pilot, "ivan", IVAN_OWN)
            assert "Home: ivan" in screen_text(app)
            assert trail.steps() == [("ivan", "user.sign_in")]

    run(body)
    verdict = trail.verified()
    assert verdict.ok and verdict.signed_through == trail.seen, verdict.problems


def _expired(world: World, session: Any) -> bool:
    """Whether the terminal itself ended ``session`` for idleness (its own check, with the same policy)."""
    try:
        world.terminal.accounts.check(session)
    except SessionExpired as exc:
        return "without activity" in exc.diagnostics()
    return False


# ---- the two gate screens no other story opens --------------------------------------------------------


PASSPHRASE = "the terminal's own passphrase, typed at boot"


def test_a_terminal_opened_with_a_passphrase_is_unlocked_at_boot_then_people_sign_in(tmp_path: Path) -> None:
    config = TerminalConfig(
        workspace=tmp_path / "ws", audit_key_file=tmp_path / "ws.audit-key", key_file=None, name="TEST-TERMINAL"
    )
    key = WorkspaceKey.from_passphrase(PASSPHRASE, KdfSpec.new_scrypt(n=2**10))
    with Terminal.create(config, key, faces=synthetic_faces(), scrypt=FAST) as terminal:
        provision(terminal, {})

    def open_terminal(cfg: TerminalConfig, given: WorkspaceKey | None) -> Terminal:
        return Terminal.open(cfg, key=given, faces=synthetic_faces(), scrypt=FAST, sweep=False)

    async def body() -> None:
        app = RfrApp(config=config, open_terminal=open_terminal)
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, UnlockScreen)
            await fill(pilot, "not the passphrase")
            await pilot.press("enter")
            await done(pilot)
            assert app.screen is screen and app.terminal_or_none is None
            assert one_plain_sentence(problem(app)), problem(app)
            await fill(pilot, PASSPHRASE)
            await pilot.press("enter")
            await done(pilot)
            assert app.terminal_or_none is not None
            await signed_in(pilot, "eng1")

    run(body)


def test_a_person_changes_their_own_password_from_the_home_screen(people: World) -> None:
    world = people
    new = "a new password of her own, 2026"
    trail = Trail(world)
    trail.new()

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            await signed_in(pilot, "alice")
            await pilot.press("w")
            await done(pilot)
            screen = app.screen
            assert isinstance(screen, OwnPasswordScreen)
            await fill(pilot, PASSWORD)
            await pilot.press("enter")
            await fill(pilot, new)
            await pilot.press("enter")
            await fill(pilot, new + " (typo)")
            await pilot.press("enter")
            await done(pilot)
            assert app.screen is screen and "differ" in shown(screen.query_one("#problem"))
            for typed in (PASSWORD, new, new):
                await fill(pilot, typed)
                await pilot.press("enter")
            await done(pilot)
            assert isinstance(app.screen, HomeScreen)
            assert trail.steps() == [("alice", "user.sign_in"), ("alice", "user.password_change")]
            await sign_out(pilot)
            await signed_in(pilot, "alice", new)

    run(body)


# ---- every screen is opened by some test ------------------------------------------------------------------

PACKAGE = Path(rfr_tui.__file__).parent
# Bases shared by screens, never shown on their own.
BASES: frozenset[type] = frozenset({DeskScreen, RfrScreen, OversightScreen, TableScreen})


def screen_classes() -> list[type[Screen[Any]]]:
    """Every screen and dialog class defined anywhere in ``rfr_tui`` (screens/, dialogs/, widgets/ and the
    rest), not the private bases (``_Gate``) nor ``BASES``."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":  # starts the application on import
            continue
        module = importlib.import_module(".".join(p for p in parts if p != "__init__"))
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, Screen)
                and value.__module__ == module.__name__
                and not name.startswith("_")
                and value not in BASES
            ):
                found.append(value)
    return found


def screens_asserted_in_tests() -> set[str]:
    """Names a TUI test checks the screen in front against (``isinstance(app.screen, X)``, or ``(X, Y)``):
    the test got that screen open. An import, or a mention in a string, does not count."""
    asserted: set[str] = set()
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"):
                continue
            if len(node.args) != 2:
                continue
            kinds = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
            asserted.update(
                k.id if isinstance(k, ast.Name) else k.attr for k in kinds if isinstance(k, ast.Name | ast.Attribute)
            )
    return asserted


def test_every_screen_of_the_application_is_opened_by_a_test() -> None:
    screens = screen_classes()
    names = {s.__name__ for s in screens}
    # The finder finds screens, dialogs and the file chooser wherever they live (a finder that found nothing passes).
    assert names >= {"SignInScreen", "LockScreen", "HomeScreen", "CaseScreen", "PasswordDialog", "FileChooserDialog"}
    assert len(names) == len(screens), "two screen classes share a name: the check below cannot tell them apart"
    asserted = screens_asserted_in_tests()
    untested = sorted(f"{s.__module__}.{s.__name__}" for s in screens if s.__name__ not in asserted)
    assert untested == [], f"screens no test in tests/tui opens and checks: {untested}"
