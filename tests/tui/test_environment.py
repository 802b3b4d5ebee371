"""Textual's environment switches are removed before Textual is imported, and the app refuses them if not.

Each case runs in a fresh interpreter: Textual reads the variables once, at import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

HOSTILE = {
    "TEXTUAL": "devtools,debug",
    "TEXTUAL_DEBUG": "1",
    "TEXTUAL_DRIVER": "textual.drivers.headless_driver:HeadlessDriver",
    "TEXTUAL_FILTERS": "dim",
    "TEXTUAL_PRESS": "ctrl+q",
    "TEXTUAL_SHOW_RETURN": "1",
    "Textual_Mixed_Case": "x",
}


def python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter with only ``env``'s TEXTUAL variables."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("TEXTUAL")}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**clean, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


SCRUB_THEN_IMPORT = """
import json, os, sys
import rfr_tui
imported_textual_early = "textual" in sys.modules
removed = rfr_tui.scrub_textual_environment()
from textual import constants as c
print(json.dumps({
    "imported_textual_early": imported_textual_early,
    "removed": list(removed),
    "left": sorted(k for k in os.environ if k.upper().startswith("TEXTUAL")),
    "other": os.environ.get("RFR_OTHER"),
    "constants": [c.DEBUG, c.DRIVER, c.FILTERS, c.LOG_FILE, c.PRESS, c.SCREENSHOT_DELAY, c.SHOW_RETURN],
}))
"""


def test_importing_rfr_tui_does_not_import_textual_and_the_scrub_removes_every_textual_variable(tmp_path: Path) -> None:
    env = {**HOSTILE, "TEXTUAL_LOG": str(tmp_path / "log"), "TEXTUAL_SCREENSHOT": "0", "RFR_OTHER": "kept"}
    done = python(SCRUB_THEN_IMPORT, env)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["imported_textual_early"] is False
    assert sorted(seen["removed"]) == sorted([*HOSTILE, "TEXTUAL_LOG", "TEXTUAL_SCREENSHOT"])
    assert seen["left"] == []
    assert seen["other"] == "kept"
    assert seen["constants"] == [False, None, "", None, "", -1, False]


# An app that exits by itself after 1.6 seconds, headless (a screenshot delay of 0 crashes
# Textual's timer, so the variable below asks for one after 1 second).
RUN_APP = """
import sys
import rfr_tui
if sys.argv[1] == "scrub":
    rfr_tui.scrub_textual_environment()
from textual.app import App
from rfr_tui.lockdown import LockedDownApp, LockdownError
base = LockedDownApp if sys.argv[2] == "locked" else App
class Briefly(base):
    def on_mount(self):
        self.set_timer(1.6, lambda: self.exit("ran"))
try:
    print(Briefly().run(headless=True, size=(40, 10)))
except LockdownError as error:
    print("refused:", error.diagnostics())
"""


def run_app(scrub: bool, locked: bool, env: dict[str, str]) -> str:
    done = python(RUN_APP, env, "scrub" if scrub else "no", "locked" if locked else "plain")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_textual_screenshot_set_beforehand_has_no_effect_once_scrubbed(tmp_path: Path) -> None:
    env = {"TEXTUAL_SCREENSHOT": "1", "TEXTUAL_SCREENSHOT_LOCATION": str(tmp_path)}
    # Control: the variable is real, a plain Textual app saves a screenshot (and exits at once).
    assert run_app(scrub=False, locked=False, env=env) == "None"
    assert [p.suffix for p in tmp_path.iterdir()] == [".svg"]
    for shot in tmp_path.iterdir():
        shot.unlink()

    assert run_app(scrub=True, locked=True, env=env) == "ran"
    assert list(tmp_path.iterdir()) == []


def test_the_locked_down_app_refuses_to_start_when_textual_read_switches_from_the_environment(tmp_path: Path) -> None:
    env = {"TEXTUAL_SCREENSHOT": "0", "TEXTUAL_SCREENSHOT_LOCATION": str(tmp_path), "TEXTUAL_PRESS": "x"}
    said = run_app(scrub=False, locked=True, env=env)
    assert said.startswith("refused: Textual settings came from the environment (TEXTUAL_PRESS, TEXTUAL_SCREENSHOT)")
    assert "start rfr with its own command" in said
    assert list(tmp_path.iterdir()) == []
