"""New submission: the RFR Submission Form, walked field by field, with its Probe Image and the face to search.

Every rule is the engine's: the form is built with ``SubmissionForm.create`` (on Ctrl+R, and on
every change once it has been checked), and the sentence of its ``FormError`` is shown beside
the field it names. The use cases, the Pre-RFR Checks and the age bands are the policy's, in
its words. The Probe Image is read from a file chooser (removable media or the home folder)
with ``engine.files.read_regular_file`` and examined by the engine in a worker; the picture
with its faces numbered is kept in memory only. "Create and submit" makes the case and submits
it; "Save as draft" only makes it; either opens the case.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from PIL import Image
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.geometry import Size
from textual.widget import Widget
from textual.widgets import Checkbox, Input, RadioButton, RadioSet, SelectionList, Static, TextArea

from engine.casework import CaseState, CheckStatus, CompletedAs, ProbeExamination, ProbeSource, SubmissionForm
from engine.casework.model import Case
from engine.errors import FormError, ImageError, RfrError
from engine.files import read_regular_file
from engine.library.enrol import MAX_IMAGE_BYTES, load_rgb
from engine.library.service import LibraryInfo
from engine.security.users import User
from rfr_tui.dialogs.confirm import ConfirmDialog
from rfr_tui.dialogs.error import UNEXPECTED
from rfr_tui.screens.base import RfrScreen
from rfr_tui.text import plain
from rfr_tui.widgets import file_chooser
from rfr_tui.widgets.probe_preview import ProbePreview
from rfr_tui.wording import for_a_person, said

# "submission form: <field>[.<check>] ..." names the field at fault (engine/casework/form.py).
_FIELD = re.compile(r"^submission form: ([a-z_]+(?:\.[a-z0-9_]+)?)")
_SOURCES = {ProbeSource.POLICE: "Police-originated", ProbeSource.OTHER: "Not police-originated"}
_STATUSES = {CheckStatus.EXHAUSTED: "Exhausted", CheckStatus.UNVIABLE: "Unviable here"}
_KINDS = {"substantive": "Substantive Image Reference Libraries", "temporary": "Temporary Image Reference Libraries"}
NO_PROBE = "Load the Probe Image (Ctrl+O) before the case can be made."


def field_of(message: str) -> str | None:
    """The form field a ``FormError`` names (``reference``, ``pre_rfr_checks.circulation``, ``face``), if any."""
    found = _FIELD.match(message)
    return found.group(1) if found else None


def problem_id(field: str) -> str:
    return "problem-" + field.replace(".", "--")


def _who(user: User) -> str:
    return f"{user.display_name} ({user.username})" if user.display_name else user.username


def kinds_sentence(kinds: tuple[str, ...]) -> str:
    named = [_KINDS.get(k, f"{k} libraries") for k in kinds]
    return "This use case may search " + " and ".join(named) + "."


class WrappingRadioButton(RadioButton):
    """A radio button whose label wraps, so the policy's words are shown whole (Textual's keeps one line)."""

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(1, len(self.render().wrap(width)))


class NewSubmissionScreen(RfrScreen):
    """The RFR Submission Form for one Probe Image; Ctrl+S makes the case and submits it for approval."""

    TITLE_TEXT = "New submission: the RFR Submission Form"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+o", "load_probe", "Load Probe Image", id="submission.load_probe", priority=True),
        Binding("ctrl+r", "check", "Check the form", id="submission.check", priority=True),
        Binding("ctrl+s", "create(True)", "Create and submit", id="submission.create_submit", priority=True),
        Binding("ctrl+g", "create(False)", "Save as draft", id="submission.save_draft", priority=True),
        Binding("escape", "back", "Back", id="submission.back"),
    ]

    def __init__(self, *, places: list[file_chooser.Place] | None = None) -> None:
        super().__init__()
        self._places = places
        self._probe: bytes | None = None
        self._probe_name = ""
        self._checked = False
        self._busy = False
        self._libraries: list[LibraryInfo] = []
        self._buttons: dict[str, str] = {}  # radio button id -> the key it stands for
        self._user: User | None = None
        self._completed_as = CompletedAs.RFR_USER

    # ---- the form ------------------------------------------------------------------------------

    def body(self) -> ComposeResult:
        policy = self.terminal.policy
        user = self._user = self.terminal.user(self.session)
        completed_as = self._completed_as = self.terminal.cases.completed_as(user)
        as_words = "the RFR User" if completed_as is CompletedAs.RFR_USER else "the tasking officer / SPOC"
        with VerticalScroll(id="submission-form"):
            yield Static(
                plain(f"Completed by {_who(user)}, as {as_words}."),
                classes="form--intro",
            )
            yield self._heading("1. The search and why it is needed")
            yield self._label("Use case (the policy's permitted use cases)")
            yield self._radio("use_case", [(u.key, u.title) for u in policy.use_cases], prefix="use-case")
            yield self._problem("use_case")
            yield self._label("Crime or occurrence reference")
            yield Input(id="reference", placeholder="e.g. OCC/2026/0042")
            yield self._problem("reference")
            yield self._label("Offence type")
            yield Input(id="offence", placeholder="e.g. robbery")
            yield self._problem("offence")
            yield self._label("The legitimate aim, and why the search is necessary and proportionate")
            yield TextArea(id="justification", soft_wrap=True, tab_behavior="focus", show_line_numbers=False)
            yield self._problem("justification")

            yield self._heading("2. Pre-RFR Checks: each exhausted, or unviable here, with what was done")
            yield self._problem("pre_rfr_checks")
            for check in policy.pre_rfr_checks:
                yield Static(plain(check.label), classes="form--check")
                with Horizontal(classes="form--check-row"):
                    yield self._radio(
                        f"check-{check.key}-status",
                        [(s.value, words) for s, words in _STATUSES.items()],
                        prefix=f"check-{check.key}",
                        classes="form--status",
                    )
                    yield Input(
                        id=f"check-{check.key}-detail",
                        placeholder="What was done, or why it is unviable here",
                        classes="form--detail",
                    )
                yield self._problem(f"pre_rfr_checks.{check.key}")

            yield Static(plain("3. The Probe Image"), id="probe-heading", classes="form--heading")
            yield ProbePreview(id="probe")
            yield Static("", id="probe-working", classes="form--working")
            yield self._problem("probe")
            yield self._problem("face")
            yield self._label("Source")
            yield self._radio("probe_source", [(s.value, w) for s, w in _SOURCES.items()], prefix="source")
            yield self._problem("probe_source")
            yield self._label("When it was captured (YYYY-MM-DD, or YYYY-MM-DDTHH:MM in UTC)")
            yield Input(id="probe_captured", placeholder="YYYY-MM-DD")
            yield self._problem("probe_captured")
            yield self._label("How it was obtained, and from whom")
            yield Input(id="probe_obtained", placeholder="e.g. exported from the shop's CCTV by PC 1234")
            yield self._problem("probe_obtained")

            yield self._heading("4. Subject factors (what you can see or suspect)")
            yield self._label("Apparent age band")
            yield self._radio("age_band", [(b.key, b.label) for b in policy.age_bands], prefix="age")
            yield self._problem("age_band")
            yield Checkbox(
                plain("A relevant disability that affects facial appearance is suspected"), id="relevant_disability"
            )
            yield Checkbox(
                plain("The image pre-dates the subject's gender reassignment"), id="pre_dates_gender_reassignment"
            )
            yield self._label("Head or face coverings (leave empty if none)")
            yield Input(id="coverings")
            yield self._problem("coverings")
            yield self._label("Injuries (leave empty if none)")
            yield Input(id="injuries")
            yield self._problem("injuries")

            yield self._heading("5. Permitted Image Reference Libraries to search")
            yield Static(
                plain("Choose the use case first: it decides which kinds of library may be searched."),
                id="library-kinds",
            )
            yield SelectionList[str](id="libraries")
            yield self._problem("libraries")
        yield Static(
            plain("Ctrl+R checks the form; Ctrl+S makes the case and submits it; Ctrl+G saves it as a draft."),
            id="form-status",
        )

    @staticmethod
    def _heading(text: str) -> Static:
        return Static(plain(text), classes="form--heading")

    @staticmethod
    def _label(text: str) -> Static:
        return Static(plain(text), classes="entry-label")

    @staticmethod
    def _problem(field: str) -> Static:
        return Static("", id=problem_id(field), classes="entry-problem")

    def _radio(self, id: str, choices: list[tuple[str, str]], *, prefix: str, classes: str | None = None) -> RadioSet:
        buttons = []
        for key, words in choices:
            button_id = f"{prefix}-{key}"
            self._buttons[button_id] = key
            buttons.append(WrappingRadioButton(plain(words), id=button_id))
        return RadioSet(*buttons, id=id, classes=classes)

    def on_mount(self) -> None:
        self.query_one("#use_case", RadioSet).focus()
        session = self.session
        self.run_engine(lambda: self.terminal.libraries.listing(session), self._libraries_listed, group="libraries")

    # ---- libraries and what the use case may search ---------------------------------------------

    def _libraries_listed(self, libraries: list[LibraryInfo]) -> None:
        self._libraries = libraries
        self._show_libraries()

    def _show_libraries(self) -> None:
        use_case = self._chosen("use_case")
        allowed: tuple[str, ...] | None = None
        kinds = self.query_one("#library-kinds", Static)
        if use_case is not None:
            allowed = tuple(self.terminal.policy.use_case(use_case).library_kinds)
            kinds.update(plain(kinds_sentence(allowed)))
        selection = self.query_one("#libraries", SelectionList)
        chosen = set(selection.selected)
        highlighted = selection.highlighted
        selection.clear_options()
        if not self._libraries:
            kinds.update(plain("No Permitted Image Reference Library is held on this terminal: tell an engineer."))
        for info in self._libraries:
            lib = info.library
            kind = lib.kind.value
            words = f"{lib.name}  ({kind}, {info.images:,} images"
            if lib.expires_at is not None:
                words += f", authorised until {lib.expires_at:%Y-%m-%d}"
            words += ")"
            if allowed is not None and kind not in allowed:
                words += "  - not a kind this use case may search"
            selection.add_option((plain(words), lib.name, lib.name in chosen))
        if selection.option_count:  # Space ticks the highlighted library: there always is one
            selection.highlighted = 0 if highlighted is None else min(highlighted, selection.option_count - 1)

    # ---- reading the form ------------------------------------------------------------------------

    def _chosen(self, radio_id: str) -> str | None:
        pressed = self.query_one(f"#{radio_id}", RadioSet).pressed_button
        return None if pressed is None or pressed.id is None else self._buttons.get(pressed.id)

    def _text(self, field: str) -> str:
        return self.query_one(f"#{field}", Input).value

    def _checks(self) -> dict[str, tuple[str, str]]:
        answers: dict[str, tuple[str, str]] = {}
        for check in self.terminal.policy.pre_rfr_checks:
            status = self._chosen(f"check-{check.key}-status") or ""
            detail = self._text(f"check-{check.key}-detail")
            if status or detail.strip():  # untouched: the engine says the check is missing
                answers[check.key] = (status, detail)
        return answers

    def _form(self) -> SubmissionForm:
        """The form as it stands, built and checked by the engine (``FormError`` names the field)."""
        assert self._user is not None, "the form is read only once it is on screen"
        return SubmissionForm.create(
            self.terminal.policy,
            completed_by=self._user.username,
            completed_as=self._completed_as,
            use_case=self._chosen("use_case") or "",
            reference=self._text("reference"),
            offence=self._text("offence"),
            justification=self.query_one("#justification", TextArea).text,
            pre_rfr_checks=self._checks(),
            probe_source=self._chosen("probe_source") or "",
            probe_captured=self._text("probe_captured"),
            probe_obtained=self._text("probe_obtained"),
            age_band=self._chosen("age_band") or "",
            relevant_disability=self.query_one("#relevant_disability", Checkbox).value,
            pre_dates_gender_reassignment=self.query_one("#pre_dates_gender_reassignment", Checkbox).value,
            coverings=self._text("coverings"),
            injuries=self._text("injuries"),
            libraries=list(self.query_one("#libraries", SelectionList).selected),
            now=self.terminal.ws.now(),
        )

    # ---- problems beside their fields --------------------------------------------------------------

    def _clear_problems(self) -> None:
        for shown in self.query(".entry-problem"):
            if isinstance(shown, Static):
                shown.update("")
                shown.remove_class("-shown")

    def show_problem(self, field: str, sentence: str, *, focus: bool = False) -> None:
        """Show ``sentence`` beside ``field`` (and on the status line); optionally move to the field."""
        self._clear_problems()
        matches = self.query(f"#{problem_id(field)}")
        target = matches.first(Static) if matches else None
        if target is not None:
            target.update(plain(f"✖ {sentence}"))
            target.add_class("-shown")
        self.query_one("#form-status", Static).update(plain(f"✖ {sentence}"))
        if focus:
            self._focus_field(field, target)

    def _focus_field(self, field: str, problem: Widget | None) -> None:
        widget: Widget | None = None
        if field == "face":
            if self.query_one("#probe", ProbePreview).focus_choice():
                return
        elif field.startswith("pre_rfr_checks."):
            key = field.split(".", 1)[1]
            status = self.query(f"#check-{key}-status")
            if status and self._chosen(f"check-{key}-status") is None:
                widget = status.first()
            else:
                detail = self.query(f"#check-{key}-detail")
                widget = detail.first() if detail else None
        else:
            found = self.query(f"#{field}")
            widget = found.first() if found else None
        if widget is not None and widget.focusable:
            widget.focus()
        elif problem is not None:
            problem.scroll_visible()

    def _check(self, *, focus: bool) -> SubmissionForm | None:
        try:
            form = self._form()
        except FormError as exc:
            sentence = for_a_person(exc.diagnostics())
            self.show_problem(field_of(sentence) or "form", sentence, focus=focus)
            return None
        self._clear_problems()
        ready = "the form is complete" + ("" if self._probe else "; load the Probe Image (Ctrl+O)")
        self.query_one("#form-status", Static).update(plain(f"✔ Checked: {ready}."))
        return form

    def action_check(self) -> None:
        self._checked = True
        self._check(focus=True)

    def _changed(self) -> None:
        if self._checked:
            self._check(focus=False)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._changed()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_next()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self._changed()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._changed()

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        if event.radio_set.id == "use_case":
            self._show_libraries()
        self._changed()

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged[str]) -> None:
        self._changed()

    # ---- the Probe Image -------------------------------------------------------------------------

    def action_load_probe(self) -> None:
        if self._busy:
            return
        places = self._places if self._places is not None else file_chooser.default_places()
        dialog = file_chooser.FileChooserDialog.open_image(
            places,
            title="Load the Probe Image",
            purpose="Choose the Probe Image (JPEG or PNG) on removable media or in your home folder.",
        )
        self.app.push_screen(dialog, self._probe_chosen)

    def _probe_chosen(self, path: Path | None) -> None:
        if path is None:
            return
        session = self.session
        terminal = self.terminal

        def examine() -> tuple[bytes, ProbeExamination, Image.Image]:
            data = read_regular_file(path, limit=MAX_IMAGE_BYTES, what="Probe Image", error=ImageError)
            examination = terminal.cases.examine_probe(session, data)
            picture = Image.fromarray(load_rgb(data, "the Probe Image"), mode="RGB")
            return data, examination, picture

        def examined(result: tuple[bytes, ProbeExamination, Image.Image]) -> None:
            data, examination, picture = result
            self._busy = False
            self._probe, self._probe_name = data, path.name
            self.query_one("#probe-working", Static).update("")
            self._clear_problems()
            preview = self.query_one("#probe", ProbePreview)
            preview.show(examination, picture, path.name)
            self.call_after_refresh(self._probe_shown)
            self._changed()

        def failed(error: BaseException) -> None:
            self._busy = False
            self.query_one("#probe-working", Static).update("")
            self.show_problem("probe", said(error, UNEXPECTED))

        self._busy = True
        self.query_one("#probe-working", Static).update(plain(f"Reading {path.name} and finding its faces..."))
        self.run_engine(examine, examined, group="probe", failed=failed)

    def _probe_shown(self) -> None:
        """Bring the picture into view; with several faces, the choice gets the focus."""
        preview = self.query_one("#probe", ProbePreview)
        preview.focus_choice(scroll=False)
        self.query_one("#probe-heading").scroll_visible(top=True, animate=False)

    def on_probe_preview_chosen(self, event: ProbePreview.Chosen) -> None:
        if event.number is not None and self.query(f"#{problem_id('face')}.-shown"):
            self._clear_problems()

    # ---- making the case -------------------------------------------------------------------------

    def action_create(self, submit: bool) -> None:
        if self._busy:
            return
        self._checked = True
        form = self._check(focus=True)
        if form is None:
            return
        if self._probe is None:
            self.show_problem("probe", NO_PROBE)
            self.query_one("#probe", ProbePreview).scroll_visible()
            return
        session, probe = self.session, self._probe
        face = self.query_one("#probe", ProbePreview).chosen
        cases = self.terminal.cases

        def make() -> tuple[Case, RfrError | None]:
            case = cases.new_case(session, form, probe, face=face)
            if not submit:
                return case, None
            try:
                return cases.submit(session, case.id), None
            except RfrError as exc:  # the draft stands; the case screen says what stopped the submission
                return case, exc

        self._busy = True
        doing = "Making the case and submitting it..." if submit else "Saving the case as a draft..."
        self.query_one("#form-status", Static).update(plain(doing))
        self.run_engine(make, self._made, group="create", failed=self._not_made)

    def _made(self, result: tuple[Case, RfrError | None]) -> None:
        from rfr_tui.screens.cases import CaseScreen

        case, problem = result
        self._busy = False
        self._forget_probe()
        if case.state is CaseState.SUBMITTED:
            self.app.notify(f"Case {case.id} submitted: it needs approval by {case.required_rank} or above.")
        else:
            self.app.notify(f"Case {case.id} saved as a draft: submit it from the case (s) when it is ready.")
        self.app.switch_screen(CaseScreen(case.id))
        if problem is not None:
            self.rfr.show_error(problem)

    def _not_made(self, error: BaseException) -> None:
        self._busy = False
        if isinstance(error, FormError):
            sentence = for_a_person(error.diagnostics())
            self.show_problem(field_of(sentence) or "form", sentence, focus=True)
        elif isinstance(error, ImageError):
            self.show_problem("probe", for_a_person(error.diagnostics()))
        else:
            self.query_one("#form-status", Static).update("")
            self.rfr.show_error(error)

    def _forget_probe(self) -> None:
        self._probe = None
        self.query_one("#probe", ProbePreview).clear()

    # ---- leaving ---------------------------------------------------------------------------------

    def _anything_given(self) -> bool:
        if self._probe is not None or self.query_one("#justification", TextArea).text.strip():
            return True
        if any(field.value.strip() for field in self.query(Input)):
            return True
        return any(radio.pressed_button is not None for radio in self.query(RadioSet))

    def action_back(self) -> None:
        if not self._anything_given():
            self.app.pop_screen()
            return

        def answered(leave: bool | None) -> None:
            if leave:
                self._forget_probe()
                self.app.pop_screen()

        self.app.push_screen(
            ConfirmDialog(
                "Leave the form? What you typed and the Probe Image are discarded; nothing is saved.",
                yes="Leave and discard",
                no="Stay",
                dangerous=True,
            ),
            answered,
        )


__all__ = ["NewSubmissionScreen", "field_of", "kinds_sentence"]
