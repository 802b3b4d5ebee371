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
from engine.casework.export import accuracy_caveats
from engine.policy import Policy
from engine.scoring import LibrarySize, ScoreMeaning, ScoreView, meaning_for_model
from engine.security.users import Session
from engine.terminal import Terminal
from rfr_tui.text import plain_cell
from rfr_tui.widgets.comparison import CandidateText


@dataclass(frozen=True)
class ScoreFormat:
    """How the policy in force shows a Potential Match's score, with the calibration when it asks for rates.

    The rules (which number, what it means, the 1:N meaning in the library searched) are the engine's
    ``ScoreView``; this only hands it the case's scores.
    """

    show: str
    decimals: int
    meaning: ScoreMeaning | None = None
    model_id: str | None = None
    model_sha256: str | None = None
    library: LibrarySize | None = None
    caveats: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, policy: Policy, case: Case, meaning: ScoreMeaning | None = None, library: LibrarySize | None = None
    ) -> ScoreFormat:
        display = policy.score_display
        view = ScoreView.of(policy, meaning, library)
        caveats = tuple(accuracy_caveats(case, view))
        return cls(display.show, display.decimals, meaning, case.model_id, case.model_sha256, library, caveats)

    @classmethod
    def load(cls, terminal: Terminal, case: Case, session: Session | None = None) -> ScoreFormat:
        """The format for ``case``; reads (and hash-checks) the calibration when the policy shows rates. Blocking.

        With ``session``, also what the search compared with (people, templates) for the 1:N meaning.
        """
        meaning = library = None
        if terminal.policy.score_display.show == "estimated_false_match_rate" and case.model_id and case.model_sha256:
            meaning = meaning_for_model(terminal.policy, case.model_id, case.model_sha256)
            if session is not None and meaning is not None:
                library = terminal.cases.searched_library(session, case.id)
        return cls.of(terminal.policy, case, meaning, library)

    @property
    def view(self) -> ScoreView:
        return ScoreView(self.show, self.decimals, self.meaning, self.library)

    @property
    def heading(self) -> str | None:
        """The score column's heading, or None when the policy hides scores."""
        return self.view.heading

    def cell(self, candidate: CaseCandidate) -> str:
        """The short form for a list."""
        return self.view.cell(candidate.score, candidate.distance)

    def words(self, candidate: CaseCandidate) -> str | None:
        """The long form, beside one Potential Match; None when the policy hides scores."""
        return self.view.words(candidate.score, candidate.distance)

    def note(self) -> str:
        """What the numbers are (and are not), and which accuracy figures do not apply to this Probe Image."""
        return " ".join((self.view.note(), *self.caveats))


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
