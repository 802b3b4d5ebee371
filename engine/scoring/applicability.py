"""Which accuracy figures apply to a Probe Image: plain sentences for the Match Report and the screens.

Every rate the terminal states was measured on held-out adult LFW people (news photographs). A probe
of a child, or a face smaller or more blurred than those photographs, is outside what those rates
measured, and the RFR User must be told so beside any score:

- under 16 (the policy's age band sets ``under_16``): no accuracy figure applies at all, because the
  engine has not been evaluated on children;
- a face the engine measures as small (inter-eye distance) or blurred (sharpness): the share of
  same-person pairs missed on held-out LFW people whose probes were degraded to about that measure,
  from ``degraded_figures.json`` (written by ``scripts/evaluate_degraded.py --install``).

The figures file is pinned by its sha256 in ``DEGRADED_FIGURES_SHA256``, like the calibration in the
model manifest: a changed file would change what the officer is told. A figure measured at another
operating threshold or on another model build is not stated; the sentence says no figure applies.

Rates follow the rule of 30: a rate is stated only when at least ``RULE_OF_30`` errors stand behind
it; below that the sentence says "fewer than N %", where N % is the lowest rate the evaluation can
show (30 errors among its pairs).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import CalibrationError
from engine.faces.quality import IED_RECOMMENDED_PX, SHARPNESS_MIN
from engine.faces.types import FaceQuality
from engine.policy import AgeBand

DEGRADED_FIGURES_FILE = Path(__file__).with_name("degraded_figures.json")
DEGRADED_FIGURES_SHA256 = "d060900847f2124808a3ad251a645be01cdbbdd37882906d9acbe6795ea4424a"
"""sha256 of ``degraded_figures.json``; ``scripts/evaluate_degraded.py --install`` rewrites both together."""

FIGURES_FORMAT = 1
MAX_FIGURES_BYTES = 1_000_000
RULE_OF_30 = 30
"""Fewest errors behind a stated rate; with fewer, only "fewer than 30 / pairs" is said."""
THRESHOLD_TOLERANCE = 1e-9

UNDER_16 = "No accuracy figure applies to probes of people under 16: the engine has not been evaluated on children."
NOT_EVALUATED = (
    "No accuracy figure applies to this image's quality: the engine's degraded-probe figures were measured "
    "at another operating threshold or on another model build."
)

# Conditions the caveats may cite, by the engine measure they are matched on. Enlarged conditions are
# never cited: a face enlarged to a size holds no more detail than it was captured with.
IED_KINDS = ("clean", "inter_eye_distance")
SHARPNESS_KINDS = ("clean", "blur")


def percent(rate: float) -> str:
    """A rate as a percentage with two significant figures at most: "31 %", "4.2 %", "0.38 %"."""
    value = 100.0 * rate
    if value == 0.0:
        return "0 %"
    if value >= 10.0:
        return f"{value:.0f} %"
    decimals = max(0, 1 - math.floor(math.log10(value)))
    return f"{value:.{decimals}f} %"


@dataclass(frozen=True)
class StatedRate:
    """An error rate as it may be stated: ``events`` of ``trials`` and its 95 % interval, under the rule of 30."""

    events: int
    trials: int
    low: float
    high: float

    def __post_init__(self) -> None:
        if self.trials < 0 or not 0 <= self.events <= self.trials:
            raise ValueError(f"need 0 <= events <= trials, got {self.events} of {self.trials}")
        if not 0.0 <= self.low <= self.high <= 1.0:
            raise ValueError(f"interval must satisfy 0 <= low <= high <= 1, got {self.low}, {self.high}")

    @property
    def rate(self) -> float:
        return self.events / self.trials if self.trials else math.nan

    @property
    def supported(self) -> bool:
        """Whether the rate itself may be stated (at least ``RULE_OF_30`` errors)."""
        return self.events >= RULE_OF_30

    @property
    def floor(self) -> float:
        """The lowest rate this evaluation can show: ``RULE_OF_30`` errors among its pairs."""
        return RULE_OF_30 / self.trials if self.trials else math.inf

    def text(self) -> str:
        """ "31 % (95 % interval 25 % to 37 %)", or "fewer than 3.8 % (the lowest rate ... can show)"."""
        if self.supported:
            return f"{percent(self.rate)} (95 % interval {percent(self.low)} to {percent(self.high)})"
        if self.floor >= 1.0:
            return f"no rate: only {self.trials} pairs, fewer than the {RULE_OF_30} errors a rate needs"
        return f"fewer than {percent(self.floor)} (the lowest rate this evaluation can show)"

    def to_json(self) -> dict[str, Any]:
        return {"events": self.events, "trials": self.trials, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class DegradedCondition:
    """One degraded-probe condition of the evaluation, with what the engine measured on its probes.

    ``measured`` holds the median of each engine quality measure over the probes found in this
    condition (``inter_eye_distance``, ``sharpness``); the caveats match a probe to the condition
    whose measure is nearest. ``enlarged`` conditions were made by enlarging the photographs and
    are never cited.
    """

    key: str
    kind: str
    label: str
    enlarged: bool
    measured: Mapping[str, float]
    people: int
    probes: int
    not_found: int
    fnmr: StatedRate
    fmr: StatedRate


@dataclass(frozen=True)
class DegradedFigures:
    """The degraded-probe figures the run time reads, for one model build at one operating threshold."""

    model_id: str
    model_sha256: str
    calibration: str
    threshold: float
    dataset: str
    conditions: tuple[DegradedCondition, ...]

    def applies_to(self, threshold: float | None, model_sha256: str | None) -> bool:
        """False when the figures were measured at another threshold or on another model build."""
        if threshold is not None and not math.isclose(
            threshold, self.threshold, rel_tol=0.0, abs_tol=THRESHOLD_TOLERANCE
        ):
            return False
        return model_sha256 is None or model_sha256 == self.model_sha256

    def nearest(self, measure: str, value: float, kinds: tuple[str, ...]) -> DegradedCondition | None:
        """The citable condition of one of ``kinds`` whose median ``measure`` is nearest ``value`` (on a log scale)."""
        candidates = [
            c for c in self.conditions if c.kind in kinds and not c.enlarged and c.measured.get(measure, 0.0) > 0.0
        ]
        here = max(value, 1e-6)
        return min(candidates, key=lambda c: abs(math.log(c.measured[measure] / here)), default=None)


def _fail(source: str, message: str) -> CalibrationError:
    return CalibrationError(
        f"degraded-probe figures {source}: {message}; re-run scripts/evaluate_degraded.py --install"
    )


def _rate(raw: Any, where: str, source: str) -> StatedRate:
    if not isinstance(raw, dict):
        raise _fail(source, f"{where} must be a mapping")
    try:
        return StatedRate(int(raw["events"]), int(raw["trials"]), float(raw["low"]), float(raw["high"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(source, f"{where} must hold events, trials, low and high ({exc})") from None


def parse_degraded_figures(data: bytes, source: str = "(bytes)", sha256: str | None = None) -> DegradedFigures:
    """Check the bytes against ``sha256`` (when given) and read the figures."""
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise _fail(source, "sha256 does not match the one the engine pins: the file was changed")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(source, f"not JSON ({type(exc).__name__})") from None
    if not isinstance(raw, dict) or raw.get("format") != FIGURES_FORMAT:
        raise _fail(source, f"format must be {FIGURES_FORMAT}")
    try:
        conditions = tuple(
            DegradedCondition(
                key=str(c["key"]),
                kind=str(c["kind"]),
                label=str(c["label"]),
                enlarged=bool(c["enlarged"]),
                measured={str(k): float(v) for k, v in c["measured"].items()},
                people=int(c["people"]),
                probes=int(c["probes"]),
                not_found=int(c["not_found"]),
                fnmr=_rate(c["fnmr"], f"condition {c['key']} fnmr", source),
                fmr=_rate(c["fmr"], f"condition {c['key']} fmr", source),
            )
            for c in raw["conditions"]
        )
        figures = DegradedFigures(
            model_id=str(raw["model_id"]),
            model_sha256=str(raw["model_sha256"]),
            calibration=str(raw["calibration"]),
            threshold=float(raw["threshold"]),
            dataset=str(raw["dataset"]),
            conditions=conditions,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _fail(source, f"malformed ({type(exc).__name__}: {exc})") from None
    if not conditions:
        raise _fail(source, "holds no conditions")
    return figures


def load_degraded_figures(path: Path | None = None, sha256: str | None = DEGRADED_FIGURES_SHA256) -> DegradedFigures:
    """Read and hash-check ``degraded_figures.json`` (another path and pin only for tests and the evaluation)."""
    path = path or DEGRADED_FIGURES_FILE
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FIGURES_BYTES + 1)
    except OSError as exc:
        raise _fail(str(path), f"cannot be read ({exc.strerror or exc})") from None
    if len(data) > MAX_FIGURES_BYTES:
        raise _fail(str(path), f"larger than {MAX_FIGURES_BYTES} bytes")
    return parse_degraded_figures(data, str(path), sha256)


def _measures(quality: FaceQuality | Mapping[str, Any]) -> dict[str, tuple[float, bool]]:
    """``name -> (value, ok)`` from a ``FaceQuality`` or its ``to_json()`` form (as a case stores it)."""
    if isinstance(quality, FaceQuality):
        return {m.name: (m.value, m.ok) for m in quality.measures}
    out: dict[str, tuple[float, bool]] = {}
    for name, entry in quality.items():
        if isinstance(entry, Mapping) and "value" in entry and "ok" in entry:
            out[str(name)] = (float(entry["value"]), bool(entry["ok"]))
    return out


def _missed(condition: DegradedCondition) -> str:
    return (
        f"{condition.fnmr.text()} of same-person pairs were missed at the operating threshold "
        "(a face the engine could not find counts as missed)"
    )


def _ied_sentence(value: float, condition: DegradedCondition) -> str:
    at = condition.measured["inter_eye_distance"]
    if condition.kind == "clean":
        where = f"at LFW's own size (about {at:.0f} px between the eyes)"
    else:
        where = f"whose probes were reduced to about this inter-eye distance ({condition.label})"
    return (
        f"This face has {value:.0f} px between the eyes ({IED_RECOMMENDED_PX:.0f} px or more is recommended). "
        f"On held-out LFW people {where}, {_missed(condition)}."
    )


def _sharpness_sentence(value: float, condition: DegradedCondition) -> str:
    at = condition.measured["sharpness"]
    if condition.kind == "clean":
        where = f"with LFW's own photographs (median sharpness {at:.0f})"
    else:
        where = f"whose probes were blurred to about this sharpness ({condition.label}: median sharpness {at:.0f})"
    return (
        f"This face is blurred (sharpness {value:.0f}; {SHARPNESS_MIN:.0f} or more is expected). "
        f"On held-out LFW people {where}, {_missed(condition)}."
    )


def _combined_sentence(condition: DegradedCondition) -> str:
    return (
        "A face both small and blurred fares worse than either alone: on held-out LFW people whose probes were "
        f"degraded as a CCTV still might be ({condition.label.removeprefix('CCTV-like: ')}), {_missed(condition)}."
    )


def probe_caveats(
    quality: FaceQuality | Mapping[str, Any] | None,
    age_band: AgeBand | bool | None,
    *,
    threshold: float | None = None,
    model_sha256: str | None = None,
    figures: DegradedFigures | None = None,
) -> list[str]:
    """Plain sentences on which accuracy figures apply to this Probe Image; empty when nothing limits them.

    ``quality`` is the probe face's measured quality (``Face.quality``, or ``Case.probe_quality``, its
    stored JSON). ``age_band`` is the policy's band for the form's apparent age
    (``policy.age_band(case.form.age_band)``) or the case's recorded flag (``"under_16" in
    case.monitoring_flags``); None when there is no form. ``threshold`` and ``model_sha256`` are the
    operating threshold and face model in force (``ScoreMeaning.threshold``, ``.model_sha256``):
    figures measured under others are not cited. ``figures`` defaults to the installed, hash-checked file.
    """
    under_16 = age_band if isinstance(age_band, bool) else age_band is not None and age_band.under_16
    if under_16:
        return [UNDER_16]  # the degraded-probe figures are adults' too: none of them applies
    caveats: list[str] = []
    if quality is None:
        return caveats
    measures = _measures(quality)
    ied = measures.get("inter_eye_distance")
    sharp = measures.get("sharpness")
    small = ied is not None and not ied[1]
    blurred = sharp is not None and not sharp[1]
    if not (small or blurred):
        return caveats
    figures = figures or load_degraded_figures()
    if not figures.applies_to(threshold, model_sha256):
        caveats.append(NOT_EVALUATED)
        return caveats
    if small and ied is not None:
        condition = figures.nearest("inter_eye_distance", ied[0], IED_KINDS)
        if condition is not None:
            caveats.append(_ied_sentence(ied[0], condition))
    if blurred and sharp is not None:
        condition = figures.nearest("sharpness", sharp[0], SHARPNESS_KINDS)
        if condition is not None:
            caveats.append(_sharpness_sentence(sharp[0], condition))
    if small and blurred:
        combined = next((c for c in figures.conditions if c.kind == "cctv"), None)
        if combined is not None:
            caveats.append(_combined_sentence(combined))
    return caveats
