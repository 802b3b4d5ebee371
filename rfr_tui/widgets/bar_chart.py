"""Horizontal bar charts in characters, readable without colour: every bar has its label and number beside it.

A bar is drawn in block characters (eighths of a cell at its end, so close values still
differ); its label is written before it and its figure after it, so the chart reads the same
on a monochrome terminal, in the high-contrast theme, or to someone who cannot tell colours
apart. A rate is drawn on a fixed 0 to 100% scale with its interval on the line beneath
(``├───┤`` from the low to the high end, as the engine computed it) and an axis under the
chart. A group with no stable figure gets words in place of a bar (the engine's words, e.g.
"too small for a stable figure (4 records; needs 30)"), never a bar that would look like one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Static

from rfr_tui.text import plain

FULL = "█"
# Bars end in eighths of a cell: index n is n eighths.
EIGHTHS = ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")
DEFAULT_WIDTH = 30
MAX_LABEL = 40


@dataclass(frozen=True)
class Bar:
    """One row of a chart: a label, a value to draw (None: words instead), and the figure written beside it.

    ``interval`` (low, high) is drawn beneath a rate's bar; ``note`` replaces the bar with words
    (a group too small for a stable figure).
    """

    label: str
    value: float | None
    figure: str = ""
    interval: tuple[float, float] | None = None
    note: str | None = None


def bar_text(fraction: float, width: int) -> str:
    """A bar ``fraction`` (0 to 1) of ``width`` cells long; anything above zero shows at least an eighth."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    if fraction > 0 and eighths == 0:
        eighths = 1
    return FULL * (eighths // 8) + EIGHTHS[eighths % 8]


def interval_text(low: float, high: float, width: int) -> str:
    """``├───┤`` from ``low`` to ``high`` (fractions of the scale) in ``width`` cells; one mark if they meet."""
    low, high = min(max(low, 0.0), 1.0), min(max(high, 0.0), 1.0)
    start = min(int(low * width), width - 1)  # the cells that hold each end
    end = max(min(int(high * width), width - 1), start)
    if end == start:
        return " " * start + "┼"
    return " " * start + "├" + "─" * (end - start - 1) + "┤"


def axis_text(width: int) -> str:
    """``0%``, ``50%`` and ``100%`` under a rate chart's bars."""
    middle = "50%"
    left = "0%".ljust(width // 2 - len(middle) // 2)
    line = left + middle
    return line + "100%".rjust(width - len(line))


def chart_lines(
    bars: Sequence[Bar],
    *,
    maximum: float | None = None,
    width: int = DEFAULT_WIDTH,
    rates: bool = False,
) -> list[str]:
    """The chart as lines of text: label, bar, figure; intervals beneath rates; an axis under a rate chart.

    ``maximum`` is the value of a full bar: 1.0 for rates, else the largest value (at least 1).
    """
    if not bars:
        return ["none"]
    scale = maximum if maximum is not None else (1.0 if rates else max([b.value or 0.0 for b in bars] + [1.0]))
    label_width = min(max(len(b.label) for b in bars), MAX_LABEL)
    lines: list[str] = []
    for bar in bars:
        label = _fit(bar.label, label_width).ljust(label_width)
        indent = " " * (label_width + 2)
        if bar.note is not None or bar.value is None:
            lines.append(f"{label}  {bar.note or bar.figure}".rstrip())
            continue
        drawn = bar_text(bar.value / scale if scale else 0.0, width)
        lines.append(f"{label}  {drawn.ljust(width)}  {bar.figure}".rstrip())
        if bar.interval is not None:
            low, high = bar.interval
            lines.append(f"{indent}{interval_text(low / scale, high / scale, width)}".rstrip())
    if rates and any(b.note is None and b.value is not None for b in bars):
        lines.append(" " * (label_width + 2) + axis_text(width))
    return lines


def _fit(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class BarChart(Widget):
    """A titled chart of :class:`Bar` rows (labels, figures and notes are shown as plain text, never markup)."""

    DEFAULT_CSS = """
    BarChart {
        height: auto;
        width: 100%;
    }
    BarChart > .bar-chart--title {
        text-style: bold;
    }
    BarChart > .bar-chart--body {
        width: auto;
        padding-left: 2;
    }
    """

    def __init__(
        self,
        title: str,
        bars: Sequence[Bar],
        *,
        rates: bool = False,
        maximum: float | None = None,
        width: int = DEFAULT_WIDTH,
        footnote: str = "",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.bars = list(bars)
        self.footnote = footnote
        self._lines = chart_lines(self.bars, maximum=maximum, width=width, rates=rates)

    @property
    def lines(self) -> list[str]:
        """What the chart shows, line by line (for tests and the screen reader alike)."""
        return list(self._lines)

    @property
    def text(self) -> str:
        return "\n".join([self.title, *self._lines, *([self.footnote] if self.footnote else [])])

    def compose(self) -> ComposeResult:
        yield Static(plain(self.title), classes="bar-chart--title")
        yield Static(plain("\n".join(self._lines)), classes="bar-chart--body")
        if self.footnote:
            yield Static(plain(self.footnote), classes="bar-chart--footnote")
