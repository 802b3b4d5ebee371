"""The engine's boundaries, checked at run time: each module imported alone in a fresh interpreter.

``lint-imports`` (the contracts in pyproject.toml) proves the same boundaries from the source. This
test proves what actually gets loaded, which the source alone cannot show: an import inside a
third-party package, a plugin entry point, a module that pulls in a package under another name.
For every module of ``engine/``:

- textual, rich and rfr_tui are never loaded (the engine is importable and testable without them);
- the run time (everything but ``engine.evaluation`` and the ``rfr evaluate`` command) never loads
  ``engine.evaluation``: offline accuracy and equity evaluation stay out of the terminal.

One fresh interpreter per module (an import already made by another module would hide a
violation), run a few at a time.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

NEVER_IN_ENGINE = ("textual", "rich", "rfr_tui")
EVALUATION = "engine.evaluation"
# The one run-time door to the evaluation: `rfr evaluate search`, which imports it inside its handler.
EVALUATION_SIDE = (EVALUATION, "engine.cli.evaluate")

# Imports one module and prints the watched modules it loaded. A `__main__` module runs its program on
# import: it is run with --help, which loads what the program loads to parse its arguments.
PROBE = """
import contextlib, importlib, io, json, sys
name = sys.argv[1]
if name.endswith(".__main__"):
    sys.argv = [name, "--help"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        importlib.import_module(name)
else:
    importlib.import_module(name)
watched = sys.argv[2:]
print(json.dumps(sorted(m for m in sys.modules if any(m == w or m.startswith(w + ".") for w in watched))))
"""
WATCHED = (*NEVER_IN_ENGINE, EVALUATION)
# Controls: modules that do load what is watched, so a probe that saw nothing would fail here first.
CONTROLS = {"rfr_tui.lockdown": ("textual", "rich", "rfr_tui"), "engine.evaluation.calibration": (EVALUATION,)}


def engine_modules() -> list[str]:
    """Every module of the installed engine package, from its files (nothing is imported to list them)."""
    spec = importlib.util.find_spec("engine")
    assert spec is not None and spec.submodule_search_locations, "the engine package is not installed"
    root = Path(next(iter(spec.submodule_search_locations)))
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = ("engine", *path.relative_to(root).with_suffix("").parts)
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = engine_modules()


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def is_run_time(module: str) -> bool:
    return not any(within(module, side) for side in EVALUATION_SIDE)


def probe(module: str) -> list[str]:
    """The watched modules loaded by importing ``module`` alone, in a new interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, module, *WATCHED],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no error output)"]
        pytest.fail(f"importing {module} alone failed: {tail[0]}")
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


@pytest.fixture(scope="module")
def loaded() -> dict[str, list[str]]:
    """Each module's probe, run for all modules at once (a fresh interpreter each, one per core)."""
    names = [*MODULES, *CONTROLS]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(zip(names, pool.map(probe, names), strict=True))


def test_every_module_of_the_engine_is_checked() -> None:
    assert len(MODULES) == len(set(MODULES)) > 50
    for module in ("engine", "engine.terminal", "engine.scoring.calibration", "engine.cli.__main__"):
        assert module in MODULES
    assert not is_run_time("engine.evaluation.metrics") and not is_run_time("engine.cli.evaluate")
    assert is_run_time("engine.scoring.statistics") and is_run_time("engine.cli") and is_run_time("engine.cli.case")


@pytest.mark.parametrize("module", sorted(CONTROLS))
def test_the_probe_sees_what_a_module_loads(loaded: dict[str, list[str]], module: str) -> None:
    assert {w for w in WATCHED if any(within(m, w) for m in loaded[module])} == set(CONTROLS[module])


@pytest.mark.parametrize("module", MODULES)
def test_module_stays_within_its_boundaries(loaded: dict[str, list[str]], module: str) -> None:
    ui = [m for m in loaded[module] if any(within(m, w) for w in NEVER_IN_ENGINE)]
    assert not ui, (
        f"importing {module} loads {', '.join(ui[:5])}: the engine must never import Textual, Rich or rfr_tui"
    )
    if is_run_time(module):
        evaluation = [m for m in loaded[module] if within(m, EVALUATION)]
        assert not evaluation, (
            f"importing {module} loads {', '.join(evaluation[:5])}: the run time never imports the evaluation"
        )


def test_the_index_does_not_import_the_check_built_on_it() -> None:
    """Issue 14: engine/library/index.py and check.py imported each other; the shared registry now sits above both."""
    import ast

    source = Path(__file__).resolve().parents[2] / "engine" / "library" / "index.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
    assert not {m for m in imported if m.startswith(("engine.library.check", "engine.library.registry"))}
