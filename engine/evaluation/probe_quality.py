"""Error-versus-discard curves: does the engine's own quality measure find the comparisons it gets wrong?

For one quality measure (inter-eye distance, sharpness, pose, ...), the images (or probes) are ranked
from worst to best; the worst fraction is discarded and the false non-match rate at the operating
threshold is measured on the mated pairs that remain (Grother and Tabassi's error-versus-reject
characteristic, ISO/IEC 29794-1). A measure that predicts failure makes the curve fall quickly; a
measure that predicts nothing leaves it flat, whatever is discarded.

Each pair belongs to one or two *units* (the two images of a clean pair, or the one degraded probe of a
probe-against-reference pair) and is kept only while all its units are kept. Ties in a measure (the
warning count, say) are broken by a seeded random order, so exactly the stated fraction is discarded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.evaluation.metrics import bootstrap_error_interval
from engine.scoring.applicability import StatedRate
from engine.scoring.statistics import Proportion

FloatArray = npt.NDArray[np.float64]

DISCARD_FRACTIONS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)

Values = Mapping[str, tuple[float, bool]]


@dataclass(frozen=True)
class QualityScore:
    """How one engine measure ranks faces: ``score`` is higher for a better face; ``shown`` is the value stated."""

    name: str
    label: str
    score: Callable[[Values], float]
    shown: Callable[[Values], float]
    unit: str


def _value(name: str) -> Callable[[Values], float]:
    return lambda q: q[name][0]


def _absolute(name: str) -> Callable[[Values], float]:
    return lambda q: abs(q[name][0])


def _negated_absolute(name: str) -> Callable[[Values], float]:
    return lambda q: -abs(q[name][0])


def _warnings(q: Values) -> float:
    return float(sum(1 for _, ok in q.values() if not ok))


QUALITY_SCORES: tuple[QualityScore, ...] = (
    QualityScore(
        "inter_eye_distance", "inter-eye distance", _value("inter_eye_distance"), _value("inter_eye_distance"), "px"
    ),
    QualityScore("sharpness", "sharpness", _value("sharpness"), _value("sharpness"), "Laplacian variance at 128 px"),
    QualityScore("face_width", "face width", _value("face_width"), _value("face_width"), "px"),
    QualityScore("contrast", "contrast", _value("contrast"), _value("contrast"), "luma spread"),
    QualityScore("yaw", "head turn (yaw)", _negated_absolute("yaw"), _absolute("yaw"), "degrees, absolute"),
    QualityScore("roll", "head tilt (roll)", _negated_absolute("roll"), _absolute("roll"), "degrees, absolute"),
    QualityScore("warnings", "number of quality warnings", lambda q: -_warnings(q), _warnings, "warnings"),
)


@dataclass(frozen=True)
class DiscardPoint:
    """FNMR on the pairs left after discarding the worst ``fraction`` of units; ``cut`` the worst value kept."""

    fraction: float
    units_kept: int
    fnmr: Proportion
    cut: float | None

    def to_json(self) -> dict[str, Any]:
        rate = StatedRate(self.fnmr.events, self.fnmr.trials, self.fnmr.low, self.fnmr.high)
        return {
            "fraction_discarded": self.fraction,
            "units_kept": self.units_kept,
            "fnmr": {**self.fnmr.to_json(), "stated": rate.text()},
            "worst_value_kept": self.cut,
        }


@dataclass(frozen=True)
class DiscardCurve:
    measure: str
    label: str
    unit: str
    units: int
    pairs: int
    points: tuple[DiscardPoint, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "label": self.label,
            "unit": self.unit,
            "units": self.units,
            "pairs": self.pairs,
            "points": [p.to_json() for p in self.points],
        }


def error_versus_discard(
    distances: npt.ArrayLike,
    pair_units: npt.ArrayLike,
    pair_subject: npt.ArrayLike,
    unit_score: npt.ArrayLike,
    threshold: float,
    fractions: Sequence[float] = DISCARD_FRACTIONS,
    *,
    unit_shown: npt.ArrayLike | None = None,
    tie_seed: int = 0,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[DiscardPoint]:
    """FNMR at ``threshold`` after discarding the lowest-scoring fraction of units, for each fraction.

    ``pair_units`` is (pairs,) or (pairs, k): the unit(s) each mated pair depends on; ``unit_score``
    ranks units (higher is better); ``unit_shown`` is the value reported at the cut (default: the score).
    A pair with distance +inf (no template) is a miss for as long as it is kept.
    """
    d = np.asarray(distances, dtype=np.float64)
    units = np.asarray(pair_units, dtype=np.int64)
    units = units[:, None] if units.ndim == 1 else units
    subject = np.asarray(pair_subject, dtype=np.int64)
    score = np.asarray(unit_score, dtype=np.float64)
    shown = score if unit_shown is None else np.asarray(unit_shown, dtype=np.float64)
    if units.shape[0] != d.size or subject.shape != d.shape:
        raise ValueError("distances, pair_units and pair_subject need one entry per pair")
    if score.ndim != 1 or shown.shape != score.shape or np.isnan(score).any():
        raise ValueError("unit_score must be 1-D numbers with one entry per unit (and unit_shown alike)")
    if units.size and (units.min() < 0 or units.max() >= score.size):
        raise ValueError("pair_units must index unit_score")
    if any(not 0.0 <= f < 1.0 for f in fractions):
        raise ValueError("fractions must be at least 0 and below 1")
    tie = np.random.default_rng(tie_seed).permutation(score.size)
    order = np.lexsort((tie, score))  # worst first
    miss = ~(d <= threshold)
    points: list[DiscardPoint] = []
    for fraction in fractions:
        drop = round(fraction * score.size)
        kept = np.ones(score.size, dtype=bool)
        kept[order[:drop]] = False
        keep_pair = kept[units].all(axis=1)
        low, high = bootstrap_error_interval(miss[keep_pair], subject[keep_pair], n_boot=n_boot, seed=seed)
        errors, trials = int(miss[keep_pair].sum()), int(keep_pair.sum())
        proportion = Proportion(errors, trials, low, high, f"subject bootstrap 95% ({n_boot} resamples)")
        cut = float(shown[order[drop]]) if drop < score.size else None
        points.append(DiscardPoint(float(fraction), int(kept.sum()), proportion, cut))
    return points


def discard_curves(
    distances: npt.ArrayLike,
    pair_units: npt.ArrayLike,
    pair_subject: npt.ArrayLike,
    unit_quality: Sequence[Values],
    threshold: float,
    fractions: Sequence[float] = DISCARD_FRACTIONS,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[DiscardCurve]:
    """One error-versus-discard curve per engine quality measure (``QUALITY_SCORES``)."""
    d = np.asarray(distances, dtype=np.float64)
    curves: list[DiscardCurve] = []
    for measure in QUALITY_SCORES:
        score = np.array([measure.score(q) for q in unit_quality], dtype=np.float64)
        shown = np.array([measure.shown(q) for q in unit_quality], dtype=np.float64)
        points = error_versus_discard(
            d, pair_units, pair_subject, score, threshold, fractions, unit_shown=shown, n_boot=n_boot, seed=seed
        )
        curves.append(
            DiscardCurve(measure.name, measure.label, measure.unit, len(unit_quality), int(d.size), tuple(points))
        )
    return curves
