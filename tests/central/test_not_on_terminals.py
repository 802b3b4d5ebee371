"""The terminal's command line never loads the central unit's side nor Dask (lint-imports proves it from the source;
this proves what a fresh interpreter actually loads, third-party imports included)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
from engine.cli import build_parser
parser = build_parser()
parser.parse_args(["central", "keys", "init", "somewhere"])  # parsing a central command loads nothing central
watched = ("dask", "distributed", "engine.central")
print(json.dumps(sorted(m for m in sys.modules if any(m == w or m.startswith(w + ".") for w in watched))))
"""


def test_the_command_line_loads_neither_dask_nor_engine_central_until_a_central_command_runs() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_the_central_package_is_what_loads_dask() -> None:
    control = PROBE.replace(
        'parser.parse_args(["central", "keys", "init", "somewhere"])', "import engine.central.enrol"
    )
    done = subprocess.run([sys.executable, "-c", control], capture_output=True, text=True, timeout=120, check=True)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert "distributed" in loaded and "engine.central.enrol" in loaded  # the probe can see what it watches
