"""Fitting the score calibration from evaluation distances (offline; the run time never imports this).

``build_calibration`` tabulates the distances of two disjoint sets of people (``engine.evaluation.
protocol``: the derivation people choose the threshold, the statement people give every stated rate)
and the within-group statement distances of hand-labelled demographic groups into the ``Calibration``
the terminal loads, checks and states beside every score. Reading, verifying and applying it is run
time and lives in ``engine.scoring.calibration``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from engine.errors import CalibrationError
from engine.evaluation.equity import PairSet
from engine.evaluation.metrics import bootstrap_fmr_upper_bounds
from engine.evaluation.protocol import DERIVATION_FOLDS, MAX_IMAGES_PER_PERSON, STATEMENT_FOLDS
from engine.scoring.calibration import (
    CONFIDENCE,
    GRID_DECIMALS,
    GRID_STEP,
    MIN_EVENTS,
    Calibration,
    CountSet,
    RateBound,
    round_up,
)

FloatArray = npt.NDArray[np.float64]
MAX_BOUNDED_RATE = 0.01  # the subject bootstrap bounds every row up to this derivation FMR: any policy target below
N_BOOT = 1000
SEED = 0


def _folds(folds: frozenset[int]) -> str:
    return f"{min(folds)}-{max(folds)}"


PROTOCOL = (
    f"people split by LFW's own 10 folds (people.txt): the threshold is chosen on folds {_folds(DERIVATION_FOLDS)} "
    f"(derivation people), every stated rate comes from folds {_folds(STATEMENT_FOLDS)} (statement people, held "
    f"out); genuine pairs: every pair of at most {MAX_IMAGES_PER_PERSON} images per person (the first by image "
    "number); impostor pairs: every pair of images of two different people of the same half; documented LFW "
    "label errors excluded; images without a face take part in no pair"
)


@dataclass(frozen=True)
class GroupScores:
    """Within-group pairs of one demographic group, e.g. ``race:Asian``, ``sex:female``."""

    genuine: npt.ArrayLike  # distances (balanced: at most 10 images per person)
    impostor: npt.ArrayLike  # distances of pairs of two different people of the group
    people: int


@dataclass(frozen=True)
class SetScores:
    """All the pairs of one half: derivation or statement people."""

    genuine: npt.ArrayLike  # distances (balanced: at most 10 images per person)
    impostor: npt.ArrayLike  # distances (every different-person pair)
    people: int
    images: int
    description: str  # "LFW people.txt folds 6-10: 2,874 people, 6,521 images with a face"
    groups: Mapping[str, GroupScores] = field(default_factory=dict)  # hand-labelled, for the equity caveat


def _sorted(values: npt.ArrayLike, what: str) -> FloatArray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size and (not np.all(np.isfinite(x)) or float(x.min()) < 0.0):
        raise CalibrationError(f"{what}: distances must be finite and 0 or more (leave out images without a face)")
    return np.sort(x)


def _at_or_below(sorted_values: FloatArray, grid: FloatArray) -> tuple[int, ...]:
    return tuple(int(v) for v in np.searchsorted(sorted_values, grid, side="right"))


def build_calibration(
    derivation: SetScores,
    statement: SetScores,
    *,
    model_id: str,
    model_sha256: str,
    dataset: str,
    created_by: str,
    images_without_face: int,
    excluded_label_errors: int,
    people_in_no_fold: int = 0,
    group_labels: str = "",
    protocol: str = PROTOCOL,
    images: int | None = None,
    min_events: int = MIN_EVENTS,
    confidence: float = CONFIDENCE,
    id_prefix: str = "lfw",
    derivation_pairs: PairSet | None = None,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> Calibration:
    """Tabulate every set on one grid, from 0 to the first distance every pair of every set has reached.

    ``derivation_pairs``: the derivation people's impostor comparisons with their people, complete up to a
    distance where the derivation FMR passes ``MAX_BOUNDED_RATE``; with them, the file carries a prediction
    bound (``_derivation_bound``) for every row from ``min_events`` false matches up to that rate
    (``derive_threshold`` uses it). Deterministic: the same distances (and seed) give the same file and id.
    """
    sets: list[tuple[str, FloatArray, FloatArray, int, int, str]] = []
    for name, s in (("derivation", derivation), ("statement", statement)):
        imp = _sorted(s.impostor, f"{name} impostor")
        if imp.size == 0:
            raise CalibrationError(f"calibration needs {name} impostor distances")
        sets.append((name, _sorted(s.genuine, f"{name} genuine"), imp, s.people, s.images, s.description))
    for name in statement.groups:  # in the caller's order (the caveat lists them so)
        g = statement.groups[name]
        sets.append(
            (name, _sorted(g.genuine, f"{name} genuine"), _sorted(g.impostor, f"{name} impostor"), g.people, 0, "")
        )
    top = max(float(arr[-1]) for _, gen, imp, *_ in sets for arr in (gen, imp) if arr.size)
    last = math.ceil(top / GRID_STEP + 1e-9) + 1
    grid = np.round(np.arange(0, max(last, 1) + 1) * GRID_STEP, GRID_DECIMALS)
    counts = [
        CountSet(
            name=name,
            people=people,
            genuine_pairs=int(gen.size),
            impostor_pairs=int(imp.size),
            impostor_at_or_below=_at_or_below(imp, grid),
            genuine_at_or_below=_at_or_below(gen, grid),
            description=description,
            images=n_images,
        )
        for name, gen, imp, people, n_images, description in sets
    ]
    bound = None
    if derivation_pairs is not None:
        bound = _derivation_bound(
            counts[0], statement.people, grid, derivation_pairs, min_events, confidence, n_boot, seed
        )
    return Calibration(
        model_id=model_id,
        model_sha256=model_sha256,
        dataset=dataset,
        protocol=protocol,
        created_by=created_by,
        images=derivation.images + statement.images if images is None else images,
        images_without_face=images_without_face,
        excluded_label_errors=excluded_label_errors,
        people_in_no_fold=people_in_no_fold,
        distances=tuple(float(x) for x in grid),
        derivation=counts[0],
        statement=counts[1],
        groups=tuple(counts[2:]),
        group_labels=group_labels,
        min_events=min_events,
        confidence=confidence,
        id_prefix=id_prefix,
        derivation_bound=bound,
    )


def _derivation_bound(
    derivation: CountSet,
    new_people: int,
    grid: FloatArray,
    pairs: PairSet,
    min_events: int,
    confidence: float,
    n_boot: int,
    seed: int,
) -> RateBound:
    """A one-sided prediction bound on the FMR of ``new_people`` other people, from ``min_events`` false matches on.

    A confidence bound on the derivation people's FMR is not enough: the held-out people are a second sample, with
    their own sampling error, and a threshold chosen at a confidence bound of 0.1 % measured 0.11 % on them. Their
    FMR differs from the derivation's by both samples' errors, whose variances add; each scales as one over the
    number of people. So the bound is the derivation FMR plus ``sqrt(1 + n / m)`` times the subject bootstrap's
    margin above it (its upper bound minus the FMR), for ``n`` derivation and ``m`` new people: ``sqrt(2)`` for a
    second sample the same size, 1 (the confidence bound) for an unbounded one.
    """
    counts = np.asarray(derivation.impostor_at_or_below, dtype=np.int64)
    if int(pairs.impostor_trials(np.ones(len(pairs.people), dtype=bool))) != derivation.impostor_pairs:
        raise CalibrationError("derivation_pairs are not the derivation people's comparisons (their numbers differ)")
    first = int(np.searchsorted(counts, min_events, side="left"))
    rates = counts / derivation.impostor_pairs
    last = int(np.searchsorted(rates, MAX_BOUNDED_RATE, side="right")) - 1
    last = min(last, int(np.searchsorted(grid, pairs.complete_to, side="right")) - 1)
    if first >= len(grid) or last < first:
        raise CalibrationError(
            f"derivation_pairs must reach {min_events} false matches below a derivation FMR of {MAX_BOUNDED_RATE:g}"
        )
    complete = np.asarray(pairs.impostor_distance) <= grid[last]
    upper = bootstrap_fmr_upper_bounds(
        np.asarray(pairs.impostor_distance)[complete],
        np.asarray(pairs.impostor_a)[complete],
        np.asarray(pairs.impostor_b)[complete],
        pairs.images,
        grid[first : last + 1],
        n_boot=n_boot,
        confidence=confidence,
        seed=seed,
    )
    if new_people < 1:
        raise CalibrationError("a prediction bound needs the number of people it predicts for (1 or more)")
    widen = math.sqrt(1.0 + derivation.people / new_people)
    rate = rates[first : last + 1]
    predicted = np.minimum(rate + widen * np.maximum(upper - rate, 0.0), 1.0)
    method = (
        f"one-sided {confidence:.0%} prediction bound for the FMR of {new_people:,} other people (the held-out "
        f"half): the derivation FMR plus sqrt(1 + {derivation.people:,}/{new_people:,}) = {widen:.3f} times the "
        f"margin of its subject bootstrap upper bound ({n_boot} resamples of the derivation people, seed {seed}; "
        "each resample counts every comparison of the people it draws)"
    )
    rounded = np.maximum.accumulate([round_up(float(u)) for u in predicted])
    return RateBound(method, first, tuple(float(u) for u in rounded))
