"""The face image widget: which renderer draws it, whether that is fit to judge, and clearing it."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest
from textual.app import App, ComposeResult

from rfr_tui.lockdown import LockedDownApp
from rfr_tui.widgets import face_image
from rfr_tui.widgets.face_image import KITTY_DELETE_VISIBLE, FaceImage, Renderer, kitty_image_ids
from tests.conftest import REPO_ROOT
from tests.tui.support import drawn_face, run


class Shows(LockedDownApp[None]):
    CSS = "#box { width: 40; height: 20; }"

    def __init__(self, renderer: Renderer | None = None) -> None:
        super().__init__()
        self._renderer = renderer

    def compose(self) -> ComposeResult:
        yield FaceImage(drawn_face(), renderer=self._renderer, id="box")


def test_each_renderer_says_whether_it_is_fit_to_judge_a_match() -> None:
    assert [r for r in Renderer if r.fit_to_judge] == [Renderer.KITTY, Renderer.SIXEL]
    assert "too coarse to judge a match" in Renderer.HALFCELL.notice
    assert "Use a graphics terminal" in Renderer.UNICODE.notice
    assert Renderer.KITTY.notice == "Pictures drawn with Kitty graphics protocol: full resolution."


def test_a_forced_renderer_is_used_and_the_widget_says_so() -> None:
    async def body() -> tuple[Renderer, bool, str]:
        app = Shows()
        async with app.run_test() as pilot:
            await pilot.pause()
            face = app.query_one(FaceImage)
            inner = face.query_one(".face-image--picture")
            return face.renderer, face.fit_to_judge, type(inner).__name__

    assert run(body) == (Renderer.HALFCELL, False, "HalfcellImage")
    face_image.use_renderer(Renderer.UNICODE)
    assert run(body) == (Renderer.UNICODE, False, "UnicodeImage")


def test_the_picture_keeps_its_aspect_ratio_in_a_wide_box_and_a_tall_one() -> None:
    width, height = drawn_face().size

    async def body(size: tuple[int, int]) -> tuple[int, int]:
        class Fill(LockedDownApp[None]):
            def compose(self) -> ComposeResult:
                yield FaceImage(drawn_face())

        app = Fill()
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            region = app.query_one(".face-image--picture").region
            return region.width, region.height

    for size in [(120, 20), (30, 60)]:
        cells_wide, cells_high = run(lambda size=size: body(size))  # type: ignore[misc]
        assert cells_wide <= size[0] and cells_high <= size[1]
        shown = (cells_wide * 10) / (cells_high * 20)  # 10x20-pixel cells
        assert shown == pytest.approx(width / height, rel=0.06), size


def test_the_cell_size_decides_how_many_cells_a_picture_takes() -> None:
    async def body() -> int:
        app = Shows()
        async with app.run_test() as pilot:
            await pilot.pause()
            return app.query_one(".face-image--picture").region.width

    # The 40x20-cell box is 400 px high either way; the 240x300 picture is then 320 px wide:
    assert run(body) == 32  # in 10-px-wide cells
    face_image.fix_cell_size(20, 20)
    assert run(body) == 16  # in 20-px-wide cells


def test_half_cell_blocks_draw_the_picture_and_concealing_takes_it_off_the_screen() -> None:
    async def body() -> list[str]:
        app = Shows()
        shots = []
        async with app.run_test() as pilot:
            await pilot.pause()
            shots.append(app.export_screenshot())
            app.query_one(FaceImage).conceal()
            await pilot.pause()
            shots.append(app.export_screenshot())
            app.query_one(FaceImage).reveal()
            await pilot.pause()
            shots.append(app.export_screenshot())
        return shots

    shown, concealed, revealed = run(body)
    assert shown.count("▀") > 100
    assert "▀" not in concealed
    assert revealed.count("▀") == shown.count("▀")


# ---- Kitty: every image is recorded and deleted with its data ----------------------------------

TRANSMIT = re.compile(r"\x1b_Gi=(\d+),m=\d,f=100")


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What textual-image and the widget write to the real terminal (Kitty goes around Textual)."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "__stdout__", stream)
    return stream


def sent_ids(stream: io.StringIO) -> set[int]:
    return {int(found) for found in TRANSMIT.findall(stream.getvalue())}


def deleted_ids(stream: io.StringIO) -> set[int]:
    return {int(found) for found in re.findall(r"\x1b_Ga=d,d=I,i=(\d+),q=2\x1b\\", stream.getvalue())}


def test_a_concealed_kitty_picture_is_deleted_from_the_terminal_data_and_all(terminal: io.StringIO) -> None:
    async def body() -> tuple[set[int], frozenset[int], frozenset[int]]:
        app = Shows(Renderer.KITTY)
        async with app.run_test() as pilot:
            await pilot.pause()
            sent = sent_ids(terminal)
            live = kitty_image_ids()
            app.query_one(FaceImage).conceal()
            await pilot.pause()
            return sent, live, kitty_image_ids()

    sent, live_while_shown, live_after = run(body)
    assert sent and set(live_while_shown) <= sent and live_while_shown
    assert live_after == frozenset()
    assert deleted_ids(terminal) == sent
    # textual-image's own cleanup would only send a=d,I=... (placements, data kept)
    assert not re.search(r"\x1b_Ga=d,I=", terminal.getvalue())


def test_a_kitty_picture_leaving_the_screen_is_deleted(terminal: io.StringIO) -> None:
    async def body() -> frozenset[int]:
        app = Shows(Renderer.KITTY)
        async with app.run_test() as pilot:
            await pilot.pause()
            await app.query_one(FaceImage).remove()
            await pilot.pause()
            return kitty_image_ids()

    assert run(body) == frozenset()
    assert deleted_ids(terminal) == sent_ids(terminal) != set()


def test_locking_deletes_every_kitty_image_and_all_visible_placements(terminal: io.StringIO) -> None:
    class Locks(Shows):
        def lock(self) -> None:
            self.locked_with = terminal.getvalue()

    async def body() -> str:
        app = Locks(Renderer.KITTY)
        async with app.run_test() as pilot:
            await pilot.pause()
            await pilot.press("ctrl+l")
            await pilot.pause()
            return app.locked_with

    written_before_the_lock_hook = run(body)
    assert deleted_ids(terminal) == sent_ids(terminal) != set()
    assert written_before_the_lock_hook.endswith(KITTY_DELETE_VISIBLE)
    assert kitty_image_ids() == frozenset()


def test_a_plain_textual_app_gets_the_same_widget(terminal: io.StringIO) -> None:
    # The widget does not depend on the locked-down app, and draws with the renderer it is given.
    class Plain(App[None]):
        def compose(self) -> ComposeResult:
            yield FaceImage(drawn_face(), renderer=Renderer.SIXEL)

    async def body() -> Any:
        app = Plain()
        async with app.run_test() as pilot:
            await pilot.pause()
            return app.query_one(FaceImage).renderer

    assert run(body) is Renderer.SIXEL


DETECT = """
import json
from rfr_tui.widgets import face_image
print(json.dumps([face_image.detected_renderer().name, face_image.active_renderer().name]))
"""


def test_without_a_terminal_textual_image_falls_back_to_unicode_shades() -> None:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TEXTUAL")}
    done = subprocess.run(
        [sys.executable, "-c", DETECT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["UNICODE", "UNICODE"]
