"""A list of choices whose state is written, not coloured: "[✔] Approver", "[ ] Auditor"; "(●) Temporary".

Textual's SelectionList and RadioSet tell ticked from unticked by colour alone (the same mark
in two shades), which a monochrome terminal or a person who cannot tell the colours apart would
miss. Here each line says its state with a symbol. Arrow keys move; space or Enter ticks. With
``single``, ticking one unticks the others (a choice of one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import ClassVar, Generic, TypeVar

from textual.binding import Binding, BindingType
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList

from rfr_tui.text import plain

T = TypeVar("T")


class TickList(OptionList, Generic[T]):
    """Choices (value, words), each shown with its state; ``ticked`` is what is chosen, in list order."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "select", "Tick", id="tick_list.tick", show=False),
    ]

    class Changed(Message):
        """What is ticked changed."""

        def __init__(self, tick_list: TickList[object]) -> None:
            super().__init__()
            self.tick_list = tick_list

        @property
        def control(self) -> TickList[object]:
            return self.tick_list

    def __init__(
        self,
        choices: Sequence[tuple[T, str]],
        ticked: Iterable[T] = (),
        *,
        single: bool = False,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        self._choices = list(choices)
        self._single = single
        self._ticked = {value for value in ticked if any(value == v for v, _ in self._choices)}
        super().__init__(*[self._prompt(index) for index in range(len(self._choices))], id=id, classes=classes)

    def _prompt(self, index: int) -> Content:
        value, words = self._choices[index]
        on = value in self._ticked
        mark = ("(●)" if on else "( )") if self._single else ("[✔]" if on else "[ ]")
        return plain(f"{mark} {words}")

    @property
    def ticked(self) -> list[T]:
        return [value for value, _ in self._choices if value in self._ticked]

    def tick(self, index: int) -> None:
        """Tick (or, in a list of several, untick) the choice at ``index``."""
        value = self._choices[index][0]
        if self._single:
            self._ticked = {value}
        else:
            self._ticked.symmetric_difference_update({value})
        for at in range(len(self._choices)):
            self.replace_option_prompt_at_index(at, self._prompt(at))
        self.post_message(self.Changed(self))  # type: ignore[arg-type]

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_list is not self:
            return
        event.stop()
        self.tick(event.option_index)
