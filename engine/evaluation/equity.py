"""Equity across thresholds: error rates by demographic group, with subject-bootstrap intervals and the rule of 30.

For one set of people (the STATEMENT half of ``engine.evaluation.protocol``) and one label set (sex or
race group, hand or automatic labels), at every threshold of a sweep:

- FMR within each group (both people in it) and across each pair of groups;
- FNMR per group, from the balanced genuine pairs (at most ``MAX_IMAGES_PER_PERSON`` images each);
- any per-person error count (FPIR and FNIR of ``engine.evaluation.one_to_n``) by group;
- the highest-over-lowest group ratio (NIST IR 8280's differential) with an interval of its own.

Intervals come from one subject bootstrap per label set, stratified by group: each replicate redraws
the people of every group (with replacement, within the group), and every comparison of a drawn person
comes along as often as they were drawn. Because one replicate is shared by all groups and thresholds,
the ratio's interval is the percentile interval of the replicates' own highest/lowest ratios.

Statements follow the rule of 30 (Doddington): no rate is stated from fewer than ``MIN_ERRORS`` errors
or fewer than ``MIN_PEOPLE`` people; below that the text says "below 1 in N (the lowest this evaluation
can show)", where 1 in N is 30 errors in that many comparisons. Counts and intervals are kept either way
for anyone who wants to look.

``group_thresholds`` answers "what threshold would each group need to reach the policy's target?" on
the DERIVATION people, with the calibration's own rule (enough events, the exact upper bound at or
below the target), so that the figures stated at those thresholds are out of sample too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.errors import RfrError
from engine.evaluation.metrics import stratified_bootstrap_weights
from engine.evaluation.protocol import HalfImages
from engine.scoring.calibration import FLOOR_WORDS, MIN_PEOPLE, one_in
from engine.scoring.statistics import clopper_pearson_upper

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

MIN_ERRORS = 30
"""Rule of 30: no rate is stated from fewer errors than this (nor from fewer than ``MIN_PEOPLE`` people)."""
CONFIDENCE = 0.95
SWEEP = tuple(round(0.40 + 0.01 * k, 2) for k in range(23))
"""The default thresholds of the sweep: 0.40 to 0.62 in steps of 0.01 (the operating threshold is added)."""
GRID_STEP = 0.001
"""Grid of ``group_thresholds``, the calibration's own."""


class EquityError(RfrError):
    """Inputs to the equity evaluation do not fit together (a bug in the caller, or mismatched data)."""


# ---------------------------------------------------------------------------------------------
# Wording
# ---------------------------------------------------------------------------------------------


def rate_text(rate: float) -> str:
    """A rate readable at any size: "9.5 %" at 0.1 % and above, else "1 in 2,000" (``one_in``: rounded down)."""
    if rate <= 0:
        return "0"
    if rate >= 1e-3:
        return f"{100 * rate:.2g} %" if rate < 0.1 else f"{100 * rate:.0f} %"
    return f"1 in {one_in(rate)}"


def floor_text(trials: int, min_errors: int = MIN_ERRORS) -> str:
    """What can be said when fewer than ``min_errors`` errors were seen in ``trials`` comparisons.

    1 in N is ``min_errors`` errors in ``trials``: the smallest rate this evaluation can state. N is
    rounded down, so the claim is never stronger than the data; the words are the calibration's own.
    """
    if trials < min_errors:
        return f"no figure: {trials:,} comparisons cannot show {min_errors} errors"
    return f"below 1 in {one_in(min_errors / trials)} ({FLOOR_WORDS})"


# ---------------------------------------------------------------------------------------------
# Figures and ratios
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One error rate: ``errors`` of ``trials`` over ``people``, a subject-bootstrap interval, and what may be said."""

    errors: int
    trials: int
    people: int
    low: float | None
    high: float | None

    @property
    def rate(self) -> float | None:
        return self.errors / self.trials if self.trials else None

    @property
    def problem(self) -> str | None:
        """Why no rate is stated, or None when one is."""
        if self.trials == 0:
            return "no comparisons"
        if self.people < MIN_PEOPLE:
            return f"too few people for a figure ({self.people}; needs {MIN_PEOPLE})"
        if self.errors < MIN_ERRORS:
            return f"fewer than {MIN_ERRORS} errors ({self.errors})"
        return None

    @property
    def stated(self) -> bool:
        return self.problem is None

    def text(self) -> str:
        if self.trials == 0:
            return "no comparisons"
        if self.people < MIN_PEOPLE:
            return f"too few people for a figure ({self.people}; needs {MIN_PEOPLE})"
        if self.errors < MIN_ERRORS:
            return floor_text(self.trials)
        assert self.rate is not None
        return rate_text(self.rate)

    def interval_text(self) -> str:
        if not self.stated or self.low is None or self.high is None:
            return ""
        return f"{rate_text(self.low)} – {rate_text(self.high)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "errors": self.errors,
            "trials": self.trials,
            "people": self.people,
            "rate": self.rate,
            "low": self.low,
            "high": self.high,
            "stated": self.stated,
            "text": self.text(),
        }


def _times(x: float) -> str:
    """A ratio for reading: three significant figures, whole numbers with separators from 1,000."""
    return f"{x:,.0f}" if x >= 1000 else f"{x:.3g}"


@dataclass(frozen=True)
class Ratio:
    """Highest over lowest group rate at one threshold, over the groups whose rates are stated.

    Groups of fewer than ``MIN_PEOPLE`` people take no part. Among the rest, only groups with at least
    ``MIN_ERRORS`` errors have a stated rate, so only they are compared (``kind`` "stated", with a
    bootstrap interval). A group below the floor is named in ``below_floor``; when its floor lies under
    the lowest stated rate, its true rate is lower still, so the ratio counting it is more than
    ``at_least`` (the largest such bound). With one stated group, only that bound can be given (``kind``
    "at least"); with none, ``kind`` is "none". ``high`` None with a ``low`` means the interval is
    unbounded above (some replicates had a group with no errors).
    """

    kind: str
    value: float | None
    low: float | None
    high: float | None
    highest: str | None
    lowest: str | None
    groups: tuple[str, ...]
    note: str = ""
    below_floor: tuple[str, ...] = ()
    at_least: float | None = None
    at_least_lowest: str | None = None

    def text(self) -> str:
        bound = ""
        if self.at_least is not None:
            bound = f"more than {_times(self.at_least)} counting {self.at_least_lowest} (below the floor)"
        if self.kind == "at least" and self.at_least is not None:
            return f"more than {_times(self.at_least)} ({self.highest} over {self.at_least_lowest}, below the floor)"
        if self.kind != "stated" or self.value is None:
            return f"no ratio: {self.note}"
        upper = "unbounded" if self.high is None else _times(self.high)
        low = "n/a" if self.low is None else _times(self.low)
        text = f"{_times(self.value)} ({self.highest} over {self.lowest}; 95 % {low} – {upper})"
        return f"{text}; {bound}" if bound else text

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "highest": self.highest,
            "lowest": self.lowest,
            "groups": list(self.groups),
            "below_floor": list(self.below_floor),
            "at_least": self.at_least,
            "at_least_lowest": self.at_least_lowest,
            "note": self.note,
            "text": self.text(),
        }


def _interval(replicates: FloatArray, confidence: float) -> tuple[float | None, float | None]:
    """Percentile interval over replicates (NaN: a replicate with no trials, left out; +inf: unbounded)."""
    values = replicates[~np.isnan(replicates)]
    if values.size == 0:
        return None, None
    tail = (1.0 - confidence) / 2.0
    huge = np.finfo(np.float64).max
    low, high = np.quantile(np.minimum(values, huge), [tail, 1.0 - tail])
    return (float(low) if low < huge else None), (float(high) if high < huge else None)


def ratio(figures: Mapping[str, Figure], replicates: Mapping[str, FloatArray], confidence: float = CONFIDENCE) -> Ratio:
    """Highest over lowest stated rate among groups of at least ``MIN_PEOPLE`` people (see ``Ratio``).

    ``replicates[g]`` are group g's bootstrap rates (one per replicate, the same replicates for every
    group); each replicate's own highest/lowest over the stated groups gives the interval.
    """
    candidates = [g for g, f in figures.items() if f.people >= MIN_PEOPLE and f.trials > 0]
    if len(candidates) < 2:
        return Ratio("none", None, None, None, None, None, tuple(candidates), f"fewer than two groups of {MIN_PEOPLE}")
    stated = [g for g in candidates if figures[g].errors >= MIN_ERRORS]
    floored = tuple(g for g in candidates if g not in stated)
    if not stated:
        return Ratio("none", None, None, None, None, None, tuple(candidates), f"no group has {MIN_ERRORS} errors")
    rates = {g: figures[g].errors / figures[g].trials for g in stated}
    hi = max(stated, key=lambda g: rates[g])
    lo = min(stated, key=lambda g: rates[g])
    floors = {g: MIN_ERRORS / figures[g].trials for g in floored}
    under = [g for g in floored if floors[g] < rates[lo]]
    at_least, at_least_lowest = None, None
    if under:
        at_least_lowest = min(under, key=lambda g: floors[g])
        at_least = rates[hi] / floors[at_least_lowest]
    if len(stated) < 2:
        note = f"only {hi} has {MIN_ERRORS} errors"
        return Ratio("at least", None, None, None, hi, None, tuple(stated), note, floored, at_least, at_least_lowest)
    stack = np.vstack([replicates[g] for g in stated])
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = stack.max(axis=0) / stack.min(axis=0)
    reps[np.isnan(stack).any(axis=0)] = np.nan
    low, high = _interval(reps, confidence)
    value = rates[hi] / rates[lo]
    if at_least is not None and at_least <= value:
        at_least, at_least_lowest = None, None
    return Ratio("stated", value, low, high, hi, lo, tuple(stated), "", floored, at_least, at_least_lowest)


# ---------------------------------------------------------------------------------------------
# Comparisons by person
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairSet:
    """Comparisons among one set of people, by person: what every 1:1 group figure is computed from.

    ``images[p]``: person p's images with a template; impostor comparisons are every image against
    every image of every other person, except people in ``same_person`` (two names of one person).
    ``impostor_*`` hold every impostor comparison at or below ``complete_to`` (rates are exact up to
    there; the number of comparisons comes from ``images``). Genuine comparisons are the balanced ones.

    ``exhaustive`` False: the impostor comparisons are not every cross pair but exactly the ones listed
    (a force's demographically matched impostors), all of them, at any distance; the number of
    comparisons is then the number listed, and ``images`` is informational.
    """

    people: tuple[str, ...]
    images: IntArray
    genuine_person: IntArray
    genuine_distance: FloatArray
    impostor_a: IntArray
    impostor_b: IntArray
    impostor_distance: FloatArray
    complete_to: float
    same_person: frozenset[tuple[int, int]] = frozenset()
    exhaustive: bool = True

    def __post_init__(self) -> None:
        n = len(self.people)
        if self.images.shape != (n,) or self.genuine_person.shape != self.genuine_distance.shape:
            raise EquityError("PairSet: images must have one count per person; genuine arrays one entry per pair")
        if not (self.impostor_a.shape == self.impostor_b.shape == self.impostor_distance.shape):
            raise EquityError("PairSet: impostor arrays must have one entry per pair")
        if self.exhaustive and self.impostor_distance.size and float(self.impostor_distance.max()) > self.complete_to:
            raise EquityError("PairSet: an impostor distance lies above complete_to")
        for arr in (self.genuine_person, self.impostor_a, self.impostor_b):
            if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= n):
                raise EquityError("PairSet: a person index is out of range")

    @classmethod
    def from_half(
        cls, vectors: npt.NDArray[np.floating], half: HalfImages, complete_to: float, chunk: int = 512
    ) -> PairSet:
        """The half's balanced genuine pairs and its impostor pairs up to ``complete_to`` (the protocol's rules)."""
        x = np.asarray(vectors[half.rows], dtype=np.float64)
        owner = half.owner
        n_people = len(half.people)
        g_d, g_p = _genuine(x[half.balanced], owner[half.balanced])
        forbid = np.full(n_people, -1, dtype=np.int64)
        for a, b in half.same_person:
            forbid[a], forbid[b] = b, a
        sq = np.einsum("ij,ij->i", x, x)
        limit2 = complete_to * complete_to
        parts_d: list[FloatArray] = []
        parts_a: list[IntArray] = []
        parts_b: list[IntArray] = []
        n = x.shape[0]
        for r0 in range(0, n, chunk):
            r1 = min(n, r0 + chunk)
            d2 = sq[r0:r1, None] + sq[None, r0:] - 2.0 * (x[r0:r1] @ x[r0:].T)
            keep = d2 <= limit2
            keep &= np.arange(r0, n)[None, :] > np.arange(r0, r1)[:, None]
            keep &= owner[r0:r1, None] != owner[None, r0:]
            keep &= forbid[owner[r0:r1]][:, None] != owner[None, r0:]
            rows, cols = np.nonzero(keep)
            d = np.sqrt(np.maximum(d2[rows, cols], 0.0))
            inside = d <= complete_to
            parts_d.append(d[inside])
            parts_a.append(owner[r0 + rows[inside]])
            parts_b.append(owner[r0 + cols[inside]])
        empty_i = np.empty(0, dtype=np.int64)
        return cls(
            people=half.people,
            images=np.bincount(owner, minlength=n_people).astype(np.int64),
            genuine_person=g_p,
            genuine_distance=g_d,
            impostor_a=np.concatenate(parts_a) if parts_a else empty_i,
            impostor_b=np.concatenate(parts_b) if parts_b else empty_i,
            impostor_distance=np.concatenate(parts_d) if parts_d else np.empty(0),
            complete_to=float(complete_to),
            same_person=half.same_person,
        )

    def impostor_trials(self, first: BoolArray, second: BoolArray | None = None) -> int:
        """Impostor comparisons among the people ``first`` (within), or between ``first`` and ``second``."""
        if not self.exhaustive:
            a, b = first[self.impostor_a], first[self.impostor_b]
            if second is None:
                return int(np.count_nonzero(a & b))
            c, d = second[self.impostor_a], second[self.impostor_b]
            return int(np.count_nonzero((a & d) | (c & b)))
        n = self.images.astype(np.int64)
        if second is None:
            total = int(n[first].sum())
            count = (total * total - int(np.sum(n[first] ** 2))) // 2
            count -= sum(int(n[a] * n[b]) for a, b in self.same_person if first[a] and first[b])
        else:
            count = int(n[first].sum()) * int(n[second].sum())
            count -= sum(
                int(n[a] * n[b]) for a, b in self.same_person if (first[a] and second[b]) or (first[b] and second[a])
            )
        return count


def _genuine(x: FloatArray, owner: IntArray) -> tuple[FloatArray, IntArray]:
    """Every same-person pair of rows (rows grouped by owner): distances and the person."""
    out_d: list[FloatArray] = []
    out_p: list[IntArray] = []
    if owner.size:
        starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        ends = np.r_[starts[1:], owner.size]
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            if e - s < 2:
                continue
            block = x[s:e]
            i, j = np.triu_indices(e - s, k=1)
            out_d.append(np.sqrt(((block[i] - block[j]) ** 2).sum(axis=1)))
            out_p.append(np.full(i.size, owner[s], dtype=np.int64))
    if not out_d:
        return np.empty(0), np.empty(0, dtype=np.int64)
    return np.concatenate(out_d), np.concatenate(out_p)


# ---------------------------------------------------------------------------------------------
# Groupings and their bootstrap
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grouping:
    """One label set over the people of an evaluation: each person's group (-1: none) and the bootstrap weights.

    ``weights[r, p]``: how many times person p is drawn in replicate r, drawn within p's group (people
    without a label form a stratum of their own), so every replicate keeps every group's size.
    """

    name: str
    groups: tuple[str, ...]
    of_person: IntArray
    weights: FloatArray
    source: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        name: str,
        labels: Sequence[str | None],
        groups: Sequence[str],
        *,
        n_boot: int = 1000,
        seed: int = 0,
        source: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> Grouping:
        index = {g: k for k, g in enumerate(groups)}
        of_person = np.array([index.get(g, -1) if g else -1 for g in labels], dtype=np.int64)
        weights = stratified_bootstrap_weights(of_person, n_boot, np.random.default_rng(seed))
        return cls(name, tuple(groups), of_person, weights, source, dict(details or {}))

    @classmethod
    def everyone(cls, people: int, *, n_boot: int = 1000, seed: int = 0) -> Grouping:
        """Everyone in one group, "all": the pooled figures with the same bootstrap."""
        return cls.build("all people", ["all"] * people, ("all",), n_boot=n_boot, seed=seed)

    @property
    def n_boot(self) -> int:
        return int(self.weights.shape[0])

    def members(self, group: str) -> BoolArray:
        mask: BoolArray = self.of_person == self.groups.index(group)
        return mask

    def people_in(self, group: str) -> int:
        return int(self.members(group).sum())


def _check_thresholds(thresholds: Sequence[float]) -> FloatArray:
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim != 1 or t.size == 0 or np.isnan(t).any() or np.any(np.diff(t) <= 0):
        raise EquityError("thresholds must be a non-empty ascending sequence of numbers")
    return t


def errors_by_person(
    person: IntArray, distance: FloatArray, thresholds: FloatArray, people: int, *, error_above: bool
) -> IntArray:
    """(people, thresholds) error counts: trials above each threshold (``error_above``) or at or below it."""
    t = np.asarray(thresholds, dtype=np.float64)
    # Trial k is "at or below" t_j for every j >= first index with t_j >= d_k.
    first = np.searchsorted(t, distance, side="left")
    counts = np.bincount(person * (t.size + 1) + first, minlength=people * (t.size + 1))
    at_or_below = np.cumsum(counts.reshape(people, t.size + 1)[:, : t.size], axis=1).astype(np.int64)
    if not error_above:
        return at_or_below
    totals = np.bincount(person, minlength=people).astype(np.int64)
    out: IntArray = totals[:, None] - at_or_below
    return out


def person_rates(
    errors: IntArray,
    trials: IntArray,
    grouping: Grouping,
    group: str | None = None,
    confidence: float = CONFIDENCE,
) -> tuple[list[Figure], FloatArray]:
    """Figures at each threshold over trials that each belong to one person (FNMR, FPIR, FNIR), for one group.

    ``errors``: (people, thresholds); ``trials``: (people,). ``group`` None: every labelled and unlabelled
    person. Returns the figures and the bootstrap replicates (n_boot, thresholds).
    """
    members = np.ones(trials.size, dtype=bool) if group is None else grouping.members(group)
    e = errors[members].astype(np.float64)
    n = trials[members].astype(np.float64)
    w = grouping.weights[:, members]
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = (w @ e) / (w @ n)[:, None]
    people = int(np.count_nonzero(n > 0))
    total = int(n.sum())
    figures = []
    for j in range(errors.shape[1]):
        low, high = _interval(reps[:, j], confidence)
        figures.append(Figure(int(e[:, j].sum()), total, people, low, high))
    return figures, reps


@dataclass(frozen=True)
class PairCells:
    """Impostor comparisons at or below each threshold, aggregated per pair of people (so a replicate is a product)."""

    a: IntArray
    b: IntArray
    counts: IntArray  # (pairs of people, thresholds) comparisons at or below each threshold
    listed: IntArray  # (pairs of people,) comparisons listed (used when the pairs are not exhaustive)

    @classmethod
    def build(cls, pairs: PairSet, thresholds: FloatArray) -> PairCells:
        if pairs.exhaustive and float(thresholds[-1]) > pairs.complete_to + 1e-12:
            raise EquityError(
                f"threshold {float(thresholds[-1]):.3f} lies above the impostor pairs kept ({pairs.complete_to:.3f})"
            )
        people = len(pairs.people)
        lo = np.minimum(pairs.impostor_a, pairs.impostor_b)
        hi = np.maximum(pairs.impostor_a, pairs.impostor_b)
        keys, inverse = np.unique(lo * people + hi, return_inverse=True)
        inverse = inverse.reshape(-1)
        first = np.searchsorted(thresholds, pairs.impostor_distance, side="left")
        t = thresholds.size
        flat = np.bincount(inverse * (t + 1) + first, minlength=keys.size * (t + 1))
        counts = np.cumsum(flat.reshape(keys.size, t + 1)[:, :t], axis=1).astype(np.int64)
        listed = np.bincount(inverse, minlength=keys.size).astype(np.int64)
        return cls(keys // people, keys % people, counts, listed)


def _pair_replicates(
    cells: PairCells, select: BoolArray, weights: FloatArray, chunk: int = 4096
) -> tuple[FloatArray, FloatArray]:
    """Bootstrap false-match counts (n_boot, thresholds) and listed comparisons (n_boot,) over the selected pairs."""
    idx = np.flatnonzero(select)
    t = cells.counts.shape[1]
    out = np.zeros((weights.shape[0], t + 1))
    for s in range(0, idx.size, chunk):
        k = idx[s : s + chunk]
        columns = np.column_stack((cells.counts[k], cells.listed[k])).astype(np.float64)
        out += (weights[:, cells.a[k]] * weights[:, cells.b[k]]) @ columns
    return out[:, :t], out[:, t]


def _pair_trials(pairs: PairSet, weights: FloatArray, first: BoolArray, second: BoolArray | None) -> FloatArray:
    """Bootstrap impostor comparison counts (n_boot,) within ``first`` or between ``first`` and ``second``.

    Exhaustive pairs only: every image of a drawn person against every image of every other drawn person.
    """
    n = pairs.images.astype(np.float64)
    wa = weights[:, first] @ n[first]
    if second is None:
        trials = (wa * wa - (weights[:, first] ** 2) @ (n[first] ** 2)) / 2.0
        excluded = [(a, b) for a, b in pairs.same_person if first[a] and first[b]]
    else:
        trials = wa * (weights[:, second] @ n[second])
        excluded = [(a, b) for a, b in pairs.same_person if (first[a] and second[b]) or (first[b] and second[a])]
    for a, b in excluded:
        trials = trials - weights[:, a] * weights[:, b] * n[a] * n[b]
    result: FloatArray = trials
    return result


@dataclass(frozen=True)
class GroupSweep:
    """Every 1:1 figure of one label set at every threshold, and the ratios."""

    grouping: Grouping
    thresholds: FloatArray
    fmr_within: dict[str, list[Figure]]
    fmr_cross: dict[str, list[Figure]]
    fnmr: dict[str, list[Figure]]
    fmr_ratio: list[Ratio]
    fnmr_ratio: list[Ratio]

    def at(self, threshold: float) -> int:
        """Index of ``threshold`` in the sweep."""
        hits = np.flatnonzero(np.isclose(self.thresholds, threshold, rtol=0, atol=1e-9))
        if hits.size == 0:
            raise EquityError(f"threshold {threshold} is not in the sweep")
        return int(hits[0])

    def to_json(self) -> dict[str, Any]:
        return {
            "thresholds": [float(t) for t in self.thresholds],
            "fmr_within": {g: [f.to_json() for f in fs] for g, fs in self.fmr_within.items()},
            "fmr_cross": {g: [f.to_json() for f in fs] for g, fs in self.fmr_cross.items()},
            "fnmr": {g: [f.to_json() for f in fs] for g, fs in self.fnmr.items()},
            "fmr_ratio": [r.to_json() for r in self.fmr_ratio],
            "fnmr_ratio": [r.to_json() for r in self.fnmr_ratio],
        }


def sweep(
    pairs: PairSet,
    grouping: Grouping,
    thresholds: Sequence[float],
    *,
    cells: PairCells | None = None,
    confidence: float = CONFIDENCE,
) -> GroupSweep:
    """FMR within and across groups, FNMR per group, and their ratios, at every threshold (see the module docstring).

    ``cells`` may be passed to share the aggregation across label sets (it depends only on the pairs
    and the thresholds).
    """
    t = _check_thresholds(thresholds)
    if grouping.of_person.shape != (len(pairs.people),):
        raise EquityError(f"grouping {grouping.name!r} does not label the {len(pairs.people)} people of the pairs")
    cells = cells or PairCells.build(pairs, t)
    if cells.counts.shape[1] != t.size:
        raise EquityError("pair cells were built for other thresholds")
    group_a, group_b = grouping.of_person[cells.a], grouping.of_person[cells.b]
    w = grouping.weights
    within: dict[str, list[Figure]] = {}
    within_reps: dict[str, FloatArray] = {}
    for k, g in enumerate(grouping.groups):
        members = grouping.of_person == k
        select = (group_a == k) & (group_b == k)
        events = cells.counts[select].sum(axis=0)
        trials = pairs.impostor_trials(members)
        events_r, listed_r = _pair_replicates(cells, select, w)
        trials_r = _pair_trials(pairs, w, members, None) if pairs.exhaustive else listed_r
        with np.errstate(divide="ignore", invalid="ignore"):
            reps = events_r / trials_r[:, None]
        within_reps[g] = reps
        people = int(np.count_nonzero(members & (pairs.images > 0)))
        within[g] = [Figure(int(events[j]), trials, people, *_interval(reps[:, j], confidence)) for j in range(t.size)]
    cross: dict[str, list[Figure]] = {}
    for k, g in enumerate(grouping.groups):
        for h in range(k + 1, len(grouping.groups)):
            mk, mh = grouping.of_person == k, grouping.of_person == h
            select = ((group_a == k) & (group_b == h)) | ((group_a == h) & (group_b == k))
            events = cells.counts[select].sum(axis=0)
            trials = pairs.impostor_trials(mk, mh)
            events_r, listed_r = _pair_replicates(cells, select, w)
            trials_r = _pair_trials(pairs, w, mk, mh) if pairs.exhaustive else listed_r
            with np.errstate(divide="ignore", invalid="ignore"):
                reps = events_r / trials_r[:, None]
            people = min(int(np.count_nonzero(mk & (pairs.images > 0))), int(np.count_nonzero(mh & (pairs.images > 0))))
            cross[f"{g} x {grouping.groups[h]}"] = [
                Figure(int(events[j]), trials, people, *_interval(reps[:, j], confidence)) for j in range(t.size)
            ]
    errors = errors_by_person(pairs.genuine_person, pairs.genuine_distance, t, len(pairs.people), error_above=True)
    trials_p = np.bincount(pairs.genuine_person, minlength=len(pairs.people)).astype(np.int64)
    fnmr: dict[str, list[Figure]] = {}
    fnmr_reps: dict[str, FloatArray] = {}
    for g in grouping.groups:
        fnmr[g], fnmr_reps[g] = person_rates(errors, trials_p, grouping, g, confidence)
    fmr_ratio = [
        ratio(
            {g: within[g][j] for g in grouping.groups}, {g: within_reps[g][:, j] for g in grouping.groups}, confidence
        )
        for j in range(t.size)
    ]
    fnmr_ratio = [
        ratio({g: fnmr[g][j] for g in grouping.groups}, {g: fnmr_reps[g][:, j] for g in grouping.groups}, confidence)
        for j in range(t.size)
    ]
    return GroupSweep(grouping, t, within, cross, fnmr, fmr_ratio, fnmr_ratio)


def person_sweep(
    errors: IntArray, trials: IntArray, grouping: Grouping, confidence: float = CONFIDENCE
) -> tuple[dict[str, list[Figure]], list[Ratio]]:
    """Per-group figures and ratios at every threshold for per-person error counts (FPIR, FNIR)."""
    if errors.shape[0] != grouping.of_person.size or trials.shape != (grouping.of_person.size,):
        raise EquityError(f"grouping {grouping.name!r} does not label the people of these searches")
    figures: dict[str, list[Figure]] = {}
    reps: dict[str, FloatArray] = {}
    for g in grouping.groups:
        figures[g], reps[g] = person_rates(errors, trials, grouping, g, confidence)
    ratios = [
        ratio({g: figures[g][j] for g in grouping.groups}, {g: reps[g][:, j] for g in grouping.groups}, confidence)
        for j in range(errors.shape[1])
    ]
    return figures, ratios


# ---------------------------------------------------------------------------------------------
# The threshold each group would need
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupThreshold:
    """The largest grid threshold at which a group's within-group FMR meets the target, or why there is none."""

    group: str
    threshold: float | None
    events: int
    trials: int
    upper_bound: float | None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "threshold": self.threshold,
            "events": self.events,
            "trials": self.trials,
            "upper_bound": self.upper_bound,
            "reason": self.reason,
        }


def threshold_for_target(
    distances: FloatArray,
    trials: int,
    target: float,
    *,
    complete_to: float,
    min_events: int = MIN_ERRORS,
    confidence: float = CONFIDENCE,
    step: float = GRID_STEP,
) -> tuple[float | None, int, float | None, str]:
    """The largest grid distance whose impostor count is at least ``min_events`` with its exact upper bound <= target.

    Returns (threshold or None, events there, upper bound there, reason when None). ``distances``
    must hold every impostor distance up to ``complete_to``.
    """
    if not 0.0 < target < 1.0:
        raise EquityError(f"target rate must be between 0 and 1, got {target}")
    if trials < 1:
        return None, 0, None, "no impostor comparisons"
    if trials * target < min_events:
        need = math.ceil(min_events / target)
        return None, 0, None, f"{trials:,} comparisons cannot show {min_events} errors at {target:g} (needs {need:,})"
    grid = np.round(np.arange(0, math.floor(complete_to / step + 1e-9) + 1) * step, 6)
    counts = np.searchsorted(np.sort(distances), grid, side="right")
    allowed = np.array([clopper_pearson_upper(int(c), trials, confidence) <= target for c in counts])
    ok = allowed & (counts >= min_events)
    if not ok.any():
        if not (counts >= min_events).any():
            return None, int(counts[-1]), None, f"fewer than {min_events} false matches up to {complete_to:.3f}"
        return None, 0, None, f"no threshold has {min_events} false matches with the upper bound at or below {target:g}"
    j = int(np.flatnonzero(ok)[-1])
    if j == grid.size - 1:
        return None, int(counts[j]), None, f"the target is still met at {complete_to:.3f}, the end of the pairs kept"
    upper = clopper_pearson_upper(int(counts[j]), trials, confidence)
    return float(grid[j]), int(counts[j]), upper, ""


def group_thresholds(
    pairs: PairSet, grouping_labels: Sequence[str | None], groups: Sequence[str], target: float
) -> list[GroupThreshold]:
    """For each group, on these (DERIVATION) pairs: the threshold at which its within-group FMR meets ``target``."""
    if len(grouping_labels) != len(pairs.people):
        raise EquityError("labels must give one entry per person of the pairs")
    labels = np.array([g or "" for g in grouping_labels], dtype=object)
    out: list[GroupThreshold] = []
    for g in groups:
        members = labels == g
        select = members[pairs.impostor_a] & members[pairs.impostor_b]
        trials = pairs.impostor_trials(members)
        thr, events, upper, reason = threshold_for_target(
            pairs.impostor_distance[select], trials, target, complete_to=pairs.complete_to
        )
        out.append(GroupThreshold(g, thr, events, trials, upper, reason))
    return out
