"""The typed, frozen policy: what the force's RFR policy allows, as data the engine enforces.

Every field carries its documentation and constraints in ``metadata`` so that the
loader (``engine.policy.loader``) and the JSON Schema generator
(``engine.policy.json_schema``) read one source and cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, NamedTuple, Protocol

from engine.errors import PolicyError

KEY_PATTERN = r"^[a-z][a-z0-9_]*$"
_WORD = re.compile(r"[^\W\d_]{2,}")


def _squash(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum()) or text.strip()


AGE_BAND_KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"

ScoreShown = Literal["estimated_false_match_rate", "similarity", "hidden"]
LibraryKindName = Literal["substantive", "temporary"]


def meta(doc: str, **constraints: Any) -> dict[str, Any]:
    """Field metadata: a description plus constraints (minimum, maximum, pattern, min_length, min_items...)."""
    return {"doc": doc, **constraints}


@dataclass(frozen=True)
class UseCase:
    """A permitted use case: the Submission Form offers exactly these."""

    key: str = field(metadata=meta("Stable identifier used in forms, commands and the audit log.", pattern=KEY_PATTERN))
    title: str = field(metadata=meta("The policy's own words for the use case.", min_length=1))
    library_kinds: tuple[LibraryKindName, ...] = field(
        default=("substantive", "temporary"),
        metadata=meta(
            "Kinds of Permitted Image Reference Library this use case may search (substantive, temporary).",
            min_items=1,
        ),
    )


@dataclass(frozen=True)
class PreRfrCheck:
    """One Pre-RFR Check of the Submission Form's checklist: each is confirmed with what was done."""

    key: str = field(metadata=meta("Identifier recorded on the form.", pattern=KEY_PATTERN))
    label: str = field(metadata=meta("The check, in the words shown to the officer.", min_length=1))


@dataclass(frozen=True)
class TextLength:
    """The least a written answer must hold to count as an answer."""

    min_characters: int = field(metadata=meta("Fewest characters, spaces collapsed.", minimum=1, maximum=2000))
    min_words: int = field(metadata=meta("Fewest different words of two or more letters.", minimum=1, maximum=200))


@dataclass(frozen=True)
class TextRules:
    """Minimum content of written answers on the form and in the Match Report, so 'n/a' never passes as a reason."""

    short: TextLength = field(
        metadata=meta("Pre-RFR Check details, Probe Image provenance, each Match Report factor's assessment.")
    )
    reasoning: TextLength = field(
        metadata=meta("Justification, technical advice, the Match Report's reasoning, decision reasons.")
    )
    placeholders: tuple[str, ...] = field(
        default=(),
        metadata=meta("Answers that are never accepted however long (compared without case, spaces or punctuation)."),
    )

    def problem(self, text: str, tier: Literal["short", "reasoning"]) -> str | None:
        """Why ``text`` is not an answer under these rules (a phrase), or None when it is one."""
        length = self.short if tier == "short" else self.reasoning
        collapsed = " ".join(text.split())
        if _squash(collapsed) in {_squash(p) for p in self.placeholders}:
            return f"{collapsed!r} is not an answer"
        if len(collapsed) < length.min_characters:
            return f"too short (at least {length.min_characters} characters)"
        words = {w.casefold() for w in _WORD.findall(collapsed)}
        if len(words) < length.min_words:
            return f"too little said (at least {length.min_words} different words)"
        letters = [ch.casefold() for ch in collapsed if ch.isalpha()]
        if letters and max(letters.count(ch) for ch in set(letters)) > 0.6 * len(letters):
            return "not written text (one character repeated)"
        return None


@dataclass(frozen=True)
class Rank:
    """One step of the rank ladder, with the police staff grades the force treats as equivalent."""

    name: str = field(metadata=meta("Police rank.", min_length=1))
    staff_equivalents: tuple[str, ...] = field(
        default=(), metadata=meta("Police staff grades equivalent to this rank for approval purposes.")
    )


@dataclass(frozen=True)
class AgeBand:
    """An apparent age band offered on the Submission Form, with the monitoring flags it sets."""

    key: str = field(metadata=meta("Identifier used in forms and commands.", pattern=AGE_BAND_KEY_PATTERN))
    label: str = field(metadata=meta("Words shown to the officer.", min_length=1))
    under_18: bool = field(metadata=meta("Monitoring: the Probe Image appears to involve someone under 18."))
    under_16: bool = field(metadata=meta("Monitoring: the Probe Image appears to involve someone under 16."))


@dataclass(frozen=True)
class ApprovalFlag:
    """A flag an approval rule can raise on a case, with what it obliges people to do."""

    key: str = field(metadata=meta("Identifier recorded on the case.", pattern=KEY_PATTERN))
    description: str = field(metadata=meta("What the flag requires, in the policy's words.", min_length=1))
    requires_recorded_advice: bool = field(
        default=False,
        metadata=meta("The advice (who gave it, when, what) must be recorded on the case before it can be approved."),
    )


@dataclass(frozen=True)
class RuleCondition:
    """When a rule applies: every condition given must hold; an omitted condition matches anything."""

    age_bands: tuple[str, ...] | None = field(
        default=None, metadata=meta("Matches when the apparent age band is one of these keys (from age_bands).")
    )
    relevant_disability: bool | None = field(
        default=None, metadata=meta("Matches the Submission Form's 'relevant disability' answer.")
    )
    pre_dates_gender_reassignment: bool | None = field(
        default=None, metadata=meta("Matches the answer to 'the image pre-dates gender reassignment'.")
    )

    def matches(self, factors: SubjectFactorsLike) -> bool:
        if self.age_bands is not None and factors.age_band not in self.age_bands:
            return False
        if self.relevant_disability is not None and factors.relevant_disability != self.relevant_disability:
            return False
        return not (
            self.pre_dates_gender_reassignment is not None
            and factors.pre_dates_gender_reassignment != self.pre_dates_gender_reassignment
        )


@dataclass(frozen=True)
class ApprovalRule:
    """A rule that raises the approving rank and/or adds flags when the subject factors match."""

    name: str = field(metadata=meta("Short identifier of the rule, unique.", pattern=KEY_PATTERN))
    when: RuleCondition = field(metadata=meta("The subject factors that make the rule apply."))
    min_rank: str = field(metadata=meta("Lowest rank (from ranks) that may approve when the rule applies."))
    reason: str = field(metadata=meta("Why, in the policy's words; recorded on the case.", min_length=1))
    flags: tuple[str, ...] = field(default=(), metadata=meta("Flag keys (from approval.flags) set on the case."))


@dataclass(frozen=True)
class Approval:
    """Who may approve an RFR search: a default rank and rules that raise it."""

    min_rank: str = field(metadata=meta("Rank (from ranks) every search needs at least."))
    reason: str = field(metadata=meta("Why, in the policy's words; recorded on every case.", min_length=1))
    flags: tuple[ApprovalFlag, ...] = field(metadata=meta("Flags rules may set."))
    rules: tuple[ApprovalRule, ...] = field(metadata=meta("Rules applied in order; the highest rank wins."))


@dataclass(frozen=True)
class Search:
    """How an approved search runs."""

    candidate_list_size: int = field(
        metadata=meta("Number of Potential Matches returned for Adjudication.", minimum=1, maximum=200)
    )


@dataclass(frozen=True)
class ScoreDisplay:
    """How scores are shown beside Potential Matches."""

    show: ScoreShown = field(metadata=meta("Which number is shown beside a Potential Match, if any."))
    decimals: int = field(metadata=meta("Decimal places of a shown score.", minimum=0, maximum=8))
    rank_caution: str = field(
        metadata=meta("Shown with every candidate list: rank and score are not viability.", min_length=1)
    )
    intelligence_lead_statement: str = field(
        metadata=meta("Shown, printed and exported wherever a match appears.", min_length=1)
    )


@dataclass(frozen=True)
class CaseExpiry:
    """Days a case may wait in each open state before it expires and its probe data is deleted."""

    draft: int = field(metadata=meta("An unsubmitted draft.", minimum=1, maximum=90))
    submitted: int = field(metadata=meta("A submission nobody approved or rejected.", minimum=1, maximum=90))
    approved: int = field(metadata=meta("An approved case never searched.", minimum=1, maximum=90))
    searched: int = field(
        metadata=meta("A search whose Potential Matches were not all adjudicated.", minimum=1, maximum=90)
    )
    peer_review: int = field(metadata=meta("A 'no viable match' awaiting peer review.", minimum=1, maximum=90))
    adjudicated: int = field(
        metadata=meta(
            "A case with a Viable Match its RFR User never closed: the terminal closes it (probe template deleted).",
            minimum=1,
            maximum=90,
        )
    )


@dataclass(frozen=True)
class Retention:
    """How long casework data lives."""

    no_viable_match_probe_data: Literal["delete_immediately"] = field(
        metadata=meta("Probe Image, template and derived data when a peer reviewer agrees there is no Viable Match.")
    )
    rejected_case_probe_data: Literal["delete_immediately"] = field(
        metadata=meta("Probe Image, template and derived data of a rejected submission.")
    )
    withdrawn_case_probe_data: Literal["delete_immediately"] = field(
        metadata=meta("Probe Image, template and derived data of a case withdrawn before adjudication.")
    )
    viable_match_probe_template: Literal["delete_on_close"] = field(
        metadata=meta("Probe template of a case closed with a Viable Match (the Match Report keeps the image).")
    )
    case_expiry_days: CaseExpiry = field(
        metadata=meta("Open cases left waiting expire after these days, measured from the case's last change.")
    )
    sweep_minutes: int = field(
        metadata=meta(
            "Minutes between retention sweeps while the terminal runs (it also sweeps whenever it opens).",
            minimum=1,
            maximum=1440,
        )
    )


@dataclass(frozen=True)
class Sessions:
    """Sign-in sessions at the terminal."""

    idle_timeout_minutes: int = field(
        metadata=meta("Minutes without activity after which a session ends.", minimum=1, maximum=240)
    )
    reauthentication_valid_seconds: int = field(
        metadata=meta(
            "How recent a password entry must be to approve or sign off a peer review.", minimum=5, maximum=600
        )
    )


@dataclass(frozen=True)
class Passwords:
    """Rules for new passwords."""

    min_length: int = field(metadata=meta("Fewest characters in a password.", minimum=8, maximum=128))


@dataclass(frozen=True)
class Lockout:
    """Locking an account after repeated failed sign-ins."""

    max_failed_attempts: int = field(
        metadata=meta("Consecutive failed sign-ins that lock the account.", minimum=1, maximum=100)
    )
    lock_minutes: int = field(metadata=meta("Minutes an account stays locked.", minimum=1, maximum=10080))


@dataclass(frozen=True)
class Adjudication:
    """How Potential Matches are compared before a decision."""

    require_graphics_renderer: bool = field(
        metadata=meta(
            "A Viable Match may be declared only from pictures drawn with real pixels (a graphics terminal: "
            "Kitty or Sixel), never from half-cell blocks, which give a face about 27 x 36 posterised dots."
        )
    )


@dataclass(frozen=True)
class AccountSettings:
    """Administration of user accounts: two engineers for every change that grants access."""

    request_valid_hours: int = field(
        metadata=meta(
            "Hours an account change (add, roles, password reset) waits for a second engineer before it lapses.",
            minimum=1,
            maximum=168,
        )
    )


@dataclass(frozen=True)
class OperatingPoint:
    """Where the match threshold sits, stated as the false-match rate it implies."""

    target_false_match_rate: float = field(
        metadata=meta("False-match rate the force accepts per comparison.", exclusive_minimum=0.0, maximum=0.1)
    )
    calibration_id: str | None = field(
        metadata=meta("Calibration the threshold was derived from; null until a calibration exists.", min_length=1)
    )
    threshold: float | None = field(
        metadata=meta(
            "Score threshold derived from the calibration at the target rate; null until derived. "
            "Never set by hand: it must come from the named calibration.",
            minimum=0.0,
        )
    )

    @property
    def is_calibrated(self) -> bool:
        return self.calibration_id is not None and self.threshold is not None


@dataclass(frozen=True)
class SubjectFactors:
    """The Submission Form's subject factors that decide who must approve."""

    age_band: str
    relevant_disability: bool = False
    pre_dates_gender_reassignment: bool = False


class SubjectFactorsLike(Protocol):
    """Anything carrying the subject factors (a Submission Form, or ``SubjectFactors``)."""

    @property
    def age_band(self) -> str: ...

    @property
    def relevant_disability(self) -> bool: ...

    @property
    def pre_dates_gender_reassignment(self) -> bool: ...


class ApprovalRequirement(NamedTuple):
    """What approving a case takes: the lowest rank, the flags set on the case, and why."""

    min_rank: str
    flags: tuple[str, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    """The whole policy. Built only by the loader, which checks every cross-reference."""

    format: Literal[1] = field(metadata=meta("Version of this file format."))
    version: str = field(metadata=meta("The force's version of the policy, recorded on every case.", min_length=1))
    title: str = field(metadata=meta("Name of the policy document.", min_length=1))
    use_cases: tuple[UseCase, ...] = field(metadata=meta("Permitted use cases.", min_items=1))
    pre_rfr_checks: tuple[PreRfrCheck, ...] = field(
        metadata=meta("The Pre-RFR Checks every Submission Form confirms, each exhausted or unviable.", min_items=1)
    )
    text_rules: TextRules = field(metadata=meta("Minimum content of written answers."))
    ranks: tuple[Rank, ...] = field(metadata=meta("Rank ladder, lowest first.", min_items=1))
    age_bands: tuple[AgeBand, ...] = field(metadata=meta("Apparent age bands on the form.", min_items=1))
    approval: Approval = field(metadata=meta("Approval rules."))
    search: Search = field(metadata=meta("Search settings."))
    score_display: ScoreDisplay = field(metadata=meta("Score display settings."))
    adjudication: Adjudication = field(metadata=meta("Adjudication settings."))
    retention: Retention = field(metadata=meta("Retention rules."))
    sessions: Sessions = field(metadata=meta("Session settings."))
    passwords: Passwords = field(metadata=meta("Password rules."))
    lockout: Lockout = field(metadata=meta("Account lockout."))
    accounts: AccountSettings = field(metadata=meta("Account administration."))
    operating_point: OperatingPoint = field(metadata=meta("Match threshold and its false-match rate."))

    # Canonical form and identity

    def canonical_json(self) -> str:
        """The policy as compact, key-sorted JSON: comments and layout of the YAML do not change it."""
        return json.dumps(
            dataclasses.asdict(self), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )

    @cached_property
    def sha256(self) -> str:
        """Hex sha256 of the canonical form; each case records it with ``version``."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    # Lookups

    def use_case(self, key: str) -> UseCase:
        for case in self.use_cases:
            if case.key == key:
                return case
        known = ", ".join(c.key for c in self.use_cases)
        raise PolicyError(f"unknown use case {key!r}: choose one of {known}")

    @cached_property
    def _rank_levels(self) -> dict[str, tuple[int, str]]:
        levels: dict[str, tuple[int, str]] = {}
        for level, rank in enumerate(self.ranks):
            levels[rank.name] = (level, rank.name)
            for staff in rank.staff_equivalents:
                levels[staff] = (level, rank.name)
        return levels

    def is_rank(self, name: str) -> bool:
        return name in self._rank_levels

    def rank_names(self) -> tuple[str, ...]:
        """Every name on the ladder, police ranks and staff grades, lowest first."""
        return tuple(self._rank_levels)

    def rank_level(self, name: str) -> int:
        """Position on the ladder (0 = lowest); a staff grade has its police equivalent's level."""
        try:
            return self._rank_levels[name][0]
        except KeyError:
            raise PolicyError(f"unknown rank {name!r}: use a rank or staff grade from the policy") from None

    def police_rank(self, name: str) -> str:
        """The police rank a name stands for (itself, or the rank a staff grade is equivalent to)."""
        self.rank_level(name)
        return self._rank_levels[name][1]

    def rank_at_least(self, name: str, minimum: str) -> bool:
        return self.rank_level(name) >= self.rank_level(minimum)

    def age_band(self, key: str) -> AgeBand:
        for band in self.age_bands:
            if band.key == key:
                return band
        known = ", ".join(b.key for b in self.age_bands)
        raise PolicyError(f"unknown age band {key!r}: choose one of {known}")

    def monitoring_flags(self, age_band: str) -> tuple[str, ...]:
        """The monitoring flags ('under_18', 'under_16') a case with this apparent age band records."""
        band = self.age_band(age_band)
        return tuple(name for name, on in (("under_18", band.under_18), ("under_16", band.under_16)) if on)

    def pre_rfr_check(self, key: str) -> PreRfrCheck:
        for check in self.pre_rfr_checks:
            if check.key == key:
                return check
        known = ", ".join(c.key for c in self.pre_rfr_checks)
        raise PolicyError(f"unknown Pre-RFR Check {key!r}: the checks are {known}")

    def flag(self, key: str) -> ApprovalFlag:
        for flag in self.approval.flags:
            if flag.key == key:
                return flag
        raise PolicyError(f"unknown approval flag {key!r}")

    def required_approval(self, factors: SubjectFactorsLike) -> ApprovalRequirement:
        """The lowest rank that may approve a case with these subject factors, its flags, and the reasons.

        The default applies to every case; each matching rule can only raise the rank (the loader refuses
        a rule below the default) and add flags. Reasons list the default first, then matching rules in order.
        """
        self.age_band(factors.age_band)
        min_rank = self.approval.min_rank
        flags: list[str] = []
        reasons = [self.approval.reason]
        for rule in self.approval.rules:
            if not rule.when.matches(factors):
                continue
            if self.rank_level(rule.min_rank) > self.rank_level(min_rank):
                min_rank = rule.min_rank
            flags.extend(f for f in rule.flags if f not in flags)
            if rule.reason not in reasons:
                reasons.append(rule.reason)
        return ApprovalRequirement(min_rank=min_rank, flags=tuple(flags), reasons=tuple(reasons))
