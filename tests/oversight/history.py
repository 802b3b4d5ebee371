"""A known casework history on a real terminal, exported as audit bundles, and an oversight to import them.

The history (``CUSTODY-01``, the synthetic face engine, 4 Potential Matches a search; each case
uses the same Probe Image, so every candidate list is the same 4 reference images):

- 2026 Q3: case A (identify_unknown_subject, adult) approved, searched, rank 1 viable, closed;
  case B (locate_missing_person, 16-17) approved, searched, none viable, peer review agreed;
  case C (identify_unknown_subject, 13-15) submitted and rejected; case D (custody_safeguarding,
  adult) approved, searched, none viable, peer review sent back (still open at the export);
  case E (identify_unknown_subject) withdrawn as a draft. Export 1.
- 2026 Q4 (2 October): case D adjudicated again, rank 1 viable, closed; case F (exploited_children, under 13)
  approved by a Superintendent, searched, left open. Export 2.

``copies`` of the terminal's files taken right after export 1 make the fork (a clone used before
export 2 was made) and the rollback (the backup restored after export 2 was made).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from engine.audit import AuditSigningKey
from engine.audit.bundle import read_bundle, unseal
from engine.casework import MatchReport
from engine.casework.monitoring import MonitoringFigures
from engine.oversight.keys import create_key_pair, read_private_key
from engine.oversight.service import Oversight, OversightConfig
from engine.policy import load_default_policy
from engine.policy.model import Search
from engine.security.keys import WorkspaceKey
from engine.security.users import Session
from engine.terminal import Terminal, TerminalConfig
from engine.workspace import Workspace
from tests.synthetic import synthetic_jpeg, write_subject_folders
from tests.terminals import FAST, PASSWORD, provision, synthetic_faces

TERMINAL = "CUSTODY-01"
CANDIDATES = 4
PASSPHRASE = "oversight passphrase, long enough"
PEOPLE: dict[str, tuple[list[str], str | None]] = {
    "alice": (["rfr_user"], "Constable"),
    "ivan": (["approver"], "Inspector"),
    "sue": (["approver"], "Superintendent"),
    "pat": (["peer_reviewer"], None),
    "ann": (["auditor"], None),
}
# The library's recorded fields for its four subjects (custody-0 .. custody-3).
SUBJECTS = {
    "custody-0": ("female", "IC1"),
    "custody-1": ("male", "IC3"),
    "custody-2": ("male", "IC1"),
    "custody-3": ("female", "IC4"),
}
AGE_RANGE = "25-34"
CHECKS = {
    "local_intelligence": ("exhausted", "Local briefing and intelligence systems searched; no trace"),
    "circulation": ("exhausted", "Circulated to response and neighbourhood teams; nobody knew him"),
    "other_enquiries": ("exhausted", "Witnesses spoken to and shop records checked without result"),
    "biometric_identification": ("unviable", "No fingerprints or DNA were left at the scene"),
}
REPORT = {
    "factors": {
        "probe_image_quality": {"relevant": True, "assessment": "CCTV still, small face, some blur"},
        "reference_image_quality": {"relevant": False, "assessment": "custody image, frontal, sharp"},
        "time_lapse": {"relevant": True, "assessment": "about three years; weight gain"},
        "lighting": {"relevant": False, "assessment": "even light in both images"},
        "other": {"relevant": False, "assessment": "no coverings or eyewear in either"},
    },
    "reasoning": "Ear shape, nose and an eyebrow scar agree; the differences are explained by three years.",
}


class Clock:
    """A clock the test moves; each reading is a millisecond after the last."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now

    def set(self, moment: datetime) -> None:
        self.now = moment


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def config(directory: Path, oversight_public: Path, name: str = TERMINAL) -> TerminalConfig:
    return TerminalConfig(
        workspace=directory,
        key_file=directory.with_name(directory.name + ".key"),
        audit_key_file=directory.with_name(directory.name + ".audit-key"),
        name=name,
        oversight_key_file=oversight_public,
    )


def policy() -> Any:
    return replace(load_default_policy(), search=Search(candidate_list_size=CANDIDATES))


def open_terminal(directory: Path, oversight_public: Path, clock: Clock, name: str = TERMINAL) -> Terminal:
    return Terminal.open(
        config(directory, oversight_public, name), faces=synthetic_faces(), scrypt=FAST, clock=clock, policy=policy()
    )


def new_terminal(directory: Path, oversight_public: Path, clock: Clock, name: str = TERMINAL) -> Terminal:
    cfg = config(directory, oversight_public, name)
    key = WorkspaceKey.generate()
    key.write_key_file(cfg.key_file)  # type: ignore[arg-type]
    return Terminal.create(cfg, key, faces=synthetic_faces(), scrypt=FAST, clock=clock, policy=policy())


def copy_terminal(source: Path, target: Path) -> None:
    """The terminal's files as a backup or a clone would hold them (the terminal is closed)."""
    shutil.copytree(source, target)
    for suffix in (".key", ".audit-key"):
        shutil.copy2(source.with_name(source.name + suffix), target.with_name(target.name + suffix))


class Desk:
    """People at one terminal doing casework."""

    def __init__(self, terminal: Terminal, clock: Clock) -> None:
        self.terminal = terminal
        self.clock = clock

    def login(self, name: str) -> Session:
        return self.terminal.accounts.login(name, PASSWORD)

    def case(self, use_case: str, age_band: str) -> str:
        from engine.casework import SubmissionForm

        form = SubmissionForm.create(
            self.terminal.policy,
            completed_by="alice",
            use_case=use_case,
            reference="OCC/2026/0042",
            offence="robbery",
            justification="Identify the robber of a shop; all other lines of enquiry are exhausted now.",
            pre_rfr_checks=CHECKS,
            probe_source="police",
            probe_captured="2026-06-27T21:40",
            probe_obtained="Exported from the shop's CCTV system by PC 1234",
            age_band=age_band,
            libraries=["custody"],
            now=self.clock.now,
        )
        return str(self.terminal.cases.new_case(self.login("alice"), form, synthetic_jpeg(3, 9)).id)

    def approved(self, use_case: str, age_band: str, approver: str = "ivan") -> str:
        case_id = self.case(use_case, age_band)
        self.terminal.cases.submit(self.login("alice"), case_id)
        self.terminal.cases.approve(self.login(approver), case_id, "necessary and proportionate")
        return case_id

    def searched(self, use_case: str, age_band: str, approver: str = "ivan") -> str:
        case_id = self.approved(use_case, age_band, approver)
        self.terminal.cases.search(self.login("alice"), case_id)
        return case_id

    def adjudicate(self, case_id: str, viable_rank: int | None) -> None:
        cases = self.terminal.cases
        for candidate in cases.case(case_id).candidates:
            viable = candidate.rank == viable_rank
            report = MatchReport.from_mapping(REPORT) if viable else None
            decision = "viable" if viable else "not_viable"
            cases.adjudicate(self.login("alice"), case_id, candidate.rank, decision, report)

    def export(self, destination: Path) -> Path:
        result = self.terminal.exports.export(self.login("ann"), destination)
        return result.path


@dataclass
class World:
    root: Path
    oversight_private: Path
    oversight_public: Path
    terminal_dir: Path
    bundles: dict[str, Path] = field(default_factory=dict)
    cases: dict[str, str] = field(default_factory=dict)
    candidates: list[tuple[str, str, str]] = field(default_factory=list)
    """(sex, IC code, age range) of each of the 4 reference images every search returns, rank order."""

    @property
    def audit_public_key(self) -> bytes:
        from engine.audit import AuditSigningKey, public_key_pem

        key = AuditSigningKey.read_file(self.terminal_dir.with_name(self.terminal_dir.name + ".audit-key"))
        return public_key_pem(key.public_key).encode()

    def private_key(self) -> X25519PrivateKey:
        return read_private_key(self.oversight_private, PASSPHRASE)

    def plaintext(self, name: str) -> bytes:
        return unseal(self.bundles[name].read_bytes(), self.private_key())

    def bundle(self, name: str) -> Any:
        return read_bundle(self.plaintext(name), lambda _terminal: {})


def run_history(root: Path) -> World:
    """Run the known history and export its two bundles (copies of the terminal kept after export 1)."""
    media = root / "media"
    media.mkdir()
    private, public = root / "oversight.key", root / "oversight.pub"
    create_key_pair(private, public, PASSPHRASE)
    world = World(root, private, public, root / "ws")
    clock = Clock(at("2026-07-01T09:00:00"))
    terminal = new_terminal(world.terminal_dir, public, clock)
    with terminal:
        sessions = provision(terminal, PEOPLE)
        terminal.libraries.create(sessions["eng1"], "custody", "substantive")
        write_subject_folders(root / "custody", {f"custody-{i}": 2 for i in range(4)}, seed=0)
        terminal.libraries.enrol(sessions["eng1"], "custody", root / "custody")
        with terminal.ws.transaction() as conn:  # the library's recorded fields (enrolled from folders: unknown)
            for reference, (sex, ic_code) in SUBJECTS.items():
                conn.execute("UPDATE subjects SET sex = ?, ic_code = ? WHERE reference = ?", (sex, ic_code, reference))
            conn.execute("UPDATE images SET age_range = ?", (AGE_RANGE,))
        desk = Desk(terminal, clock)

        clock.set(at("2026-07-06T10:00:00"))
        world.cases["A"] = desk.searched("identify_unknown_subject", "adult")
        desk.adjudicate(world.cases["A"], 1)
        terminal.cases.close(desk.login("alice"), world.cases["A"])
        for candidate in terminal.cases.case(world.cases["A"]).candidates:
            sex, ic_code = SUBJECTS[candidate.subject]
            world.candidates.append((sex, ic_code, AGE_RANGE))
        clock.set(at("2026-08-03T10:00:00"))
        world.cases["B"] = desk.searched("locate_missing_person", "16-17")
        desk.adjudicate(world.cases["B"], None)
        terminal.cases.peer_review(desk.login("pat"), world.cases["B"], True, "none of them is the missing person")
        world.cases["C"] = desk.case("identify_unknown_subject", "13-15")
        terminal.cases.submit(desk.login("alice"), world.cases["C"])
        terminal.cases.reject(desk.login("ivan"), world.cases["C"], "other enquiries are not yet exhausted here")
        clock.set(at("2026-09-07T10:00:00"))
        world.cases["D"] = desk.searched("custody_safeguarding", "adult")
        desk.adjudicate(world.cases["D"], None)
        terminal.cases.peer_review(desk.login("pat"), world.cases["D"], False, "rank 1 deserves another careful look")
        world.cases["E"] = desk.case("identify_unknown_subject", "adult")
        terminal.cases.withdraw(desk.login("alice"), world.cases["E"], "the suspect was identified by a witness")
        clock.set(at("2026-09-28T16:00:00"))
        world.bundles["q3"] = desk.export(media)
    for copy in ("clone", "backup"):
        copy_terminal(world.terminal_dir, root / copy)

    clock.set(at("2026-10-02T09:00:00"))
    with open_terminal(world.terminal_dir, public, clock) as terminal:
        desk = Desk(terminal, clock)
        desk.adjudicate(world.cases["D"], 1)
        terminal.cases.close(desk.login("alice"), world.cases["D"])
        world.cases["F"] = desk.searched("exploited_children", "under13", approver="sue")
        clock.set(at("2026-10-02T12:00:00"))
        world.bundles["q4"] = desk.export(media)

    return world


def add_branches(world: World) -> World:
    """The fork, rollback, rebuilt and unregistered terminal's bundles, from copies taken after export 1."""
    root, public = world.root, world.oversight_public
    media = root / "media"
    # The clone was used on 1 October, before export 2 was made: a fork.
    fork_clock = Clock(at("2026-10-01T09:00:00"))
    with open_terminal(root / "clone", public, fork_clock) as clone:
        desk = Desk(clone, fork_clock)
        desk.case("identify_unknown_subject", "adult")
        world.bundles["fork"] = desk.export(_folder(media / "fork"))
    # The backup was restored on 20 October, after export 2 was made: the log was rolled back.
    rollback_clock = Clock(at("2026-10-20T09:00:00"))
    with open_terminal(root / "backup", public, rollback_clock) as restored:
        desk = Desk(restored, rollback_clock)
        desk.case("identify_unknown_subject", "adult")
        world.bundles["rollback"] = desk.export(_folder(media / "rollback"))
    # A new workspace made with the terminal's own audit key file, under its name: a rebuilt log.
    rebuilt_clock = Clock(at("2026-10-21T09:00:00"))
    rebuilt = TerminalConfig(
        workspace=root / "rebuilt",
        key_file=root / "rebuilt.key",
        audit_key_file=world.terminal_dir.with_name(world.terminal_dir.name + ".audit-key"),
        name=TERMINAL,
        oversight_key_file=public,
    )
    key = WorkspaceKey.generate()
    key.write_key_file(root / "rebuilt.key")
    Workspace.create(rebuilt.workspace, key, audit_key=AuditSigningKey.read_file(rebuilt.audit_key_file)).close()
    with Terminal.open(rebuilt, faces=synthetic_faces(), scrypt=FAST, clock=rebuilt_clock, policy=policy()) as again:
        provision(again, {"ann": (["auditor"], None)})
        world.bundles["rebuilt"] = Desk(again, rebuilt_clock).export(_folder(media / "rebuilt"))
    # Another terminal, never registered with the oversight.
    other_clock = Clock(at("2026-07-02T09:00:00"))
    with new_terminal(root / "other", public, other_clock, name="CUSTODY-02") as other:
        provision(other, {"ann": (["auditor"], None)})
        world.bundles["unknown"] = Desk(other, other_clock).export(_folder(media / "other"))
    return world


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def new_oversight(directory: Path, clock: Clock | None = None) -> tuple[Oversight, Session]:
    """A new oversight workspace with two engineers and an auditor (olive), signed in as olive."""
    config = OversightConfig(directory, directory.with_name(directory.name + ".audit-key"))
    oversight = Oversight.create(config, WorkspaceKey.generate(), scrypt=FAST, clock=clock)
    sessions = provision(oversight, {"olive": (["auditor"], None)})  # type: ignore[arg-type]
    return oversight, sessions["olive"]


def oversight_state(oversight: Oversight) -> dict[str, list[tuple[Any, ...]]]:
    """Everything the oversight holds about terminals and bundles (not its own audit log)."""
    tables = (
        "oversight_terminals",
        "oversight_terminal_keys",
        "oversight_bundles",
        "oversight_events",
        "oversight_figures",
        "oversight_compositions",
        "oversight_findings",
    )
    return {t: oversight.ws.query(f"SELECT * FROM {t} ORDER BY rowid") for t in tables}


# ---- the figures the history must give, derived without the figures code --------------------------

Table = dict[str, dict[str, int]]


def demographics(world: World, viable_rank: list[int | None]) -> dict[str, Table]:
    """Potential Match decisions by sex, IC code and age range for closed cases with these viable ranks."""
    tables: dict[str, Table] = {"sex": {}, "ic_code": {}, "age_range": {}}
    for viable in viable_rank:
        for rank, fields in enumerate(world.candidates, start=1):
            decision = "viable" if rank == viable else "not_viable"
            for key, value in zip(("sex", "ic_code", "age_range"), fields, strict=True):
                row = tables[key].setdefault(value, {})
                row[decision] = row.get(decision, 0) + 1
    return tables


def expected_q3(world: World) -> MonitoringFigures:
    d = demographics(world, [1, None])  # case A: rank 1 viable; case B: none
    return MonitoringFigures(
        searches=3,
        searches_by_use_case={"custody_safeguarding": 1, "identify_unknown_subject": 1, "locate_missing_person": 1},
        searches_by_age_band={"16-17": 1, "adult": 2},
        searches_under_18=1,
        searches_under_16=0,
        submissions_by_use_case={"custody_safeguarding": 1, "identify_unknown_subject": 2, "locate_missing_person": 1},
        approvals_by_use_case={"custody_safeguarding": 1, "identify_unknown_subject": 1, "locate_missing_person": 1},
        rejections_by_use_case={"identify_unknown_subject": 1},
        peer_reviews={"agreed": 1, "sent_back": 1},
        cases_closed={"no_viable_match": 1, "viable_match": 1},
        closed_by_use_case={
            "identify_unknown_subject": {"viable_match": 1},
            "locate_missing_person": {"no_viable_match": 1},
        },
        closed_by_age_band={"16-17": {"no_viable_match": 1}, "adult": {"viable_match": 1}},
        closed_under_18={"no_viable_match": 1},
        closed_under_16={},
        potential_matches={"not_viable": 7, "viable": 1},
        potential_matches_by_sex=d["sex"],
        potential_matches_by_ic_code=d["ic_code"],
        potential_matches_by_age_range=d["age_range"],
        potential_matches_by_library={"custody": {"not_viable": 7, "viable": 1}},
        cases_withdrawn=1,
        cases_expired=0,
    )


def expected_q4(world: World) -> MonitoringFigures:
    d = demographics(world, [1])  # case D, closed in Q4: rank 1 viable
    return MonitoringFigures(
        searches=1,
        searches_by_use_case={"exploited_children": 1},
        searches_by_age_band={"under13": 1},
        searches_under_18=1,
        searches_under_16=1,
        submissions_by_use_case={"exploited_children": 1},
        approvals_by_use_case={"exploited_children": 1},
        rejections_by_use_case={},
        peer_reviews={},
        cases_closed={"viable_match": 1},
        closed_by_use_case={"custody_safeguarding": {"viable_match": 1}},
        closed_by_age_band={"adult": {"viable_match": 1}},
        closed_under_18={},
        closed_under_16={},
        potential_matches={"not_viable": 3, "viable": 1},
        potential_matches_by_sex=d["sex"],
        potential_matches_by_ic_code=d["ic_code"],
        potential_matches_by_age_range=d["age_range"],
        potential_matches_by_library={"custody": {"not_viable": 3, "viable": 1}},
        cases_withdrawn=0,
        cases_expired=0,
    )
