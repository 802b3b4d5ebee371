"""Snapshots of the dialogs and the face image, default and high-contrast (review the SVGs like code).

Deterministic: half-cell pictures in 10x20-pixel cells (conftest), no blinking cursor, a drawn
face, fixed text. Update with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from engine.errors import PolicyError
from rfr_tui.dialogs.confirm import ConfirmDialog
from rfr_tui.dialogs.error import ErrorDialog
from rfr_tui.dialogs.password import PasswordDialog
from rfr_tui.lockdown import LockedDownApp
from rfr_tui.widgets.face_image import FaceImage, active_renderer
from rfr_tui.widgets.picture import face_picture
from rfr_tui.widgets.state_label import StateLabel, Tone
from tests.tui.support import FACE_BOX, FACE_LANDMARKS, drawn_face, settle

SIZE = (100, 30)
BEHIND = "Approval queue\n\nRFR-2024-0017  submitted  PC 4121 Patel\nRFR-2024-0018  submitted  PC 977 Okafor"
THEMES = pytest.mark.parametrize("high_contrast", [False, True], ids=["default", "high-contrast"])


class Behind(LockedDownApp[None]):
    """A screen with some case text behind the dialog, as the dialogs will be seen."""

    def __init__(self, dialog: ModalScreen[Any] | None, high_contrast: bool) -> None:
        super().__init__()
        self.dialog = dialog
        self.set_high_contrast(high_contrast)

    def compose(self) -> ComposeResult:
        yield Static(BEHIND)
        yield Footer()

    def on_mount(self) -> None:
        if self.dialog is not None:
            self.push_screen(self.dialog)


class TestDialogs:
    @THEMES
    def test_error(self, snap_compare: Any, high_contrast: bool) -> None:
        dialog = ErrorDialog.from_error(
            PolicyError(
                "The policy file has 2 problems: fix them and load it again.",
                ("retention.probe_days: must be a whole number of days", "roles.approver.rank: unknown rank 'Sgt'"),
            )
        )
        assert snap_compare(Behind(dialog, high_contrast), terminal_size=SIZE, run_before=settle)

    @THEMES
    def test_confirm(self, snap_compare: Any, high_contrast: bool) -> None:
        dialog = ConfirmDialog(
            "Delete the library 'Custody images 2019'? Its 41,207 images and templates are removed for good.",
            yes="Delete library",
            no="Keep it",
            dangerous=True,
        )
        assert snap_compare(Behind(dialog, high_contrast), terminal_size=SIZE, run_before=settle)

    @THEMES
    def test_password_with_a_password_typed(self, snap_compare: Any, high_contrast: bool) -> None:
        dialog = PasswordDialog("To approve case RFR-2024-0017 as Inspector Jones, enter your password again.")

        async def type_it(pilot: Any) -> None:
            await pilot.press(*"hunter2")
            await settle(pilot)

        assert snap_compare(Behind(dialog, high_contrast), terminal_size=SIZE, run_before=type_it)

    @THEMES
    def test_help_for_the_screen_behind(self, snap_compare: Any, high_contrast: bool) -> None:
        async def open_help(pilot: Any) -> None:
            await pilot.press("f1")
            await settle(pilot)

        assert snap_compare(Behind(None, high_contrast), terminal_size=SIZE, run_before=open_help)


class Comparison(LockedDownApp[None]):
    """A probe and a candidate side by side, as the comparison view will show them."""

    CSS = "#faces { height: 20; } #states { height: 1; } #states StateLabel { margin-right: 3; }"

    def __init__(self, high_contrast: bool) -> None:
        super().__init__()
        self.set_high_contrast(high_contrast)

    def compose(self) -> ComposeResult:
        probe = face_picture(drawn_face(), FACE_BOX, FACE_LANDMARKS, margin=0.3, overlay=True)
        mirrored = drawn_face().transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        candidate = face_picture(mirrored, FACE_BOX, margin=0.3, zoom_factor=1.2)
        renderer = active_renderer()
        with Horizontal(id="faces"):
            with Vertical():
                yield Static("Probe Image (landmarks shown)")
                yield FaceImage(probe)
            with Vertical():
                yield Static("Potential Match 1 of 20 (zoom 1.2)")
                yield FaceImage(candidate)
        yield StateLabel(renderer.notice, Tone.GOOD if renderer.fit_to_judge else Tone.WARNING)
        with Horizontal(id="states"):
            for words, tone in [
                ("Approved", Tone.GOOD),
                ("Awaiting approval", Tone.WARNING),
                ("Rejected", Tone.BAD),
                ("Peer review", Tone.INFO),
                ("Draft", Tone.NEUTRAL),
            ]:
                yield StateLabel(words, tone)
        yield Footer()


class TestFaceImage:
    @THEMES
    def test_probe_and_candidate_in_half_cell_blocks(self, snap_compare: Any, high_contrast: bool) -> None:
        assert snap_compare(Comparison(high_contrast), terminal_size=SIZE, run_before=settle)
