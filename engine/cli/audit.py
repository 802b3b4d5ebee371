"""``rfr audit ...``: verify the audit log, browse it, rotate the terminal's signing key.

``verify`` recomputes every event's hash and link and every signed head's signature, and names
each problem by sequence number. It checks the keys against the terminal's own audit signing
key file, or, with ``--public-key FILE``, against the public key an auditor recorded at
installation (``rfr workspace init`` prints it; ``rfr audit public-key`` exports it).
``--expect SEQ:HASH`` checks the log still holds a head recorded outside the terminal (the
auditor's note of a previous verification, or the last exported bundle): only that shows a log
rolled back or rebuilt by someone holding the terminal's keys. ``export`` writes the log since
the last export to removable media as a signed bundle encrypted to the oversight
(``engine.audit.export``). Every use is itself recorded.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from engine.audit.access import EventFilter
from engine.casework.monitoring import quarter_of
from engine.cli import emit
from engine.cli.terminal import acting, actor_option, terminal_options
from engine.errors import AuditError, UsageError
from engine.files import read_regular_file

MAX_KEY_BYTES = 16 * 1024
_EXPECT = re.compile(r"^(\d+):([0-9a-fA-F]{64})$")


def register(sub: Any) -> None:
    parser = sub.add_parser("audit", help="verify and browse the audit log; the terminal's audit key")
    parser.set_defaults(handler=lambda _args: (parser.print_help(), 0)[1])
    commands = parser.add_subparsers(dest="audit_command", metavar="COMMAND")
    common = terminal_options()

    verify = commands.add_parser("verify", help="check the audit log's chain and signed heads", parents=[common])
    verify.add_argument(
        "--public-key", type=Path, metavar="FILE", help="the audit public key (PEM) recorded at installation"
    )
    verify.add_argument(
        "--expect",
        metavar="SEQ:HASH",
        type=_expectation,
        help="a head recorded outside the terminal (a previous verification's, or the last bundle's)",
    )
    actor_option(verify)
    verify.set_defaults(handler=_verify)

    events = commands.add_parser("events", help="list audit events, newest first (auditors)", parents=[common])
    events.add_argument("--actor", dest="event_actor", metavar="USER", help="only this actor's events")
    events.add_argument("--action", metavar="NAME", help="only this action, or a family such as 'case' or 'user'")
    events.add_argument("--subject", metavar="ID", help="only events about this case, user or library")
    events.add_argument("--since", type=_date, metavar="YYYY-MM-DD", help="from this day")
    events.add_argument("--until", type=_date, metavar="YYYY-MM-DD", help="before this day")
    events.add_argument("--limit", type=int, default=200, metavar="N", help="at most N events (default 200)")
    actor_option(events)
    events.set_defaults(handler=_events)

    outcomes = commands.add_parser(
        "outcomes",
        help="adjudication outcomes by the recorded demographic fields (the quarterly review)",
        parents=[common],
    )
    outcomes.add_argument("--since", type=_date, metavar="YYYY-MM-DD", help="first day (default: this quarter's)")
    outcomes.add_argument(
        "--until", type=_date, metavar="YYYY-MM-DD", help="day after the last (default: next quarter's)"
    )
    actor_option(outcomes)
    outcomes.set_defaults(handler=_outcomes)

    public_key = commands.add_parser(
        "public-key", help="print the audit public key the log is signed with (PEM)", parents=[common]
    )
    actor_option(public_key)
    public_key.set_defaults(handler=_public_key)

    export = commands.add_parser(
        "export",
        help="write the log since the last export to removable media, signed and encrypted to the oversight",
        parents=[common],
        description="A new file in DIR (or the new file PATH): the events since the last export, the signed heads "
        "before and after, and the monitoring figures, as a DSSE envelope signed by the terminal's audit key, "
        "encrypted to the oversight public key configured as 'oversight_key_file' (RFR_OVERSIGHT_KEY_FILE). "
        "Auditors and engineers; the export is recorded.",
    )
    export.add_argument(
        "--to", dest="to", type=Path, required=True, metavar="PATH", help="the media folder or new file"
    )
    actor_option(export)
    export.set_defaults(handler=_export)

    rotate = commands.add_parser(
        "rotate-key", help="hand the log's signing over to a new key (engineers)", parents=[common]
    )
    rotate.add_argument("--reason", required=True, metavar="TEXT", help="why (recorded)")
    actor_option(rotate)
    rotate.set_defaults(handler=_rotate)


def _expectation(text: str) -> tuple[int, str]:
    match = _EXPECT.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not SEQ:HASH (a sequence number and 64 hex digits)")
    return int(match.group(1)), match.group(2).lower()


def _verify(args: argparse.Namespace) -> int:
    key = None
    if args.public_key is not None:
        key = read_regular_file(args.public_key, limit=MAX_KEY_BYTES, what="public key", error=AuditError)
    with acting(args) as (terminal, session):
        result = terminal.audit.verify(session, public_key=key, expect=args.expect)
    payload = result.as_dict()
    source = "the public key given" if args.public_key is not None else "the terminal's own audit key"
    if result.ok:
        assert result.head is not None or result.events == 0
        head = (
            ""
            if result.head is None
            else f" Record this head for next time: --expect {result.head[0]}:{result.head[1]}"
        )
        text = (
            f"Audit log verified with {source}: {result.events} events, {result.checkpoints} signed heads, "
            f"signed through seq {result.signed_through}.{head}"
        )
    else:
        text = "\n".join(
            [f"AUDIT LOG FAILED VERIFICATION ({result.events} events):", *(f"  {p}" for p in result.problems)]
        )
    emit(args, payload, text)
    return 0 if result.ok else 1


def _events(args: argparse.Namespace) -> int:
    selection = EventFilter(
        actor=args.event_actor,
        action=args.action,
        subject=args.subject,
        since=None if args.since is None else f"{args.since.isoformat()}T00:00:00.000000Z",
        until=None if args.until is None else f"{args.until.isoformat()}T00:00:00.000000Z",
    )
    with acting(args) as (terminal, session):
        found = terminal.audit.events(session, selection, limit=args.limit)
    rows = [
        {"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "subjects": e.subjects, "details": e.details}
        for e in found
    ]
    lines = [f"{e.seq:>7} {e.at} {e.actor:16} {e.action:28} {e.subjects}" for e in found]
    emit(args, {"events": rows}, "\n".join(lines) if lines else "No events match.")
    return 0


def _public_key(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        pem = terminal.audit.public_key_pem(session)
    emit(args, {"public_key": pem}, pem)
    return 0


def _rotate(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        seq = terminal.audit.rotate_key(session, terminal.config.audit_key_file, args.reason)
        pem = terminal.audit.public_key_pem(session)
    emit(
        args,
        {"rotated_at_seq": seq, "public_key": pem},
        f"Audit signing key rotated at seq {seq}; the auditors record the new public key:\n{pem}",
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        result = terminal.exports.export(session, args.to)
    more = " More events remain: export again." if result.more_to_export else ""
    emit(
        args,
        result.to_json(),
        f"Exported seq {result.first} to seq {result.last} ({result.events} events, quarters "
        f"{', '.join(result.quarters)}) to {result.path} ({result.bytes:,} bytes, sha256 {result.file_sha256}); "
        f"recorded at seq {result.recorded_seq}. The head an auditor can check this terminal against: --expect "
        f"{result.last}:{result.head_hash}.{more}",
    )
    return 0


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _outcomes(args: argparse.Namespace) -> int:
    default_since, default_until = quarter_of(datetime.now(UTC).date())
    since, until = args.since or default_since, args.until or default_until
    if since >= until:
        raise UsageError(f"--since {since} is not before --until {until}: give a period that is not empty")
    with acting(args) as (terminal, session):
        report = terminal.cases.outcome_report(session, since.isoformat(), until.isoformat())
    payload = report.to_json()
    lines = [
        f"Casework {since} to {until} (exclusive): {report.searches} searches run. {report.cases} cases closed, "
        f"{report.viable_match_cases} with a Viable Match; their {report.potential_matches} Potential Matches "
        f"adjudicated, {report.viable_potential_matches} viable (cases still open are in neither).",
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
