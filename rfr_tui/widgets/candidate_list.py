"""The candidate list of a searched case: Potential Matches in the order the search listed them, each decision so far.

Scores appear only as the policy's ``score_display`` says (``similarity``, the calibrated
``estimated_false_match_rate`` or ``hidden``), in plain cells: no colour, no bar, no "best" mark.
Rank and score are never viability (the policy's ``rank_caution`` stands above every list), so
nothing here sorts, highlights or words a candidate by how near it scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable

from engine.casework import Case, CaseCandidate, Decision
from engine.policy import Policy
from engine.scoring import UNCALIBRATED, ScoreMeaning, meaning_for_model, scoring_json, scoring_text
from engine.terminal import Terminal
from rfr_tui.text import plain_cell
from rfr_tui.widgets.comparison import CandidateText

HEADINGS = {"similarity": "Similarity", "estimated_false_match_rate": "Estimated false-match rate"}


@dataclass(frozen=True)
class ScoreFormat:
    """How the policy in force shows a Potential Match's score, with the calibration when it asks for rates."""

    show: str
    decimals: int
    meaning: ScoreMeaning | None = None
    model_id: str | None = None
    model_sha256: str | None = None

    @classmethod
    def of(cls, policy: Policy, case: Case, meaning: ScoreMeaning | None = None) -> ScoreFormat:
        display = policy.score_display
        return cls(display.show, display.decimals, meaning, case.model_id, case.model_sha256)

    @classmethod
    def load(cls, terminal: Terminal, case: Case) -> ScoreFormat:
        """The format for ``case``; reads (and hash-checks) the calibration when the policy shows rates. Blocking."""
        meaning = None
        if terminal.policy.score_display.show == "estimated_false_match_rate" and case.model_id and case.model_sha256:
            meaning = meaning_for_model(terminal.policy, case.model_id, case.model_sha256)
        return cls.of(terminal.policy, case, meaning)

    @property
    def heading(self) -> str | None:
        """The score column's heading, or None when the policy hides scores."""
        return HEADINGS.get(self.show)

    def cell(self, candidate: CaseCandidate) -> str:
        """The short form for a list."""
        if self.show == "similarity":
            return "not kept" if candidate.score is None else f"{candidate.score:.{self.decimals}f}"
        if self.show == "estimated_false_match_rate":
            if candidate.distance is None:
                return "not kept"
            if self.meaning is None:
                return "uncalibrated"
            return self.meaning.calibration.false_match_rate(candidate.distance).phrase()
        return ""

    def words(self, candidate: CaseCandidate) -> str | None:
        """The long form, beside one Potential Match; None when the policy hides scores."""
        if self.show == "similarity":
            return f"similarity {self.cell(candidate)}"
        if self.show == "estimated_false_match_rate":
            if candidate.distance is None or self.meaning is None:
                return f"estimated false-match rate: {self.cell(candidate)}"
            return self.meaning.describe(candidate.distance)
        return None

    def note(self) -> str:
        """One sentence saying what the numbers are (and are not)."""
        if self.show == "similarity":
            return (
                "Similarity is the face model's display score, from 0 to 1, used to order the list: it is not a "
                "probability and it is not a Viable Match."
            )
        if self.show == "estimated_false_match_rate":
            if self.meaning is None:
                return f"Estimated false-match rate: {UNCALIBRATED}."
            return scoring_text(scoring_json(self.meaning, self.meaning.model_id, self.meaning.model_sha256))
        return "Scores are not shown: the policy hides them. Assess each Potential Match by eye."


def decision_words(candidate: CaseCandidate) -> str:
    """The RFR User's decision on a Potential Match, in words."""
    if candidate.decision is None:
        return "not yet adjudicated"
    who = f" ({candidate.decided_by})" if candidate.decided_by else ""
    if candidate.decision is Decision.VIABLE:
        report = ", Match Report recorded" if candidate.report is not None else ""
        return f"Viable Match{report}{who}"
    return f"not viable{who}"


def candidate_label(candidate: CaseCandidate, count: int) -> str:
    """Which Potential Match: its place in the list and what it is, never how good."""
    return (
        f"Potential Match {candidate.rank} of {count}: {candidate.subject} in {candidate.library} "
        f"(image {candidate.image_id})"
    )


class CandidateTable(DataTable[Any]):
    """The candidate list in the search's order; row keys are the ranks. Enter opens the comparison."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Compare", id="candidates.compare"),
    ]

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=False)
        self._ranks: list[int] = []

    def show_case(self, case: Case, scores: ScoreFormat) -> None:
        """Fill (or refill) the list, keeping the cursor where it was."""
        at = self.cursor_row
        self.clear(columns=True)
        self.add_column(plain_cell("Rank"), key="rank")
        self.add_column(plain_cell("Subject reference"), key="subject")
        self.add_column(plain_cell("Library"), key="library")
        self.add_column(plain_cell("Image"), key="image")
        if scores.heading is not None:
            self.add_column(plain_cell(scores.heading), key="score")
        self.add_column(plain_cell("Decision"), key="decision")
        self._ranks = []
        for c in case.candidates:
            cells = [plain_cell(str(c.rank)), plain_cell(c.subject), plain_cell(c.library), plain_cell(str(c.image_id))]
            if scores.heading is not None:
                cells.append(plain_cell(scores.cell(c)))
            cells.append(plain_cell(decision_words(c)))
            self.add_row(*cells, key=str(c.rank))
            self._ranks.append(c.rank)
        if self._ranks:
            self.move_cursor(row=min(max(at, 0), len(self._ranks) - 1))

    @property
    def ranks(self) -> list[int]:
        return list(self._ranks)

    @property
    def highlighted_rank(self) -> int | None:
        if not self._ranks or not 0 <= self.cursor_row < len(self._ranks):
            return None
        return self._ranks[self.cursor_row]

    def highlight_rank(self, rank: int) -> None:
        if rank in self._ranks:
            self.move_cursor(row=self._ranks.index(rank))


def candidate_texts(case: Case, scores: ScoreFormat) -> list[CandidateText]:
    """What the comparison view says under each Potential Match: its score (as the policy says) and decision."""
    count = len(case.candidates)
    out = []
    for c in case.candidates:
        score = scores.words(c)
        lines = ([f"Score: {score}."] if score is not None else []) + [f"Decision: {decision_words(c)}."]
        out.append(CandidateText(c.rank, candidate_label(c, count), tuple(lines)))
    return out
