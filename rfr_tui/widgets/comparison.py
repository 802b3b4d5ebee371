"""The comparison view: the Probe Image's chosen face beside one Potential Match's face, to Adjudicate.

Both faces are cropped around the face with a margin, at the same zoom, with the landmarks the
face engine found drawn on request; each side says its quality warnings in words, and a line
below says which renderer draws the pictures and whether that is fit to judge a match (the
engine decides what follows from it: it refuses a Viable Match from pictures too coarse to
judge, under the policy). The pictures are fetched through the engine (each look is audited),
decoded with the engine's own hardened loader, and held only in memory while the view exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, cast

import numpy as np
from PIL import Image
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Static

from engine.casework import CandidateView, Case, Display, ProbeView
from rfr_tui.text import plain
from rfr_tui.widgets.face_image import FaceImage, Renderer
from rfr_tui.widgets.picture import Box, Point, face_picture
from rfr_tui.widgets.state_label import StateLabel, Tone
from rfr_tui.wording import said

if TYPE_CHECKING:
    from rfr_tui.app import RfrApp

ZOOMS = (1.0, 1.5, 2.0, 3.0, 4.0)
MARGIN = 0.5
UNEXPECTED = "The picture could not be shown. Try again; if it happens again, tell an engineer."


@dataclass(frozen=True)
class CandidateText:
    """What the view says about one Potential Match: which one it is, and lines such as its score and decision."""

    rank: int
    title: str
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Face:
    """A decoded photograph and the face to show in it (in the photograph's pixels)."""

    picture: Image.Image
    box: Box
    landmarks: tuple[Point, ...]
    notes: tuple[str, ...]


def display_for(renderer: Renderer) -> Display:
    """How pictures drawn by ``renderer`` were seen, as the engine records it on a decision."""
    return Display(renderer=renderer.value, fit_to_judge=renderer.fit_to_judge)


def quality_words(warnings: Sequence[str] | None) -> str:
    """A face's quality warnings in words (``None``: the face engine measured none)."""
    if warnings is None:
        return "Quality: not measured."
    if not warnings:
        return "Quality: no warnings."
    return "Quality warnings: " + "; ".join(warnings) + "."


def _decode(data: bytes, what: str) -> Image.Image:
    """The photograph upright, as the face engine saw it (its boxes and landmarks are in these pixels)."""
    from engine.faces.image_io import load_image

    loaded = load_image(data, name=what)
    return Image.fromarray(np.array(loaded.rgb, dtype=np.uint8), mode="RGB")


def _probe_face(view: ProbeView, case: Case) -> _Face:
    picture = _decode(view.image, f"the Probe Image of case {case.id}")
    face = view.face
    warnings = None if case.probe_quality is None else list(case.probe_quality.get("warnings") or [])
    if face is None:
        return _Face(picture, (0, 0, picture.width, picture.height), (), ("The chosen face is not recorded.",))
    found = f"Face {face.number} of {face.faces_found} found in the Probe Image."
    return _Face(
        picture,
        tuple(float(v) for v in face.box),  # type: ignore[arg-type]
        tuple((float(x), float(y)) for x, y in face.landmarks),
        (found, quality_words(warnings)),
    )


def _candidate_face(view: CandidateView) -> _Face:
    picture = _decode(view.image, f"the reference image of Potential Match {view.rank}")
    face = view.face
    if face is None:
        note = "Its face was not found again in the reference image: the whole image is shown."
        return _Face(picture, (0, 0, picture.width, picture.height), (), (note,))
    return _Face(
        picture,
        tuple(float(v) for v in face.box),  # type: ignore[arg-type]
        tuple((float(x), float(y)) for x, y in face.landmarks),
        (quality_words(face.warnings if face.quality is not None else None),),
    )


class ComparisonView(Vertical, can_focus=True):
    """The Probe Image's face and one Potential Match's face side by side, switched by key."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n,right", "next", "Next", id="comparison.next"),
        Binding("p,left", "previous", "Previous", id="comparison.previous"),
        Binding("plus,equals_sign", "zoom_in", "Zoom in", id="comparison.zoom_in"),
        Binding("minus", "zoom_out", "Zoom out", id="comparison.zoom_out"),
        Binding("l", "landmarks", "Landmarks", id="comparison.landmarks"),
    ]

    @dataclass
    class Shown(Message):
        """Another Potential Match is on the right."""

        view: ComparisonView
        rank: int

        @property
        def control(self) -> ComparisonView:
            return self.view

    def __init__(
        self,
        case: Case,
        candidates: Sequence[CandidateText],
        rank: int,
        *,
        stacked: bool = False,
        id: str | None = None,
    ) -> None:
        """``candidates``: the Potential Matches to step through (one: no stepping); ``stacked``: probe above."""
        super().__init__(id=id, classes="-stacked" if stacked else None)
        self._case = case
        self._texts = list(candidates)
        self._rank = rank if any(t.rank == rank for t in self._texts) else (self._texts[0].rank if candidates else 0)
        self._zoom = 0
        self._landmarks = False
        self._probe: _Face | None = None
        self._faces: dict[int, _Face] = {}  # in memory only, for as long as the view exists
        self._problems: dict[int, str] = {}
        self._probe_image = FaceImage(id="comparison-probe")
        self._candidate_image = FaceImage(id="comparison-candidate")

    # ---- what the view shows ----------------------------------------------------------------

    @property
    def rank(self) -> int:
        """The Potential Match on the right."""
        return self._rank

    @property
    def renderer(self) -> Renderer:
        return self._candidate_image.renderer

    @property
    def seen_on(self) -> Display:
        """How the pictures are seen, for the engine's record of a decision."""
        return display_for(self.renderer)

    @property
    def zoom(self) -> float:
        return ZOOMS[self._zoom]

    @property
    def landmarks_shown(self) -> bool:
        return self._landmarks

    @property
    def loaded(self) -> bool:
        """Both faces are on screen (or said why not)."""
        probe_done = self._probe is not None or -1 in self._problems
        return probe_done and (self._rank in self._faces or self._rank in self._problems)

    def compose(self) -> ComposeResult:
        renderer = self.renderer
        with Horizontal(classes="comparison--faces"):
            with Vertical(classes="comparison--side"):
                yield Static("", id="comparison-probe-title", classes="comparison--title")
                yield self._probe_image
                yield Static("", id="comparison-probe-notes", classes="comparison--notes")
            with Vertical(classes="comparison--side"):
                yield Static("", id="comparison-candidate-title", classes="comparison--title")
                yield self._candidate_image
                yield Static("", id="comparison-candidate-notes", classes="comparison--notes")
        yield StateLabel(
            renderer.notice, Tone.GOOD if renderer.fit_to_judge else Tone.WARNING, id="comparison-renderer"
        )
        yield Static("", id="comparison-settings", classes="comparison--settings")

    def on_mount(self) -> None:
        self._say_probe()
        self._say_settings()
        self._load_probe()
        self._show_candidate()

    def on_unmount(self) -> None:
        self._faces.clear()
        self._probe = None

    def set_candidates(self, case: Case, candidates: Sequence[CandidateText]) -> None:
        """New words for the Potential Matches (a decision was recorded); the pictures stay."""
        self._case = case
        self._texts = list(candidates)
        self._say_candidate()

    def show_rank(self, rank: int) -> None:
        """Put Potential Match ``rank`` on the right."""
        if rank == self._rank or not any(t.rank == rank for t in self._texts):
            return
        self._rank = rank
        self._show_candidate()
        self.post_message(self.Shown(self, rank))

    # ---- keys ---------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("next", "previous"):
            return len(self._texts) > 1  # one Potential Match: no stepping, and no keys for it in the footer
        return True

    def _step(self, by: int) -> None:
        ranks = [t.rank for t in self._texts]
        if self._rank not in ranks:
            return
        at = ranks.index(self._rank) + by
        if 0 <= at < len(ranks):
            self.show_rank(ranks[at])
        else:
            self.notify(
                "This is the last Potential Match." if by > 0 else "This is the first Potential Match.",
                title="Comparison",
            )

    def action_next(self) -> None:
        self._step(1)

    def action_previous(self) -> None:
        self._step(-1)

    def action_zoom_in(self) -> None:
        self._zoom = min(self._zoom + 1, len(ZOOMS) - 1)
        self._redraw()

    def action_zoom_out(self) -> None:
        self._zoom = max(self._zoom - 1, 0)
        self._redraw()

    def action_landmarks(self) -> None:
        self._landmarks = not self._landmarks
        self._redraw()

    # ---- loading, off the interface's thread ----------------------------------------------------

    @property
    def _rfr(self) -> RfrApp:
        return cast("RfrApp", self.app)

    def _problem(self, error: BaseException) -> str:
        return said(error, UNEXPECTED)

    def _load_probe(self) -> None:
        app, case = self._rfr, self._case
        terminal, session = app.terminal, app.session
        assert session is not None

        def done(face: _Face) -> None:
            self._probe = face
            self._say_probe()
            self._draw(self._probe_image, face)

        def failed(error: BaseException) -> None:
            self._problems[-1] = self._problem(error)
            self._say_probe()

        app.run_engine(
            self,
            lambda: _probe_face(terminal.cases.probe(session, case.id), case),
            done,
            group="comparison-probe",
            failed=failed,
        )

    def _show_candidate(self) -> None:
        self._say_candidate()
        rank = self._rank
        face = self._faces.get(rank)
        if face is not None:
            self._draw(self._candidate_image, face)
            return
        self._candidate_image.show(None)  # never the previous face under this one's name
        if not self._texts:
            return
        app, case_id = self._rfr, self._case.id
        terminal, session = app.terminal, app.session
        assert session is not None
        self._problems.pop(rank, None)

        def done(loaded: _Face) -> None:
            self._faces[rank] = loaded
            if rank == self._rank:
                self._say_candidate()
                self._draw(self._candidate_image, loaded)

        def failed(error: BaseException) -> None:
            self._problems[rank] = self._problem(error)
            if rank == self._rank:
                self._say_candidate()

        app.run_engine(
            self,
            lambda: _candidate_face(terminal.cases.candidate_view(session, case_id, rank)),
            done,
            group="comparison-candidate",
            failed=failed,
        )

    # ---- drawing ------------------------------------------------------------------------------

    def _draw(self, image: FaceImage, face: _Face) -> None:
        image.show(
            face_picture(
                face.picture,
                face.box,
                face.landmarks,
                margin=MARGIN,
                zoom_factor=self.zoom,
                overlay=self._landmarks,
            )
        )

    def _redraw(self) -> None:
        if self._probe is not None:
            self._draw(self._probe_image, self._probe)
        face = self._faces.get(self._rank)
        if face is not None:
            self._draw(self._candidate_image, face)
        self._say_settings()

    def _say_probe(self) -> None:
        self.query_one("#comparison-probe-title", Static).update(plain(f"Probe Image of case {self._case.id}"))
        if -1 in self._problems:
            notes = self._problems[-1]
        elif self._probe is None:
            notes = "Working: fetching the Probe Image..."
        else:
            notes = "\n".join(self._probe.notes)
        self.query_one("#comparison-probe-notes", Static).update(plain(notes))

    def _say_candidate(self) -> None:
        text = next((t for t in self._texts if t.rank == self._rank), None)
        title = text.title if text is not None else "No Potential Match to show"
        self.query_one("#comparison-candidate-title", Static).update(plain(title))
        if self._rank in self._problems:
            lines = [self._problems[self._rank]]
        elif self._rank in self._faces:
            lines = list(self._faces[self._rank].notes)
        elif text is not None:
            lines = ["Working: fetching the reference image and finding its face..."]
        else:
            lines = []
        if text is not None:
            lines += text.lines
        self.query_one("#comparison-candidate-notes", Static).update(plain("\n".join(lines)))

    def _say_settings(self) -> None:
        zoom = f"{self.zoom:g}x"
        marks = "shown" if self._landmarks else "hidden"
        words = f"Zoom {zoom} (+ and -)  |  Face box and landmarks {marks} (l)"
        if len(self._texts) > 1:
            words += "  |  Next and previous match: n and p"
        self.query_one("#comparison-settings", Static).update(plain(words))
