"""The terminal never reaches the network: what a dependency would send is switched off before its import.

``engine/__init__.py`` imports this module before anything else, so it runs before any engine
module and therefore before OpenVINO can be imported by any entry point that goes through the
engine: the ``rfr`` console script, the Textual application, the scripts and the tests.

OpenVINO: ``import openvino`` imports its model converter (``openvino.tools.ovc``), whose
``__init__`` initialises the ``openvino_telemetry`` package and sends an "import" event. With no
consent file, that package counts as consenting: it writes a client id and a usage counter under
``~/intel/``, and sends the event to Google Analytics from a child process forked from the
terminal (which carries everything the terminal holds, secrets included). The converter imports
the package inside ``try/except ImportError`` and then uses its own no-op ``telemetry_stub``. So
the package is made unimportable here (a ``None`` entry in ``sys.modules`` is Python's documented
way to make an import raise ``ModuleNotFoundError``): none of its code runs (no consent file is
read, nothing is written under ``~/intel``, no thread, no fork, no socket). The terminal does
not use the converter (its models are built by ``scripts/build_models.py`` with ``openvino.opset13``).

The package's own switches were not chosen: ``opt_in_out --opt_out`` writes a consent file under
``~/intel`` and sends an opt-out event as it does so; its CI check (``disable_in_ci``) declines
only when ``CI=true`` is in the environment, a variable every child would inherit and other
tools read with other meanings.

Checked by ``tests/security/test_no_network.py``, which runs the real commands under strace.
The other dependencies were checked there too and open no socket; two could, and are not used
so: usearch downloads a binary only in ``usearch.sqlite_path()``, and Textual's devtools client
needs ``textual-dev``, which is not installed.
"""

from __future__ import annotations

import sys

# Packages whose import would report on the terminal; each importer has its own fallback.
BLOCKED = ("openvino_telemetry",)


class OfflineError(ImportError):
    """A blocked package was imported before the engine, so it may already have reached out."""


def apply() -> None:
    """Make every package in ``BLOCKED`` unimportable; refuse if one was already imported."""
    for name in BLOCKED:
        if sys.modules.get(name) is not None:
            raise OfflineError(
                f"{name} was imported before the engine and may already have reached the network: "
                "import engine before openvino"
            )
        sys.modules[name] = None  # type: ignore[assignment]  # documented: the import raises ModuleNotFoundError


apply()
