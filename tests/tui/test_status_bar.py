"""The status bar: one line that names who, the terminal, the device, the libraries and the policy, at any width.

At 120 columns the fullest wording that fits is shown; at 80 a shorter one that still names every
part; on a terminal too narrow for any, the end is cut with an ellipsis, never wrapped or hidden.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.cells import cell_len

from engine.terminal import LibrarySize, TerminalStatus
from rfr_tui.app import RfrApp
from rfr_tui.widgets.status_bar import ELLIPSIS, StatusBar, describe, wordings
from tests.tui.casework_world import done, make_world, signed_in
from tests.tui.support import run


def status(
    user: str = "bob",
    roles: tuple[str, ...] = ("Approver", "RFR User"),
    libraries: int = 1,
    face_engine: str = "ready",
    terminal: str = "TEST-TERMINAL",
) -> TerminalStatus:
    sizes = tuple(LibrarySize(f"custody-{i}", "substantive", 900, 41_207) for i in range(libraries))
    return TerminalStatus(terminal, user, roles, "CPU", face_engine, sizes, "2026.2", 10**12)


CASES = {
    "one library": status(),
    "many libraries": status(libraries=6),
    "every role": status(roles=("Approver", "Auditor", "Engineer", "Peer reviewer", "RFR User")),
    "a long terminal name": status(terminal="WEST-MIDLANDS-CUSTODY-SUITE-BIRMINGHAM-STEELHOUSE-LANE-04"),
    "the face engine loading": status(face_engine="loading"),
}


@pytest.mark.parametrize("width", [78, 118], ids=["80 columns", "120 columns"])
@pytest.mark.parametrize("name", list(CASES))
def test_every_part_is_named_in_one_line_that_fits(name: str, width: int) -> None:
    given = CASES[name]
    text = describe(given, width)
    assert cell_len(text) <= width and "\n" not in text
    if not text.endswith(ELLIPSIS):  # it fitted: every part is there
        device = "CPU" if given.face_engine == "ready" else "face engine loading"
        libraries = "41,207" if len(given.libraries) == 1 else f"{len(given.libraries)} libraries"
        for part in ("bob", given.terminal, device, "Policy 2026.2", libraries):
            assert part in text, (part, text)
    assert text == next((w for w in wordings(given) if cell_len(w) <= width), text)  # the fullest that fits


def test_the_fullest_wording_is_used_where_it_fits_and_a_narrow_one_is_cut_with_an_ellipsis() -> None:
    given = status()
    assert describe(given, 200) == (
        "Signed in: bob (Approver, RFR User)  |  Terminal: TEST-TERMINAL  |  Device: CPU  |  "
        "Libraries: custody-0 41,207  |  Policy 2026.2"
    )
    assert describe(given, 78) == "bob | Terminal: TEST-TERMINAL | Device: CPU | custody-0 41,207 | Policy 2026.2"
    narrow = describe(given, 30)
    assert narrow == "bob | TEST-TERMINAL | CPU | …" and cell_len(narrow) <= 30
    assert describe(status(libraries=3), 118).endswith("Libraries: 3 libraries, 123,621 images | Policy 2026.2")
    assert "Device: face engine unavailable" in describe(status(face_engine="no OpenVINO device (RuntimeError)"))


def test_a_name_with_a_line_feed_or_control_codes_stays_on_one_line_as_signs() -> None:
    text = describe(status(user="bob\n\x1b[2Jx"), 200)
    assert "\n" not in text and "\x1b" not in text and "bob ␛[2Jx" in text


def test_on_screen_the_bar_fits_at_80_and_120_columns_and_fits_again_when_resized(tmp_path: Path) -> None:
    world = make_world(tmp_path)

    async def body() -> list[tuple[int, str, str]]:
        seen = []
        app = RfrApp(terminal=world.terminal)
        async with app.run_test(size=(120, 40)) as pilot:
            await signed_in(pilot, "bob")  # two roles: the longest line of the casework world
            for width in (120, 80, 120):
                await pilot.resize_terminal(width, 40)
                await done(pilot)
                bar = app.screen.query_one(StatusBar)
                assert bar.status is not None
                seen.append((bar.content_size.width, str(bar.render()), describe(bar.status, bar.content_size.width)))
        return seen

    with world.terminal:
        seen = run(body)
    assert [width for width, _, _ in seen] == [118, 78, 118]
    for width, on_screen, fitted in seen:
        assert on_screen == fitted and cell_len(on_screen) <= width and not on_screen.endswith(ELLIPSIS)
    assert seen[0][1].startswith("Signed in: bob (Approver, RFR User)") and seen[1][1].startswith("bob | Terminal:")
