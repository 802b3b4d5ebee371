"""``rfr library ...``: Permitted Image Reference Libraries: create, list, enrol, composition, search.

Every command first destroys temporary libraries whose authorisation has lapsed (the policy)
and says so on stderr. Search output carries the policy's caveat: a Potential Match is an
intelligence lead for a person to adjudicate, never an identification.
"""

from __future__ import annotations

import argparse
import getpass
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from engine.cli import emit
from engine.cli.user import cli_policy
from engine.cli.workspace import open_workspace, workspace_options
from engine.errors import ImageError, LibraryError, UsageError
from engine.library.check import DEFAULT_QUERIES, DEFAULT_TARGET, IndexCheck, check_index, tune_index
from engine.library.enrol import MAX_IMAGE_BYTES, EnrolProgress, FaceAnalyzer, ImageLoader, enroll_directory, load_rgb
from engine.library.index import MAX_TOP_K, TUNE_FROM, IndexSet, indexes_for
from engine.library.store import (
    Library,
    LibraryKind,
    composition,
    create_library,
    delete_library,
    get_library,
    library_counts,
    list_libraries,
    parse_expiry,
    purge_expired,
    require_usable,
)
from engine.scoring import meaning_for_model, scoring_json, scoring_text
from engine.workspace import Workspace

CAVEAT = (
    "Potential Matches are intelligence leads only: each must be adjudicated by an RFR User; "
    "none is an identification or evidence."
)


def face_tools(device: str) -> tuple[FaceAnalyzer, ImageLoader]:
    """The face engine and its image loader, loaded once per command (tests substitute this)."""
    from engine.faces.pipeline import FaceEngine

    engine: FaceAnalyzer = FaceEngine.open(device=device)
    return engine, load_rgb


def face_model() -> tuple[str, str]:
    """The face model's id and sha256, from its manifest without loading it (tests substitute this)."""
    from engine.faces.pipeline import model_identity

    return model_identity()


def _actor() -> str:
    return f"os-user:{getpass.getuser()}"


def register(sub: Any) -> None:
    parser = sub.add_parser("library", help="Permitted Image Reference Libraries: create, enrol, search")
    parser.set_defaults(handler=lambda _args: _print_help(parser))
    commands = parser.add_subparsers(dest="library_command", metavar="COMMAND")
    common = workspace_options()

    create = commands.add_parser("create", help="create a library", parents=[common])
    create.add_argument("name", metavar="NAME")
    create.add_argument("--kind", required=True, choices=[k.value for k in LibraryKind])
    create.add_argument("--authorisation", metavar="REF", help="authorisation reference (temporary libraries)")
    create.add_argument("--expires", metavar="DATE", help="when the authorisation lapses: YYYY-MM-DD (end of day, UTC)")
    create.add_argument("--description", default="", help="what the library holds")
    create.set_defaults(handler=_create)

    lister = commands.add_parser("list", help="list libraries with their sizes", parents=[common])
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
    enroll.add_argument("--upsample", type=int, default=0, choices=range(0, 3), help="detector upsampling (0-2)")
    enroll.add_argument("--device", default="CPU", help="inference device (default CPU)")
    enroll.set_defaults(handler=_enroll)

    stats = commands.add_parser("stats", help="composition by sex, IC code and age range", parents=[common])
    stats.add_argument("--library", action="append", metavar="NAME", help="only this library (repeatable)")
    stats.set_defaults(handler=_stats)

    search = commands.add_parser("search", help="search Probe Images against libraries", parents=[common])
    search.add_argument("images", nargs="+", metavar="IMAGE", type=Path)
    search.add_argument(
        "--library", action="append", metavar="NAME", help="library to search (repeatable; default all)"
    )
    search.add_argument("--top", type=int, default=50, metavar="K", help=f"candidates per probe (1-{MAX_TOP_K})")
    search.add_argument("--upsample", type=int, default=0, choices=range(0, 3), help="detector upsampling (0-2)")
    search.add_argument("--device", default="CPU", help="inference device (default CPU)")
    search.set_defaults(handler=_search)

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
    check.set_defaults(handler=_check_index)

    purge = commands.add_parser("purge-expired", help="destroy lapsed temporary libraries now", parents=[common])
    purge.set_defaults(handler=_purge)

    delete = commands.add_parser("delete", help="destroy a library and everything in it", parents=[common])
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("--reason", required=True, help="why (recorded)")
    delete.set_defaults(handler=_delete)


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


@contextmanager
def _workspace(args: argparse.Namespace) -> Iterator[Workspace]:
    """Open the workspace, purge lapsed temporary libraries (saying so), close on the way out."""
    with open_workspace(args) as ws:
        for record in purge_expired(ws, actor=_actor()):
            sys.stderr.write(
                f"rfr: temporary library {record.library!r} destroyed: authorisation {record.authorisation} lapsed"
                f" at {record.expires_at} ({record.images} images, {record.templates} templates)\n"
            )
        yield ws


def _notify(message: str) -> None:
    sys.stderr.write(f"rfr: {message}\n")


def _library_json(ws: Workspace, lib: Library) -> dict[str, Any]:
    return {**lib.to_json(), **library_counts(ws, lib)}


def _create(args: argparse.Namespace) -> int:
    expires = parse_expiry(args.expires) if args.expires else None
    with _workspace(args) as ws:
        lib = create_library(
            ws,
            args.name,
            args.kind,
            authorisation=args.authorisation,
            expires_at=expires,
            description=args.description,
            created_by=_actor(),
        )
        payload = _library_json(ws, lib)
    text = f"Created {lib.kind.value} library {lib.name!r}"
    if lib.kind is LibraryKind.TEMPORARY:
        text += f" (authorisation {lib.authorisation}, lapses {payload['expires_at']})"
    emit(args, payload, text + ".")
    return 0


def _list(args: argparse.Namespace) -> int:
    with _workspace(args) as ws:
        libraries = [_library_json(ws, lib) for lib in list_libraries(ws)]
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
    with _workspace(args) as ws:
        lib = get_library(ws, args.library)
        require_usable(ws, lib)
        engine, loader = face_tools(args.device)
        indexes = indexes_for(ws, engine.model_id, engine.model_sha256, notify=_notify)
        show = sys.stderr.isatty()

        def progress(p: EnrolProgress) -> None:
            if show:
                sys.stderr.write(
                    f"\rEnrolling into {lib.name}: {p.done}/{p.total} ({p.enrolled} in, {p.skipped} skipped)"
                )
                sys.stderr.flush()

        with _cancel_on_interrupt() as cancel:
            report = enroll_directory(
                ws,
                lib,
                args.directory,
                engine,
                metadata=args.metadata,
                progress=progress,
                cancel=cancel,
                added_by=_actor(),
                upsample=args.upsample,
                loader=loader,
                indexes=indexes,
            )
        if show:
            sys.stderr.write("\n")
    payload = report.to_json()
    lines = [
        f"{'Cancelled' if report.cancelled else 'Enrolled'}: {report.enrolled} of {report.total} images into "
        f"{report.library!r} ({report.subjects_added} new subjects), {len(report.skipped)} skipped."
    ]
    lines += [f"  skipped {s.path}: {s.detail}" for s in report.skipped]
    emit(args, payload, "\n".join(lines))
    return 130 if report.cancelled else 0


def _stats(args: argparse.Namespace) -> int:
    with _workspace(args) as ws:
        libraries = [get_library(ws, n) for n in args.library] if args.library else list_libraries(ws)
        figures = [composition(ws, lib).to_json() for lib in libraries]
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


def _search(args: argparse.Namespace) -> int:
    if not 1 <= args.top <= MAX_TOP_K:
        raise UsageError(f"--top must be between 1 and {MAX_TOP_K}")
    with _workspace(args) as ws:
        libraries = _searchable(ws, args.library)
        engine, loader = face_tools(args.device)
        meaning = meaning_for_model(cli_policy(), engine.model_id, engine.model_sha256)
        indexes = _indexes_of(ws, libraries, engine.model_id, engine.model_sha256)
        probes: list[dict[str, Any]] = []
        failed = 0
        for path in args.images:
            entry: dict[str, Any] = {"path": str(path), "candidates": []}
            try:
                embedding = _probe_template(path, engine, loader, args.upsample)
                entry["candidates"] = [c.to_json(meaning) for c in indexes.search(embedding, libraries, args.top)]
            except ImageError as exc:
                entry["error"] = exc.diagnostics()
                failed += 1
                sys.stderr.write(f"rfr: {path}: {exc.diagnostics()}\n")
            probes.append(entry)
    payload = {
        "probes": probes,
        "libraries": [lib.name for lib in libraries],
        "top_k": args.top,
        "model_id": engine.model_id,
        "scoring": scoring_json(meaning, engine.model_id, engine.model_sha256),
        "notice": CAVEAT,
    }
    emit(args, payload, _search_text(probes, payload["scoring"]))
    return 1 if failed else 0


def _searchable(ws: Workspace, names: list[str] | None) -> list[Library]:
    """The libraries named (each usable and holding templates), or every library that holds templates."""
    if names:
        libraries = [get_library(ws, n) for n in names]
        for lib in libraries:
            require_usable(ws, lib)
            if library_counts(ws, lib)["templates"] == 0:
                raise LibraryError(f"library {lib.name!r} is empty: enrol images before searching it")
        return libraries
    libraries = [lib for lib in list_libraries(ws) if library_counts(ws, lib)["templates"]]
    if not libraries:
        raise LibraryError("there is no library with images to search: create one and enrol images first")
    return libraries


def _indexes_of(ws: Workspace, libraries: list[Library], model_id: str, model_sha256: str) -> IndexSet:
    """The workspace's indexes for the face model, each of ``libraries`` loaded and holding templates of it."""
    indexes = indexes_for(ws, model_id, model_sha256, notify=_notify)
    for lib in libraries:
        if len(indexes.get(lib)) == 0:
            raise LibraryError(f"library {lib.name!r} has no templates made with face model {model_id}: re-enrol it")
    return indexes


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
    with _workspace(args) as ws:
        libraries = _searchable(ws, args.library)
        indexes = _indexes_of(ws, libraries, *face_model())
        if args.tune:
            tunings = [
                tune_index(indexes, lib, target=target, queries=args.queries, top_k=args.top) for lib in libraries
            ]
        else:
            checks = [check_index(indexes, lib, queries=args.queries, top_k=args.top) for lib in libraries]
    lines = []
    if args.tune:
        for t in tunings:
            lines.append(_check_heading(t.chosen))
            lines += [f"  search expansion {c.expansion_search:>4}: {_check_figures(c)}" for c in t.trials]
            outcome = "reaches" if t.reached else "is the best found; none tried reaches"
            lines.append(f"  kept: search expansion {t.chosen.expansion_search}, which {outcome} the target {t.target}")
        payload = {"tunings": [t.to_json() for t in tunings]}
    else:
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


def _probe_template(path: Path, engine: FaceAnalyzer, loader: ImageLoader, upsample: int) -> np.ndarray:
    """The template of the largest face in a Probe Image."""
    if not path.is_file():
        raise ImageError(f"probe image {path} does not exist or is not a file")
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise ImageError(f"probe image {path} is larger than {MAX_IMAGE_BYTES >> 20} MiB")
    faces = engine.analyze(loader(path.read_bytes(), str(path)), upsample=upsample, embed=True)
    faces = [f for f in faces if f.embedding is not None]
    if not faces:
        raise ImageError("no face found in the probe image: nothing was searched")
    largest = max(faces, key=lambda f: f.box.area)
    assert largest.embedding is not None
    return np.asarray(largest.embedding, dtype=np.float32)


def _search_text(probes: list[dict[str, Any]], scoring: dict[str, Any]) -> str:
    lines = [CAVEAT, scoring_text(scoring)]
    for probe in probes:
        lines.append(f"\nProbe Image {probe['path']}")
        if "error" in probe:
            lines.append(f"  {probe['error']}")
            continue
        lines.append(f"  {'RANK':>4} {'SCORE':>6} {'DISTANCE':>8}  {'SUBJECT':28} {'LIBRARY':16} IMAGE")
        for c in probe["candidates"]:
            lines.append(
                f"  {c['rank']:>4} {c['score']:>6.3f} {c['distance']:>8.4f}  {c['subject']:28} {c['library']:16} "
                f"{c['image_id']}"
            )
            if scoring["calibrated"]:
                lines.append(f"       {c['meaning']}")
    return "\n".join(lines)


def _purge(args: argparse.Namespace) -> int:
    with open_workspace(args) as ws:
        records = purge_expired(ws, actor=_actor())
    text = "\n".join(
        f"Destroyed temporary library {r.library!r} (authorisation {r.authorisation} lapsed at {r.expires_at}): "
        f"{r.subjects} subjects, {r.images} images, {r.templates} templates."
        for r in records
    )
    emit(args, {"purged": [r.to_json() for r in records]}, text or "No temporary library has lapsed.")
    return 0


def _delete(args: argparse.Namespace) -> int:
    with _workspace(args) as ws:
        record = delete_library(ws, args.name, actor=_actor(), reason=args.reason)
    emit(
        args,
        {"deleted": record.to_json()},
        f"Destroyed library {record.library!r}: {record.subjects} subjects, {record.images} images, "
        f"{record.templates} templates.",
    )
    return 0
