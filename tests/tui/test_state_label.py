"""State labels carry a symbol and words, never colour alone."""

from __future__ import annotations

import pytest
from textual.app import ComposeResult

from rfr_tui.lockdown import LockedDownApp
from rfr_tui.widgets.state_label import SYMBOLS, StateLabel, Tone, state_text
from tests.tui.support import run


def test_every_tone_has_its_own_symbol_and_the_words_come_with_it() -> None:
    assert len(set(SYMBOLS.values())) == len(Tone)
    for tone in Tone:
        assert state_text("Awaiting  approval\n", tone).plain == f"{SYMBOLS[tone]} Awaiting approval"


@pytest.mark.parametrize("words", ["", "   ", "\n"])
def test_a_state_without_words_is_refused(words: str) -> None:
    with pytest.raises(ValueError, match="needs words"):
        state_text(words, Tone.BAD)


def test_the_label_shows_words_as_written_and_its_class_follows_the_state() -> None:
    class Shows(LockedDownApp[None]):
        def compose(self) -> ComposeResult:
            yield StateLabel("[b]Approved[/b]", Tone.GOOD)

    async def body() -> list[tuple[str, set[str]]]:
        app = Shows()
        seen = []
        async with app.run_test() as pilot:
            label = app.query_one(StateLabel)
            seen.append((str(label.render()), set(label.classes)))
            label.set_state("Rejected", Tone.BAD)
            await pilot.pause()
            seen.append((str(label.render()), set(label.classes)))
        return seen

    assert run(body) == [("✔ [b]Approved[/b]", {"state--good"}), ("✖ Rejected", {"state--bad"})]
