"""The approver's screens: the queue, everything needed to decide on one screen, approving with the password
again, rejecting, and the engine's refusals shown as its sentences (the rank, one's own submission, advice).

Each test drives the real application on a real terminal (tests/tui/casework_world.py) by key, and checks
the case's state and the audit log after each step, not only what is on screen.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.casework import CaseState
from rfr_tui.app import RfrApp
from rfr_tui.dialogs.password import PasswordDialog
from rfr_tui.dialogs.reason import ReasonDialog
from rfr_tui.screens.approval import ApprovalQueueScreen, DecisionScreen, QueueTable, waiting
from rfr_tui.widgets.face_image import FaceImage
from rfr_tui.widgets.state_label import StateLabel, Tone
from rfr_tui.wording import for_a_person
from tests.terminals import PASSWORD
from tests.tui.casework_world import START, World, column_labels, done, fill, make_world, screen_text, table_rows
from tests.tui.support import run

SIZE = (120, 40)
THEMES = pytest.mark.parametrize("high_contrast", [False, True], ids=["default", "high-contrast"])
REASON = "Proportionate: a robbery with violence, every other line of enquiry tried"


@pytest.fixture
def world(tmp_path: Path) -> Any:
    world = make_world(tmp_path)
    with world.terminal:
        yield world


async def open_decision(app: RfrApp, pilot: Any, world: World, approver: str) -> DecisionScreen:
    """Sign ``approver`` in, open Approvals from the home screen, and the first case in the queue."""
    app.signed_in(world.terminal.sign_in(approver, PASSWORD))
    await done(pilot)
    await pilot.press("a")  # home: Approvals
    await done(pilot)
    assert isinstance(app.screen, ApprovalQueueScreen)
    await pilot.press("enter")
    await done(pilot)
    assert isinstance(app.screen, DecisionScreen)
    return app.screen


async def decide(pilot: Any, key: str, reason: str, password: str | None = None) -> None:
    """Approve (``a``) or reject (``r``) with a reason, and the password again when asked."""
    await pilot.press(key)
    await done(pilot)
    assert isinstance(pilot.app.screen, ReasonDialog)
    await fill(pilot, reason)
    await pilot.press("enter")
    await done(pilot)
    if password is not None:
        assert isinstance(pilot.app.screen, PasswordDialog)
        await fill(pilot, password)
        await pilot.press("enter")
    await done(pilot)


def test_an_approver_sees_the_queue_decides_on_one_screen_and_approves_with_the_password(world: World) -> None:
    case = world.submitted()
    flagged = world.submitted(relevant_disability=True)
    world.cases.record_advice(
        world.login("alice"),
        flagged.id,
        flag="technical_advice",
        adviser="DC Rhodes, FRT team",
        given_on="2026-03-01",
        advice="Compare the ears and the hairline only; the disability changes the lower face shape.",
    )

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            decision = await open_decision(app, pilot, world, "ivan")
            queue_table = app.screen_stack[-2].query_one(QueueTable)
            assert column_labels(queue_table) == [
                "Case",
                "Reference",
                "Offence",
                "Needs",
                "Flags",
                "Submitted by",
                "Waiting",
            ]
            assert [row[0] for row in table_rows(queue_table)] == [case.id, flagged.id]
            assert table_rows(queue_table)[1][3:6] == ["Inspector or above", "technical advice", "alice"]
            assert world.events("case.list")[-1].actor == "ivan"

            # Everything needed to decide: the form, the probe with its face, the rank and why.
            text = screen_text(app)
            for said in (
                "Approval needed from: Inspector or above",
                "Every RFR search needs approval by an officer of Inspector rank",
                "Crime or occurrence reference: OCC/2026/0042",
                "Offence type: robbery",
                "Identify the robber of a shop",
                "Local briefing and intelligence systems searched; no trace",
                "Source: police-originated",
                "Obtained: Exported from the shop's CCTV system by PC 1234",
                "Apparent age band: adult (18 or over)",
                "custody: substantive library, 6 subjects, 6 images",
                "The Probe Image holds 1 face",
                "the box marks face 1",
                "Quality warnings: the face is blurred",
            ):
                assert said in text, said
            assert decision.query_one("#decision-picture", FaceImage).picture is not None
            assert [e.action for e in world.events(case_id=case.id)][-2:] == ["case.view", "case.view_probe"]

            # A wrong password: nothing is approved, the engine's sentence is shown, and counted.
            await decide(pilot, "a", REASON, "not my password at all")
            problem = app.screen.query_one("#decision-problem", StateLabel)
            assert problem.tone is Tone.BAD and "password" in problem.words.lower()
            assert world.cases.case(case.id).state is CaseState.SUBMITTED
            assert world.events("case.approve") == []

            # Again, with the password: approved, recorded with the reason and the approver's rank.
            await decide(pilot, "a", REASON, PASSWORD)
            assert isinstance(app.screen, ApprovalQueueScreen)
            approved = world.cases.case(case.id)
            assert (approved.state, approved.decided_by, approved.decided_rank) == (
                CaseState.APPROVED,
                "ivan",
                "Inspector",
            )
            event = world.events("case.approve")[-1]
            assert (event.actor, event.details["reason"], event.details["approver_rank"]) == (
                "ivan",
                REASON,
                "Inspector",
            )
            assert world.events("user.reauthenticate")[-1].actor == "ivan"
            assert [row[0] for row in table_rows(app.screen.query_one(QueueTable))] == [flagged.id]

            # The flagged case shows its flag, what the policy asks, and the advice recorded.
            await pilot.press("enter")
            await done(pilot)
            text = screen_text(app)
            assert "technical advice: Specific advice must be sought from the FRT team" in text
            assert "Advice from DC Rhodes, FRT team, given 2026-03-01" in text
            assert "Compare the ears and the hairline only" in text

    run(body)


@pytest.mark.parametrize(
    ("submitter", "approver", "overrides", "sentence"),
    [
        ("alice", "ivan", {"age_band": "under13"}, "approval refused: case needs Superintendent, you are Inspector"),
        ("bob", "bob", {}, "approval refused: nobody may approve or reject their own submission"),
        (
            "alice",
            "ivan",
            {"pre_dates_gender_reassignment": True},
            "approval refused: case RFR-000001 is flagged technical_advice: the advice",
        ),
    ],
    ids=["inspector-on-an-under-13-case", "own-submission", "advice-not-recorded"],
)
def test_the_engine_refuses_and_the_screen_says_why(
    world: World, submitter: str, approver: str, overrides: dict[str, Any], sentence: str
) -> None:
    case = world.submitted(submitter, **overrides)

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            await open_decision(app, pilot, world, approver)
            await decide(pilot, "a", REASON, PASSWORD)
            assert isinstance(app.screen, DecisionScreen)  # still deciding: nothing happened
            problem = app.screen.query_one("#decision-problem", StateLabel)
            assert problem.tone is Tone.BAD and problem.words.startswith(sentence)
            assert world.cases.case(case.id).state is CaseState.SUBMITTED
            refused = world.events("case.refused", case_id=case.id)[-1]
            assert (refused.actor, refused.details["attempted"]) == (approver, "approve")
            # The engine's words, recorded as they are; on screen without its command-line hints.
            assert for_a_person(refused.details["rule"]) == problem.words
            assert "rfr " not in problem.words and "--" not in problem.words
            if "advice" in sentence:
                assert refused.details["rule"].endswith("(rfr case advice)")
                assert problem.words.endswith("(whoever submitted the case records it on the case screen, key v)")

    run(body)


def test_a_superintendent_approves_the_under_13_case_the_inspector_could_not(world: World) -> None:
    case = world.submitted(age_band="under13")

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            await open_decision(app, pilot, world, "sue")
            text = screen_text(app)
            assert "Approval needed from: Superintendent or above" in text
            assert "suspected to show someone under 13: approval by Superintendent rank or above" in text
            assert "under 18: the Probe Image appears to involve someone under 18" in text
            await decide(pilot, "a", REASON, PASSWORD)
            assert world.cases.case(case.id).state is CaseState.APPROVED
            assert world.events("case.approve")[-1].details["required_rank"] == "Superintendent"

    run(body)


def test_rejecting_needs_a_reason_and_deletes_the_probe_image(world: World) -> None:
    case = world.submitted()

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            await open_decision(app, pilot, world, "ivan")
            await pilot.press("r")
            await done(pilot)
            assert "deletes the Probe Image at once" in screen_text(app)
            await pilot.press("enter")  # no reason typed: the dialog asks for one
            await done(pilot)
            assert isinstance(app.screen, ReasonDialog)
            assert "Type the reason" in screen_text(app)
            await fill(pilot, "Not proportionate for a theft of this value")
            await pilot.press("enter")
            await done(pilot)
            assert isinstance(app.screen, ApprovalQueueScreen)
            assert "No submission is waiting for an approver." in screen_text(app)

    run(body)
    rejected = world.cases.case(case.id)
    assert (rejected.state, rejected.probe_image_held) == (CaseState.REJECTED, False)
    assert world.events("case.reject")[-1].details["reason"] == "Not proportionate for a theft of this value"
    assert world.events("case.probe_deleted", case_id=case.id)[-1].details["rule"] == "rejected_case_probe_data"


def test_waiting_is_said_in_words() -> None:
    since = "2026-03-02T03:00:00.000000Z"
    assert waiting(since, START) == "under a minute"
    assert waiting(since, START + timedelta(minutes=42)) == "42 min"
    assert waiting(since, START + timedelta(hours=5, minutes=3)) == "5 h 3 min"
    assert waiting(since, START + timedelta(days=3, hours=2)) == "3 days 2 h"
    assert waiting(None, START) == "unknown"


# ---- snapshots -----------------------------------------------------------------------------------


class TestApprovalScreens:
    @THEMES
    def test_queue(self, snap_compare: Any, tmp_path: Path, high_contrast: bool) -> None:
        world = make_world(tmp_path)
        world.submitted()
        world.submitted(age_band="13-15", relevant_disability=True)

        async def open_queue(pilot: Any) -> None:
            pilot.app.set_high_contrast(high_contrast)
            pilot.app.signed_in(world.terminal.sign_in("ivan", PASSWORD))
            await done(pilot)
            await pilot.press("a")
            await done(pilot)

        with world.terminal:
            assert snap_compare(RfrApp(terminal=world.terminal), terminal_size=SIZE, run_before=open_queue)

    @THEMES
    def test_decision(self, snap_compare: Any, tmp_path: Path, high_contrast: bool) -> None:
        world = make_world(tmp_path)
        case = world.submitted(age_band="16-17", relevant_disability=True, coverings="a baseball cap")
        world.cases.record_advice(
            world.login("alice"),
            case.id,
            flag="technical_advice",
            adviser="DC Rhodes, FRT team",
            given_on="2026-03-01",
            advice="Compare the ears and the hairline only; the disability changes the lower face shape.",
        )

        async def open_case(pilot: Any) -> None:
            pilot.app.set_high_contrast(high_contrast)
            await open_decision(pilot.app, pilot, world, "ivan")

        with world.terminal:
            assert snap_compare(RfrApp(terminal=world.terminal), terminal_size=SIZE, run_before=open_case)
