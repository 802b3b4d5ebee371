#!/usr/bin/env python3
"""Build the demo terminal that ``make run`` opens, once: users for each role, libraries from LFW, cases.

    .venv/bin/python scripts/demo.py [--folder demo] [--data ../shared/data] [--rebuild]

The demo is a terminal like any other, made the way an installer and two engineers make one
(``engine.terminal.Terminal``): a configuration file, an encrypted workspace, its key file and
audit signing key file, accounts asked for by one engineer and confirmed by another, each
password then changed by its owner (so nobody is asked to change one at sign-in), libraries
created and enrolled by an engineer with the real face engine, and cases taken through the
state machine by the people whose work each step is. Nothing is written around the engine:
every record, audit event and refusal rule is the one a real terminal would have.

The photographs are Labeled Faces in the Wild (LFW, University of Massachusetts, Amherst),
news photographs published for research; they are read from ``RFR_DATA`` and held only inside
the encrypted workspace, never copied into the repository. Each person is enrolled under a
pseudonymous reference (``lfw-person-07``): the cases are fictional, and no real person is tied
to an offence. The terminal's name says it is a demo and where the photographs came from,
and the application shows that name on the sign-in screen and in the status bar.

Beside the terminal, the build makes a demo oversight (``demo/oversight/``, which ``make
run-oversight`` opens) the way ``rfr oversight keys init``, ``rfr oversight init``, ``rfr oversight
user add`` and ``rfr oversight terminals add`` make one: the oversight key pair, whose public half
the terminal is configured with; an oversight workspace with its own engineers and an auditor; the
demo terminal registered with its audit public key. The terminal's auditor then exports one audit
bundle to ``demo/media/`` (standing in for removable media), as ``rfr audit export`` does. The
bundle is not imported: that is left to the person trying the oversight's application.

Built in a hidden folder beside ``--folder`` and renamed into place when complete, so an
interrupted build never leaves a half-made demo; an existing demo is left alone (``--rebuild``
deletes it and builds afresh: its cases are subject to the policy's expiry like any other).
"""

from __future__ import annotations

import argparse
import csv
import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from engine.audit import public_key_pem  # noqa: E402
from engine.audit.export import ExportResult  # noqa: E402
from engine.casework import MatchReport, SubmissionForm  # noqa: E402
from engine.errors import RfrError  # noqa: E402
from engine.files import read_regular_file, write_new_file  # noqa: E402
from engine.oversight.keys import create_key_pair  # noqa: E402
from engine.oversight.service import Oversight, OversightConfig  # noqa: E402
from engine.security.keys import WorkspaceKey, new_key  # noqa: E402
from engine.security.users import Accounts, ReauthPurpose, Session  # noqa: E402
from engine.terminal import Terminal, TerminalConfig  # noqa: E402

# The terminal's name also names its audit bundles, so it keeps to letters, digits, '.', '_' and '-'.
TERMINAL_NAME = "DEMO-photographs-from-LFW"
PASSWORD = "demo password"  # the demo's published password (README): nothing real
MARKER = "ABOUT-THIS-DEMO.txt"
CUSTODY = "custody"
TEMPORARY = "kestrel"
SOURCE = "Labeled Faces in the Wild (LFW), University of Massachusetts, Amherst: news photographs, demo only"
PEOPLE = 40  # enrolled in the custody library, each with several photographs
MIN_PHOTOS = 6  # a custody subject has at least this many, one of them held out as a Probe Image
ENROL_AT_MOST = 8  # photographs enrolled per subject
TEMPORARY_PEOPLE = 6
ENGINEERS = ("eng1", "eng2")
# The demo oversight (``make run-oversight``), in --folder beside the terminal, and the folder standing in for media.
OVERSIGHT = "oversight"
MEDIA = "media"
OVERSIGHT_PUBLIC_KEY = "keys/oversight-public.pem"  # where the terminal keeps the oversight's public key
# name: (roles, rank, display name)
UserTable = dict[str, tuple[tuple[str, ...], str | None, str]]
USERS: UserTable = {
    "officer": (("rfr_user",), "Constable", "PC Jordan Lee (demo)"),
    "tasking": (("tasking_officer",), "Sergeant", "DS Sam Patel (demo)"),
    "inspector": (("approver",), "Inspector", "Insp. Chris Morgan (demo)"),
    "superintendent": (("approver",), "Superintendent", "Supt. Alex Reid (demo)"),
    "reviewer": (("peer_reviewer",), None, "Robin Hale, central unit (demo)"),
    "auditor": (("auditor",), None, "Kim Doyle, audit (demo)"),
}
OVERSIGHT_USERS: UserTable = {"auditor": USERS["auditor"]}
CHECKS = {
    "local_intelligence": ("exhausted", "Fictional demo: local briefing and intelligence systems searched, no trace"),
    "circulation": ("exhausted", "Fictional demo: circulated to response and neighbourhood teams, nobody knew them"),
    "other_enquiries": ("exhausted", "Fictional demo: witnesses spoken to and shop records checked without result"),
    "biometric_identification": ("unviable", "Fictional demo: no fingerprints or DNA were left at the scene"),
}


def say(started: float, text: str) -> None:
    print(f"[{time.monotonic() - started:6.1f} s] {text}", flush=True)


# ---- which photographs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    reference: str  # pseudonymous: the folder name it is enrolled under (the LFW label stays in the paths)
    enrol: tuple[Path, ...]
    held_out: Path  # never enrolled: a Probe Image of someone who is in the library


@dataclass(frozen=True)
class Selection:
    custody: tuple[Subject, ...]
    temporary: tuple[Subject, ...]
    stranger: Path  # a photograph of someone in neither library


def _photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() == ".jpg" and p.is_file())


def _spread(items: Sequence[Path], count: int) -> list[Path]:
    """``count`` items evenly spread through ``items`` (sorted), so the choice is deterministic and varied."""
    if len(items) < count:
        raise SystemExit(f"demo: LFW has only {len(items)} suitable people where {count} are needed: check RFR_DATA")
    return [items[i * len(items) // count] for i in range(count)]


def choose(images: Path) -> Selection:
    """People with several photographs each, spread over LFW's alphabetical list; the last photograph held out."""
    if not images.is_dir():
        raise SystemExit(
            f"demo: the LFW photographs are not at {images}: set RFR_DATA to the shared data folder (see its README)"
        )
    people = sorted(p for p in images.iterdir() if p.is_dir())
    counts = {p: len(_photos(p)) for p in people}
    many = [p for p in people if counts[p] >= MIN_PHOTOS]
    few = [p for p in people if 4 <= counts[p] < MIN_PHOTOS]
    two = [p for p in people if counts[p] == 2]

    def subject(prefix: str, number: int, folder: Path) -> Subject:
        photos = _photos(folder)
        return Subject(f"{prefix}-{number:02d}", tuple(photos[:-1][:ENROL_AT_MOST]), photos[-1])

    custody = tuple(subject("lfw-person", i + 1, p) for i, p in enumerate(_spread(many, PEOPLE)))
    temporary = tuple(subject("lfw-kestrel", i + 1, p) for i, p in enumerate(_spread(few, TEMPORARY_PEOPLE)))
    stranger = _photos(two[len(two) // 2])[0]
    return Selection(custody, temporary, stranger)


def _sexes(demographics: Path) -> dict[str, str]:
    """LFW image file name -> female or male, from the hand-checked lists beside the photographs (if present)."""
    out: dict[str, str] = {}
    for sex in ("male", "female"):
        listing = demographics / "gender" / f"{sex}_names.txt"
        if listing.is_file():
            for line in listing.read_text(encoding="utf-8").splitlines():
                name = line.strip()
                if name:
                    out[name if name.endswith(".jpg") else f"{name}.jpg"] = sex
    return out


def stage_folder(subjects: Sequence[Subject], into: Path, sexes: dict[str, str]) -> Path:
    """One folder per subject of links to the LFW photographs (nothing copied), and a metadata CSV beside it."""
    folder = into / "subjects"
    folder.mkdir()
    rows = []
    for s in subjects:
        (folder / s.reference).mkdir()
        for photo in s.enrol:
            (folder / s.reference / photo.name).symlink_to(photo)
        labels = [sexes[p.name] for p in s.enrol if p.name in sexes]
        sex = labels[0] if labels and len(set(labels)) == 1 else "unknown"
        rows.append({"subject": s.reference, "sex": sex, "source": SOURCE})
    metadata = into / "metadata.csv"
    with metadata.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=["subject", "sex", "source"])
        writer.writeheader()
        writer.writerows(rows)
    return folder


# ---- the terminal and its people -----------------------------------------------------------------


def write_config(folder: Path) -> Path:
    """The terminal configuration, with paths relative to it (so the demo folder can be moved whole)."""
    keys = folder / "keys"
    keys.mkdir(mode=0o700)
    config = folder / "terminal.yaml"
    settings = {
        "terminal": TERMINAL_NAME,
        "workspace": "workspace",
        "workspace_key_file": "keys/workspace.key",
        "audit_key_file": "keys/audit-signing.key",
        "oversight_key_file": OVERSIGHT_PUBLIC_KEY,  # given to the terminal by the oversight (rfr audit export)
    }
    header = (
        "# The demo terminal built by scripts/demo.py (make run). Not a real terminal: its photographs are from\n"
        "# Labeled Faces in the Wild (University of Massachusetts, Amherst) and its cases are fictional.\n"
    )
    config.write_text(header + yaml.safe_dump(settings, sort_keys=False), encoding="utf-8")
    return config


def provision(accounts: Accounts, users: UserTable, started: float, where: str = "") -> dict[str, Session]:
    """Accounts as a workspace makes them: the first engineer, a second, then each asked for and confirmed."""
    first = secrets.token_urlsafe(18)  # each account's first password, set by an engineer, changed at once
    accounts.bootstrap_engineer(ENGINEERS[0], PASSWORD, display_name="Engineer One (demo)")
    eng1 = accounts.login(ENGINEERS[0], PASSWORD)
    accounts.request_add(ENGINEERS[1], ["engineer"], by=eng1, display_name="Engineer Two (demo)", password=first)
    accounts.change_password(ENGINEERS[1], first, PASSWORD)
    eng2 = accounts.login(ENGINEERS[1], PASSWORD)
    sessions = {ENGINEERS[0]: eng1, ENGINEERS[1]: eng2}
    say(started, f"{where}engineers eng1 and eng2 added")
    for name, (roles, rank, display) in users.items():
        request = accounts.request_add(name, roles, by=eng1, rank=rank, display_name=display)
        accounts.confirm(request.id, by=eng2, password=first)
        accounts.change_password(name, first, PASSWORD)
        say(started, f"{where}user {name} asked for by eng1, confirmed by eng2, password changed by {name}")
    return sessions


def enrol(
    terminal: Terminal,
    engineer: Session,
    library: str,
    subjects: Sequence[Subject],
    sexes: dict[str, str],
    started: float,
) -> None:
    with tempfile.TemporaryDirectory(prefix="rfr-demo-") as scratch:
        folder = stage_folder(subjects, Path(scratch), sexes)
        total = sum(len(s.enrol) for s in subjects)
        step = max(1, total // 8)

        def progress(p: Any) -> None:
            if p.done % step == 0 or p.done == p.total:
                say(
                    started, f"  {library}: {p.done}/{p.total} photographs ({p.enrolled} enrolled, {p.skipped} skipped)"
                )

        report = terminal.libraries.enrol(
            engineer, library, folder, metadata=Path(scratch) / "metadata.csv", progress=progress
        )
    say(
        started,
        f"library {library}: {report.enrolled} photographs of {report.subjects_added} people enrolled, "
        f"{len(report.skipped)} skipped, in {report.seconds:.1f} s",
    )


# ---- cases --------------------------------------------------------------------------------------


@dataclass
class People:
    terminal: Terminal
    sessions: dict[str, Session] = field(default_factory=dict)

    def __call__(self, name: str) -> Session:
        if name not in self.sessions:
            self.sessions[name] = self.terminal.sign_in(name, PASSWORD)
        return self.sessions[name]

    def sign_out_all(self) -> None:
        for session in self.sessions.values():
            self.terminal.sign_out(session)
        self.sessions.clear()


def _central_face(terminal: Terminal, session: Session, probe: bytes) -> int | None:
    """The face nearest the centre (LFW's labelled person), when the photograph shows several."""
    seen = terminal.cases.examine_probe(session, probe)
    if len(seen.faces) <= 1:
        return None
    cx, cy = seen.width / 2, seen.height / 2

    def off_centre(face: Any) -> float:
        left, top, right, bottom = face.box
        return float(((left + right) / 2 - cx) ** 2 + ((top + bottom) / 2 - cy) ** 2)

    return int(min(seen.faces, key=off_centre).number)


def new_case(people: People, by: str, probe: Path, *, now: datetime, days_ago: int, story: dict[str, Any]) -> str:
    terminal = people.terminal
    session = people(by)
    image = probe.read_bytes()
    fields: dict[str, Any] = {
        "completed_by": by,
        "completed_as": "tasking_officer" if by == "tasking" else "rfr_user",
        "use_case": "identify_unknown_subject",
        "pre_rfr_checks": CHECKS,
        "probe_source": "police",
        "probe_captured": (now - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M"),
        "age_band": "adult",
        "libraries": [CUSTODY],
        "now": now,
        **story,
    }
    form = SubmissionForm.create(terminal.policy, **fields)
    return terminal.cases.new_case(session, form, image, face=_central_face(terminal, session, image)).id


def approve(people: People, case_id: str, approver: str = "inspector") -> None:
    session = people(approver)
    people.terminal.accounts.reauthenticate(session, PASSWORD, ReauthPurpose.APPROVE)
    people.terminal.cases.approve(
        session, case_id, "Fictional demo: necessary and proportionate; other lines of enquiry exhausted"
    )


def match_report(probe_quality_warnings: Sequence[str]) -> MatchReport:
    quality = "; ".join(probe_quality_warnings) or "no warnings measured"
    return MatchReport.from_mapping(
        {
            "factors": {
                "probe_image_quality": {
                    "relevant": True,
                    "assessment": f"News photograph standing in for a CCTV still ({quality}); face clear and frontal",
                },
                "reference_image_quality": {
                    "relevant": False,
                    "assessment": "Reference photograph sharp and well lit, face near frontal",
                },
                "time_lapse": {
                    "relevant": True,
                    "assessment": "Photographs taken at different events; hair differs, features agree",
                },
                "lighting": {"relevant": False, "assessment": "Even light in both photographs, no hard shadows"},
                "other": {
                    "relevant": False,
                    "assessment": "No coverings or eyewear in either photograph; expression differs slightly",
                },
            },
            "reasoning": (
                "Fictional demo case. Face shape, eyebrows, nose and ears agree in both photographs, and the "
                "differences are explained by expression and the time between them. An intelligence lead only."
            ),
        }
    )


def adjudicate_all(people: People, case_id: str, viable_reference: str | None) -> None:
    """Decide every Potential Match: the probe's own subject a Viable Match (with its report), the rest not."""
    terminal = people.terminal
    session = people("officer")
    case = terminal.cases.case(case_id)
    warnings = list((case.probe_quality or {}).get("warnings") or [])
    for candidate in case.candidates:
        viable = viable_reference is not None and candidate.subject == viable_reference
        report = match_report(warnings) if viable else None
        terminal.cases.adjudicate(session, case_id, candidate.rank, "viable" if viable else "not_viable", report)


def make_cases(terminal: Terminal, chosen: Selection, started: float) -> list[tuple[str, str]]:
    """A case in each state a demo user meets, every step by the person whose work it is."""
    people = People(terminal)
    now = datetime.now(UTC)
    custody = chosen.custody
    made: list[tuple[str, str]] = []

    def story(number: int, offence: str, justification: str, obtained: str) -> dict[str, str]:
        return {
            "reference": f"DEMO/2026/{number:04d}",
            "offence": f"{offence} (fictional demo case)",
            "justification": f"Fictional demo case: {justification}",
            "probe_obtained": f"Fictional demo: {obtained}",
        }

    # Closed with a Viable Match and its Match Report.
    closed = new_case(
        people,
        "officer",
        custody[0].held_out,
        now=now,
        days_ago=9,
        story=story(
            1,
            "Theft from a shop",
            "identify the person seen taking goods, to progress the investigation; every other enquiry is done.",
            "still exported from the shop's CCTV by the store manager",
        ),
    )
    terminal.cases.submit(people("officer"), closed)
    approve(people, closed)
    result = terminal.cases.search(people("officer"), closed)
    adjudicate_all(people, closed, custody[0].reference)
    terminal.cases.close(people("officer"), closed, "Fictional demo: intelligence lead passed to the investigation")
    made.append((closed, f"closed with a Viable Match and its Match Report ({len(result.candidates)} candidates)"))
    say(started, f"case {closed}: closed, Viable Match")

    # In peer review: no Viable Match (the person is in no library), waiting for a second opinion.
    review = new_case(
        people,
        "officer",
        chosen.stranger,
        now=now,
        days_ago=6,
        story=story(
            2,
            "Criminal damage",
            "identify the person seen damaging a bus shelter; witnesses and local enquiries found nobody.",
            "photograph taken by a witness on a phone and handed to PC 4471",
        ),
    )
    terminal.cases.submit(people("officer"), review)
    approve(people, review)
    terminal.cases.search(people("officer"), review)
    adjudicate_all(people, review, None)
    made.append((review, "in peer review: no Viable Match, waiting for the peer reviewer"))
    say(started, f"case {review}: in peer review")

    # Searched: the candidate list waits for the officer to Adjudicate.
    searched = new_case(
        people,
        "officer",
        custody[1].held_out,
        now=now,
        days_ago=4,
        story=story(
            3,
            "Assault occasioning actual bodily harm",
            "identify the person seen striking the victim outside a bar; door staff did not know them.",
            "still exported from the bar's CCTV by its licensee",
        ),
    )
    terminal.cases.submit(people("officer"), searched)
    approve(people, searched)
    terminal.cases.search(people("officer"), searched)
    made.append((searched, "searched: Potential Matches to Adjudicate"))
    say(started, f"case {searched}: searched, to adjudicate")

    # Approved, not yet searched: finding other imagery in the temporary library (that use case's only kind).
    approved = new_case(
        people,
        "officer",
        chosen.temporary[0].held_out,
        now=now,
        days_ago=3,
        story={
            **story(
                4,
                "Conspiracy to supply controlled drugs (Operation Kestrel)",
                "find other imagery of a known suspect in the operation's seized material; approved and authorised.",
                "surveillance photograph from the operation's log, entry 118",
            ),
            "use_case": "find_other_imagery",
            "libraries": [TEMPORARY],
        },
    )
    terminal.cases.submit(people("officer"), approved)
    approve(people, approved, "superintendent")
    made.append((approved, f"approved, ready to search the temporary library {TEMPORARY}"))
    say(started, f"case {approved}: approved, ready to search")

    # Submitted: waiting for an approver.
    submitted = new_case(
        people,
        "officer",
        custody[2].held_out,
        now=now,
        days_ago=2,
        story=story(
            5,
            "Robbery of a mobile phone",
            "identify the person seen taking a phone by force; the victim did not know them and no other trace.",
            "still exported from the council's street CCTV by its control room",
        ),
    )
    terminal.cases.submit(people("officer"), submitted)
    made.append((submitted, "submitted: waiting for an approver (inspector or superintendent)"))
    say(started, f"case {submitted}: submitted")

    # A draft, completed by the tasking officer for an investigation, not yet submitted.
    draft = new_case(
        people,
        "tasking",
        custody[3].held_out,
        now=now,
        days_ago=1,
        story=story(
            6,
            "Burglary of a dwelling",
            "identify the person seen leaving the house with a bag; house-to-house enquiries found no witness.",
            "doorbell camera still handed over by the neighbour",
        ),
    )
    made.append((draft, "draft: completed by the tasking officer, not yet submitted"))
    say(started, f"case {draft}: draft")

    people.sign_out_all()
    return made


# ---- the oversight and an audit bundle -------------------------------------------------------------


def make_oversight(folder: Path, terminal_name: str, terminal_audit_key: str, started: float) -> Path:
    """The oversight's machine, as 'rfr oversight keys init', 'init', 'user add' and 'terminals add' make it.

    Returns the oversight's public key file, for the terminal.

    The private key's passphrase is the demo's published password, passed here in the process (the
    command asks for it, or reads ``RFR_OVERSIGHT_PASSPHRASE``): never on a command line.
    """
    # Every key of the demo oversight lives in keys/ beside its workspace, so the demo folder is whole. A real
    # oversight never keeps keys beside the workspace: the private key and its passphrase are kept apart, and
    # the workspace key file and audit signing key file are held as a terminal's are ("Who holds what").
    folder.mkdir(mode=0o700)
    keys = folder / "keys"
    keys.mkdir(mode=0o700)
    private, public = keys / "oversight.key", keys / "oversight-public.pem"
    key_id = create_key_pair(private, public, PASSWORD)
    say(started, f"oversight key pair made (X25519, key id {key_id[:16]}); the private key under its passphrase")
    config = OversightConfig(folder / "workspace", keys / "audit-signing.key", keys / "workspace.key")
    with Oversight.create(config, new_key(new_key_file=config.key_file)) as oversight:
        say(started, "oversight workspace created")
        sessions = provision(oversight.accounts, OVERSIGHT_USERS, started, where="oversight: ")
        for session in sessions.values():
            oversight.accounts.logout(session)
        auditor = oversight.accounts.login("auditor", PASSWORD)
        try:
            record = oversight.add_terminal(auditor, terminal_name, terminal_audit_key.encode("ascii"))
        finally:
            oversight.accounts.logout(auditor)
    say(started, f"oversight: terminal {record.name} registered by auditor with audit key {record.keys[0][:16]}")
    return public


def give_public_key(public_key: Path, terminal_folder: Path) -> None:
    """The oversight's public key, copied to where the terminal's configuration names it (``oversight_key_file``)."""
    data = read_regular_file(public_key, limit=16 * 1024, what="oversight public key file")
    write_new_file(terminal_folder / OVERSIGHT_PUBLIC_KEY, data, what="oversight public key file", mode=0o644)


def export_bundle(terminal: Terminal, media: Path, started: float) -> ExportResult:
    """One audit bundle, exported by the terminal's auditor to the folder standing in for removable media."""
    media.mkdir(mode=0o700)
    session = terminal.sign_in("auditor", PASSWORD)
    try:
        result = terminal.exports.export(session, media)
    finally:
        terminal.sign_out(session)
    say(
        started,
        f"audit bundle of seq {result.first}-{result.last} ({result.events} events, quarters "
        f"{', '.join(result.quarters)}) exported by auditor to {MEDIA}/{result.path.name}",
    )
    return result


# ---- the whole build -----------------------------------------------------------------------------


def build(folder: Path, data: Path) -> None:
    started = time.monotonic()
    chosen = choose(data / "lfw" / "images")
    sexes = _sexes(data / "lfw" / "demographics")
    staging = folder.parent / f".{folder.name}.building-{secrets.token_hex(4)}"
    staging.mkdir(mode=0o700)
    try:
        config = TerminalConfig.resolve(config_file=write_config(staging), env={})
        key = WorkspaceKey.generate()
        assert config.key_file is not None
        key.write_key_file(config.key_file)
        with Terminal.create(config, key) as terminal:
            terminal.faces.start()  # the models load while the accounts are made
            say(started, f"terminal {TERMINAL_NAME!r} created; the face engine is loading")
            sessions = provision(terminal.accounts, USERS, started)
            engineer = sessions[ENGINEERS[0]]
            terminal.libraries.create(engineer, CUSTODY, "substantive", description=f"Demo custody images. {SOURCE}.")
            enrol(terminal, engineer, CUSTODY, chosen.custody, sexes, started)
            terminal.libraries.create(
                engineer,
                TEMPORARY,
                "temporary",
                authorisation="DEMO/AUTH/0001 (fictional)",
                expires_at=datetime.now(UTC) + timedelta(days=90),
                description=f"Demo temporary library for the fictional Operation Kestrel. {SOURCE}.",
            )
            enrol(terminal, engineer, TEMPORARY, chosen.temporary, sexes, started)
            for session in sessions.values():
                terminal.sign_out(session)
            cases = make_cases(terminal, chosen, started)
            sizes = terminal.status().libraries
            audit_key = public_key_pem(terminal.ws.audit_public_key)  # as recorded at the terminal's installation
            give_public_key(make_oversight(staging / OVERSIGHT, config.name, audit_key, started), staging)
            bundle = export_bundle(terminal, staging / MEDIA, started)
        text = about(cases, sizes, folder, bundle)
        (staging / MARKER).write_text(text, encoding="utf-8")
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    say(started, f"demo terminal built in {folder}")
    print(text, end="", flush=True)


def about(cases: Sequence[tuple[str, str]], sizes: Sequence[Any], folder: Path, bundle: ExportResult) -> str:
    users = ", ".join([*ENGINEERS, *USERS])
    oversight = folder / OVERSIGHT
    keys = oversight / "keys"
    lines = [
        f"Demo terminal {TERMINAL_NAME}: a demonstration, not a real terminal.",
        "Photographs: Labeled Faces in the Wild (LFW), University of Massachusetts, Amherst (research use;",
        "copyright stays with the photographers), enrolled under pseudonymous references. Every case is fictional.",
        f"Users ({users}): password {PASSWORD!r} for everyone (see the README's demo section).",
        "Libraries: " + ", ".join(f"{s.name} ({s.kind}, {s.images} photographs of {s.subjects} people)" for s in sizes),
        "Cases:",
        *(f"  {case_id}  {what}" for case_id, what in cases),
        f"Open it with: RFR_CONFIG={folder / 'terminal.yaml'} .venv/bin/rfr   (make run opens the one in demo/)",
        "",
        f"Demo oversight in {oversight}: its workspace, and its keys beside it in keys/ (a real oversight never",
        "keeps them there). Users eng1, eng2 and auditor, password 'demo password'; the oversight private key",
        f"keys/oversight.key has the passphrase 'demo password'. Terminal {TERMINAL_NAME} is registered there.",
        f"Audit bundle exported by the terminal's auditor, not yet imported: {folder / MEDIA / bundle.path.name}",
        f"  (seq {bundle.first}-{bundle.last}, {bundle.events} events, quarters {', '.join(bundle.quarters)})",
        f"Open it with: .venv/bin/rfr-oversight --workspace {oversight / 'workspace'}",
        f"  --key-file {keys / 'workspace.key'} --audit-key-file {keys / 'audit-signing.key'}",
        f"  --private-key {keys / 'oversight.key'}",
        "  (make run-oversight opens the one in demo/, with demo/media as the home folder its file chooser offers)",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folder", type=Path, default=REPO / "demo", help="where the demo terminal lives")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("RFR_DATA", REPO.parent / "shared" / "data")),
        help="the shared data folder holding lfw/ (default: RFR_DATA, else ../shared/data)",
    )
    parser.add_argument("--rebuild", action="store_true", help="delete the existing demo and build it afresh")
    args = parser.parse_args(argv)
    folder: Path = args.folder.absolute()
    if folder.exists() and args.rebuild:
        if not (folder / MARKER).is_file():
            print(f"demo: {folder} was not built by this script ({MARKER} is missing): not deleting it")
            return 2
        shutil.rmtree(folder)
    if folder.exists():
        print(f"demo terminal already built in {folder} (scripts/demo.py --rebuild builds it afresh)")
        if not (folder / OVERSIGHT).is_dir():
            print("  it was built before the demo had an oversight: scripts/demo.py --rebuild adds one")
        return 0
    print("Building the demo terminal and its oversight (once; about a minute): photographs from LFW, UMass Amherst")
    try:
        build(folder, args.data.absolute())
    except RfrError as exc:
        print(f"demo: {exc.diagnostics()}")
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
