"""``rfr oversight ...``: the oversight's own workspace: its keys, its auditors, terminals, bundle imports, reports.

Run on the oversight's machine, never on a terminal. ``keys init`` makes the oversight key pair
(the public file goes to every terminal's ``oversight_key_file``; the private file stays here,
under a passphrase from ``RFR_OVERSIGHT_PASSPHRASE`` or a prompt). ``init`` makes the oversight
workspace and its audit signing key file, as ``rfr workspace init`` does for a terminal; accounts
work as on a terminal (``user add`` without ``--as`` only for the first engineer; every other
account asked by one engineer and confirmed by another). Auditors register each terminal with the
audit public key recorded at its installation, import bundles from removable media, and produce
the quarterly and annual reports. Every use is recorded in the oversight workspace's own log.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.cli import emit
from engine.cli import terminal as terminal_cli
from engine.cli.secret_input import NEW_PASSWORD_ENV, PASSWORD_ENV, read_secret
from engine.errors import PermissionRefused, RfrError, UsageError
from engine.security.users import Role

PRIVATE_KEY_ENV = "RFR_OVERSIGHT_PRIVATE_KEY_FILE"
MAX_PUBLIC_KEY_BYTES = 16 * 1024
_ROLES = (Role.AUDITOR.value, Role.ENGINEER.value)


def register(sub: Any) -> None:
    parser = sub.add_parser("oversight", help="the oversight workspace: keys, terminals, bundle imports, reports")
    parser.set_defaults(handler=lambda _args: (parser.print_help(), 0)[1])
    commands = parser.add_subparsers(dest="oversight_command", metavar="COMMAND")
    common = _options()

    keys = commands.add_parser("keys", help="the oversight key pair bundles are encrypted to")
    keys.set_defaults(handler=lambda _args: (keys.print_help(), 0)[1])
    keys_commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND")
    keys_init = keys_commands.add_parser(
        "init",
        help="make the oversight key pair (X25519; the private key under a passphrase)",
        description="The passphrase comes from RFR_OVERSIGHT_PASSPHRASE or is asked twice; it is never on argv.",
    )
    keys_init.add_argument("--private-key", type=Path, required=True, metavar="PATH", help="new private key file")
    keys_init.add_argument("--public-key", type=Path, required=True, metavar="PATH", help="new public key file")
    keys_init.add_argument("--json", action="store_true", help="machine-readable output")
    keys_init.set_defaults(handler=_keys_init)

    init = commands.add_parser(
        "init",
        help="create the oversight workspace and its audit signing key",
        description="Like 'rfr workspace init': a key from a passphrase (RFR_PASSPHRASE or asked twice), an "
        "existing key file or a new one; the audit signing key is a new file of its own.",
    )
    init.add_argument("directory", metavar="DIR", type=Path)
    source = init.add_mutually_exclusive_group()
    source.add_argument("--key-file", metavar="PATH", type=Path, help="use this existing 32-byte key file")
    source.add_argument("--new-key-file", metavar="PATH", type=Path, help="create a new key file (mode 0600)")
    init.add_argument("--new-audit-key-file", metavar="PATH", type=Path, required=True, help="new audit signing key")
    init.add_argument("--json", action="store_true", help="machine-readable output")
    init.set_defaults(handler=_init)

    user = commands.add_parser("user", help="the oversight's accounts (as on a terminal: two engineers)")
    user.set_defaults(handler=lambda _args: (user.print_help(), 0)[1])
    user_commands = user.add_subparsers(dest="user_command", metavar="COMMAND")
    add = user_commands.add_parser("add", help="ask to add an auditor or engineer", parents=[common])
    add.add_argument("username", metavar="USER")
    add.add_argument("--role", action="append", required=True, choices=_ROLES, help="repeatable")
    add.add_argument("--display-name", default="", metavar="TEXT")
    add.add_argument("--as", dest="actor", metavar="USER", help="the engineer asking (left out for the first one)")
    add.set_defaults(handler=_user_add)
    confirm = user_commands.add_parser("confirm", help="confirm another engineer's request", parents=[common])
    confirm.add_argument("request", metavar="REQUEST", type=int)
    _actor(confirm)
    confirm.set_defaults(handler=_user_confirm)
    passwd = user_commands.add_parser("passwd", help="change your own password", parents=[common])
    passwd.add_argument("username", metavar="USER")
    passwd.set_defaults(handler=_user_passwd)
    users = user_commands.add_parser("list", help="list the accounts", parents=[common])
    _actor(users)
    users.set_defaults(handler=_user_list)

    terminals = commands.add_parser("terminals", help="the terminals whose bundles are accepted here")
    terminals.set_defaults(handler=lambda _args: (terminals.print_help(), 0)[1])
    terminal_commands = terminals.add_subparsers(dest="terminals_command", metavar="COMMAND")
    terminal_add = terminal_commands.add_parser(
        "add", help="register a terminal and its audit public key (auditors)", parents=[common]
    )
    terminal_add.add_argument("name", metavar="NAME", help="the terminal's name, as its configuration gives it")
    terminal_add.add_argument(
        "--audit-public-key",
        type=Path,
        required=True,
        metavar="FILE",
        help="the audit public key recorded at the terminal's installation ('rfr audit public-key')",
    )
    _actor(terminal_add)
    terminal_add.set_defaults(handler=_terminal_add)
    terminal_list = terminal_commands.add_parser(
        "list", help="terminals and how far their logs reach", parents=[common]
    )
    _actor(terminal_list)
    terminal_list.set_defaults(handler=_terminal_list)

    importer = commands.add_parser(
        "import",
        help="verify and import audit bundles (auditors)",
        parents=[common],
        description=f"The private key file from --private-key or {PRIVATE_KEY_ENV}; its passphrase from "
        "RFR_OVERSIGHT_PASSPHRASE or a prompt. Exit status 1 when any bundle is refused or needs an auditor's look "
        "(a fork, a rolled-back or rebuilt log, an overlap).",
    )
    importer.add_argument("bundles", nargs="+", type=Path, metavar="BUNDLE")
    importer.add_argument("--private-key", type=Path, metavar="FILE", help="the oversight private key file")
    _actor(importer)
    importer.set_defaults(handler=_import)

    findings = commands.add_parser(
        "findings", help="gaps, forks, rollbacks and alerts found (auditors)", parents=[common]
    )
    findings.add_argument("--all", action="store_true", help="resolved ones too")
    _actor(findings)
    findings.set_defaults(handler=_findings)

    report = commands.add_parser(
        "report", help="the Board's quarterly figures or the annual report's aggregates (auditors)", parents=[common]
    )
    period = report.add_mutually_exclusive_group(required=True)
    period.add_argument("--quarter", metavar="YYYYQn", help="a calendar quarter, e.g. 2026Q3")
    period.add_argument("--year", metavar="YYYY", help="a calendar year, e.g. 2026 (the annual public report)")
    report.add_argument("--out", type=Path, metavar="DIR", help="write report.html and the CSV files here")
    _actor(report)
    report.set_defaults(handler=_report)


def add_workspace_options(parser: argparse.ArgumentParser) -> None:
    """Where the oversight workspace and its keys are: the same options for ``rfr oversight`` and ``rfr-oversight``."""
    parser.add_argument(
        "--workspace", type=Path, metavar="DIR", help="the oversight workspace (RFR_OVERSIGHT_WORKSPACE)"
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        metavar="PATH",
        help="its key file (RFR_OVERSIGHT_WORKSPACE_KEY_FILE; else a passphrase)",
    )
    parser.add_argument(
        "--audit-key-file", type=Path, metavar="PATH", help="its audit signing key file (RFR_OVERSIGHT_AUDIT_KEY_FILE)"
    )


def _options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    add_workspace_options(common)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    return common


def _actor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as", dest="actor", metavar="USER", required=True, help=f"who is acting (password from ${PASSWORD_ENV})"
    )


def workspace_config(args: argparse.Namespace) -> Any:
    """The oversight's configuration from ``add_workspace_options``' options and the environment."""
    from engine.oversight.service import OversightConfig

    return OversightConfig.resolve(
        {"workspace": args.workspace, "key_file": args.key_file, "audit_key_file": args.audit_key_file}
    )


@contextmanager
def _opened(args: argparse.Namespace) -> Iterator[Any]:
    from engine.oversight.service import Oversight

    oversight = Oversight.open(workspace_config(args), scrypt=terminal_cli.SCRYPT)
    try:
        yield oversight
    finally:
        oversight.close()


@contextmanager
def _acting(args: argparse.Namespace) -> Iterator[tuple[Any, Any]]:
    with _opened(args) as oversight:
        if not args.actor:
            raise UsageError("say who is acting: --as USER")
        session = oversight.accounts.login(args.actor, read_secret(PASSWORD_ENV, f"Password for {args.actor}: "))
        try:
            yield oversight, session
        finally:
            if oversight.accounts.is_signed_in(session):
                oversight.accounts.logout(session)


def _passphrase(confirm: bool) -> str:
    from engine.oversight.keys import PASSPHRASE_ENV

    return read_secret(PASSPHRASE_ENV, "Oversight key passphrase: ", confirm=confirm)


# ---- handlers ----------------------------------------------------------------------------------


def _keys_init(args: argparse.Namespace) -> int:
    from engine.oversight.keys import create_key_pair

    key_id = create_key_pair(args.private_key, args.public_key, _passphrase(confirm=True))
    emit(
        args,
        {"private_key": str(args.private_key), "public_key": str(args.public_key), "key_id": key_id},
        f"Oversight key pair made (key id {key_id}). Give {args.public_key} to every terminal (its "
        f"'oversight_key_file'); keep {args.private_key} and its passphrase here, apart from each other.",
    )
    return 0


def _init(args: argparse.Namespace) -> int:
    from engine.audit import public_key_pem
    from engine.oversight.service import Oversight, OversightConfig
    from engine.security.keys import new_key
    from engine.workspace import check_can_create

    directory = Path(args.directory).absolute()
    check_can_create(directory)
    if args.new_audit_key_file.exists():
        raise UsageError(f"{args.new_audit_key_file} already exists: an audit signing key is never overwritten")
    key = new_key(key_file=args.key_file, new_key_file=args.new_key_file)
    config = OversightConfig(directory, args.new_audit_key_file.absolute(), args.new_key_file or args.key_file)
    try:
        oversight = Oversight.create(config, key, scrypt=terminal_cli.SCRYPT)
    except BaseException:
        if args.new_key_file is not None:
            Path(args.new_key_file).unlink(missing_ok=True)
        raise
    with oversight:
        payload = {
            "workspace": str(directory),
            "audit_key_file": str(config.audit_key_file),
            "audit_key_id": oversight.ws.audit_key_id,
            "audit_public_key": public_key_pem(oversight.ws.audit_public_key),
        }
    emit(
        args,
        payload,
        f"Created oversight workspace {directory}; its audit signing key {config.audit_key_file} "
        f"(fingerprint {payload['audit_key_id']}).\nNext: 'rfr oversight user add NAME --role engineer' (the first "
        "engineer), then auditors, asked by one engineer and confirmed by another.",
    )
    return 0


def _user_add(args: argparse.Namespace) -> int:
    if args.actor is None:
        with _opened(args) as oversight:
            if set(args.role) != {Role.ENGINEER.value}:
                raise PermissionRefused(
                    "adding a user refused: without --as, only the first engineer can be added (--role engineer)"
                )
            password = read_secret(NEW_PASSWORD_ENV, f"New password for {args.username}: ", confirm=True)
            user = oversight.accounts.bootstrap_engineer(args.username, password, display_name=args.display_name)
        emit(args, {"user": user.username}, f"Added {user.username}, the first engineer of this oversight workspace.")
        return 0
    with _acting(args) as (oversight, session):
        first = None
        if oversight.accounts.adds_at_once(args.role, by=session):
            first = read_secret(NEW_PASSWORD_ENV, f"First password for {args.username}: ", confirm=True)
        request = oversight.accounts.request_add(
            args.username, args.role, by=session, display_name=args.display_name, password=first
        )
    text = (
        f"Done: {request.describe()}."
        if request.state == "confirmed"
        else f"Asked to {request.describe()}: request {request.id} waits for a second engineer "
        f"('rfr oversight user confirm {request.id} --as ENGINEER')."
    )
    emit(args, request.to_json(), text)
    return 0


def _user_confirm(args: argparse.Namespace) -> int:
    from engine.security.users import RequestKind

    with _acting(args) as (oversight, session):
        request = oversight.accounts.confirmable(args.request, by=session)
        password = None
        if request.kind in (RequestKind.ADD, RequestKind.RESET):
            password = read_secret(NEW_PASSWORD_ENV, f"First password for {request.username}: ", confirm=True)
        oversight.accounts.confirm(args.request, by=session, password=password)
    emit(args, {"request": args.request}, f"Confirmed request {args.request}: {request.describe()}.")
    return 0


def _user_passwd(args: argparse.Namespace) -> int:
    with _opened(args) as oversight:
        current = read_secret(PASSWORD_ENV, f"Current password for {args.username}: ")
        new = read_secret(NEW_PASSWORD_ENV, "New password: ", confirm=True)
        user = oversight.accounts.change_password(args.username, current, new)
    emit(args, {"user": user.username}, f"Password of {user.username} changed.")
    return 0


def _user_list(args: argparse.Namespace) -> int:
    with _acting(args) as (oversight, session):
        now = oversight.ws.now()
        users = [u.as_dict(now) for u in oversight.accounts.directory(session)]
    lines = [f"{u['username']:20} {', '.join(u['roles'])}" for u in users]
    emit(args, {"users": users}, "\n".join(lines) if lines else "No users yet.")
    return 0


def _terminal_add(args: argparse.Namespace) -> int:
    from engine.errors import AuditError
    from engine.files import read_regular_file

    key = read_regular_file(args.audit_public_key, limit=MAX_PUBLIC_KEY_BYTES, what="public key", error=AuditError)
    with _acting(args) as (oversight, session):
        record = oversight.add_terminal(session, args.name, key)
    emit(
        args,
        record.to_json(),
        f"Registered terminal {record.name} with audit key {record.keys[0]}; its bundles can now be imported.",
    )
    return 0


def _terminal_list(args: argparse.Namespace) -> int:
    with _acting(args) as (oversight, session):
        records = oversight.terminals(session)
    lines = [
        f"{r.name:24} accepted through seq {r.accepted_through:<8} last event {r.last_event_at or '-':28} "
        f"bundles {r.bundles or '{}'}; open findings {r.open_findings}"
        for r in records
    ]
    emit(args, {"terminals": [r.to_json() for r in records]}, "\n".join(lines) if lines else "No terminals yet.")
    return 0


def _import(args: argparse.Namespace) -> int:
    from engine.oversight.imports import ATTENTION, REFUSED, ImportOutcome, import_bundle, read_bundle_file
    from engine.oversight.keys import read_private_key

    key_file = args.private_key or (Path(value) if (value := os.environ.get(PRIVATE_KEY_ENV)) else None)
    if key_file is None:
        raise UsageError(
            f"the oversight private key is needed to open bundles: --private-key FILE or {PRIVATE_KEY_ENV}"
        )
    outcomes: list[ImportOutcome] = []
    with _acting(args) as (oversight, session):
        oversight.auditor(session, "importing audit bundles")
        private = read_private_key(key_file, _passphrase(confirm=False))
        for path in args.bundles:
            try:
                data = read_bundle_file(path)
                outcomes.append(import_bundle(oversight, session, data, private, source=path.name))
            except RfrError as exc:  # BundleRefused, or a file that cannot be read
                shown = "".join(c if c.isprintable() else "?" for c in path.name)[:200]
                outcomes.append(ImportOutcome(shown, REFUSED, exc.diagnostics()))
    lines = []
    for o in outcomes:
        where = "" if o.terminal is None else f" {o.terminal} seq {o.first}-{o.last}"
        released = f" (then accepted quarantined bundles {list(o.released)})" if o.released else ""
        lines.append(f"{o.outcome.upper():12} {o.source}{where}: {o.message}{released}")
    emit(args, {"imports": [o.to_json() for o in outcomes]}, "\n".join(lines))
    needs_look = [o for o in outcomes if o.outcome in ATTENTION]
    if needs_look:
        sys.stderr.write(f"rfr: {len(needs_look)} of {len(outcomes)} bundles need an auditor's attention\n")
    return 1 if needs_look else 0


def _findings(args: argparse.Namespace) -> int:
    with _acting(args) as (oversight, session):
        found = oversight.findings(session, include_resolved=args.all)
    lines = [f"{f.id:>4} {f.terminal:20} {f.kind:15} {f.detail}" for f in found]
    emit(args, {"findings": [f.to_json() for f in found]}, "\n".join(lines) if lines else "No findings.")
    return 0


def _report(args: argparse.Namespace) -> int:
    from engine.oversight.report import Period, board_report, write_report

    period = Period.parse(args.quarter, args.year)
    with _acting(args) as (oversight, session):
        report = board_report(oversight, session, period)
    written = [] if args.out is None else write_report(report, args.out)
    t = report.totals
    text = [
        f"{report.title}: {t.searches} searches; {t.approvals} approvals, {t.rejections} rejections; {t.closed} cases "
        f"closed, {t.viable_match_cases} with a Viable Match ({t.viable_matches} Viable Matches among "
        f"{t.adjudicated} Potential Matches adjudicated); {t.peer_reviews.get('agreed', 0)} peer reviews agreed, "
        f"{t.peer_reviews.get('sent_back', 0)} sent back; {t.searches_under_18} searches under 18, "
        f"{t.searches_under_16} under 16.",
    ]
    if not report.complete:
        text.append("INCOMPLETE: " + "; ".join(_coverage_line(c) for c in report.coverage if _coverage_line(c)))
    if written:
        text.append(f"Written: {', '.join(str(p) for p in written)}")
    payload = report.to_json()
    payload["written"] = [str(p) for p in written]
    emit(args, payload, "\n".join(text))
    return 0


def _coverage_line(coverage: Any) -> str:
    parts = []
    if not coverage.complete:
        parts.append(f"{coverage.terminal} accepted only up to {coverage.last_event_at or 'nothing'}")
    parts += [f"{coverage.terminal}: {f}" for f in coverage.open_findings]
    return "; ".join(parts)
