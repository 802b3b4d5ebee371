#!/usr/bin/env python
"""Build the score calibration on all of LFW, out of sample, and (with --install) install it.

Templates of every LFW image are made in memory (``engine.evaluation.templates``; never written to
disk). The people are split by LFW's own folds (``engine.evaluation.protocol``): the threshold is
derived on folds 1-5, every stated rate comes from folds 6-10; documented label errors are excluded;
genuine pairs use at most 10 images per person. Within-group statement figures of the hand-labelled
groups (sex; Asian, Black, Indian, White) and of the automatic race labels (more people, less reliable
labels) go into the file for the Match Report's equity caveat.

With ``--install``, and only after everything above succeeded, the run writes, in this order:
``models/calibration.yaml``, its sha256 in ``models/manifest.yaml``, and a new version of
``policies/default.yaml`` naming the calibration and the threshold derived from it. The calibration's
id is its content hash, so a re-run on the same data and model installs the same bytes and leaves the
policy as it is.

Usage (from the repository root)::

    .venv/bin/python scripts/calibrate.py                        # figures only (~10 min on 2 cores)
    .venv/bin/python scripts/calibrate.py --install              # and install them
    .venv/bin/python scripts/calibrate.py --limit 600 --out /tmp/cal.yaml --target-fmr 0.01   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from engine.errors import RfrError  # noqa: E402
from engine.evaluation.calibration import (  # noqa: E402
    MAX_BOUNDED_RATE,
    GroupScores,
    SetScores,
    build_calibration,
)
from engine.evaluation.demographics import (  # noqa: E402
    GENDER_GROUPS,
    RACE_GROUPS,
    PersonLabels,
    load_gender,
    load_race_attributes,
    load_race_by_person,
)
from engine.evaluation.equity import PairSet  # noqa: E402
from engine.evaluation.label_errors import load_label_errors  # noqa: E402
from engine.evaluation.protocol import (  # noqa: E402
    STATEMENT_FOLDS,
    HalfImages,
    genuine_distances,
    genuine_people,
    impostor_distances,
    load_folds,
    split,
    split_half,
)
from engine.evaluation.templates import LfwTemplates, compute_templates  # noqa: E402
from engine.faces.models import CALIBRATION_FILE, Manifest, sha256_bytes  # noqa: E402
from engine.policy import load_policy_text  # noqa: E402
from engine.scoring.calibration import GRID_STEP, Calibration, derive_threshold  # noqa: E402

GROUP_LABELS = (
    "hand labels: sex from the hand-checked per-image gender lists (Afifi & Abdelhamed), race from "
    "race_by_person (hand labels of 866 LFW people); automatic labels: race from the Kumar et al. attribute "
    "classifiers' outputs (an image labelled when exactly one group is positive), wrong more often for the "
    "small groups (docs/evaluation.md measures them against the hand labels); one label per person by "
    "majority; groups are appearance labels, not self-identification"
)
LABEL_SETS = (("sex", GENDER_GROUPS), ("race", RACE_GROUPS), ("race_auto", RACE_GROUPS))
"""The groups the file carries, hand-labelled first (the equity caveat states them so), then automatic."""
DATASET = "LFW (UMass Amherst), all images; the labelled face is the one nearest the image centre"
COMMAND = "scripts/calibrate.py"


def default_data_root() -> Path:
    return Path(os.environ.get("RFR_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


@dataclass
class Built:
    calibration: Calibration
    threshold: float
    target: float
    figures: dict[str, Any]


def half_scores(t: LfwTemplates, half: HalfImages, groups: dict[str, GroupScores] | None = None) -> SetScores:
    start = time.perf_counter()
    genuine = genuine_distances(t.templates, half)
    impostor = impostor_distances(t.templates, half)
    print(
        f"  {half.name}: {len(half.people):,} people, {half.rows.size:,} images, {genuine.size:,} genuine and "
        f"{impostor.size:,} impostor pairs ({time.perf_counter() - start:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    return SetScores(genuine, impostor, len(half.people), int(half.rows.size), half.describe(), groups or {})


def group_scores(
    t: LfwTemplates, folds: dict[str, int], labels: dict[str, PersonLabels], label_errors: Any
) -> dict[str, GroupScores]:
    """Within-group statement pairs of each group of ``LABEL_SETS``."""
    out: dict[str, GroupScores] = {}
    for kind, names in LABEL_SETS:
        for group in names:
            members = {p for p, label in labels[kind].labels.items() if label == group}
            group_folds = {p: f for p, f in folds.items() if p in members}
            half = split_half(t.images, t.persons, t.ok, group_folds, STATEMENT_FOLDS, label_errors, "statement")
            if len(half.people) < 2:
                continue
            genuine = genuine_distances(t.templates, half)
            impostor = impostor_distances(t.templates, half)
            out[f"{kind}:{group}"] = GroupScores(genuine, impostor, len(half.people))
            print(
                f"  group {kind}:{group}: {len(half.people):,} people ({genuine_people(half):,} with genuine pairs), "
                f"{genuine.size:,} genuine and {impostor.size:,} impostor pairs",
                file=sys.stderr,
                flush=True,
            )
    return out


def build(t: LfwTemplates, lfw_root: Path, target: float) -> Built:
    folds = load_folds(lfw_root)
    label_errors = load_label_errors()
    demographics = lfw_root / "demographics"
    labels = {
        "sex": load_gender(demographics),
        "race": load_race_by_person(demographics),
        "race_auto": load_race_attributes(demographics),
    }
    parts = split(t.images, t.persons, t.ok, folds, label_errors)
    derivation = half_scores(t, parts.derivation)
    # The derivation's comparisons with their people, up to where its FMR passes the bootstrap's cap.
    cap = float(np.quantile(np.asarray(derivation.impostor), MAX_BOUNDED_RATE)) + 2 * GRID_STEP
    derivation_pairs = PairSet.from_half(t.templates, parts.derivation, complete_to=cap)
    statement = half_scores(t, parts.statement, group_scores(t, folds, labels, label_errors))
    excluded = parts.derivation.label_error_images + parts.statement.label_error_images
    calibration = build_calibration(
        derivation,
        statement,
        model_id=t.model_id,
        model_sha256=t.model_sha256,
        dataset=f"{DATASET}: {len(t.images):,} images of {len(t.people):,} people",
        created_by=COMMAND,
        images_without_face=t.images_without_face,
        excluded_label_errors=excluded,
        people_in_no_fold=parts.people_in_no_fold,
        group_labels=GROUP_LABELS,
        images=len(t.images),
        derivation_pairs=derivation_pairs,
    )
    threshold = derive_threshold(calibration, target)
    return Built(calibration, threshold, target, figures(calibration, threshold, target, parts))


def figures(cal: Calibration, threshold: float, target: float, parts: Any) -> dict[str, Any]:
    st = cal.false_match_rate(threshold)
    dv = cal.estimate(cal.derivation, threshold, "derivation people")
    genuine_row = round(threshold / GRID_STEP)
    fnmr_missed = cal.statement.genuine_pairs - cal.statement.genuine_at_or_below[genuine_row]
    return {
        "calibration": cal.id,
        "model": {"id": cal.model_id, "sha256": cal.model_sha256},
        "target_false_match_rate": target,
        "threshold": threshold,
        "derivation": {
            "people": cal.derivation.people,
            "images": cal.derivation.images,
            "impostor_pairs": cal.derivation.impostor_pairs,
            "false_matches_at_threshold": dv.events,
            "false_match_rate": dv.events / dv.pairs,
            "upper_bound_95": dv.upper_bound,
            "prediction_bound_95": _file_bound(cal, threshold),
            "bound_method": None if cal.derivation_bound is None else cal.derivation_bound.method,
        },
        "statement": {
            "people": cal.statement.people,
            "images": cal.statement.images,
            "impostor_pairs": st.pairs,
            "false_matches_at_threshold": st.events,
            "false_match_rate": st.events / st.pairs,
            "false_match_interval_95": list(st.interval),
            "false_match_words": st.phrase(),
            "genuine_pairs": cal.statement.genuine_pairs,
            "genuine_missed_at_threshold": fnmr_missed,
            "false_non_match_rate": cal.false_non_match_rate(threshold),
        },
        "floor": {"rate": cal.floor.floor_rate, "words": cal.floor.phrase()},
        "images": cal.images,
        "images_without_face": cal.images_without_face,
        "excluded_label_error_images": cal.excluded_label_errors,
        "people_in_no_fold": cal.people_in_no_fold,
        "groups": cal.groups_json(threshold),
        "equity_caveat": cal.equity_caveat(threshold, target),
    }


def _file_bound(cal: Calibration, threshold: float) -> float | None:
    bound = cal.derivation_bound
    return None if bound is None else bound.at(round(threshold / GRID_STEP))


def summary(b: Built) -> str:
    f = b.figures
    s, d = f["statement"], f["derivation"]
    lines = [
        f"calibration {f['calibration']}; threshold {b.threshold:.3f} at target FMR {b.target:g} "
        f"(derivation: {d['false_matches_at_threshold']:,} of {d['impostor_pairs']:,} pairs, 95% upper bound "
        f"{d['upper_bound_95']:.3g} over pairs, {d['prediction_bound_95'] or float('nan'):.3g} "
        "predicted for the held-out people, resampling people)",
        f"statement people ({s['people']:,} people, {s['images']:,} images): FMR {s['false_match_rate']:.3g} "
        f"({s['false_matches_at_threshold']:,} of {s['impostor_pairs']:,} pairs; 95% "
        f"{s['false_match_interval_95'][0]:.3g}-{s['false_match_interval_95'][1]:.3g}), FNMR "
        f"{s['false_non_match_rate']:.4f} ({s['genuine_missed_at_threshold']:,} of {s['genuine_pairs']:,} "
        "balanced genuine pairs)",
        f"floor: {f['floor']['words']}; excluded label-error images {f['excluded_label_error_images']}; "
        f"images without a face {f['images_without_face']}; people in no fold {f['people_in_no_fold']}",
    ]
    for g in f["groups"]:
        fm = g["false_match"]
        fnmr = g["false_non_match_rate"]
        lines.append(
            f"  {g['group']:12} {g['people']:>5} people: within-group FMR {fm['text']} "
            f"({fm['events'] if fm['events'] is not None else '<' + str(fm['fewer_than_events'])} of "
            f"{fm['pairs']:,}); FNMR {'n/a' if fnmr is None else f'{fnmr:.4f}'} "
            f"({g['genuine_missed']:,} of {g['genuine_pairs']:,})"
        )
    return "\n".join(lines)


# ---- installing: the last step, after everything succeeded ----


def manifest_text(text: str, data: bytes) -> str:
    """The manifest with the calibration's pinned sha256 and size replaced (nothing else touched)."""
    pattern = re.compile(
        r"(^pinned:\n(?:  .*\n)*?  " + re.escape(CALIBRATION_FILE) + r":\n    sha256: )[0-9a-f]{64}(\n    bytes: )\d+",
        re.M,
    )
    new, n = pattern.subn(lambda m: f"{m.group(1)}{sha256_bytes(data)}{m.group(2)}{len(data)}", text)
    if n != 1:
        raise RfrError(f"models/manifest.yaml has no pinned entry for {CALIBRATION_FILE}; restore it from git")
    return new


def next_version(version: str) -> str:
    """``2026.2`` -> ``2026.3``."""
    m = re.fullmatch(r"(\d{4})\.(\d+)", version)
    if m is None:
        raise RfrError(f"policy version {version!r} is not YEAR.N; set --policy-version")
    return f"{m.group(1)}.{int(m.group(2)) + 1}"


def policy_text(text: str, calibration_id: str, threshold: float, version: str) -> str:
    """The policy with its version, operating_point.calibration_id and threshold replaced (nothing else)."""
    replacements = (
        (r'^version: "[^"\n]*"$', f'version: "{version}"'),
        (r'^  calibration_id: "[^"\n]*"$', f'  calibration_id: "{calibration_id}"'),
        (r"^  threshold: [0-9.]+$", f"  threshold: {threshold:.3f}"),
    )
    for pattern, replacement in replacements:
        text, n = re.subn(pattern, replacement, text, flags=re.M)
        if n != 1:
            raise RfrError(f"policies/default.yaml: expected one line matching {pattern!r}; restore it from git")
    return text


def install(b: Built, models: Path, policy_path: Path, version: str | None) -> list[str]:
    """Write the calibration, pin it, and issue a policy naming it; every text is checked before anything is written."""
    cal_text = b.calibration.to_yaml()
    cal_bytes = cal_text.encode("utf-8")
    manifest_path = models / "manifest.yaml"
    new_manifest = manifest_text(manifest_path.read_text(encoding="utf-8"), cal_bytes)
    Manifest.parse(new_manifest, str(manifest_path))  # still a manifest
    old_policy_text = policy_path.read_text(encoding="utf-8")
    old = load_policy_text(old_policy_text, str(policy_path))
    point = old.operating_point
    if abs(point.target_false_match_rate - b.target) > 1e-15:
        raise RfrError(
            f"the threshold was derived at false-match rate {b.target:g} but the policy's target is "
            f"{point.target_false_match_rate:g}: install derives at the policy's target only (leave out --target-fmr)"
        )
    same = point.calibration_id == b.calibration.reference and point.threshold == round(b.threshold, 3)
    new_policy_text = old_policy_text
    if not same:
        new_version = version or next_version(old.version)
        new_policy_text = policy_text(old_policy_text, b.calibration.reference, b.threshold, new_version)
        new_policy = load_policy_text(new_policy_text, str(policy_path))
        if abs(float(new_policy.operating_point.threshold or -1) - b.threshold) > 1e-9:
            raise RfrError("the new policy's threshold does not read back as derived; nothing written")
    written = []
    for path, text in (
        (models / CALIBRATION_FILE, cal_text),
        (manifest_path, new_manifest),
        (policy_path, new_policy_text),
    ):
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path))
    return written


def policy_target() -> float:
    from engine.policy import load_default_policy

    return float(load_default_policy().operating_point.target_false_match_rate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=default_data_root(), help="$RFR_DATA or ../shared/data")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for the templates (default 2)")
    parser.add_argument("--device", default="CPU", help="OpenVINO device (default CPU)")
    parser.add_argument("--limit", type=int, help="quick look: whole people in name order up to this many images")
    parser.add_argument("--target-fmr", type=float, help="operating point (default: the policy's target)")
    parser.add_argument("--out", type=Path, help="also write the calibration file here (not installed)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    parser.add_argument("--install", action="store_true", help="install the calibration, pin it, issue a policy")
    parser.add_argument("--policy-version", help="version of the new policy (default: the current one plus 1)")
    parser.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models", help=argparse.SUPPRESS)
    parser.add_argument("--policy", type=Path, default=REPO_ROOT / "policies" / "default.yaml", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be 1 or more")
    if args.install and args.limit is not None:
        parser.error("--install needs all of LFW: leave out --limit")
    try:
        target = args.target_fmr if args.target_fmr is not None else policy_target()
        lfw_root = args.data_root / "lfw"
        print(f"LFW at {lfw_root}; operating point FMR {target:g}", file=sys.stderr, flush=True)
        t = compute_templates(lfw_root, jobs=args.jobs, device=args.device, limit=args.limit)
        built = build(t, lfw_root, target)
        del t  # the templates are biometric: they leave memory before anything is written
        print(summary(built))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(built.figures, indent=1, default=float) + "\n", encoding="utf-8")
        if args.out:
            built.calibration.write(args.out)
        if args.install:
            written = install(built, args.models_dir, args.policy, args.policy_version)
            print("installed: " + (", ".join(written) if written else "nothing changed (same calibration)"))
    except RfrError as exc:
        print(f"error: {exc.diagnostics()}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
