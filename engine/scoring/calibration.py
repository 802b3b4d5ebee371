"""What a distance means: a versioned calibration from distance to estimated false-match rate.

A raw distance means nothing to an approver or a court; "about 1 in 40,000 different-person pairs
score this close" does. The calibration is a table, on a 0.001 distance grid, of how many of the
calibration's impostor (different-person) pairs, and how many genuine pairs, scored at or below each
distance. Counts, not rates, are stored, so every figure carries the number of pairs behind it.

- ``Calibration.false_match_rate(d)`` interpolates the count linearly between grid rows (monotone).
  With fewer than ``min_events`` (3) impostor pairs that close, it does not make up a rate: it states
  the exact one-sided upper bound instead (with none, the "rule of three": fewer than 1 in N/3).
- ``derive_threshold`` gives the operating threshold for a target false-match rate: the largest grid
  distance whose observed FMR is at most the target. The policy names the target; the threshold is
  derived, never typed in, and ``check_policy_threshold`` refuses a policy whose threshold disagrees.
- The file (``models/calibration.yaml``) is written deterministically and carries the sha256 of its
  own content; ``load_calibration`` verifies it, ``load_verified_calibration`` also checks it against
  the model manifest, and ``check_model`` ties it to one exact model build.

This is the run-time half. The table is fitted offline from evaluation scores by
``engine.evaluation.calibration.build_calibration``, which the run time never imports.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from engine.errors import CalibrationError
from engine.faces.models import CALIBRATION_FILE, Manifest, models_dir
from engine.scoring.statistics import clopper_pearson_upper

FORMAT = 1
GRID_DECIMALS = 3
GRID_STEP = 10.0**-GRID_DECIMALS
MIN_EVENTS = 3
CONFIDENCE = 0.95
MAX_FILE_BYTES = 2_000_000
THRESHOLD_TOLERANCE = 1e-9

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_HEADER_KEYS = (
    "format",
    "id",
    "version",
    "model_id",
    "model_sha256",
    "dataset",
    "created",
    "created_by",
    "decision_rule",
    "subjects",
    "images",
    "images_without_face",
    "genuine_pairs",
    "impostor_pairs",
    "min_events",
    "confidence",
    "grid_step",
)
DECISION_RULE = "a comparison is a match when its distance is at or below the threshold"


def _one_in(rate: float, *, round_down: bool = False) -> str:
    """``1 / rate`` to two significant figures, with thousands separators ("40,000"); one decimal below 10."""
    if rate >= 1.0:
        return "1"
    x = 1.0 / rate
    if x < 10.0:
        return f"{math.floor(x * 10) / 10:.1f}" if round_down else f"{x:.1f}"
    scale = 10 ** (math.floor(math.log10(x)) - 1)
    rounded = (math.floor(x / scale) if round_down else round(x / scale)) * scale
    return f"{int(rounded):,}"


@dataclass(frozen=True)
class FalseMatchEstimate:
    """The calibrated meaning of one distance, with the pair counts behind it."""

    distance: float
    impostor_pairs_this_close: float
    impostor_pairs: int
    rate: float | None
    upper_bound: float
    confidence: float

    @property
    def supported(self) -> bool:
        """False when too few impostor pairs scored this close to state a rate, only a bound."""
        return self.rate is not None

    def phrase(self) -> str:
        if self.rate is None:
            return f"fewer than 1 in {_one_in(self.upper_bound, round_down=True)}"
        return f"about 1 in {_one_in(self.rate)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "distance": self.distance,
            "impostor_pairs_this_close": self.impostor_pairs_this_close,
            "impostor_pairs": self.impostor_pairs,
            "rate": self.rate,
            "upper_bound": self.upper_bound,
            "confidence": self.confidence,
            "text": self.phrase(),
        }


def _fail(source: str, message: str) -> CalibrationError:
    return CalibrationError(f"calibration {source}: {message}")


@dataclass(frozen=True)
class Calibration:
    """Distance -> false-match rate for one model build, from one data set; see the module docstring."""

    id: str
    version: int
    model_id: str
    model_sha256: str
    dataset: str
    created: str
    created_by: str
    subjects: int
    images: int
    images_without_face: int
    genuine_pairs: int
    impostor_pairs: int
    distances: tuple[float, ...]
    impostor_at_or_below: tuple[int, ...]
    genuine_at_or_below: tuple[int, ...]
    min_events: int = MIN_EVENTS
    confidence: float = CONFIDENCE
    source: str = field(default="(in memory)", compare=False)

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise _fail(self.source, problems[0])

    def _problems(self) -> list[str]:
        out: list[str] = []
        if not _ID.match(self.id):
            out.append(f"id {self.id!r} must be lowercase letters, digits, '.', '_' or '-'")
        if self.version < 1:
            out.append(f"version must be 1 or more, got {self.version}")
        if not _SHA256.match(self.model_sha256):
            out.append("model_sha256 must be 64 lowercase hex digits")
        for name in ("subjects", "images", "images_without_face", "genuine_pairs", "impostor_pairs"):
            if getattr(self, name) < 0:
                out.append(f"{name} must not be negative")
        if self.impostor_pairs < 1:
            out.append("impostor_pairs must be 1 or more")
        if not 1 <= self.min_events <= 100:
            out.append("min_events must be between 1 and 100")
        if not 0.5 <= self.confidence < 1.0:
            out.append("confidence must be at least 0.5 and below 1")
        n = len(self.distances)
        if n < 2 or len(self.impostor_at_or_below) != n or len(self.genuine_at_or_below) != n:
            out.append("table must have at least two rows of [distance, impostor pairs, genuine pairs]")
            return out
        d = np.asarray(self.distances, dtype=np.float64)
        steps = np.rint(d / GRID_STEP)
        if d[0] != 0.0 or not np.allclose(d, steps * GRID_STEP, rtol=0, atol=1e-12) or np.any(np.diff(steps) != 1):
            out.append(f"table distances must run on the {GRID_STEP:g} grid from 0 without gaps")
        for name, counts, total in (
            ("impostor", self.impostor_at_or_below, self.impostor_pairs),
            ("genuine", self.genuine_at_or_below, self.genuine_pairs),
        ):
            c = np.asarray(counts, dtype=np.int64)
            if np.any(np.diff(c) < 0) or c[0] < 0 or c[-1] > total:
                out.append(f"table {name} counts must be non-decreasing and between 0 and {name}_pairs")
        if self.impostor_at_or_below[-1] != self.impostor_pairs:
            out.append("table must end at a distance every impostor pair reached")
        return out

    # Identity

    @property
    def reference(self) -> str:
        """What a policy's ``operating_point.calibration_id`` names: ``<id>.v<version>``."""
        return f"{self.id}.v{self.version}"

    @property
    def label(self) -> str:
        return f"{self.id} v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        header: dict[str, Any] = {
            "format": FORMAT,
            "id": self.id,
            "version": self.version,
            "model_id": self.model_id,
            "model_sha256": self.model_sha256,
            "dataset": self.dataset,
            "created": self.created,
            "created_by": self.created_by,
            "decision_rule": DECISION_RULE,
            "subjects": self.subjects,
            "images": self.images,
            "images_without_face": self.images_without_face,
            "genuine_pairs": self.genuine_pairs,
            "impostor_pairs": self.impostor_pairs,
            "min_events": self.min_events,
            "confidence": self.confidence,
            "grid_step": GRID_STEP,
        }
        header["table"] = [
            [round(d, GRID_DECIMALS), i, g]
            for d, i, g in zip(self.distances, self.impostor_at_or_below, self.genuine_at_or_below, strict=True)
        ]
        return header

    @cached_property
    def content_sha256(self) -> str:
        """sha256 of the canonical JSON of the content: the file carries it, the model manifest can pin it."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode("ascii")).hexdigest()

    def to_yaml(self) -> str:
        """The file text: same calibration, same bytes."""
        data = self.to_dict()
        lines = [
            "# Distance -> false-match-rate calibration of the face engine.",
            "# Generated by scripts/evaluate.py (see docs/evaluation.md); do not edit: the content hash is checked.",
        ]
        for key in _HEADER_KEYS:
            value = data[key]
            lines.append(f"{key}: {json.dumps(value) if isinstance(value, str) else repr(value)}")
        lines.append("# [distance, impostor pairs at or below it, genuine pairs at or below it]")
        lines.append("table:")
        lines += [f"  - [{d:.{GRID_DECIMALS}f}, {i}, {g}]" for d, i, g in data["table"]]
        lines.append(f"content_sha256: {json.dumps(self.content_sha256)}")
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml(), encoding="utf-8")

    def check_model(self, model_id: str, model_sha256: str) -> None:
        """Refuse to describe scores from any model build but the one this calibration measured."""
        if model_id != self.model_id or model_sha256 != self.model_sha256:
            raise CalibrationError(
                f"calibration {self.label} was measured on model {self.model_id} ({self.model_sha256[:12]}), "
                f"not on the loaded {model_id} ({model_sha256[:12]}); recalibrate with scripts/evaluate.py"
            )

    # Meaning of a distance

    @cached_property
    def _table(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        return (
            np.asarray(self.distances, dtype=np.float64),
            np.asarray(self.impostor_at_or_below, dtype=np.float64),
            np.asarray(self.genuine_at_or_below, dtype=np.float64),
        )

    def _count_at(self, distance: float, counts: npt.NDArray[np.float64]) -> float:
        d = self._table[0]
        if distance >= d[-1]:
            return float(counts[-1])
        i = int(np.searchsorted(d, distance, side="right")) - 1
        frac = (distance - d[i]) / (d[i + 1] - d[i])
        return float(counts[i] + frac * (counts[i + 1] - counts[i]))

    def _check_distance(self, distance: float) -> float:
        value = float(distance)
        if math.isnan(value) or value < 0 or math.isinf(value):
            raise CalibrationError(f"distance must be a finite number of 0 or more, got {distance!r}")
        return value

    def false_match_rate(self, distance: float) -> FalseMatchEstimate:
        """Estimated share of different-person pairs scoring at or below ``distance``, or a bound if too few did."""
        value = self._check_distance(distance)
        events = self._count_at(value, self._table[1])
        upper = clopper_pearson_upper(
            min(math.ceil(events - 1e-9), self.impostor_pairs), self.impostor_pairs, self.confidence
        )
        rate = events / self.impostor_pairs if events >= self.min_events - 1e-9 else None
        return FalseMatchEstimate(value, events, self.impostor_pairs, rate, upper, self.confidence)

    def false_non_match_rate(self, threshold: float) -> float:
        """Share of the calibration's genuine pairs scoring above ``threshold`` (missed at that setting)."""
        if self.genuine_pairs == 0:
            raise CalibrationError(f"calibration {self.label} holds no genuine pairs")
        value = self._check_distance(threshold)
        return 1.0 - self._count_at(value, self._table[2]) / self.genuine_pairs

    def describe_score(self, distance: float) -> str:
        """One line for screens and exports: the calibrated meaning, the distance and the calibration version."""
        estimate = self.false_match_rate(distance)
        where = f"distance {estimate.distance:.3f}; calibration {self.label}"
        if estimate.rate is None:
            seen = math.ceil(estimate.impostor_pairs_this_close - 1e-9)
            return (
                f"estimated false-match rate {estimate.phrase()} ({self.confidence:.0%} bound: {seen} of "
                f"{self.impostor_pairs:,} calibration pairs this close; {where})"
            )
        return f"estimated false-match rate {estimate.phrase()} ({where})"


def _typed(data: dict[str, Any], key: str, kind: type, source: str) -> Any:
    if key not in data:
        raise _fail(source, f"missing key {key!r}; regenerate the file with scripts/evaluate.py")
    value = data[key]
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise _fail(source, f"{key} must be {kind.__name__}, got {type(value).__name__}")
    return value


def parse_calibration(text: str, source: str = "(text)") -> Calibration:
    """Parse and verify the YAML text of a calibration (structure, table, content hash)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _fail(source, f"not valid YAML ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise _fail(source, "not a calibration file (expected a mapping)")
    fmt = _typed(data, "format", int, source)
    if fmt != FORMAT:
        raise _fail(source, f"format {fmt} is not supported (expected {FORMAT}); update the software or recalibrate")
    known = {*_HEADER_KEYS, "table", "content_sha256"}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise _fail(source, f"unknown key {unknown[0]!r}")
    if _typed(data, "decision_rule", str, source) != DECISION_RULE:
        raise _fail(source, "decision_rule differs from the engine's (match at or below the threshold)")
    if abs(_typed(data, "grid_step", float, source) - GRID_STEP) > 1e-15:
        raise _fail(source, f"grid_step must be {GRID_STEP:g}")
    table = _typed(data, "table", list, source)
    rows: list[tuple[float, int, int]] = []
    for n, row in enumerate(table):
        if (
            not isinstance(row, list)
            or len(row) != 3
            or not isinstance(row[0], int | float)
            or any(isinstance(x, bool) or not isinstance(x, int) for x in row[1:])
        ):
            raise _fail(source, f"table row {n} must be [distance, impostor count, genuine count]")
        rows.append((float(row[0]), int(row[1]), int(row[2])))
    calibration = Calibration(
        id=_typed(data, "id", str, source),
        version=_typed(data, "version", int, source),
        model_id=_typed(data, "model_id", str, source),
        model_sha256=_typed(data, "model_sha256", str, source),
        dataset=_typed(data, "dataset", str, source),
        created=str(_typed(data, "created", str, source)),
        created_by=_typed(data, "created_by", str, source),
        subjects=_typed(data, "subjects", int, source),
        images=_typed(data, "images", int, source),
        images_without_face=_typed(data, "images_without_face", int, source),
        genuine_pairs=_typed(data, "genuine_pairs", int, source),
        impostor_pairs=_typed(data, "impostor_pairs", int, source),
        distances=tuple(r[0] for r in rows),
        impostor_at_or_below=tuple(r[1] for r in rows),
        genuine_at_or_below=tuple(r[2] for r in rows),
        min_events=_typed(data, "min_events", int, source),
        confidence=_typed(data, "confidence", float, source),
        source=source,
    )
    recorded = _typed(data, "content_sha256", str, source)
    if recorded != calibration.content_sha256:
        raise _fail(source, "content hash does not match: the file was changed by hand; regenerate it")
    return calibration


def load_calibration(path: str | Path) -> Calibration:
    """Read and verify ``models/calibration.yaml`` (or another calibration file)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _fail(str(path), f"cannot be read ({exc.strerror or exc}); run scripts/evaluate.py") from None
    if len(raw) > MAX_FILE_BYTES:
        raise _fail(str(path), f"larger than {MAX_FILE_BYTES} bytes; this is not a calibration file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(str(path), "not UTF-8 text") from None
    return parse_calibration(text, source=str(path))


def derive_threshold(calibration: Calibration, target_fmr: float) -> float:
    """The operating threshold for a target false-match rate: the largest grid distance with observed FMR <= target.

    Refuses a target the calibration cannot support: fewer than ``min_events`` impostor pairs allowed
    to match (target * pairs < min_events) would be a guess, not a measurement.
    """
    target = float(target_fmr)
    if not 0.0 < target < 1.0:
        raise CalibrationError(f"target false-match rate must be between 0 and 1, got {target_fmr!r}")
    allowed = target * calibration.impostor_pairs * (1.0 + 1e-12)  # 3e-4 * 10,000 is 2.9999999999999996
    if allowed < calibration.min_events:
        smallest = calibration.min_events / calibration.impostor_pairs
        raise CalibrationError(
            f"target false-match rate {target:g} is below what calibration {calibration.label} can support "
            f"({calibration.impostor_pairs:,} impostor pairs; smallest supportable about {smallest:.2g}); "
            "choose a larger target or calibrate on more pairs"
        )
    counts = np.asarray(calibration.impostor_at_or_below, dtype=np.float64)
    row = int(np.searchsorted(counts, allowed, side="right")) - 1
    return float(calibration.distances[row])


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
