"""Error rates from distance scores: verification (1:1), identification (1:N) and group-wise figures.

Conventions (ISO/IEC 19795-1 and NIST FRTE wording):

- A score is a distance between two templates: smaller means more alike. A comparison is a *match*
  at threshold ``t`` when its distance is ``<= t`` (the rule of ``engine.evaluation.lfw``); ``+inf``
  stands for "no template" and never matches.
- FMR(t): share of impostor (different-person) comparisons with distance ``<= t``.
  FNMR(t): share of genuine (same-person) comparisons with distance ``> t``.
- Sweeps sort once and binary-search (``np.searchsorted``); nothing loops over scores.

Confidence intervals, and where each is used:

- Wilson and Clopper-Pearson intervals, ``Proportion``, ``GroupFigure``, ``spread`` and the casework
  ``outcome_breakdown`` are defined in ``engine.scoring.statistics``, because the run time states
  figures with them too and never imports this package. Wilson serves the calibration rows, the 1:N
  rates and casework breakdowns; Clopper-Pearson the bounds behind "fewer than 1 in N" claims.
- Subject bootstrap (``fnmr_by_subject``, ``fmr_by_subject``, ``group_*``): resamples people, not
  pairs; every comparison of a resampled person comes along, so one person's many images count as
  one draw. Used for the headline FMR/FNMR at the operating threshold and every group-wise figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.scoring.statistics import GroupFigure, Proportion, wilson

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

NO_RANK = int(np.iinfo(np.int64).max)
"""Rank of a mated search whose probe has no template (or whose mate is absent): never a hit."""


# ---------------------------------------------------------------------------------------------
# Score sets and 1:1 error rates
# ---------------------------------------------------------------------------------------------


def _score_array(scores: npt.ArrayLike, what: str) -> FloatArray:
    a = np.asarray(scores, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of distances, got shape {a.shape}")
    if np.isnan(a).any() or np.any(a == -np.inf):
        raise ValueError(f"{what} must be numbers or +inf (no template), not NaN or -inf")
    return a


class Scores:
    """A set of distances sorted once, so every threshold sweep is a binary search.

    ``presorted=True`` adopts an already ascending float64 array without copying (the 87 million
    LFW impostor distances are sorted in place by the caller); the order is still checked.
    """

    __slots__ = ("values",)

    def __init__(self, scores: npt.ArrayLike, *, presorted: bool = False, what: str = "scores") -> None:
        values = _score_array(scores, what)
        if presorted:
            if values.size > 1 and not bool(np.all(values[1:] >= values[:-1])):
                raise ValueError(f"{what} passed as presorted are not in ascending order")
        else:
            values = np.sort(values)
        self.values: FloatArray = values

    @property
    def n(self) -> int:
        return int(self.values.size)

    def at_or_below(self, thresholds: npt.ArrayLike) -> IntArray:
        """How many scores are ``<= t``, for each threshold ``t``."""
        return np.searchsorted(self.values, np.asarray(thresholds, dtype=np.float64), side="right").astype(np.int64)

    def fraction_at_or_below(self, thresholds: npt.ArrayLike) -> FloatArray:
        if self.n == 0:
            raise ValueError("no scores: a rate over an empty set is undefined")
        return self.at_or_below(thresholds) / float(self.n)


def as_scores(scores: Scores | npt.ArrayLike, what: str = "scores") -> Scores:
    return scores if isinstance(scores, Scores) else Scores(scores, what=what)


def fmr(impostor: Scores | npt.ArrayLike, thresholds: npt.ArrayLike) -> FloatArray:
    """False-match rate at each threshold: impostor distances ``<= t`` over all impostor comparisons."""
    return np.atleast_1d(as_scores(impostor, "impostor scores").fraction_at_or_below(thresholds))


def fnmr(genuine: Scores | npt.ArrayLike, thresholds: npt.ArrayLike) -> FloatArray:
    """False non-match rate at each threshold: genuine distances ``> t`` (or +inf) over all genuine comparisons."""
    return 1.0 - np.atleast_1d(as_scores(genuine, "genuine scores").fraction_at_or_below(thresholds))


# ---------------------------------------------------------------------------------------------
# Subject bootstrap
# ---------------------------------------------------------------------------------------------


def _bootstrap_weights(n_subjects: int, n_boot: int, rng: np.random.Generator) -> FloatArray:
    """How many times each subject is drawn, per resample: (n_boot, n_subjects)."""
    draws = rng.integers(0, n_subjects, size=(n_boot, n_subjects)) + n_subjects * np.arange(n_boot)[:, None]
    counts = np.bincount(draws.ravel(), minlength=n_boot * n_subjects)
    return counts.reshape(n_boot, n_subjects).astype(np.float64)


def stratified_bootstrap_weights(strata: npt.ArrayLike, n_boot: int, rng: np.random.Generator) -> FloatArray:
    """How many times each subject is drawn, per resample, drawing within each stratum: (n_boot, n_subjects).

    Each stratum (e.g. a demographic group) keeps its size in every resample, so figures of disjoint
    groups computed from one resample are independent draws, and a ratio between groups can be
    bootstrapped from the same resamples.
    """
    s = np.asarray(strata, dtype=np.int64)
    if s.ndim != 1:
        raise ValueError("strata must be 1-D: one stratum per subject")
    if n_boot < 1:
        raise ValueError("n_boot must be 1 or more")
    weights = np.zeros((n_boot, s.size))
    for stratum in np.unique(s):
        members = np.flatnonzero(s == stratum)
        weights[:, members] = _bootstrap_weights(members.size, n_boot, rng)
    return weights


def _percentile_interval(replicates: FloatArray, confidence: float) -> tuple[float, float]:
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return 0.0, 1.0
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high)


def _compact(subject: IntArray) -> tuple[IntArray, int]:
    """Subject ids renumbered 0..k-1 (only those present), and k."""
    unique, inverse = np.unique(subject, return_inverse=True)
    return inverse.astype(np.int64).reshape(-1), int(unique.size)


def bootstrap_error_interval(
    errors: npt.ArrayLike, subject: npt.ArrayLike, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of an error rate over trials that each belong to one subject, resampling subjects.

    For FNMR the trials are genuine comparisons (each belongs to one person); for FNIR they are mated
    searches. A subject drawn twice brings all its trials twice.
    """
    e = np.asarray(errors, dtype=np.bool_)
    s = np.asarray(subject, dtype=np.int64)
    if e.shape != s.shape or e.ndim != 1:
        raise ValueError("errors and subject must be 1-D of equal length")
    if e.size == 0:
        return 0.0, 1.0
    index, k = _compact(s)
    per_subject_errors = np.bincount(index, weights=e.astype(np.float64), minlength=k)
    per_subject_trials = np.bincount(index, minlength=k).astype(np.float64)
    weights = _bootstrap_weights(k, n_boot, np.random.default_rng(seed))
    with np.errstate(invalid="ignore", divide="ignore"):
        replicates = (weights @ per_subject_errors) / (weights @ per_subject_trials)
    return _percentile_interval(replicates, confidence)


def cross_pair_count(images_per_subject: npt.ArrayLike) -> int:
    """Impostor comparisons among these subjects when every image is compared with every other person's."""
    n = np.asarray(images_per_subject, dtype=np.int64)
    total = int(n.sum())
    return (total * total - int(np.sum(n * n))) // 2


def _within_trials(weights: FloatArray, images: FloatArray) -> FloatArray:
    """Per resample: each image compared with every other drawn person's (a person drawn twice counts twice)."""
    return ((weights @ images) ** 2 - (weights**2) @ (images**2)) / 2.0


def bootstrap_fmr_interval(
    false_a: npt.ArrayLike,
    false_b: npt.ArrayLike,
    images_per_subject: npt.ArrayLike,
    *,
    images_per_subject_b: npt.ArrayLike | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of an FMR from exhaustive impostor comparisons, resampling subjects.

    ``false_a``/``false_b`` give the two people of each false match (indices into ``images_per_subject``).
    One population (``images_per_subject_b`` None): the comparisons are every pair of images of two
    different people in it. Two disjoint populations: every image of A against every image of B, with
    ``false_b`` indexing B; each side is resampled on its own.
    """
    a = np.asarray(false_a, dtype=np.int64)
    b = np.asarray(false_b, dtype=np.int64)
    n_a = np.asarray(images_per_subject, dtype=np.float64)
    n_b = None if images_per_subject_b is None else np.asarray(images_per_subject_b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    w_a = _bootstrap_weights(n_a.size, n_boot, rng)
    if n_b is None:
        w_b = w_a
        trials = _within_trials(w_a, n_a)
    else:
        w_b = _bootstrap_weights(n_b.size, n_boot, rng)
        trials = (w_a @ n_a) * (w_b @ n_b)
    # Aggregate false matches per pair of people, so each resample costs one product per distinct pair.
    width = int(n_a.size if n_b is None else n_b.size)
    keys, counts = np.unique(a * width + b, return_counts=True)
    pa, pb, c = keys // width, keys % width, counts.astype(np.float64)
    events = np.zeros(n_boot, dtype=np.float64)
    step = max(1, 5_000_000 // max(1, keys.size))
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        events[start:stop] = (w_a[start:stop][:, pa] * w_b[start:stop][:, pb]) @ c
    with np.errstate(invalid="ignore", divide="ignore"):
        replicates = events / trials
    return _percentile_interval(replicates, confidence)


def bootstrap_fmr_upper_bounds(
    close_distance: npt.ArrayLike,
    close_a: npt.ArrayLike,
    close_b: npt.ArrayLike,
    images_per_subject: npt.ArrayLike,
    thresholds: npt.ArrayLike,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 40,
) -> FloatArray:
    """One-sided subject-bootstrap upper bounds on the FMR at each of ascending ``thresholds``, in one population.

    ``close_*`` hold every impostor comparison at or below the last threshold (its distance and its two
    people, indices into ``images_per_subject``); the comparisons are every pair of images of two
    different people. One set of resamples serves every threshold, so the bounds never fall as the
    threshold rises: each resample's false matches are a running sum over the comparisons sorted by
    distance. The bound at a threshold is the ``confidence`` quantile of the resampled rates.
    """
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1 or t.size == 0 or np.any(np.diff(t) < 0):
        raise ValueError("thresholds must be a non-empty ascending 1-D array")
    d = _score_array(close_distance, "impostor distances")
    if d.size and float(d.max()) > float(t[-1]):
        raise ValueError("close comparisons must all lie at or below the last threshold")
    order = np.argsort(d, kind="stable")
    a = np.asarray(close_a, dtype=np.int64)[order]
    b = np.asarray(close_b, dtype=np.int64)[order]
    cut = np.searchsorted(d[order], t, side="right")  # comparisons at or below each threshold
    n = np.asarray(images_per_subject, dtype=np.float64)
    weights = _bootstrap_weights(n.size, n_boot, np.random.default_rng(seed))
    trials = _within_trials(weights, n)
    rates = np.empty((n_boot, t.size), dtype=np.float64)
    for start in range(0, n_boot, chunk):
        w = weights[start : start + chunk]
        running = np.zeros((w.shape[0], a.size + 1), dtype=np.float64)
        np.cumsum(w[:, a] * w[:, b], axis=1, out=running[:, 1:])
        with np.errstate(invalid="ignore", divide="ignore"):
            rates[start : start + chunk] = running[:, cut] / trials[start : start + chunk, None]
    finite = np.where(np.isfinite(rates), rates, 1.0)  # a resample with no comparison bounds nothing
    return np.asarray(np.quantile(finite, confidence, axis=0, method="higher"), dtype=np.float64)


def fnmr_by_subject(
    genuine_distance: npt.ArrayLike,
    genuine_subject: npt.ArrayLike,
    threshold: float,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Proportion:
    """FNMR at ``threshold`` with a subject-bootstrap interval (genuine comparisons grouped by person)."""
    d = _score_array(genuine_distance, "genuine distances")
    errors = ~(d <= threshold)
    low, high = bootstrap_error_interval(errors, genuine_subject, n_boot=n_boot, confidence=confidence, seed=seed)
    return Proportion(int(errors.sum()), int(d.size), low, high, _bootstrap_method(confidence, n_boot))


def fmr_by_subject(
    impostor_distance: npt.ArrayLike,
    impostor_a: npt.ArrayLike,
    impostor_b: npt.ArrayLike,
    images_per_subject: npt.ArrayLike,
    threshold: float,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Proportion:
    """FMR at ``threshold`` over exhaustive impostor comparisons, with a subject-bootstrap interval.

    The impostor arrays must hold every impostor comparison at or below ``threshold`` (more is fine);
    the number of comparisons comes from ``images_per_subject`` (every image against every other
    person's images).
    """
    d = _score_array(impostor_distance, "impostor distances")
    hit = d <= threshold
    a = np.asarray(impostor_a, dtype=np.int64)[hit]
    b = np.asarray(impostor_b, dtype=np.int64)[hit]
    low, high = bootstrap_fmr_interval(a, b, images_per_subject, n_boot=n_boot, confidence=confidence, seed=seed)
    return Proportion(
        int(hit.sum()), cross_pair_count(images_per_subject), low, high, _bootstrap_method(confidence, n_boot)
    )


def _bootstrap_method(confidence: float, n_boot: int) -> str:
    return f"subject bootstrap {confidence:.0%} ({n_boot} resamples)"


# ---------------------------------------------------------------------------------------------
# Curves, EER, thresholds
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DetCurve:
    """FMR and FNMR at a sequence of ascending thresholds (DET plots FNMR against FMR; ROC plots 1 - FNMR)."""

    thresholds: FloatArray
    fmr: FloatArray
    fnmr: FloatArray


def det_curve(
    genuine: Scores | npt.ArrayLike, impostor: Scores | npt.ArrayLike, max_points: int | None = None
) -> DetCurve:
    """Error rates at every distinct finite score, or at about ``max_points`` thresholds.

    With ``max_points``, half the thresholds sit at evenly spaced genuine ranks and half at
    logarithmically spaced impostor ranks, so the low-FMR end of the curve keeps its detail.
    """
    g = as_scores(genuine, "genuine scores")
    i = as_scores(impostor, "impostor scores")
    gf, imf = g.values[np.isfinite(g.values)], i.values[np.isfinite(i.values)]
    if max_points is None:
        thresholds = np.unique(np.concatenate((gf, imf)))
    else:
        half = max(2, max_points // 2)
        g_ranks = (
            np.unique(np.linspace(0, gf.size - 1, half).round().astype(np.int64)) if gf.size else np.array([], np.int64)
        )
        i_ranks = (
            np.unique(np.geomspace(1, imf.size, half).round().astype(np.int64) - 1)
            if imf.size
            else np.array([], np.int64)
        )
        thresholds = np.unique(np.concatenate((gf[g_ranks], imf[i_ranks])))
    return DetCurve(thresholds, fmr(i, thresholds), fnmr(g, thresholds))


@dataclass(frozen=True)
class EqualErrorRate:
    """The EER as FVC2000 defines it: the midpoint of the interval [low, high] where the curves cross."""

    rate: float
    low: float
    high: float
    threshold: float


def _last_index(n: int, predicate: Any) -> int:
    """Largest i in [0, n) with predicate(i) true, for a predicate true then false; -1 if none."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if predicate(mid):
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


def equal_error_rate(genuine: Scores | npt.ArrayLike, impostor: Scores | npt.ArrayLike) -> EqualErrorRate:
    """Where FMR (rising with the threshold) meets FNMR (falling).

    Candidate thresholds are -inf and every finite score. ``t1`` is the largest with FMR <= FNMR,
    ``t2`` the smallest with FMR >= FNMR. If the rates are equal at a threshold, that is the EER;
    otherwise the interval is taken at whichever of t1, t2 has the smaller FMR + FNMR, and the EER
    is its midpoint (Maio et al., FVC2000). Binary searches over the sorted scores: no full sweep.
    """
    g = as_scores(genuine, "genuine scores")
    i = as_scores(impostor, "impostor scores")
    if g.n == 0 or i.n == 0:
        raise ValueError("the EER needs both genuine and impostor scores")

    def diff(t: float) -> float:  # FMR - FNMR, non-decreasing in t
        return float(fmr(i, t)[0] - fnmr(g, t)[0])

    candidates = [-math.inf]
    for values in (g.values, i.values):
        finite = values[: int(np.searchsorted(values, math.inf, side="left"))]
        k = _last_index(finite.size, lambda j, v=finite: diff(float(v[j])) <= 0.0)
        for j in (k, k + 1):
            if 0 <= j < finite.size:
                candidates.append(float(finite[j]))
    below = [t for t in candidates if diff(t) <= 0.0]
    above = [t for t in candidates if diff(t) >= 0.0]
    t1 = max(below)
    r1 = (float(fmr(i, t1)[0]), float(fnmr(g, t1)[0]))
    if r1[0] == r1[1]:
        return EqualErrorRate(r1[0], r1[0], r1[0], t1)
    if not above:
        low, high = sorted(r1)
        return EqualErrorRate((low + high) / 2.0, low, high, t1)
    t2 = min(above)
    r2 = (float(fmr(i, t2)[0]), float(fnmr(g, t2)[0]))
    if sum(r1) <= sum(r2):
        low, high, t = r1[0], r1[1], t1
    else:
        low, high, t = r2[1], r2[0], t2
    return EqualErrorRate((low + high) / 2.0, low, high, t)


def threshold_at_fmr(impostor: Scores | npt.ArrayLike, target: float) -> float:
    """The largest threshold whose FMR on these scores is at most ``target``.

    With ``k = floor(target * n)`` comparisons allowed to match, any threshold below the (k+1)-th
    smallest score ``v`` qualifies; the answer is the midpoint between ``v`` and the largest score
    below it (robust to rounding), or the float just below ``v`` when no score is below it. When
    every score may match, it is the largest finite score. Works the same for FPIR on non-mated
    1:N searches.
    """
    i = as_scores(impostor, "impostor scores")
    if not 0.0 <= target <= 1.0 or math.isnan(target):
        raise ValueError(f"target rate must be between 0 and 1, got {target}")
    if i.n == 0:
        raise ValueError("no scores to choose a threshold from")
    allowed = math.floor(target * i.n + 1e-9)
    values = i.values
    if allowed >= i.n or not math.isfinite(values[allowed]):
        finite = values[np.isfinite(values)]
        return float(finite[-1]) if finite.size else math.inf
    v = float(values[allowed])
    first_equal = int(np.searchsorted(values, v, side="left"))
    if first_equal == 0:
        return float(np.nextafter(v, -math.inf))
    lower = float(values[first_equal - 1])
    mid = lower + (v - lower) / 2.0
    return mid if mid < v else lower


# ---------------------------------------------------------------------------------------------
# Identification (1:N), NIST FRTE definitions
# ---------------------------------------------------------------------------------------------


def mate_ranks(distances: npt.ArrayLike, mate_column: npt.ArrayLike) -> IntArray:
    """1-based rank of each probe's mate in its row of probe x gallery distances (ties count against the mate).

    ``mate_column`` -1 means the mate is not enrolled; a row of +inf is a probe with no template. Both give
    ``NO_RANK``.
    """
    d = np.asarray(distances, dtype=np.float64)
    m = np.asarray(mate_column, dtype=np.int64)
    if d.ndim != 2 or m.shape != (d.shape[0],):
        raise ValueError("distances must be (probes, gallery) and mate_column (probes,)")
    has_mate = m >= 0
    mate_d = np.full(d.shape[0], np.inf)
    mate_d[has_mate] = d[np.flatnonzero(has_mate), m[has_mate]]
    ranks: IntArray = np.count_nonzero(d <= mate_d[:, None], axis=1).astype(np.int64)
    ranks[~has_mate | ~np.isfinite(mate_d)] = NO_RANK
    return ranks


def nonmated_top_distance(distances: npt.ArrayLike, mate_column: npt.ArrayLike) -> FloatArray:
    """Best (smallest) distance per row once the mate is removed: the top candidate of a non-mated search."""
    d = np.array(distances, dtype=np.float64)  # a copy: the mate column is blanked
    m = np.asarray(mate_column, dtype=np.int64)
    rows = np.flatnonzero(m >= 0)
    d[rows, m[rows]] = np.inf
    return d.min(axis=1) if d.shape[1] else np.full(d.shape[0], np.inf)


def cmc(ranks: npt.ArrayLike, max_rank: int = 50) -> FloatArray:
    """Cumulative match characteristic: share of mated searches with the mate at rank <= r, for r = 1..max_rank."""
    r = np.asarray(ranks, dtype=np.int64)
    if r.size == 0:
        raise ValueError("no mated searches")
    counts = np.bincount(np.minimum(r, max_rank + 1) - 1, minlength=max_rank + 1)[:max_rank]
    hits: FloatArray = np.cumsum(counts) / float(r.size)
    return hits


def fpir(nonmated_top: Scores | npt.ArrayLike, thresholds: npt.ArrayLike) -> FloatArray:
    """False-positive identification rate: non-mated searches returning any candidate at or below ``t``."""
    return np.atleast_1d(as_scores(nonmated_top, "non-mated search scores").fraction_at_or_below(thresholds))


def fnir(
    mate_distance: npt.ArrayLike, ranks: npt.ArrayLike, thresholds: npt.ArrayLike, max_rank: int = 50
) -> FloatArray:
    """False-negative identification rate: mated searches whose mate is not at rank <= max_rank with distance <= t."""
    d = _score_array(mate_distance, "mate distances")
    r = np.asarray(ranks, dtype=np.int64)
    if r.shape != d.shape or d.size == 0:
        raise ValueError("mate_distance and ranks must be 1-D, non-empty, of equal length")
    on_list = Scores(d[r <= max_rank])
    return 1.0 - np.atleast_1d(on_list.at_or_below(thresholds) / float(d.size))


@dataclass(frozen=True)
class IdentificationPoint:
    """FNIR at the threshold where FPIR reaches a target, for candidate lists of ``max_rank``."""

    target_fpir: float
    threshold: float
    fpir: Proportion
    fnir: Proportion
    max_rank: int

    def to_json(self) -> dict[str, Any]:
        return {
            "target_fpir": self.target_fpir,
            "threshold": self.threshold,
            "fpir": self.fpir.to_json(),
            "fnir": self.fnir.to_json(),
            "max_rank": self.max_rank,
        }


def fnir_at_fpir(
    mate_distance: npt.ArrayLike,
    ranks: npt.ArrayLike,
    nonmated_top: npt.ArrayLike,
    target_fpir: float,
    *,
    max_rank: int = 50,
    confidence: float = 0.95,
) -> IdentificationPoint:
    """Choose the threshold on the non-mated searches (FPIR <= target), then measure FNIR there (Wilson intervals)."""
    nonmated = as_scores(nonmated_top, "non-mated search scores")
    threshold = threshold_at_fmr(nonmated, target_fpir)
    false_positives = int(nonmated.at_or_below(threshold))
    d = _score_array(mate_distance, "mate distances")
    r = np.asarray(ranks, dtype=np.int64)
    misses = int(d.size - np.count_nonzero((r <= max_rank) & (d <= threshold)))
    return IdentificationPoint(
        target_fpir,
        threshold,
        wilson(false_positives, nonmated.n, confidence),
        wilson(misses, int(d.size), confidence),
        max_rank,
    )


# ---------------------------------------------------------------------------------------------
# Group-wise figures (ISO/IEC 19795-10 style, NIST IR 8280 ratios)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeRule:
    """Below these sizes a group's figure is "too small for a stable figure", not a number.

    Subjects matter because one person's comparisons are not independent; comparisons matter because
    a rate needs room for errors to appear. ``for_rate`` applies Doddington's "rule of 30": enough
    comparisons that 30 errors are expected at a reference rate.
    """

    min_subjects: int = 30
    min_comparisons: int = 1

    @classmethod
    def for_rate(cls, reference_rate: float, min_subjects: int = 30, expected_errors: int = 30) -> SizeRule:
        rate = reference_rate if reference_rate > 0 else 1e-9
        return cls(min_subjects, max(1, math.ceil(expected_errors / rate)))

    def problem(self, subjects: int, comparisons: int) -> str | None:
        if subjects < self.min_subjects:
            return f"too small for a stable figure ({subjects} people; needs {self.min_subjects})"
        if comparisons < self.min_comparisons:
            return f"too small for a stable figure ({comparisons:,} comparisons; needs {self.min_comparisons:,})"
        return None


def _group_labels(subject_group: Sequence[str | None]) -> tuple[list[str], IntArray]:
    """Sorted group names and each subject's group index (-1 for unlabelled)."""
    names = sorted({g for g in subject_group if g})
    index = {g: k for k, g in enumerate(names)}
    return names, np.array([index[g] if g else -1 for g in subject_group], dtype=np.int64)


def group_error_rates(
    errors: npt.ArrayLike,
    subject: npt.ArrayLike,
    subject_group: Sequence[str | None],
    rule: SizeRule,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[GroupFigure]:
    """Per-group error rate over trials that each belong to one person (FNMR, FNIR), subject-bootstrap intervals.

    ``subject`` indexes ``subject_group``; people with no group (None or "") are left out.
    """
    e = np.asarray(errors, dtype=np.bool_)
    s = np.asarray(subject, dtype=np.int64)
    names, group_of = _group_labels(subject_group)
    out: list[GroupFigure] = []
    for k, name in enumerate(names):
        in_group = group_of[s] == k
        subjects = int(np.unique(s[in_group]).size)
        trials, n_err = int(in_group.sum()), int(e[in_group].sum())
        problem = rule.problem(subjects, trials)
        proportion = None
        if problem is None:
            low, high = bootstrap_error_interval(
                e[in_group], s[in_group], n_boot=n_boot, confidence=confidence, seed=seed + k
            )
            proportion = Proportion(n_err, trials, low, high, _bootstrap_method(confidence, n_boot))
        out.append(GroupFigure(name, subjects, trials, n_err, proportion, problem))
    return out


@dataclass(frozen=True)
class GroupFmr:
    """Impostor figures by group: within a group (both people in it) and across each pair of groups."""

    within: list[GroupFigure]
    cross: list[GroupFigure]

    def to_json(self) -> dict[str, Any]:
        return {"within": [f.to_json() for f in self.within], "cross": [f.to_json() for f in self.cross]}


def group_fmr(
    impostor_distance: npt.ArrayLike,
    impostor_a: npt.ArrayLike,
    impostor_b: npt.ArrayLike,
    images_per_subject: npt.ArrayLike,
    subject_group: Sequence[str | None],
    threshold: float,
    rule: SizeRule,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> GroupFmr:
    """FMR at ``threshold`` within each group and across each pair of groups, with subject-bootstrap intervals.

    Impostor comparisons are exhaustive (every image of a person against every image of every other
    person); the arrays must hold every comparison at or below ``threshold``, and the number of
    comparisons per group comes from ``images_per_subject``. Within-group impostors are the ones that
    drive false matches (people who look alike share demographics), so both are reported.
    """
    d = _score_array(impostor_distance, "impostor distances")
    hit = d <= threshold
    a = np.asarray(impostor_a, dtype=np.int64)[hit]
    b = np.asarray(impostor_b, dtype=np.int64)[hit]
    sizes = np.asarray(images_per_subject, dtype=np.int64)
    names, group_of = _group_labels(subject_group)
    ga, gb = group_of[a], group_of[b]
    within: list[GroupFigure] = []
    cross: list[GroupFigure] = []
    for k, name in enumerate(names):
        members = np.flatnonzero(group_of == k)
        local = np.full(sizes.size, -1, dtype=np.int64)
        local[members] = np.arange(members.size)
        sel = (ga == k) & (gb == k)
        trials = cross_pair_count(sizes[members])
        problem = rule.problem(int(members.size), trials)
        proportion = None
        if problem is None:
            low, high = bootstrap_fmr_interval(
                local[a[sel]], local[b[sel]], sizes[members], n_boot=n_boot, confidence=confidence, seed=seed + k
            )
            proportion = Proportion(int(sel.sum()), trials, low, high, _bootstrap_method(confidence, n_boot))
        within.append(GroupFigure(name, int(members.size), trials, int(sel.sum()), proportion, problem))
    for k in range(len(names)):
        for h in range(k + 1, len(names)):
            mk, mh = np.flatnonzero(group_of == k), np.flatnonzero(group_of == h)
            local = np.full(sizes.size, -1, dtype=np.int64)
            local[mk] = np.arange(mk.size)
            local[mh] = np.arange(mh.size)
            forward, backward = (ga == k) & (gb == h), (ga == h) & (gb == k)
            first = np.concatenate((local[a[forward]], local[b[backward]]))
            second = np.concatenate((local[b[forward]], local[a[backward]]))
            trials = int(sizes[mk].sum()) * int(sizes[mh].sum())
            events = int(first.size)
            problem = rule.problem(min(int(mk.size), int(mh.size)), trials)
            proportion = None
            if problem is None:
                low, high = bootstrap_fmr_interval(
                    first,
                    second,
                    sizes[mk],
                    images_per_subject_b=sizes[mh],
                    n_boot=n_boot,
                    confidence=confidence,
                    seed=seed + 1000 + k * len(names) + h,
                )
                proportion = Proportion(events, trials, low, high, _bootstrap_method(confidence, n_boot))
            label = f"{names[k]} x {names[h]}"
            cross.append(GroupFigure(label, int(mk.size + mh.size), trials, events, proportion, problem))
    return GroupFmr(within, cross)
