"""Adjudication, the comparison view and peer review, driven by key through the real screens.

The officer decides several Potential Matches not viable from the list, then declares a Viable
Match with a Match Report: refused from half-cell pictures (the engine's rule, its sentence on
screen), accepted once the test forces a graphics renderer, after the engine has refused an
assessment of "x" beside the factor it names. A case with no Viable Match goes to peer review,
and the peer reviewer's agreement closes it and leaves no probe data. Each step is checked on the
engine: the case's state, the audit log, the probe template.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Select, TextArea

from engine.casework import FACTORS, CaseState, Decision, Outcome, probe_template
from engine.policy.model import ScoreDisplay
from rfr_tui.app import RfrApp
from rfr_tui.dialogs.confirm import ConfirmDialog
from rfr_tui.screens.adjudication import CandidatesScreen, CompareScreen, MatchReportScreen
from rfr_tui.screens.approval import QueueTable
from rfr_tui.screens.peer_review import PeerReviewQueueScreen, PeerReviewScreen
from rfr_tui.widgets import face_image
from rfr_tui.widgets.candidate_list import CandidateTable
from rfr_tui.widgets.comparison import ComparisonView
from rfr_tui.widgets.face_image import FaceImage, Renderer
from rfr_tui.widgets.state_label import StateLabel
from tests.terminals import PASSWORD, provision
from tests.tui.casework_world import (
    REPORT,
    World,
    column_labels,
    done,
    fill,
    make_world,
    reason_then_password,
    screen_text,
    shown,
    table_rows,
)
from tests.tui.support import run

SIZE = (120, 40)
THEMES = pytest.mark.parametrize("high_contrast", [False, True], ids=["default", "high-contrast"])
UNDER_REVIEW = "Why I agree: every candidate differs in ear shape and hairline from the probe"


@pytest.fixture
def world(tmp_path: Path) -> Any:
    world = make_world(tmp_path)
    with world.terminal:
        yield world


async def open_candidates(app: RfrApp, pilot: Any, world: World, case_id: str, who: str = "alice") -> CandidatesScreen:
    app.signed_in(world.terminal.sign_in(who, PASSWORD))
    await done(pilot)
    app.push_screen(CandidatesScreen(case_id))
    await done(pilot)
    assert isinstance(app.screen, CandidatesScreen)
    return app.screen


async def choose(pilot: Any, relevant: bool) -> None:
    """In a Select still blank: Enter opens it, the arrow moves past the prompt, Enter chooses."""
    await pilot.press("enter", *(["down"] if relevant else ["down", "down"]), "enter")


async def fill_report(pilot: Any, report: dict[str, Any]) -> None:
    """The Match Report form as a person fills it: factor (i) by key (choose, Tab, type, Tab), the rest put in.

    Tab visits every field in the form's order (checked on the focus chain), so the keys that fill
    factor (i) fill any factor; pressing them all would cost this test seconds.
    """
    screen = pilot.app.screen
    assert isinstance(screen, MatchReportScreen)
    chain = [w.id for w in screen.focus_chain if w.id and (w.id.startswith(("relevant-", "assessment-")))]
    assert chain == [f"{kind}-{key}" for key in FACTORS for kind in ("relevant", "assessment")]
    assert [w.id for w in screen.focus_chain][-3:] == ["reasoning", "record", "report-comparison"]
    first = next(iter(FACTORS))
    assert pilot.app.focused is screen.query_one(f"#relevant-{first}", Select)
    await choose(pilot, report["factors"][first]["relevant"])
    await pilot.press("tab")
    await fill(pilot, report["factors"][first]["assessment"])
    await pilot.press("tab")
    assert pilot.app.focused is screen.query_one(f"#relevant-{list(FACTORS)[1]}", Select)
    rest = {key: value for key, value in report["factors"].items() if key != first}
    await put_report(pilot, {"factors": rest, "reasoning": report["reasoning"]})


async def put_report(pilot: Any, report: dict[str, Any]) -> None:
    """The Match Report form filled in directly (fill_report does it by key: once per test is proof enough)."""
    screen = pilot.app.screen
    assert isinstance(screen, MatchReportScreen)
    for key in report["factors"]:
        screen.query_one(f"#relevant-{key}", Select).value = report["factors"][key]["relevant"]
        screen.query_one(f"#assessment-{key}", Input).value = report["factors"][key]["assessment"]
    screen.query_one("#reasoning", TextArea).text = report["reasoning"]
    await pilot.pause()


def decisions(world: World, case_id: str) -> list[Decision | None]:
    return [c.decision for c in world.cases.case(case_id).candidates]


def test_an_officer_adjudicates_by_key_and_a_viable_match_needs_pictures_fit_to_judge(world: World) -> None:
    case = world.searched()
    ranks = [c.rank for c in case.candidates]
    assert ranks == [1, 2, 3, 4]

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_candidates(app, pilot, world, case.id)
            table = screen.query_one(CandidateTable)
            assert column_labels(table) == ["Rank", "Subject reference", "Library", "Image", "Similarity", "Decision"]
            assert [row[0] for row in table_rows(table)] == ["1", "2", "3", "4"]
            assert all(row[-1] == "not yet adjudicated" for row in table_rows(table))
            text = screen_text(app)
            assert world.policy.score_display.intelligence_lead_statement in text
            assert " ".join(world.policy.score_display.rank_caution.split()) in text
            assert "best" not in text.lower()

            # Not viable, by key, on Potential Matches 2, 3 and 4.
            await pilot.press("down", "x", "down", "x", "down", "x")
            await done(pilot)
            assert decisions(world, case.id) == [None, Decision.NOT_VIABLE, Decision.NOT_VIABLE, Decision.NOT_VIABLE]
            assert [row[-1] for row in table_rows(table)][1:] == ["not viable (alice)"] * 3
            adjudicated = world.events("case.adjudicate", case_id=case.id)
            assert [(e.details["candidate"], e.details["decision"]) for e in adjudicated] == [
                (2, "not_viable"),
                (3, "not_viable"),
                (4, "not_viable"),
            ]
            assert {e.details["compared_on"] for e in adjudicated} == {"half-cell blocks"}
            assert screen.query_one("#adjudication-progress", StateLabel).words.startswith(
                "3 of 4 Potential Matches adjudicated"
            )

            # The comparison of Potential Match 1, in half-cell blocks: says it is unfit to judge.
            await pilot.press("up", "up", "up", "enter")
            await done(pilot)
            compare = app.screen
            assert isinstance(compare, CompareScreen)
            view = compare.query_one(ComparisonView)
            assert view.rank == 1 and view.loaded
            assert view.query_one("#comparison-probe", FaceImage).picture is not None
            assert view.query_one("#comparison-candidate", FaceImage).picture is not None
            renderer = view.query_one("#comparison-renderer", StateLabel)
            assert renderer.words == Renderer.HALFCELL.notice
            assert "Quality warnings: the face is blurred." in shown(view.query_one("#comparison-probe-notes"))
            assert [e.details["candidate"] for e in world.events("case.view_candidate")] == [1]

            # A complete Match Report is refused: the pictures are too coarse (the engine's rule and words).
            await pilot.press("v")
            await done(pilot)
            assert isinstance(app.screen, MatchReportScreen)
            await fill_report(pilot, REPORT)
            await pilot.press("ctrl+s")
            await done(pilot)
            report_screen = app.screen
            assert isinstance(report_screen, MatchReportScreen)
            problem = report_screen.problems["form"]
            assert "cannot be declared from pictures drawn in half-cell blocks" in problem
            assert "use a graphics terminal" in problem
            assert world.cases.case(case.id).state is CaseState.SEARCHED
            refused = world.events("case.refused", case_id=case.id)[-1]
            assert refused.details["attempted"] == "adjudicate" and "half-cell blocks" in refused.details["rule"]

            # Leave the form (it asks first), and the comparison.
            await pilot.press("escape")
            await done(pilot)
            assert isinstance(app.screen, ConfirmDialog)
            await pilot.press("y")
            await done(pilot)
            assert app.screen is compare
            await pilot.press("escape")
            await done(pilot)
            assert app.screen is screen

            # On a graphics terminal (forced here), the comparison says the pictures are fit to judge.
            face_image.use_renderer(Renderer.SIXEL)
            await pilot.press("enter")
            await done(pilot)
            view = app.screen.query_one(ComparisonView)
            assert view.renderer is Renderer.SIXEL
            assert view.query_one("#comparison-renderer", StateLabel).words == Renderer.SIXEL.notice
            await pilot.press("v")
            await done(pilot)

            # "x" as an assessment: refused beside the factor the engine names.
            await put_report(pilot, replace_assessment(REPORT, "reference_image_quality", "x"))
            await pilot.press("ctrl+s")
            await done(pilot)
            report_screen = app.screen
            assert isinstance(report_screen, MatchReportScreen)
            assert list(report_screen.problems) == ["reference_image_quality"]
            assert "'x' is not an answer" in report_screen.problems["reference_image_quality"]
            assert app.focused is report_screen.query_one("#assessment-reference_image_quality", Input)
            assert world.cases.case(case.id).state is CaseState.SEARCHED

            # Corrected in place: the Viable Match is recorded.
            field = report_screen.query_one("#assessment-reference_image_quality", Input)
            field.clear()
            await fill(pilot, "custody image, frontal and sharp, taken in 2023")
            await pilot.press("ctrl+s")
            await done(pilot)
            assert isinstance(app.screen, CompareScreen)
            adjudicated_case = world.cases.case(case.id)
            assert adjudicated_case.state is CaseState.ADJUDICATED
            assert adjudicated_case.outcome is Outcome.VIABLE_MATCH
            viable = adjudicated_case.viable[0]
            assert viable.rank == 1 and viable.report is not None
            assert viable.report.factor("reference_image_quality").assessment.startswith("custody image, frontal")
            last = world.events("case.adjudicate", case_id=case.id)[-1]
            assert (last.details["candidate"], last.details["decision"], last.details["compared_on"]) == (
                1,
                "viable",
                "Sixel",
            )
            assert last.details["relevant_factors"] == ["probe_image_quality", "time_lapse"]
            state = world.events("case.state", case_id=case.id)[-1]
            assert (state.details["before"], state.details["after"]) == ("searched", "adjudicated")
            decision_line = app.screen.query_one("#compare-decision", StateLabel).words
            assert "case RFR-000001 is adjudicated" in decision_line and "export the Match Report" in decision_line

            await pilot.press("escape")
            await done(pilot)
            assert app.screen is screen
            assert table_rows(table)[0][-1] == "Viable Match, Match Report recorded (alice)"

    run(body)


def replace_assessment(report: dict[str, Any], key: str, text: str) -> dict[str, Any]:
    factors = {k: dict(v) for k, v in report["factors"].items()}
    factors[key]["assessment"] = text
    return {"factors": factors, "reasoning": report["reasoning"]}


def test_the_comparison_view_zooms_overlays_and_switches_by_key(world: World) -> None:
    case = world.searched()

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            await open_candidates(app, pilot, world, case.id)
            await pilot.press("enter")
            await done(pilot)
            view = app.screen.query_one(ComparisonView)
            probe = view.query_one("#comparison-probe", FaceImage)
            first = probe.picture
            assert first is not None and (view.zoom, view.landmarks_shown) == (1.0, False)

            await pilot.press("plus", "plus")
            assert view.zoom == 2.0
            assert probe.picture is not None and probe.picture.size < first.size  # a closer crop
            await pilot.press("minus", "minus", "minus")
            assert view.zoom == 1.0 and probe.picture.size == first.size
            await pilot.press("l")
            assert view.landmarks_shown and probe.picture.tobytes() != first.tobytes()
            assert "Face box and landmarks shown" in shown(view.query_one("#comparison-settings"))

            # n and p (and the arrows) step through the list in its order, and stop at its ends.
            await pilot.press("n")
            await done(pilot)
            assert view.rank == 2
            assert shown(view.query_one("#comparison-candidate-title")).startswith("Potential Match 2 of 4")
            await pilot.press("right", "right", "right")
            await done(pilot)
            assert view.rank == 4
            await pilot.press("left", "p")
            await done(pilot)
            assert view.rank == 2
            assert [e.details["candidate"] for e in world.events("case.view_candidate")] == [1, 2, 3, 4]
            # Back at 2: shown from memory, not fetched again.

            # Locked: both pictures leave the screen (kept only in memory), and come back on unlock.
            compare = app.screen
            faces = list(compare.query(FaceImage))
            app.action_lock()
            await done(pilot)
            assert len(faces) == 2 and all(face.concealed for face in faces)
            await fill(pilot, PASSWORD)
            await pilot.press("enter")
            await done(pilot)
            assert app.screen is compare and not any(face.concealed for face in faces)

            await pilot.press("escape")
            await done(pilot)
            assert app.screen.query_one(CandidateTable).highlighted_rank == 2

    run(body)


def test_no_viable_match_goes_to_peer_review_whose_agreement_closes_the_case_and_deletes_the_probe_data(
    world: World,
) -> None:
    case = world.searched()

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_candidates(app, pilot, world, case.id)
            # Four keys in quick succession (three decisions may still be on their way to the engine): the
            # last one still says plainly what follows, before it is recorded.
            await pilot.press("x", "down", "x", "down", "x", "down", "x")
            await done(pilot)
            assert isinstance(app.screen, ConfirmDialog)
            assert "sends case RFR-000001 to peer review" in screen_text(app)
            assert world.cases.case(case.id).state is CaseState.SEARCHED
            assert decisions(world, case.id) == [Decision.NOT_VIABLE] * 3 + [None]
            await pilot.press("y")
            await done(pilot)
            assert world.cases.case(case.id).state is CaseState.PEER_REVIEW
            progress = screen.query_one("#adjudication-progress", StateLabel).words
            assert progress.startswith("No Viable Match") and "goes to a peer reviewer" in progress
            state = world.events("case.state", case_id=case.id)[-1]
            assert (state.actor, state.details["after"]) == ("alice", "peer_review")

            # The peer reviewer: the queue, the same comparison over every candidate with alice's decisions.
            app.signed_in(world.terminal.sign_in("pat", PASSWORD))
            await done(pilot)
            await pilot.press("p")  # home: Peer reviews
            await done(pilot)
            assert isinstance(app.screen, PeerReviewQueueScreen)
            assert [row[:5] for row in table_rows(app.screen.query_one(QueueTable))] == [
                [case.id, "OCC/2026/0042", "robbery", "alice", "4"]
            ]
            await pilot.press("enter")
            await done(pilot)
            review = app.screen
            assert isinstance(review, PeerReviewScreen)
            view = review.query_one(ComparisonView)
            assert view.loaded and view.rank == 1
            assert "Decision: not viable (alice)." in shown(view.query_one("#comparison-candidate-notes"))
            await pilot.press("n")
            await done(pilot)
            assert view.rank == 2
            consequence = review.query_one("#peer-review-consequence", StateLabel).words
            assert "deleted at once" in consequence

            # Agree: said again before it happens; then the reason and the password again.
            await pilot.press("a")
            await done(pilot)
            assert isinstance(app.screen, ConfirmDialog)
            assert "deleted at once" in screen_text(app)
            await pilot.press("y")
            await done(pilot)
            await reason_then_password(pilot, UNDER_REVIEW)
            assert isinstance(app.screen, PeerReviewQueueScreen)
            assert "No adjudication is waiting for a peer review." in screen_text(app)

    run(body)
    closed = world.cases.case(case.id)
    assert (closed.state, closed.outcome, closed.peer_reviewed_by) == (
        CaseState.CLOSED,
        Outcome.NO_VIABLE_MATCH,
        "pat",
    )
    assert probe_template(world.terminal.ws, case.id) is None
    assert not closed.probe_image_held and not closed.probe_template_held
    assert all(c.score is None for c in closed.candidates)
    reviewed = world.events("case.peer_review", case_id=case.id)[-1]
    assert (reviewed.actor, reviewed.details["agree"], reviewed.details["reason"]) == ("pat", True, UNDER_REVIEW)
    deleted = world.events("case.probe_deleted", case_id=case.id)[-1]
    assert deleted.details["rule"] == "no_viable_match_probe_data" and "probe_image" in deleted.details["deleted"]
    assert world.events("user.reauthenticate")[-1].actor == "pat"


def test_a_peer_reviewer_who_disagrees_sends_the_case_back_with_the_reason_shown(world: World) -> None:
    case = world.adjudicated_not_viable()

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            app.signed_in(world.terminal.sign_in("pat", PASSWORD))
            await done(pilot)
            app.push_screen(PeerReviewScreen(case.id))
            await done(pilot)
            await pilot.press("d")
            await done(pilot)
            await fill(pilot, "Potential Match 1 shares the ear shape and the scar: adjudicate it again")
            await pilot.press("enter")
            await done(pilot)
            await fill(pilot, PASSWORD)
            await pilot.press("enter")
            await done(pilot)
            assert world.cases.case(case.id).state is CaseState.SEARCHED

            screen = await open_candidates(app, pilot, world, case.id)
            progress = screen.query_one("#adjudication-progress", StateLabel).words
            assert "Peer reviewer pat disagreed with 'no viable match'" in progress
            assert "shares the ear shape and the scar" in progress

    run(body)
    assert world.events("case.peer_review", case_id=case.id)[-1].details["agree"] is False


def test_nobody_peer_reviews_their_own_adjudication(world: World) -> None:
    # rita adjudicates and is also a peer reviewer: the engine refuses, the screen shows its sentence.
    provision(world.terminal, {"rita": (["rfr_user", "peer_reviewer"], "Sergeant")})
    case = world.adjudicated_not_viable("rita")

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            app.signed_in(world.terminal.sign_in("rita", PASSWORD))
            await done(pilot)
            app.push_screen(PeerReviewScreen(case.id))
            await done(pilot)
            await pilot.press("d")
            await done(pilot)
            await fill(pilot, "I would like another look at the first Potential Match")
            await pilot.press("enter")
            await done(pilot)
            await fill(pilot, PASSWORD)
            await pilot.press("enter")
            await done(pilot)
            assert isinstance(app.screen, PeerReviewScreen)
            words = app.screen.query_one("#peer-review-consequence", StateLabel).words
            assert words == "peer review refused: nobody may peer-review their own adjudication"

    run(body)
    assert world.cases.case(case.id).state is CaseState.PEER_REVIEW


@pytest.mark.parametrize(
    ("show", "heading", "cell", "note"),
    [
        ("similarity", "Similarity", r"0\.\d{3}", "Similarity is the face model's display score"),
        ("estimated_false_match_rate", "Estimated false-match rate", "uncalibrated", "uncalibrated: no calibration"),
        ("hidden", None, None, "Scores are not shown: the policy hides them."),
    ],
)
def test_scores_are_shown_as_the_policy_says(
    tmp_path: Path, show: str, heading: str | None, cell: str | None, note: str
) -> None:
    import re

    from engine.policy import load_default_policy
    from engine.policy.model import Search

    base = load_default_policy()
    policy = replace(
        base,
        search=Search(candidate_list_size=4),
        score_display=replace(base.score_display, show=show),  # type: ignore[arg-type]
    )
    assert isinstance(policy.score_display, ScoreDisplay)
    world = make_world(tmp_path, policy=policy)
    with world.terminal:
        case = world.searched()

        async def body() -> None:
            app = RfrApp(terminal=world.terminal)
            async with app.run_test(size=SIZE) as pilot:
                screen = await open_candidates(app, pilot, world, case.id)
                table = screen.query_one(CandidateTable)
                labels = column_labels(table)
                if heading is None:
                    assert labels == ["Rank", "Subject reference", "Library", "Image", "Decision"]
                else:
                    assert labels[4] == heading
                    assert all(re.fullmatch(cell or "", row[4]) for row in table_rows(table))
                assert note in shown(screen.query_one("#adjudication-scores"))

        run(body)


# ---- snapshots -----------------------------------------------------------------------------------


def snapshot_world(tmp_path: Path, state: str) -> tuple[World, str]:
    world = make_world(tmp_path)
    if state == "peer_review":
        case = world.adjudicated_not_viable()
    else:
        case = world.searched()
        world.cases.adjudicate(world.login("alice"), case.id, 2, "not_viable")
    return world, case.id


class TestAdjudicationScreens:
    @THEMES
    def test_candidates(self, snap_compare: Any, tmp_path: Path, high_contrast: bool) -> None:
        world, case_id = snapshot_world(tmp_path, "searched")

        async def open_list(pilot: Any) -> None:
            pilot.app.set_high_contrast(high_contrast)
            await open_candidates(pilot.app, pilot, world, case_id)

        with world.terminal:
            assert snap_compare(RfrApp(terminal=world.terminal), terminal_size=SIZE, run_before=open_list)

    @THEMES
    def test_comparison_with_landmarks(self, snap_compare: Any, tmp_path: Path, high_contrast: bool) -> None:
        world, case_id = snapshot_world(tmp_path, "searched")

        async def compare(pilot: Any) -> None:
            pilot.app.set_high_contrast(high_contrast)
            await open_candidates(pilot.app, pilot, world, case_id)
            await pilot.press("down", "enter")
            await done(pilot)
            await pilot.press("l", "plus")
            await done(pilot)

        with world.terminal:
            assert snap_compare(RfrApp(terminal=world.terminal), terminal_size=SIZE, run_before=compare)

    @THEMES
    def test_match_report_with_a_factor_refused(self, snap_compare: Any, tmp_path: Path, high_contrast: bool) -> None:
        world, case_id = snapshot_world(tmp_path, "searched")

        async def report(pilot: Any) -> None:
            pilot.app.set_high_contrast(high_contrast)
            await open_candidates(pilot.app, pilot, world, case_id)
            await pilot.press("v")
            await done(pilot)
            await choose(pilot, True)
            await pilot.press("tab")
            await fill(pilot, "CCTV still, small face, some blur")
            await pilot.press("tab")
            await pilot.press("ctrl+s")  # (ii) not yet chosen: the engine names it
            await done(pilot)

        with world.terminal:
            assert snap_compare(RfrApp(terminal=world.terminal), terminal_size=SIZE, run_before=report)


class TestPeerReviewScreens:
    @THEMES
    def test_queue(self, snap_compare: Any, tmp_path: Path, high_contrast: bool) -> None:
        world, _ = snapshot_world(tmp_path, "peer_review")

        async def open_queue(pilot: Any) -> None:
            pilot.app.set_high_contrast(high_contrast)
            pilot.app.signed_in(world.terminal.sign_in("pat", PASSWORD))
            await done(pilot)
            await pilot.press("p")
            await done(pilot)

        with world.terminal:
            assert snap_compare(RfrApp(terminal=world.terminal), terminal_size=SIZE, run_before=open_queue)

    @THEMES
    def test_review(self, snap_compare: Any, tmp_path: Path, high_contrast: bool) -> None:
        world, case_id = snapshot_world(tmp_path, "peer_review")

        async def open_review(pilot: Any) -> None:
            pilot.app.set_high_contrast(high_contrast)
            pilot.app.signed_in(world.terminal.sign_in("pat", PASSWORD))
            await done(pilot)
            pilot.app.push_screen(PeerReviewScreen(case_id))
            await done(pilot)

        with world.terminal:
            assert snap_compare(RfrApp(terminal=world.terminal), terminal_size=SIZE, run_before=open_review)


def test_a_calibrated_score_is_shown_as_its_estimated_false_match_rate() -> None:
    from engine.casework import CaseCandidate
    from engine.policy import load_default_policy
    from engine.scoring import meaning_for_model
    from engine.scoring.calibration import load_verified_calibration
    from rfr_tui.widgets.candidate_list import ScoreFormat

    calibration = load_verified_calibration()
    base = load_default_policy()
    policy = replace(base, score_display=replace(base.score_display, show="estimated_false_match_rate"))
    meaning = meaning_for_model(policy, calibration.model_id, calibration.model_sha256)
    assert meaning is not None
    scores = ScoreFormat("estimated_false_match_rate", 3, meaning, calibration.model_id, calibration.model_sha256)
    candidate = CaseCandidate(1, 0.62, 0.45, "custody", "CUST-1", 1, 1, 1, None, None, None, None, False)
    assert scores.heading == "Estimated false-match rate"
    assert scores.cell(candidate) == calibration.false_match_rate(0.45).phrase()
    assert scores.words(candidate) == meaning.describe(0.45)
    assert scores.note().startswith(f"Scores from face model {calibration.model_id}")
    assert scores.cell(replace(candidate, distance=None)) == "not kept"  # deleted with the probe data
