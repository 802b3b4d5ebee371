#!/usr/bin/env python3
"""Identification on LFW with ``rfr evaluate search``: rank-1 and rank-10 on a 1,300-subject gallery.

    .venv/bin/python scripts/bench_identification.py [--peer] [--seed 1300] [--rfr .venv/bin/rfr]

Construction (deterministic, documented in docs/benchmarks.md): from ``lfw/images``, the people
with two or more photographs sorted by name, of whom ``--mates`` (300) are drawn with numpy's
``default_rng(seed)``; the people with exactly one photograph sorted by name, of whom
``--distractors`` (1,000) are drawn with the same generator after the mates. The gallery holds each
mate's first photograph (``_0001``) and each distractor's only one; each mate is searched with its
second photograph (``_0002``). Gallery and probes are folders of symbolic links in a temporary
folder (no photograph is copied, and the folder is removed at the end).

The product is measured through the real console script, ``rfr evaluate search --json``: the
gallery built in memory with enrolment's face rules (faces found at any size, the clearly dominant
of several chosen, an ambiguous photograph refused), probes searched as the terminal searches a
library. A probe with several faces and none clearly dominant is searched with its face nearest
the centre (``--probe-face centre``: in casework the officer chooses the face, and LFW labels the
person at the centre); the figures under the default rule, which searches no such probe, are
printed beside. A second run adds ``--gallery-face centre``: a gallery photograph the rules refuse
as several faces is enrolled with the face holding the image centre, as if a person had named it
(``face_x``, ``face_y`` in enrolment metadata), so the figures show what a person resolving those
photographs gains. A probe that fails counts as a miss. With
``--peer``, face_recognition (``make reference``; HOG detector at its default upsampling of 1,
5-point landmarks, one jitter) is measured on exactly the same photographs: its face nearest the
image centre (LFW's labelled person, as scripts/eval_lfw.py does), refusing only a photograph
where it finds no face, and every gallery template compared with the probe's. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("RFR_DATA", REPO.parent / "shared" / "data")).resolve()
RANKS = (1, 10)


def choose_subjects(images: Path, mates: int, distractors: int, seed: int) -> tuple[list[str], list[str]]:
    """(mates, distractors): seeded draws from the people with 2+ photographs and with exactly one."""
    counts = {p.name: sum(1 for _ in p.glob("*.jpg")) for p in sorted(images.iterdir()) if p.is_dir()}
    several = sorted(name for name, n in counts.items() if n >= 2)
    single = sorted(name for name, n in counts.items() if n == 1)
    rng = np.random.default_rng(seed)
    chosen_mates = [several[i] for i in sorted(rng.choice(len(several), mates, replace=False))]
    chosen_distractors = [single[i] for i in sorted(rng.choice(len(single), distractors, replace=False))]
    return chosen_mates, chosen_distractors


def build_folders(images: Path, root: Path, mates: list[str], distractors: list[str]) -> tuple[Path, Path]:
    """The gallery (one subfolder per subject) and the probes, as symbolic links under ``root``."""
    gallery, probes = root / "gallery", root / "probes"
    probes.mkdir(parents=True)
    for name in [*mates, *distractors]:
        (gallery / name).mkdir(parents=True)
        (gallery / name / f"{name}_0001.jpg").symlink_to(images / name / f"{name}_0001.jpg")
    for name in mates:
        (probes / f"{name}_0002.jpg").symlink_to(images / name / f"{name}_0002.jpg")
    return gallery, probes


def run_rfr(rfr: str, gallery: Path, probes: Path, top: int, gallery_face: str = "rules") -> dict[str, Any]:
    """``rfr evaluate search --json``; exit 1 only means that some probes failed (each has its error)."""
    command = [rfr, "evaluate", "search", "--gallery", str(gallery), "--probes", str(probes), "--top", str(top)]
    command += ["--probe-face", "centre", "--gallery-face", gallery_face, "--json"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1) or not done.stdout.strip():
        sys.exit(f"rfr evaluate search failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    payload: dict[str, Any] = json.loads(done.stdout)
    return payload


def subject_of_probe(path: str) -> str:
    return Path(path).stem.rsplit("_", 1)[0]


def rates(ranked: dict[str, list[str]], mates: list[str]) -> dict[int, float]:
    """Rank-k identification rate over the mates: a probe with no result counts as a miss."""
    return {k: sum(name in ranked.get(name, [])[:k] for name in mates) / len(mates) for k in RANKS}


def rank_figures(ranked: dict[str, list[str]], mates: list[str], prefix: str = "") -> dict[str, float]:
    return {f"{prefix}rank_{k}": round(rate, 4) for k, rate in rates(ranked, mates).items()}


def peer_templates(paths: list[Path]) -> dict[Path, np.ndarray | None]:
    """face_recognition's template of the face nearest the image centre (None when it finds no face)."""
    import face_recognition

    out: dict[Path, np.ndarray | None] = {}
    for path in paths:
        rgb = face_recognition.load_image_file(str(path))
        locations = face_recognition.face_locations(rgb)  # its default: HOG, upsample 1
        if not locations:
            out[path] = None
            continue
        cy, cx = (rgb.shape[0] - 1) / 2, (rgb.shape[1] - 1) / 2
        nearest = min(locations, key=lambda b: ((b[3] + b[1]) / 2 - cx) ** 2 + ((b[0] + b[2]) / 2 - cy) ** 2)
        encoding = face_recognition.face_encodings(rgb, [nearest], num_jitters=1, model="small")[0]
        out[path] = np.asarray(encoding, dtype=np.float64)
    return out


def run_peer(gallery: Path, probes: Path, top: int) -> dict[str, Any]:
    started = time.monotonic()
    gallery_paths = sorted(gallery.glob("*/*.jpg"))
    probe_paths = sorted(probes.glob("*.jpg"))
    templates = peer_templates(gallery_paths + probe_paths)
    enrolled = [p for p in gallery_paths if templates[p] is not None]
    matrix = np.stack([templates[p] for p in enrolled])  # type: ignore[misc]
    names = [p.parent.name for p in enrolled]
    ranked: dict[str, list[str]] = {}
    for path in probe_paths:
        probe = templates[path]
        if probe is None:
            continue
        order = np.argsort(np.linalg.norm(matrix - probe, axis=1), kind="stable")[:top]
        ranked[subject_of_probe(str(path))] = [names[i] for i in order]
    return {
        "refused": len(gallery_paths) - len(enrolled),
        "probes_failed": sum(templates[p] is None for p in probe_paths),
        "ranked": ranked,
        "seconds": time.monotonic() - started,
    }


def rfr_figures(payload: dict[str, Any], mates: list[str], seconds: float) -> dict[str, Any]:
    """Rank figures and what the gallery did, from one ``rfr evaluate search --json`` run."""
    ranked = {
        subject_of_probe(p["path"]): [c["subject"] for c in p["candidates"]]
        for p in payload["probes"]
        if "error" not in p
    }
    by_centre = {subject_of_probe(p["path"]) for p in payload["probes"] if p.get("face_chosen") == "centre"}
    g = payload["gallery"]
    refused_mates = {Path(r["path"]).parts[0] for r in g["refusals"]} & set(mates)
    enrolled_mates = [m for m in mates if m not in refused_mates]
    failed = [p for p in payload["probes"] if "error" in p]
    return {
        **rank_figures(ranked, mates),
        **rank_figures({m: c for m, c in ranked.items() if m not in by_centre}, mates, "default_rule_"),
        **rank_figures(ranked, enrolled_mates, "enrolled_mates_"),
        "gallery_face": payload.get("gallery_face", "rules"),
        "gallery_photos": g["photos"],
        "refused": g["refused"],
        "refused_by_reason": g["refused_by_reason"],
        "refused_mates": len(refused_mates),
        "refused_mate_names": sorted(refused_mates),
        "chose_dominant_face": g["chose_dominant_face"],
        "face_named_at_centre": g["face_named_at_centre"],
        "ranked": ranked,
        "enlarged": g["enlarged"],
        "probes_failed": len(failed),
        "probe_errors": [f"{Path(p['path']).name}: {p['error']}" for p in failed],
        "probes_dominant_face": sum(1 for p in payload["probes"] if p.get("face_chosen") == "dominant"),
        "probes_centre_face": len(by_centre),
        "index": payload["index"],
        "seconds": round(seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mates", type=int, default=300)
    parser.add_argument("--distractors", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1300)
    parser.add_argument("--rfr", default=str(REPO / ".venv" / "bin" / "rfr"), help="the rfr console script")
    parser.add_argument("--peer", action="store_true", help="also face_recognition on the same photographs")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the figures as JSON")
    args = parser.parse_args()

    images = DATA / "lfw" / "images"
    mates, distractors = choose_subjects(images, args.mates, args.distractors, args.seed)
    top = max(RANKS)
    figures: dict[str, Any] = {
        "construction": {"mates": len(mates), "distractors": len(distractors), "seed": args.seed},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    with tempfile.TemporaryDirectory(prefix="rfr-bench-identification-") as tmp:
        gallery, probes = build_folders(images, Path(tmp), mates, distractors)
        started = time.monotonic()
        payload = run_rfr(args.rfr, gallery, probes, top)
        figures["rfr"] = rfr_figures(payload, mates, time.monotonic() - started)
        started = time.monotonic()
        payload = run_rfr(args.rfr, gallery, probes, top, gallery_face="centre")
        figures["rfr_gallery_centre"] = rfr_figures(payload, mates, time.monotonic() - started)
        enrolled_mates = [m for m in mates if m not in figures["rfr"]["refused_mate_names"]]
        # Mates refused by the rules and enrolled by the stand-in: those whose gallery face was named at the centre.
        centre = figures["rfr_gallery_centre"]
        named_mates = sorted(set(figures["rfr"]["refused_mate_names"]) - set(centre["refused_mate_names"]))
        centre.update(rank_figures(centre["ranked"], enrolled_mates, "enrolled_mates_"))  # the rules' mates, as above
        centre["named_mates"] = len(named_mates)
        centre.update(rank_figures(centre["ranked"], named_mates, "named_mates_") if named_mates else {})
        if args.peer:
            peer = run_peer(gallery, probes, top)
            figures["face_recognition"] = {
                **rank_figures(peer["ranked"], mates),
                **rank_figures(peer["ranked"], enrolled_mates, "enrolled_mates_"),
                "refused": peer["refused"],
                "probes_failed": peer["probes_failed"],
                "seconds": round(peer["seconds"], 1),
            }

    r = figures["rfr"]
    n = len(enrolled_mates)
    print(f"LFW identification: {len(mates)} mates among {len(distractors)} one-photo distractors (seed {args.seed})")
    print(f"machine: {figures['machine']}")
    print(
        f"rfr evaluate search --probe-face centre: rank-1 {r['rank_1']:.3f}, rank-10 {r['rank_10']:.3f}"
        f" (default probe rule: {r['default_rule_rank_1']:.3f}, {r['default_rule_rank_10']:.3f});"
        f" on the {n} mates whose gallery photograph was enrolled: {r['enrolled_mates_rank_1']:.3f},"
        f" {r['enrolled_mates_rank_10']:.3f}"
    )
    print(
        f"  gallery: {r['gallery_photos']} photographs, {r['refused']} refused {r['refused_by_reason']}"
        f" ({r['refused_mates']} of them mates), {r['chose_dominant_face']} enrolled with the dominant of several"
        f" faces, {r['enlarged']} found only enlarged"
    )
    print(
        f"  probes: {r['probes_dominant_face']} searched with a dominant face, {r['probes_centre_face']} with the face"
        f" nearest the centre, {r['probes_failed']} failed; index {r['index']}; {r['seconds']} s"
    )
    for line in r["probe_errors"]:
        print(f"  probe failed: {line}")
    c = figures["rfr_gallery_centre"]
    named = (
        f"on the {c['named_mates']} mates whose gallery face was named at the centre:"
        f" {c['named_mates_rank_1']:.3f}, {c['named_mates_rank_10']:.3f}"
        if c["named_mates"]
        else "no mate's gallery photograph was named at the centre"
    )
    print(
        f"rfr evaluate search --probe-face centre --gallery-face centre: rank-1 {c['rank_1']:.3f},"
        f" rank-10 {c['rank_10']:.3f}; on the same {n} mates: {c['enrolled_mates_rank_1']:.3f},"
        f" {c['enrolled_mates_rank_10']:.3f}; {named}"
    )
    print(
        f"  gallery: {c['face_named_at_centre']} enrolled with the face at the centre in place of a person naming it,"
        f" {c['refused']} refused {c['refused_by_reason']} ({c['refused_mates']} of them mates); {c['seconds']} s"
    )
    if args.peer:
        p = figures["face_recognition"]
        print(
            f"face_recognition (HOG, up 1, face nearest the centre): rank-1 {p['rank_1']:.3f},"
            f" rank-10 {p['rank_10']:.3f}; on the same {n} mates: {p['enrolled_mates_rank_1']:.3f},"
            f" {p['enrolled_mates_rank_10']:.3f}; gallery refused {p['refused']} (no face), probes failed"
            f" {p['probes_failed']}; {p['seconds']} s"
        )
    if args.json:
        for run in ("rfr", "rfr_gallery_centre"):
            figures[run].pop("ranked")
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
