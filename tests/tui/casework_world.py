"""A terminal with casework for the adjudication, approval and peer-review screen tests.

Real terminal (encrypted workspace, audit signing key, accounts made by two engineers), a fixed
clock, and the synthetic face engine taught where the drawn faces are (a tight box, landmarks on
the eyes, nose and mouth, and a quality warning on the Probe Image), so the comparison view
crops, zooms and overlays as it does on photographs. No photograph is copied anywhere: every
face is drawn.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter
from textual.app import App
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static, TextArea
from textual.worker import WorkerFailed

from engine import audit
from engine.casework import Case, Casework, MatchReport, SubmissionForm
from engine.faces.types import Box, Face, FaceQuality, QualityMeasure
from engine.policy import Policy, load_default_policy
from engine.policy.model import Search
from engine.security.users import ReauthPurpose, Session
from engine.terminal import Terminal
from rfr_tui.dialogs.password import PasswordDialog
from rfr_tui.dialogs.reason import ReasonDialog
from rfr_tui.screens.home import HomeScreen
from rfr_tui.screens.sign_in import SignInScreen
from tests.synthetic import SyntheticFaceEngine
from tests.terminals import PASSWORD, make_terminal, provision
from tests.tui.support import FACE_BOX, FACE_LANDMARKS, FACE_SIZE, settle

START = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
CANDIDATES = 4
PROBE_WIDTH = 200  # the Probe Image is drawn smaller (and blurred): the engine warns about it
PEOPLE: dict[str, tuple[list[str], str | None]] = {
    "alice": (["rfr_user"], "Constable"),
    "bob": (["rfr_user", "approver"], "Inspector"),
    "ivan": (["approver"], "Inspector"),
    "sue": (["approver"], "Superintendent"),
    "pat": (["peer_reviewer"], None),
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
        "time_lapse": {"relevant": True, "assessment": "about three years; some weight gain"},
        "lighting": {"relevant": False, "assessment": "even light in both images"},
        "other": {"relevant": False, "assessment": "no coverings or eyewear in either"},
    },
    "reasoning": "Ear shape, nose and an eyebrow scar agree; the differences are explained by three years.",
}
SKIN = ((214, 170, 140), (168, 118, 88), (120, 82, 60), (232, 196, 166), (190, 142, 112), (150, 102, 76))
HAIR = ((60, 40, 30), (22, 22, 22), (150, 110, 60), (96, 64, 40), (200, 170, 110), (40, 30, 25))


def face_jpeg(variant: int, *, width: int = FACE_SIZE[0], blur: bool = False) -> bytes:
    """A drawn face (skin, hair and features vary with ``variant``) as JPEG bytes, made in memory."""
    picture = Image.new("RGB", FACE_SIZE, (46 + 9 * variant, 70, 96))
    draw = ImageDraw.Draw(picture)
    skin, hair = SKIN[variant % len(SKIN)], HAIR[(variant * 5) % len(HAIR)]
    draw.ellipse((50, 40, 190, 200 + 4 * (variant % 3)), fill=hair)
    draw.ellipse((60, 70, 180, 230), fill=skin)
    spread = 20 + 2 * (variant % 4)
    for cx in (120 - spread, 120 + spread):
        draw.ellipse((cx - 11, 124, cx + 11, 138), fill=(250, 250, 250))
        draw.ellipse((cx - 5, 126, cx + 5, 136), fill=(50 + 20 * (variant % 3), 35, 25))
    draw.polygon(((120, 140), (112, 172 + variant % 5), (128, 172 + variant % 5)), fill=(190, 140, 110))
    draw.arc((96, 178, 144, 206), 20, 160, fill=(150, 60, 60), width=4)
    if width != FACE_SIZE[0]:
        picture = picture.resize((width, round(width * FACE_SIZE[1] / FACE_SIZE[0])), Image.Resampling.LANCZOS)
    if blur:
        picture = picture.filter(ImageFilter.GaussianBlur(1.5))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=92)
    return out.getvalue()


class DrawnFaceEngine(SyntheticFaceEngine):
    """The synthetic engine, finding a drawn face where it is drawn; the small Probe Image gets a quality warning.

    It can hold a search: clearing ``release`` makes the next analysis that embeds (a search; examining a
    Probe Image embeds nothing) wait, and ``held`` says it is waiting, so a test can use the screen meanwhile.
    """

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.release.set()
        self.held = threading.Event()

    def analyze(self, rgb: NDArray[np.uint8], upsample: int = 0, embed: bool = True) -> list[Face]:
        if embed and not self.release.is_set():
            self.held.set()
            self.release.wait(30)
        faces = super().analyze(rgb, upsample, embed)
        if len(faces) != 1:
            return faces
        height, width = rgb.shape[:2]
        sx, sy = width / FACE_SIZE[0], height / FACE_SIZE[1]
        face = faces[0]
        left, top, right, bottom = FACE_BOX
        face.box = Box(round(left * sx), round(top * sy), round(right * sx), round(bottom * sy))
        face.landmarks = np.array([[round(x * sx), round(y * sy)] for x, y in FACE_LANDMARKS], dtype=int)
        small = width == PROBE_WIDTH
        face.quality = FaceQuality(
            (
                QualityMeasure(
                    "sharpness",
                    2.0 if small else 40.0,
                    "laplacian",
                    not small,
                    "the face is blurred" if small else None,
                ),
            )
        )
        return faces


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
    clock: Clock
    root: Path
    engine: DrawnFaceEngine | None = None

    @property
    def cases(self) -> Casework:
        return self.terminal.cases

    def login(self, name: str) -> Session:
        return self.terminal.accounts.login(name, PASSWORD)

    def form(self, by: str = "alice", **overrides: Any) -> SubmissionForm:
        fields: dict[str, Any] = {
            "completed_by": by,
            "use_case": "identify_unknown_subject",
            "reference": "OCC/2026/0042",
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

    def new(self, by: str = "alice", **overrides: Any) -> Case:
        probe = face_jpeg(2, width=PROBE_WIDTH, blur=True)
        return self.cases.new_case(self.login(by), self.form(by, **overrides), probe)

    def submitted(self, by: str = "alice", **overrides: Any) -> Case:
        case = self.new(by, **overrides)
        return self.cases.submit(self.login(by), case.id)

    def approved(self, by: str = "alice", approver: str = "ivan", **overrides: Any) -> Case:
        case = self.submitted(by, **overrides)
        approver_session = self.login(approver)
        self.terminal.accounts.reauthenticate(approver_session, PASSWORD, ReauthPurpose.APPROVE)
        return self.cases.approve(approver_session, case.id, "Necessary and proportionate to identify the robber")

    def searched(self, by: str = "alice", **overrides: Any) -> Case:
        case = self.approved(by, **overrides)
        return self.cases.search(self.login(by), case.id).case

    def adjudicated_not_viable(self, by: str = "alice") -> Case:
        case = self.searched(by)
        for candidate in case.candidates:
            case = self.cases.adjudicate(self.login(by), case.id, candidate.rank, "not_viable")
        return case

    def viable_report(self) -> MatchReport:
        return MatchReport.from_mapping(REPORT)

    def events(self, action: str | None = None, case_id: str | None = None) -> list[audit.AuditEvent]:
        with self.terminal.ws.reading() as conn:
            return [
                e
                for e in audit.events(conn)
                if (action is None or e.action == action) and (case_id is None or e.subjects.get("case") == case_id)
            ]

    def later(self, **delta: float) -> None:
        self.clock.now += timedelta(**delta)


def make_world(root: Path, *, policy: Policy | None = None) -> World:
    """A terminal with the people above and a custody library of six drawn subjects."""
    chosen = policy or replace(load_default_policy(), search=Search(candidate_list_size=CANDIDATES))
    clock = Clock()
    engine = DrawnFaceEngine()
    terminal = make_terminal(root / "ws", clock=clock, engine=engine, policy=chosen)
    sessions = provision(terminal, PEOPLE)
    terminal.libraries.create(sessions["eng1"], "custody", "substantive")
    for variant in range(6):
        folder = root / "custody" / f"CUST-{1000 + variant}"
        folder.mkdir(parents=True)
        (folder / "custody_0001.jpg").write_bytes(face_jpeg(variant))
    terminal.libraries.enrol(sessions["eng1"], "custody", root / "custody")
    terminal.faces.get()  # loaded before any screen opens: the status bar says "ready" in every snapshot
    return World(terminal, chosen, clock, root, engine)


# ---- driving the application ----------------------------------------------------------------------


async def done(pilot: Pilot[Any], rounds: int = 8) -> None:
    """Let every worker finish, and what they started, and the screen settle."""
    for _ in range(rounds):
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerFailed:
            pass  # an engine refusal: the screen shows it (the error dialog), and the test looks there
        await pilot.pause()
        if all(worker.is_finished for worker in pilot.app.workers):  # pending ones are not running yet
            break
    await pilot.wait_for_scheduled_animations()
    await settle(pilot)


async def until(pilot: Pilot[Any], condition: Any, what: str, tries: int = 200) -> None:
    """Pause until ``condition()`` holds (for work that ``done`` cannot wait on, e.g. a search held mid-way)."""
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError(f"gave up waiting for {what}")


async def reason_then_password(pilot: Pilot[Any], reason: str) -> None:
    """The reason dialog given ``reason``, then the password dialog given the password: the two steps every
    decision that is recorded as a person's asks for."""
    assert isinstance(pilot.app.screen, ReasonDialog)
    await fill(pilot, reason)
    await pilot.press("enter")
    await done(pilot)
    assert isinstance(pilot.app.screen, PasswordDialog)
    await fill(pilot, PASSWORD)
    await pilot.press("enter")
    await done(pilot)


async def fill(pilot: Pilot[Any], text: str) -> None:
    """Put ``text`` in the focused field as typing would (each key pressed costs Pilot ~60 ms: see the dialogs'
    own tests for typing key by key)."""
    field = pilot.app.focused
    if isinstance(field, Input):
        field.insert_text_at_cursor(text)
    elif isinstance(field, TextArea):
        field.insert(text)
    else:
        raise AssertionError(f"no text field has the focus ({field!r})")
    await pilot.pause()


async def sign_in(pilot: Any, who: str, password: str = PASSWORD) -> None:
    """At the sign-in screen: the name, Enter, the password, Enter."""
    app = pilot.app
    screen = app.screen
    assert isinstance(screen, SignInScreen)
    assert app.focused is screen.query_one("#username", Input)
    await fill(pilot, who)
    await pilot.press("enter")
    assert app.focused is screen.query_one("#password", Input)
    await fill(pilot, password)
    await pilot.press("enter")
    await done(pilot)


async def signed_in(pilot: Any, who: str, password: str = PASSWORD) -> HomeScreen:
    await sign_in(pilot, who, password)
    home = pilot.app.screen
    assert isinstance(home, HomeScreen), f"{who} did not reach the home screen: {screen_text(pilot.app)}"
    assert pilot.app.session is not None and pilot.app.session.username == who
    return home


def shown(widget: Widget) -> str:
    """The text a widget shows now."""
    return " ".join(str(widget.render()).split())


def screen_text(app: App[Any]) -> str:
    """Every Static's text on the screen in front, in one string (for 'is it said' checks)."""
    return " ".join(shown(w) for w in app.screen.query(Static))


def table_rows(table: DataTable[Any]) -> list[list[str]]:
    return [[getattr(cell, "plain", str(cell)) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def column_labels(table: DataTable[Any]) -> list[str]:
    return [column.label.plain for column in table.columns.values()]
