"""A full disk is one line naming the disk, and nothing is lost (issue 14: it gave three chained tracebacks).

The workspace lives on a small tmpfs mounted in a private mount namespace (``unshare -m``), so
the disk really fills: first while an enrolment is writing, then before a command can even open
the workspace. Each time the command ends with one line on stderr naming the disk, and afterwards,
with space freed, the workspace opens, its audit log verifies, and every image enrolled before the
disk filled is whole.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

DRIVER = textwrap.dedent(
    """
    import contextlib, io, json, os, sys
    from pathlib import Path
    from engine.cli import main
    import engine.cli.terminal as cli_terminal
    from tests.terminals import FAST, synthetic_faces
    from tests.synthetic import write_subject_folders

    cli_terminal.SCRYPT = FAST
    cli_terminal.FACES = lambda config: synthetic_faces()
    disk, scratch = Path(sys.argv[1]), Path(sys.argv[2])
    os.environ.update(RFR_WORKSPACE=str(disk / "ws"), RFR_KEY_FILE=str(disk / "key"),
                      RFR_AUDIT_KEY_FILE=str(disk / "audit.key"))
    PASSWORD = "correct horse battery"
    results = {}

    def run(name, *argv):
        os.environ["RFR_PASSWORD"] = os.environ["RFR_NEW_PASSWORD"] = PASSWORD
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(list(argv))
        results[name] = {"code": code, "stderr": err.getvalue(), "stdout": out.getvalue()}

    run("init", "workspace", "init", str(disk / "ws"), "--new-key-file", str(disk / "key"),
        "--new-audit-key-file", str(disk / "audit.key"))
    run("engineer", "user", "add", "eve", "--role", "engineer")
    run("library", "library", "create", "custody", "--kind", "substantive", "--as", "eve")
    write_subject_folders(scratch / "first", {f"a{i}": 2 for i in range(3)}, seed=1)
    run("first", "library", "enroll", str(scratch / "first"), "--library", "custody", "--as", "eve")
    def fill():
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                os.write(fd, b"\\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)

    # Leave a little room, then enrol more than fits.
    fill()
    os.truncate(disk / "filler", max(0, os.path.getsize(disk / "filler") - 300_000))
    write_subject_folders(scratch / "more", {f"b{i}": 4 for i in range(60)}, seed=2)
    run("enrol_full", "library", "enroll", str(scratch / "more"), "--library", "custody", "--as", "eve")
    # Completely full: the workspace cannot even be opened.
    fill()
    run("open_full", "library", "list", "--as", "eve")
    os.remove(disk / "filler")
    run("after", "audit", "verify", "--as", "eve")
    run("listing", "library", "list", "--as", "eve", "--json")
    print(json.dumps(results))
    """
)


def _namespace_command() -> list[str]:
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is not installed: run 'make test', which sets the machine up")
    return ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]


def test_a_full_disk_is_one_line_and_loses_nothing(tmp_path: Path) -> None:
    disk, scratch = tmp_path / "disk", tmp_path / "scratch"
    disk.mkdir()
    scratch.mkdir()
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    shell = f"mount -t tmpfs -o size=2m tmpfs {disk} && exec {sys.executable} {script} {disk} {scratch}"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [*_namespace_command(), "sh", "-c", shell], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for step in ("init", "engineer", "library", "first", "after", "listing"):
        assert results[step]["code"] == 0, (step, results[step])
    (custody,) = json.loads(results["listing"]["stdout"])["libraries"]
    # The first six images are whole; of the second folder, whatever went in before the disk filled.
    assert custody["images"] == custody["templates"] >= 6 and custody["images"] < 6 + 240
    for step in ("enrol_full", "open_full"):
        stderr = results[step]["stderr"]
        assert results[step]["code"] == 1, (step, results)
        assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
        assert stderr.startswith(f"rfr: the disk holding {disk} is full: nothing was changed"), stderr
