"""``rfr evaluate search``: identification measured on photographs, touching no workspace library.

The evaluation package is imported inside the handler: the terminal's runtime never loads it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.cli import emit
from engine.errors import UsageError
from engine.library.index import MAX_TOP_K

NOTICE = (
    "Evaluation only: a throwaway gallery built in memory from the photographs given; no Permitted Image "
    "Reference Library was read or changed, and nothing was written. Candidates are not identifications."
)


def register(sub: Any) -> None:
    parser = sub.add_parser("evaluate", help="measure the face engine on photographs (no workspace)")
    commands = parser.add_subparsers(dest="evaluate_command", metavar="COMMAND", required=True)
    search = commands.add_parser(
        "search",
        help="search probe photographs against a gallery built in memory",
        description=(
            "Builds a throwaway gallery in memory from DIR (one subfolder per subject, as 'rfr library enroll' "
            "expects, with enrolment's face rules), searches each probe as the terminal searches a library "
            "(the same index and exact re-ranking) and prints the candidates. A probe that cannot be read or "
            "has no usable face is reported in its own entry; the exit status is then 1. Nothing is written."
        ),
    )
    search.add_argument("--gallery", required=True, type=Path, metavar="DIR", help="one subfolder per subject")
    search.add_argument("--probes", required=True, type=Path, metavar="FILE_OR_DIR", help="a probe, or a folder")
    search.add_argument("--top", type=int, default=50, metavar="K", help=f"candidates per probe (1-{MAX_TOP_K})")
    search.add_argument(
        "--upsample",
        type=int,
        default=0,
        choices=range(0, 3),
        help="detector upsampling to start from (0-2; enlarged again when no face is found)",
    )
    search.add_argument(
        "--probe-face",
        choices=("dominant", "centre"),
        default="dominant",
        help="a probe with several faces and none clearly dominant: not searched (dominant, the default), or its"
        " face nearest the centre searched in place of the officer's choice (centre)",
    )
    search.add_argument(
        "--gallery-face",
        choices=("rules", "centre"),
        default="rules",
        help="a gallery photograph with several faces and none clearly dominant: refused, as enrolment's rules"
        " refuse it (rules, the default), or enrolled with the face holding the image centre, as if a person had"
        " named it there with face_x, face_y (centre)",
    )
    search.add_argument("--device", default="CPU", help="inference device (default CPU)")
    search.add_argument("--json", action="store_true", help="machine-readable output")
    search.set_defaults(handler=_search)


def _search(args: argparse.Namespace) -> int:
    if not 1 <= args.top <= MAX_TOP_K:
        raise UsageError(f"--top must be between 1 and {MAX_TOP_K}")
    if not args.gallery.is_dir():
        raise UsageError(f"--gallery {args.gallery} is not a folder: give a folder with one subfolder per subject")
    if not args.probes.exists():
        raise UsageError(f"--probes {args.probes} does not exist: give a probe image or a folder of them")

    from engine.evaluation.search import Gallery, evaluation_json, probe_paths, search_probes
    from engine.faces.pipeline import FaceEngine
    from engine.library.enrol import load_rgb
    from engine.policy import load_default_policy
    from engine.scoring import meaning_for_model, scoring_json

    paths = probe_paths(args.probes)
    if not paths:
        raise UsageError(f"--probes {args.probes} holds no files: give a probe image or a folder of them")
    engine = FaceEngine.open(args.device)
    meaning = meaning_for_model(load_default_policy(), engine.model_id, engine.model_sha256)
    scoring = scoring_json(meaning, engine.model_id, engine.model_sha256)
    show = sys.stderr.isatty()

    def progress(stage: str, done: int, total: int) -> None:
        if show:
            sys.stderr.write(f"\r{stage}: {done}/{total}" + ("\n" if done == total else ""))
            sys.stderr.flush()

    with Gallery.build(
        args.gallery, engine, load_rgb, upsample=args.upsample, gallery_face=args.gallery_face, progress=progress
    ) as gallery:
        results = search_probes(
            gallery,
            paths,
            engine,
            load_rgb,
            args.top,
            upsample=args.upsample,
            probe_face=args.probe_face,
            progress=progress,
        )
        payload = evaluation_json(
            gallery, results, meaning, scoring, args.top, NOTICE, args.probe_face, args.gallery_face
        )
    failed = [r for r in results if r.error is not None]
    for r in failed:
        sys.stderr.write(f"rfr: {r.path}: {r.error}\n")
    emit(args, payload, _text(payload))
    return 1 if failed else 0


def _text(payload: dict[str, Any]) -> str:
    from engine.scoring import scoring_text

    g, index = payload["gallery"], payload["index"]
    lines = [
        payload["notice"],
        scoring_text(payload["scoring"]),
        f"Gallery {g['directory']}: {g['enrolled']} of {g['photos']} photographs of {g['subjects']} subjects enrolled"
        f" in memory, {g['refused']} refused, {g['chose_dominant_face']} with the dominant of several faces,"
        + (
            f" {g['face_named_at_centre']} with the face at the centre, in place of a person naming it,"
            if payload.get("gallery_face") == "centre"
            else ""
        )
        + f" {g['enlarged']} found only enlarged; index profile {index['profile']}, {index['templates']} templates.",
    ]
    lines += [f"  refused {r['path']}: {r['detail']}" for r in g["refusals"]]
    for probe in payload["probes"]:
        lines.append(f"\nProbe {probe['path']}")
        if "error" in probe:
            lines.append(f"  {probe['error']}")
            continue
        if "note" in probe:
            lines.append(f"  {probe['note']}")
        if probe.get("face_chosen") == "centre":
            lines.append(f"  {probe['faces']} faces, none clearly dominant: searched the one nearest the centre")
        lines.append(f"  {'RANK':>4} {'SCORE':>6} {'DISTANCE':>8}  {'SUBJECT':28} IMAGE")
        for c in probe["candidates"]:
            lines.append(f"  {c['rank']:>4} {c['score']:>6.3f} {c['distance']:>8.4f}  {c['subject']:28} {c['image']}")
    return "\n".join(lines)
