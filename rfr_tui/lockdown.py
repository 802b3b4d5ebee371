"""The custody-terminal lockdown the rfr application runs under (issue 15, "Locked down").

:class:`LockedDownApp` is the base of the real application: no screenshots, no clipboard, no
text selection, no theme picker, no suspend to a shell, ``ctrl+q`` signs out instead of
quitting, and an idle lock (Textual has none: every input event is stamped and the time since
the last one is checked on an interval). It refuses to start if Textual read debug switches
from the environment, which :func:`rfr_tui.scrub_textual_environment` removes before Textual is
imported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from textual import constants, events
from textual.app import App, ReturnType, SystemCommand
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen

from engine.errors import RfrError
from rfr_tui.dialogs.help import HelpDialog
from rfr_tui.text import plain, visible
from rfr_tui.themes import DEFAULT, HIGH_CONTRAST, THEMES
from rfr_tui.widgets.face_image import FaceImage, Renderer, active_renderer, forget_kitty_images, kitty_image_ids

__all__ = ["STYLESHEET", "IdleClock", "LockdownError", "LockedDownApp", "plain", "unsafe_textual_settings"]

STYLESHEET = Path(__file__).with_name("rfr.tcss")


class LockdownError(RfrError):
    """The application cannot start locked down (Textual settings came from the environment)."""


def unsafe_textual_settings(app: App[Any] | None = None) -> list[str]:
    """The Textual switches that were read from the environment and must not be on (empty: none).

    Textual reads them once, at import, so scrubbing the environment afterwards is too late;
    this looks at what Textual actually holds.
    """
    found = []
    if constants.DEBUG:
        found.append("TEXTUAL_DEBUG")
    if constants.DRIVER:
        found.append("TEXTUAL_DRIVER")
    if constants.FILTERS:
        found.append("TEXTUAL_FILTERS")
    if constants.LOG_FILE:
        found.append("TEXTUAL_LOG")
    if constants.PRESS:
        found.append("TEXTUAL_PRESS")
    if constants.SCREENSHOT_DELAY >= 0 or constants.SCREENSHOT_LOCATION or constants.SCREENSHOT_FILENAME:
        found.append("TEXTUAL_SCREENSHOT")
    if constants.SHOW_RETURN:
        found.append("TEXTUAL_SHOW_RETURN")
    if app is not None and (app.features or app.devtools is not None):
        found.append("TEXTUAL")
    return found


class IdleClock:
    """When input last came; the application stamps it on every key, mouse event and paste."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = clock()

    def stamp(self) -> None:
        self._last = self._clock()

    def idle_seconds(self) -> float:
        return self._clock() - self._last


class LockedDownApp(App[ReturnType]):
    """Base of the rfr application: Textual with everything a custody terminal must not do taken out.

    Subclasses override :meth:`sign_out` (return to the sign-in screen) and :meth:`lock` (show the
    lock screen, which calls :meth:`unlock` once the password is right), and set
    :attr:`idle_timeout_minutes` from the policy when someone signs in.
    """

    CSS_PATH = STYLESHEET
    ALLOW_SELECT: ClassVar[bool] = False
    IDLE_CHECK_SECONDS: ClassVar[float] = 5.0
    # Textual's own palette commands that may stay; everything else it offers (theme picker,
    # screenshot, quit) is left out. An allowlist: a command a new Textual adds stays out.
    KEPT_SYSTEM_COMMANDS: ClassVar[frozenset[str]] = frozenset({"Keys", "Maximize", "Minimize"})
    # Keys Textual's widgets keep that do nothing here (the clipboard is off): left out of the help.
    HIDDEN_ACTIONS: ClassVar[frozenset[str]] = frozenset({"copy", "copy_text", "cut", "paste"})

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+q",
            "sign_out",
            "Sign out",
            id="app.sign_out",
            priority=True,
            tooltip="Sign out and return to the sign-in screen.",
        ),
        Binding("ctrl+l", "lock", "Lock", id="app.lock", priority=True, tooltip="Lock the screen now."),
        Binding("f1", "help", "Help", id="app.help", tooltip="List the keys of this screen."),
    ]

    def __init__(self, *args: Any, clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = DEFAULT.name
        self._idle = IdleClock(clock)
        self._idle_timeout_minutes: float | None = None
        self.locked = False

    # ---- refusing to start with switches from the environment ---------------------------------

    async def run_async(self, *args: Any, **kwargs: Any) -> ReturnType | None:
        found = unsafe_textual_settings(self)
        if found:
            raise LockdownError(
                f"Textual settings came from the environment ({', '.join(found)}): start rfr with its "
                "own command, which removes them, and tell an engineer."
            )
        return await super().run_async(*args, **kwargs)

    # ---- nothing leaves the screen: screenshots, clipboard, files, links ----------------------

    def action_screenshot(self, filename: str | None = None, path: str | None = None) -> None:
        """Screenshots would write faces to disk unencrypted: never."""

    def deliver_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str | None:
        return None

    def save_screenshot(
        self, filename: str | None = None, path: str | None = None, time_format: str | None = None
    ) -> str:
        return ""

    def deliver_text(self, *args: Any, **kwargs: Any) -> str | None:
        """Textual's file delivery writes to the Downloads folder: exports go through the engine only."""
        return None

    def deliver_binary(self, *args: Any, **kwargs: Any) -> str | None:
        return None

    def copy_to_clipboard(self, text: str) -> None:
        """Copying case data out of the application is not allowed; the text goes nowhere."""

    def open_url(self, url: str, *, new_tab: bool = True) -> None:
        """An air-gapped terminal opens no links."""

    def action_change_theme(self) -> None:
        """No theme picker: the application offers its own two themes."""

    def action_suspend_process(self) -> None:
        """Suspending would drop the officer into a shell."""

    async def action_quit(self) -> None:
        """Quitting to a shell is never offered: ``app.quit`` from anywhere signs out."""
        self.action_sign_out()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """As Textual's, but without markup unless asked, and control codes shown as signs: a message often
        carries a user's text."""
        if not markup:
            message, title = visible(message), visible(title)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield SystemCommand("Sign out", "Sign out and return to the sign-in screen", self.action_sign_out)
        yield SystemCommand("Lock", "Lock the screen now", self.action_lock)
        yield SystemCommand("Help", "List the keys of this screen", self.action_help)
        for command in super().get_system_commands(screen):
            if command.title in self.KEPT_SYSTEM_COMMANDS:
                yield command

    # ---- themes -------------------------------------------------------------------------------

    @property
    def high_contrast(self) -> bool:
        return self.theme == HIGH_CONTRAST.name

    def set_high_contrast(self, on: bool) -> None:
        """Switch between the default and the high-contrast theme."""
        self.theme = HIGH_CONTRAST.name if on else DEFAULT.name

    # ---- help ---------------------------------------------------------------------------------

    def action_help(self) -> None:
        """Show the keys of the screen in front (not of the help itself)."""
        if isinstance(self.screen, HelpDialog):
            return
        self.push_screen(HelpDialog.for_screen(self.screen, hidden_actions=self.HIDDEN_ACTIONS))

    # ---- pictures off the screen and out of the terminal --------------------------------------

    def _face_images(self) -> list[FaceImage]:
        # Every mode's stack, not only the current one: a role's screens keep their pictures.
        stacks = self._screen_stacks.values()
        return [face for stack in stacks for screen in stack for face in screen.query(FaceImage)]

    def conceal_pictures(self) -> None:
        """Take every face picture off the screen and out of the terminal's memory."""
        faces = self._face_images()
        kitty = (
            kitty_image_ids() or active_renderer() is Renderer.KITTY or any(f.renderer is Renderer.KITTY for f in faces)
        )
        for face in faces:
            face.conceal()
        if kitty:  # other terminals are sent no Kitty sequences at all
            forget_kitty_images()
        self.refresh(repaint=True)

    def reveal_pictures(self) -> None:
        for face in self._face_images():
            face.reveal()

    # ---- sign-out and the idle lock -----------------------------------------------------------

    def action_sign_out(self) -> None:
        """``ctrl+q``: pictures are cleared first, whatever the subclass does next."""
        self.conceal_pictures()
        self.locked = False
        self.idle_timeout_minutes = None
        self.sign_out()

    def sign_out(self) -> None:
        """Hook: end the session and return to the sign-in screen (the real application does)."""

    @property
    def idle_timeout_minutes(self) -> float | None:
        """Minutes without input before the session locks (``None``: never, e.g. nobody signed in)."""
        return self._idle_timeout_minutes

    @idle_timeout_minutes.setter
    def idle_timeout_minutes(self, minutes: float | None) -> None:
        if minutes is not None and minutes <= 0:
            raise ValueError(f"the idle timeout must be positive minutes or None, got {minutes}")
        self._idle_timeout_minutes = minutes
        self._idle.stamp()

    @property
    def idle_seconds(self) -> float:
        return self._idle.idle_seconds()

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.InputEvent | events.Paste):
            self._idle.stamp()
        await super().on_event(event)

    def on_mount(self) -> None:
        self.set_interval(self.IDLE_CHECK_SECONDS, self._check_idle, name="idle-lock")

    def _check_idle(self) -> None:
        timeout = self._idle_timeout_minutes
        if self.locked or timeout is None:
            return
        if self._idle.idle_seconds() >= timeout * 60:
            self.action_lock()

    def action_lock(self) -> None:
        """Lock now (also what the idle timeout does): pictures cleared, then the lock hook."""
        if self.locked:
            return
        self.locked = True
        self.conceal_pictures()
        self.lock()

    def lock(self) -> None:
        """Hook: hide everything and ask for the password (a full Screen, not a modal that shows through)."""

    def unlock(self) -> None:
        """Call when the lock screen has verified the password: input is stamped and pictures come back."""
        self.locked = False
        self._idle.stamp()
        self.reveal_pictures()
