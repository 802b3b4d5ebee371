"""Text from people and files, shown exactly as written: never read as markup, never as terminal codes.

Markup in a field could fire an action (``[@click=app.quit]``) or disguise itself with styles;
an escape character in a file name would reach the terminal as a command (Textual and Rich
drop BEL and CR but pass ESC and the C1 codes through). Bidirectional overrides can make a name
read backwards. Anything that came from a user, a file, a policy or the database is shown
through :func:`plain` (or :func:`plain_cell` for a DataTable, whose ``str`` cells and column
labels are read as markup, or :func:`plain_line` for a name that must stay on one line, such as a
file's in a folder tree).
"""

from __future__ import annotations

from rich.text import Text
from textual.content import Content

# C0 controls become their visible "control pictures" (ESC shows as U+241B); C1 controls and
# bidirectional overrides and isolates become U+FFFD. Line feed and tab are kept.
_VISIBLE = {code: 0x2400 + code for code in range(0x20) if chr(code) not in "\n\t"}
_VISIBLE[0x7F] = 0x2421
_VISIBLE.update({code: 0xFFFD for code in range(0x80, 0xA0)})
_VISIBLE.update({code: 0xFFFD for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))})


def visible(text: str) -> str:
    """``text`` with every control and direction-override character replaced by a visible sign."""
    return str(text).translate(_VISIBLE)


def plain(text: str) -> Content:
    """``text`` as content with no markup and no terminal codes: brackets and ``@click`` are shown, not obeyed."""
    return Content(visible(text))


def plain_cell(text: str, style: str = "") -> Text:
    """``text`` for Rich-based widgets (DataTable cells and column labels): no markup, no terminal codes."""
    return Text(visible(text), style=style)


def plain_line(text: str, style: str = "") -> Text:
    """``text`` on one line for Rich-based widgets (tree labels): as :func:`plain_cell`, and a line feed or tab in
    it (a file may be named with one) shown as its sign, so nothing after it is hidden."""
    return Text(visible(text).replace("\n", "\u240a").replace("\t", "\u2409"), style=style)
