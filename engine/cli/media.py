"""``rfr media ...``: signed packages from the central unit on removable media, by a named engineer.

``trust`` installs the central unit's root once (compare the sha256 it prints with the one the
central unit gave you by another channel); ``read`` verifies a medium and shows what each
package on it would change, writing nothing; ``apply`` does the same, asks (or takes
``--yes``), then applies every package for this terminal in one transaction. Each is recorded
in the audit log. A refused medium exits non-zero with the reason on one line and changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.cli import emit
from engine.cli.terminal import acting, actor_option, terminal_options
from engine.errors import UsageError
from engine.media.reader import MediaProgress

_PHASES = {
    "verifying": "Verifying the medium",
    "copying": "Copying and checking",
    "staged": "Copied",
    "applying": "Applying",
    "committing": "Committing",
    "committed": "Committed",
    "indexing": "Updating library indexes",
    "done": "Done",
}


def register(sub: Any) -> None:
    parser = sub.add_parser("media", help="signed packages from the central unit on removable media")
    parser.set_defaults(handler=lambda _args: _print_help(parser))
    commands = parser.add_subparsers(dest="media_command", metavar="COMMAND")
    common = terminal_options()

    trust = commands.add_parser(
        "trust",
        help="install the central unit's root metadata (once per terminal)",
        parents=[common],
        description=(
            "Pins the central unit's TUF root. Compare the sha256 printed with the one the central unit gave "
            "you by another channel before relying on it. Later roots arrive on the media."
        ),
    )
    trust.add_argument("root", metavar="ROOT.json", type=Path)
    actor_option(trust)
    trust.set_defaults(handler=_trust)

    status = commands.add_parser("status", help="the trusted root, time floor and packages applied", parents=[common])
    actor_option(status)
    status.set_defaults(handler=_status)

    read = commands.add_parser(
        "read", help="verify a medium and show what it would change (changes nothing)", parents=[common]
    )
    read.add_argument("path", metavar="PATH", type=Path, help="the mounted medium (or its rfr-packages folder)")
    actor_option(read)
    read.set_defaults(handler=_read)

    apply = commands.add_parser(
        "apply",
        help="verify a medium, show what it changes, and apply it",
        parents=[common],
        description=(
            "Verifies the medium with the terminal's trusted root, shows what each package for this terminal "
            "changes, asks for confirmation (or --yes), then applies every one in one transaction."
        ),
    )
    apply.add_argument("path", metavar="PATH", type=Path, help="the mounted medium (or its rfr-packages folder)")
    apply.add_argument("--yes", action="store_true", help="apply without asking")
    actor_option(apply)
    apply.set_defaults(handler=_apply)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def _progress() -> Any:
    show = sys.stderr.isatty()

    def progress(p: MediaProgress) -> None:
        if not show:
            return
        label = _PHASES.get(p.phase, p.phase)
        amount = f"{p.done:,}/{p.total:,}" if p.total > 1 else ""
        sys.stderr.write(f"\r\x1b[2K{label} {amount}")
        sys.stderr.flush()
        if p.phase == "done":
            sys.stderr.write("\n")

    return progress


def _trust(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        info = terminal.media.trust(session, args.root)
    text = (
        f"Installed the central unit's root version {info.version}, sha256 {info.sha256}\n"
        f"  root keys ({info.root_threshold} needed): {', '.join(k[:16] for k in info.root_keys)}\n"
        f"  expires {info.expires}; installed by {info.installed_by}\n"
        "Compare the sha256 with the one the central unit gave you by another channel."
    )
    emit(args, info.to_json(), text)
    return 0


def _status(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        status = terminal.media.status(session)
    emit(args, status.to_json(), "\n".join(status.lines()))
    return 0


def _read(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        reading = terminal.media.read(session, args.path, progress=_progress())
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    emit(args, reading.to_json(), "\n".join(reading.lines()))
    return 0


def _apply(args: argparse.Namespace) -> int:
    progress = _progress()
    with acting(args) as (terminal, session):
        reading = terminal.media.read(session, args.path, progress=progress)
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        if not reading.to_apply:
            emit(args, {**reading.to_json(), "applied": []}, "\n".join(reading.lines()))
            return 0
        plan = "\n".join(reading.lines())
        if not args.yes:
            if not sys.stdin.isatty():
                raise UsageError("applying asks for confirmation at a terminal: give --yes to apply without asking")
            sys.stderr.write(plan + "\n")
            answer = input(f"Apply {len(reading.to_apply)} package(s) to this terminal? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                emit(args, {**reading.to_json(), "applied": []}, "Nothing was applied.")
                return 1
        result = terminal.media.apply(session, reading, progress=progress)
    lines = ([] if not args.yes else [plan]) + result.lines()
    emit(args, {**reading.to_json(), "applied": result.to_json()}, "\n".join(lines))
    return 0
