"""``rfr case ...``: casework, step by step: new, advice, submit, approve, reject, search, adjudicate,
peer-review, close, withdraw, report, list, show.

The acting person is ``--as USER`` (password from ``RFR_PASSWORD`` or a prompt), signed in for
the one command; approving and signing off a peer review use that fresh password entry as the
re-authentication the policy asks for. Every command, reading ones included, needs ``--as``.
A refusal exits non-zero with one line naming the rule, e.g. ``approval refused: case needs
Superintendent, you are Inspector``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.casework import (
    HOW_TO_OPEN,
    Case,
    CaseState,
    MatchReport,
    SearchResult,
    SubmissionForm,
    render_match_report,
    write_report_file,
)
from engine.casework.form import CheckStatus
from engine.cli import emit
from engine.cli.secret_input import read_secret
from engine.cli.terminal import acting, actor_option, terminal_options
from engine.errors import ImageError, UsageError
from engine.files import read_regular_file
from engine.library.enrol import MAX_IMAGE_BYTES
from engine.scoring import INTELLIGENCE_LEAD, ScoreView, meaning_for_model, scoring_text
from engine.security.users import Session
from engine.terminal import Terminal

REPORT_PASSPHRASE_ENV = "RFR_REPORT_PASSPHRASE"  # noqa: S105 (the variable's name, not a secret)


def register(sub: Any) -> None:
    parser = sub.add_parser("case", help="casework: submission, approval, search, adjudication, Match Report")
    parser.set_defaults(handler=lambda _args: (parser.print_help(), 0)[1])
    commands = parser.add_subparsers(dest="case_command", metavar="COMMAND")
    common = terminal_options()

    new = commands.add_parser(
        "new", help="complete an RFR Submission Form for a Probe Image (a draft case)", parents=[common]
    )
    actor_option(new)
    new.add_argument("--use-case", metavar="KEY", help="permitted use case key from the policy")
    new.add_argument("--reference", metavar="REF", help="crime or occurrence reference")
    new.add_argument("--offence", metavar="TEXT", help="offence type")
    new.add_argument(
        "--justification", metavar="TEXT", help="legitimate aim; why the search is necessary and proportionate"
    )
    new.add_argument(
        "--check",
        nargs=3,
        action="append",
        metavar=("CHECK", "STATUS", "WHAT"),
        help=(
            "a Pre-RFR Check of the policy's list: its key, exhausted or unviable, and what was done (or why it "
            "is unviable); give every check"
        ),
    )
    new.add_argument("--age-band", metavar="BAND", help="apparent age band: under13, 13-15, 16-17, adult, unknown")
    new.add_argument("--disability", action="store_true", help="a relevant disability affecting facial appearance")
    new.add_argument("--pre-reassignment", action="store_true", help="the image pre-dates gender reassignment")
    new.add_argument("--coverings", default="", metavar="TEXT", help="head or face coverings")
    new.add_argument("--injuries", default="", metavar="TEXT", help="injuries")
    new.add_argument("--probe-source", choices=["police", "other"], help="is the Probe Image police-originated")
    new.add_argument("--captured", metavar="WHEN", help="when the Probe Image was captured: YYYY-MM-DD[THH:MM]")
    new.add_argument("--obtained", metavar="HOW", help="how the Probe Image was obtained, and from whom")
    new.add_argument(
        "--probe", action="append", metavar="IMAGE", type=Path, help="the Probe Image (JPEG or PNG); one per case"
    )
    new.add_argument("--face", type=int, metavar="N", help="which face to search with, when it shows several")
    new.add_argument("--library", action="append", metavar="NAME", help="library to search (repeatable)")
    new.set_defaults(handler=_new)

    advice = commands.add_parser(
        "advice", help="record the technical or legal advice a flagged case needs before approval", parents=[common]
    )
    advice.add_argument("case", metavar="CASE")
    actor_option(advice)
    advice.add_argument("--flag", default="technical_advice", help="the case's flag the advice answers")
    advice.add_argument("--adviser", required=True, metavar="WHO", help="who gave the advice, and their team")
    advice.add_argument("--given", required=True, metavar="YYYY-MM-DD", help="when the advice was given")
    advice.add_argument("--advice", required=True, metavar="TEXT", help="what the advice said")
    advice.set_defaults(handler=_advice)

    for name, help_text, needs_reason in (
        ("submit", "submit a draft case for approval", False),
        ("approve", "approve a submitted case (re-authenticates)", True),
        ("reject", "reject a submitted case (its Probe Image is deleted)", True),
        ("search", "run an approved search", False),
        ("close", "close a case adjudicated with a Viable Match (its probe template is deleted)", False),
        ("withdraw", "end a case before adjudication (its probe data is deleted)", True),
    ):
        step = commands.add_parser(name, help=help_text, parents=[common])
        step.add_argument("case", metavar="CASE")
        actor_option(step)
        step.add_argument(
            "--reason", metavar="TEXT", help="recorded on the case" + (" (required)" if needs_reason else "")
        )
        step.set_defaults(handler=_STEPS[name])

    adjudicate = commands.add_parser("adjudicate", help="decide one Potential Match", parents=[common])
    adjudicate.add_argument("case", metavar="CASE")
    actor_option(adjudicate)
    adjudicate.add_argument("--candidate", type=int, required=True, metavar="RANK", help="rank in the candidate list")
    adjudicate.add_argument("--decision", required=True, choices=["viable", "not-viable"])
    adjudicate.add_argument("--report", type=Path, metavar="FILE", help="the Match Report (YAML), needed for viable")
    adjudicate.set_defaults(handler=_adjudicate)

    review = commands.add_parser(
        "peer-review", help="peer review a 'no viable match' (re-authenticates)", parents=[common]
    )
    review.add_argument("case", metavar="CASE")
    actor_option(review)
    verdict = review.add_mutually_exclusive_group(required=True)
    verdict.add_argument("--agree", action="store_true", help="agree: no viable match (the probe data is deleted)")
    verdict.add_argument("--disagree", action="store_true", help="disagree: back to the RFR User")
    review.add_argument("--reason", required=True, metavar="TEXT")
    review.set_defaults(handler=_peer_review)

    report = commands.add_parser(
        "report",
        help="export the Match Report (printable HTML), encrypted",
        description=(
            "Writes the Match Report, a printable HTML document holding the Probe Image and the reference images, "
            "encrypted in the age format: to the public keys in the terminal's 'report_recipients_file' when it is "
            f"configured, else with a passphrase ({REPORT_PASSPHRASE_ENV} or asked twice; at least 12 characters) "
            f"to pass on separately. {HOW_TO_OPEN[0].upper()}{HOW_TO_OPEN[1:]}."
        ),
        parents=[common],
    )
    report.add_argument("case", metavar="CASE")
    report.add_argument(
        "--out", required=True, type=Path, metavar="FILE", help="new file to write, e.g. CASE.html.age (mode 0600)"
    )
    actor_option(report)
    report.set_defaults(handler=_report)

    listing = commands.add_parser("list", help="list cases (a queue with --state)", parents=[common])
    listing.add_argument("--state", choices=[s.value for s in CaseState], help="only cases in this state")
    actor_option(listing)
    listing.set_defaults(handler=_list)

    show = commands.add_parser("show", help="show a case", parents=[common])
    show.add_argument("case", metavar="CASE")
    actor_option(show)
    show.set_defaults(handler=_show)


def _summary(case: Case) -> dict[str, Any]:
    return {"case": case.id, "state": case.state.value, "required_rank": case.required_rank, "flags": case.flags}


def _probe_bytes(paths: list[Path] | None) -> bytes:
    if not paths:
        raise UsageError("give the Probe Image: --probe IMAGE")
    if len(paths) > 1:
        raise UsageError(
            f"{len(paths)} Probe Images given: a case searches one Probe Image (several images of one subject "
            "cannot be searched together yet); make one case per image"
        )
    return read_regular_file(paths[0], limit=MAX_IMAGE_BYTES, what="Probe Image", error=ImageError)


def _checks(given: list[list[str]] | None) -> dict[str, tuple[str, str]]:
    checks: dict[str, tuple[str, str]] = {}
    for key, status, detail in given or []:
        if key in checks:
            raise UsageError(f"Pre-RFR Check {key!r} is given twice: give each check once")
        if status.strip().lower() not in {s.value for s in CheckStatus}:
            raise UsageError(f"Pre-RFR Check {key!r}: status {status!r} is not exhausted or unviable")
        checks[key] = (status, detail)
    return checks


def _new(args: argparse.Namespace) -> int:
    probe = _probe_bytes(args.probe)
    with acting(args) as (terminal, session):
        user = terminal.accounts.check(session)
        form = SubmissionForm.create(
            terminal.policy,
            completed_by=user.username,
            completed_as=terminal.cases.completed_as(user),
            use_case=args.use_case or "",
            reference=args.reference or "",
            offence=args.offence or "",
            justification=args.justification or "",
            pre_rfr_checks=_checks(args.check),
            age_band=args.age_band or "",
            relevant_disability=args.disability,
            pre_dates_gender_reassignment=args.pre_reassignment,
            coverings=args.coverings,
            injuries=args.injuries,
            probe_source=args.probe_source or "",
            probe_captured=args.captured or "",
            probe_obtained=args.obtained or "",
            libraries=args.library or [],
            now=terminal.ws.now(),
        )
        case = terminal.cases.new_case(session, form, probe, face=args.face)
    face = case.probe_face
    payload = {**_summary(case), "probe": None if face is None else face.to_json()}
    found = (
        "" if face is None else f" Face {face.number} of {face.faces_found}" + (f" ({face.note})" if face.note else "")
    )
    emit(
        args,
        payload,
        f"Case {case.id} drafted: needs approval by {case.required_rank} or above; flags: "
        f"{', '.join(case.flags) or 'none'}.{found}",
    )
    return 0


def _step_text(case: Case, verb: str) -> str:
    return f"Case {case.id} {verb}: now {case.state.value}."


def _advice(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        case = terminal.cases.record_advice(
            session, args.case, flag=args.flag, adviser=args.adviser, given_on=args.given, advice=args.advice
        )
    emit(args, {**_summary(case), "advice": [a.to_json() for a in case.advice]}, _step_text(case, "advice recorded"))
    return 0


def _submit(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        case = terminal.cases.submit(session, args.case)
    emit(args, _summary(case), _step_text(case, "submitted"))
    return 0


def _approve(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        case = terminal.cases.approve(session, args.case, args.reason)
    emit(args, _summary(case), _step_text(case, f"approved by {case.decided_by} ({case.decided_rank})"))
    return 0


def _reject(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        case = terminal.cases.reject(session, args.case, args.reason)
    emit(args, _summary(case), _step_text(case, "rejected; its Probe Image was deleted"))
    return 0


def _withdraw(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        case = terminal.cases.withdraw(session, args.case, args.reason)
    payload = {**_summary(case), "probe_image_deleted": not case.probe_image_held}
    emit(args, payload, _step_text(case, "withdrawn; its probe data was deleted"))
    return 0


def _search(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        result = terminal.cases.search(session, args.case)
        view = ScoreView.of(terminal.policy, result.meaning, result.library)
        caution = terminal.policy.score_display.rank_caution
    payload = _search_json(result, view, caution)
    emit(args, payload, _search_text(payload, view))
    return 0


def _search_json(result: SearchResult, view: ScoreView, caution: str) -> dict[str, Any]:
    """The candidate list of an approved search, scores as the policy shows them, what they mean, the cautions."""
    return {
        "case": result.case.id,
        "state": result.case.state.value,
        "probes": [
            {
                "path": f"Probe Image of case {result.case.id}",
                "candidates": [c.to_json(view) for c in result.candidates],
                "quality_warnings": list(result.quality_warnings),
            }
        ],
        "libraries": list(result.libraries),
        "top_k": result.top_k,
        "model_id": result.model_id,
        "scoring": view.scoring_json(result.model_id, result.model_sha256),
        "notice": INTELLIGENCE_LEAD,
        "caution": caution,
    }


def _search_text(payload: dict[str, Any], view: ScoreView) -> str:
    probe = payload["probes"][0]
    scoring = payload["scoring"]
    lines = [payload["notice"], payload["caution"], scoring_text(scoring)]
    if view.show != "estimated_false_match_rate":
        lines.append(view.note())
    if scoring.get("equity_caveat"):
        lines.append(scoring["equity_caveat"])
    lines.append(f"\nCase {payload['case']}: {len(probe['candidates'])} Potential Matches")
    lines += [f"  quality warning: {w}" for w in probe["quality_warnings"]]
    score_head = {"similarity": f" {'SCORE':>6}", "estimated_false_match_rate": " ESTIMATED FALSE-MATCH RATE"}
    lines.append(f"  {'RANK':>4}{score_head.get(view.show, '')}  {'SUBJECT':28} {'LIBRARY':16} IMAGE")
    for c in probe["candidates"]:
        cell = ""
        if view.show == "similarity":
            cell = f" {'not kept' if c['score'] is None else format(c['score'], f'.{view.decimals}f'):>6}"
        elif view.show == "estimated_false_match_rate":
            cell = f" {c.get('false_match_words') or c['meaning']}"
        lines.append(f"  {c['rank']:>4}{cell}  {c['subject']:28} {c['library']:16} {c['image_id']}")
        if view.show == "estimated_false_match_rate" and view.meaning is not None:
            lines += [f"       {c[key]}" for key in ("meaning", "in_library") if c.get(key)]
    return "\n".join(lines)


def _adjudicate(args: argparse.Namespace) -> int:
    report = MatchReport.from_file(args.report) if args.report is not None else None
    decision = args.decision.replace("-", "_")
    with acting(args) as (terminal, session):
        case = terminal.cases.adjudicate(session, args.case, args.candidate, decision, report)
    payload = {**_summary(case), "candidate": args.candidate, "decision": decision}
    emit(args, payload, _step_text(case, f"Potential Match {args.candidate} adjudicated {args.decision}"))
    return 0


def _peer_review(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        case = terminal.cases.peer_review(session, args.case, bool(args.agree), args.reason)
    payload = {
        **_summary(case),
        "agree": bool(args.agree),
        "probe_image_deleted": not case.probe_image_held,
        "probe_template_deleted": not case.probe_template_held,
    }
    verdict = "agreed: no viable match; its probe data was deleted" if args.agree else "disagreed"
    emit(args, payload, _step_text(case, f"peer reviewed ({verdict})"))
    return 0


def _close(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        case = terminal.cases.close(session, args.case, args.reason)
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
    with acting(args) as (terminal, session):
        passphrase = None
        if terminal.report_needs_passphrase:
            passphrase = read_secret(
                REPORT_PASSPHRASE_ENV,
                "Passphrase for the Match Report file: ",
                confirm=True,
                what="Match Report passphrase",
            )
        sealing = terminal.report_sealing(passphrase)  # a passphrase too short is refused before anything is done
        material = terminal.cases.report_material(session, args.case, str(out.absolute()))
        text = render_match_report(material, terminal.policy)
        write_report_file(out, text, sealing)
    emit(
        args,
        {
            "case": material.case.id,
            "report": str(out.absolute()),
            "viable_matches": len(material.case.viable),
            "encrypted": "recipients" if sealing.recipients else "passphrase",
        },
        f"Match Report for case {material.case.id} written to {out.absolute()} (mode 0600), "
        f"{sealing.describe()}; {HOW_TO_OPEN}.",
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        cases = terminal.cases.list_cases(session, None if args.state is None else CaseState(args.state))
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


def _case_view(terminal: Terminal, session: Session, case: Case) -> ScoreView:
    """How the policy shows this case's scores (with the calibration and the library searched, for rates)."""
    meaning = library = None
    if terminal.policy.score_display.show == "estimated_false_match_rate" and case.model_id and case.model_sha256:
        meaning = meaning_for_model(terminal.policy, case.model_id, case.model_sha256)
        library = terminal.cases.searched_library(session, case.id)
    return ScoreView.of(terminal.policy, meaning, library)


def _show(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        case = terminal.cases.show(session, args.case)
        view = _case_view(terminal, session, case)
    payload = case.to_json()
    payload["score_display"] = view.show
    for shown, c in zip(payload["candidates"], case.candidates, strict=True):
        del shown["score"], shown["distance"]  # only what the policy shows, as it shows it
        shown.update(view.fields(c.score, c.distance))
    lines = [
        f"Case {case.id}: {case.state.value}" + (f" ({case.outcome.value})" if case.outcome else ""),
        f"  use case {case.form.use_case}; reference {case.form.reference}; offence {case.form.offence}",
        f"  needs approval by {case.required_rank}; flags {', '.join(case.flags) or 'none'}",
        f"  policy {case.policy_version} ({case.policy_sha256[:16]})",
        f"  libraries {', '.join(case.form.libraries)}",
    ]
    if case.probe_face is not None:
        face = case.probe_face
        lines.append(
            f"  Probe Image face {face.number} of {face.faces_found}" + (f": {face.note}" if face.note else "")
        )
    lines += [f"  advice ({a.flag}) from {a.adviser}, {a.given_on}: {a.advice}" for a in case.advice]
    lines += [f"  {r.kind} by {r.actor}: {r.reason}" for r in case.reviews]
    lines += [
        f"  candidate {c.rank}: {c.subject} ({c.library}) {c.decision.value if c.decision else 'not yet adjudicated'}"
        for c in case.candidates
    ]
    if case.ended_reason:
        lines.append(f"  ended: {case.ended_reason}")
    emit(args, payload, "\n".join(lines))
    return 0


_STEPS = {
    "submit": _submit,
    "approve": _approve,
    "reject": _reject,
    "search": _search,
    "close": _close,
    "withdraw": _withdraw,
}
