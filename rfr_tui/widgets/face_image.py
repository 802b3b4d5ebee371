"""A face photograph on screen with textual-image, saying which renderer draws it and if that is fit to judge.

How textual-image 0.12 chooses (read from its source): importing ``textual_image.renderable``
asks the terminal, once, while stdin is still free: Sixel if the device attributes answer
(``ESC [ c``) lists 4, else the Kitty graphics protocol if a query image is acknowledged, else
half-cell blocks on a terminal, else unicode shades when stdout is not a terminal. The cell
size in pixels comes from ``TIOCGWINSZ``, then ``ESC [ 16 t``, then 10x20, and is cached. Both
must happen before Textual starts (Textual's input thread would swallow the answers), so
importing this module does it; the application imports it before ``App.run``.

Clearing: Sixel pixels live only in the terminal's cells and go when the cells are redrawn. Kitty
images are stored in the terminal's memory; textual-image's own cleanup sends ``a=d,I=<id>``,
which (``d`` defaulting to ``a``) removes visible placements but keeps the image data. Here
every Kitty image we send is recorded and deleted with ``d=I``, which frees its data too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any, ClassVar

import textual_image.renderable as _renderables
import textual_image.widget as _widgets
from PIL import Image as PILImage
from rich.console import Console, ConsoleOptions, RenderResult
from textual.app import ComposeResult
from textual.widget import Widget
from textual_image._terminal import CellSize, get_cell_size
from textual_image.renderable.tgp import Image as _TGPRenderable

__all__ = [
    "FaceImage",
    "Renderer",
    "active_renderer",
    "detected_renderer",
    "fix_cell_size",
    "forced_renderer",
    "forget_kitty_images",
    "kitty_image_ids",
    "use_renderer",
]


class Renderer(Enum):
    """How a picture reaches the screen, and whether a person may judge a match from it."""

    KITTY = "Kitty graphics protocol"
    SIXEL = "Sixel"
    HALFCELL = "half-cell blocks"
    UNICODE = "unicode shades"

    @property
    def fit_to_judge(self) -> bool:
        """Only real pixels will do: half-cell blocks give a face about 27x36 posterised dots."""
        return self in (Renderer.KITTY, Renderer.SIXEL)

    @property
    def notice(self) -> str:
        """One sentence for the comparison view saying what the picture is drawn with."""
        if self.fit_to_judge:
            return f"Pictures drawn with {self.value}: full resolution."
        return f"Pictures drawn with {self.value}: too coarse to judge a match. Use a graphics terminal."


# ---- Kitty images: record each one sent, delete with its data ---------------------------------

_kitty_ids: set[int] = set()


def _write_to_terminal(sequence: str) -> None:
    # textual-image writes its Kitty sequences to the real stdout; deletions go the same way so
    # they reach the terminal after the images they delete.
    stream = sys.__stdout__
    if stream is None:
        return
    stream.write(sequence)
    stream.flush()


def _kitty_delete(image_id: int) -> str:
    # d=I: every placement of image i, and free its stored data (lowercase d=i would keep it).
    return f"\x1b_Ga=d,d=I,i={image_id},q=2\x1b\\"


# d=A: every placement visible on screen, freeing the data of images left with none.
KITTY_DELETE_VISIBLE = "\x1b_Ga=d,d=A,q=2\x1b\\"


def kitty_image_ids() -> frozenset[int]:
    """The Kitty images sent to the terminal and not yet deleted."""
    return frozenset(_kitty_ids)


def forget_kitty_images(write: Callable[[str], object] = _write_to_terminal) -> None:
    """Delete every recorded Kitty image from the terminal, data included, and all visible placements."""
    for image_id in sorted(_kitty_ids):
        write(_kitty_delete(image_id))
    _kitty_ids.clear()
    write(KITTY_DELETE_VISIBLE)


class _TrackedKittyRenderable(_TGPRenderable):
    """textual-image's Kitty renderable, with every image recorded and deleted with its data."""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        # Recorded at the first segment: Textual may stop reading once it has the lines it needs.
        for segment in super().__rich_console__(console, options):
            if self.terminal_image_id:
                _kitty_ids.add(self.terminal_image_id)
            yield segment

    def cleanup(self) -> None:
        if self.terminal_image_id:
            _write_to_terminal(_kitty_delete(self.terminal_image_id))
            _kitty_ids.discard(self.terminal_image_id)
            self.terminal_image_id = None


class _KittyImage(_widgets.TGPImage, Renderable=_TrackedKittyRenderable):
    """The Kitty widget drawing with the tracked renderable."""

    def on_unmount(self) -> None:
        # textual-image leaves a Kitty image in the terminal's memory when its widget goes away;
        # clearing the image runs the renderable's cleanup, which deletes it with its data.
        self.image = None


_WIDGETS: dict[Renderer, Callable[..., Widget]] = {
    Renderer.KITTY: _KittyImage,
    Renderer.SIXEL: _widgets.SixelImage,
    Renderer.HALFCELL: _widgets.HalfcellImage,
    Renderer.UNICODE: _widgets.UnicodeImage,
}

_DETECTED: dict[type[Any], Renderer] = {
    _renderables.TGPImage: Renderer.KITTY,
    _renderables.SixelImage: Renderer.SIXEL,
    _renderables.HalfcellImage: Renderer.HALFCELL,
    _renderables.UnicodeImage: Renderer.UNICODE,
}

# ---- which renderer and cell size -----------------------------------------------------------

_forced: Renderer | None = None


def detected_renderer() -> Renderer:
    """What textual-image found when it asked the terminal (at import)."""
    return _DETECTED[_renderables.Image]


def active_renderer() -> Renderer:
    """The renderer new pictures use: the one forced by :func:`use_renderer`, else the detected one."""
    return _forced or detected_renderer()


def forced_renderer() -> Renderer | None:
    """The renderer forced by :func:`use_renderer`, if any."""
    return _forced


def use_renderer(renderer: Renderer | None) -> None:
    """Force a renderer for pictures made from now on (``None``: back to what was detected).

    Tests force half-cell blocks so snapshots are deterministic (the Kitty renderer seeds image
    ids at random and the Sixel one writes escapes into the screenshot).
    """
    global _forced
    _forced = renderer


def fix_cell_size(width: int, height: int) -> CellSize:
    """Fix the terminal cell size in pixels that textual-image uses; return the previous one.

    textual-image 0.12 caches the measured size on ``get_cell_size._result``; setting it is the
    only way to a size that does not depend on the terminal the tests run in.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"a cell size must be positive, got {width}x{height}")
    previous = get_cell_size()
    get_cell_size._result = CellSize(width, height)  # type: ignore[attr-defined]
    return previous


# ---- the widget ---------------------------------------------------------------------------


class FaceImage(Widget):
    """Shows one Pillow picture (prepared with ``rfr_tui.widgets.picture``), keeping its aspect ratio.

    ``conceal()`` takes the picture off the screen and out of the terminal's memory while
    keeping it here, and ``reveal()`` puts it back: the application does that on lock.
    """

    PICTURE_CLASS: ClassVar[str] = "face-image--picture"

    def __init__(
        self,
        picture: PILImage.Image | None = None,
        *,
        renderer: Renderer | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._renderer = renderer or active_renderer()
        self._picture = picture
        self._concealed = False

    @property
    def renderer(self) -> Renderer:
        return self._renderer

    @property
    def fit_to_judge(self) -> bool:
        return self._renderer.fit_to_judge

    @property
    def picture(self) -> PILImage.Image | None:
        return self._picture

    @property
    def concealed(self) -> bool:
        return self._concealed

    def compose(self) -> ComposeResult:
        yield _WIDGETS[self._renderer](self._shown(), classes=self.PICTURE_CLASS)

    def _shown(self) -> PILImage.Image | None:
        return None if self._concealed else self._picture

    def _inner(self) -> Iterator[Any]:
        yield from self.query(f".{self.PICTURE_CLASS}")

    def _update(self) -> None:
        for inner in self._inner():
            # The image setter cleans up the previous renderable (for Kitty: deletes it, data too).
            inner.image = self._shown()

    def show(self, picture: PILImage.Image | None) -> None:
        """Show another picture (``None``: nothing)."""
        self._picture = picture
        self._update()

    def conceal(self) -> None:
        """Take the picture off the screen and out of the terminal's memory; keep it for ``reveal``."""
        self._concealed = True
        self._update()

    def reveal(self) -> None:
        """Show the concealed picture again."""
        self._concealed = False
        self._update()
