"""Removes Textual's environment switches before Textual is imported (no Textual here).

Textual reads ``TEXTUAL*`` variables once, when ``textual.constants`` is first imported: they can
save screenshots of the screen to disk (``TEXTUAL_SCREENSHOT``), press keys (``TEXTUAL_PRESS``),
load a driver from any module (``TEXTUAL_DRIVER``), write a log file (``TEXTUAL_LOG``) and turn on
the debug and devtools features (``TEXTUAL``). On a custody terminal none of these may come from
the environment, so every entry point calls :func:`scrub_textual_environment` first.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

PREFIX = "TEXTUAL"


def scrub_textual_environment(environ: MutableMapping[str, str] | None = None) -> tuple[str, ...]:
    """Remove every variable whose name starts with ``TEXTUAL`` (any case); return the names removed.

    Call it before anything imports Textual: what Textual has already read stays read (the
    application refuses to start then, see ``rfr_tui.lockdown.unsafe_textual_settings``).
    """
    env = os.environ if environ is None else environ
    removed = tuple(sorted(name for name in env if name.upper().startswith(PREFIX)))
    for name in removed:
        del env[name]
    return removed
