"""The two console scripts refuse a missing workspace in one line, before any screen: a workspace opened with a
passphrase would otherwise show the unlock screen first and fail only once someone had typed it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def run(script: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = BIN / script
    if not path.is_file():
        pytest.fail(f"the console script {path} is missing: run `make test`, which installs the project")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("RFR_", "TEXTUAL"))}
    return subprocess.run(
        [str(path), *args],
        env={**clean, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,  # an application that started would wait for keys: the timeout fails the test
        check=False,
    )


def test_rfr_names_a_missing_workspace_and_how_to_make_one(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-workspace"
    config = tmp_path / "terminal.yaml"
    config.write_text(f"terminal: T1\nworkspace: {missing}\naudit_key_file: {tmp_path / 'audit.key'}\n")
    done = run("rfr", [], {"RFR_CONFIG": str(config)})
    assert done.returncode != 0
    assert done.stderr == f"rfr: workspace {missing} does not exist: create it with 'rfr workspace init {missing}'\n"
    assert done.stdout == ""  # no screen was drawn


def test_rfr_oversight_names_a_missing_workspace_and_the_oversight_command(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-oversight"
    args = ["--workspace", str(missing), "--audit-key-file", str(tmp_path / "audit.key")]
    done = run("rfr-oversight", args, {})
    assert done.returncode != 0
    assert done.stderr == (
        f"rfr-oversight: workspace {missing} does not exist: create it with 'rfr oversight init {missing}'\n"
    )
    assert done.stdout == ""


def test_rfr_oversight_without_a_workspace_says_how_to_give_one() -> None:
    done = run("rfr-oversight", [], {})
    assert done.returncode != 0
    assert done.stderr == (
        "rfr-oversight: no oversight workspace given: pass --workspace DIR or set RFR_OVERSIGHT_WORKSPACE\n"
    )
