"""Proportions and their confidence intervals, and outcome rates broken down by group.

The statistics that both the run time and the offline evaluation state figures with, defined once:

- ``Proportion``: ``events`` of ``trials`` with an interval and the name of the method behind it.
- Wilson score interval (``wilson_interval``, ``wilson``): one proportion from independent trials.
  Used for the calibration rows, the 1:N rates and casework breakdowns. Comparisons that share a
  person are not independent, so for pair-based figures it understates the uncertainty; it is
  labelled as such.
- Clopper-Pearson (``clopper_pearson_interval``, ``clopper_pearson_upper``): exact, for the bounds
  behind "fewer than 1 in N" claims where counts are tiny and Wilson's approximation is weakest
  (``engine.scoring.calibration`` states such a bound beside every score too close to rate).
- ``GroupFigure`` and ``spread``: one group's rate, or why it is too small to give, and the ratio of
  the highest to the lowest stable group rate (NIST IR 8280's demographic differential).
- ``outcome_breakdown``: adjudication outcomes by each demographic field the policy records, for the
  quarterly review (``engine.casework.monitoring``) and the equity evaluation alike.

Standard library only. Error rates swept over score arrays, and the subject bootstrap, are offline
evaluation (``engine.evaluation.metrics``), which the run time never imports.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

NOT_RECORDED = "not recorded"

# ---------------------------------------------------------------------------------------------
# Confidence intervals
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proportion:
    """``events`` of ``trials``, with a confidence interval and the name of the method behind it."""

    events: int
    trials: int
    low: float
    high: float
    method: str

    @property
    def rate(self) -> float:
        return self.events / self.trials if self.trials else math.nan

    def to_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "trials": self.trials,
            "rate": None if not self.trials else self.rate,
            "low": self.low,
            "high": self.high,
            "method": self.method,
        }


def _check_counts(events: int, trials: int, confidence: float) -> None:
    if trials < 0 or not 0 <= events <= trials:
        raise ValueError(f"need 0 <= events <= trials, got {events} of {trials}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(events: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (two-sided). ``(0, 1)`` when there are no trials."""
    _check_counts(events, trials, confidence)
    if trials == 0:
        return 0.0, 1.0
    z = _z(confidence)
    p = events / trials
    z2n = z * z / trials
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z * math.sqrt(p * (1.0 - p) / trials + z2n / (4.0 * trials)) / (1.0 + z2n)
    low = 0.0 if events == 0 else max(0.0, centre - half)
    high = 1.0 if events == trials else min(1.0, centre + half)
    return low, high


def wilson(events: int, trials: int, confidence: float = 0.95) -> Proportion:
    low, high = wilson_interval(events, trials, confidence)
    return Proportion(events, trials, low, high, f"Wilson {confidence:.0%}")


def _log_beta_front(a: float, b: float, x: float) -> float:
    return math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function, evaluated by the modified Lentz method."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 1_000_000):
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        for coefficient in (even, odd):
            d = 1.0 + coefficient * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + coefficient / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            return result
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")


def regularized_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularised incomplete beta function (the binomial and beta CDFs)."""
    if not (a > 0 and b > 0):
        raise ValueError("a and b must be positive")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    # The fraction converges fast only on the side of the distribution's mean; use the symmetry otherwise.
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(_log_beta_front(a, b, x)) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(_log_beta_front(b, a, 1.0 - x)) * _beta_continued_fraction(b, a, 1.0 - x) / b


def binomial_cdf(events: int, trials: int, p: float) -> float:
    """P(X <= events) for X ~ Binomial(trials, p)."""
    if events >= trials:
        return 1.0
    if events < 0:
        return 0.0
    return regularized_beta(trials - events, events + 1, 1.0 - p)


def _solve_decreasing(f: Any, target: float) -> float:
    """The p in [0, 1] where the decreasing function f(p) crosses ``target``, by bisection to ~1e-12 relative."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if f(mid) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return hi


def clopper_pearson_upper(events: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided exact upper bound on a proportion: with 0 events it is ``1 - (1 - confidence) ** (1 / trials)``.

    The "rule of three" (about 3 / trials at 95 %) is this bound with no events.
    """
    _check_counts(events, trials, confidence)
    if trials == 0 or events == trials:
        return 1.0
    alpha = 1.0 - confidence
    if events == 0:
        return -math.expm1(math.log(alpha) / trials)
    return _solve_decreasing(lambda p: binomial_cdf(events, trials, p), alpha)


def clopper_pearson_interval(events: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided exact (Clopper-Pearson) interval: never narrower than the nominal coverage."""
    _check_counts(events, trials, confidence)
    if trials == 0:
        return 0.0, 1.0
    tail = (1.0 - confidence) / 2.0
    high = clopper_pearson_upper(events, trials, 1.0 - tail)
    if events == 0:
        low = 0.0
    else:
        # The lower bound for `events` is one minus the upper bound for the failures (the binomial's symmetry).
        low = 1.0 - clopper_pearson_upper(trials - events, trials, 1.0 - tail)
    return low, high


def clopper_pearson(events: int, trials: int, confidence: float = 0.95) -> Proportion:
    low, high = clopper_pearson_interval(events, trials, confidence)
    return Proportion(events, trials, low, high, f"Clopper-Pearson {confidence:.0%}")


# ---------------------------------------------------------------------------------------------
# Group figures and their spread
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupFigure:
    """One group's error rate, or the reason it is not given (``too_small``); sizes are always reported."""

    group: str
    subjects: int
    comparisons: int
    errors: int
    proportion: Proportion | None
    too_small: str | None = None

    @property
    def stable(self) -> bool:
        return self.proportion is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "subjects": self.subjects,
            "comparisons": self.comparisons,
            "errors": self.errors,
            "figure": None if self.proportion is None else self.proportion.to_json(),
            "too_small": self.too_small,
        }


@dataclass(frozen=True)
class Spread:
    """Highest over lowest group rate (NIST IR 8280's demographic differential), over stable groups only."""

    ratio: float | None
    highest: str | None
    lowest: str | None
    groups: tuple[str, ...]
    left_out: tuple[str, ...]
    note: str

    def to_json(self) -> dict[str, Any]:
        return {
            "ratio": self.ratio,
            "highest": self.highest,
            "lowest": self.lowest,
            "groups": list(self.groups),
            "left_out": list(self.left_out),
            "note": self.note,
        }


def spread(figures: Iterable[GroupFigure]) -> Spread:
    """Max/min ratio of the stable groups' rates; groups too small are named, not used."""
    figures = list(figures)
    stable = [f for f in figures if f.proportion is not None]
    left_out = tuple(f.group for f in figures if f.proportion is None)
    if len(stable) < 2:
        return Spread(None, None, None, tuple(f.group for f in stable), left_out, "fewer than two groups large enough")
    hi = max(stable, key=lambda f: f.proportion.rate if f.proportion else 0.0)
    lo = min(stable, key=lambda f: f.proportion.rate if f.proportion else 0.0)
    groups = tuple(f.group for f in stable)
    assert hi.proportion is not None and lo.proportion is not None
    if lo.proportion.events == 0:
        note = f"lowest group ({lo.group}) had no errors: the ratio is unbounded; compare the intervals"
        return Spread(None, hi.group, lo.group, groups, left_out, note)
    return Spread(hi.proportion.rate / lo.proportion.rate, hi.group, lo.group, groups, left_out, "")


# ---------------------------------------------------------------------------------------------
# Casework: adjudication outcomes by the demographic fields the policy records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeRow:
    """One value of one field: how many records, how each outcome was decided, and the positive rate."""

    field_name: str
    value: str
    records: int
    outcomes: dict[str, int]
    positive: Proportion | None
    too_small: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field_name,
            "value": self.value,
            "records": self.records,
            "outcomes": dict(self.outcomes),
            "positive": None if self.positive is None else self.positive.to_json(),
            "too_small": self.too_small,
        }


@dataclass(frozen=True)
class OutcomeBreakdown:
    """All values of one demographic field, and the spread of the positive rate across them."""

    field_name: str
    positive_outcome: str
    rows: list[OutcomeRow]
    spread: Spread

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field_name,
            "positive_outcome": self.positive_outcome,
            "rows": [r.to_json() for r in self.rows],
            "spread": self.spread.to_json(),
        }


def _field_value(record: Mapping[str, object], key: str) -> str:
    value = record.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return NOT_RECORDED
    return str(value).strip()


def outcome_breakdown(
    records: Iterable[Mapping[str, object]],
    fields: Sequence[str],
    *,
    outcome_key: str = "outcome",
    positive_outcome: str = "viable_match",
    min_records: int = 30,
    confidence: float = 0.95,
) -> list[OutcomeBreakdown]:
    """Break adjudication outcomes down by each demographic field (for the quarterly report).

    Each record is a mapping (one search or one adjudicated Potential Match) with an outcome and the
    fields the policy records (sex, ethnicity by IC code, age range...). A missing or empty value is
    counted as "not recorded", never dropped. Rates carry Wilson intervals (each record one trial);
    a value with fewer than ``min_records`` records is shown with its counts but "too small for a
    stable figure". "not recorded" never enters the spread.
    """
    rows_in = list(records)
    out: list[OutcomeBreakdown] = []
    for key in fields:
        by_value: dict[str, dict[str, int]] = {}
        for record in rows_in:
            outcome = _field_value(record, outcome_key)
            counts = by_value.setdefault(_field_value(record, key), {})
            counts[outcome] = counts.get(outcome, 0) + 1
        rows: list[OutcomeRow] = []
        for value in sorted(by_value, key=lambda v: (v == NOT_RECORDED, v)):
            counts = dict(sorted(by_value[value].items()))
            n = sum(counts.values())
            positives = counts.get(positive_outcome, 0)
            problem = None if n >= min_records else f"too small for a stable figure ({n} records; needs {min_records})"
            rows.append(
                OutcomeRow(key, value, n, counts, None if problem else wilson(positives, n, confidence), problem)
            )
        spread_of = spread(
            GroupFigure(r.value, r.records, r.records, r.outcomes.get(positive_outcome, 0), r.positive, r.too_small)
            for r in rows
            if r.value != NOT_RECORDED
        )
        out.append(OutcomeBreakdown(key, positive_outcome, rows, spread_of))
    return out
