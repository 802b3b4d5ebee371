"""A secret read from the environment is gone from it: no later child, fork or ``/proc`` reader sees it.

The check runs in a fresh interpreter started with the secret in its environment, as the ``rfr``
commands are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECRET = "correct horse battery staple"

PROBE = """
import json, os, subprocess, sys
from engine.security.environment import take_secret

os.environ["RFR_NEW_PASSWORD"] = "set after start"  # as the in-process tests do (monkeypatch.setenv)
taken = [take_secret("RFR_PASSWORD"), take_secret("RFR_PASSWORD"), take_secret("RFR_NEW_PASSWORD")]
child = subprocess.run(
    [sys.executable, "-c", "import os, json; print(json.dumps(dict(os.environ)))"],
    capture_output=True, text=True, check=True,
)
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.read(read, 1)
    os._exit(0)
with open(f"/proc/{pid}/environ", "rb") as f:
    forked = f.read().decode(errors="replace")
os.write(write, b"x")
os.waitpid(pid, 0)
with open("/proc/self/environ", "rb") as f:
    own = f.read().decode(errors="replace")
print(json.dumps({"taken": taken, "environ": dict(os.environ), "child": json.loads(child.stdout),
                  "forked": forked, "own": own}))
"""


def test_a_taken_secret_leaves_the_environment() -> None:
    env = {**os.environ, "RFR_PASSWORD": SECRET, "RFR_PASSWORD_HINT": "kept"}
    env.pop("RFR_NEW_PASSWORD", None)
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["taken"] == [SECRET, None, "set after start"]
    for where in ("environ", "child"):  # this process, and a program it starts afterwards
        assert "RFR_PASSWORD" not in seen[where] and "RFR_NEW_PASSWORD" not in seen[where], where
        assert seen[where]["RFR_PASSWORD_HINT"] == "kept", where  # a neighbour with a longer name is untouched
    for where in ("own", "forked"):  # /proc/<pid>/environ: the block the process was started with
        assert SECRET not in seen[where] and "RFR_PASSWORD=" not in seen[where], where
        assert "RFR_PASSWORD_HINT=kept" in seen[where], where
