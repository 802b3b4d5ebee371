#!/usr/bin/env python
"""Measure the face engine on all of LFW: 1:1 error rates, the score calibration, 1:N figures, equity figures.

Every image of ``lfw/images`` is analysed in memory by ``FaceEngine`` (the labelled person is the
face nearest the image centre, as ``engine.evaluation.lfw`` does); templates never touch the disk.
Then, over the images with a face:

- genuine scores: every same-person pair; impostor scores: every different-person pair (~87 million,
  computed in chunks); DET curve, EER, FMR and FNMR at several thresholds with intervals;
- the calibration (distance -> false-match rate) written to ``models/calibration.yaml`` and the
  threshold it gives at the policy's target false-match rate;
- 1:N: each person's first image enrolled, every one-image person as a distractor, the other images
  as probes; CMC rank 1-50, FNIR at FPIR 0.003 and 0.01 (non-mated searches: each probe with its mate
  removed from the gallery);
- equity: the same figures by sex and by race group (``engine.evaluation.demographics``);
- ``docs/evaluation.md`` and PNG plots in ``docs/img/`` (needs matplotlib: the optional ``eval`` extra;
  the plots are not tracked: they are drawn from LFW results, so each run makes its own).

Usage (from the repository root)::

    .venv/bin/python scripts/evaluate.py                      # full run: ~20 min on 2 cores
    .venv/bin/python scripts/evaluate.py --limit 800 --docs-dir /tmp/ev --json /tmp/ev.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from engine.errors import RfrError  # noqa: E402
from engine.evaluation import metrics as m  # noqa: E402
from engine.evaluation.calibration import build_calibration  # noqa: E402
from engine.evaluation.demographics import (  # noqa: E402
    GENDER_GROUPS,
    RACE_GROUPS,
    PersonLabels,
    agreement,
    load_gender,
    load_race_attributes,
    load_race_by_person,
)
from engine.evaluation.lfw import nearest_to_centre  # noqa: E402
from engine.scoring import statistics as stats  # noqa: E402
from engine.scoring.calibration import Calibration, derive_threshold  # noqa: E402

TARGET_FMRS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
FIXED_THRESHOLDS = ((0.5, "fixed"), (0.6, "dlib's rule of thumb"))
TARGET_FPIRS = (0.003, 0.01)
MAX_RANK = 50
DESCRIBE_AT = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def engine_revision() -> str:
    """The git commit the engine code came from, and whether engine/faces or models differ from it."""
    import subprocess

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--", "engine/faces", "models/manifest.yaml")
    return f"{commit} (engine/faces with local changes)" if changed else commit


def default_data_root() -> Path:
    return Path(os.environ.get("RFR_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


# ---- templates, in memory only ----

_engine: Any = None


def _worker_init(device: str) -> None:
    global _engine
    from engine.faces.pipeline import FaceEngine

    _engine = FaceEngine.open(device=device)


def _worker_run(job: tuple[int, str, int]) -> tuple[int, int, np.ndarray | None, str | None]:
    """(index, faces found, template of the centre face or None, error or None)."""
    from engine.faces.image_io import load_image

    index, path, upsample = job
    try:
        rgb = load_image(Path(path)).rgb
        faces = _engine.analyze(rgb, upsample=upsample, embed=True, quality=False)
    except RfrError as exc:  # an unreadable image is counted and reported, like an image with no face
        return index, 0, None, exc.diagnostics()
    chosen = nearest_to_centre([f.box for f in faces], rgb.shape[1], rgb.shape[0])
    if chosen is None:
        return index, 0, None, None
    return index, len(faces), np.asarray(faces[chosen].embedding, dtype=np.float32), None


@dataclass
class Templates:
    persons: list[str]  # subject index -> name, sorted
    images: list[str]  # relative paths, sorted by person then number
    owner: np.ndarray  # (images,) subject index
    vectors: np.ndarray  # (images, 128) float64; rows of NaN where no face
    has_face: np.ndarray  # (images,) bool
    several_faces: int
    errors: dict[str, str]
    seconds: float
    model_id: str
    model_sha256: str


def list_images(lfw_root: Path, limit: int | None) -> tuple[list[str], list[str], np.ndarray]:
    """People (sorted) and their images; with ``limit``, whole people in name order until that many images."""
    folder = lfw_root / "images"
    if not folder.is_dir():
        raise SystemExit(f"error: no LFW images at {folder}; set RFR_DATA or --data-root")
    persons: list[str] = []
    images: list[str] = []
    owner: list[int] = []
    for person_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(f.name for f in person_dir.glob("*.jpg"))
        if not files:
            continue
        if limit is not None and images and len(images) + len(files) > limit:
            break
        persons.append(person_dir.name)
        images += [f"images/{person_dir.name}/{f}" for f in files]
        owner += [len(persons) - 1] * len(files)
    return persons, images, np.array(owner, dtype=np.int64)


def compute_templates(lfw_root: Path, limit: int | None, jobs: int, device: str, upsample: int) -> Templates:
    from engine.faces.pipeline import FaceEngine

    persons, images, owner = list_images(lfw_root, limit)
    probe = FaceEngine.open(device=device)  # fails here, once, with a clear message if the models are wrong
    model_id, model_sha256 = probe.model_id, probe.model_sha256
    del probe
    vectors = np.full((len(images), 128), np.nan)
    several = 0
    errors: dict[str, str] = {}
    start = time.perf_counter()
    work = [(i, str(lfw_root / rel), upsample) for i, rel in enumerate(images)]
    ctx = multiprocessing.get_context("spawn")  # OpenVINO must not be forked after loading
    with ctx.Pool(jobs, initializer=_worker_init, initargs=(device,)) as pool:
        for done, (i, n_faces, template, error) in enumerate(pool.imap_unordered(_worker_run, work, 16), 1):
            if template is not None:
                vectors[i] = template
            several += n_faces > 1
            if error is not None:
                errors[images[i]] = error
            if done % 1000 == 0 or done == len(work):
                rate = done / (time.perf_counter() - start)
                print(f"  templates: {done}/{len(work)} images ({rate:.1f}/s)", file=sys.stderr, flush=True)
    has_face = ~np.isnan(vectors[:, 0])
    return Templates(
        persons, images, owner, vectors, has_face, several, errors, time.perf_counter() - start, model_id, model_sha256
    )


# ---- all pairs ----


@dataclass
class Pairs:
    genuine_d: np.ndarray
    genuine_s: np.ndarray
    impostor_d: np.ndarray  # in computation order (aligned with impostor_a/b)
    impostor_a: np.ndarray
    impostor_b: np.ndarray
    images_per_subject: np.ndarray  # images with a face, per person
    genuine_lost: int  # same-person pairs that could not be compared (an image had no face)
    seconds: float


def all_pairs(t: Templates, chunk: int = 256) -> Pairs:
    """Every same-person and every different-person pair of images with a face, by euclidean distance."""
    start = time.perf_counter()
    x = t.vectors[t.has_face]
    owner = t.owner[t.has_face]
    n_subjects = len(t.persons)
    per = np.bincount(owner, minlength=n_subjects)
    all_per = np.bincount(t.owner, minlength=n_subjects)
    n = x.shape[0]
    n_gen = int(np.sum(per * (per - 1) // 2))
    n_imp = n * (n - 1) // 2 - n_gen
    gen_d, gen_s = np.empty(n_gen), np.empty(n_gen, dtype=np.int64)
    imp_d = np.empty(n_imp)
    imp_a, imp_b = np.empty(n_imp, dtype=np.int16), np.empty(n_imp, dtype=np.int16)
    sq = np.einsum("ij,ij->i", x, x)
    pg = pi = 0
    for r0 in range(0, n, chunk):
        r1 = min(n, r0 + chunk)
        d2 = sq[r0:r1, None] + sq[None, r0:] - 2.0 * (x[r0:r1] @ x[r0:].T)
        d = np.sqrt(np.maximum(d2, 0.0, out=d2), out=d2)
        upper = np.arange(r0, n)[None, :] > np.arange(r0, r1)[:, None]
        same = owner[r0:r1, None] == owner[None, r0:]
        rows, cols = np.nonzero(upper & same)
        k = rows.size
        gen_d[pg : pg + k], gen_s[pg : pg + k] = d[rows, cols], owner[r0 + rows]
        pg += k
        rows, cols = np.nonzero(upper & ~same)
        k = rows.size
        imp_d[pi : pi + k] = d[rows, cols]
        imp_a[pi : pi + k], imp_b[pi : pi + k] = owner[r0 + rows], owner[r0 + cols]
        pi += k
    assert pg == n_gen and pi == n_imp
    lost = int(np.sum(all_per * (all_per - 1) // 2)) - n_gen
    return Pairs(gen_d, gen_s, imp_d, imp_a, imp_b, per, lost, time.perf_counter() - start)


# ---- 1:N ----


@dataclass
class Identification:
    gallery: int
    mated_enrolled: int
    distractors: int
    enrolled_not_first: int
    people_not_enrolled: int
    probe_subject: np.ndarray
    mate_d: np.ndarray
    ranks: np.ndarray
    nonmated_top: np.ndarray  # probes with a face only
    nonmated_subject: np.ndarray
    probes_without_face: int


def identification(t: Templates, chunk: int = 512) -> Identification:
    """Gallery: each person's first image with a face; probes: every other image of people with 2+ images."""
    n_subjects = len(t.persons)
    first: dict[int, int] = {}
    count = np.bincount(t.owner, minlength=n_subjects)
    not_first = 0
    for i in range(len(t.images)):
        s = int(t.owner[i])
        if s not in first and t.has_face[i]:
            first[s] = i
            not_first += i > 0 and int(t.owner[i - 1]) == s  # the person's first image had no face
    gallery_rows = sorted(first.values())
    column = {int(t.owner[i]): c for c, i in enumerate(gallery_rows)}
    enrolled = set(first.values())
    probes = [i for i in range(len(t.images)) if count[t.owner[i]] > 1 and i not in enrolled and t.owner[i] in column]
    g = t.vectors[gallery_rows]
    probe_subject = t.owner[probes]
    mate_col = np.array([column[int(s)] for s in probe_subject], dtype=np.int64)
    mate_d = np.full(len(probes), np.inf)
    ranks = np.full(len(probes), m.NO_RANK, dtype=np.int64)
    nonmated = np.full(len(probes), np.inf)
    gsq = np.einsum("ij,ij->i", g, g)
    for p0 in range(0, len(probes), chunk):
        rows = np.array(probes[p0 : p0 + chunk])
        x = t.vectors[rows]
        d2 = np.einsum("ij,ij->i", x, x)[:, None] + gsq[None, :] - 2.0 * (x @ g.T)
        d = np.sqrt(np.maximum(d2, 0.0))
        d[np.isnan(d)] = np.inf  # probes with no face: no candidates at all
        cols = mate_col[p0 : p0 + chunk]
        mate_d[p0 : p0 + rows.size] = d[np.arange(rows.size), cols]
        ranks[p0 : p0 + rows.size] = m.mate_ranks(d, cols)
        nonmated[p0 : p0 + rows.size] = m.nonmated_top_distance(d, cols)
    with_face = t.has_face[probes]
    multi = {s for s in column if count[s] > 1}
    return Identification(
        gallery=len(gallery_rows),
        mated_enrolled=len(multi),
        distractors=len(gallery_rows) - len(multi),
        enrolled_not_first=int(not_first),
        people_not_enrolled=n_subjects - len(gallery_rows),
        probe_subject=probe_subject,
        mate_d=mate_d,
        ranks=ranks,
        nonmated_top=nonmated[with_face],
        nonmated_subject=probe_subject[with_face],
        probes_without_face=int((~with_face).sum()),
    )


# ---- the analysis ----


def subject_groups(persons: Sequence[str], labels: PersonLabels) -> list[str | None]:
    return [labels.group_of(p) for p in persons]


def equity(
    pairs: Pairs,
    ident: Identification,
    groups: list[str | None],
    threshold: float,
    one_to_n_threshold: float,
    target_fmr: float,
    n_boot: int,
    seed: int,
    imp_sel: np.ndarray,
) -> dict[str, Any]:
    """FNMR and FMR (within and across groups) at the operating threshold; FNIR by group in 1:N."""
    g_err = ~(pairs.genuine_d <= threshold)
    pooled_fnmr = float(g_err.mean()) if g_err.size else 0.0
    fnmr_rule = m.SizeRule.for_rate(pooled_fnmr)
    fmr_rule = m.SizeRule.for_rate(target_fmr)
    fnmr_groups = m.group_error_rates(g_err, pairs.genuine_s, groups, fnmr_rule, n_boot=n_boot, seed=seed)
    fmr_groups = m.group_fmr(
        pairs.impostor_d[imp_sel],
        pairs.impostor_a[imp_sel],
        pairs.impostor_b[imp_sel],
        pairs.images_per_subject,
        groups,
        threshold,
        fmr_rule,
        n_boot=n_boot,
        seed=seed,
    )
    miss = ~((ident.ranks <= MAX_RANK) & (ident.mate_d <= one_to_n_threshold))
    pooled_fnir = float(miss.mean()) if miss.size else 0.0
    fnir_rule = m.SizeRule.for_rate(pooled_fnir)
    fnir_groups = m.group_error_rates(miss, ident.probe_subject, groups, fnir_rule, n_boot=n_boot, seed=seed)
    rank1_miss = ident.ranks > 1
    rank1_groups = m.group_error_rates(
        rank1_miss, ident.probe_subject, groups, m.SizeRule.for_rate(float(rank1_miss.mean())), n_boot=n_boot, seed=seed
    )
    people = {g: sum(1 for x in groups if x == g) for g in sorted({x for x in groups if x})}
    images = {
        g: int(sum(pairs.images_per_subject[i] for i, x in enumerate(groups) if x == g))
        for g in sorted({x for x in groups if x})
    }
    return {
        "people": people,
        "images_with_face": images,
        "unlabelled_people": sum(1 for x in groups if not x),
        "rules": {
            "fnmr": vars(fnmr_rule),
            "fmr": vars(fmr_rule),
            "fnir": vars(fnir_rule),
        },
        "fnmr": [f.to_json() for f in fnmr_groups],
        "fnmr_spread": stats.spread(fnmr_groups).to_json(),
        "fmr": fmr_groups.to_json(),
        "fmr_spread": stats.spread(fmr_groups.within).to_json(),
        "fnir": [f.to_json() for f in fnir_groups],
        "fnir_spread": stats.spread(fnir_groups).to_json(),
        "rank1_miss": [f.to_json() for f in rank1_groups],
        "_objects": (fnmr_groups, fmr_groups, fnir_groups, rank1_groups),
    }


def analyse(
    t: Templates,
    lfw_root: Path,
    target_fmr: float,
    n_boot: int,
    seed: int,
    created: str,
    created_by: str,
    calibration_version: int,
) -> dict[str, Any]:
    start = time.perf_counter()
    pairs = all_pairs(t)
    print(
        f"  pairs: {pairs.genuine_d.size:,} genuine, {pairs.impostor_d.size:,} impostor ({pairs.seconds:.0f} s)",
        file=sys.stderr,
    )
    genuine = m.Scores(pairs.genuine_d, what="genuine scores")
    imp_sorted = np.sort(pairs.impostor_d)
    impostor = m.Scores(imp_sorted, presorted=True, what="impostor scores")

    calibration = build_calibration(
        genuine,
        impostor,
        id=f"lfw-{created[:7]}",
        version=calibration_version,
        model_id=t.model_id,
        model_sha256=t.model_sha256,
        dataset=(
            f"LFW deep-funneled (UMass Amherst), {len(t.images):,} images of {len(t.persons):,} people; every "
            "same-person and different-person pair of images with a face; labelled face nearest the image centre"
        ),
        created=created,
        created_by=created_by,
        subjects=len(t.persons),
        images=len(t.images),
        images_without_face=int((~t.has_face).sum()),
    )
    threshold = derive_threshold(calibration, target_fmr)

    eer = m.equal_error_rate(genuine, impostor)
    det = m.det_curve(genuine, impostor, max_points=3000)

    def row(thr: float, source: str) -> dict[str, Any]:
        sel = pairs.impostor_d <= thr
        fm = m.fmr_by_subject(
            pairs.impostor_d[sel],
            pairs.impostor_a[sel],
            pairs.impostor_b[sel],
            pairs.images_per_subject,
            thr,
            n_boot=n_boot,
            seed=seed,
        )
        fnm = m.fnmr_by_subject(pairs.genuine_d, pairs.genuine_s, thr, n_boot=n_boot, seed=seed)
        return {
            "threshold": thr,
            "source": source,
            "fmr": fm.to_json(),
            "fmr_wilson": stats.wilson_interval(fm.events, fm.trials),
            "fnmr": fnm.to_json(),
            "fnmr_wilson": stats.wilson_interval(fnm.events, fnm.trials),
            "fnmr_with_failures_to_acquire": (fnm.events + pairs.genuine_lost) / (fnm.trials + pairs.genuine_lost),
        }

    table: list[dict[str, Any]] = []
    for target in TARGET_FMRS:
        try:
            table.append(row(derive_threshold(calibration, target), f"calibration at FMR {target:g}"))
        except RfrError as exc:
            table.append({"threshold": None, "source": f"calibration at FMR {target:g}", "refused": exc.diagnostics()})
    for thr, source in FIXED_THRESHOLDS:
        table.append(row(thr, source))
    operating = row(threshold, f"operating point (policy target FMR {target_fmr:g})")
    print(f"  1:1 figures done ({time.perf_counter() - start:.0f} s)", file=sys.stderr)

    ident = identification(t)
    cmc = m.cmc(ident.ranks, MAX_RANK)
    points = [
        m.fnir_at_fpir(ident.mate_d, ident.ranks, ident.nonmated_top, fpir, max_rank=MAX_RANK) for fpir in TARGET_FPIRS
    ]
    at_operating = {
        "threshold": threshold,
        "fpir": stats.wilson(
            int(m.Scores(ident.nonmated_top).at_or_below(threshold)), ident.nonmated_top.size
        ).to_json(),
        "fnir": stats.wilson(
            int(np.count_nonzero(~((ident.ranks <= MAX_RANK) & (ident.mate_d <= threshold)))), ident.mate_d.size
        ).to_json(),
    }
    print(f"  1:N figures done ({time.perf_counter() - start:.0f} s)", file=sys.stderr)

    demo_dir = lfw_root / "demographics"
    gender = load_gender(demo_dir)
    race = load_race_attributes(demo_dir)
    hand = load_race_by_person(demo_dir)
    check = agreement(hand, race)
    imp_sel = pairs.impostor_d <= threshold
    fpir01 = points[-1].threshold
    eq_gender = equity(
        pairs, ident, subject_groups(t.persons, gender), threshold, fpir01, target_fmr, n_boot, seed, imp_sel
    )
    race_groups = subject_groups(t.persons, race)
    eq_race = equity(pairs, ident, race_groups, threshold, fpir01, target_fmr, n_boot, seed, imp_sel)
    print(f"  equity figures done ({time.perf_counter() - start:.0f} s)", file=sys.stderr)

    return {
        "templates": t,
        "pairs": pairs,
        "genuine": genuine,
        "impostor": impostor,
        "calibration": calibration,
        "threshold": threshold,
        "target_fmr": target_fmr,
        "eer": eer,
        "det": det,
        "table": table,
        "operating": operating,
        "ident": ident,
        "cmc": cmc,
        "points": points,
        "one_to_n_at_operating": at_operating,
        "labels": {"gender": gender, "race": race, "race_by_person": hand},
        "agreement": check,
        "equity": {"sex": eq_gender, "race": eq_race},
        "groups": {"sex": subject_groups(t.persons, gender), "race": subject_groups(t.persons, race)},
        "analysis_seconds": time.perf_counter() - start,
    }


# ---- outputs ----


def to_json(r: dict[str, Any], command: str, jobs: int, n_boot: int) -> dict[str, Any]:
    t: Templates = r["templates"]
    p: Pairs = r["pairs"]
    ident: Identification = r["ident"]
    cal: Calibration = r["calibration"]
    clean = {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in r["equity"].items()}
    return {
        "command": command,
        "n_boot": n_boot,
        "model": {"id": t.model_id, "sha256": t.model_sha256, "engine_revision": engine_revision()},
        "data": {
            "people": len(t.persons),
            "images": len(t.images),
            "images_without_face": int((~t.has_face).sum()),
            "images_with_several_faces": t.several_faces,
            "images_that_failed": t.errors,
            "genuine_pairs": int(p.genuine_d.size),
            "impostor_pairs": int(p.impostor_d.size),
            "genuine_pairs_lost_to_missing_faces": p.genuine_lost,
        },
        "timing": {
            "templates_seconds": t.seconds,
            "images_per_second": len(t.images) / t.seconds if t.seconds else None,
            "jobs": jobs,
            "analysis_seconds": r["analysis_seconds"],
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        },
        "verification": {
            "eer": vars(r["eer"]),
            "table": r["table"],
            "operating_point": r["operating"],
        },
        "calibration": {
            "id": cal.id,
            "version": cal.version,
            "reference": cal.reference,
            "content_sha256": cal.content_sha256,
            "target_fmr": r["target_fmr"],
            "threshold": r["threshold"],
            "examples": {f"{d:.2f}": cal.false_match_rate(d).to_json() for d in DESCRIBE_AT},
        },
        "identification": {
            "gallery": ident.gallery,
            "mated_enrolled": ident.mated_enrolled,
            "distractors": ident.distractors,
            "enrolled_not_first_image": ident.enrolled_not_first,
            "people_not_enrolled": ident.people_not_enrolled,
            "mated_searches": int(ident.mate_d.size),
            "non_mated_searches": int(ident.nonmated_top.size),
            "probes_without_face": ident.probes_without_face,
            "cmc": {str(k + 1): float(v) for k, v in enumerate(r["cmc"])},
            "fnir_at_fpir": [pt.to_json() for pt in r["points"]],
            "at_operating_threshold": r["one_to_n_at_operating"],
        },
        "equity": clean,
        "annotations": {
            name: {"source": lab.source, "people_labelled": len(lab.labels), "note": lab.note}
            for name, lab in r["labels"].items()
        },
        "race_label_agreement": {
            "people_in_both": r["agreement"].common,
            "agreeing": r["agreement"].agree,
            "by_hand_label": r["agreement"].by_label,
        },
    }


def pct(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f} %"


def small_rate(x: float) -> str:
    """A rate readable at any size: percent above 0.1 %, else '1 in N'."""
    if x <= 0:
        return "0"
    if x >= 1e-3:
        return f"{100 * x:.2f} %"
    return f"1 in {round(1 / x):,}"


def ci(low: float, high: float) -> str:
    return f"{small_rate(low)} – {small_rate(high)}"


def write_plots(r: dict[str, Any], img_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    meta = {"Software": None}
    written: list[str] = []
    det = r["det"]
    op = r["operating"]

    fig, ax = plt.subplots(figsize=(6.4, 5))
    ok = (det.fmr > 0) & (det.fnmr > 0)
    ax.loglog(det.fmr[ok], det.fnmr[ok], lw=1.5, label="all LFW pairs")
    ax.plot(op["fmr"]["rate"], op["fnmr"]["rate"], "o", color="C3", label=f"operating threshold {r['threshold']:.3f}")
    dlib = next(row for row in r["table"] if row.get("threshold") == 0.6)
    ax.plot(dlib["fmr"]["rate"], dlib["fnmr"]["rate"], "s", color="C2", label="0.6 (dlib's rule of thumb)")
    ax.set_xlabel("false-match rate (FMR)")
    ax.set_ylabel("false non-match rate (FNMR)")
    ax.set_title("DET curve, face engine on LFW")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(img_dir / "det.png", dpi=110, metadata=meta)
    plt.close(fig)
    written.append("det.png")

    p: Pairs = r["pairs"]
    bins = np.linspace(0.0, 1.3, 131)
    for key, names in (("sex", GENDER_GROUPS), ("race", RACE_GROUPS)):
        groups = r["groups"][key]
        code = np.array([names.index(g) if g in names else -1 for g in groups], dtype=np.int8)
        ga, gb = code[p.impostor_a], code[p.impostor_b]
        gs = code[p.genuine_s]
        fig, (ax, tail) = plt.subplots(1, 2, figsize=(12, 4.5))
        for k, name in enumerate(names):
            color = f"C{k}"
            gen = p.genuine_d[gs == k]
            imp = np.sort(p.impostor_d[(ga == k) & (gb == k)])
            if gen.size:
                ax.hist(gen, bins=bins, density=True, histtype="step", color=color, ls="--", label=f"{name}: genuine")
            if imp.size:
                ax.hist(imp, bins=bins, density=True, histtype="step", color=color, label=f"{name}: impostor (within)")
                rate = np.arange(1, imp.size + 1) / imp.size
                tail.semilogy(imp, rate, color=color, label=f"{name} ({imp.size:,} pairs)")
        for axis in (ax, tail):
            axis.axvline(r["threshold"], color="k", lw=1, label=f"operating threshold {r['threshold']:.3f}")
            axis.set_xlabel("distance")
        ax.set_ylabel("density")
        ax.set_title(f"Score distributions by {key}")
        ax.legend(fontsize=7, ncol=2, loc="upper right")
        tail.set_xlim(0.3, 0.75)
        tail.set_ylim(1e-6, 1)
        tail.set_ylabel("within-group FMR at this threshold")
        tail.set_title(f"Impostor tail by {key} (what drives false matches)")
        tail.grid(True, which="both", alpha=0.3)
        tail.legend(fontsize=7, loc="upper left")
        fig.tight_layout()
        fig.savefig(img_dir / f"scores_{key}.png", dpi=110, metadata=meta)
        plt.close(fig)
        written.append(f"scores_{key}.png")

    fig, ax = plt.subplots(figsize=(6.4, 4.5))
    ranks = np.arange(1, MAX_RANK + 1)
    ax.plot(ranks, 100 * r["cmc"], marker=".", lw=1)
    ax.set_xlabel("rank")
    ax.set_ylabel("mated searches with the mate at or above this rank (%)")
    ax.set_title("CMC, 1:N on LFW (no threshold)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(img_dir / "cmc.png", dpi=110, metadata=meta)
    plt.close(fig)
    written.append("cmc.png")
    return written


def figure_cells(f: dict[str, Any]) -> str:
    sizes = f"{f['errors']:,} / {f['comparisons']:,} ({f['subjects']:,} people)"
    if f["figure"] is None:
        return f"{sizes} | {f['too_small']}"
    fig = f["figure"]
    return f"{sizes} | **{small_rate(fig['rate'])}** ({ci(fig['low'], fig['high'])})"


def rates_text(figures: list[dict[str, Any]]) -> str:
    return ", ".join(f"{f['group']} {small_rate(f['figure']['rate']) if f['figure'] else 'too small'}" for f in figures)


def spread_text(s: dict[str, Any]) -> str:
    if s["ratio"] is None:
        return s["note"] or "n/a"
    text = f"{s['ratio']:.2f} (highest {s['highest']}, lowest {s['lowest']})"
    if s["left_out"]:
        text += f"; left out as too small: {', '.join(s['left_out'])}"
    return text


def render_markdown(j: dict[str, Any], images: list[str], date: str) -> str:
    d, v, c, i, eq = j["data"], j["verification"], j["calibration"], j["identification"], j["equity"]
    op = v["operating_point"]
    L: list[str] = []
    add = L.append
    add("# Evaluation: what the engine's scores mean")
    add("")
    add(f"Generated by `scripts/evaluate.py` on {date}; do not edit by hand, re-run the command. Every figure")
    add("below is measured on the public LFW benchmark, **not** on custody images or CCTV; read *Limits* first.")
    add("The plots are drawn into `docs/img/` by the same command and are not kept in the repository.")
    add("")
    eer0 = v["eer"]
    fp01 = i["fnir_at_fpir"][-1]
    add("## Summary")
    add("")
    add(
        f"- Equal error rate over all {d['genuine_pairs']:,} genuine and {d['impostor_pairs']:,} impostor pairs: "
        f"{pct(eer0['rate'], 3)}."
    )
    add(
        f"- Operating point: the policy's target FMR {c['target_fmr']:g} gives threshold **{c['threshold']:.3f}** "
        f"(calibration {c['reference']}); there FMR is {small_rate(op['fmr']['rate'])} and FNMR "
        f"{pct(op['fnmr']['rate'])} (same-person pairs missed)."
    )
    add(
        f"- 1:N with a gallery of {i['gallery']:,}: rank-1 {pct(i['cmc']['1'])}, rank-50 {pct(i['cmc']['50'])}; "
        f"FNIR {pct(fp01['fnir']['rate'])} at FPIR {fp01['target_fpir']:g} (threshold {fp01['threshold']:.3f})."
    )
    for key, label in (("sex", "sex"), ("race", "race group")):
        e = eq[key]
        add(
            f"- By {label}, at the operating threshold: within-group FMR {rates_text(e['fmr']['within'])}; ratio "
            f"{spread_text(e['fmr_spread'])}. FNMR {rates_text(e['fnmr'])}; ratio {spread_text(e['fnmr_spread'])}."
        )
    add("")
    add("## Command")
    add("")
    add("```sh")
    add(f"{j['command']}")
    add("```")
    add("")
    add(
        f"Model `{j['model']['id']}` (build sha256 `{j['model']['sha256']}`), engine code at commit "
        f"`{j['model']['engine_revision']}`, on "
        f"{j['timing']['machine']}: templates for {d['images']:,} images in {j['timing']['templates_seconds']:.0f} s "
        f"({j['timing']['images_per_second']:.1f} images/s with {j['timing']['jobs']} worker processes), "
        f"analysis {j['timing']['analysis_seconds']:.0f} s. Templates were kept in memory only."
    )
    add("")
    add("## Data and protocol")
    add("")
    add(f"- LFW deep-funneled: {d['images']:,} images of {d['people']:,} people (news photographs of public figures).")
    add(
        f"- The labelled person is the face nearest the image centre ({d['images_with_several_faces']:,} images "
        f"hold several faces). No face was found in {d['images_without_face']:,} images; they make no comparisons "
        f"(the {d['genuine_pairs_lost_to_missing_faces']:,} same-person pairs lost that way are counted as misses in "
        "the 'FNMR incl. FTA' column). Errors reading images: "
        f"{len(d['images_that_failed'])}."
    )
    add(
        f"- **Genuine** pairs: every pair of images of the same person ({d['genuine_pairs']:,}). **Impostor** pairs: "
        f"every pair of images of two different people ({d['impostor_pairs']:,}), no sampling."
    )
    add("- Decision rule: a pair *matches* when its euclidean distance is at or below the threshold.")
    add("")
    add("### Limits")
    add("")
    add("- LFW is posed, well-lit press photography, mostly of adult white men; custody photos, CCTV stills and")
    add("  body-worn video differ in quality, pose, age and demographics. These figures describe the algorithm on")
    add("  this benchmark; they are not a prediction for the force's probes. The force must repeat the exercise on")
    add("  its own data (the quarterly casework breakdown in `engine.scoring.statistics.outcome_breakdown` starts it).")
    add("- The people are unequally represented (one person has 530 images), so genuine pairs are dominated by a")
    add("  few people, and pairs that share a person are not independent. Intervals are therefore computed by a")
    add("  **subject bootstrap** (people resampled, 95 %, percentile), not by treating pairs as independent; the")
    add("  Wilson interval (pairs as independent) is shown beside it only to show how much narrower it would be.")
    add("- LFW has known label errors (`LFW_ERRATA.txt`, kept as published); a mislabelled image shows up as a")
    add("  false match or a false non-match.")
    add("- The calibration maps distance to FMR *on LFW impostors*; it is the best estimate available, not a")
    add("  guarantee for other populations. Within-group impostor rates differ by group (see *Equity*), so the")
    add("  pooled figure understates the false-match rate for groups whose faces the model places closer together.")
    add("- The few impostor pairs at very small distances may be LFW label errors or the same photograph filed under")
    add("  two people; if so the extreme tail (below about 1 in a million) overstates the FMR, which errs on the")
    add("  cautious side for the stated meaning of a score.")
    add("- The calibration is bound to the ResNet build (`model_sha256`), but detection, landmarks and alignment also")
    add("  move distances: re-run this command whenever `engine/faces/` or the models change.")
    add("")
    add("## Verification (1:1)")
    add("")
    eer = v["eer"]
    add(
        f"Equal error rate: **{pct(eer['rate'], 3)}** (FVC2000 interval {pct(eer['low'], 3)}–{pct(eer['high'], 3)}, "
        f"at distance {eer['threshold']:.4f})."
    )
    add("")
    add(
        "| threshold | where from | FMR (events / pairs) | FMR 95 % (subject bootstrap) | FMR 95 % (Wilson) "
        "| FNMR (events / pairs) | FNMR 95 % (subject bootstrap) | FNMR incl. FTA |"
    )
    add("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in [*v["table"], op]:
        if row.get("threshold") is None:
            add(f"| – | {row['source']} | {row['refused']} | | | | | |")
            continue
        fm, fn = row["fmr"], row["fnmr"]
        add(
            f"| {row['threshold']:.3f} | {row['source']} | {small_rate(fm['rate'])} ({fm['events']:,} / "
            f"{fm['trials']:,}) | {ci(fm['low'], fm['high'])} | {ci(*row['fmr_wilson'])} | {pct(fn['rate'])} "
            f"({fn['events']:,} / {fn['trials']:,}) | {pct(fn['low'])} – {pct(fn['high'])} | "
            f"{pct(row['fnmr_with_failures_to_acquire'])} |"
        )
    add("")
    if "det.png" in images:
        add("![DET curve](img/det.png)")
        add("")
    add("## Calibration and the operating threshold")
    add("")
    add(
        f"`models/calibration.yaml`: calibration **{c['reference']}** (content sha256 `{c['content_sha256']}`), "
        f"for model build `{j['model']['sha256'][:16]}…` only; the engine must refuse it for any other build. It "
        f"tabulates, every 0.001 of distance, how many of the {d['impostor_pairs']:,} impostor pairs and "
        f"{d['genuine_pairs']:,} genuine pairs scored at or below it. Below 3 impostor pairs it states an exact "
        '95 % upper bound ("fewer than 1 in N"), never an invented rate.'
    )
    add("")
    add(
        f"The policy's target false-match rate is **{c['target_fmr']:g}**; the threshold derived from the "
        f"calibration is **{c['threshold']:.3f}** (the largest 0.001 step whose measured FMR is at most the target). "
        f"At that threshold: FMR {small_rate(op['fmr']['rate'])} (95 % {ci(op['fmr']['low'], op['fmr']['high'])}), "
        f"FNMR {pct(op['fnmr']['rate'])} (95 % {pct(op['fnmr']['low'])} – {pct(op['fnmr']['high'])})."
    )
    add("")
    add("What a distance means (as screens and exports will show it):")
    add("")
    add("| distance | impostor pairs this close | shown as |")
    add("| --- | --- | --- |")
    for dist, ex in c["examples"].items():
        add(f"| {dist} | {ex['impostor_pairs_this_close']:,.0f} of {ex['impostor_pairs']:,} | {ex['text']} |")
    add("")
    add("## Identification (1:N)")
    add("")
    add(
        f"Gallery of {i['gallery']:,}: the first image with a face of each of the {i['mated_enrolled']:,} people with "
        f"two or more images ({i['enrolled_not_first_image']} people enrolled from a later image because no face was "
        f"found in the first), plus {i['distractors']:,} one-image people as distractors. "
        f"Mated searches: the {i['mated_searches']:,} other images of the enrolled people "
        f"({i['probes_without_face']} without a face count as misses). Non-mated searches: the same probes with "
        f"their own enrolment removed from the gallery ({i['non_mated_searches']:,}), as NIST FRTE does when a data "
        "set has no separate non-mated probes. Candidate lists are 50 long; intervals are Wilson (searches treated "
        "as independent)."
    )
    add("")
    add("| rank | 1 | 5 | 10 | 20 | 50 |")
    add("| --- | --- | --- | --- | --- | --- |")
    add("| CMC (mate at this rank or better) | " + " | ".join(pct(i["cmc"][str(k)]) for k in (1, 5, 10, 20, 50)) + " |")
    add("")
    add("| FPIR target | threshold | FPIR measured | FNIR (95 % Wilson) |")
    add("| --- | --- | --- | --- |")
    for pt in i["fnir_at_fpir"]:
        fp, fn = pt["fpir"], pt["fnir"]
        add(
            f"| {pt['target_fpir']:g} | {pt['threshold']:.4f} | {pct(fp['rate'], 3)} ({fp['events']:,} / "
            f"{fp['trials']:,}) | {pct(fn['rate'])} ({pct(fn['low'])} – {pct(fn['high'])}) |"
        )
    ao = i["at_operating_threshold"]
    add(
        f"| 1:1 operating threshold | {ao['threshold']:.4f} | {pct(ao['fpir']['rate'], 3)} | "
        f"{pct(ao['fnir']['rate'])} ({pct(ao['fnir']['low'])} – {pct(ao['fnir']['high'])}) |"
    )
    add("")
    add("A search compares the probe with every reference, so a 1:1 threshold lets through roughly N times the")
    add("1:1 false-match rate as false candidates (the last row). A threshold for candidate lists must be set from")
    add("FPIR on a gallery of the library's size, not from the 1:1 FMR.")
    add("")
    if "cmc.png" in images:
        add("![CMC](img/cmc.png)")
        add("")
    add("## Equity (ISO/IEC 19795-10 style)")
    add("")
    ann = j["annotations"]
    agr = j["race_label_agreement"]
    add("Annotation sets (`lfw/demographics/`, see its README), reduced to one label per person by strict majority")
    add("of that person's labelled images (demographics belong to people; impostor pairs are pairs of people):")
    add("")
    add(
        f"- **Sex**: `gender/` ({ann['gender']['source']}): {ann['gender']['people_labelled']:,} people labelled. "
        "Hand-checked; binary female/male only; it is perceived gender of public figures, not the custody record."
    )
    add(
        f"- **Race group**: `attributes/` ({ann['race']['source']}): {ann['race']['people_labelled']:,} people "
        "labelled Asian, Black, Indian or White. Chosen because it is the only set covering most people; but these "
        "are automatic classifier outputs about appearance, True only for the most confident two-thirds of "
        "positives, with no label for ambiguous or mixed appearance, and they are not the police IC codes."
    )
    by = ", ".join(f"{k} {a}/{n}" for k, (n, a) in agr["by_hand_label"].items())
    add(
        f"- `race_by_person/` (hand labels, {ann['race_by_person']['people_labelled']:,} people after leaving out "
        "mixed labels) has too few Asian and Indian people for group figures; it is used to check the attribute "
        f"labels: they agree for {agr['agreeing']:,} of the {agr['people_in_both']:,} people both label ({by})."
    )
    add("")
    add(
        "Rule for a figure: a group needs at least 30 people and enough comparisons that 30 errors are expected at "
        "the reference rate (Doddington's rule of 30: the target FMR for FMR, the pooled rate for FNMR/FNIR); "
        "otherwise it is reported as too small, with its sizes. Ratios (NIST IR 8280's highest over lowest) use "
        "only groups with a figure. Intervals: subject bootstrap, 95 %."
    )
    add("")
    for key, title in (("sex", "Sex"), ("race", "Race group (attribute classifiers)")):
        e = eq[key]
        add(f"### {title}")
        add("")
        add(f"At the operating threshold {c['threshold']:.3f}. People without a label: {e['unlabelled_people']:,}.")
        add("")
        add(
            "| group | people labelled | images with a face | FNMR: errors / genuine pairs | FNMR "
            "| FMR within group: false matches / pairs | FMR within group |"
        )
        add("| --- | --- | --- | --- | --- | --- | --- |")
        within = {f["group"]: f for f in e["fmr"]["within"]}
        for f in e["fnmr"]:
            g = f["group"]
            add(
                f"| {g} | {e['people'][g]:,} | {e['images_with_face'][g]:,} | {figure_cells(f)} | "
                f"{figure_cells(within[g])} |"
            )
        add("")
        add(f"- FMR ratio, highest / lowest group (within-group impostors): {spread_text(e['fmr_spread'])}")
        add(f"- FNMR ratio, highest / lowest group: {spread_text(e['fnmr_spread'])}")
        add("")
        add("| impostor pairs across groups | false matches / pairs | FMR |")
        add("| --- | --- | --- |")
        for f in e["fmr"]["cross"]:
            add(f"| {f['group']} | {figure_cells(f)} |")
        add("")
        add("1:N by group of the probe (threshold at FPIR 0.01, candidate list 50; rank-1 misses without threshold):")
        add("")
        add("| group | FNIR: misses / mated searches | FNIR | rank-1 misses / searches | rank-1 miss rate |")
        add("| --- | --- | --- | --- | --- |")
        r1 = {f["group"]: f for f in e["rank1_miss"]}
        for f in e["fnir"]:
            add(f"| {f['group']} | {figure_cells(f)} | {figure_cells(r1[f['group']])} |")
        add("")
        add(f"- FNIR ratio, highest / lowest group: {spread_text(e['fnir_spread'])}")
        add("")
        if f"scores_{key}.png" in images:
            add(f"![Score distributions by {key}](img/scores_{key}.png)")
            add("")
    add("## Which interval where")
    add("")
    add(f"- Subject bootstrap (people resampled with replacement, {j['n_boot']:,} resamples, 95 % percentile): every")
    add("  pair-based FMR/FNMR in the tables and every group figure: one person's many images are not independent.")
    add("- Wilson score interval: shown beside the bootstrap for FMR (it treats pairs as independent, so it is")
    add("  too narrow here), and for the 1:N rates (one search per probe image).")
    add('- Clopper-Pearson (exact): the calibration\'s "fewer than 1 in N" bounds when under 3 impostor pairs are')
    add("  that close.")
    add("")
    return "\n".join(L) + "\n"


def policy_target() -> float:
    from engine.policy import load_default_policy

    return float(load_default_policy().operating_point.target_false_match_rate)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=default_data_root(), help="$RFR_DATA or ../shared/data")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for the templates (default 2)")
    parser.add_argument("--limit", type=int, help="quick run: whole people in name order, up to this many images")
    parser.add_argument("--device", default="CPU", help="OpenVINO device (default CPU)")
    parser.add_argument("--upsample", type=int, default=0, help="detector upsampling (default 0)")
    parser.add_argument("--target-fmr", type=float, help="operating point (default: the policy's target)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=20261122, help="bootstrap seed")
    parser.add_argument("--calibration-version", type=int, default=1)
    parser.add_argument("--calibration-out", type=Path, help="default on full runs: models/calibration.yaml")
    parser.add_argument("--docs-dir", type=Path, help="default on full runs: docs (evaluation.md and img/)")
    parser.add_argument("--json", type=Path, help="write every figure as JSON here (for the auditor screens)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be 1 or more")
    full = args.limit is None
    cal_out = args.calibration_out or (REPO_ROOT / "models" / "calibration.yaml" if full else None)
    docs_dir = args.docs_dir or (REPO_ROOT / "docs" if full else None)
    command = " ".join([".venv/bin/python scripts/evaluate.py", *argv])
    try:
        target = args.target_fmr if args.target_fmr is not None else policy_target()
        lfw_root = args.data_root / "lfw"
        print(f"LFW at {lfw_root}; operating point FMR {target:g}", file=sys.stderr)
        t = compute_templates(lfw_root, args.limit, args.jobs, args.device, args.upsample)
        created = dt.datetime.now(dt.UTC).date().isoformat()
        r = analyse(t, lfw_root, target, args.n_boot, args.seed, created, command, args.calibration_version)
    except RfrError as exc:
        print(f"error: {exc.diagnostics()}", file=sys.stderr)
        return 2
    j = to_json(r, command, args.jobs, args.n_boot)
    if cal_out:
        r["calibration"].write(cal_out)
        print(f"wrote {cal_out}", file=sys.stderr)
    if docs_dir:
        images = write_plots(r, docs_dir / "img")
        (docs_dir / "evaluation.md").write_text(render_markdown(j, images, created), encoding="utf-8")
        print(f"wrote {docs_dir / 'evaluation.md'} and {len(images)} plots", file=sys.stderr)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(j, indent=1, default=float) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    op = r["operating"]
    print(
        f"EER {pct(r['eer'].rate, 3)}; threshold {r['threshold']:.3f} at FMR {target:g}: "
        f"FMR {small_rate(op['fmr']['rate'])}, FNMR {pct(op['fnmr']['rate'])}; "
        f"rank-1 {pct(float(r['cmc'][0]))}; FNIR at FPIR 0.01 {pct(r['points'][-1].fnir.rate)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
