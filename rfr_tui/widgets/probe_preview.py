"""The Probe Image as the officer loaded it: every face the engine found boxed and numbered, each face's
quality warnings, whether it had to be enlarged, and (with several faces) the choice of one.

The picture is drawn in memory from the decoded image (the engine's own decoder, so the boxes
land where the engine found the faces) and never written anywhere. The numbers are the engine's:
faces numbered left to right, the number ``new_case`` takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import RadioButton, RadioSet, Static

from engine.casework import FaceSeen, ProbeExamination
from rfr_tui.text import plain
from rfr_tui.widgets.face_image import FaceImage
from rfr_tui.widgets.picture import BOX_COLOUR, OUTLINE, draw_overlay

# A picture larger than this on its longer side is shrunk for the screen (after drawing, so the
# boxes and numbers shrink with it); the terminal never needs more.
MAX_SIDE = 1600


def numbered_faces(picture: Image.Image, faces: Sequence[FaceSeen]) -> Image.Image:
    """A copy of ``picture`` with each face's box, landmarks and number drawn on it, shrunk for the screen."""
    out = picture.convert("RGB")
    for face in faces:
        out = draw_overlay(out, box=face.box, landmarks=face.landmarks)
    draw = ImageDraw.Draw(out)
    for face in faces:
        left, top, right, bottom = face.box
        size = max(14, round(max(right - left, bottom - top, max(out.size) / 12) * 0.4))
        font = ImageFont.load_default(size=size)
        label = str(face.number)
        text_box = draw.textbbox((0, 0), label, font=font)
        width, height = text_box[2] - text_box[0], text_box[3] - text_box[1]
        pad = max(2, size // 6)
        x = min(max(left, 0), max(out.width - width - 2 * pad, 0))
        y = top - height - 2 * pad if top - height - 2 * pad >= 0 else min(max(top, 0), out.height - height - 2 * pad)
        draw.rectangle((x, y, x + width + 2 * pad, y + height + 2 * pad), fill=BOX_COLOUR, outline=OUTLINE)
        draw.text((x + pad - text_box[0], y + pad - text_box[1]), label, fill=OUTLINE, font=font)
    if max(out.size) > MAX_SIDE:
        out.thumbnail((MAX_SIDE, MAX_SIDE))
    return out


def face_line(face: FaceSeen) -> str:
    """One face and its measured quality, in words."""
    if face.quality is None:
        return f"Face {face.number}: quality not measured"
    if not face.warnings:
        return f"Face {face.number}: no quality warnings"
    return f"Face {face.number}: ⚠ " + "; ⚠ ".join(face.warnings)


def summary(examination: ProbeExamination, source: str) -> str:
    """What was loaded and what the engine found, with the enlargement sentence when it had to enlarge."""
    count = len(examination.faces)
    found = (
        "no face found"
        if count == 0
        else ("1 face found" if count == 1 else f"{count} faces found, numbered left to right")
    )
    lines = [f"{source}: {examination.width} x {examination.height} pixels; {found}."]
    if examination.upsample > 0 and count:
        lines.append(f"The picture had to be enlarged to find a face ({examination.note}).")
    if count == 0:
        lines.append(
            f"No face was found ({examination.note or 'at its own size'}): this image cannot be searched. "
            "Load a clearer image of the face."
        )
    elif count > 1:
        lines.append(f"Choose the face to search with: press its number (1 to {count}) in the list below.")
    return "\n".join(lines)


class FaceChoice(RadioSet):
    """One button per face; a digit key chooses that face."""

    def on_key(self, event: events.Key) -> None:
        if event.character and event.character.isdigit():
            buttons = list(self.query(RadioButton))
            index = int(event.character) - 1
            if 0 <= index < len(buttons):
                event.stop()
                buttons[index].value = True


class ProbePreview(Vertical):
    """The loaded Probe Image and its faces; ``chosen`` is the face number to search with (None: not chosen)."""

    @dataclass
    class Chosen(Message):
        """The officer chose a face (or a new picture cleared the choice)."""

        number: int | None

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._examination: ProbeExamination | None = None
        self._chosen: int | None = None
        self._choice: FaceChoice | None = None  # the list of faces now shown (an old one may still be leaving)

    @property
    def examination(self) -> ProbeExamination | None:
        return self._examination

    @property
    def chosen(self) -> int | None:
        return self._chosen

    def compose(self) -> ComposeResult:
        with Horizontal(id="probe-row"):
            yield FaceImage(None, id="probe-picture")
            with Vertical(id="probe-facts"):
                yield Static(plain("No Probe Image loaded yet: press Ctrl+O to load one."), id="probe-summary")
                yield Static("", id="probe-faces")

    def show(self, examination: ProbeExamination, picture: Image.Image, source: str) -> None:
        """Show a newly examined Probe Image (``picture`` decoded as the engine decodes it)."""
        self._examination = examination
        faces = examination.faces
        self._chosen = 1 if len(faces) == 1 else None
        self.query_one("#probe-picture", FaceImage).show(numbered_faces(picture, faces))
        self.query_one("#probe-summary", Static).update(plain(summary(examination, source)))
        self.query_one("#probe-faces", Static).update(plain("\n".join(face_line(f) for f in faces)))
        self._drop_choice()
        if len(faces) > 1:
            # No id: the list it replaces may still be leaving the screen.
            self._choice = FaceChoice(*[RadioButton(plain(f"Face {f.number}"), id=f"face-{f.number}") for f in faces])
            self.query_one("#probe-facts", Vertical).mount(self._choice)
        self.post_message(self.Chosen(self._chosen))

    def _drop_choice(self) -> None:
        if self._choice is not None:
            self._choice.remove()
            self._choice = None

    def clear(self) -> None:
        """Forget the picture (nothing of it stays on screen)."""
        self._examination = None
        self._chosen = None
        self.query_one("#probe-picture", FaceImage).show(None)
        self.query_one("#probe-summary", Static).update(plain("No Probe Image loaded yet: press Ctrl+O to load one."))
        self.query_one("#probe-faces", Static).update("")
        self._drop_choice()
        self.post_message(self.Chosen(None))

    def choose(self, number: int) -> None:
        """Choose face ``number`` (as the digit key or the list does)."""
        if self._choice is not None:
            self._choice.query_one(f"#face-{number}", RadioButton).value = True

    def focus_choice(self, *, scroll: bool = True) -> bool:
        """Put the focus on the face list, if there is one to choose from."""
        if self._choice is None:
            return False
        self._choice.focus(scroll_visible=scroll)
        return True

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        if event.radio_set is not self._choice:
            return
        event.stop()
        self._chosen = int((event.pressed.id or "face-0").removeprefix("face-")) or None
        self.post_message(self.Chosen(self._chosen))
