"""What a distance means: a calibration from distance to false-match rate, measured out of sample.

A raw distance means nothing to an approver or a court; "about 1 in 40,000 different-person pairs
score this close" does, provided it is measured honestly. The calibration holds, on a 0.001
distance grid, how many impostor (different-person) and genuine pairs scored at or below each
distance, for two disjoint sets of people (``engine.evaluation.protocol``):

- the DERIVATION people choose the operating threshold: ``derive_threshold`` gives the largest grid
  distance whose upper confidence bound on the false-match rate is at most the policy's target, with
  at least ``MIN_EVENTS`` impostor pairs that close. The bound is the larger of Clopper-Pearson's
  over pairs and the file's ``derivation_bound``, when it carries one: a prediction bound for a
  second sample of people, from a subject bootstrap. Impostor pairs are not independent (one
  person's many images bring many pairs, and a look-alike pair of people brings all of theirs), so a
  bound that treats pairs as independent is too narrow (chosen by it, 0.548 measured 0.14 % on
  held-out people for a 0.1 % target); and a confidence bound on the derivation people's own rate
  does not cover a second sample's error (chosen by it, 0.540 measured 0.11 %);
- the STATEMENT people, held out, give every rate stated to a person: ``false_match_rate(d)``.

Statements never over-claim. A rate is stated only with at least ``MIN_EVENTS`` (30) observed false
matches behind it; closer than that, one constant statement, "below 1 in N (the lowest this
evaluation can show)", which never weakens as faces get closer. A distance between grid rows takes
the row above it (more pairs, a higher rate), and "1 in N" is rounded down (a higher rate): every
rounding errs toward stating more false matches, never fewer.

The file carries, for the equity caveat of every Match Report, the within-group statement counts of
hand-labelled demographic groups, and its own content hash; its id is that hash (a re-run on the
same data gives the same id). This is the run-time half: the table is fitted offline by
``engine.evaluation.calibration.build_calibration``, which the run time never imports.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from engine.errors import CalibrationError
from engine.faces.models import CALIBRATION_FILE, Manifest, models_dir
from engine.scoring.statistics import clopper_pearson_interval, clopper_pearson_upper

FORMAT = 2
GRID_DECIMALS = 3
GRID_STEP = 10.0**-GRID_DECIMALS
MIN_EVENTS = 30
MIN_PEOPLE = 30  # a group's rate is stated only from at least this many people (the rule of 30, for people)
CONFIDENCE = 0.95
MAX_FILE_BYTES = 4_000_000
THRESHOLD_TOLERANCE = 1e-9
RERUN = "re-run make evaluate (scripts/calibrate.py --install)"
DECISION_RULE = "a comparison is a match when its distance is at or below the threshold"
FLOOR_WORDS = "the lowest this evaluation can show"

_ID = re.compile(r"^[a-z][a-z0-9]{0,15}-[0-9a-f]{12}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
AUTOMATIC = "_auto"  # a group name's kind ending so (``race_auto:Asian``) is labelled by a classifier, not by hand
_GROUP = re.compile(rf"^[a-z]+(?:{AUTOMATIC})?:[A-Za-z][A-Za-z0-9 _-]{{0,40}}$")
_HEADER_KEYS = (
    "format",
    "id",
    "model_id",
    "model_sha256",
    "dataset",
    "protocol",
    "created_by",
    "decision_rule",
    "images",
    "images_without_face",
    "excluded_label_errors",
    "people_in_no_fold",
    "min_events",
    "confidence",
    "grid_step",
)
_SET_KEYS = ("description", "people", "images", "genuine_pairs", "impostor_pairs")
_GROUP_KEYS = ("name", "people", "genuine_pairs", "impostor_pairs")
_BOUND_KEYS = ("method", "first_row", "upper")
BOUND_DIGITS = 6  # significant digits an upper bound is written with (rounded up: a bound never shrinks on disk)


def round_up(value: float, digits: int = BOUND_DIGITS) -> float:
    """``value`` rounded up to ``digits`` significant digits (0 stays 0)."""
    if value <= 0.0 or not math.isfinite(value):
        return float(value)
    scale = 10.0 ** (digits - 1 - math.floor(math.log10(value)))
    return float(math.ceil(value * scale - 1e-9) / scale)


@dataclass(frozen=True)
class RateBound:
    """A one-sided upper bound on the false-match rate the threshold is chosen by, for the table rows it covers.

    ``upper[i]`` is the bound at table row ``first_row + i``; rows beyond the last are not bounded (a
    threshold is never chosen there). ``method`` says what it bounds and how. Computed offline
    (``engine.evaluation.calibration``).
    """

    method: str
    first_row: int
    upper: tuple[float, ...]

    def at(self, row: int) -> float | None:
        """The bound at ``row``; None before the first row; +inf after the last (never within a target)."""
        if row < self.first_row:
            return None
        i = row - self.first_row
        return self.upper[i] if i < len(self.upper) else math.inf

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "first_row": self.first_row, "upper": list(self.upper)}


def one_in(rate: float) -> str:
    """``1 / rate`` rounded DOWN to two significant figures ("44,000"; one decimal below 10): never a lower rate."""
    if rate >= 1.0:
        return "1"
    if rate <= 0.0:
        raise ValueError("one_in needs a positive rate")
    x = 1.0 / rate
    if x < 10.0:
        return f"{math.floor(x * 10 + 1e-9) / 10:.1f}"
    scale = 10 ** (math.floor(math.log10(x)) - 1)
    return f"{int(math.floor(x / scale + 1e-9) * scale):,}"


def _round_up(x: float) -> str:
    """A count rounded UP to two significant figures ("12", "1,300", "0.5"): never fewer people than measured."""
    if x <= 0:
        return "0"
    if x < 10:
        return f"{math.ceil(x * 10 - 1e-9) / 10:g}"
    scale = 10 ** (math.floor(math.log10(x)) - 1)
    return f"{int(math.ceil(x / scale - 1e-9) * scale):,}"


@dataclass(frozen=True)
class FalseMatchEstimate:
    """The stated meaning of one distance: the statement pairs that close, and what may be said of them."""

    distance: float
    events: int  # statement impostor pairs at or below the grid distance at or above ``distance``
    pairs: int
    min_events: int = MIN_EVENTS
    confidence: float = CONFIDENCE
    people: str = "held-out people"

    @property
    def supported(self) -> bool:
        """True when at least ``min_events`` false matches back a stated rate."""
        return self.events >= self.min_events

    @property
    def rate(self) -> float | None:
        return self.events / self.pairs if self.supported else None

    @property
    def floor_rate(self) -> float:
        """The lowest rate this evaluation can state: ``min_events`` of its pairs."""
        return min(1.0, self.min_events / self.pairs)

    @property
    def stated_rate(self) -> float:
        """The rate the words carry: the estimate, or the floor below it (so it never falls as faces get closer)."""
        rate = self.rate
        return self.floor_rate if rate is None else rate

    @property
    def interval(self) -> tuple[float, float]:
        return clopper_pearson_interval(self.events, self.pairs, self.confidence)

    @property
    def upper_bound(self) -> float:
        """One-sided upper confidence bound on the rate at this distance."""
        return clopper_pearson_upper(self.events, self.pairs, self.confidence)

    def phrase(self) -> str:
        if self.rate is None:
            if self.pairs < self.min_events:
                return f"not measurable (fewer than {self.min_events} different-person pairs were compared)"
            return f"below 1 in {one_in(self.floor_rate)} ({FLOOR_WORDS})"
        return f"about 1 in {one_in(self.rate)}"

    def evidence(self) -> str:
        """The counts behind the phrase, in words that also never weaken as faces get closer."""
        if self.rate is None:
            pairs = f"{self.pairs:,} different-person pairs of {self.people}"
            return f"fewer than {self.min_events} of {pairs} scored this close"
        low, high = self.interval
        counts = f"{self.events:,} of {self.pairs:,} different-person pairs of {self.people} scored this close"
        ends = (one_in(high), one_in(low) if low > 0 else "more")
        if ends[0] == ends[1]:  # so many pairs that both ends round to the stated figure
            return counts
        return f"{counts}; {self.confidence:.0%} interval 1 in {ends[0]} to 1 in {ends[1]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "distance": self.distance,
            "rate": self.rate,
            "below": None if self.supported else self.floor_rate,
            "events": self.events if self.supported else None,
            "fewer_than_events": None if self.supported else self.min_events,
            "pairs": self.pairs,
            "text": self.phrase(),
        }


@dataclass(frozen=True)
class LibraryMeaning:
    """What a 1:N candidate's distance means in the library searched: different people expected that close."""

    estimate: FalseMatchEstimate
    people: int
    templates: int

    @property
    def expected(self) -> float:
        """Different people expected to score this close by chance (an upper figure: every reference image counts)."""
        return min(float(self.people), self.estimate.stated_rate * max(self.templates, self.people))

    def phrase(self) -> str:
        size = f"in a library of {self.people:,} {'person' if self.people == 1 else 'people'}"
        if self.templates > self.people:
            size += f" ({self.templates:,} reference images)"
        below = not self.estimate.supported
        x = self.expected
        if x >= 1.0:
            how = "fewer than" if below else "up to about" if self.templates > self.people else "about"
            count = _round_up(x)
            noun = "different person" if count == "1" else "different people"
            return f"{size}, {how} {count} {noun} would be expected to score this close by chance"
        if x <= 0.0:
            return f"{size}, no different person is expected to score this close by chance"
        how = "fewer than 1" if below else "about 1"
        chance = "a different person would be expected to score this close by chance"
        return f"{size}, {chance} in {how} in {one_in(x)} searches"

    def to_json(self) -> dict[str, Any]:
        return {
            "library_people": self.people,
            "library_images": self.templates,
            "expected_different_people": self.expected,
            "expected_is_upper_bound": not self.estimate.supported,
            "text": self.phrase(),
        }


@dataclass(frozen=True)
class CountSet:
    """Cumulative counts on the grid for one set of pairs (the derivation or statement people, or a group)."""

    name: str  # "derivation", "statement" or a group such as "race:Asian"
    people: int
    genuine_pairs: int
    impostor_pairs: int
    impostor_at_or_below: tuple[int, ...]
    genuine_at_or_below: tuple[int, ...]
    description: str = ""
    images: int = 0

    def problems(self, rows: int) -> list[str]:
        out: list[str] = []
        for key in ("people", "genuine_pairs", "impostor_pairs", "images"):
            if getattr(self, key) < 0:
                out.append(f"{self.name} {key} must not be negative")
        if len(self.impostor_at_or_below) != rows or len(self.genuine_at_or_below) != rows:
            out.append(f"{self.name}: every table row needs its impostor and genuine counts")
            return out
        for what, counts, total in (
            ("impostor", self.impostor_at_or_below, self.impostor_pairs),
            ("genuine", self.genuine_at_or_below, self.genuine_pairs),
        ):
            c = np.asarray(counts, dtype=np.int64)
            if np.any(np.diff(c) < 0) or c[0] < 0 or c[-1] > total:
                out.append(f"table {self.name} {what} counts must be non-decreasing and between 0 and {what}_pairs")
        if self.impostor_at_or_below and self.impostor_at_or_below[-1] != self.impostor_pairs:
            out.append(f"table must end at a distance every {self.name} impostor pair reached")
        return out


@dataclass(frozen=True)
class GroupFigure:
    """Within-group statement figures of one hand-labelled group at one threshold."""

    name: str
    people: int
    false_match: FalseMatchEstimate
    genuine_pairs: int
    genuine_missed: int

    @property
    def label(self) -> str:
        return self.name.split(":", 1)[1]

    @property
    def automatic(self) -> bool:
        """Labelled by a classifier (more people, less reliable labels), not by hand."""
        return self.name.split(":", 1)[0].endswith(AUTOMATIC)

    def caveat_words(self) -> str:
        """This group's figure as the equity caveat states it (no figure from fewer than ``MIN_PEOPLE`` people)."""
        if self.people < MIN_PEOPLE:  # a few people's pairs say how those few look alike, not how the group does
            return f"{self.label}: too few people for a figure ({self.people:,}; a figure needs {MIN_PEOPLE})"
        e = self.false_match
        counts = (
            f"{e.events:,} of {e.pairs:,} pairs"
            if e.supported
            else f"fewer than {e.min_events} of {e.pairs:,} pairs, {FLOOR_WORDS} for this group"
        )
        shown = e.phrase().removesuffix(f" ({FLOOR_WORDS})")
        return f"{self.label} {shown} ({counts}; {self.people:,} people)"

    @property
    def false_non_match_rate(self) -> float | None:
        return self.genuine_missed / self.genuine_pairs if self.genuine_pairs else None

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.name,
            "people": self.people,
            "false_match": self.false_match.to_json(),
            "genuine_pairs": self.genuine_pairs,
            "genuine_missed": self.genuine_missed,
            "false_non_match_rate": self.false_non_match_rate,
        }


def _fail(source: str, message: str) -> CalibrationError:
    return CalibrationError(f"calibration {source}: {message}")


@dataclass(frozen=True)
class Calibration:
    """Distance -> false-match rate for one model build, threshold and statements from disjoint people."""

    model_id: str
    model_sha256: str
    dataset: str
    protocol: str
    created_by: str
    images: int
    images_without_face: int
    excluded_label_errors: int
    people_in_no_fold: int
    distances: tuple[float, ...]
    derivation: CountSet
    statement: CountSet
    groups: tuple[CountSet, ...] = ()
    group_labels: str = ""
    min_events: int = MIN_EVENTS
    confidence: float = CONFIDENCE
    id_prefix: str = "lfw"
    derivation_bound: RateBound | None = None
    source: str = field(default="(in memory)", compare=False)

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise _fail(self.source, problems[0])

    def _problems(self) -> list[str]:
        out: list[str] = []
        if not re.match(r"^[a-z][a-z0-9]{0,15}$", self.id_prefix):
            out.append(f"id prefix {self.id_prefix!r} must be up to 16 lowercase letters or digits")
        if not _SHA256.match(self.model_sha256):
            out.append("model_sha256 must be 64 lowercase hex digits")
        for name in ("images", "images_without_face", "excluded_label_errors", "people_in_no_fold"):
            if getattr(self, name) < 0:
                out.append(f"{name} must not be negative")
        if self.min_events < 1 or self.min_events > 1000:
            out.append("min_events must be between 1 and 1000")
        if not 0.5 <= self.confidence < 1.0:
            out.append("confidence must be at least 0.5 and below 1")
        n = len(self.distances)
        if n < 2:
            out.append("table must have at least two rows")
            return out
        d = np.asarray(self.distances, dtype=np.float64)
        steps = np.rint(d / GRID_STEP)
        if d[0] != 0.0 or not np.allclose(d, steps * GRID_STEP, rtol=0, atol=1e-12) or np.any(np.diff(steps) != 1):
            out.append(f"table distances must run on the {GRID_STEP:g} grid from 0 without gaps")
        for counts in (self.derivation, self.statement):
            if counts.impostor_pairs < 1:
                out.append(f"{counts.name} impostor_pairs must be 1 or more")
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names):
            out.append("a group is listed twice")
        for g in self.groups:
            if not _GROUP.match(g.name):
                out.append(f"group name {g.name!r} must look like 'sex:female' or 'race:Asian'")
        for counts in (self.derivation, self.statement, *self.groups):
            out += counts.problems(n)
        bound = self.derivation_bound
        if bound is not None:
            u = np.asarray(bound.upper, dtype=np.float64)
            if not 0 <= bound.first_row < n or bound.first_row + u.size > n or u.size == 0:
                out.append("derivation_bound must cover table rows that exist")
            elif np.any(~np.isfinite(u)) or np.any(u < 0) or np.any(u > 1) or np.any(np.diff(u) < 0):
                out.append("derivation_bound upper bounds must be rates between 0 and 1 that never fall")
        return out

    # Identity

    @cached_property
    def content_sha256(self) -> str:
        """sha256 of the canonical JSON of everything but the id: the same data gives the same hash."""
        canonical = json.dumps(self._content(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()

    @property
    def id(self) -> str:
        """``lfw-`` and the first 12 hex digits of the content hash."""
        return f"{self.id_prefix}-{self.content_sha256[:12]}"

    @property
    def reference(self) -> str:
        """What a policy's ``operating_point.calibration_id`` names."""
        return self.id

    @property
    def label(self) -> str:
        return self.id

    @property
    def genuine_pairs(self) -> int:
        return self.statement.genuine_pairs

    @property
    def impostor_pairs(self) -> int:
        return self.statement.impostor_pairs

    def _content(self) -> dict[str, Any]:
        def set_dict(c: CountSet) -> dict[str, Any]:
            return {k: getattr(c, k) for k in _SET_KEYS}

        return {
            "format": FORMAT,
            "model_id": self.model_id,
            "model_sha256": self.model_sha256,
            "dataset": self.dataset,
            "protocol": self.protocol,
            "created_by": self.created_by,
            "decision_rule": DECISION_RULE,
            "images": self.images,
            "images_without_face": self.images_without_face,
            "excluded_label_errors": self.excluded_label_errors,
            "people_in_no_fold": self.people_in_no_fold,
            "min_events": self.min_events,
            "confidence": self.confidence,
            "grid_step": GRID_STEP,
            "id_prefix": self.id_prefix,
            "derivation": set_dict(self.derivation),
            "statement": set_dict(self.statement),
            "group_labels": self.group_labels,
            "groups": [{k: getattr(g, k) for k in _GROUP_KEYS} for g in self.groups],
            "table": [list(row) for row in self._rows()],
            **({} if self.derivation_bound is None else {"derivation_bound": self.derivation_bound.to_json()}),
        }

    def _rows(self) -> list[tuple[float | int, ...]]:
        sets = (self.derivation, self.statement, *self.groups)
        return [
            (
                round(d, GRID_DECIMALS),
                *(v for s in sets for v in (s.impostor_at_or_below[k], s.genuine_at_or_below[k])),
            )
            for k, d in enumerate(self.distances)
        ]

    def to_yaml(self) -> str:
        """The file text: same calibration, same bytes."""
        content = self._content()
        lines = [
            "# Distance -> false-match-rate calibration of the face engine (format 2: out of sample).",
            "# Generated by scripts/calibrate.py (see docs/evaluation.md); do not edit: the content hash is checked.",
            "# The threshold is chosen on the derivation people; every stated rate comes from the statement people.",
        ]
        header = {**content, "id": self.id}
        for key in _HEADER_KEYS:
            value = header[key]
            lines.append(f"{key}: {json.dumps(value) if isinstance(value, str) else repr(value)}")
        for name in ("derivation", "statement"):
            lines.append(f"{name}: {json.dumps(content[name], sort_keys=True)}")
        if self.derivation_bound is not None:
            lines.append("# The bound the threshold is chosen by (its method says what), from table row first_row on:")
            lines.append(f"derivation_bound: {json.dumps(content['derivation_bound'], sort_keys=True)}")
        lines.append(f"group_labels: {json.dumps(self.group_labels)}")
        lines.append("groups:")
        lines += [f"  - {json.dumps(g, sort_keys=True)}" for g in content["groups"]]
        if not self.groups:
            lines[-1] = "groups: []"
        columns = ["distance", "derivation impostor", "derivation genuine", "statement impostor", "statement genuine"]
        columns += [f"{g.name} {kind}" for g in self.groups for kind in ("impostor", "genuine")]
        lines.append(f"# pairs at or below each distance: [{', '.join(columns)}]")
        lines.append("table:")
        lines += [f"  - [{r[0]:.{GRID_DECIMALS}f}, {', '.join(str(v) for v in r[1:])}]" for r in self._rows()]
        lines.append(f"content_sha256: {json.dumps(self.content_sha256)}")
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> None:
        """Write the file (atomically: a half-written calibration must never be what the terminal reads)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.to_yaml(), encoding="utf-8")
        tmp.replace(path)

    def check_model(self, model_id: str, model_sha256: str) -> None:
        """Refuse to describe scores from any model build but the one this calibration measured."""
        if model_id != self.model_id or model_sha256 != self.model_sha256:
            raise CalibrationError(
                f"calibration {self.label} was measured on model {self.model_id} ({self.model_sha256[:12]}), "
                f"not on the loaded {model_id} ({model_sha256[:12]}); {RERUN}"
            )

    # Meaning of a distance

    def _row(self, distance: float) -> int:
        """The grid row at or above ``distance`` (more pairs: never a lower rate); the last row beyond the table."""
        value = float(distance)
        if math.isnan(value) or value < 0 or math.isinf(value):
            raise CalibrationError(f"distance must be a finite number of 0 or more, got {distance!r}")
        return min(len(self.distances) - 1, math.ceil(value / GRID_STEP - 1e-6))

    def estimate(self, counts: CountSet, distance: float, people: str = "held-out people") -> FalseMatchEstimate:
        row = self._row(distance)
        return FalseMatchEstimate(
            float(distance),
            counts.impostor_at_or_below[row],
            counts.impostor_pairs,
            self.min_events,
            self.confidence,
            people,
        )

    def false_match_rate(self, distance: float) -> FalseMatchEstimate:
        """What may be stated of ``distance``: from the statement people only."""
        return self.estimate(self.statement, distance)

    @property
    def floor(self) -> FalseMatchEstimate:
        """The statement at distance 0: the lowest rate this evaluation can show."""
        return self.false_match_rate(0.0)

    def in_library(self, distance: float, people: int, templates: int | None = None) -> LibraryMeaning:
        """What ``distance`` means for a 1:N candidate from a library of ``people`` (``templates`` images)."""
        if people < 1:
            raise CalibrationError(f"a library searched must hold at least one person, got {people}")
        return LibraryMeaning(self.false_match_rate(distance), people, max(templates or people, people))

    def false_non_match_rate(self, threshold: float) -> float:
        """Share of the statement people's genuine pairs (at most 10 images each) scoring above ``threshold``."""
        if self.statement.genuine_pairs == 0:
            raise CalibrationError(f"calibration {self.label} holds no genuine pairs")
        row = self._row_at_or_below(threshold)
        return 1.0 - self.statement.genuine_at_or_below[row] / self.statement.genuine_pairs

    def _row_at_or_below(self, threshold: float) -> int:
        value = float(threshold)
        if math.isnan(value) or value < 0 or math.isinf(value):
            raise CalibrationError(f"threshold must be a finite number of 0 or more, got {threshold!r}")
        return min(len(self.distances) - 1, math.floor(value / GRID_STEP + 1e-6))

    def describe_score(self, distance: float) -> str:
        """One line for screens and exports: the stated rate, the counts behind it, the distance and calibration."""
        estimate = self.false_match_rate(distance)
        return (
            f"estimated false-match rate {estimate.phrase()} ({estimate.evidence()}; "
            f"distance {estimate.distance:.3f}; calibration {self.label})"
        )

    # Equity at a threshold

    def group_figures(self, threshold: float) -> list[GroupFigure]:
        """Within-group statement figures of each hand-labelled group (with any impostor pairs) at ``threshold``."""
        out = []
        row = self._row_at_or_below(threshold)
        for g in self.groups:
            if g.impostor_pairs == 0:
                continue
            estimate = FalseMatchEstimate(
                float(threshold),
                g.impostor_at_or_below[row],
                g.impostor_pairs,
                self.min_events,
                self.confidence,
                f"held-out people labelled {g.name.split(':', 1)[1]}",
            )
            missed = g.genuine_pairs - g.genuine_at_or_below[row]
            out.append(GroupFigure(g.name, g.people, estimate, g.genuine_pairs, missed))
        return out

    def equity_caveat(self, threshold: float, target_fmr: float) -> str:
        """The Match Report's caveat: how often two different people of one group score within ``threshold``."""
        figures = self.group_figures(threshold)
        if not figures:
            return (
                f"Calibration {self.label} holds no demographic group figures: the false-match rate at the "
                "operating threshold may differ between groups of people by an unknown amount."
            )
        hand = [f for f in figures if not f.automatic]
        automatic = [f for f in figures if f.automatic]
        first, more = (hand, automatic) if hand else (automatic, [])
        overall = self.false_match_rate(threshold)
        sentences = [
            f"Equity caveat: at the operating threshold {threshold:.3f} (policy target 1 in {one_in(target_fmr)}; "
            f"overall {overall.phrase()} on held-out people), the false-match rate between two different people "
            f"of the same group, on people held out from the threshold's choice, was: "
            f"{'; '.join(f.caveat_words() for f in first)}."
        ]
        if more:
            words = "; ".join(f.caveat_words() for f in more)
            sentences.append(f"By automatic labels (more people, less reliable labels): {words}.")
        sentences.append(
            "Where a group's rate is higher, a different person of that group is more likely to appear close to the "
            "Probe Image; weigh every Potential Match with this in mind."
        )
        if any(f.people < MIN_PEOPLE for f in figures):
            elsewhere = (
                ""
                if automatic
                else f": the evaluation published with calibration {self.label} gives every group's figures on "
                "automatic labels too, for more people"
            )
            sentences.append(f"Too few people is no evidence that a group's rate is low{elsewhere}.")
        sentences.append(f"Groups: {self.group_labels or 'hand labels'}.")
        return " ".join(sentences)

    def groups_json(self, threshold: float) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.group_figures(threshold)]


def _typed(data: dict[str, Any], key: str, kind: type, source: str) -> Any:
    if key not in data:
        raise _fail(source, f"missing key {key!r}; {RERUN}")
    value = data[key]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise _fail(source, f"{key} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _count_set(raw: Any, name: str, source: str, columns: Sequence[list[int]]) -> CountSet:
    if not isinstance(raw, dict):
        raise _fail(source, f"{name} must be a mapping")
    keys = _SET_KEYS if name in ("derivation", "statement") else _GROUP_KEYS
    unknown = sorted(str(k) for k in raw if k not in keys)
    if unknown:
        raise _fail(source, f"{name}: unknown key {unknown[0]!r}")
    return CountSet(
        name=name if name in ("derivation", "statement") else _typed(raw, "name", str, source),
        people=_typed(raw, "people", int, source),
        genuine_pairs=_typed(raw, "genuine_pairs", int, source),
        impostor_pairs=_typed(raw, "impostor_pairs", int, source),
        impostor_at_or_below=tuple(columns[0]),
        genuine_at_or_below=tuple(columns[1]),
        description=_typed(raw, "description", str, source) if "description" in keys else "",
        images=_typed(raw, "images", int, source) if "images" in keys else 0,
    )


def _bound(raw: Any, source: str) -> RateBound | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or sorted(raw) != sorted(_BOUND_KEYS):
        raise _fail(source, f"derivation_bound must map {', '.join(_BOUND_KEYS)}")
    upper = _typed(raw, "upper", list, source)
    if any(isinstance(u, bool) or not isinstance(u, int | float) for u in upper):
        raise _fail(source, "derivation_bound upper must be a list of rates")
    return RateBound(
        _typed(raw, "method", str, source), _typed(raw, "first_row", int, source), tuple(float(u) for u in upper)
    )


def parse_calibration(text: str, source: str = "(text)") -> Calibration:
    """Parse and verify the YAML text of a calibration (structure, table, content hash, id)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _fail(source, f"not valid YAML ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise _fail(source, "not a calibration file (expected a mapping)")
    fmt = _typed(data, "format", int, source)
    if fmt == 1:
        raise _fail(
            source,
            "format 1 is no longer accepted: it stated rates measured on the same pairs that chose the threshold; "
            + RERUN,
        )
    if fmt != FORMAT:
        raise _fail(source, f"format {fmt} is not supported (expected {FORMAT}); update the software or {RERUN}")
    known = {
        *_HEADER_KEYS,
        "derivation",
        "statement",
        "derivation_bound",
        "group_labels",
        "groups",
        "table",
        "content_sha256",
    }
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise _fail(source, f"unknown key {unknown[0]!r}")
    if _typed(data, "decision_rule", str, source) != DECISION_RULE:
        raise _fail(source, "decision_rule differs from the engine's (match at or below the threshold)")
    if abs(_typed(data, "grid_step", float, source) - GRID_STEP) > 1e-15:
        raise _fail(source, f"grid_step must be {GRID_STEP:g}")
    groups_raw = _typed(data, "groups", list, source)
    width = 5 + 2 * len(groups_raw)
    table = _typed(data, "table", list, source)
    rows: list[list[Any]] = []
    for n, row in enumerate(table):
        if (
            not isinstance(row, list)
            or len(row) != width
            or not isinstance(row[0], int | float)
            or isinstance(row[0], bool)
            or any(isinstance(x, bool) or not isinstance(x, int) for x in row[1:])
        ):
            raise _fail(source, f"table row {n} must be [distance, then {width - 1} whole counts]")
        rows.append(row)
    cols = list(zip(*rows, strict=True)) if rows else [()] * width
    as_lists = [list(c) for c in cols]
    ident = _typed(data, "id", str, source)
    if not _ID.match(ident):
        raise _fail(source, f"id {ident!r} is not '<prefix>-<12 hex digits of the content hash>'")
    calibration = Calibration(
        model_id=_typed(data, "model_id", str, source),
        model_sha256=_typed(data, "model_sha256", str, source),
        dataset=_typed(data, "dataset", str, source),
        protocol=_typed(data, "protocol", str, source),
        created_by=_typed(data, "created_by", str, source),
        images=_typed(data, "images", int, source),
        images_without_face=_typed(data, "images_without_face", int, source),
        excluded_label_errors=_typed(data, "excluded_label_errors", int, source),
        people_in_no_fold=_typed(data, "people_in_no_fold", int, source),
        distances=tuple(float(x) for x in as_lists[0]),
        derivation=_count_set(data.get("derivation"), "derivation", source, as_lists[1:3]),
        statement=_count_set(data.get("statement"), "statement", source, as_lists[3:5]),
        groups=tuple(
            _count_set(g, f"group {n}", source, as_lists[5 + 2 * n : 7 + 2 * n]) for n, g in enumerate(groups_raw)
        ),
        group_labels=_typed(data, "group_labels", str, source),
        min_events=_typed(data, "min_events", int, source),
        confidence=_typed(data, "confidence", float, source),
        id_prefix=ident.rsplit("-", 1)[0],
        derivation_bound=_bound(data.get("derivation_bound"), source),
        source=source,
    )
    recorded = _typed(data, "content_sha256", str, source)
    if recorded != calibration.content_sha256:
        raise _fail(source, f"content hash does not match: the file was changed by hand; {RERUN}")
    if ident != calibration.id:
        raise _fail(source, f"id {ident!r} is not the content hash's {calibration.id!r}; {RERUN}")
    return calibration


def load_calibration(path: str | Path) -> Calibration:
    """Read and verify ``models/calibration.yaml`` (or another calibration file)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _fail(str(path), f"cannot be read ({exc.strerror or exc}); {RERUN}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise _fail(str(path), f"larger than {MAX_FILE_BYTES} bytes; this is not a calibration file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(str(path), "not UTF-8 text") from None
    return parse_calibration(text, source=str(path))


def derive_threshold(calibration: Calibration, target_fmr: float) -> float:
    """The operating threshold for a target false-match rate, from the DERIVATION people only.

    The largest grid distance whose one-sided upper bound (at the calibration's confidence) on the
    false-match rate is at most the target, with at least ``min_events`` impostor pairs that close. The
    bound is Clopper-Pearson's over pairs, or the file's ``derivation_bound`` where it carries one and it is
    larger; beyond the rows that bound covers no threshold is chosen. A target the derivation pairs
    cannot support that way is refused.
    """
    target = float(target_fmr)
    if not 0.0 < target < 1.0:
        raise CalibrationError(f"target false-match rate must be between 0 and 1, got {target_fmr!r}")
    counts = calibration.derivation.impostor_at_or_below
    pairs = calibration.derivation.impostor_pairs

    file_bound = calibration.derivation_bound

    def bound(row: int) -> float:
        pair_bound = clopper_pearson_upper(counts[row], pairs, calibration.confidence)
        other = None if file_bound is None else file_bound.at(row)
        return pair_bound if other is None else max(pair_bound, other)

    # The bound rises with the row (both bounds do): bisect for the last row within the target.
    lo, hi = -1, len(counts) - 1  # invariant: rows <= lo are within the target (lo = -1: none), rows > hi are not
    if bound(hi) <= target:
        lo = hi
    else:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if bound(mid) <= target:
                lo = mid
            else:
                hi = mid
    if lo < 0 or counts[lo] < calibration.min_events:
        smallest = _smallest_supportable(pairs, calibration.min_events, calibration.confidence)
        raise CalibrationError(
            f"target false-match rate {target:g} is below what calibration {calibration.label} can support "
            f"({pairs:,} derivation impostor pairs need at least {calibration.min_events} false matches within "
            f"the threshold and a {calibration.confidence:.0%} upper bound at most the target; smallest supportable "
            f"about {smallest:.2g}); choose a larger target or calibrate on more pairs"
        )
    return float(calibration.distances[lo])


def _smallest_supportable(pairs: int, min_events: int, confidence: float) -> float:
    return clopper_pearson_upper(min(min_events, pairs), pairs, confidence)


def check_policy_threshold(
    policy_threshold: float | None,
    calibration: Calibration,
    target_fmr: float,
    calibration_id: str | None = None,
) -> float:
    """Refuse a policy whose operating threshold is not the one derived from its calibration; return it.

    ``calibration_id``, when given, is the policy's ``operating_point.calibration_id`` and must name
    this calibration (``Calibration.reference``).
    """
    derived = derive_threshold(calibration, target_fmr)
    if calibration_id is not None and calibration_id != calibration.reference:
        raise CalibrationError(
            f"policy operating_point.calibration_id is {calibration_id!r} but the installed calibration is "
            f"{calibration.reference!r}; issue a new policy version derived from it"
        )
    if policy_threshold is None:
        raise CalibrationError(
            f"policy operating_point.threshold is not set; derived from calibration {calibration.label} at "
            f"false-match rate {target_fmr:g} it is {derived:.3f}: issue a new policy version with it"
        )
    if not math.isclose(float(policy_threshold), derived, rel_tol=0.0, abs_tol=THRESHOLD_TOLERANCE):
        raise CalibrationError(
            f"policy operating_point.threshold {policy_threshold} does not match {derived:.3f}, the threshold "
            f"calibration {calibration.label} gives at false-match rate {target_fmr:g}; "
            "thresholds are derived, never set by hand: issue a new policy version"
        )
    return derived


def load_verified_calibration(directory: Path | None = None) -> Calibration:
    """The score calibration, hash-checked against the manifest: a changed one changes every score's meaning."""
    directory = directory or models_dir()
    manifest = Manifest.load(directory / "manifest.yaml")
    text = manifest.read_verified(directory, CALIBRATION_FILE).decode("utf-8")
    return parse_calibration(text, str(directory / CALIBRATION_FILE))
