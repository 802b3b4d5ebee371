"""``rfr workspace ...``: create a terminal's encrypted workspace and its audit signing key; inspect it.

``init`` is run once, by whoever installs the terminal, as the terminal's service account: it
makes the workspace (key from a new or existing key file, or a passphrase asked twice), and the
audit signing key file, which must be a separate file readable by the service account only. It
prints the audit key's fingerprint and public key for the auditors to record: with that record
they can later tell the log was never rebuilt with another key. Passphrases come from
``RFR_PASSPHRASE`` or a prompt, never from argv.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.audit import public_key_pem
from engine.cli import emit
from engine.cli import terminal as terminal_cli
from engine.cli.terminal import acting, actor_option, terminal_options
from engine.errors import UsageError
from engine.security.keys import PASSPHRASE_ENV, new_key
from engine.security.users import Role
from engine.terminal import Terminal, TerminalConfig
from engine.workspace import check_can_create


def register(sub: Any) -> None:
    parser = sub.add_parser("workspace", help="create and inspect the terminal's encrypted workspace")
    parser.set_defaults(handler=lambda _args: (parser.print_help(), 0)[1])
    commands = parser.add_subparsers(dest="workspace_command", metavar="COMMAND")

    init = commands.add_parser(
        "init",
        help="create an encrypted workspace and the terminal's audit signing key",
        description=(
            "Create an encrypted workspace in DIR (new or empty). The key comes from a passphrase "
            f"(${PASSPHRASE_ENV} or asked twice), an existing key file, or a new key file. The audit signing key "
            "is a new file of its own (--new-audit-key-file), never inside the workspace database."
        ),
    )
    init.add_argument("directory", metavar="DIR", type=Path)
    source = init.add_mutually_exclusive_group()
    source.add_argument("--key-file", metavar="PATH", type=Path, help="use this existing 32-byte key file")
    source.add_argument("--new-key-file", metavar="PATH", type=Path, help="create a new key file (mode 0600)")
    init.add_argument(
        "--new-audit-key-file",
        metavar="PATH",
        type=Path,
        required=True,
        help="create the terminal's audit signing key here (mode 0600; keep it apart from the workspace)",
    )
    init.add_argument("--json", action="store_true", help="machine-readable output")
    init.set_defaults(handler=_init)

    info = commands.add_parser("info", help="show the workspace's format and schema", parents=[terminal_options()])
    actor_option(info)
    info.set_defaults(handler=_info)


def _init(args: argparse.Namespace) -> int:
    directory = Path(args.directory).absolute()
    check_can_create(directory)
    if args.new_audit_key_file.exists():
        raise UsageError(f"{args.new_audit_key_file} already exists: an audit signing key is never overwritten")
    key = new_key(key_file=args.key_file, new_key_file=args.new_key_file)
    config = TerminalConfig(workspace=directory, audit_key_file=args.new_audit_key_file.absolute())
    try:
        terminal = Terminal.create(config, key, faces=terminal_cli.FACES(config), scrypt=terminal_cli.SCRYPT)
    except BaseException:
        if args.new_key_file is not None:
            Path(args.new_key_file).unlink(missing_ok=True)  # a key for nothing is only a liability
        raise
    with terminal:
        public = terminal.ws.audit_public_key
        payload = {
            "workspace": str(terminal.ws.directory),
            "key": key.kdf.method,
            "key_file": str(Path(args.new_key_file or args.key_file).absolute())
            if key.kdf.method == "key-file"
            else None,
            "audit_key_file": str(config.audit_key_file),
            "audit_key_id": terminal.ws.audit_key_id,
            "audit_public_key": public_key_pem(public),
            "schema": terminal.ws.schema_versions(),
        }
    text = (
        f"Created encrypted workspace {payload['workspace']} (opened with a {key.kdf.method}).\n"
        f"Audit signing key {config.audit_key_file} (fingerprint {payload['audit_key_id']}): the auditors record "
        f"this fingerprint and public key now:\n{payload['audit_public_key']}"
    )
    if args.new_key_file is not None:
        text += f"\nNew key file {payload['key_file']}: keep it safe; without it the workspace cannot be opened."
    text += "\nNext: add the first engineer with 'rfr user add NAME --role engineer'."
    emit(args, payload, text)
    return 0


def _info(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        terminal.accounts.require_role(session, Role.ENGINEER)
        versions = terminal.ws.schema_versions()
        payload: dict[str, Any] = {
            **terminal.config.describe(),
            "workspace_id": terminal.ws.header.workspace_id,
            "format_version": terminal.ws.header.format_version,
            "schema": versions,
            "audit_key_id": terminal.ws.audit_key_id,
            "policy_version": terminal.policy.version,
            "libraries": len(terminal.libraries.sizes()),
        }
    schema = ", ".join(f"{d} v{v}" for d, v in versions.items())
    emit(
        args,
        payload,
        f"Workspace {payload['workspace']}: format v{payload['format_version']}, schema {schema}, "
        f"{payload['libraries']} libraries, opened with a {payload['workspace_key']}; "
        f"policy {payload['policy_version']}.",
    )
    return 0
