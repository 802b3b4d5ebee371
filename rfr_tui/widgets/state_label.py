"""State labels that never rely on colour alone: every one carries words and a symbol.

Colour comes from the theme through the ``state--<tone>`` class; a person who cannot tell red
from green, or a monochrome terminal, still reads the symbol and the words.
"""

from __future__ import annotations

from enum import StrEnum

from textual.content import Content
from textual.widgets import Static

from rfr_tui.text import plain


class Tone(StrEnum):
    """What a state means to the person looking at it."""

    GOOD = "good"
    WARNING = "warning"
    BAD = "bad"
    INFO = "info"
    NEUTRAL = "neutral"


SYMBOLS: dict[Tone, str] = {
    Tone.GOOD: "✔",
    Tone.WARNING: "⚠",
    Tone.BAD: "✖",
    Tone.INFO: "◆",
    Tone.NEUTRAL: "•",
}


def state_text(words: str, tone: Tone) -> Content:
    """The symbol and the words, as plain text (no markup is read from ``words``)."""
    words = " ".join(words.split())
    if not words:
        raise ValueError("a state needs words, not only a colour or a symbol")
    return plain(f"{SYMBOLS[tone]} {words}")


class StateLabel(Static):
    """A state shown with a symbol, words and (from the theme) a colour."""

    def __init__(
        self,
        words: str,
        tone: Tone = Tone.NEUTRAL,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(state_text(words, tone), name=name, id=id, classes=classes)
        self._tone = tone
        self._words = words
        self.add_class(f"state--{tone}")

    @property
    def tone(self) -> Tone:
        return self._tone

    @property
    def words(self) -> str:
        return self._words

    def set_state(self, words: str, tone: Tone) -> None:
        """Show another state."""
        self.update(state_text(words, tone))
        self.remove_class(f"state--{self._tone}")
        self._tone, self._words = tone, words
        self.add_class(f"state--{tone}")
