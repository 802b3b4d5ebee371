"""Fitting the label-free score normalisers of ``engine.scoring.normalisation`` and measuring them on held-out people.

Both methods start from k-means clusters of the DERIVATION people's templates (scikit-learn, the
``eval`` extra; the run time only finds the nearest centre with numpy):

- fair score normalisation (Terhörst et al., Pattern Recognition Letters 2020): the global threshold
  at the target FMR over every derivation impostor pair, and each cluster's threshold at the same
  FMR over the impostor pairs with at least one template in the cluster; a pair's distance moves by
  the mean of its two clusters' offsets (``fit_fsn``).
- FairCal (Salvador et al., ICLR 2022): a beta calibration (Kull et al.) per cluster, fitted on the
  genuine and impostor pairs with at least one template in the cluster; a pair's probability is the
  two clusters' calibrated probabilities averaged with weights proportional to the clusters' numbers
  of calibration pairs (``fit_faircal``).

Clusters holding fewer than ``MIN_PEOPLE_PER_CLUSTER`` different people are dissolved before fitting
(their templates go to the next nearest centre), so no centre stands for one person (LFW has one
person with 530 images).

No demographic label enters any fit. Hyper-parameters are chosen on the derivation people only
(``choose_k``): the derivation people are split again by fold, candidates are fitted on the first
part and judged on the second by a label-free yardstick (the spread of within-cluster FMR over a fixed
coarse k-means partition of those held-out templates), subject to FNMR no worse than raw.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.errors import RfrError
from engine.evaluation.equity import PairSet, threshold_for_target
from engine.evaluation.metrics import threshold_at_fmr
from engine.evaluation.protocol import HalfImages
from engine.scoring.calibration import MIN_PEOPLE
from engine.scoring.normalisation import (
    MIN_PEOPLE_PER_CLUSTER,
    Normaliser,
    beta_log_odds,
    similarity,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PUBLISHED_K = 100
"""The number of clusters both papers report their main results with."""
CANDIDATE_KS = (25, 50, 100, 150)
REFERENCE_GROUPS = 8
"""Coarse k-means groups of the held-out derivation templates: the label-free yardstick of ``choose_k``."""
BETA_BIN = 1e-5
"""Distances are pooled into bins this wide before a beta calibration is fitted (weighted logistic regression)."""
KMEANS_RUNS = 10


class NormalisationError(RfrError):
    """A normaliser cannot be fitted on these templates (too few people or pairs for the clusters asked for)."""


# ---------------------------------------------------------------------------------------------
# Every comparison of one half, with the rows of both templates
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HalfPairs:
    """Every comparison of one half of the protocol by row (in memory only: the templates are biometric).

    Genuine pairs are the balanced ones (at most ``MAX_IMAGES_PER_PERSON`` images per person), impostor
    pairs every pair of images of two different people except two names of one person, as
    ``engine.evaluation.protocol`` defines them; ``x`` holds the rows' templates.
    """

    name: str
    x: FloatArray
    owner: IntArray
    people: tuple[str, ...]
    same_person: frozenset[tuple[int, int]]
    gen_i: npt.NDArray[np.int32]
    gen_j: npt.NDArray[np.int32]
    gen_d: FloatArray
    imp_i: npt.NDArray[np.int32]
    imp_j: npt.NDArray[np.int32]
    imp_d: FloatArray
    seconds: float = 0.0

    @classmethod
    def from_half(cls, vectors: npt.NDArray[np.floating], half: HalfImages, chunk: int = 512) -> HalfPairs:
        start = time.perf_counter()
        x = np.asarray(vectors[half.rows], dtype=np.float64)
        owner = half.owner
        balanced = half.balanced
        n = x.shape[0]
        forbid = np.full(len(half.people), -1, dtype=np.int64)
        for a, b in half.same_person:
            forbid[a], forbid[b] = b, a
        sq = np.einsum("ij,ij->i", x, x)
        gi: list[npt.NDArray[np.int32]] = []
        gj: list[npt.NDArray[np.int32]] = []
        gd: list[FloatArray] = []
        ii: list[npt.NDArray[np.int32]] = []
        ij: list[npt.NDArray[np.int32]] = []
        idd: list[FloatArray] = []
        for r0 in range(0, n, chunk):
            r1 = min(n, r0 + chunk)
            d2 = sq[r0:r1, None] + sq[None, r0:] - 2.0 * (x[r0:r1] @ x[r0:].T)
            upper = np.arange(r0, n)[None, :] > np.arange(r0, r1)[:, None]
            same = owner[r0:r1, None] == owner[None, r0:]
            alias = forbid[owner[r0:r1]][:, None] == owner[None, r0:]
            rows, cols = np.nonzero(upper & same & balanced[r0:r1, None] & balanced[None, r0:])
            gi.append((r0 + rows).astype(np.int32))
            gj.append((r0 + cols).astype(np.int32))
            gd.append(np.sqrt(np.maximum(d2[rows, cols], 0.0)))
            rows, cols = np.nonzero(upper & ~same & ~alias)
            ii.append((r0 + rows).astype(np.int32))
            ij.append((r0 + cols).astype(np.int32))
            idd.append(np.sqrt(np.maximum(d2[rows, cols], 0.0)))
        return cls(
            name=half.name,
            x=x,
            owner=owner,
            people=half.people,
            same_person=half.same_person,
            gen_i=np.concatenate(gi),
            gen_j=np.concatenate(gj),
            gen_d=np.concatenate(gd),
            imp_i=np.concatenate(ii),
            imp_j=np.concatenate(ij),
            imp_d=np.concatenate(idd),
            seconds=time.perf_counter() - start,
        )

    @property
    def images_per_person(self) -> IntArray:
        out: IntArray = np.bincount(self.owner, minlength=len(self.people)).astype(np.int64)
        return out

    def pair_set(self, genuine: FloatArray, impostor: FloatArray, complete_to: float) -> PairSet:
        """These comparisons by person with the given (raw or normalised) distances, for ``equity``."""
        keep = impostor <= complete_to
        return PairSet(
            people=self.people,
            images=self.images_per_person,
            genuine_person=self.owner[self.gen_i],
            genuine_distance=genuine,
            impostor_a=self.owner[self.imp_i[keep]],
            impostor_b=self.owner[self.imp_j[keep]],
            impostor_distance=impostor[keep],
            complete_to=complete_to,
            same_person=self.same_person,
        )


# ---------------------------------------------------------------------------------------------
# Clusters
# ---------------------------------------------------------------------------------------------


def nearest(x: FloatArray, centres: FloatArray) -> IntArray:
    """Index of the nearest centre of each row (as ``Normaliser.clusters`` does)."""
    d2 = np.einsum("ij,ij->i", centres, centres)[None, :] - 2.0 * (x @ centres.T)
    out: IntArray = np.argmin(d2, axis=1).astype(np.int64)
    return out


def kmeans_centroids(
    x: FloatArray, owner: IntArray, k: int, *, seed: int, min_people: int = MIN_PEOPLE_PER_CLUSTER
) -> FloatArray:
    """k-means centres of the templates (scikit-learn), then clusters of fewer than ``min_people`` people dissolved.

    A dissolved cluster's templates go to their next nearest centre; the surviving centres are the
    means of their new members, so every centre averages at least ``min_people`` people.
    """
    try:
        from sklearn.cluster import KMeans
    except ImportError:
        raise NormalisationError(
            "scikit-learn is needed to fit the normaliser's clusters: install the evaluation extra "
            "(.venv/bin/pip install -e '.[eval]')"
        ) from None
    people = int(np.unique(owner).size)
    if k < 1 or k * min_people > people:
        raise NormalisationError(
            f"{k} clusters of at least {min_people} people need {k * min_people} people; these templates hold {people}"
        )
    fitted = KMeans(n_clusters=k, n_init=KMEANS_RUNS, random_state=seed).fit(x)
    centres = np.asarray(fitted.cluster_centers_, dtype=np.float64)
    while True:
        label = nearest(x, centres)
        counts = np.array([np.unique(owner[label == c]).size for c in range(centres.shape[0])])
        if counts.min() >= min_people:
            break
        keep = np.ones(centres.shape[0], dtype=bool)
        keep[int(np.argmin(counts))] = False  # one at a time: the next-nearest reassignment may rescue others
        centres = centres[keep]
        label = nearest(x, centres)
        centres = np.vstack([x[label == c].mean(axis=0) for c in range(centres.shape[0])])
    return centres


def _cluster_pairs(ca: IntArray, cb: IntArray, k: int) -> list[IntArray]:
    """For each cluster, the indices of the pairs with at least one template in it (each pair once)."""
    order_a = np.argsort(ca, kind="stable")
    order_b = np.argsort(cb, kind="stable")
    bounds_a = np.searchsorted(ca[order_a], np.arange(k + 1))
    bounds_b = np.searchsorted(cb[order_b], np.arange(k + 1))
    out: list[IntArray] = []
    for c in range(k):
        first = order_a[bounds_a[c] : bounds_a[c + 1]]
        second = order_b[bounds_b[c] : bounds_b[c + 1]]
        second = second[ca[second] != c]  # pairs with both templates in c are already in ``first``
        out.append(np.concatenate([first, second]))
    return out


# ---------------------------------------------------------------------------------------------
# Fair score normalisation
# ---------------------------------------------------------------------------------------------


def fit_fsn(
    pairs: HalfPairs, centres: FloatArray, target_fmr: float, *, model_id: str, model_sha256: str, created_by: str
) -> Normaliser:
    """Fair score normalisation on these pairs: per-cluster thresholds at ``target_fmr`` against the global one."""
    k = centres.shape[0]
    cl = nearest(pairs.x, centres)
    ca, cb = cl[pairs.imp_i], cl[pairs.imp_j]
    global_thr = threshold_at_fmr(pairs.imp_d, target_fmr)
    shift = np.empty(k)
    for c, idx in enumerate(_cluster_pairs(ca, cb, k)):
        if idx.size * target_fmr < 1:
            raise NormalisationError(
                f"cluster {c} has {idx.size} impostor pairs: too few to set a threshold at {target_fmr:g}"
            )
        shift[c] = global_thr - threshold_at_fmr(pairs.imp_d[idx], target_fmr)
    return Normaliser(
        method="fsn",
        model_id=model_id,
        model_sha256=model_sha256,
        fitted_on=_fitted_on(pairs, k),
        created_by=created_by,
        target_fmr=float(target_fmr),
        centroids=tuple(tuple(float(v) for v in row) for row in centres),
        shift=tuple(float(s) for s in shift),
    )


def _fitted_on(pairs: HalfPairs, k: int) -> str:
    return (
        f"{pairs.name} people: {len(pairs.people):,} people, {pairs.x.shape[0]:,} templates, {pairs.imp_d.size:,} "
        f"impostor and {pairs.gen_d.size:,} genuine pairs; {k} k-means clusters"
    )


# ---------------------------------------------------------------------------------------------
# FairCal
# ---------------------------------------------------------------------------------------------


def _binned(distance: FloatArray, same: BoolArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Distances pooled into ``BETA_BIN`` bins: (bin distance, genuine count, impostor count)."""
    key = np.rint(distance / BETA_BIN).astype(np.int64)
    keys, inverse = np.unique(key, return_inverse=True)
    inverse = inverse.reshape(-1)
    pos = np.bincount(inverse, weights=same.astype(np.float64), minlength=keys.size)
    total = np.bincount(inverse, minlength=keys.size).astype(np.float64)
    centre: FloatArray = keys.astype(np.float64) * BETA_BIN
    return centre, pos.astype(np.float64), total - pos


def _logistic(features: FloatArray, pos: FloatArray, neg: FloatArray) -> FloatArray:
    """Weighted logistic regression by Newton's method (a tiny ridge keeps a separable bin set finite)."""
    w_total = pos + neg
    prior = float(pos.sum()) / float(w_total.sum())
    beta = np.zeros(features.shape[1])
    beta[-1] = math.log(prior / (1.0 - prior))

    def loss(b: FloatArray) -> float:
        z = features @ b
        return float(np.sum(w_total * np.logaddexp(0.0, z) - pos * z)) + 1e-6 * float(b @ b)

    current = loss(beta)
    for _ in range(200):
        z = features @ beta
        p = 0.5 * (1.0 + np.tanh(0.5 * z))
        grad = features.T @ (w_total * p - pos) + 2e-6 * beta
        hess = (features * (w_total * p * (1.0 - p))[:, None]).T @ features + 2e-6 * np.eye(beta.size)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while True:  # backtracking: Newton's step is not always a descent step far from the optimum
            trial = beta - t * step
            value = loss(trial)
            if value <= current or t < 1e-8:
                break
            t *= 0.5
        beta, moved, current = trial, float(np.max(np.abs(t * step))), value
        if moved < 1e-10:
            break
    return beta


def fit_beta(distance: FloatArray, same: BoolArray) -> tuple[float, float, float]:
    """Beta calibration (Kull et al. 2017) of "same person" on similarity ``1 - d/2``: parameters (a, b, c).

    Fitted as a logistic regression on ``ln s`` and ``-ln(1 - s)``; a parameter that comes out negative
    is fixed at 0 and the rest refitted, so the map never decreases with similarity.
    """
    if not same.any() or same.all():
        raise NormalisationError("a calibration map needs both genuine and impostor pairs")
    d, pos, neg = _binned(distance, same)
    s = similarity(d)
    ln_s, ln_1s = np.log(s), -np.log1p(-s)
    one = np.ones_like(s)
    a, b, c = _logistic(np.column_stack([ln_s, ln_1s, one]), pos, neg)
    if a < 0 and b < 0:
        return 0.0, 0.0, float(_logistic(one[:, None], pos, neg)[0])
    if a < 0:
        b, c = _logistic(np.column_stack([ln_1s, one]), pos, neg)
        return 0.0, float(max(b, 0.0)), float(c)
    if b < 0:
        a, c = _logistic(np.column_stack([ln_s, one]), pos, neg)
        return float(max(a, 0.0)), 0.0, float(c)
    return float(a), float(b), float(c)


def fit_faircal(
    pairs: HalfPairs, centres: FloatArray, target_fmr: float, *, model_id: str, model_sha256: str, created_by: str
) -> Normaliser:
    """FairCal on these pairs: a beta calibration per cluster, and the pooled one to express results as distances."""
    k = centres.shape[0]
    cl = nearest(pairs.x, centres)
    d = np.concatenate([pairs.gen_d, pairs.imp_d])
    same = np.concatenate([np.ones(pairs.gen_d.size, dtype=bool), np.zeros(pairs.imp_d.size, dtype=bool)])
    ca = cl[np.concatenate([pairs.gen_i, pairs.imp_i])]
    cb = cl[np.concatenate([pairs.gen_j, pairs.imp_j])]
    maps: list[tuple[float, float, float]] = []
    weight: list[float] = []
    for c, idx in enumerate(_cluster_pairs(ca, cb, k)):
        if not same[idx].any():
            raise NormalisationError(f"cluster {c} has no genuine pair to calibrate on; fit fewer clusters")
        maps.append(fit_beta(d[idx], same[idx]))
        weight.append(float(idx.size))
    pooled = fit_beta(d, same)
    if pooled[0] + pooled[1] <= 0:
        raise NormalisationError("the pooled calibration does not depend on the distance: check the templates")
    return Normaliser(
        method="faircal",
        model_id=model_id,
        model_sha256=model_sha256,
        fitted_on=_fitted_on(pairs, k),
        created_by=created_by,
        target_fmr=float(target_fmr),
        centroids=tuple(tuple(float(v) for v in row) for row in centres),
        weight=tuple(weight),
        maps=tuple(maps),
        pooled_map=pooled,
    )


FITTERS: dict[str, Callable[..., Normaliser]] = {"fsn": fit_fsn, "faircal": fit_faircal}


# ---------------------------------------------------------------------------------------------
# Normalised distances of a half
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """One method's distances over a half: every genuine pair, and the impostor pairs up to ``complete_to``.

    ``impostor`` has one entry per impostor pair, +inf above ``complete_to`` (FairCal's inverse map is
    only evaluated below it: no rate is read above it).
    """

    method: str
    genuine: FloatArray
    impostor: FloatArray
    complete_to: float


def score(pairs: HalfPairs, normaliser: Normaliser | None, complete_to: float, chunk: int = 2_000_000) -> Scored:
    """Raw (``normaliser`` None) or normalised distances of every pair of the half, by the run time's own code."""
    if normaliser is None:
        imp = np.where(pairs.imp_d <= complete_to, pairs.imp_d, np.inf)
        return Scored("raw", pairs.gen_d, imp, complete_to)
    cl = normaliser.clusters(pairs.x)
    gen = normaliser.normalise(pairs.gen_d, cl[pairs.gen_i], cl[pairs.gen_j])
    imp = np.full(pairs.imp_d.size, np.inf)
    for s in range(0, pairs.imp_d.size, chunk):
        e = min(pairs.imp_d.size, s + chunk)
        a, b, d = cl[pairs.imp_i[s:e]], cl[pairs.imp_j[s:e]], pairs.imp_d[s:e]
        if normaliser.method == "faircal":
            # The normalised distance is at most complete_to exactly when the weighted probability is at least
            # the pooled map's at complete_to, so only those pairs need the (bisection) inverse.
            near = (
                _faircal_log_odds(normaliser, d, a, b) >= beta_log_odds(normaliser.pooled_map, [complete_to])[0] - 1e-9
            )
            idx = np.flatnonzero(near)
            values = normaliser.normalise(d[idx], a[idx], b[idx])
            out = np.full(e - s, np.inf)
            out[idx] = values
        else:
            out = normaliser.normalise(d, a, b)
        imp[s:e] = np.where(out <= complete_to, out, np.inf)
    return Scored(normaliser.method, gen, imp, complete_to)


def _faircal_log_odds(normaliser: Normaliser, d: FloatArray, a: IntArray, b: IntArray) -> FloatArray:
    maps = np.asarray(normaliser.maps)
    weight = np.asarray(normaliser.weight)
    s = similarity(d)
    ls, l1s = np.log(s), np.log1p(-s)

    def prob(k: IntArray) -> FloatArray:
        z = maps[k, 0] * ls - maps[k, 1] * l1s + maps[k, 2]
        out: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * z))
        return out

    p = (weight[a] * prob(a) + weight[b] * prob(b)) / (weight[a] + weight[b])
    p = np.clip(p, 1e-300, 1.0 - 1e-16)
    out: FloatArray = np.log(p) - np.log1p(-p)
    return out


def operating_threshold(pairs: HalfPairs, scored: Scored, target_fmr: float) -> float:
    """The threshold the calibration's rule gives on these (derivation) pairs: the largest 0.001 step with at
    least 30 false matches whose exact 95 % upper bound on the FMR is at or below the target."""
    trials = pairs.imp_d.size
    finite = scored.impostor[np.isfinite(scored.impostor)]
    thr, _, _, reason = threshold_for_target(finite, trials, target_fmr, complete_to=scored.complete_to)
    if thr is None:
        raise NormalisationError(f"no {scored.method} operating threshold at FMR {target_fmr:g}: {reason}")
    return thr


# ---------------------------------------------------------------------------------------------
# Choosing k on the derivation people alone, without labels
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One (method, k) judged on the held-out derivation people."""

    method: str
    k: int
    clusters: int  # after clusters of too few people were dissolved
    threshold: float
    fnmr: float
    pooled_fmr: float
    spread: float | None  # highest over lowest within-group FMR over the reference groups with 30 false matches
    groups_with_figure: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class Choice:
    """The k chosen for each method, and every candidate's figures."""

    chosen: dict[str, int]
    candidates: list[Candidate]
    fit_people: int
    check_people: int
    reference_groups: int
    rule: str
    raw: Candidate
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen,
            "candidates": [c.to_json() for c in self.candidates],
            "raw": self.raw.to_json(),
            "fit_people": self.fit_people,
            "check_people": self.check_people,
            "reference_groups": self.reference_groups,
            "rule": self.rule,
            "notes": self.notes,
        }


MIN_FALSE_MATCHES = 30


def _spread(
    pairs: HalfPairs, scored: Scored, threshold: float, group: IntArray, groups: int
) -> tuple[float | None, int]:
    """Highest over lowest within-group impostor FMR at ``threshold`` over the groups of rows that hold at least
    ``MIN_PEOPLE`` people and ``MIN_FALSE_MATCHES`` false matches (the rule of 30, as for demographic groups).

    k-means on images can put one person with hundreds of images in a group of their own; such a group's
    "impostors" are a handful of pairs of people, not a population, so it is left out as a small group is.
    """
    hit = scored.impostor <= threshold
    ga, gb = group[pairs.imp_i], group[pairs.imp_j]
    within = ga == gb
    events = np.bincount(ga[within & hit], minlength=groups)
    trials = np.bincount(ga[within], minlength=groups)
    people = np.array([np.unique(pairs.owner[group == g]).size for g in range(groups)])
    ok = (events >= MIN_FALSE_MATCHES) & (trials > 0) & (people >= MIN_PEOPLE)
    if ok.sum() < 2:
        return None, int(ok.sum())
    rates = events[ok] / trials[ok]
    return float(rates.max() / rates.min()), int(ok.sum())


def choose_k(
    fit: HalfPairs,
    check: HalfPairs,
    target_fmr: float,
    *,
    methods: Sequence[str] = ("fsn", "faircal"),
    ks: Sequence[int] = CANDIDATE_KS,
    seed: int = 0,
    model_id: str = "",
    model_sha256: str = "0" * 64,
    log: Callable[[str], None] = lambda _: None,
) -> Choice:
    """Choose each method's k on derivation people only, with no demographic label.

    Each candidate is fitted on ``fit`` and its operating threshold derived there; on ``check`` (other
    derivation people) its pooled FNMR is measured and, as the yardstick, the highest over lowest
    within-group FMR over ``REFERENCE_GROUPS`` k-means groups of the ``check`` templates (label-free
    stand-ins for demographic groups, the same for every candidate). The chosen k has the smallest
    spread among the candidates whose FNMR is no worse than raw; if none is, the smallest spread.
    """
    from sklearn.cluster import KMeans

    reference = KMeans(n_clusters=REFERENCE_GROUPS, n_init=KMEANS_RUNS, random_state=seed).fit(check.x)
    group = np.asarray(reference.labels_, dtype=np.int64)
    complete_to = float(np.quantile(fit.imp_d, 0.02))  # far beyond any threshold at FMR 1e-3, for every method

    def judge(method: str, k: int, normaliser: Normaliser | None, started: float) -> Candidate:
        thr = operating_threshold(fit, score(fit, normaliser, complete_to), target_fmr)
        scored = score(check, normaliser, complete_to)
        fnmr = float(np.mean(~(scored.genuine <= thr)))
        fmr = float(np.count_nonzero(scored.impostor <= thr)) / check.imp_d.size
        spread, with_figure = _spread(check, scored, thr, group, REFERENCE_GROUPS)
        clusters = 0 if normaliser is None else normaliser.k
        out = Candidate(method, k, clusters, thr, fnmr, fmr, spread, with_figure, time.perf_counter() - started)
        log(
            f"  {method} k={k} ({clusters} clusters): threshold {thr:.3f}, FNMR {fnmr:.4f}, FMR {fmr:.2e}, "
            f"reference spread {spread if spread is None else round(spread, 2)}"
        )
        return out

    raw = judge("raw", 0, None, time.perf_counter())
    candidates: list[Candidate] = []
    chosen: dict[str, int] = {}
    notes: list[str] = []
    for method in methods:
        mine: list[Candidate] = []
        for k in ks:
            started = time.perf_counter()
            try:
                centres = kmeans_centroids(fit.x, fit.owner, k, seed=seed)
                normaliser = FITTERS[method](
                    fit, centres, target_fmr, model_id=model_id, model_sha256=model_sha256, created_by="choose_k"
                )
            except NormalisationError as exc:
                notes.append(f"{method} k={k}: not fitted ({exc.diagnostics()})")
                log(f"  {method} k={k}: {exc.diagnostics()}")
                continue
            mine.append(judge(method, k, normaliser, started))
        if not mine:
            raise NormalisationError(f"no candidate k could be fitted for {method}")
        usable = [c for c in mine if c.spread is not None]
        fair = [c for c in usable if c.fnmr <= raw.fnmr]
        pool = fair or usable or mine
        if not fair:
            notes.append(
                f"{method}: no candidate kept FNMR at or below raw on the check people; smallest spread chosen"
            )
        best = min(pool, key=lambda c: (math.inf if c.spread is None else c.spread, c.fnmr))
        chosen[method] = best.k
        candidates += mine
    rule = (
        f"fitted on {fit.name}, judged on {check.name}: smallest highest/lowest "
        f"within-group FMR over {REFERENCE_GROUPS} k-means groups of the judged templates (groups of {MIN_PEOPLE}+ "
        f"people with {MIN_FALSE_MATCHES}+ false matches), among candidates with pooled FNMR no worse than raw"
    )
    return Choice(chosen, candidates, len(fit.people), len(check.people), REFERENCE_GROUPS, rule, raw, notes)
