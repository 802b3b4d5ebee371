"""``rfr workspace ...``: create and inspect encrypted workspaces; shared workspace options.

Other command modules use ``workspace_options()`` (as an argparse parent) and
``open_workspace(args)`` so every command takes ``--workspace DIR`` (or ``RFR_WORKSPACE``),
``--key-file PATH`` and ``--json`` the same way. Passphrases come from ``RFR_PASSPHRASE`` or a
prompt, never from argv.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from engine.cli import emit
from engine.errors import UsageError
from engine.security.keys import PASSPHRASE_ENV, new_key
from engine.workspace import Workspace, check_can_create

WORKSPACE_ENV = "RFR_WORKSPACE"


def workspace_options() -> argparse.ArgumentParser:
    """Options every workspace command takes (use as ``parents=[workspace_options()]``)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--workspace", metavar="DIR", type=Path, help=f"the workspace folder (default: ${WORKSPACE_ENV})"
    )
    common.add_argument(
        "--key-file",
        metavar="PATH",
        type=Path,
        help=f"open with this key file instead of a passphrase (${PASSPHRASE_ENV} or a prompt)",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")
    return common


def workspace_dir(args: argparse.Namespace) -> Path:
    directory = getattr(args, "workspace", None) or os.environ.get(WORKSPACE_ENV)
    if not directory:
        raise UsageError(f"no workspace: pass --workspace DIR or set {WORKSPACE_ENV}")
    return Path(directory)


def open_workspace(args: argparse.Namespace) -> Workspace:
    """Open the workspace named by ``--workspace``/``RFR_WORKSPACE`` with the key from the usual sources."""
    return Workspace.unlock(workspace_dir(args), getattr(args, "key_file", None))


def register(sub: Any) -> None:
    parser = sub.add_parser("workspace", help="create and inspect encrypted workspaces")
    parser.set_defaults(handler=lambda _args: (parser.print_help(), 0)[1])
    commands = parser.add_subparsers(dest="workspace_command", metavar="COMMAND")

    init = commands.add_parser(
        "init",
        help="create an encrypted workspace",
        description=(
            "Create an encrypted workspace in DIR (new or empty). The key comes from a passphrase "
            f"(${PASSPHRASE_ENV} or asked twice), an existing key file, or a new key file."
        ),
    )
    init.add_argument("directory", metavar="DIR", type=Path)
    source = init.add_mutually_exclusive_group()
    source.add_argument("--key-file", metavar="PATH", type=Path, help="use this existing 32-byte key file")
    source.add_argument("--new-key-file", metavar="PATH", type=Path, help="create a new key file (mode 0600)")
    init.add_argument("--json", action="store_true", help="machine-readable output")
    init.set_defaults(handler=_init)

    info = commands.add_parser("info", help="show a workspace's format and schema", parents=[workspace_options()])
    info.set_defaults(handler=_info)


def _init(args: argparse.Namespace) -> int:
    directory = Path(args.directory).absolute()
    check_can_create(directory)
    key = new_key(key_file=args.key_file, new_key_file=args.new_key_file)
    try:
        ws = Workspace.create(directory, key)
    except BaseException:
        if args.new_key_file is not None:
            Path(args.new_key_file).unlink(missing_ok=True)  # a key for nothing is only a liability
        raise
    with ws:
        payload = {
            "workspace": str(ws.directory),
            "key": key.kdf.method,
            "key_file": str(Path(args.new_key_file or args.key_file).absolute())
            if key.kdf.method == "key-file"
            else None,
            "schema": ws.schema_versions(),
        }
    text = f"Created encrypted workspace {payload['workspace']} (opened with a {key.kdf.method})."
    if args.new_key_file is not None:
        text += f"\nNew key file {payload['key_file']}: keep it safe; without it the workspace cannot be opened."
    emit(args, payload, text)
    return 0


def _info(args: argparse.Namespace) -> int:
    from engine.library.store import list_libraries

    with open_workspace(args) as ws:
        versions = ws.schema_versions()
        payload: dict[str, Any] = {
            "workspace": str(ws.directory),
            "workspace_id": ws.header.workspace_id,
            "format_version": ws.header.format_version,
            "key": ws.header.kdf.method,
            "schema": versions,
            "libraries": len(list_libraries(ws)),
        }
    schema = ", ".join(f"{d} v{v}" for d, v in versions.items())
    emit(
        args,
        payload,
        f"Workspace {payload['workspace']}: format v{payload['format_version']}, schema {schema}, "
        f"{payload['libraries']} libraries, opened with a {payload['key']}.",
    )
    return 0
