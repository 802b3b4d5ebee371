#!/usr/bin/env python
"""Label-free score normalisation on LFW: fitted on the DERIVATION people, measured on the held-out STATEMENT people.

Two published methods (``engine.evaluation.normalisation``; the run time is ``engine.scoring.normalisation``):
fair score normalisation (Terhörst et al. 2020) and FairCal (Salvador et al. 2022), beside the raw distance.

1. Templates of every LFW image, in memory only (``engine.evaluation.templates``); people split by LFW's
   own folds (``engine.evaluation.protocol``): folds 1-5 derivation, 6-10 statement; documented label
   errors left out.
2. k for each method, chosen on the derivation people alone (folds 1-3 fit, 4-5 judge) without any
   demographic label (``choose_k``).
3. Each method fitted on all derivation people; its operating threshold derived there with the
   pair bound (at least 30 false matches, exact 95 % upper bound on FMR at or below the target; the
   terminal's operating threshold also takes a prediction bound resampling people, so it is stricter).
4. On the statement people, at each method's operating threshold: pooled FMR and FNMR, within-group
   FMR (and FNMR) for race (automatic attribute labels and hand labels) and sex (hand-checked labels),
   with subject-bootstrap intervals, the rule of 30, and the highest/lowest ratio with its interval.
   Labels are read only here, to measure.

Writes ``docs/evaluation/normalisation.json`` and ``docs/evaluation/normalisation.md``; with ``--install``
and a method that met the target, also ``models/normaliser.json`` (its sha256 must then be pinned in
``models/manifest.yaml``: ``scripts/build_models.py --write-manifest``).

Usage (from the repository root; about 30 minutes on 2 cores, most of it the templates)::

    .venv/bin/python scripts/evaluate_normalisation.py
    .venv/bin/python scripts/evaluate_normalisation.py --limit 3000 --n-boot 200 --out /tmp/norm   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from engine.errors import RfrError  # noqa: E402
from engine.evaluation import equity  # noqa: E402
from engine.evaluation import normalisation as nm  # noqa: E402
from engine.evaluation.demographics import (  # noqa: E402
    GENDER_GROUPS,
    RACE_GROUPS,
    PersonLabels,
    load_gender,
    load_race_attributes,
    load_race_by_person,
)
from engine.evaluation.label_errors import load_label_errors  # noqa: E402
from engine.evaluation.protocol import DERIVATION_FOLDS, load_folds, split, split_half  # noqa: E402
from engine.scoring.normalisation import NORMALISER_FILE, Normaliser, rerank  # noqa: E402

TARGET_RATIO = 10.0
INNER_FIT_FOLDS = frozenset({1, 2, 3})
INNER_CHECK_FOLDS = frozenset({4, 5})
METHODS = ("fsn", "faircal")
TITLES = {"raw": "raw distance", "fsn": "fair score normalisation", "faircal": "FairCal"}


def default_data_root() -> Path:
    return Path(os.environ.get("RFR_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def policy_target() -> float:
    from engine.policy import load_default_policy

    return float(load_default_policy().operating_point.target_false_match_rate)


# ---- measuring on the statement people ----


def measure(
    pairs: nm.HalfPairs,
    scored: nm.Scored,
    threshold: float,
    label_sets: dict[str, tuple[PersonLabels, Sequence[str]]],
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    """Every statement figure of one method at its operating threshold."""
    ps = pairs.pair_set(scored.genuine, scored.impostor, scored.complete_to)
    cells = equity.PairCells.build(ps, np.array([threshold]))
    everyone = equity.Grouping.everyone(len(ps.people), n_boot=n_boot, seed=seed)
    pooled = equity.sweep(ps, everyone, [threshold], cells=cells)
    out: dict[str, Any] = {
        "method": scored.method,
        "threshold": threshold,
        "pooled": {"fmr": pooled.fmr_within["all"][0].to_json(), "fnmr": pooled.fnmr["all"][0].to_json()},
        "groups": {},
    }
    for name, (labels, groups) in label_sets.items():
        grouping = equity.Grouping.build(
            name, labels_of_people(ps.people, labels), groups, n_boot=n_boot, seed=seed, source=labels.source
        )
        s = equity.sweep(ps, grouping, [threshold], cells=cells)
        out["groups"][name] = {
            "source": labels.source,
            "fmr_within": {g: s.fmr_within[g][0].to_json() for g in groups},
            "fnmr": {g: s.fnmr[g][0].to_json() for g in groups},
            "fmr_ratio": s.fmr_ratio[0].to_json(),
            "fnmr_ratio": s.fnmr_ratio[0].to_json(),
            "people": {g: grouping.people_in(g) for g in groups},
        }
    return out


def labels_of_people(people: Sequence[str], labels: PersonLabels) -> list[str | None]:
    return [labels.group_of(p) for p in people]


def verdict(results: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    """Did each method meet the target: race FMR ratio (automatic labels) stated, below 10; FNMR no worse than raw."""
    raw_fnmr = results["raw"]["pooled"]["fnmr"]["rate"]
    out: dict[str, Any] = {}
    for method in METHODS:
        r = results[method]["groups"][key]["fmr_ratio"]
        fnmr = results[method]["pooled"]["fnmr"]["rate"]
        ratio_ok = r["kind"] == "stated" and r["value"] is not None and r["value"] < TARGET_RATIO
        fnmr_ok = fnmr <= raw_fnmr
        out[method] = {
            "ratio": r["text"],
            "ratio_below_target": ratio_ok,
            "ratio_interval_below_target": ratio_ok and r["high"] is not None and r["high"] < TARGET_RATIO,
            "fnmr": fnmr,
            "raw_fnmr": raw_fnmr,
            "fnmr_no_worse": fnmr_ok,
            "met": ratio_ok and fnmr_ok,
        }
    return out


def rerank_cost(normaliser: Normaliser, x: np.ndarray, shortlist: int = 100, repeats: int = 300) -> float:
    """Mean milliseconds to re-rank one shortlist of ``shortlist`` templates (the run time's ``rerank``)."""
    rng = np.random.default_rng(0)
    keys = np.arange(shortlist, dtype=np.uint64)
    start = time.perf_counter()
    for _ in range(repeats):
        rows = rng.choice(x.shape[0], shortlist + 1, replace=False)
        rerank(normaliser, x[rows[0]], keys, x[rows[1:]].astype(np.float32), 50)
    return 1000.0 * (time.perf_counter() - start) / repeats


# ---- the document ----


def pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f} %"


def fig_cells(f: dict[str, Any]) -> str:
    interval = ""
    if f["stated"] and f["low"] is not None and f["high"] is not None:
        interval = f" (95 % {equity.rate_text(f['low'])} – {equity.rate_text(f['high'])})"
    return f"{f['text']}{interval}<br>{f['errors']:,} / {f['trials']:,}"


def _changes(j: dict[str, Any]) -> str:
    """Plain sentences on how each method moved each group's within-group FMR, from the figures themselves."""
    res = j["results"]
    raw = res["raw"]["groups"]["race_automatic"]["fmr_within"]
    lines: list[str] = []
    for m in METHODS:
        mine = res[m]["groups"]["race_automatic"]["fmr_within"]
        moves = []
        for g in RACE_GROUPS:
            a, b = raw[g], mine[g]
            if a["trials"] == 0:
                continue
            direction = "rose" if b["errors"] > a["errors"] else "fell" if b["errors"] < a["errors"] else "held"
            if a["stated"] and b["stated"]:
                moves.append(f"{g} {direction} from {a['text']} to {b['text']}")
            else:
                moves.append(
                    f"{g} no stated rate either way ({a['errors']} then {b['errors']} of {a['trials']:,} pairs)"
                )
        sex_raw = res["raw"]["groups"]["sex_hand"]["fmr_ratio"]["text"]
        sex = res[m]["groups"]["sex_hand"]["fmr_ratio"]["text"]
        pooled = res[m]["pooled"]["fmr"]
        lines.append(
            f"- {TITLES[m]}: within-group FMR (automatic race labels) " + "; ".join(moves) + ". The ratio fell "
            f"from {res['raw']['groups']['race_automatic']['fmr_ratio']['text']} to "
            f"{res[m]['groups']['race_automatic']['fmr_ratio']['text']}, partly by raising the lowest group's rate. "
            f"Female over male FMR went from {sex_raw} to {sex}. Pooled FMR on the held-out people: {pooled['text']} "
            f"(raw: {res['raw']['pooled']['fmr']['text']}) against the target {equity.rate_text(j['target_fmr'])}."
        )
    chosen = j["choice"]["chosen"]
    spreads = {c["method"]: c["spread"] for c in j["choice"]["candidates"] if chosen.get(c["method"]) == c["k"]}

    def spread_text(value: float | None) -> str:
        return "no figure (fewer than two groups with 30 false matches)" if value is None else f"{value:.1f}"

    lines.append(
        "- On the derivation people the label-free yardstick (k-means groups standing in for demographic groups) "
        f"went from {spread_text(j['choice']['raw']['spread'])} to "
        + " and ".join(f"{spread_text(spreads.get(m))} ({TITLES[m]})" for m in METHODS)
        + "."
    )
    for g, d in j["cluster_diagnostic"].items():
        lines.append(
            f"- {g} faces (automatic labels, held-out people): {pct(d['in_majority_clusters'], 0)} of their "
            f"{d['images']:,} images fall in clusters where they are the majority; the fair score normalisation "
            f"offset of their clusters averages {d['mean_shift']:+.3f} (a positive offset pushes pairs apart)."
        )
    lines.append(
        "- So the clusters find most groups without any label; what falls short is the correction each cluster gets. "
        "Both methods set a cluster's figure from every pair with at least one template in it, and most of those pairs "
        "are with faces of other groups, far apart: a cluster whose own different people look alike to the model can "
        "keep an offset near zero, and its within-group false matches stay."
    )
    return "\n".join(lines)


def cluster_diagnostic(normaliser: Normaliser, pairs: nm.HalfPairs, labels: PersonLabels) -> dict[str, Any]:
    """Where each group's held-out images fall among the fitted clusters, and the offsets there (measurement only)."""
    cl = normaliser.clusters(pairs.x)
    shift = np.asarray(normaliser.shift)
    group = np.array([labels.group_of(pairs.people[o]) or "" for o in pairs.owner])
    out: dict[str, Any] = {}
    for g in RACE_GROUPS:
        mine = group == g
        if not mine.any():
            continue
        majority = [c for c in np.unique(cl[mine]) if np.mean(group[cl == c] == g) > 0.5]
        out[g] = {
            "images": int(mine.sum()),
            "in_majority_clusters": float(np.isin(cl[mine], majority).mean()),
            "mean_shift": float(shift[cl[mine]].mean()),
        }
    return out


def render(j: dict[str, Any]) -> str:
    L: list[str] = []
    add = L.append
    res = j["results"]
    order = ["raw", *METHODS]
    v = j["verdict"]
    met = [m for m in METHODS if v[m]["met"]]
    add("# Label-free score normalisation: fitted on derivation people, measured on held-out people")
    add("")
    add(f"Generated by `{j['command']}` on {j['machine']}; every figure is in `normalisation.json` beside this file.")
    add("")
    add("## Result")
    add("")
    target = f"below {TARGET_RATIO:g}"
    if met:
        names = " and ".join(TITLES[m] for m in met)
        add(
            f"**{names} met the target** on the held-out STATEMENT people: the highest/lowest within-group "
            f"false-match rate across Asian, Black, Indian and White faces (automatic labels) is {target} at the "
            "operating point, with pooled FNMR no worse than the raw distance's."
        )
    else:
        add(
            "**Neither method met the target.** On the held-out STATEMENT people, neither fair score normalisation "
            "nor FairCal brought the highest/lowest within-group false-match rate across Asian, Black, Indian and "
            f"White faces (automatic labels) {target} at its operating point with pooled FNMR no worse than the "
            "raw distance's. The figures follow; the search keeps the raw distance."
        )
    add("")
    for m in METHODS:
        x = v[m]
        add(
            f"- {TITLES[m]}: ratio {x['ratio']}; pooled FNMR {pct(x['fnmr'])} against raw {pct(x['raw_fnmr'])} "
            f"({'met' if x['met'] else 'not met'})."
        )
    add("")
    add("## What changed, group by group")
    add("")
    add(_changes(j))
    add("")
    add("## Protocol")
    add("")
    p = j["protocol"]
    add(
        f"- People split by LFW's own folds (`people.txt`): **derivation** {p['derivation']} (normalisers fitted, k "
        f"chosen, thresholds derived); **statement** {p['statement']} (every figure below). "
        f"Documented LFW label errors left out: {p['label_error_images']} images and "
        f"{p['same_person_pairs']} pair(s) of names of one person; images without a face: {p['images_without_face']}."
    )
    add(
        "- Genuine pairs: at most 10 images per person (the first by number), every pair; impostor pairs: every pair "
        "of images of two different people of the half."
    )
    add(
        f"- Operating threshold of each method: derived on the derivation people at the policy's target FMR "
        f"{j['target_fmr']:g} with one rule for every method: the largest 0.001 step with at least 30 false matches "
        "and the exact (Clopper-Pearson) 95 % upper bound on the FMR at or below the target. The terminal's operating "
        "threshold also takes a prediction bound resampling people, so it is stricter than the raw column's here."
    )
    add(
        "- Demographic labels are read only to measure, after fitting, on the statement people; no label enters a "
        "fit, the choice of k, or the run time."
    )
    add(
        f"- Intervals: subject bootstrap ({j['n_boot']} resamples, people redrawn within their group), 95 %. "
        "Rule of 30: no rate from fewer than 30 errors or 30 people; below it the floor is stated."
    )
    add("")
    add("## Side by side at each method's operating threshold (statement people)")
    add("")
    add("| | " + " | ".join(TITLES[m] for m in order) + " |")
    add("| --- | " + " | ".join("---" for _ in order) + " |")
    add("| operating threshold | " + " | ".join(f"{res[m]['threshold']:.3f}" for m in order) + " |")
    add("| pooled FMR | " + " | ".join(fig_cells(res[m]["pooled"]["fmr"]) for m in order) + " |")
    add("| pooled FNMR | " + " | ".join(fig_cells(res[m]["pooled"]["fnmr"]) for m in order) + " |")
    for key, title, groups in (
        ("race_automatic", "race group, automatic labels", RACE_GROUPS),
        ("race_hand", "race group, hand labels", RACE_GROUPS),
        ("sex_hand", "sex, hand-checked labels", GENDER_GROUPS),
    ):
        for g in groups:
            people = res["raw"]["groups"][key]["people"][g]
            cells = " | ".join(fig_cells(res[m]["groups"][key]["fmr_within"][g]) for m in order)
            add(f"| FMR within {g} ({title}; {people} people) | {cells} |")
        add(
            f"| **FMR highest/lowest ({title})** | "
            + " | ".join(res[m]["groups"][key]["fmr_ratio"]["text"] for m in order)
            + " |"
        )
        for g in groups:
            cells = " | ".join(fig_cells(res[m]["groups"][key]["fnmr"][g]) for m in order)
            add(f"| FNMR {g} ({title}) | {cells} |")
        add(
            f"| FNMR highest/lowest ({title}) | "
            + " | ".join(res[m]["groups"][key]["fnmr_ratio"]["text"] for m in order)
            + " |"
        )
    add("")
    add(
        "Each cell: the rate (or the floor), its interval, and errors / comparisons. The hand race labels cover "
        "too few Asian and Indian people for a figure; they are shown so that no one reads the automatic labels' "
        "figures as more than they are."
    )
    add("")
    add("## Choosing k (derivation people only, no labels)")
    add("")
    c = j["choice"]
    add(f"Rule: {c['rule']}. Candidates that could not be fitted are listed under notes.")
    add("")
    add("| method | k asked | clusters kept | threshold | FNMR | pooled FMR | reference-group spread |")
    add("| --- | --- | --- | --- | --- | --- | --- |")
    for cand in [c["raw"], *c["candidates"]]:
        spread = "–" if cand["spread"] is None else f"{cand['spread']:.2f}"
        add(
            f"| {cand['method']} | {cand['k'] or '–'} | {cand['clusters'] or '–'} | {cand['threshold']:.3f} | "
            f"{pct(cand['fnmr'])} | {cand['pooled_fmr']:.2e} | {spread} |"
        )
    add("")
    add("Chosen: " + ", ".join(f"{TITLES[m]} k = {k}" for m, k in c["chosen"].items()) + ".")
    for note in c["notes"]:
        add(f"- {note}")
    add("")
    add("## The methods as implemented")
    add("")
    add(
        "- **Fair score normalisation** (Terhörst et al., *Pattern Recognition Letters* 2020): k-means clusters of the "
        "derivation templates; the global threshold at the target FMR over all derivation impostor pairs and each "
        "cluster's threshold at the same FMR over the impostor pairs with at least one template in it; a pair's "
        "distance moves by the mean of its two clusters' offsets from the global threshold."
    )
    add(
        "- **FairCal** (Salvador et al., ICLR 2022): the same kind of clusters; a beta calibration per cluster of "
        "the genuine and impostor pairs with at least one template in it; a pair's probability is the mean of its two "
        "clusters' calibrated probabilities weighted by the clusters' numbers of calibration pairs, expressed as the "
        "distance the pooled calibration gives that probability (so thresholds share the raw unit)."
    )
    add(
        f"- Clusters of fewer than {j['min_people_per_cluster']} people are dissolved before fitting, so no cluster "
        "centre in `models/normaliser.json` stands for one person."
    )
    add("")
    add("## Run time")
    add("")
    t = j["timing"]
    add(
        f"- Templates: {t['templates_seconds']:.0f} s ({t['jobs']} worker processes); pairs and fitting: "
        f"{t['choose_k_seconds']:.0f} s choosing k, {t['fit_seconds']:.0f} s fitting, {t['measure_seconds']:.0f} s "
        "measuring."
    )
    for m in METHODS:
        add(f"- Re-ranking a 100-candidate shortlist with {TITLES[m]}: {t['rerank_ms'][m]:.2f} ms per search.")
    add("")
    add("## Limits")
    add("")
    add(
        "- LFW is press photography of mostly adult white men; the automatic race labels are classifier outputs "
        "about appearance (precision for Asian and Indian people against hand labels is low), so group figures "
        "are indicative, not a measurement of police custody images."
    )
    add(
        "- Indian faces are few among the statement people: their within-group figure is usually a floor, and a "
        "ratio over the groups with figures says nothing about a group without one."
    )
    add(
        "- Normalisation moves only the order and the threshold of comparisons; it cannot separate faces the "
        "model itself cannot tell apart."
    )
    add("")
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=default_data_root(), help="$RFR_DATA or ../shared/data")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for the templates (default 2)")
    parser.add_argument("--device", default="CPU", help="OpenVINO device (default CPU)")
    parser.add_argument("--limit", type=int, help="quick run: whole people in name order, up to this many images")
    parser.add_argument("--target-fmr", type=float, help="operating point (default: the policy's target)")
    parser.add_argument("--ks", default=",".join(str(k) for k in nm.CANDIDATE_KS), help="candidate k, comma-separated")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=20261122, help="k-means and bootstrap seed")
    parser.add_argument("--out", type=Path, help="folder for normalisation.json and .md (default docs/evaluation)")
    parser.add_argument(
        "--install", action="store_true", help="write models/normaliser.json if a method met the target"
    )
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.n_boot < 10:
        parser.error("--jobs must be 1 or more and --n-boot 10 or more")
    try:
        ks = tuple(int(k) for k in args.ks.split(","))
    except ValueError:
        parser.error("--ks must be whole numbers separated by commas, e.g. 25,50,100")
    out_dir = args.out or REPO_ROOT / "docs" / "evaluation"
    command = " ".join([".venv/bin/python scripts/evaluate_normalisation.py", *argv])
    try:
        from engine.evaluation.templates import compute_templates

        target = args.target_fmr if args.target_fmr is not None else policy_target()
        lfw_root = args.data_root / "lfw"
        log(f"LFW at {lfw_root}; operating point FMR {target:g}")
        t = compute_templates(lfw_root, args.jobs, args.device, args.limit)
        j, _ = run(t, lfw_root, target, ks, args.n_boot, args.seed, command, args.jobs, args.install)
    except RfrError as exc:
        print(f"error: {exc.diagnostics()}", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "normalisation.json").write_text(json.dumps(j, indent=1) + "\n", encoding="utf-8")
    (out_dir / "normalisation.md").write_text(render(j), encoding="utf-8")
    log(f"wrote {out_dir / 'normalisation.json'} and {out_dir / 'normalisation.md'}")
    for m in METHODS:
        x = j["verdict"][m]
        log(f"{TITLES[m]}: ratio {x['ratio']}; FNMR {pct(x['fnmr'])} (raw {pct(x['raw_fnmr'])}); met: {x['met']}")
    return 0


def run(
    t: Any,
    lfw_root: Path,
    target: float,
    ks: Sequence[int],
    n_boot: int,
    seed: int,
    command: str,
    jobs: int,
    install: bool,
) -> tuple[dict[str, Any], dict[str, Normaliser | None]]:
    """Everything after the templates (``t``: ``engine.evaluation.templates.LfwTemplates``): the figures, and
    the normalisers fitted on the derivation people."""
    folds = load_folds(lfw_root)
    errors = load_label_errors()
    halves = split(t.images, t.persons, t.ok, folds, errors)
    vectors = t.templates

    start = time.perf_counter()
    inner_fit = split_half(t.images, t.persons, t.ok, folds, INNER_FIT_FOLDS, errors, "derivation folds 1-3")
    inner_check = split_half(t.images, t.persons, t.ok, folds, INNER_CHECK_FOLDS, errors, "derivation folds 4-5")
    assert INNER_FIT_FOLDS | INNER_CHECK_FOLDS == DERIVATION_FOLDS
    log("choosing k on the derivation people (folds 1-3 fit, 4-5 judge)")
    choice = nm.choose_k(
        nm.HalfPairs.from_half(vectors, inner_fit),
        nm.HalfPairs.from_half(vectors, inner_check),
        target,
        ks=ks,
        seed=seed,
        model_id=t.model_id,
        model_sha256=t.model_sha256,
        log=log,
    )
    choose_seconds = time.perf_counter() - start

    start = time.perf_counter()
    derivation = nm.HalfPairs.from_half(vectors, halves.derivation)
    complete_to = float(np.quantile(derivation.imp_d, 0.02))
    normalisers: dict[str, Normaliser | None] = {"raw": None}
    for method in METHODS:
        centres = nm.kmeans_centroids(derivation.x, derivation.owner, choice.chosen[method], seed=seed)
        normalisers[method] = nm.FITTERS[method](
            derivation,
            centres,
            target,
            model_id=t.model_id,
            model_sha256=t.model_sha256,
            created_by="scripts/evaluate_normalisation.py",
        )
    thresholds = {
        m: nm.operating_threshold(derivation, nm.score(derivation, n, complete_to), target)
        for m, n in normalisers.items()
    }
    log("operating thresholds (derivation): " + ", ".join(f"{m} {v:.3f}" for m, v in thresholds.items()))
    rerank_ms = {m: rerank_cost(n, derivation.x) for m, n in normalisers.items() if n is not None}
    del derivation
    fit_seconds = time.perf_counter() - start

    start = time.perf_counter()
    statement = nm.HalfPairs.from_half(vectors, halves.statement)
    demo = lfw_root / "demographics"
    label_sets = {
        "race_automatic": (load_race_attributes(demo), RACE_GROUPS),
        "race_hand": (load_race_by_person(demo), RACE_GROUPS),
        "sex_hand": (load_gender(demo), GENDER_GROUPS),
    }
    results: dict[str, dict[str, Any]] = {}
    for m, n in normalisers.items():
        scored = nm.score(statement, n, max(complete_to, thresholds[m] + 0.01))
        results[m] = measure(statement, scored, thresholds[m], label_sets, n_boot, seed)
        log(f"  {m}: {results[m]['groups']['race_automatic']['fmr_ratio']['text']}")
    measure_seconds = time.perf_counter() - start
    fsn = normalisers["fsn"]
    assert fsn is not None
    diagnostic = cluster_diagnostic(fsn, statement, label_sets["race_automatic"][0])

    j: dict[str, Any] = {
        "command": command,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "model": {"id": t.model_id, "sha256": t.model_sha256},
        "target_fmr": target,
        "target_ratio": TARGET_RATIO,
        "n_boot": n_boot,
        "seed": seed,
        "min_people_per_cluster": nm.MIN_PEOPLE_PER_CLUSTER,
        "protocol": {
            "derivation": halves.derivation.describe(),
            "statement": halves.statement.describe(),
            "images_without_face": halves.derivation.images_without_face + halves.statement.images_without_face,
            "label_error_images": halves.derivation.label_error_images + halves.statement.label_error_images,
            "same_person_pairs": len(halves.derivation.same_person) + len(halves.statement.same_person),
            "people_in_no_fold": halves.people_in_no_fold,
        },
        "choice": choice.to_json(),
        "normalisers": {
            m: {"id": n.id, "k": n.k, "content_sha256": n.content_sha256, "fitted_on": n.fitted_on}
            for m, n in normalisers.items()
            if n is not None
        },
        "results": results,
        "cluster_diagnostic": diagnostic,
        "timing": {
            "templates_seconds": t.seconds,
            "jobs": jobs,
            "choose_k_seconds": choose_seconds,
            "fit_seconds": fit_seconds,
            "measure_seconds": measure_seconds,
            "rerank_ms": rerank_ms,
        },
    }
    j["verdict"] = verdict(results, "race_automatic")
    met = [m for m in METHODS if j["verdict"][m]["met"]]
    if install and met:
        best = min(met, key=lambda m: results[m]["groups"]["race_automatic"]["fmr_ratio"]["value"])
        chosen = normalisers[best]
        assert chosen is not None
        chosen.write(REPO_ROOT / "models" / NORMALISER_FILE)
        j["installed"] = {"method": best, "id": chosen.id, "path": f"models/{NORMALISER_FILE}"}
        log(f"wrote models/{NORMALISER_FILE} ({chosen.id}); pin it: scripts/build_models.py --write-manifest")
    elif install:
        j["installed"] = None
        log("no method met the target: nothing installed")
    return j, normalisers


if __name__ == "__main__":
    sys.exit(main())
