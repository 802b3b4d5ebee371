"""The RFR User's screens, driven by key: the Submission Form, My cases, one case and its actions.

An officer fills the RFR Submission Form (a Pre-RFR Check answered "n/a" is refused beside the
check it names), loads a Probe Image showing two faces from a folder on removable media, chooses
the second and submits; the case is in My cases as submitted. After an approver approves (through
the engine), the officer searches from the case screen: the search runs in a worker with its
progress shown, and a key pressed meanwhile is handled. Withdrawing deletes the probe data; a
Match Report of a case adjudicated through the engine is written where the officer chose. Each
step is checked on the engine: the case, the audit log, the probe data.
"""

from __future__ import annotations

import io
import stat
import sys
import types
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyrage
import pytest
from numpy.typing import NDArray
from PIL import Image
from textual.screen import Screen
from textual.widgets import DataTable, Input, RadioSet, SelectionList, Static

from engine.casework import CaseState, Decision, probe_template
from engine.errors import FormError
from engine.faces.types import Box, Face, FaceQuality, QualityMeasure
from engine.policy import load_default_policy
from engine.policy.model import Search
from rfr_tui.app import RfrApp
from rfr_tui.dialogs.confirm import ConfirmDialog
from rfr_tui.dialogs.error import ErrorDialog
from rfr_tui.dialogs.help import HelpDialog
from rfr_tui.dialogs.new_secret import NewSecretDialog
from rfr_tui.dialogs.reason import ReasonDialog
from rfr_tui.screens import cases as cases_screens
from rfr_tui.screens.cases import NO_ADJUDICATION, WITHDRAW_WARNING, AdviceDialog, CaseScreen, MyCasesScreen
from rfr_tui.screens.home import HomeScreen
from rfr_tui.screens.submission import NewSubmissionScreen, field_of
from rfr_tui.widgets import file_chooser
from rfr_tui.widgets.face_image import FaceImage
from rfr_tui.widgets.file_chooser import FileChooserDialog, Place, PlaceTree, file_name_problem
from rfr_tui.widgets.probe_preview import ProbePreview, numbered_faces
from rfr_tui.widgets.state_label import StateLabel
from tests.plaintext import image_needles
from tests.terminals import PASSWORD, make_terminal, provision
from tests.tui.casework_world import (
    CANDIDATES,
    PEOPLE,
    PROBE_WIDTH,
    REPORT,
    Clock,
    DrawnFaceEngine,
    World,
    done,
    face_jpeg,
    fill,
    shown,
    table_rows,
    until,
)
from tests.tui.support import FACE_BOX, FACE_LANDMARKS, FACE_SIZE, run

SIZE = (120, 40)
THEMES = pytest.mark.parametrize("high_contrast", [False, True], ids=["default", "high-contrast"])
PAIR_SIZE = (2 * FACE_SIZE[0], FACE_SIZE[1])
TURNED = "the face is turned away from the camera"
JUSTIFICATION = "Identify the robber of a corner shop; every other line of enquiry is now exhausted."
ANSWERS = {
    "local_intelligence": ("exhausted", "Briefing and intelligence systems searched, no trace"),
    "circulation": ("exhausted", "n/a"),
    "other_enquiries": ("exhausted", "Witnesses and shop records checked without result"),
    "biometric_identification": ("unviable", "No fingerprints or DNA were left at the scene"),
}
CIRCULATED = "Circulated to response and neighbourhood teams; nobody knew him"


# ---- a terminal whose face engine finds two drawn faces, and can hold a search ---------------------


def pair_jpeg() -> bytes:
    """Two drawn faces side by side, tinted red (the synthetic engine's sign for "two faces"), as JPEG bytes."""
    picture = Image.new("RGB", PAIR_SIZE)
    for i, variant in enumerate((1, 4)):
        picture.paste(Image.open(io.BytesIO(face_jpeg(variant))), (i * FACE_SIZE[0], 0))
    red, green, blue = picture.split()
    picture = Image.merge(
        "RGB", (red.point(lambda v: min(255, v + 60)), green.point(lambda v: v // 4), blue.point(lambda v: v // 4))
    )
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=92)
    return out.getvalue()


class PairFaceEngine(DrawnFaceEngine):
    """Finds both faces of ``pair_jpeg`` where they are drawn (the second turned away); holds a search as
    ``DrawnFaceEngine`` does."""

    def analyze(self, rgb: NDArray[np.uint8], upsample: int = 0, embed: bool = True) -> list[Face]:
        faces = super().analyze(rgb, upsample, embed)
        if len(faces) != 2:
            return faces
        height, width = rgb.shape[:2]
        sx, sy = width / PAIR_SIZE[0], height / PAIR_SIZE[1]
        left, top, right, bottom = FACE_BOX
        for i, face in enumerate(faces):
            dx = i * FACE_SIZE[0]
            face.box = Box(round((left + dx) * sx), round(top * sy), round((right + dx) * sx), round(bottom * sy))
            face.landmarks = np.array([[round((x + dx) * sx), round(y * sy)] for x, y in FACE_LANDMARKS], dtype=int)
            pose = QualityMeasure("pose", 8.0 if i == 0 else 41.0, "degrees", i == 0, None if i == 0 else TURNED)
            face.quality = FaceQuality((pose,))
        return faces


def rfr_world(root: Path) -> tuple[World, PairFaceEngine]:
    """The adjudication tests' world (people, a custody library of drawn faces), with the pair-finding engine."""
    engine = PairFaceEngine()
    policy = replace(load_default_policy(), search=Search(candidate_list_size=CANDIDATES))
    clock = Clock()
    terminal = make_terminal(root / "ws", clock=clock, engine=engine, policy=policy)
    sessions = provision(terminal, PEOPLE)
    terminal.libraries.create(sessions["eng1"], "custody", "substantive")
    for variant in range(6):
        folder = root / "custody" / f"CUST-{1000 + variant}"
        folder.mkdir(parents=True)
        (folder / "custody_0001.jpg").write_bytes(face_jpeg(variant))
    terminal.libraries.enrol(sessions["eng1"], "custody", root / "custody")
    terminal.faces.get()
    return World(terminal, policy, clock, root), engine


def media(root: Path) -> Path:
    """A USB stick as mounted: a folder with the Probe Image (and a file the chooser must not offer)."""
    stick = root / "media" / "usb"
    stick.mkdir(parents=True, exist_ok=True)
    (stick / "probe-pair.jpg").write_bytes(pair_jpeg())
    (stick / "notes.txt").write_text("not an image")
    (stick / ".hidden.jpg").write_bytes(pair_jpeg())
    return stick


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    built, engine = rfr_world(tmp_path)
    media(tmp_path)
    monkeypatch.setattr(file_chooser, "default_places", lambda home=None: [Place("USB stick", tmp_path / "media")])
    built.engine = engine  # type: ignore[attr-defined]
    with built.terminal:
        yield built


def events(world: World, action: str, case_id: str | None = None) -> list[Any]:
    from engine import audit

    with world.terminal.ws.reading() as conn:
        return [
            e
            for e in audit.events(conn)
            if e.action == action and (case_id is None or e.subjects.get("case") == case_id)
        ]


async def signed_in(app: RfrApp, pilot: Any, world: World, who: str = "alice") -> None:
    app.signed_in(world.terminal.sign_in(who, PASSWORD))
    await done(pilot)
    assert isinstance(app.screen, HomeScreen)


async def open_case(app: RfrApp, pilot: Any, world: World, case_id: str, **kwargs: Any) -> CaseScreen:
    await signed_in(app, pilot, world)
    app.push_screen(CaseScreen(case_id, **kwargs))
    await done(pilot)
    screen = app.screen
    assert isinstance(screen, CaseScreen) and screen.case is not None
    return screen


def state_words(screen: Screen[Any]) -> str:
    return screen.query_one("#case-state", StateLabel).words


# ---- the walk: the form by key, the Probe Image from a folder, two faces, submitted -------------------


async def fill_form(pilot: Any) -> None:
    """Every field of the form, moving by Tab as the officer does; the second Pre-RFR Check answered "n/a"."""
    app = pilot.app
    screen = app.screen
    assert app.focused is screen.query_one("#use_case", RadioSet)
    await pilot.press("enter")  # the first of the policy's use cases
    await pilot.press("tab")
    await fill(pilot, "OCC/2026/0042")
    await pilot.press("tab")
    await fill(pilot, "robbery")
    await pilot.press("tab")
    await fill(pilot, JUSTIFICATION)
    for key, (status, detail) in ANSWERS.items():
        await pilot.press("tab")
        assert app.focused is screen.query_one(f"#check-{key}-status", RadioSet)
        await pilot.press(*(["right"] if status == "unviable" else []), "enter")
        await pilot.press("tab")
        assert app.focused is screen.query_one(f"#check-{key}-detail", Input)
        await fill(pilot, detail)
    await pilot.press("tab")
    assert app.focused is screen.query_one("#probe_source", RadioSet)
    await pilot.press("enter")  # police-originated
    await pilot.press("tab")
    await fill(pilot, "2026-02-27T21:40")
    await pilot.press("tab")
    await fill(pilot, "Exported from the shop's CCTV system by PC 1234")
    await pilot.press("tab")
    assert app.focused is screen.query_one("#age_band", RadioSet)
    await pilot.press("down", "down", "down", "enter")  # adult (18 or over)
    await pilot.press("tab", "tab", "tab")  # past the two subject-factor boxes, left unticked
    await fill(pilot, "Hood up, face uncovered")
    await pilot.press("tab", "tab")
    assert app.focused is screen.query_one("#libraries", SelectionList)
    await pilot.press("space")  # custody


def test_an_officer_submits_a_form_with_a_probe_showing_two_faces(world: World, tmp_path: Path) -> None:
    probe = (tmp_path / "media" / "usb" / "probe-pair.jpg").read_bytes()

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        app.animation_level = "none"  # Tab scrolls the long form to each field at once, not smoothly
        async with app.run_test(size=SIZE) as pilot:
            await signed_in(app, pilot, world)
            await pilot.press("n")  # the home section "New submission"
            await done(pilot)
            screen = app.screen
            assert isinstance(screen, NewSubmissionScreen)
            await fill_form(pilot)

            # Checked by the engine: the "n/a" is refused beside the check it names, and the cursor goes there.
            await pilot.press("ctrl+r")
            await pilot.pause()
            problem = shown(screen.query_one("#problem-pre_rfr_checks--circulation", Static))
            assert "pre_rfr_checks.circulation" in problem and "'n/a' is not an answer" in problem
            assert app.focused is screen.query_one("#check-circulation-detail", Input)
            assert [shown(p) for p in screen.query(".entry-problem.-shown")] == [problem]
            await pilot.press("end", "ctrl+u")
            await fill(pilot, CIRCULATED)  # checked again as it changes: the problem goes
            assert not screen.query(".entry-problem.-shown")
            assert "the form is complete" in shown(screen.query_one("#form-status", Static))

            # The Probe Image, from a folder on the USB stick: two faces, numbered, each with its quality.
            await pilot.press("ctrl+o")
            await pilot.pause()
            chooser = app.screen
            assert isinstance(chooser, FileChooserDialog)
            tree = chooser.query_one(PlaceTree)
            await until(pilot, lambda: len(tree.root.children) == 1, "the USB stick's folders")
            await pilot.press("down", "enter")  # into usb/
            usb = tree.root.children[0]
            await until(pilot, lambda: len(usb.children) == 1, "the folder's images")
            assert [str(n.label) for n in usb.children] == ["probe-pair.jpg"]  # no text file, nothing hidden
            await pilot.press("down", "enter")
            await done(pilot)
            assert app.screen is screen
            preview = screen.query_one(ProbePreview)
            examination = preview.examination
            assert examination is not None and [f.number for f in examination.faces] == [1, 2]
            assert "2 faces found" in shown(preview.query_one("#probe-summary", Static))
            faces = shown(preview.query_one("#probe-faces", Static))
            assert "Face 1: no quality warnings" in faces and f"Face 2: ⚠ {TURNED}" in faces
            picture = preview.query_one(FaceImage)
            assert picture.picture is not None and picture.picture.size == PAIR_SIZE
            assert preview.chosen is None
            looked = events(world, "case.probe_examined")
            assert [(e.actor, e.details["faces_found"]) for e in looked] == [("alice", 2)]
            assert world.cases.case_ids() == []  # nothing is stored until the case is made

            # Two faces and none chosen: the engine names the face; the officer chooses face 2 by its number.
            await pilot.press("ctrl+s")
            await done(pilot)
            assert "choose the one to search with" in shown(screen.query_one("#problem-face", Static))
            assert world.cases.case_ids() == []
            assert app.focused is preview.query_one(RadioSet)
            await pilot.press("2")
            assert preview.chosen == 2
            await pilot.press("ctrl+s")
            await done(pilot)

            case_screen = app.screen
            assert isinstance(case_screen, CaseScreen)
            case = world.cases.case(case_screen.case_id)
            assert case.state is CaseState.SUBMITTED and case.created_by == "alice"
            assert case.probe_face is not None and (case.probe_face.number, case.probe_face.faces_found) == (2, 2)
            assert case.form.reference == "OCC/2026/0042" and case.form.use_case == "identify_unknown_subject"
            assert case.form.justification == JUSTIFICATION and case.form.coverings == "Hood up, face uncovered"
            assert case.form.check("circulation").detail == CIRCULATED  # type: ignore[union-attr]
            assert case.form.check("biometric_identification").status.value == "unviable"  # type: ignore[union-attr]
            assert (case.form.age_band, case.form.libraries) == ("adult", ("custody",))
            created = events(world, "case.create", case.id)
            assert [(e.actor, e.details["face"], e.details["faces_found"]) for e in created] == [("alice", 2, 2)]
            assert [e.actor for e in events(world, "case.submit", case.id)] == ["alice"]
            assert state_words(case_screen) == "Awaiting approval"
            assert preview.examination is None and picture.picture is None  # the form's picture is forgotten

            # In My cases, submitted, waiting for an Inspector.
            await pilot.press("escape")  # the case replaced the form: back to the home screen
            await done(pilot)
            assert isinstance(app.screen, HomeScreen)
            await pilot.press("c")
            await done(pilot)
            mine = app.screen
            assert isinstance(mine, MyCasesScreen)
            rows = table_rows(mine.query_one("#cases", DataTable))
            assert len(rows) == 1
            assert rows[0][:3] == [case.id, "⚠ Awaiting approval", "OCC/2026/0042"]
            assert rows[0][3].startswith("Identify an") and rows[0][5] == "approval: Inspector or above"
            detail = shown(mine.query_one("#cases-detail", Static))
            assert "Identify an unknown subject of an image to progress an investigation or operation." in detail
            assert [e.actor for e in events(world, "case.list")] == ["alice"]

    run(body)
    # Nothing of the Probe Image was written anywhere but the encrypted workspace.
    needles = {k: v for k, v in image_needles([probe]).items() if k.startswith("image")}
    sources = {tmp_path / "media", tmp_path / "custody"}
    for path in tmp_path.rglob("*"):
        if path.is_file() and not any(source in path.parents for source in sources):
            data = path.read_bytes()
            assert not [name for name, needle in needles.items() if needle in data], path


def test_another_probe_replaces_the_first_and_a_broken_file_is_named_beside_it(world: World, tmp_path: Path) -> None:
    stick = tmp_path / "stick2"
    stick.mkdir()
    (stick / "a-pair.jpg").write_bytes(pair_jpeg())
    (stick / "b-single.jpg").write_bytes(face_jpeg(2, width=PROBE_WIDTH, blur=True))
    (stick / "c-broken.png").write_bytes(b"this is not a picture at all")

    async def load(pilot: Any, downs: int) -> None:
        await pilot.press("ctrl+o")
        await pilot.pause()
        tree = pilot.app.screen.query_one(PlaceTree)
        await until(pilot, lambda: len(tree.root.children) == 3, "the files")
        await pilot.press(*["down"] * downs, "enter")
        await done(pilot)

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            await signed_in(app, pilot, world)
            app.push_screen(NewSubmissionScreen(places=[Place("Second stick", stick)]))
            await done(pilot)
            screen = app.screen
            preview = screen.query_one(ProbePreview)
            await load(pilot, 1)
            await pilot.press("1")
            assert preview.chosen == 1 and len(preview.query(RadioSet)) == 1
            await load(pilot, 2)  # one face: chosen without asking, its blur named
            assert preview.examination is not None and len(preview.examination.faces) == 1
            assert preview.chosen == 1 and not preview.query(RadioSet)
            assert "1 face found" in shown(preview.query_one("#probe-summary", Static))
            assert shown(preview.query_one("#probe-faces", Static)) == "Face 1: ⚠ the face is blurred"
            await load(pilot, 3)  # not a picture: the engine's sentence beside the Probe Image
            problem = shown(screen.query_one("#problem-probe", Static))
            assert "not a JPEG or PNG file" in problem
            assert preview.examination is not None and len(preview.examination.faces) == 1  # the last good one stays

    run(body)
    assert [e.details["faces_found"] for e in events(world, "case.probe_examined")] == [2, 1]


def test_field_of_names_the_field_of_every_form_error(world: World) -> None:
    for overrides, field in (
        ({"reference": ""}, "reference"),
        ({"probe_captured": "yesterday"}, "probe_captured"),
        ({"pre_rfr_checks": {**ANSWERS, "circulation": ("exhausted", "n/a")}}, "pre_rfr_checks.circulation"),
        ({"use_case": ""}, "use_case"),
        ({"libraries": []}, "libraries"),
    ):
        with pytest.raises(FormError) as refused:
            world.form(**overrides)
        assert field_of(refused.value.diagnostics()) == field


# ---- the search, in a worker that never blocks the interface ------------------------------------------


def test_the_officer_searches_an_approved_case_and_the_interface_stays_responsive(world: World) -> None:
    case = world.approved()
    engine: PairFaceEngine = world.engine  # type: ignore[attr-defined]

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_case(app, pilot, world, case.id)
            assert state_words(screen) == "Approved"
            assert "press r to run the search" in shown(screen.query_one("#case-waiting", Static))
            engine.release.clear()
            try:
                await pilot.press("r")
                await until(pilot, engine.held.is_set, "the search to reach the face engine")
                assert screen.busy and screen.query_one("#case-work").display
                line = shown(screen.query_one("#case-progress-line", Static))
                assert line == "Finding the face in the Probe Image and searching 1 library..."
                await pilot.press("f1")  # handled while the search runs
                await pilot.pause()
                assert isinstance(app.screen, HelpDialog)
                await pilot.press("escape")
                await pilot.pause()
                assert app.screen is screen and world.cases.case(case.id).state is CaseState.APPROVED
            finally:
                engine.release.set()
            await done(pilot)
            assert not screen.busy and not screen.query_one("#case-work").display
            searched = world.cases.case(case.id)
            assert searched.state is CaseState.SEARCHED and len(searched.candidates) == CANDIDATES
            assert [(e.actor, e.details["candidates"]) for e in events(world, "case.search", case.id)] == [
                ("alice", CANDIDATES)
            ]
            assert state_words(screen) == "Searched"
            assert shown(screen.query_one("#case-message", Static)) == (
                f"✔ Search complete: {CANDIDATES} Potential Matches from custody. Press j to Adjudicate them."
            )
            lead = world.policy.score_display.intelligence_lead_statement
            assert [shown(w) for w in screen.query(".case--lead")] == [" ".join(lead.split())]
            candidates = table_rows(screen.query_one("#case-candidates", DataTable))
            assert [row[0] for row in candidates] == [str(i) for i in range(1, CANDIDATES + 1)]
            assert {row[3] for row in candidates} == {"• not yet adjudicated"}

    run(body)


def test_adjudicate_opens_the_candidate_list_of_the_case(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    case = world.searched()
    opened: list[str] = []

    class CandidatesScreen(Screen[None]):
        def __init__(self, case_id: str) -> None:
            super().__init__()
            opened.append(case_id)

    module = types.ModuleType(cases_screens.ADJUDICATION)
    module.CandidatesScreen = CandidatesScreen  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, cases_screens.ADJUDICATION, module)

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_case(app, pilot, world, case.id)
            await pilot.press("j")
            await pilot.pause()
            assert isinstance(app.screen, CandidatesScreen) and opened == [case.id]
            app.pop_screen()
            await done(pilot)
            assert app.screen is screen

    run(body)


def test_without_the_adjudication_screen_a_plain_sentence_says_so(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = world.searched()
    monkeypatch.setitem(sys.modules, cases_screens.ADJUDICATION, None)  # importing it raises ImportError

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            await open_case(app, pilot, world, case.id)
            await pilot.press("j")
            await pilot.pause()
            assert isinstance(app.screen, ErrorDialog) and app.screen.message == " ".join(NO_ADJUDICATION.split())

    run(body)


# ---- withdrawal, advice, refusals ------------------------------------------------------------------


def test_withdrawing_asks_why_warns_and_deletes_the_probe_data(world: World) -> None:
    case = world.submitted()
    assert world.cases.case(case.id).probe_image_held

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_case(app, pilot, world, case.id)
            assert screen.query(FaceImage)  # the chosen face, shown while the image is held
            await pilot.press("w")
            await pilot.pause()
            assert isinstance(app.screen, ReasonDialog)
            await pilot.press("escape")  # cancelled: nothing happens
            await pilot.pause()
            assert app.screen is screen and world.cases.case(case.id).state is CaseState.SUBMITTED

            await pilot.press("w")
            await pilot.pause()
            await fill(pilot, "The suspect was identified by a witness this morning")
            await pilot.press("enter")
            await pilot.pause()
            confirm = app.screen
            assert isinstance(confirm, ConfirmDialog)
            assert WITHDRAW_WARNING.lower() in shown(confirm.query_one("#confirm-question", Static)).lower()
            await pilot.press("y")
            await done(pilot)
            assert app.screen is screen and state_words(screen) == "Withdrawn"
            assert "deleted" in shown(screen.query_one("#case-message", Static))
            assert not screen.query(FaceImage)  # nothing of the picture stays on screen

    run(body)
    ended = world.cases.case(case.id)
    assert ended.state is CaseState.WITHDRAWN and not ended.probe_image_held
    assert ended.probe_face is None and probe_template(world.terminal.ws, case.id) is None
    assert ended.ended_reason == "The suspect was identified by a witness this morning"
    withdrawn = events(world, "case.withdraw", case.id)
    assert [(e.actor, e.details["before"]) for e in withdrawn] == [("alice", "submitted")]
    assert [e.details["rule"] for e in events(world, "case.probe_deleted", case.id)] == ["withdrawn_case_probe_data"]


def test_advice_for_a_flagged_case_is_recorded_after_the_engine_refuses_a_bad_date(world: World) -> None:
    case = world.new(relevant_disability=True)
    assert case.approval_flags == ("technical_advice",)

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_case(app, pilot, world, case.id)
            assert "advice, then submission" in shown(screen.query_one("#case-waiting", Static))
            await pilot.press("v")
            await pilot.pause()
            assert isinstance(app.screen, AdviceDialog)
            await fill(pilot, "J. Okafor, FRT team")
            await pilot.press("tab")
            await fill(pilot, "last Tuesday")
            await pilot.press("tab")
            await fill(pilot, "The algorithm is less reliable here; weigh any match with care and seek a legal view.")
            await pilot.press("ctrl+s")
            await done(pilot)
            again = app.screen
            assert isinstance(again, AdviceDialog)  # asked again, with the engine's sentence
            assert "given_on 'last Tuesday' is not a date" in shown(again.query_one("#advice-problem", Static))
            assert again.query_one("#advice-adviser", Input).value == "J. Okafor, FRT team"
            await pilot.press("tab")
            await pilot.press("end", "ctrl+u")
            await fill(pilot, "2026-03-01")
            await pilot.press("ctrl+s")
            await done(pilot)
            assert app.screen is screen
            assert "press s to submit" in shown(screen.query_one("#case-waiting", Static))
            await pilot.press("s")
            await done(pilot)
            assert state_words(screen) == "Awaiting approval"

    run(body)
    recorded = world.cases.case(case.id)
    assert [(a.flag, a.adviser, a.given_on) for a in recorded.advice] == [
        ("technical_advice", "J. Okafor, FRT team", "2026-03-01")
    ]
    assert recorded.state is CaseState.SUBMITTED
    refused = [e.details["attempted"] for e in events(world, "case.refused", case.id)]
    assert refused == ["advice"]
    assert [e.details["adviser"] for e in events(world, "case.advice", case.id)] == ["J. Okafor, FRT team"]


def test_an_action_the_engine_refuses_shows_its_sentence(world: World) -> None:
    # The screen offers Close for an adjudicated case; meanwhile the case was closed elsewhere (another
    # session of the same officer): the engine refuses, and the screen says so in its words.
    case = world.searched()
    for candidate in case.candidates:
        viable = candidate.rank == 1
        world.cases.adjudicate(
            world.login("alice"),
            case.id,
            candidate.rank,
            "viable" if viable else "not_viable",
            world.viable_report() if viable else None,
        )

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            await open_case(app, pilot, world, case.id)
            world.cases.close(world.login("alice"), case.id, "closed at the other desk")
            await pilot.press("c", "y")
            await done(pilot)
            dialog = app.screen
            assert isinstance(dialog, ErrorDialog)
            assert dialog.message == f"close refused: case {case.id} is closed, not adjudicated"

    run(body)
    assert [e.details["attempted"] for e in events(world, "case.refused", case.id)] == ["close"]


def test_the_case_screen_offers_only_the_steps_open_where_the_case_stands(world: World) -> None:
    # Found: the footer listed all seven steps on every case (Submit and Run the search on a searched
    # case), which at 80 columns pushed Back off the screen; a key whose step is not open did nothing
    # but earn a refusal.
    submitted, approved = world.submitted(), world.approved()

    async def footer_of(case_id: str, press: str | None = None) -> tuple[set[str], object]:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            await open_case(app, pilot, world, case_id)
            offered = {
                b.binding.description for b in app.screen.active_bindings.values() if b.binding.show and b.enabled
            }
            if press:
                await pilot.press(press)
                await done(pilot)
            return offered, app.screen

    def offered(case_id: str, press: str | None = None) -> tuple[set[str], object]:
        return run(lambda: footer_of(case_id, press))

    steps = {"Submit", "Record advice", "Run the search", "Adjudicate", "Export Match Report", "Close", "Withdraw"}
    on_submitted, screen = offered(submitted.id, press="c")
    assert on_submitted & steps == {"Record advice", "Withdraw"}
    assert isinstance(screen, CaseScreen)  # c (Close) is not a step here: no dialog, no refusal
    on_approved, _ = offered(approved.id)
    assert on_approved & steps == {"Run the search", "Withdraw"}
    assert events(world, "case.refused", submitted.id) == []


# ---- the Match Report, written where the officer chose ---------------------------------------------------


PASSPHRASE = "read out over the telephone"


async def type_twice(pilot: Any, passphrase: str, again: str | None = None) -> None:
    """Type a passphrase in the new-secret dialog's two fields and confirm."""
    dialog = pilot.app.screen
    dialog.query_one("#first", Input).value = passphrase
    dialog.query_one("#repeat", Input).value = passphrase if again is None else again
    await pilot.click("#submit")
    await pilot.pause()


def test_the_match_report_is_exported_to_the_folder_and_name_chosen(world: World, tmp_path: Path) -> None:
    from engine.casework import MatchReport

    case = world.searched()
    for candidate in case.candidates:
        viable = candidate.rank == 1
        report = MatchReport.from_mapping(REPORT) if viable else None
        case = world.cases.adjudicate(
            world.login("alice"), case.id, candidate.rank, "viable" if viable else "not_viable", report
        )
    assert case.state is CaseState.ADJUDICATED and [c.decision for c in case.viable] == [Decision.VIABLE]
    written = tmp_path / "media" / "usb" / f"{case.id}-match-report.html.age"

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_case(app, pilot, world, case.id)
            lead = " ".join(world.policy.score_display.intelligence_lead_statement.split())
            assert [shown(w) for w in screen.query(".case--lead")] == [lead, lead]  # candidates and outcome
            await pilot.press("e")
            await pilot.pause()
            chooser = app.screen
            assert isinstance(chooser, FileChooserDialog) and chooser.saving
            assert "written encrypted, with a passphrase you choose next" in shown(
                chooser.query_one("#chooser-purpose", Static)
            )
            tree = chooser.query_one(PlaceTree)
            await until(pilot, lambda: len(tree.root.children) == 1, "the USB stick's folders")
            assert [str(n.label) for n in tree.root.children] == ["usb"]  # folders only when saving
            await pilot.press("down")  # usb/
            assert shown(chooser.query_one("#chooser-where", Static)) == "Folder: usb, in USB stick"
            await pilot.press("tab")  # to the file name, already suggested
            assert app.focused is chooser.query_one("#chooser-name", Input)
            await pilot.press("enter")
            await pilot.pause()
            asking = app.screen
            assert isinstance(asking, NewSecretDialog)  # no recipients configured: the officer's passphrase
            await type_twice(pilot, "too short")
            assert "too short" in shown(asking.query_one("#new-secret-problem", Static)) and not written.exists()
            await type_twice(pilot, PASSPHRASE, "another one entirely")
            assert "differ" in shown(asking.query_one("#new-secret-problem", Static))
            await type_twice(pilot, PASSPHRASE)
            await done(pilot)
            assert app.screen is screen
            message = shown(screen.query_one("#case-message", Static))
            assert f"Match Report written to {written}" in message and "encrypted with the passphrase" in message
            assert "age -d" in message

            await pilot.press("e")  # the same file again: the engine never writes over a file
            await pilot.pause()
            await until(pilot, lambda: len(app.screen.query_one(PlaceTree).root.children) == 1, "the folders")
            await pilot.press("down", "tab", "enter")
            await pilot.pause()
            await type_twice(pilot, PASSPHRASE)
            await done(pilot)
            assert isinstance(app.screen, ErrorDialog) and "already exists" in app.screen.message
            await pilot.press("escape")

            await pilot.press("c", "y")  # close: the probe template goes, the Match Report's images stay
            await done(pilot)
            assert app.screen is screen and state_words(screen) == "Closed (Viable Match)"

    run(body)
    closed = world.cases.case(case.id)
    assert closed.state is CaseState.CLOSED and closed.probe_image_held
    assert probe_template(world.terminal.ws, case.id) is None
    assert [e.actor for e in events(world, "case.close", case.id)] == ["alice"]
    sealed = written.read_bytes()
    assert sealed.startswith(b"age-encryption.org/v1\n") and b"data:image" not in sealed
    text = pyrage.passphrase.decrypt(sealed, PASSPHRASE).decode("utf-8")  # as age -d opens it
    assert f"RFR Match Report: case {case.id}" in text
    assert world.policy.score_display.intelligence_lead_statement.split()[0] in text
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    exports = events(world, "case.report_export", case.id)
    assert [(e.actor, e.details["destination"]) for e in exports] == [("alice", str(written))] * 2


# ---- My cases: filtering by state ------------------------------------------------------------------------


def test_my_cases_filters_by_state_by_key(world: World) -> None:
    draft = world.new(reference="OCC/2026/0001")
    submitted = world.submitted(reference="OCC/2026/0002")
    approved = world.approved(reference="OCC/2026/0003")
    world.cases.new_case(world.login("bob"), world.form("bob"), face_jpeg(2))  # bob's: not in alice's list

    async def body() -> None:
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=SIZE) as pilot:
            await signed_in(app, pilot, world)
            app.push_screen(MyCasesScreen())
            await done(pilot)
            screen = app.screen
            table = screen.query_one("#cases", DataTable)

            def ids() -> list[str]:
                return [row[0] for row in table_rows(table)]

            assert ids() == [approved.id, submitted.id, draft.id]  # newest first
            seen: list[tuple[str, list[str]]] = []
            for _ in cases_screens.FILTERS[1:5]:  # open, then draft, submitted, approved
                await pilot.press("f")
                seen.append((shown(screen.query_one("#cases-filter", Static)).split(" (")[0], ids()))
            assert seen == [
                ("Showing open cases", [approved.id, submitted.id, draft.id]),
                ("Showing drafts", [draft.id]),
                ("Showing cases awaiting approval", [submitted.id]),
                ("Showing approved cases", [approved.id]),
            ]
            await pilot.press("f")  # rejected: none
            assert ids() == [] and "Press a for all" in shown(screen.query_one("#cases-filter", Static))
            await pilot.press("a")
            assert ids() == [approved.id, submitted.id, draft.id]
            await pilot.press("down", "enter")
            await done(pilot)
            assert isinstance(app.screen, CaseScreen) and app.screen.case_id == submitted.id

    run(body)


# ---- the file chooser and the numbered picture ------------------------------------------------------------


def test_only_existing_places_are_offered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_chooser, "REMOVABLE_MEDIA_ROOTS", (tmp_path / "media", tmp_path / "run-media"))
    (tmp_path / "media").mkdir()
    places = file_chooser.default_places(home=tmp_path / "home")
    assert [p.path for p in places] == [tmp_path / "media"]
    (tmp_path / "home").mkdir()
    assert [p.path for p in file_chooser.default_places(home=tmp_path / "home")] == [
        tmp_path / "media",
        tmp_path / "home",
    ]


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("report.html", None),
        ("", "Type a name"),
        ("../report.html", "file name only"),
        ("sub/report.html", "file name only"),
        (".report.html", "cannot start with a dot"),
        (" report.html", "starts or ends with a space"),
        ("rep\x1bort.html", "control characters"),
    ],
)
def test_a_new_file_name_is_a_name_in_the_chosen_folder(name: str, problem: str | None) -> None:
    found = file_name_problem(name)
    assert found is None if problem is None else (found is not None and problem in found)


def test_each_face_is_boxed_and_numbered_in_a_copy() -> None:
    from engine.casework import FaceSeen

    picture = Image.open(io.BytesIO(pair_jpeg())).convert("RGB")
    before = picture.tobytes()
    landmarks = tuple((int(x), int(y)) for x, y in FACE_LANDMARKS)
    faces = [FaceSeen(i + 1, (60 + 240 * i, 70, 180 + 240 * i, 230), landmarks, (), None) for i in range(2)]
    drawn = numbered_faces(picture, faces)
    assert picture.tobytes() == before and drawn.size == picture.size  # drawn on a copy
    changed = np.any(np.asarray(drawn) != np.asarray(picture), axis=2)
    for face in faces:  # each number in a label just above its box, at the left
        left, top = face.box[0], face.box[1]
        assert changed[max(top - 20, 0) : top, left : left + 20].mean() > 0.9
    assert not changed[250:, :].any()  # nothing drawn below the boxes


# ---- snapshots ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def snapshot_world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Cases in several states, made once: the snapshots only read them."""
    root = tmp_path_factory.mktemp("rfr-user-snapshots")
    built, _ = rfr_world(root)
    with built.terminal:
        cases = {
            "draft_flagged": built.new(reference="OCC/2026/0107", relevant_disability=True).id,
            "submitted": built.submitted(reference="OCC/2026/0042").id,
            "searched": built.searched(reference="OCC/2026/0077").id,
        }
        built.cases.adjudicate(built.login("alice"), cases["searched"], 2, "not_viable")
        yield built, cases


def _app(world: World, high_contrast: bool) -> RfrApp:
    app = RfrApp(terminal=world.terminal)
    app.set_high_contrast(high_contrast)
    return app


class TestRfrUserScreens:
    @THEMES
    def test_my_cases(self, snap_compare: Any, snapshot_world: Any, high_contrast: bool) -> None:
        world, _ = snapshot_world

        async def open_mine(pilot: Any) -> None:
            await signed_in(pilot.app, pilot, world)
            await pilot.press("c")
            await done(pilot)

        assert snap_compare(_app(world, high_contrast), terminal_size=SIZE, run_before=open_mine)

    @THEMES
    @pytest.mark.parametrize("state", ["draft_flagged", "searched", "searched_end"])
    def test_case(self, snap_compare: Any, snapshot_world: Any, high_contrast: bool, state: str) -> None:
        world, cases = snapshot_world

        async def open_it(pilot: Any) -> None:
            await open_case(pilot.app, pilot, world, cases[state.removesuffix("_end")])
            if state.endswith("_end"):
                pilot.app.screen.query_one("#case-body").scroll_end(animate=False)
            await done(pilot)

        assert snap_compare(_app(world, high_contrast), terminal_size=SIZE, run_before=open_it)

    @THEMES
    def test_new_submission_empty(self, snap_compare: Any, snapshot_world: Any, high_contrast: bool) -> None:
        world, _ = snapshot_world

        async def open_form(pilot: Any) -> None:
            await signed_in(pilot.app, pilot, world)
            await pilot.press("n")
            await done(pilot)

        assert snap_compare(_app(world, high_contrast), terminal_size=SIZE, run_before=open_form)

    @THEMES
    def test_new_submission_with_a_probe_and_its_faces(
        self, snap_compare: Any, snapshot_world: Any, high_contrast: bool
    ) -> None:
        world, _ = snapshot_world
        stick = media(world.root)

        async def load(pilot: Any) -> None:
            await signed_in(pilot.app, pilot, world)
            pilot.app.push_screen(NewSubmissionScreen(places=[Place("USB stick", stick.parent)]))
            await done(pilot)
            await pilot.press("ctrl+o")
            await pilot.pause()
            tree = pilot.app.screen.query_one(PlaceTree)
            await until(pilot, lambda: len(tree.root.children) == 1, "the folders")
            await pilot.press("down", "enter")
            await until(pilot, lambda: len(tree.root.children[0].children) == 1, "the images")
            await pilot.press("down", "enter")
            await done(pilot)

        assert snap_compare(_app(world, high_contrast), terminal_size=SIZE, run_before=load)

    @THEMES
    def test_file_chooser(self, snap_compare: Any, snapshot_world: Any, high_contrast: bool) -> None:
        world, _ = snapshot_world
        stick = media(world.root)

        async def choose(pilot: Any) -> None:
            await signed_in(pilot.app, pilot, world)
            pilot.app.push_screen(NewSubmissionScreen(places=[Place("USB stick", stick.parent)]))
            await done(pilot)
            await pilot.press("ctrl+o")
            await pilot.pause()
            tree = pilot.app.screen.query_one(PlaceTree)
            await until(pilot, lambda: len(tree.root.children) == 1, "the folders")
            await pilot.press("down", "enter")
            await until(pilot, lambda: len(tree.root.children[0].children) == 1, "the images")
            await pilot.press("down")
            await pilot.pause()

        assert snap_compare(_app(world, high_contrast), terminal_size=SIZE, run_before=choose)
