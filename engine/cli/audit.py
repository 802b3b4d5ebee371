"""``rfr audit ...``: check the hash-chained audit log and its signed checkpoints.

``verify`` recomputes every event's hash and link and every checkpoint signature, and names
each problem by sequence number (an edited, deleted, reordered or truncated event). By default
it checks the signatures with the terminal key stored in the workspace; an auditor passes
``--public-key FILE`` with the key exported earlier (``rfr audit public-key``), so that a
workspace whose key was swapped cannot vouch for itself.
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from engine import audit
from engine.cli import emit
from engine.cli.user import actor_option
from engine.cli.workspace import open_workspace, workspace_options
from engine.errors import AuditError, UsageError

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

    outcomes = commands.add_parser(
        "outcomes",
        help="adjudication outcomes by the recorded demographic fields (the quarterly review)",
        parents=[common],
    )
    outcomes.add_argument("--since", type=_date, metavar="YYYY-MM-DD", help="first day (default: this quarter's)")
    outcomes.add_argument(
        "--until", type=_date, metavar="YYYY-MM-DD", help="day after the last (default: next quarter's)"
    )
    actor_option(outcomes, required=False, help_text="who is reading (default: the workspace key holder)")
    outcomes.set_defaults(handler=_outcomes)

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


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def quarter_of(day: date) -> tuple[date, date]:
    """The calendar quarter holding ``day``: its first day and the first day of the next."""
    start = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    end = date(start.year + 1, 1, 1) if start.month == 10 else date(start.year, start.month + 3, 1)
    return start, end


def _outcomes(args: argparse.Namespace) -> int:
    from engine.cli.case import casework_session

    default_since, default_until = quarter_of(datetime.now(UTC).date())
    since, until = args.since or default_since, args.until or default_until
    if since >= until:
        raise UsageError(f"--since {since} is not before --until {until}: give a period that is not empty")
    with casework_session(args) as (cases, session):
        report = cases.outcome_report(session, since.isoformat(), until.isoformat())
    payload = report.to_json()
    lines = [
        f"Casework outcomes {since} to {until} (exclusive): {report.cases} closed cases, "
        f"{report.viable_match_cases} with a Viable Match; {report.potential_matches} Potential Matches "
        f"adjudicated, {report.viable_potential_matches} viable.",
    ]
    for title, breakdowns in (("By case", report.by_case), ("By Potential Match", report.by_potential_match)):
        lines.append(f"{title}:")
        for breakdown in breakdowns:
            for row in breakdown.rows:
                figure = row.too_small or (
                    f"{row.positive.events}/{row.positive.trials} = {row.positive.rate:.1%} "
                    f"({row.positive.low:.1%}-{row.positive.high:.1%})"
                    if row.positive is not None
                    else ""
                )
                lines.append(f"  {breakdown.field_name:10} {row.value:16} {row.records:6}  {figure}")
    emit(args, payload, "\n".join(lines))
    return 0


def _public_key(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        pem = audit.export_public_key_pem(ws._require_open())
    emit(args, {"public_key": pem}, pem)
    return 0
