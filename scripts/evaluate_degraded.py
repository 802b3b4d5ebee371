#!/usr/bin/env python
"""Degraded probes and quality: error rates at the operating threshold as the Probe Image gets worse.

On a seeded sample of held-out LFW people (STATEMENT folds 6-10 of ``people.txt``,
``engine.evaluation.protocol``), each with at least two images with a face:

- every image (the first ``MAX_IMAGES_PER_PERSON`` by number, documented label errors left out) is
  analysed clean, with the engine's quality measures;
- one probe image per person (seeded) is degraded under each condition of
  ``engine.evaluation.degraded.CONDITIONS`` and analysed again by the whole engine;
- FNMR (degraded probe against the person's other clean images; a face not found is a miss), FMR
  (degraded probe against every clean image of the other sampled people) and failure to enrol, at the
  operating threshold read from the installed calibration and policy, with subject-bootstrap intervals;
- error-versus-discard curves for each engine quality measure, on the clean images and on the pooled
  degraded probes (``engine.evaluation.probe_quality``).

Writes ``docs/evaluation/degraded.json`` (every figure) and ``docs/evaluation/degraded.md``; with
``--install`` also ``engine/scoring/degraded_figures.json`` (what the terminal cites beside a poor
probe) and its pinned sha256 in ``engine/scoring/applicability.py``. Templates stay in memory.

Usage (from the repository root; about 10 minutes on 2 cores)::

    .venv/bin/python scripts/evaluate_degraded.py --install
    .venv/bin/python scripts/evaluate_degraded.py --people 60 --json /tmp/d.json --markdown /tmp/d.md   # quick
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from engine.errors import RfrError  # noqa: E402
from engine.evaluation import degraded as dg  # noqa: E402
from engine.evaluation.label_errors import load_label_errors  # noqa: E402
from engine.evaluation.probe_quality import discard_curves  # noqa: E402
from engine.evaluation.protocol import MAX_IMAGES_PER_PERSON, STATEMENT_FOLDS, load_folds  # noqa: E402
from engine.evaluation.templates import IMAGES_DIR, list_images  # noqa: E402
from engine.scoring import applicability  # noqa: E402

DEFAULT_PEOPLE = 300
DEFAULT_SEED = 17
FIGURES_PATH = REPO_ROOT / "engine" / "scoring" / "degraded_figures.json"
APPLICABILITY_PATH = REPO_ROOT / "engine" / "scoring" / "applicability.py"
PIN = re.compile(r'^DEGRADED_FIGURES_SHA256 = "[0-9a-f]{64}"$', re.M)


def default_data_root() -> Path:
    return Path(os.environ.get("RFR_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def operating_point() -> dict[str, Any]:
    """The threshold in force: the default policy's, checked against the installed calibration and model."""
    from engine.faces.pipeline import model_identity
    from engine.policy import load_default_policy
    from engine.scoring.meaning import ScoreMeaning

    policy = load_default_policy()
    model_id, model_sha256 = model_identity()
    meaning = ScoreMeaning.load(policy, model_id, model_sha256)
    calibration_text = (REPO_ROOT / "models" / "calibration.yaml").read_text(encoding="utf-8")
    fmt = re.search(r"^format: (\d+)$", calibration_text, re.M)
    return {
        "threshold": float(meaning.threshold),
        "target_false_match_rate": float(meaning.target_false_match_rate),
        "calibration": meaning.calibration.reference,
        "calibration_format": int(fmt.group(1)) if fmt else None,
        "policy_version": meaning.policy_version,
        "model_id": model_id,
        "model_sha256": model_sha256,
    }


def sample_people(lfw_root: Path, people: int, seed: int) -> tuple[list[str], dict[str, list[str]], dict[str, Any]]:
    """Seeded STATEMENT people with at least two usable images, and their first images (label errors left out)."""
    images, persons = list_images(lfw_root)
    folds = load_folds(lfw_root)
    errors = load_label_errors()
    by_person: dict[str, list[str]] = {}
    dropped = 0
    for image, person in zip(images, persons, strict=True):
        if folds.get(person) not in STATEMENT_FOLDS:
            continue
        if errors.excludes_image(image):
            dropped += 1
            continue
        by_person.setdefault(person, []).append(image)
    eligible = sorted(p for p, imgs in by_person.items() if len(imgs) >= 2)
    if people > len(eligible):
        raise SystemExit(f"error: --people {people} is more than the {len(eligible)} held-out people with 2+ images")
    chosen = sorted(np.random.default_rng(seed).choice(eligible, size=people, replace=False).tolist())
    clean = {p: by_person[p][:MAX_IMAGES_PER_PERSON] for p in chosen}
    info = {
        "statement_people": sum(1 for p in by_person),
        "eligible_people": len(eligible),
        "label_error_images_left_out": dropped,
        "same_person_pairs": sorted(sorted(pair) for pair in errors.same_person),
        "label_errors_source": errors.source,
    }
    return chosen, clean, info


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=default_data_root(), help="$RFR_DATA or ../shared/data")
    parser.add_argument(
        "--people", type=int, default=DEFAULT_PEOPLE, help=f"held-out people sampled (default {DEFAULT_PEOPLE})"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"sample, probe and noise seed (default {DEFAULT_SEED})"
    )
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--device", default="CPU", help="OpenVINO device (default CPU)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--json", type=Path, default=REPO_ROOT / "docs" / "evaluation" / "degraded.json")
    parser.add_argument("--markdown", type=Path, default=REPO_ROOT / "docs" / "evaluation" / "degraded.md")
    parser.add_argument(
        "--install", action="store_true", help="also write engine/scoring/degraded_figures.json and pin its sha256"
    )
    args = parser.parse_args(argv)
    if args.people < 10 or args.jobs < 1 or args.n_boot < 100:
        parser.error("need --people 10 or more, --jobs 1 or more and --n-boot 100 or more")
    try:
        return run(args)
    except RfrError as exc:
        print(f"error: {exc.diagnostics()}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    lfw_root = args.data_root / "lfw"
    point = operating_point()
    threshold = point["threshold"]
    log(f"operating threshold {threshold} (calibration {point['calibration']}, format {point['calibration_format']})")
    chosen, clean_images, sample_info = sample_people(lfw_root, args.people, args.seed)
    paths = [img for p in chosen for img in clean_images[p]]
    owner_name = [p for p in chosen for _ in clean_images[p]]

    ctx = multiprocessing.get_context("spawn")  # OpenVINO must not be forked after loading
    with ctx.Pool(args.jobs, initializer=dg.worker_init, initargs=(args.device,)) as pool:
        t0 = time.perf_counter()
        clean: list[dg.Seen] = [dg.Seen(None, None)] * len(paths)
        work = [(i, str(lfw_root / IMAGES_DIR / rel)) for i, rel in enumerate(paths)]
        for done, (i, seen) in enumerate(pool.imap_unordered(dg.analyse_clean, work, 8), 1):
            clean[i] = seen
            if done % 200 == 0 or done == len(work):
                log(f"  clean images: {done}/{len(work)} ({done / (time.perf_counter() - t0):.1f}/s)")
        clean_seconds = time.perf_counter() - t0

        # People keep only images with a face; a person needs two (a probe and a reference).
        rng = np.random.default_rng(args.seed + 1)
        kept = [p for p in chosen if sum(clean[i].found for i, o in enumerate(owner_name) if o == p) >= 2]
        person_index = {p: k for k, p in enumerate(kept)}
        gallery_rows = [i for i, o in enumerate(owner_name) if o in person_index and clean[i].found]
        probe_rows: list[int] = []
        for p in kept:
            rows = [i for i in gallery_rows if owner_name[i] == p]
            probe_rows.append(int(rng.choice(rows)))

        t0 = time.perf_counter()
        jobs = []
        for k, i in enumerate(probe_rows):
            seen = clean[i]
            assert seen.quality is not None and seen.centre is not None and seen.width is not None
            ied = seen.quality["inter_eye_distance"][0]
            jobs.append(dg.ProbeJob(k, str(lfw_root / IMAGES_DIR / paths[i]), seen.centre, seen.width, ied, args.seed))
        degraded: list[dict[str, dg.Seen]] = [{}] * len(jobs)
        for done, (k, results) in enumerate(pool.imap_unordered(dg.analyse_probe, jobs, 2), 1):
            degraded[k] = results
            if done % 25 == 0 or done == len(jobs):
                log(f"  degraded probes: {done}/{len(jobs)} ({done / (time.perf_counter() - t0):.2f} probes/s)")
        probe_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    gallery_position = {row: g for g, row in enumerate(gallery_rows)}
    gallery = np.stack([np.asarray(clean[i].template, dtype=np.float64) for i in gallery_rows])
    gallery_person = np.array([person_index[owner_name[i]] for i in gallery_rows], dtype=np.int64)
    probe_person = np.arange(len(kept), dtype=np.int64)
    probe_source = np.array([gallery_position[i] for i in probe_rows], dtype=np.int64)
    aliases = [
        (person_index[a], person_index[b])
        for a, b in sample_info["same_person_pairs"]
        if a in person_index and b in person_index
    ]
    figures: list[dg.ConditionFigures] = []
    for condition in dg.CONDITIONS:
        probes = [clean[i] for i in probe_rows] if condition.kind == "clean" else [d[condition.key] for d in degraded]
        figures.append(
            dg.condition_figures(
                condition,
                probes,
                probe_person,
                probe_source,
                gallery,
                gallery_person,
                len(kept),
                threshold,
                aliases,
                n_boot=args.n_boot,
                seed=args.seed,
            )
        )

    # Error versus discard, clean: every same-person pair of the gallery; units are images.
    clean_pairs: list[tuple[int, int]] = []
    for person in range(len(kept)):
        members = np.flatnonzero(gallery_person == person).tolist()
        clean_pairs += [(a, b) for n, a in enumerate(members) for b in members[n + 1 :]]
    pa, pb = np.array(clean_pairs).T
    clean_d = np.linalg.norm(gallery[pa] - gallery[pb], axis=1)
    clean_quality = [clean[i].quality or {} for i in gallery_rows]  # every gallery image has a face
    erc_clean = discard_curves(
        clean_d,
        np.stack([pa, pb], axis=1),
        gallery_person[pa],
        clean_quality,
        threshold,
        n_boot=args.n_boot,
        seed=args.seed,
    )
    # Pooled degraded probes (every condition that is not an enlargement); units are probes found.
    units: list[dict[str, tuple[float, bool]]] = []
    pool_d: list[float] = []
    pool_unit: list[int] = []
    pool_subject: list[int] = []
    pool_conditions = [f.condition for f in figures if not f.citable_enlarged]
    pooled_not_found = 0
    for condition in pool_conditions:
        for k, i in enumerate(probe_rows):
            seen = clean[i] if condition.kind == "clean" else degraded[k][condition.key]
            if seen.quality is None or seen.template is None:
                pooled_not_found += 1
                continue
            refs = np.flatnonzero((gallery_person == k) & (np.arange(len(gallery_rows)) != probe_source[k]))
            d = np.linalg.norm(gallery[refs] - np.asarray(seen.template, dtype=np.float64), axis=1)
            units.append(seen.quality)
            pool_d += d.tolist()
            pool_unit += [len(units) - 1] * refs.size
            pool_subject += [k] * refs.size
    erc_pooled = discard_curves(
        np.array(pool_d),
        np.array(pool_unit),
        np.array(pool_subject),
        units,
        threshold,
        n_boot=args.n_boot,
        seed=args.seed,
    )
    figure_seconds = time.perf_counter() - t0

    clean_found = sum(s.found for s in clean)
    report: dict[str, Any] = {
        "what": "Degraded probes and quality: error rates of the face engine at the operating threshold",
        "command": f"scripts/evaluate_degraded.py --people {args.people} --seed {args.seed}",
        "operating_point": point,
        "data": {
            "dataset": "LFW (Labeled Faces in the Wild), people.txt folds 6-10 (STATEMENT people, held out)",
            **{k: v for k, v in sample_info.items() if k != "same_person_pairs"},
            "people_sampled": len(chosen),
            "people_with_two_faces": len(kept),
            "clean_images_analysed": len(paths),
            "clean_images_without_face": len(paths) - clean_found,
            "gallery_images": len(gallery_rows),
            "max_images_per_person": MAX_IMAGES_PER_PERSON,
            "clean_inter_eye_distance_px": _percentiles([q["inter_eye_distance"][0] for q in clean_quality]),
            "clean_sharpness": _percentiles([q["sharpness"][0] for q in clean_quality]),
        },
        "cctv_recipe": {
            "inter_eye_distance_px": dg.CCTV.ied,
            "blur_sigma_px": dg.CCTV.blur_sigma,
            "noise_sigma": dg.CCTV.noise_sigma,
            "jpeg_quality": dg.CCTV.jpeg_quality,
        },
        "conditions": [f.to_json() for f in figures],
        "error_versus_discard": {
            "clean_images": {
                "units": "clean images (a pair is kept while both its images are)",
                "curves": [c.to_json() for c in erc_clean],
            },
            "pooled_degraded_probes": {
                "units": "probes of every condition that is not an enlargement (a pair is kept while its probe is)",
                "conditions": [c.key for c in pool_conditions],
                "probes_not_found_left_out": pooled_not_found,
                "curves": [c.to_json() for c in erc_pooled],
            },
        },
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "jobs": args.jobs,
            "device": args.device,
            "seconds": {
                "clean": round(clean_seconds, 1),
                "degraded": round(probe_seconds, 1),
                "figures": round(figure_seconds, 1),
                "total": round(time.perf_counter() - start, 1),
            },
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    args.markdown.parent.mkdir(parents=True, exist_ok=True)
    args.markdown.write_text(render_markdown(report), encoding="utf-8")
    log(f"wrote {args.json} and {args.markdown}")
    if args.install:
        digest = install(figures, point, report)
        log(f"installed {FIGURES_PATH.relative_to(REPO_ROOT)} (sha256 {digest[:12]}) and pinned it")
    log(f"done in {time.perf_counter() - start:.0f} s")
    return 0


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {}
    q = np.percentile(np.asarray(values, dtype=np.float64), [5, 50, 95])
    return {"p5": round(float(q[0]), 2), "median": round(float(q[1]), 2), "p95": round(float(q[2]), 2)}


def run_time_figures(figures: Sequence[dg.ConditionFigures], point: dict[str, Any], report: dict[str, Any]) -> bytes:
    """The bytes of ``degraded_figures.json``: no times or dates, so a re-run on the same data gives the same bytes."""
    data = report["data"]
    content = {
        "format": applicability.FIGURES_FORMAT,
        "generated_by": report["command"] + " --install",
        "model_id": point["model_id"],
        "model_sha256": point["model_sha256"],
        "calibration": point["calibration"],
        "threshold": point["threshold"],
        "dataset": (
            f"{data['dataset']}: {data['people_with_two_faces']} people, {data['gallery_images']} clean images"
        ),
        "conditions": [f.run_time_json() for f in figures],
    }
    return (json.dumps(content, indent=1, sort_keys=True) + "\n").encode("utf-8")


def install(figures: Sequence[dg.ConditionFigures], point: dict[str, Any], report: dict[str, Any]) -> str:
    """Write the run-time figures and pin their sha256 in applicability.py; check they load back."""
    data = run_time_figures(figures, point, report)
    digest = hashlib.sha256(data).hexdigest()
    applicability.parse_degraded_figures(data, "(new figures)", digest)  # refuse to install what will not load
    source = APPLICABILITY_PATH.read_text(encoding="utf-8")
    if len(PIN.findall(source)) != 1:
        raise SystemExit(f"error: {APPLICABILITY_PATH} must hold exactly one DEGRADED_FIGURES_SHA256 line")
    FIGURES_PATH.write_bytes(data)
    APPLICABILITY_PATH.write_text(PIN.sub(f'DEGRADED_FIGURES_SHA256 = "{digest}"', source), encoding="utf-8")
    return digest


# ---- the document ----


def _cell(figure: dict[str, Any]) -> str:
    return f"{figure['events']:,}/{figure['trials']:,}: {figure['stated']}"


def _para(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def _summary(conditions: Sequence[dict[str, Any]]) -> list[str]:
    """One line per kind of degradation: FNMR as captured and at the worst level of that kind."""
    clean = conditions[0]
    out = [f"- As captured: FNMR {clean['fnmr']['stated']}; FMR {clean['fmr']['stated']}."]
    for kind, words in (
        ("inter_eye_distance", "Smallest face"),
        ("blur", "Strongest blur"),
        ("jpeg", "Strongest compression"),
        ("cctv", "Small, blurred, noisy and compressed"),
    ):
        rows = [c for c in conditions if c["kind"] == kind]
        if not rows:
            continue
        worst = rows[0] if kind == "inter_eye_distance" else rows[-1]
        out.append(
            f"- {words} ({worst['label']}): FNMR {worst['fnmr']['stated']}, "
            f"{worst['not_found']['events']} of {worst['probes']} faces not found; FMR {worst['fmr']['stated']}."
        )
    return out


def render_markdown(report: dict[str, Any]) -> str:
    point, data, machine = report["operating_point"], report["data"], report["machine"]
    ied, sharp = data["clean_inter_eye_distance_px"], data["clean_sharpness"]
    left = data["people_sampled"] - data["people_with_two_faces"]
    lines = [
        "# Degraded probes and image quality",
        "",
        _para(
            "Generated by `scripts/evaluate_degraded.py`: do not edit by hand, re-run it. Every figure is also in",
            "`degraded.json` beside this file. Method: `engine/evaluation/degraded.py` (degradations and rates) and",
            "`engine/evaluation/probe_quality.py` (error versus discard).",
        ),
        "",
        "## Summary at the operating threshold",
        "",
        *_summary(report["conditions"]),
        "",
        "## What was measured",
        "",
        _para(
            f"- **People**: {data['people_with_two_faces']} held-out LFW people: a seeded sample of",
            f"{data['people_sampled']} of the {data['eligible_people']} people of `people.txt` folds 6-10 with two or",
            f"more images ({left} left with fewer than two faces found). None of them chose the threshold.",
            f"Documented LFW label errors are left out ({data['label_error_images_left_out']} images of the half).",
        ),
        _para(
            f"- **Clean images**: each person's first {data['max_images_per_person']} images by number:",
            f"{data['clean_images_analysed']:,} analysed, {data['clean_images_without_face']} without a face,",
            f"{data['gallery_images']:,} in the clean gallery. The engine measures {ied.get('median', 0):.0f} px",
            f"between the eyes on them (5th-95th percentile {ied.get('p5', 0):.0f}-{ied.get('p95', 0):.0f}) and a",
            f"sharpness of {sharp.get('median', 0):.0f} ({sharp.get('p5', 0):.0f}-{sharp.get('p95', 0):.0f}).",
        ),
        _para(
            "- **Probes**: one image per person (seeded), degraded under each condition below, then run through the",
            "whole engine again as the terminal analyses a Probe Image: detection (enlarged while no face is found),",
            "landmarks, chip, template and quality. The probe's face is the one found where the clean face was; no",
            "face there is a failure to enrol.",
        ),
        _para(
            "- **FNMR**: the degraded probe against every other clean image of the same person (never its own",
            "photograph); a probe whose face was not found counts as a miss on each of its pairs. *FNMR, found",
            "probes only* leaves those out.",
        ),
        "- **FMR**: the degraded probe against every clean image of every other sampled person.",
        _para(
            f"- **Operating threshold**: {point['threshold']} (a distance at or below it is a match), read at run",
            f"time from the policy ({point['policy_version']}) and calibration `{point['calibration']}` (format",
            f"{point['calibration_format']}), for the policy's target false-match rate",
            f"{point['target_false_match_rate']:g}.",
        ),
        _para(
            "- **Intervals**: 95 % subject bootstrap (people resampled with all their comparisons); failure to enrol:",
            "Wilson (one probe per person). **Rule of 30**: a rate is stated only with at least 30 errors behind it;",
            'otherwise "fewer than N %", N % being 30 errors among the pairs',
            "(the lowest rate this evaluation can show).",
        ),
        _para(
            f"- **Machine**: {machine['platform']}, {machine['cpus']} CPUs, {machine['jobs']} worker processes on",
            f"{machine['device']}; {machine['seconds']['total']:.0f} s in all.",
        ),
        "",
        _para(
            f"LFW faces are captured with about {ied.get('median', 0):.0f} px between the eyes, so the 48 and 64 px",
            "conditions are *enlargements*: they test the engine at that pixel size but hold no more detail than the",
            "original photograph, and the terminal never cites them. The",
            f"{dg.CCTV.describe().replace(':', ' recipe:', 1)} (in that order: reduce, blur, add noise, compress).",
        ),
        "",
        "## Error rates by condition",
        "",
        _para(
            "| condition | people | not found | FNMR (misses/pairs) | FNMR, found probes only |",
            "FMR (false matches/pairs) | median inter-eye px | median sharpness | enlarged |",
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in report["conditions"]:
        m = c["measured_median"]
        lines.append(
            f"| {c['label']} | {c['people']} | {c['not_found']['events']} of {c['probes']} | {_cell(c['fnmr'])} | "
            f"{_cell(c['fnmr_compared'])} | {_cell(c['fmr'])} | {m.get('inter_eye_distance', float('nan')):.1f} | "
            f"{m.get('sharpness', float('nan')):.1f} | {c['enlarged']:.0%} |"
        )
    lines += [
        "",
        _para(
            'Intervals of every figure (`low`, `high`) are in `degraded.json`. A figure that says "fewer than" had',
            "fewer than 30 errors: its rate is not stated, only the bound.",
        ),
        "",
        "## Error versus discard: do the engine's quality measures find the misses?",
        "",
        _para(
            "FNMR at the operating threshold after discarding the lowest-quality fraction of images (clean) or",
            "probes (pooled degraded), ranked by each quality measure the engine reports. A falling row means the",
            "measure finds the comparisons the engine gets wrong; a flat row means it does not. Ties (the warning",
            "count) are broken in a seeded random order.",
        ),
    ]
    for key, title in (("clean_images", "Clean LFW images"), ("pooled_degraded_probes", "Pooled degraded probes")):
        block = report["error_versus_discard"][key]
        curves = block["curves"]
        fractions = [p["fraction_discarded"] for p in curves[0]["points"]]
        left_out = block.get("probes_not_found_left_out")
        lines += [
            "",
            f"### {title}",
            "",
            _para(
                f"Units: {block['units']}; {curves[0]['units']:,} units, {curves[0]['pairs']:,} mated pairs.",
                "" if left_out is None else f"Probes not found (no quality to rank): {left_out}.",
            ),
            "",
            "| measure | " + " | ".join(f"{f:.0%} discarded" for f in fractions) + " |",
            "| --- | " + " | ".join("---" for _ in fractions) + " |",
        ]
        for curve in curves:
            cells = [
                f"{100 * p['fnmr']['rate']:.1f} % ({p['fnmr']['events']})" if p["fnmr"]["trials"] else "-"
                for p in curve["points"]
            ]
            lines.append(f"| {curve['label']} | " + " | ".join(cells) + " |")
        lines += [
            "",
            _para(
                "Cells: FNMR (misses). Rates with fewer than 30 misses are shown only to draw the curve; the stated",
                "figures, their intervals and the worst value kept at each cut are in `degraded.json`.",
            ),
        ]
    lines += [
        "",
        "## What the terminal says",
        "",
        _para(
            "`engine.scoring.applicability.probe_caveats` reads `engine/scoring/degraded_figures.json` (written by",
            "`--install`, its sha256 pinned in `applicability.py`). For a probe whose inter-eye distance or sharpness",
            "carries the engine's warning, it names the FNMR of the condition whose median measure is nearest (never",
            "an enlargement), and the CCTV-like figure when both warnings fire; for a probe of someone under 16 it",
            "says that no accuracy figure applies. Figures measured at another operating threshold or model build",
            "are not cited.",
        ),
        "",
        "## Limits",
        "",
        _para(
            "- LFW is adult news photography: the degradations are simulated on it, not captured by real CCTV; the",
            "force's own CCTV-to-custody pairs would measure the real thing.",
        ),
        "- One probe per person and a sample of people: intervals are wide where misses are few.",
        "- No children: LFW holds almost none, so nothing here applies to probes of people under 16.",
        "- The engine does not measure compression, so JPEG figures are reported here but never cited on screen.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
