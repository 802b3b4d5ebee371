"""``rfr audit ...``: check the hash-chained audit log and its signed checkpoints.

``verify`` recomputes every event's hash and link and every checkpoint signature, and names
each problem by sequence number (an edited, deleted, reordered or truncated event). By default
it checks the signatures with the terminal key stored in the workspace; an auditor passes
``--public-key FILE`` with the key exported earlier (``rfr audit public-key``), so that a
workspace whose key was swapped cannot vouch for itself.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine import audit
from engine.cli import emit
from engine.cli.workspace import open_workspace, workspace_options
from engine.errors import AuditError

MAX_KEY_BYTES = 16 * 1024


def register(sub: Any) -> None:
    parser = sub.add_parser("audit", help="verify the audit log; export the terminal's public key")
    parser.set_defaults(handler=lambda _args: (parser.print_help(), 0)[1])
    commands = parser.add_subparsers(dest="audit_command", metavar="COMMAND")
    common = workspace_options()

    verify = commands.add_parser("verify", help="check the audit log's chain and signed checkpoints", parents=[common])
    verify.add_argument(
        "--public-key", type=Path, metavar="FILE", help="the terminal's exported public key (PEM) to verify with"
    )
    verify.set_defaults(handler=_verify)

    public_key = commands.add_parser("public-key", help="print the terminal's audit public key (PEM)", parents=[common])
    public_key.set_defaults(handler=_public_key)


def _read_key(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise AuditError(f"public key {path} cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_KEY_BYTES:
        raise AuditError(f"public key {path} is too large to be a public key")
    return data


def _verify(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        conn = ws._require_open()
        key = _read_key(args.public_key) if args.public_key is not None else audit.terminal_public_key(conn)
        with ws.cursor():
            result = audit.verify(conn, key)
    payload = result.as_dict()
    source = "the given public key" if args.public_key is not None else "the key stored in the workspace"
    if result.ok:
        text = (
            f"Audit log verified with {source}: {result.events} events, {result.checkpoints} signed checkpoints, "
            f"signed through seq {result.signed_through}."
        )
    else:
        text = "\n".join(
            [f"AUDIT LOG FAILED VERIFICATION ({result.events} events):", *(f"  {p}" for p in result.problems)]
        )
    emit(args, payload, text)
    return 0 if result.ok else 1


def _public_key(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        pem = audit.export_public_key_pem(ws._require_open())
    emit(args, {"public_key": pem}, pem)
    return 0
