"""``rfr``: headless commands for engineers, auditors, scripts and tests.

Each command group lives in its own module and registers itself with ``register(sub)``.
Contract (DESIGN.md): ``--json`` on every command; exit 0 on success; otherwise one line
on stderr from ``RfrError.diagnostics()`` and a non-zero exit. Secrets never come from argv.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from engine.errors import RfrError, UsageError

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing usage and exiting, so errors stay one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        where = "" if self.prog == "rfr" else f"{self.prog.removeprefix('rfr ')}: "
        raise UsageError(f"{where}{message} (see '{self.prog} --help')")


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    """Print ``payload`` as JSON when ``--json`` was given, otherwise the human ``text``."""
    if getattr(args, "json", False):
        json.dump(payload, sys.stdout, indent=None, separators=(",", ":"))
        sys.stdout.write("\n")
    else:
        sys.stdout.write(text.rstrip("\n") + "\n")


def build_parser() -> argparse.ArgumentParser:
    from engine.cli import audit, case, central, evaluate, faces, library, media, oversight, user, workspace

    parser = _Parser(prog="rfr", description="Retrospective facial recognition workstation (headless commands).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in (faces, workspace, library, user, case, audit, media, evaluate, central, oversight):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from engine.security.environment import forget_all, take_all

    take_all()  # no secret stays in the environment for a child to inherit, read or not
    try:
        return _run(argv)
    finally:
        forget_all()


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args: argparse.Namespace | None = None
    try:
        args = parser.parse_args(argv)
        handler: Handler | None = getattr(args, "handler", None)
        if handler is None:
            parser.print_help()
            return 0
        return handler(args)
    except RfrError as exc:
        sys.stderr.write(f"rfr: {exc.diagnostics()}\n")
        return exc.exit_code
    except Exception as exc:
        from engine.files import storage_problem

        full = storage_problem(exc, _workspace_of(args))
        if full is None:
            raise
        sys.stderr.write(f"rfr: {full.diagnostics()}\n")
        return full.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("rfr: interrupted; nothing was left half-written\n")
        return 130


def _workspace_of(args: argparse.Namespace | None) -> Any:
    """The workspace a command was working on, to name its disk (None when it cannot be told)."""
    from pathlib import Path

    given = getattr(args, "workspace", None)
    if getattr(args, "command", None) == "workspace":  # `rfr workspace init DIR`
        given = given or getattr(args, "directory", None)
    if given:
        return Path(given)
    try:
        from engine.cli.terminal import config_of

        return config_of(args).workspace if args is not None else None
    except RfrError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
