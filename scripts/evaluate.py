#!/usr/bin/env python
"""Equity across thresholds on LFW's held-out people, 1:N as NIST FRTE builds it, and the force's own pairs.

Every LFW image is analysed in memory (``engine.evaluation.templates``; templates never touch the disk).
The people are split by LFW's own folds (``engine.evaluation.protocol``): folds 1-5 (DERIVATION) only
to find the threshold each group would need; every figure stated comes from folds 6-10 (STATEMENT).
The operating threshold is the one the terminal uses: the installed calibration
(``models/calibration.yaml``, hash-checked against the model manifest) at the policy's target.

For sex and race group, with hand labels and automatic labels side by side (and the automatic labels'
precision and recall against the hand labels), over thresholds 0.40-0.62 and the operating threshold:
FMR within and across groups, FNMR (at most 10 images per person), FPIR and FNIR in 1:N (a gallery of
enrolled people; mated probes; non-mated probes of people never enrolled), all with subject-bootstrap
intervals, and the highest/lowest ratios with intervals of their own. No rate is stated from fewer than
30 errors. Writes ``docs/evaluation/figures.json`` (every figure), the plots beside it, and
``docs/evaluation.md``, all at the very end, after everything has been computed: a failed run writes
nothing.

With ``--force-pairs manifest.csv`` it runs the same 1:1 evaluation on the force's own labelled pairs
(``engine.evaluation.force_pairs``) instead, writing ``force_figures.json`` and ``force_evaluation.md``
to ``--out-dir`` (default: an ``evaluation`` folder beside the manifest).

Usage (from the repository root; ``make evaluate`` runs the whole kit)::

    .venv/bin/python scripts/evaluate.py                                   # all of LFW (~25 min on 2 cores)
    .venv/bin/python scripts/evaluate.py --limit 300 --out-dir /tmp/ev     # quick look
    .venv/bin/python scripts/evaluate.py --force-pairs /media/force/pairs.csv
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from engine.errors import RfrError, UsageError  # noqa: E402
from engine.evaluation import equity as eq  # noqa: E402
from engine.evaluation import force_pairs as fp  # noqa: E402
from engine.evaluation import metrics as m  # noqa: E402
from engine.evaluation.demographics import (  # noqa: E402
    GENDER_GROUPS,
    RACE_GROUPS,
    PersonLabels,
    label_quality,
    load_gender,
    load_race_attributes,
    load_race_by_person,
    load_sex_attributes,
)
from engine.evaluation.label_errors import LabelErrors, load_label_errors  # noqa: E402
from engine.evaluation.one_to_n import MAX_RANK, Construction, Searches  # noqa: E402
from engine.evaluation.protocol import MAX_IMAGES_PER_PERSON, impostor_distances, load_folds, split  # noqa: E402
from engine.evaluation.templates import compute_templates, list_images  # noqa: E402
from engine.scoring.calibration import (  # noqa: E402
    Calibration,
    check_policy_threshold,
    derive_threshold,
    load_calibration,
    load_verified_calibration,
)

TARGET_FPIRS = (0.01, 0.03, 0.1)
LIBRARY_SIZES = (10_000, 100_000, 1_000_000)
DERIVATION_REACH = 0.75
"""Derivation impostor pairs are kept up to this distance to find each group's threshold."""
N_BOOT = 1000
SEED = 20261122


@dataclass(frozen=True)
class LabelSet:
    key: str
    title: str
    kind: str  # "sex" or "race"
    hand: bool
    groups: tuple[str, ...]
    load: Callable[[Path], PersonLabels]


LABEL_SETS = (
    LabelSet("sex_hand", "Sex, hand-checked labels", "sex", True, GENDER_GROUPS, load_gender),
    LabelSet("sex_auto", "Sex, automatic labels", "sex", False, GENDER_GROUPS, load_sex_attributes),
    LabelSet("race_hand", "Race group, hand labels", "race", True, RACE_GROUPS, load_race_by_person),
    LabelSet("race_auto", "Race group, automatic labels", "race", False, RACE_GROUPS, load_race_attributes),
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def default_data_root() -> Path:
    return Path(os.environ.get("RFR_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


def engine_revision() -> str:
    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        return out.stdout.strip() if out.returncode == 0 else ""

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--", "engine", "models/manifest.yaml")
    return f"{commit} (with local changes)" if changed else commit


# ---------------------------------------------------------------------------------------------
# Preflight: everything that can fail without computing anything, before anything is computed
# ---------------------------------------------------------------------------------------------


@dataclass
class Inputs:
    lfw_root: Path
    calibration: Calibration
    threshold: float
    target: float
    policy_version: str
    folds: dict[str, int]
    label_errors: LabelErrors
    labels: dict[str, PersonLabels]
    manifest: fp.ForcePairs | None
    out_dir: Path
    docs_md: Path | None


def _check_plotting() -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot
    except ImportError:
        raise UsageError(
            "matplotlib is not installed (the evaluation's plots need it): run `make evaluate`, which installs "
            "the eval extra, or `.venv/bin/pip install -c constraints.txt -e '.[eval]'`"
        ) from None


def _check_writable(folder: Path) -> None:
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise UsageError(f"cannot write to {folder}: choose a writable --out-dir")


def preflight(args: argparse.Namespace) -> Inputs:
    """Check imports, data, calibration, policy and the output folder; compute nothing."""
    from engine.policy import load_default_policy

    _check_plotting()
    policy = load_default_policy()
    point = policy.operating_point
    if args.calibration is None:
        calibration = load_verified_calibration()
        threshold = check_policy_threshold(
            point.threshold, calibration, point.target_false_match_rate, point.calibration_id
        )
    else:  # a quick look at another calibration: its threshold at the policy's target, not the terminal's
        calibration = load_calibration(args.calibration)
        threshold = derive_threshold(calibration, point.target_false_match_rate)
    manifest = None
    lfw_root = args.data_root / "lfw"
    folds: dict[str, int] = {}
    labels: dict[str, PersonLabels] = {}
    label_errors = load_label_errors()
    if args.force_pairs is not None:
        manifest = fp.load_manifest(args.force_pairs)
        out_dir = args.out_dir or args.force_pairs.parent / "evaluation"
        docs_md = None
    else:
        list_images(lfw_root, limit=1)  # the images folder is there and holds images
        folds = load_folds(lfw_root)
        for ls in LABEL_SETS:
            labels[ls.key] = ls.load(lfw_root / "demographics")
        out_dir = args.out_dir or REPO_ROOT / "docs" / "evaluation"
        docs_md = (args.out_dir / "evaluation.md") if args.out_dir else REPO_ROOT / "docs" / "evaluation.md"
    _check_writable(out_dir)
    return Inputs(
        lfw_root=lfw_root,
        calibration=calibration,
        threshold=threshold,
        target=float(point.target_false_match_rate),
        policy_version=policy.version,
        folds=folds,
        label_errors=label_errors,
        labels=labels,
        manifest=manifest,
        out_dir=out_dir,
        docs_md=docs_md,
    )


# ---------------------------------------------------------------------------------------------
# LFW
# ---------------------------------------------------------------------------------------------


def thresholds_for(operating: float, needed: Sequence[float | None], reach: float | None = None) -> list[float]:
    values = {round(t, 6) for t in eq.SWEEP} | {round(operating, 6)}
    values |= {round(t, 6) for t in needed if t is not None and (reach is None or t <= reach)}
    return sorted(values)


def figures_at(figs: dict[str, list[eq.Figure]], j: int) -> dict[str, dict[str, Any]]:
    return {g: fs[j].to_json() for g, fs in figs.items()}


def analyse_lfw(inp: Inputs, limit: int | None, jobs: int, device: str, n_boot: int, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    t = compute_templates(inp.lfw_root, jobs=jobs, device=device, limit=limit)
    inp.calibration.check_model(t.model_id, t.model_sha256)
    templates_seconds = t.seconds
    parts = split(t.images, t.persons, t.ok, inp.folds, inp.label_errors)
    st, dv = parts.statement, parts.derivation
    if len(st.people) < 2 or len(dv.people) < 2:
        raise UsageError("too few people in one half of the protocol for an evaluation: raise --limit")
    vectors = t.templates
    log(f"  halves: derivation {dv.describe()}; statement {st.describe()}")

    # The threshold each group would need, chosen on the derivation people only.
    step = time.perf_counter()
    dv_pairs = eq.PairSet.from_half(vectors, dv, DERIVATION_REACH)
    needed: dict[str, list[eq.GroupThreshold]] = {}
    for ls in LABEL_SETS:
        needed[ls.key] = eq.group_thresholds(
            dv_pairs, [inp.labels[ls.key].group_of(p) for p in dv.people], ls.groups, inp.target
        )
    del dv_pairs
    log(f"  group thresholds on derivation people ({time.perf_counter() - step:.0f} s)")

    thresholds = thresholds_for(inp.threshold, [g.threshold for gs in needed.values() for g in gs])
    thr = np.array(thresholds)
    op_index = thresholds.index(round(inp.threshold, 6))
    step = time.perf_counter()
    st_pairs = eq.PairSet.from_half(vectors, st, float(thr[-1]))
    cells = eq.PairCells.build(st_pairs, thr)
    everyone = eq.Grouping.everyone(len(st.people), n_boot=n_boot, seed=seed)
    pooled = eq.sweep(st_pairs, everyone, thr, cells=cells)
    log(
        f"  statement pairs: {st_pairs.genuine_distance.size:,} genuine, {st_pairs.impostor_distance.size:,} impostor "
        f"up to {thr[-1]:.3f} ({time.perf_counter() - step:.0f} s)"
    )

    # EER and DET over every statement impostor pair.
    step = time.perf_counter()
    all_imp = impostor_distances(vectors, st)
    all_imp.sort()
    impostor_scores = m.Scores(all_imp, presorted=True, what="impostor scores")
    genuine_scores = m.Scores(st_pairs.genuine_distance, what="genuine scores")
    eer = m.equal_error_rate(genuine_scores, impostor_scores) if genuine_scores.n else None
    det = m.det_curve(genuine_scores, impostor_scores, max_points=600) if genuine_scores.n else None
    impostor_total = impostor_scores.n
    del all_imp, impostor_scores
    log(f"  EER and DET ({time.perf_counter() - step:.0f} s)")

    # 1:N as NIST FRTE builds it.
    construction = Construction.from_half(st)
    searches = Searches.run(vectors, construction)
    fp_e, fp_n = searches.fpir_errors(thr)
    fn_e, fn_n = searches.fnir_errors(thr)
    pooled_fpir, _ = eq.person_sweep(fp_e, fp_n, everyone)
    pooled_fnir, _ = eq.person_sweep(fn_e, fn_n, everyone)
    at_fpir_thresholds: list[tuple[float, float]] = []
    for target in TARGET_FPIRS:
        if construction.nonmated_rows.size:
            at_fpir_thresholds.append((target, searches.threshold_at_fpir(target)))
    fpir_thr = np.array(sorted({round(x, 9) for _, x in at_fpir_thresholds})) if at_fpir_thresholds else None

    data = {
        "people_in_no_fold": parts.people_in_no_fold,
        "images": len(t.images),
        "images_without_face": t.images_without_face,
        "images_with_several_faces": t.several_faces,
        "images_that_failed": len(t.errors),
        "label_errors": {"source": inp.label_errors.source, "listed": len(inp.label_errors.errors)},
        "halves": {},
    }
    for half in (dv, st):
        data["halves"][half.name] = {
            "folds": sorted(half.folds),
            "people": len(half.people),
            "images": half.images,
            "images_with_face": int(half.rows.size),
            "images_without_face": half.images_without_face,
            "label_error_images_excluded": half.label_error_images,
            "two_names_one_person": len(half.same_person),
        }
    data["halves"]["statement"]["genuine_pairs"] = int(st_pairs.genuine_distance.size)
    data["halves"]["statement"]["impostor_pairs"] = impostor_total
    model = {"id": t.model_id, "sha256": t.model_sha256, "engine_revision": engine_revision()}
    del t, vectors

    label_sets: dict[str, Any] = {}
    for k, ls in enumerate(LABEL_SETS):
        step = time.perf_counter()
        lab = inp.labels[ls.key]
        people_labels = [lab.group_of(p) for p in st.people]
        grouping = eq.Grouping.build(ls.key, people_labels, ls.groups, n_boot=n_boot, seed=seed + 101 * (k + 1))
        s = eq.sweep(st_pairs, grouping, thr, cells=cells)
        fpir, fpir_ratio = eq.person_sweep(fp_e, fp_n, grouping)
        fnir, fnir_ratio = eq.person_sweep(fn_e, fn_n, grouping)
        at_fpir = []
        if fpir_thr is not None:
            e1, n1 = searches.fpir_errors(fpir_thr)
            e2, n2 = searches.fnir_errors(fpir_thr)
            g_fp, g_fp_r = eq.person_sweep(e1, n1, grouping)
            g_fn, g_fn_r = eq.person_sweep(e2, n2, grouping)
            for target, x in at_fpir_thresholds:
                j = int(np.flatnonzero(np.isclose(fpir_thr, round(x, 9)))[0])
                at_fpir.append(
                    {
                        "target_fpir": target,
                        "threshold": x,
                        "fpir": figures_at(g_fp, j),
                        "fpir_ratio": g_fp_r[j].to_json(),
                        "fnir": figures_at(g_fn, j),
                        "fnir_ratio": g_fn_r[j].to_json(),
                    }
                )
        hand_key = f"{ls.kind}_hand"
        quality = None if ls.hand else [q.to_json() for q in label_quality(inp.labels[hand_key], lab, ls.groups)]
        need_rows = []
        for g in needed[ls.key]:
            row = g.to_json()
            if g.threshold is not None and round(g.threshold, 6) in thresholds:
                j = thresholds.index(round(g.threshold, 6))
                row["statement_fmr_within"] = s.fmr_within[g.group][j].to_json()
                row["statement_fnmr"] = s.fnmr[g.group][j].to_json()
                row["statement_fpir"] = fpir[g.group][j].to_json()
            need_rows.append(row)
        label_sets[ls.key] = {
            "title": ls.title,
            "kind": ls.kind,
            "hand": ls.hand,
            "source": lab.source,
            "note": lab.note,
            "groups": list(ls.groups),
            "people": {g: grouping.people_in(g) for g in ls.groups},
            "unlabelled_people": int(np.count_nonzero(grouping.of_person < 0)),
            "people_labelled_in_lfw": len(lab.labels),
            "quality_against_hand_labels": quality,
            "threshold_needed": need_rows,
            "sweep": s.to_json(),
            "one_to_n": {
                "fpir": {g: [f.to_json() for f in fs] for g, fs in fpir.items()},
                "fpir_ratio": [r.to_json() for r in fpir_ratio],
                "fnir": {g: [f.to_json() for f in fs] for g, fs in fnir.items()},
                "fnir_ratio": [r.to_json() for r in fnir_ratio],
                "at_fpir": at_fpir,
            },
        }
        log(f"  {ls.title}: done ({time.perf_counter() - step:.0f} s)")

    ranks = searches.cmc(MAX_RANK)
    one_to_n = {
        "construction": construction.to_json(),
        "hold_out": "people never enrolled: the first 8 bytes of sha256(name) below half of 2**64",
        "max_rank": MAX_RANK,
        "cmc": {str(r): float(ranks[r - 1]) for r in (1, 5, 10, 20, 50) if r <= MAX_RANK},
        "fpir": [f.to_json() for f in pooled_fpir["all"]],
        "fnir": [f.to_json() for f in pooled_fnir["all"]],
        "at_fpir": [
            {
                "target_fpir": target,
                "threshold": x,
                "fpir": eq.person_sweep(*searches.fpir_errors(np.array([x])), everyone)[0]["all"][0].to_json(),
                "fnir": eq.person_sweep(*searches.fnir_errors(np.array([x])), everyone)[0]["all"][0].to_json(),
            }
            for target, x in at_fpir_thresholds
        ],
    }
    verification = {
        "fmr": [f.to_json() for f in pooled.fmr_within["all"]],
        "fnmr": [f.to_json() for f in pooled.fnmr["all"]],
        "eer": None
        if eer is None
        else {"rate": eer.rate, "low": eer.low, "high": eer.high, "threshold": eer.threshold},
        "det": None
        if det is None
        else {"thresholds": det.thresholds.tolist(), "fmr": det.fmr.tolist(), "fnmr": det.fnmr.tolist()},
    }
    return {
        "model": model,
        "data": data,
        "thresholds": thresholds,
        "operating_index": op_index,
        "verification": verification,
        "label_sets": label_sets,
        "one_to_n": one_to_n,
        "templates_seconds": templates_seconds,
        "analysis_seconds": time.perf_counter() - started - templates_seconds,
    }


# ---------------------------------------------------------------------------------------------
# The force's own pairs
# ---------------------------------------------------------------------------------------------


def embed_paths(paths: list[Path], device: str) -> np.ndarray:
    """Template of the face nearest the centre of each image (NaN row: no face or unreadable), in memory."""
    from engine.evaluation.lfw import nearest_to_centre
    from engine.faces.image_io import load_image
    from engine.faces.pipeline import FaceEngine

    engine = FaceEngine.open(device=device)
    out = np.full((len(paths), 128), np.nan)
    for i, path in enumerate(paths):
        try:
            rgb = load_image(path).rgb
            faces = engine.analyze(rgb, upsample=0, embed=True, quality=False)
        except RfrError:
            continue
        chosen = nearest_to_centre([f.box for f in faces], rgb.shape[1], rgb.shape[0])
        if chosen is not None:
            out[i] = np.asarray(faces[chosen].embedding, dtype=np.float64)
        if (i + 1) % 200 == 0:
            log(f"  templates: {i + 1}/{len(paths)} images")
    return out


def analyse_force(inp: Inputs, device: str, n_boot: int, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    manifest = inp.manifest
    assert manifest is not None
    templates = fp.templates_for(manifest, lambda paths: embed_paths(paths, device))
    kinds = fp.kind_pairs(manifest, templates)
    del templates
    thresholds = thresholds_for(inp.threshold, [])
    thr = np.array(thresholds)
    out_kinds: dict[str, Any] = {}
    for kp in kinds:
        everyone = eq.Grouping.everyone(len(kp.pairs.people), n_boot=n_boot, seed=seed)
        cells = eq.PairCells.build(kp.pairs, thr)
        pooled = eq.sweep(kp.pairs, everyone, thr, cells=cells)
        labels = fp.subject_labels(manifest, kp.pairs.people)
        groupings: dict[str, Any] = {}
        for k, (field, values) in enumerate(labels.items()):
            groups = tuple(sorted({v for v in values if v}))
            if not groups:
                continue
            grouping = eq.Grouping.build(field, values, groups, n_boot=n_boot, seed=seed + 7 * (k + 1))
            s = eq.sweep(kp.pairs, grouping, thr, cells=cells)
            groupings[field] = {
                "groups": list(groups),
                "people": {g: grouping.people_in(g) for g in groups},
                "unlabelled_people": int(np.count_nonzero(grouping.of_person < 0)),
                "sweep": s.to_json(),
            }
        out_kinds[kp.kind] = {
            "pairs": kp.to_json(),
            "fmr": [f.to_json() for f in pooled.fmr_within["all"]],
            "fnmr": [f.to_json() for f in pooled.fnmr["all"]],
            "by": groupings,
        }
    return {
        "manifest": manifest.summary(),
        "thresholds": thresholds,
        "operating_index": thresholds.index(round(inp.threshold, 6)),
        "kinds": out_kinds,
        "analysis_seconds": time.perf_counter() - started,
    }


# ---------------------------------------------------------------------------------------------
# Writing: JSON, plots and Markdown, rendered in memory and written last
# ---------------------------------------------------------------------------------------------


def cell(f: dict[str, Any] | None) -> str:
    """One figure for a table: the statement, and the counts (and interval when stated)."""
    if f is None:
        return "–"
    counts = f"{f['errors']:,} / {f['trials']:,}"
    if f["stated"] and f["low"] is not None and f["high"] is not None:
        return f"**{f['text']}** ({counts}; 95 % {eq.rate_text(f['low'])} – {eq.rate_text(f['high'])})"
    return f"{f['text']} ({counts})"


def ratio_cell(r: dict[str, Any]) -> str:
    return str(r["text"])


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f} %"


def draw_plots(j: dict[str, Any]) -> dict[str, bytes]:
    """PNG bytes of each plot, drawn from the figures JSON (small: they are committed beside it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    thr = np.array(j["thresholds"])
    op = thr[j["operating_index"]]
    target = j["operating_point"]["target_fmr"]
    out: dict[str, bytes] = {}

    def save(fig: Any, name: str) -> None:
        from PIL import Image

        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=72, metadata={"Software": None})
        plt.close(fig)
        buf.seek(0)
        small = io.BytesIO()  # a 128-colour palette: a third of the size, and these files are committed
        with Image.open(buf) as image:
            image.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(
                small, format="PNG", optimize=True
            )
        out[name] = small.getvalue()

    def log_scale(ax: Any) -> None:
        """Log y when anything positive was drawn; else say there is nothing to draw (a small run)."""
        ys = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in ax.lines] or [np.zeros(0)])
        ys = ys[np.isfinite(ys) & (ys > 0)]
        if ys.size:
            ax.set_yscale("log")
            ax.set_ylim(
                float(ys.min()) / 2.0, min(1.0, float(ys.max()) * 2.0) if ys.max() <= 1 else float(ys.max()) * 2
            )
        else:
            ax.set_yticks([])
            ax.text(0.5, 0.3, "no stated rate or floor to draw", transform=ax.transAxes, ha="center", fontsize=8)

    def series(ax: Any, figs: list[dict[str, Any]], label: str, color: str) -> None:
        """Stated rates as a line with their interval; below 30 errors, the floor dotted (the rate is under it).

        Nothing is drawn where a group has too few people: no rate of theirs is stated, not even as a floor.
        """
        floor_ok = np.array(
            [not f["stated"] and f["people"] >= eq.MIN_PEOPLE and f["trials"] >= eq.MIN_ERRORS for f in figs]
        )
        rate = np.array([f["rate"] if f["stated"] else np.nan for f in figs], dtype=float)
        low = np.array([f["low"] if f["stated"] and f["low"] else np.nan for f in figs], dtype=float)
        high = np.array([f["high"] if f["stated"] and f["high"] else np.nan for f in figs], dtype=float)
        floor = np.array([eq.MIN_ERRORS / f["trials"] if ok else np.nan for f, ok in zip(figs, floor_ok, strict=True)])
        ax.plot(thr, rate, "-", color=color, lw=1.5, label=label)
        ax.plot(thr, floor, ":", color=color, lw=1.2)
        ax.fill_between(thr, low, high, color=color, alpha=0.15)
        ax.plot(thr, high, alpha=0.0)  # invisible: the band counts for the y range
        ax.plot(thr, low, alpha=0.0)
        ax.set_xlim(thr[0], thr[-1])

    for key, title, what, ylabel in (
        ("fmr_within", "within-group FMR", "sweep", "FMR (impostors of the same group)"),
        ("fnmr", "FNMR", "sweep", "FNMR (balanced genuine pairs)"),
        ("fpir", "FPIR in 1:N", "one_to_n", "FPIR (non-mated probes)"),
    ):
        fig, axes = plt.subplots(2, 2, figsize=(9, 6.4), sharex=True)
        for ax, ls_key in zip(axes.ravel(), ("sex_hand", "sex_auto", "race_hand", "race_auto"), strict=True):
            ls = j["label_sets"][ls_key]
            source = ls[what][key]
            for c, g in enumerate(ls["groups"]):
                series(ax, source[g], f"{g} ({ls['people'][g]:,})", f"C{c}")
            log_scale(ax)
            ax.axvline(op, color="k", lw=0.8)
            if key == "fmr_within":
                ax.axhline(target, color="grey", lw=0.8, ls="--")
            ax.set_title(f"{ls['title']}: {title}", fontsize=9)
            ax.grid(True, which="both", alpha=0.25)
            ax.legend(fontsize=7, loc="best")
        for ax in axes[1]:
            ax.set_xlabel("threshold (distance)")
        for ax in axes[:, 0]:
            ax.set_ylabel(ylabel, fontsize=8)
        fig.suptitle(
            f"{title} by group, held-out LFW people (people in the legend). Solid: stated rate with its 95 % band.\n"
            f"Dotted: fewer than 30 errors, the rate is below this floor. Vertical: operating threshold {op:.3f}.",
            fontsize=8,
        )
        save(fig, f"{key}.png")

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for c, (ls_key, path) in enumerate(
        (("race_auto", "fmr"), ("race_hand", "fmr"), ("sex_hand", "fmr"), ("race_auto", "fpir"))
    ):
        ls = j["label_sets"][ls_key]
        ratios = ls["sweep"]["fmr_ratio"] if path == "fmr" else ls["one_to_n"]["fpir_ratio"]
        # One segment per set of groups compared (a group crossing its floor changes the ratio's meaning, so the
        # line is broken there): solid where every group of 30+ people is compared, dashed where some group is
        # below its floor (the ratio of the others), dotted for a "more than" bound.
        label = f"{ls['title']}: {'within-group FMR' if path == 'fmr' else 'FPIR'}"
        keys = [tuple(r["groups"]) if r["kind"] == "stated" else None for r in ratios]
        for key in {k for k in keys if k is not None}:
            on = np.array([k == key for k in keys])
            runs = np.split(np.flatnonzero(on), np.flatnonzero(np.diff(np.flatnonzero(on)) > 1) + 1)
            for run in runs:
                r0 = [ratios[i] for i in run]
                style = "--" if r0[0]["below_floor"] else "-"
                value = np.array([r["value"] for r in r0], dtype=float)
                low = np.array([r["low"] if r["low"] else np.nan for r in r0], dtype=float)
                high = np.array([r["high"] if r["high"] else np.nan for r in r0], dtype=float)
                ax.plot(thr[run], value, style, color=f"C{c}", label=label)
                label = "_"
                ax.plot(thr[run], high, alpha=0.0)
                ax.fill_between(thr[run], low, high, color=f"C{c}", alpha=0.15)
        bound = np.array([r["at_least"] if r["at_least"] else np.nan for r in ratios], dtype=float)
        ax.plot(thr, bound, ":", color=f"C{c}", label=label)
    log_scale(ax)
    ax.axvline(op, color="k", lw=0.8)
    ax.set_xlabel("threshold (distance)")
    ax.set_ylabel("highest / lowest group")
    ax.set_title(
        "Highest / lowest group rate, 95 % subject bootstrap. Solid: every group of 30+ people compared;\n"
        "dashed: groups below their floor left out; dotted: a lower bound counting such a group",
        fontsize=8,
    )
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)
    save(fig, "ratios.png")

    det = j["verification"]["det"]
    if det is not None:
        fig, ax = plt.subplots(figsize=(5.5, 4.2))
        fmr_, fnmr_ = np.array(det["fmr"]), np.array(det["fnmr"])
        keep = (fmr_ > 0) & (fnmr_ > 0)
        ax.plot(fmr_[keep], fnmr_[keep], lw=1.5)
        if keep.any():
            ax.set_xscale("log")
            ax.set_yscale("log")
        opf = j["verification"]["fmr"][j["operating_index"]]
        opn = j["verification"]["fnmr"][j["operating_index"]]
        if opf["rate"] and opn["rate"]:
            ax.plot(opf["rate"], opn["rate"], "o", color="C3", label=f"operating threshold {op:.3f}")
            ax.legend(fontsize=8)
        ax.set_xlabel("FMR")
        ax.set_ylabel("FNMR")
        ax.set_title("DET, held-out LFW people (folds 6-10)", fontsize=9)
        ax.grid(True, which="both", alpha=0.25)
        save(fig, "det.png")
    return out


def _other_reports(out_dir: Path) -> dict[str, Any]:
    """Headlines of the normalisation and degraded-probe reports beside ours, when they are there."""
    found: dict[str, Any] = {}
    for name in ("normalisation", "degraded"):
        path = out_dir / f"{name}.json"
        try:
            found[name] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        except (OSError, ValueError):
            found[name] = None
    return found


def render_markdown(j: dict[str, Any], images: Sequence[str], rel: str) -> str:
    thr = j["thresholds"]
    op_i = j["operating_index"]
    op = thr[op_i]
    opp = j["operating_point"]
    d = j["data"]
    st = d["halves"]["statement"]
    v = j["verification"]
    one = j["one_to_n"]
    c = one["construction"]
    L: list[str] = []
    add = L.append
    add("# Evaluation: accuracy and equity on held-out people")
    add("")
    add(
        f"Generated by `{j['command']}` (the `make evaluate` kit); every figure is in "
        f"[`{rel}/figures.json`]({rel}/figures.json). Do not edit by hand: re-run. The plots are drawn by the "
        "same run into the same folder and are not kept in the repository: run it to see them. Figures are "
        "measured on LFW (press photographs of public figures), **not** on custody images or CCTV: read *Limits*."
    )
    add("")
    add("## Summary for the FR Technology Board")
    add("")
    ra = j["label_sets"]["race_auto"]
    rh = j["label_sets"]["race_hand"]
    sh = j["label_sets"]["sex_hand"]
    add(
        f"- Operating threshold **{op:.3f}** (calibration `{opp['calibration']}`, policy {opp['policy_version']}, "
        f"target FMR {opp['target_fmr']:g}). On {st['people']:,} held-out people: pooled FMR "
        f"{cell(v['fmr'][op_i])}, FNMR {cell(v['fnmr'][op_i])}."
    )
    for ls in (ra, rh, sh):
        w = ls["sweep"]["fmr_within"]
        parts = "; ".join(f"{g} {cell(w[g][op_i])}" for g in ls["groups"])
        add(f"- {ls['title']}, within-group FMR at {op:.3f}: {parts}.")
        add(f"  Highest/lowest: {ratio_cell(ls['sweep']['fmr_ratio'][op_i])}.")
    add(
        f"- 1:N (gallery of {c['gallery']:,} enrolled people; {c['non_mated_searches']:,} non-mated searches by "
        f"{c['non_mated_people']:,} people never enrolled): FPIR at {op:.3f} {cell(one['fpir'][op_i])}; FNIR "
        f"{cell(one['fnir'][op_i])}."
    )
    pooled_op = v["fmr"][op_i]
    if pooled_op["stated"] and pooled_op["rate"] > opp["target_fmr"]:
        add(
            f"- **On the held-out people the pooled FMR at the operating threshold, {pooled_op['text']}, is above the "
            f"policy's target {opp['target_fmr']:g}** (95 % {eq.rate_text(pooled_op['low'])} – "
            f"{eq.rate_text(pooled_op['high'])}): the threshold met the target at its 95 % upper bound on the "
            "derivation people, resampling people, but the held-out people are a second sample that bound does not "
            "cover; a bound for people never seen (a prediction bound) would choose a stricter threshold."
        )
    add(
        "- The automatic race labels are unreliable for the small groups (precision against the hand labels: "
        + ", ".join(
            f"{q['group']} {q['precision_counts'][0]}/{q['precision_counts'][1]}"
            for q in ra["quality_against_hand_labels"]
        )
        + "); the hand labels are reliable but too few for Asian and Indian figures. Read both columns."
    )
    add("")
    add("## What was measured, and how")
    add("")
    add(
        f"- **People, not pairs, are held out.** LFW's own ten folds (`people.txt`): folds 1-5 "
        f"({d['halves']['derivation']['people']:,} people) chose the operating threshold (in the calibration) and "
        f"the per-group thresholds below; folds 6-10 ({st['people']:,} people, {st['images_with_face']:,} images "
        f"with a face) give every figure stated here. {d['people_in_no_fold']} people are in no fold."
    )
    add(
        f"- **Genuine pairs** use at most {MAX_IMAGES_PER_PERSON} images per person (the first by number), so one "
        f"person with 530 images cannot dominate the FNMR: {st['genuine_pairs']:,} pairs. **Impostor pairs**: every "
        f"pair of images of two different held-out people ({st['impostor_pairs']:,})."
    )
    add(
        f"- **Documented label errors** ({d['label_errors']['source']}; {d['label_errors']['listed']} entries in "
        "`engine/evaluation/lfw_label_errors.yaml`) are excluded: "
        f"{d['halves']['derivation']['label_error_images_excluded'] + st['label_error_images_excluded']} images "
        "dropped from every pair, and two names of one person never form an impostor pair."
    )
    add(
        f"- No face was found in {d['images_without_face']:,} of {d['images']:,} images; they take part in no "
        f"pair. The labelled face is the one nearest the image centre ({d['images_with_several_faces']:,} images "
        "hold several)."
    )
    add(
        "- **Intervals**: subject bootstrap (people redrawn with replacement within their group; every comparison "
        f"of a drawn person comes along), {j['n_boot']:,} resamples, 95 % percentile. The ratios' intervals come "
        "from the same resamples (each resample's own highest/lowest)."
    )
    add(
        "- **Rule of 30**: no rate is stated from fewer than 30 errors or fewer than 30 people. Below that the "
        'table says "below 1 in N (the lowest this evaluation can show)", where 1 in N is 30 errors in that '
        "group's comparisons; the counts are always shown. A highest/lowest ratio compares the groups of 30 "
        "people or more whose rates are stated; a group below its floor is left out, and when its floor lies under "
        'the lowest stated rate the ratio counting it is given as "more than" a bound.'
    )
    add("")
    add("## Equity at the operating threshold")
    add("")
    for key in ("race_auto", "race_hand", "sex_hand", "sex_auto"):
        ls = j["label_sets"][key]
        s = ls["sweep"]
        o = ls["one_to_n"]
        add(f"### {ls['title']}")
        add("")
        add(f"Source: {ls['source']}. {ls['note']}. Held-out people without a label: {ls['unlabelled_people']:,}.")
        add("")
        q = ls["quality_against_hand_labels"]
        if q is None:
            add("These are the reference labels: the automatic labels are measured against them.")
        else:
            add(
                "Against the hand labels (LFW people both sets label): "
                + "; ".join(
                    f"{x['group']} precision {x['precision_counts'][0]}/{x['precision_counts'][1]}"
                    f" ({pct(x['precision'], 0)}), recall {x['recall_counts'][0]}/{x['recall_counts'][1]}"
                    f" ({pct(x['recall'], 0)})"
                    for x in q
                )
                + "."
            )
        add("")
        add("| group | people | FMR within group | FNMR | FPIR (1:N) | FNIR (1:N) |")
        add("| --- | --- | --- | --- | --- | --- |")
        for g in ls["groups"]:
            add(
                f"| {g} | {ls['people'][g]:,} | {cell(s['fmr_within'][g][op_i])} | {cell(s['fnmr'][g][op_i])} | "
                f"{cell(o['fpir'][g][op_i])} | {cell(o['fnir'][g][op_i])} |"
            )
        add(
            f"| **highest / lowest** | | {ratio_cell(s['fmr_ratio'][op_i])} | {ratio_cell(s['fnmr_ratio'][op_i])} | "
            f"{ratio_cell(o['fpir_ratio'][op_i])} | {ratio_cell(o['fnir_ratio'][op_i])} |"
        )
        add("")
        add("FMR across groups (impostor pairs of one person from each group):")
        add("")
        add("| groups | FMR |")
        add("| --- | --- |")
        for pair, figs in s["fmr_cross"].items():
            add(f"| {pair} | {cell(figs[op_i])} |")
        add("")
    add("## The threshold each group would need")
    add("")
    add(
        f"The largest 0.001 step whose 95 % Clopper-Pearson upper bound on the within-group FMR is at most the "
        f"target {opp['target_fmr']:g}, with at least 30 false matches, on the derivation people of each group (the "
        "operating threshold also takes a prediction bound resampling people, which a group's few people cannot "
        "give); the figures at it are the held-out people's. The FNMR column is the trade-off: a stricter "
        "threshold for one group misses more of its genuine pairs."
    )
    add("")
    add("| labels | group | threshold needed | held-out FMR within group there | held-out FNMR there |")
    add("| --- | --- | --- | --- | --- |")
    for key in ("race_auto", "race_hand", "sex_hand", "sex_auto"):
        ls = j["label_sets"][key]
        for row in ls["threshold_needed"]:
            if row["threshold"] is None:
                add(f"| {ls['title']} | {row['group']} | none: {row['reason']} | | |")
            else:
                add(
                    f"| {ls['title']} | {row['group']} | {row['threshold']:.3f} | "
                    f"{cell(row.get('statement_fmr_within'))} | {cell(row.get('statement_fnmr'))} |"
                )
    add("")
    add("## The trade-off the Board decides")
    add("")
    add(
        f"- **One threshold for everyone** (today, {op:.3f}): pooled FMR {v['fmr'][op_i]['text']}, pooled FNMR "
        f"{v['fnmr'][op_i]['text']}; but the within-group FMR differs by group (automatic race labels: "
        f"{ra['sweep']['fmr_ratio'][op_i]['text']}; hand race labels: {rh['sweep']['fmr_ratio'][op_i]['text']})"
        + (
            f", and the policy's target is exceeded within {', '.join(over)}."
            if (
                over := [
                    f"{g} ({ls['title'].lower()})"
                    for ls in (ra, rh, sh)
                    for g in ls["groups"]
                    if ls["sweep"]["fmr_within"][g][op_i]["stated"]
                    and ls["sweep"]["fmr_within"][g][op_i]["rate"] > opp["target_fmr"]
                ]
            )
            else "; no group's stated within-group FMR exceeds the policy's target."
        )
    )
    fnmr_costs = [
        f"{row['group']} {row['threshold']:.3f} (FNMR there {row['statement_fnmr']['text']})"
        for row in ra["threshold_needed"]
        if row["threshold"] is not None and row.get("statement_fnmr")
    ]
    add(
        "- **A threshold per group** would meet the target within each group, at the cost of more missed matches "
        "for the groups whose threshold falls"
        + (f" (automatic race labels: {'; '.join(fnmr_costs)})" if fnmr_costs else "")
        + ". It needs each probe's demographic group at search time: labels the officer would have to assign, "
        "special category data, and (as the precision above shows) unreliable when made automatically."
    )
    add(
        "- **Label-free score normalisation** tries to narrow the differential without any label at run time; its "
        "figures on the same held-out people, and whether it met its target, are in the normalisation report."
    )
    atf = {p["target_fpir"]: p for p in one["at_fpir"]}
    if atf:
        first = min(atf)
        add(
            f"- **In 1:N**, the 1:1 threshold lets through many false candidates (FPIR {one['fpir'][op_i]['text']} "
            f"on a gallery of {c['gallery']:,}); a threshold set for FPIR {first:g} ({atf[first]['threshold']:.3f}) "
            f"misses more mates (FNIR {atf[first]['fnir']['text']}). A candidate-list threshold must be set from "
            "FPIR at the library's size, and every candidate adjudicated."
        )
    add("")
    add("## Across thresholds")
    add("")
    add(
        f"Every threshold from {thr[0]:.2f} to {thr[-1]:.2f} is in `figures.json` with every group's counts, "
        "intervals and ratios. Within-group FMR, automatic race labels:"
    )
    add("")
    groups = ra["groups"]
    add("| threshold | " + " | ".join(groups) + " | highest / lowest |")
    add("| --- | " + " | ".join("---" for _ in groups) + " | --- |")
    for i, x in enumerate(thr):
        mark = " (operating)" if i == op_i else ""
        cells = " | ".join(ra["sweep"]["fmr_within"][g][i]["text"] for g in groups)
        add(f"| {x:.3f}{mark} | {cells} | {ra['sweep']['fmr_ratio'][i]['text']} |")
    add("")
    for name, alt in (
        ("fmr_within.png", "Within-group FMR by group across thresholds"),
        ("fnmr.png", "FNMR by group across thresholds"),
        ("fpir.png", "FPIR by group across thresholds"),
        ("ratios.png", "Highest/lowest ratios across thresholds"),
    ):
        if name in images:
            add(f"![{alt}]({rel}/{name})")
            add("")
    add("## Identification (1:N), built as NIST FRTE builds it")
    add("")
    add(
        f"Of the {c['people']:,} held-out people, {c['never_enrolled_people']:,} are **never enrolled** (chosen by a "
        f"hash of the name); each of their images (at most {MAX_IMAGES_PER_PERSON}) is a **non-mated** search "
        f"({c['non_mated_searches']:,} searches). The other {c['enrolled_people']:,} are enrolled with their first "
        f"image (gallery of {c['gallery']:,}); their other images are **mated** searches ({c['mated_searches']:,} by "
        f"{c['mated_people']:,} people). FPIR: non-mated searches whose best candidate is at or below the threshold. "
        f"FNIR: mated searches whose mate is not in the top {one['max_rank']} at or below the threshold. Rates "
        "depend on the gallery size: a library of a million makes many more false candidates than this gallery."
    )
    add("")
    add("| rank | " + " | ".join(one["cmc"]) + " |")
    add("| --- | " + " | ".join("---" for _ in one["cmc"]) + " |")
    add(
        "| mated searches with the mate at this rank or better | "
        + " | ".join(pct(x) for x in one["cmc"].values())
        + " |"
    )
    add("")
    add("| FPIR target | threshold | FPIR | FNIR |")
    add("| --- | --- | --- | --- |")
    for p in one["at_fpir"]:
        add(f"| {p['target_fpir']:g} | {p['threshold']:.4f} | {cell(p['fpir'])} | {cell(p['fnir'])} |")
    add(f"| operating threshold | {op:.4f} | {cell(one['fpir'][op_i])} | {cell(one['fnir'][op_i])} |")
    add("")
    add("By group at a fixed FPIR (the threshold chosen on all non-mated searches):")
    add("")
    add("| labels | FPIR target | group | FPIR | FNIR |")
    add("| --- | --- | --- | --- | --- |")
    for key in ("race_auto", "sex_hand"):
        ls = j["label_sets"][key]
        for p in ls["one_to_n"]["at_fpir"]:
            for g in ls["groups"]:
                add(f"| {ls['title']} | {p['target_fpir']:g} | {g} | {cell(p['fpir'][g])} | {cell(p['fnir'][g])} |")
            add(
                f"| {ls['title']} | {p['target_fpir']:g} | highest / lowest | {ratio_cell(p['fpir_ratio'])} | "
                f"{ratio_cell(p['fnir_ratio'])} |"
            )
    add("")
    add("What a 1:1 rate means in a library: expected different people at or below the operating threshold per")
    add("search, if the library were all of one group (within-group FMR times the library size; where the rate is")
    add("below the floor, the floor is used, so the figure is an upper one):")
    add("")
    add("| group (automatic labels) | " + " | ".join(f"library of {n:,}" for n in LIBRARY_SIZES) + " |")
    add("| --- | " + " | ".join("---" for _ in LIBRARY_SIZES) + " |")
    for g in ra["groups"]:
        f = ra["sweep"]["fmr_within"][g][op_i]
        if not f["trials"] or f["people"] < eq.MIN_PEOPLE:
            continue
        rate = f["rate"] if f["stated"] else eq.MIN_ERRORS / f["trials"]
        prefix = "" if f["stated"] else "fewer than "
        add(f"| {g} | " + " | ".join(f"{prefix}{rate * n:,.0f}" for n in LIBRARY_SIZES) + " |")
    add("")
    other = j.get("other_reports", {})
    add("## Fairer matching without demographic labels")
    add("")
    norm = other.get("normalisation")
    add(
        "Label-free score normalisation (fair score normalisation, FairCal) is evaluated on the same held-out "
        f"people by `scripts/evaluate_normalisation.py`: see [normalisation.md]({rel}/normalisation.md)"
        + (" (figures in `normalisation.json`)." if norm else " (not yet run).")
    )
    add("")
    add("## Degraded probes and image quality")
    add("")
    add(
        "FNMR and FMR at the operating threshold as probes lose resolution, sharpness and JPEG quality, and "
        f"by the engine's quality measures, are in [degraded.md]({rel}/degraded.md)"
        + (" (figures in `degraded.json`)." if other.get("degraded") else " (not yet run).")
        + " No figure here applies to probes of people under 16: the engine has not been evaluated on children."
    )
    add("")
    add("## The force's own pairs")
    add("")
    add(
        "The same 1:1 evaluation runs on the force's labelled custody-to-custody and CCTV-to-custody pairs: "
        "`.venv/bin/python scripts/evaluate.py --force-pairs pairs.csv` (the manifest's columns and rules are in "
        "`engine/evaluation/force_pairs.py`; impostors are matched on sex and IC code). Until it has been run on "
        "the force's images, nothing here describes custody photographs or CCTV."
    )
    add("")
    if "det.png" in images and v["eer"]:
        add("## Verification (1:1), pooled")
        add("")
        add(
            f"Equal error rate on the held-out people: {pct(v['eer']['rate'], 3)} (at distance "
            f"{v['eer']['threshold']:.3f})."
        )
        add("")
        add(f"![DET curve]({rel}/det.png)")
        add("")
    add("## Limits")
    add("")
    add("- LFW is posed, well-lit press photography, mostly of adult white men. Custody photos, CCTV stills and")
    add("  body-worn video differ in quality, pose, age and demographics; these figures describe the algorithm on")
    add("  this benchmark, not what it will do on the force's probes. The force must run the same evaluation on")
    add("  its own pairs.")
    add("- Demographic labels are appearance labels made by others (hand-checked sex lists; hand race labels for")
    add("  866 people; automatic classifier outputs), not self-identification and not IC codes. The automatic race")
    add("  labels misplace many of the small groups' people (precision above), so their Asian and Indian figures")
    add("  are partly figures for other people; the hand labels are too few for Asian and Indian figures at all.")
    add("- Groups are small: the Indian group, and the hand-labelled Asian and Indian groups, have too few people or")
    add('  errors for most rates, which are then floors, not figures. A ratio stated as "more than" is a lower bound.')
    add("- Intervals resample people, so they are wide where a few people make most of a group's errors: the")
    add("  subject bootstrap, not a count of pairs, is the honest measure of how sure these figures are.")
    add(f"- The 1:N gallery holds {c['gallery']:,} people; FPIR grows with the gallery, so these FPIRs understate")
    add("  what a large custody library would produce at the same threshold.")
    add("")
    add("## Reproduce")
    add("")
    add("```sh")
    add("make evaluate")
    add(f"{j['command']}")
    add("```")
    add("")
    tm = j["timing"]
    add(
        f"Model `{j['model']['id']}` (sha256 `{j['model']['sha256'][:16]}…`), code at `{j['model']['engine_revision']}`"
        f", on {tm['machine']}: templates {tm['templates_seconds']:.0f} s, analysis {tm['analysis_seconds']:.0f} s. "
        "Templates were held in memory only."
    )
    add("")
    return "\n".join(L) + "\n"


def render_force_markdown(j: dict[str, Any]) -> str:
    thr = j["thresholds"]
    op_i = j["operating_index"]
    L: list[str] = []
    add = L.append
    add("# Evaluation on the force's own pairs")
    add("")
    man = j["manifest"]
    add(
        f"Generated by `{j['command']}` from `{man['source']}`: {man['images']:,} images of {man['subjects']:,} "
        f"subjects. Operating threshold {thr[op_i]:.3f} (calibration `{j['operating_point']['calibration']}`). "
        "Every figure is in `force_figures.json`; rates follow the rule of 30 and carry subject-bootstrap intervals."
    )
    add("")
    for kind, k in j["kinds"].items():
        p = k["pairs"]
        add(f"## {kind}")
        add("")
        add(
            f"{p['subjects']:,} subjects; {p['genuine_pairs']:,} genuine pairs (at most {MAX_IMAGES_PER_PERSON} "
            f"images per subject; {p['genuine_pairs_dropped_to_balance']:,} dropped to balance, "
            f"{p['genuine_pairs_without_face']:,} without a face); {p['impostor_pairs']:,} impostor pairs matched on "
            f"sex and IC code ({p['listed_impostor_pairs']:,} listed, {p['matched_impostor_pairs_added']:,} added)."
        )
        add("")
        add(f"At the operating threshold: FMR {cell(k['fmr'][op_i])}; FNMR {cell(k['fnmr'][op_i])}.")
        add("")
        for field, by in k["by"].items():
            s = by["sweep"]
            add(f"### By {field}")
            add("")
            add("| group | people | FMR within group | FNMR |")
            add("| --- | --- | --- | --- |")
            for g in by["groups"]:
                add(f"| {g} | {by['people'][g]:,} | {cell(s['fmr_within'][g][op_i])} | {cell(s['fnmr'][g][op_i])} |")
            add(f"| highest / lowest | | {ratio_cell(s['fmr_ratio'][op_i])} | {ratio_cell(s['fnmr_ratio'][op_i])} |")
            add("")
    return "\n".join(L) + "\n"


def json_bytes(j: dict[str, Any]) -> bytes:
    """The figures as compact JSON, numbers to six significant figures (more would be noise, not precision)."""

    def rounded(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: rounded(v) for k, v in o.items()}
        if isinstance(o, list):
            return [rounded(x) for x in o]
        if isinstance(o, float):
            return float(f"{o:.6g}") if math.isfinite(o) else None
        return o

    return (json.dumps(rounded(j), separators=(",", ":"), allow_nan=False) + "\n").encode()


def write_all(files: dict[Path, bytes]) -> None:
    """Write every output (each through a temporary file and a rename), only after all were rendered."""
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        log(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=default_data_root(), help="$RFR_DATA or ../shared/data")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for the templates (default 2)")
    parser.add_argument("--device", default="CPU", help="OpenVINO device (default CPU)")
    parser.add_argument("--limit", type=int, help="quick look: whole people in name order, up to this many images")
    parser.add_argument("--n-boot", type=int, default=N_BOOT, help=f"bootstrap resamples (default {N_BOOT})")
    parser.add_argument("--seed", type=int, default=SEED, help="bootstrap seed")
    parser.add_argument("--out-dir", type=Path, help="folder for the outputs (default docs/evaluation)")
    parser.add_argument("--force-pairs", type=Path, help="the force's pair manifest (CSV) instead of LFW")
    parser.add_argument(
        "--calibration",
        type=Path,
        help="a calibration file other than the installed one (a quick look: the figures are not the terminal's)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be 1 or more")
    if args.n_boot < 10:
        parser.error("--n-boot must be 10 or more")
    if args.limit is not None and args.limit < 2:
        parser.error("--limit must be 2 or more")
    command = " ".join([".venv/bin/python scripts/evaluate.py", *argv])
    started = time.perf_counter()
    try:
        inp = preflight(args)
        log(f"operating threshold {inp.threshold:.3f} (calibration {inp.calibration.reference}, target {inp.target:g})")
        operating_point = {
            "threshold": inp.threshold,
            "target_fmr": inp.target,
            "calibration": inp.calibration.reference,
            "policy_version": inp.policy_version,
        }
        machine = f"{platform.machine()}, {os.cpu_count()} cores"
        files: dict[Path, bytes] = {}
        if inp.manifest is not None:
            j = analyse_force(inp, args.device, args.n_boot, args.seed)
            j.update({"command": command, "n_boot": args.n_boot, "operating_point": operating_point})
            j["timing"] = {"machine": machine, "total_seconds": time.perf_counter() - started}
            files[inp.out_dir / "force_figures.json"] = json_bytes(j)
            files[inp.out_dir / "force_evaluation.md"] = render_force_markdown(j).encode()
        else:
            j = analyse_lfw(inp, args.limit, args.jobs, args.device, args.n_boot, args.seed)
            timing = {
                "machine": machine,
                "templates_seconds": j.pop("templates_seconds"),
                "analysis_seconds": j.pop("analysis_seconds"),
                "total_seconds": time.perf_counter() - started,
            }
            j = {"command": command, "n_boot": args.n_boot, "operating_point": operating_point, **j, "timing": timing}
            plots = draw_plots(j)
            assert inp.docs_md is not None
            rel = os.path.relpath(inp.out_dir, inp.docs_md.parent)
            page = {**j, "other_reports": _other_reports(inp.out_dir)}
            files[inp.out_dir / "figures.json"] = json_bytes(j)
            for name, data in plots.items():
                files[inp.out_dir / name] = data
            files[inp.docs_md] = render_markdown(page, list(plots), rel).encode()
    except RfrError as exc:
        print(f"error: {exc.diagnostics()}", file=sys.stderr)
        return 2
    write_all(files)
    log(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
