"""The oversight's application: auditors import audit bundles, read findings and terminals, and make the Board's report.

It runs on the oversight's own machine, never on a terminal, over an oversight workspace
(``engine.oversight.Oversight``), with the terminal application's locked-down base and parts
(``rfr_tui.lockdown.LockedDownApp``: sign-in, status bar, idle lock, ``ctrl+q`` signs out). The
engine decides everything; the screens (``rfr_tui/screens/oversight_*.py``) only call it and show
what it says.

This module never imports Textual: :func:`main` (the ``rfr-oversight`` command, or ``python -m
rfr_tui.oversight``) removes Textual's environment switches first, as ``rfr`` does. It is not an
``rfr oversight app`` subcommand because the engine (``engine.cli`` included) never imports the TUI,
lazily or not (the import-linter contract in ``pyproject.toml``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

PRIVATE_KEY_ENV = "RFR_OVERSIGHT_PRIVATE_KEY_FILE"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rfr-oversight",
        description="The oversight's application for its auditors: import audit bundles from removable media, "
        "read the findings and the terminals, and make the FR Technology Board's quarterly report. The workspace "
        "opens with its key file, or with its passphrase typed on the first screen.",
    )
    from engine.cli.oversight import add_workspace_options

    add_workspace_options(parser)
    parser.add_argument(
        "--private-key",
        type=Path,
        metavar="FILE",
        help=f"the oversight private key file bundles are opened with ({PRIVATE_KEY_ENV}; else chosen on the "
        "Import screen); its passphrase is typed at each import",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``rfr-oversight``: open the configured oversight workspace's application; a problem before it starts is one
    line on stderr."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    import rfr_tui

    rfr_tui.scrub_textual_environment()  # before anything imports Textual
    from engine.errors import RfrError
    from engine.security.environment import take_all

    take_all()  # no secret stays in the environment for a child to inherit
    try:
        from engine.cli.oversight import workspace_config
        from engine.workspace import WorkspaceHeader

        config = workspace_config(args)
        WorkspaceHeader.read(config.workspace, made_by="rfr oversight init")  # no workspace: one line, no screen
        private = args.private_key or (Path(value) if (value := os.environ.get(PRIVATE_KEY_ENV)) else None)
        from rfr_tui.oversight.app import OversightApp

        OversightApp(config=config, private_key_file=private).run()
    except RfrError as exc:
        sys.stderr.write(f"rfr-oversight: {exc.diagnostics()}\n")
        return exc.exit_code
    return 0
