"""TUI test fixtures: pictures drawn deterministically (half-cell blocks, 10x20-pixel cells)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rfr_tui.widgets import face_image


@pytest.fixture(autouse=True)
def deterministic_pictures() -> Iterator[None]:
    """Half-cell blocks and a fixed cell size in every TUI test, put back afterwards.

    Kitty's renderer seeds its image ids at random and Sixel's writes escapes into screenshots;
    the cell size would otherwise be whatever terminal runs the tests.
    """
    forced = face_image.forced_renderer()
    previous = face_image.fix_cell_size(10, 20)
    face_image.use_renderer(face_image.Renderer.HALFCELL)
    yield
    face_image.use_renderer(forced)
    face_image.fix_cell_size(*previous)
