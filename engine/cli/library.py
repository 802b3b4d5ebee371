"""``rfr library ...``: Permitted Image Reference Libraries: create, list, enrol, composition, measure, delete.

Each command acts as a signed-in engineer (``--as``), except ``list`` (anyone signed in) and
``stats`` (engineers and auditors), and is recorded in the audit log. Nothing here searches a
library: the one way to search is an approved case (``rfr case search``); evaluation has its
own tool that touches no workspace library (``rfr evaluate search``).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.cli import emit
from engine.cli.terminal import acting, actor_option, terminal_options
from engine.errors import UsageError
from engine.library.check import DEFAULT_QUERIES, DEFAULT_TARGET, IndexCheck, IndexTuning
from engine.library.enrol import EnrolProgress
from engine.library.index import MAX_TOP_K, TUNE_FROM
from engine.library.store import LibraryKind, parse_expiry


def register(sub: Any) -> None:
    parser = sub.add_parser("library", help="Permitted Image Reference Libraries: create, enrol, measure, delete")
    parser.set_defaults(handler=lambda _args: _print_help(parser))
    commands = parser.add_subparsers(dest="library_command", metavar="COMMAND")
    common = terminal_options()

    create = commands.add_parser("create", help="create a library", parents=[common])
    create.add_argument("name", metavar="NAME")
    create.add_argument("--kind", required=True, choices=[k.value for k in LibraryKind])
    create.add_argument("--authorisation", metavar="REF", help="authorisation reference (temporary libraries)")
    create.add_argument("--expires", metavar="DATE", help="when the authorisation lapses: YYYY-MM-DD (end of day, UTC)")
    create.add_argument("--description", default="", help="what the library holds")
    actor_option(create)
    create.set_defaults(handler=_create)

    lister = commands.add_parser("list", help="list libraries with their sizes", parents=[common])
    actor_option(lister)
    lister.set_defaults(handler=_list)

    enroll = commands.add_parser(
        "enroll",
        help="enrol a folder of reference images (one subfolder per subject)",
        parents=[common],
        description="Each subfolder of DIR is one subject; its name is the subject's reference.",
    )
    enroll.add_argument("directory", metavar="DIR", type=Path)
    enroll.add_argument("--library", required=True, metavar="NAME")
    enroll.add_argument("--metadata", metavar="FILE", type=Path, help="demographics and provenance, CSV or YAML")
    enroll.add_argument(
        "--upsample", type=int, default=0, choices=range(0, 3), help="detector upsampling to start from (0-2)"
    )
    actor_option(enroll)
    enroll.set_defaults(handler=_enroll)

    stats = commands.add_parser("stats", help="composition by sex, IC code and age range", parents=[common])
    stats.add_argument("--library", action="append", metavar="NAME", help="only this library (repeatable)")
    actor_option(stats)
    stats.set_defaults(handler=_stats)

    check = commands.add_parser(
        "check-index",
        help="measure each library index's recall and search time on this terminal",
        parents=[common],
        description=(
            "Searches a sample of each library's own templates through the index as configured "
            "(RFR_INDEX_PROFILE) and compares every answer with comparing every template: recall@K, "
            "and search latency on this terminal. Each query's own template is left out. Recorded in "
            "the library's history. The search expansion is measured by the terminal itself for "
            f"libraries of {TUNE_FROM:,} templates or more (when loaded, and again once doubled); --tune "
            "measures it now: increasing expansions on the same queries, keeping for each library the "
            "smallest that reaches the recall target, used from then on while the index is built the "
            "same way and the library stays within a factor of two of today's size."
        ),
    )
    check.add_argument("--library", action="append", metavar="NAME", help="library to check (repeatable; default all)")
    check.add_argument(
        "--tune", action="store_true", help="measure search expansions and keep the smallest meeting --target"
    )
    check.add_argument(
        "--target", type=float, metavar="R", help=f"with --tune: recall@K wanted (default {DEFAULT_TARGET})"
    )
    check.add_argument(
        "--queries", type=int, default=DEFAULT_QUERIES, metavar="N", help="templates searched (default %(default)s)"
    )
    check.add_argument("--top", type=int, default=50, metavar="K", help=f"recall@K (1-{MAX_TOP_K - 1}, default 50)")
    actor_option(check)
    check.set_defaults(handler=_check_index)

    delete = commands.add_parser("delete", help="destroy a library and everything in it", parents=[common])
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("--reason", required=True, help="why (recorded)")
    actor_option(delete)
    delete.set_defaults(handler=_delete)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def _create(args: argparse.Namespace) -> int:
    expires = parse_expiry(args.expires) if args.expires else None
    with acting(args) as (terminal, session):
        lib = terminal.libraries.create(
            session,
            args.name,
            args.kind,
            authorisation=args.authorisation,
            expires_at=expires,
            description=args.description,
        )
        payload = {**lib.to_json(), "subjects": 0, "images": 0, "templates": 0}
    text = f"Created {lib.kind.value} library {lib.name!r}"
    if lib.kind is LibraryKind.TEMPORARY:
        text += f" (authorisation {lib.authorisation}, lapses {payload['expires_at']})"
    emit(args, payload, text + ".")
    return 0


def _list(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        libraries = [info.to_json() for info in terminal.libraries.listing(session)]
    lines = [f"{'NAME':24} {'KIND':12} {'SUBJECTS':>9} {'IMAGES':>9}  EXPIRES"]
    for lib in libraries:
        lines.append(
            f"{lib['name']:24} {lib['kind']:12} {lib['subjects']:>9} {lib['images']:>9}  {lib['expires_at'] or '-'}"
        )
    emit(args, {"libraries": libraries}, "\n".join(lines) if libraries else "No libraries yet.")
    return 0


@contextmanager
def _cancel_on_interrupt() -> Iterator[threading.Event]:
    """Ctrl-C asks enrolment to stop after the current image (so the index snapshot is saved)."""
    cancel = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield cancel
        return
    previous = signal.signal(signal.SIGINT, lambda _sig, _frame: cancel.set())
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)


def _enroll(args: argparse.Namespace) -> int:
    show = sys.stderr.isatty()

    def progress(p: EnrolProgress) -> None:
        if show:
            sys.stderr.write(
                f"\rEnrolling into {args.library}: {p.done}/{p.total} ({p.enrolled} in, {p.skipped} skipped)"
            )
            sys.stderr.flush()

    with acting(args) as (terminal, session), _cancel_on_interrupt() as cancel:
        report = terminal.libraries.enrol(
            session,
            args.library,
            args.directory,
            metadata=args.metadata,
            progress=progress,
            cancel=cancel,
            upsample=args.upsample,
        )
        if show:
            sys.stderr.write("\n")
    payload = report.to_json()
    lines = [
        f"{'Cancelled' if report.cancelled else 'Enrolled'}: {report.enrolled} of {report.total} images into "
        f"{report.library!r} ({report.subjects_added} new subjects), {len(report.skipped)} skipped."
    ]
    if report.chose_dominant_face or report.face_named_by_person:
        lines.append(
            f"  {len(report.chose_dominant_face)} enrolled with the clearly dominant face of several,"
            f" {len(report.face_named_by_person)} with the face named in the metadata (face_x, face_y)."
        )
    lines += [f"  skipped {s.path}: {s.detail}" for s in report.skipped]
    emit(args, payload, "\n".join(lines))
    return 130 if report.cancelled else 0


def _stats(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        figures = [c.to_json() for c in terminal.libraries.composition(session, args.library)]
    lines = []
    for fig in figures:
        subjects, images = fig["subjects"], fig["images"]
        lines.append(f"{fig['library']} ({fig['kind']}): {subjects['total']} subjects, {images['total']} images")
        lines.append("  subjects by sex:     " + _counts(subjects["by_sex"]))
        lines.append("  subjects by IC code: " + _counts(subjects["by_ic_code"]))
        lines.append("  images by age range: " + _counts(images["by_age_range"]))
    emit(args, {"libraries": figures}, "\n".join(lines) if lines else "No libraries yet.")
    return 0


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _check_index(args: argparse.Namespace) -> int:
    if not 1 <= args.top < MAX_TOP_K:
        raise UsageError(f"--top must be between 1 and {MAX_TOP_K - 1}")
    if args.queries < 1:
        raise UsageError("--queries must be at least 1")
    if args.target is not None and not args.tune:
        raise UsageError("--target is the recall wanted by --tune: add --tune, or leave --target out")
    target = DEFAULT_TARGET if args.target is None else args.target
    if not 0 < target <= 1:
        raise UsageError("--target must be above 0 and at most 1 (a recall, e.g. 0.995)")
    with acting(args) as (terminal, session):
        results = terminal.libraries.measure(
            session, args.library, queries=args.queries, top_k=args.top, tune=args.tune, target=target
        )
    lines = []
    if args.tune:
        tunings = [r for r in results if isinstance(r, IndexTuning)]
        for t in tunings:
            lines.append(_check_heading(t.chosen))
            lines += [f"  search expansion {c.expansion_search:>4}: {_check_figures(c)}" for c in t.trials]
            outcome = "reaches" if t.reached else "is the best found; none tried reaches"
            lines.append(f"  kept: search expansion {t.chosen.expansion_search}, which {outcome} the target {t.target}")
        payload: dict[str, Any] = {"tunings": [t.to_json() for t in tunings]}
    else:
        checks = [r for r in results if isinstance(r, IndexCheck)]
        for c in checks:
            lines.append(_check_heading(c))
            lines.append(f"  search expansion {c.expansion_search} ({c.expansion_source}): {_check_figures(c)}")
        payload = {"libraries": [c.to_json() for c in checks]}
    lines.append("Recall is against comparing every template; a query's own template is left out.")
    emit(args, payload, "\n".join(lines))
    return 0


def _check_heading(c: IndexCheck) -> str:
    s = c.settings
    cells = f"{s.cells_probed} nearest of {c.cells} cells" if c.cells and s.cells_probed else "no cells"
    return (
        f"{c.library}: {c.templates:,} templates; index profile {c.profile} (connectivity {s.connectivity},"
        f" expansion_add {s.expansion_add}, {cells})"
    )


def _check_figures(c: IndexCheck) -> str:
    return (
        f"recall@{c.top_k} {c.recall:.4f} over {c.queries} of its templates (lowest {c.recall_min:.2f},"
        f" {c.below_half} under half); search p50 {c.search_p50_ms:.2f} ms, p99 {c.search_p99_ms:.2f} ms"
    )


def _delete(args: argparse.Namespace) -> int:
    with acting(args) as (terminal, session):
        record = terminal.libraries.delete(session, args.name, args.reason)
    emit(
        args,
        {"deleted": record.to_json()},
        f"Destroyed library {record.library!r}: {record.subjects} subjects, {record.images} images, "
        f"{record.templates} templates.",
    )
    return 0
