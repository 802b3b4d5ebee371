"""``rfr case ...``: casework, step by step: new, submit, approve, reject, search, adjudicate, peer-review, close.

The acting person is ``--as USER`` (password from ``RFR_PASSWORD`` or a prompt), signed in for
the one command; approving and signing off a peer review use that fresh password entry as the
re-authentication the policy asks for. ``show`` and ``report`` take ``--as`` too; without it
the reader is the workspace key holder, recorded as such. A refusal exits non-zero with one
line naming the rule, e.g. ``approval refused: case needs Superintendent, you are Inspector``.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.casework import (
    PLAINTEXT_WARNING,
    Case,
    CaseState,
    Casework,
    MatchReport,
    SearchResult,
    SubmissionForm,
    render_match_report,
    write_report_file,
)
from engine.cli import emit
from engine.cli import library as library_cli
from engine.cli.user import accounts_for, actor_option, cli_policy, sign_in
from engine.cli.workspace import open_workspace, workspace_options
from engine.errors import ImageError, UsageError
from engine.library.enrol import MAX_IMAGE_BYTES
from engine.library.store import purge_expired
from engine.scoring import scoring_json, scoring_text
from engine.security.users import Accounts, Session
from engine.workspace import Workspace


@dataclass
class _Context:
    ws: Workspace
    accounts: Accounts
    cases: Casework


@contextmanager
def _casework(args: argparse.Namespace) -> Iterator[_Context]:
    """Open the workspace, purge lapsed temporary libraries (the policy), and set up casework."""
    policy = cli_policy()
    with open_workspace(args) as ws:
        for record in purge_expired(ws, actor=f"os-user:{getpass.getuser()}"):
            sys.stderr.write(
                f"rfr: temporary library {record.library!r} destroyed: authorisation {record.authorisation} lapsed"
                f" at {record.expires_at}\n"
            )
        accounts = accounts_for(ws, policy)
        yield _Context(ws, accounts, Casework(ws, accounts, policy))


@contextmanager
def casework_session(args: argparse.Namespace) -> Iterator[tuple[Casework, Session | None]]:
    """Casework and the reader's session (None: the workspace key holder), for read-only commands."""
    with _casework(args) as ctx:
        yield ctx.cases, _session(ctx, args)


def _session(ctx: _Context, args: argparse.Namespace) -> Session | None:
    return sign_in(ctx.accounts, args.actor) if getattr(args, "actor", None) else None


def _required_session(ctx: _Context, args: argparse.Namespace) -> Session:
    session = _session(ctx, args)
    if session is None:
        raise UsageError("say who is acting: --as USER")
    return session


def register(sub: Any) -> None:
    parser = sub.add_parser("case", help="casework: submission, approval, search, adjudication, Match Report")
    parser.set_defaults(handler=lambda _args: (parser.print_help(), 0)[1])
    commands = parser.add_subparsers(dest="case_command", metavar="COMMAND")
    common = workspace_options()

    new = commands.add_parser(
        "new", help="complete an RFR Submission Form for a Probe Image (a draft case)", parents=[common]
    )
    actor_option(new, required=True)
    new.add_argument("--use-case", metavar="KEY", help="permitted use case key from the policy")
    new.add_argument("--reference", metavar="REF", help="crime or occurrence reference")
    new.add_argument("--offence", metavar="TEXT", help="offence type")
    new.add_argument(
        "--justification", metavar="TEXT", help="legitimate aim; why the search is necessary and proportionate"
    )
    new.add_argument(
        "--pre-checks",
        metavar="TEXT",
        help="confirms all Pre-RFR Checks are exhausted or unviable: say what was tried",
    )
    new.add_argument("--age-band", metavar="BAND", help="apparent age band: under13, 13-15, 16-17, adult, unknown")
    new.add_argument("--disability", action="store_true", help="a relevant disability affecting facial appearance")
    new.add_argument("--pre-reassignment", action="store_true", help="the image pre-dates gender reassignment")
    new.add_argument("--coverings", default="", metavar="TEXT", help="head or face coverings")
    new.add_argument("--injuries", default="", metavar="TEXT", help="injuries")
    new.add_argument("--probe-source", default="not_stated", choices=["police", "other", "not_stated"])
    new.add_argument("--captured", default="", metavar="WHEN", help="when the Probe Image was captured")
    new.add_argument("--obtained", default="", metavar="HOW", help="how the Probe Image was obtained")
    new.add_argument("--probe", required=True, metavar="IMAGE", type=Path, help="the Probe Image (JPEG or PNG)")
    new.add_argument("--library", action="append", metavar="NAME", help="library to search (repeatable)")
    new.set_defaults(handler=_new)

    for name, help_text, needs_reason in (
        ("submit", "submit a draft case for approval", False),
        ("approve", "approve a submitted case (re-authenticates)", True),
        ("reject", "reject a submitted case (its Probe Image is deleted)", True),
        ("search", "run an approved search", False),
        ("close", "close an adjudicated case (retention applies at once)", False),
    ):
        step = commands.add_parser(name, help=help_text, parents=[common])
        step.add_argument("case", metavar="CASE")
        actor_option(step, required=True)
        step.add_argument(
            "--reason", metavar="TEXT", help="recorded on the case" + (" (required)" if needs_reason else "")
        )
        if name == "search":
            step.add_argument("--upsample", type=int, default=0, choices=range(0, 3), help="detector upsampling")
            step.add_argument("--device", default="CPU", help="inference device (default CPU)")
        step.set_defaults(handler=_STEPS[name])

    adjudicate = commands.add_parser("adjudicate", help="decide one Potential Match", parents=[common])
    adjudicate.add_argument("case", metavar="CASE")
    actor_option(adjudicate, required=True)
    adjudicate.add_argument("--candidate", type=int, required=True, metavar="RANK", help="rank in the candidate list")
    adjudicate.add_argument("--decision", required=True, choices=["viable", "not-viable"])
    adjudicate.add_argument("--report", type=Path, metavar="FILE", help="the Match Report (YAML), needed for viable")
    adjudicate.set_defaults(handler=_adjudicate)

    review = commands.add_parser(
        "peer-review", help="peer review a 'no viable match' (re-authenticates)", parents=[common]
    )
    review.add_argument("case", metavar="CASE")
    actor_option(review, required=True)
    verdict = review.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--agree", action="store_true", help="agree: no viable match")
    verdict.add_argument("--disagree", action="store_true", help="disagree: back to the RFR User")
    review.add_argument("--reason", required=True, metavar="TEXT")
    review.set_defaults(handler=_peer_review)

    report = commands.add_parser("report", help="export the Match Report as printable HTML", parents=[common])
    report.add_argument("case", metavar="CASE")
    report.add_argument("--out", required=True, type=Path, metavar="FILE", help="new file to write (mode 0600)")
    actor_option(report, required=False, help_text="who is exporting (default: the workspace key holder)")
    report.set_defaults(handler=_report)

    listing = commands.add_parser("list", help="list cases (a queue with --state)", parents=[common])
    listing.add_argument("--state", choices=[s.value for s in CaseState], help="only cases in this state")
    actor_option(listing, required=False, help_text="who is reading (default: the workspace key holder)")
    listing.set_defaults(handler=_list)

    show = commands.add_parser("show", help="show a case", parents=[common])
    show.add_argument("case", metavar="CASE")
    actor_option(show, required=False, help_text="who is reading (default: the workspace key holder)")
    show.set_defaults(handler=_show)


def _summary(case: Case) -> dict[str, Any]:
    return {"case": case.id, "state": case.state.value, "required_rank": case.required_rank, "flags": case.flags}


def _new(args: argparse.Namespace) -> int:
    path: Path = args.probe
    if not path.is_file():
        raise ImageError(f"Probe Image {path} does not exist or is not a file")
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise ImageError(f"Probe Image {path} is larger than {MAX_IMAGE_BYTES >> 20} MiB")
    with _casework(args) as ctx:
        session = _required_session(ctx, args)
        user = ctx.accounts.check(session)
        form = SubmissionForm.create(
            ctx.cases.policy,
            completed_by=user.username,
            completed_as=ctx.cases.completed_as(user),
            use_case=args.use_case or "",
            reference=args.reference or "",
            offence=args.offence or "",
            justification=args.justification or "",
            pre_checks_exhausted=bool(args.pre_checks and args.pre_checks.strip()),
            pre_checks_tried=args.pre_checks or "",
            age_band=args.age_band or "",
            relevant_disability=args.disability,
            pre_dates_gender_reassignment=args.pre_reassignment,
            coverings=args.coverings,
            injuries=args.injuries,
            probe_source=args.probe_source,
            probe_captured=args.captured,
            probe_obtained=args.obtained,
            libraries=args.library or [],
        )
        case = ctx.cases.new_case(session, form, path.read_bytes())
    payload = _summary(case)
    emit(
        args,
        payload,
        f"Case {case.id} drafted: needs approval by {case.required_rank} or above; flags: "
        f"{', '.join(case.flags) or 'none'}.",
    )
    return 0


def _step_text(case: Case, verb: str) -> str:
    return f"Case {case.id} {verb}: now {case.state.value}."


def _submit(args: argparse.Namespace) -> int:
    with _casework(args) as ctx:
        case = ctx.cases.submit(_required_session(ctx, args), args.case)
    emit(args, _summary(case), _step_text(case, "submitted"))
    return 0


def _approve(args: argparse.Namespace) -> int:
    with _casework(args) as ctx:
        case = ctx.cases.approve(_required_session(ctx, args), args.case, args.reason)
    emit(args, _summary(case), _step_text(case, f"approved by {case.decided_by} ({case.decided_rank})"))
    return 0


def _reject(args: argparse.Namespace) -> int:
    with _casework(args) as ctx:
        case = ctx.cases.reject(_required_session(ctx, args), args.case, args.reason)
    emit(args, _summary(case), _step_text(case, "rejected; its Probe Image was deleted"))
    return 0


def _search(args: argparse.Namespace) -> int:
    with _casework(args) as ctx:
        session = _required_session(ctx, args)
        engine, loader = library_cli.face_tools(args.device)
        result = ctx.cases.search(session, args.case, engine, loader=loader, upsample=args.upsample)
        caution = ctx.cases.policy.score_display.rank_caution
    payload = _search_json(result, caution)
    emit(args, payload, _search_text(payload))
    return 0


def _search_json(result: SearchResult, caution: str) -> dict[str, Any]:
    """The library search's shape (``probes``, ``libraries``, ``top_k``, ``model_id``, ``notice``) plus the case."""
    return {
        "case": result.case.id,
        "state": result.case.state.value,
        "probes": [
            {
                "path": f"Probe Image of case {result.case.id}",
                "candidates": [c.to_json(result.meaning) for c in result.candidates],
                "quality_warnings": list(result.quality_warnings),
            }
        ],
        "libraries": list(result.libraries),
        "top_k": result.top_k,
        "model_id": result.model_id,
        "scoring": scoring_json(result.meaning, result.model_id, result.model_sha256),
        "notice": library_cli.CAVEAT,
        "caution": caution,
    }


def _search_text(payload: dict[str, Any]) -> str:
    probe = payload["probes"][0]
    lines = [
        payload["notice"],
        payload["caution"],
        scoring_text(payload["scoring"]),
        f"\nCase {payload['case']}: {len(probe['candidates'])} Potential Matches",
    ]
    lines += [f"  quality warning: {w}" for w in probe["quality_warnings"]]
    lines.append(f"  {'RANK':>4} {'SCORE':>6}  {'SUBJECT':28} {'LIBRARY':16} IMAGE")
    for c in probe["candidates"]:
        lines.append(f"  {c['rank']:>4} {c['score']:>6.3f}  {c['subject']:28} {c['library']:16} {c['image_id']}")
        if payload["scoring"]["calibrated"]:
            lines.append(f"       {c['meaning']}")
    return "\n".join(lines)


def _adjudicate(args: argparse.Namespace) -> int:
    report = MatchReport.from_file(args.report) if args.report is not None else None
    decision = args.decision.replace("-", "_")
    with _casework(args) as ctx:
        case = ctx.cases.adjudicate(_required_session(ctx, args), args.case, args.candidate, decision, report)
    payload = {**_summary(case), "candidate": args.candidate, "decision": decision}
    emit(args, payload, _step_text(case, f"Potential Match {args.candidate} adjudicated {args.decision}"))
    return 0


def _peer_review(args: argparse.Namespace) -> int:
    with _casework(args) as ctx:
        case = ctx.cases.peer_review(_required_session(ctx, args), args.case, bool(args.agree), args.reason)
    payload = {**_summary(case), "agree": bool(args.agree)}
    emit(args, payload, _step_text(case, "peer reviewed (" + ("agreed" if args.agree else "disagreed") + ")"))
    return 0


def _close(args: argparse.Namespace) -> int:
    with _casework(args) as ctx:
        case = ctx.cases.close(_required_session(ctx, args), args.case, args.reason)
    payload = {
        **_summary(case),
        "outcome": None if case.outcome is None else case.outcome.value,
        "probe_template_deleted": not case.probe_template_held,
        "probe_image_deleted": not case.probe_image_held,
    }
    emit(args, payload, _step_text(case, f"closed ({payload['outcome']})"))
    return 0


def _report(args: argparse.Namespace) -> int:
    out: Path = args.out
    with _casework(args) as ctx:
        session = _session(ctx, args)
        material = ctx.cases.report_material(session, args.case, str(out.absolute()))
        text = render_match_report(material, ctx.cases.policy)
    write_report_file(out, text)
    sys.stderr.write(f"rfr: warning: {PLAINTEXT_WARNING}\n")
    emit(
        args,
        {"case": material.case.id, "report": str(out.absolute()), "viable_matches": len(material.case.viable)},
        f"Match Report for case {material.case.id} written to {out.absolute()} (mode 0600).",
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    with _casework(args) as ctx:
        cases = ctx.cases.list_cases(_session(ctx, args), None if args.state is None else CaseState(args.state))
    rows = [
        {
            **_summary(c),
            "reference": c.form.reference,
            "use_case": c.form.use_case,
            "created_by": c.created_by,
            "created_at": c.created_at,
            "updated_at": c.updated_at,
            "outcome": None if c.outcome is None else c.outcome.value,
        }
        for c in cases
    ]
    lines = [
        f"{r['case']:12} {r['state']:12} {r['reference']:20} needs {r['required_rank']:16} by {r['created_by']:12} "
        f"{r['updated_at']}" + (f"  flags {', '.join(r['flags'])}" if r["flags"] else "")
        for r in rows
    ]
    emit(args, {"cases": rows}, "\n".join(lines) if lines else "No cases.")
    return 0


def _show(args: argparse.Namespace) -> int:
    with _casework(args) as ctx:
        case = ctx.cases.show(_session(ctx, args), args.case)
    payload = case.to_json()
    lines = [
        f"Case {case.id}: {case.state.value}" + (f" ({case.outcome.value})" if case.outcome else ""),
        f"  use case {case.form.use_case}; reference {case.form.reference}; offence {case.form.offence}",
        f"  needs approval by {case.required_rank}; flags {', '.join(case.flags) or 'none'}",
        f"  policy {case.policy_version} ({case.policy_sha256[:16]})",
        f"  libraries {', '.join(case.form.libraries)}",
    ]
    lines += [f"  {r.kind} by {r.actor}: {r.reason}" for r in case.reviews]
    lines += [
        f"  candidate {c.rank}: {c.subject} ({c.library}) {c.decision.value if c.decision else 'not yet adjudicated'}"
        for c in case.candidates
    ]
    emit(args, payload, "\n".join(lines))
    return 0


_STEPS = {"submit": _submit, "approve": _approve, "reject": _reject, "search": _search, "close": _close}
