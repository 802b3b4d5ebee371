"""How every command opens the terminal and signs its person in.

Each command runs on the configured terminal (``engine.terminal.TerminalConfig``: the
configuration file, ``RFR_*`` variables, or ``--workspace``/``--key-file``/``--audit-key-file``)
and acts as the person named by ``--as USER``, signed in with their password
(``RFR_PASSWORD`` or a prompt) for that one command. There is no way to act without a named
user, except adding the first engineer to a workspace that has no users at all. The retention
sweep runs whenever a command opens the terminal, and what it did is said on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.cli.secret_input import PASSWORD_ENV, read_secret
from engine.errors import UsageError
from engine.security.users import DEFAULT_SCRYPT, ScryptParams, Session
from engine.terminal import FaceProvider, Terminal, TerminalConfig, face_provider

# Tests lower this (monkeypatch); a terminal always uses the default cost.
SCRYPT: ScryptParams = DEFAULT_SCRYPT
# Tests substitute a stand-in face engine here; a terminal uses the configured models.
FACES: Callable[[TerminalConfig], FaceProvider] = face_provider


def terminal_options() -> argparse.ArgumentParser:
    """Options every terminal command takes (use as ``parents=[terminal_options()]``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workspace", metavar="DIR", type=Path, help="the workspace folder (default: configured)")
    common.add_argument(
        "--key-file",
        metavar="PATH",
        type=Path,
        help="the workspace key file (default: configured; else the passphrase from RFR_PASSPHRASE or a prompt)",
    )
    common.add_argument(
        "--audit-key-file",
        metavar="PATH",
        type=Path,
        help="the terminal's audit signing key file (default: configured)",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")
    return common


def actor_option(parser: argparse.ArgumentParser, *, help_text: str | None = None) -> None:
    parser.add_argument(
        "--as",
        dest="actor",
        metavar="USER",
        required=True,
        help=help_text or f"who is acting (password from ${PASSWORD_ENV} or a prompt)",
    )


def config_of(args: argparse.Namespace) -> TerminalConfig:
    return TerminalConfig.resolve(
        given={
            "workspace": getattr(args, "workspace", None),
            "key_file": getattr(args, "key_file", None),
            "audit_key_file": getattr(args, "audit_key_file", None),
        }
    )


@contextmanager
def open_terminal(args: argparse.Namespace) -> Iterator[Terminal]:
    """The configured terminal, swept under the retention policy (reported on stderr), closed afterwards."""
    config = config_of(args)
    terminal = Terminal.open(config, faces=FACES(config), scrypt=SCRYPT, sweep=False)
    try:
        for line in terminal.sweep().lines():
            sys.stderr.write(f"rfr: {line}\n")
        yield terminal
        for notice in terminal.libraries.notices():
            sys.stderr.write(f"rfr: {notice}\n")
    finally:
        terminal.close()


def sign_in(terminal: Terminal, username: str | None) -> Session:
    """Sign the acting person (``--as USER``) in with their password; the sign-in is audited."""
    if not username:
        raise UsageError("say who is acting: --as USER")
    return terminal.sign_in(username, read_secret(PASSWORD_ENV, f"Password for {username}: "))


@contextmanager
def acting(args: argparse.Namespace) -> Iterator[tuple[Terminal, Session]]:
    """The terminal and the signed-in session of ``--as USER``, signed out afterwards."""
    with open_terminal(args) as terminal:
        session = sign_in(terminal, getattr(args, "actor", None))
        try:
            yield terminal, session
        finally:
            if terminal.accounts.is_signed_in(session):
                terminal.sign_out(session)
