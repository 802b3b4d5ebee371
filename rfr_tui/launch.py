"""The ``rfr`` command: with arguments, the headless commands; with none, the application.

The application's entry removes Textual's environment switches before Textual is imported
(``rfr_tui.scrub_textual_environment``) and takes the secrets out of the environment before
anything can start a child process. The headless commands never import Textual.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        from engine.cli import main as cli_main

        return cli_main(args)
    return run_application()


def run_application() -> int:
    """Open the configured terminal's application; a problem before it starts is one line on stderr."""
    import rfr_tui

    rfr_tui.scrub_textual_environment()  # before anything imports Textual
    from engine.errors import RfrError
    from engine.security.environment import take_all

    take_all()
    try:
        from engine.terminal import TerminalConfig
        from engine.workspace import WorkspaceHeader

        config = TerminalConfig.resolve()
        WorkspaceHeader.read(config.workspace)  # no workspace there: one line now, not an unlock screen that fails
        from rfr_tui.app import RfrApp

        RfrApp(config=config).run()
    except RfrError as exc:
        sys.stderr.write(f"rfr: {exc.diagnostics()}\n")
        return exc.exit_code
    return 0
