"""Helpers for the TUI tests: a drawn face with known landmarks, settling a screen for a snapshot."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from PIL import Image, ImageDraw
from textual.pilot import Pilot
from textual.widgets import Input

from rfr_tui.desk import Desk
from tests.terminals import PASSWORD

T = TypeVar("T")

# A drawn face (no photograph is copied into the repository): 240x300, face box and the five
# points in dlib's order (right eye outer, right eye inner, left eye outer, left eye inner, nose).
FACE_SIZE = (240, 300)
FACE_BOX = (60.0, 70.0, 180.0, 230.0)
FACE_LANDMARKS = ((90.0, 130.0), (108.0, 131.0), (150.0, 130.0), (132.0, 131.0), (120.0, 170.0))


def drawn_face() -> Image.Image:
    """The same picture every time: background, hair, face, eyes, nose and mouth."""
    picture = Image.new("RGB", FACE_SIZE, (46, 70, 96))
    draw = ImageDraw.Draw(picture)
    for y in range(FACE_SIZE[1]):  # a vertical gradient, so posterising shows
        draw.line((0, y, 30, y), fill=(46 + y // 6, 70 + y // 8, 96))
    draw.ellipse((50, 40, 190, 200), fill=(60, 40, 30))  # hair
    draw.ellipse((60, 70, 180, 230), fill=(214, 170, 140))  # face
    for cx in (99, 141):
        draw.ellipse((cx - 11, 124, cx + 11, 138), fill=(250, 250, 250))
        draw.ellipse((cx - 5, 126, cx + 5, 136), fill=(50, 35, 25))
    draw.polygon(((120, 140), (112, 172), (128, 172)), fill=(190, 140, 110))
    draw.arc((96, 178, 144, 206), 20, 160, fill=(150, 60, 60), width=4)
    return picture


def run(coroutine_function: Callable[[], Awaitable[T]]) -> T:
    """Run an async test body (the suite has no asyncio plugin)."""
    return asyncio.run(coroutine_function())  # type: ignore[arg-type]


async def settle(pilot: Pilot[Any]) -> None:
    """Stop every cursor blinking and let the screen finish drawing, for a deterministic snapshot."""
    await pilot.pause()
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


async def workers_done(pilot: Pilot[Any]) -> None:
    """Every worker finished and its result shown."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


async def poll(pilot: Pilot[Any], condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Pause until ``condition`` holds (a bounded poll), for work that is not a worker that ends (a folder tree
    reads in a worker that never ends)."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await pilot.pause(0.02)
    raise AssertionError("the screen did not get there in time")


def signed_in_then(
    username: str, steps: Callable[[Pilot[Any]], Awaitable[None]]
) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """A snapshot's ``run_before``: ``username`` signed in on either desk (terminal or oversight), then ``steps``,
    then every worker done and the screen settled."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, Desk)
        await pilot.pause()
        app.signed_in(app.accounts.login(username, PASSWORD))
        await pilot.pause()
        await steps(pilot)
        await workers_done(pilot)
        await settle(pilot)

    return run_before
