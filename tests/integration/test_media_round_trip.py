"""The Proof's round trip: central enrolment on Dask to the Board's figures, then a weeding that reaches everywhere.

Each step as the person who does it would, through ``rfr`` (in-process, ``engine.cli.main``), with the
real face engine on LFW photographs:

1. The central unit: its role keys (``make_keys``, at a cheap passphrase cost: ``keys init``'s own command
   is tested in tests/central), ``rfr central enrol`` of a CSV of four people (two images each) on a
   LocalCluster of two worker processes, ``rfr central package build`` of the library beside an accounts
   package (built through the API for a cheap first-password cost), ``rfr central package sign``; the
   repository's ``rfr-packages`` copied to a folder standing in for the mounted medium.
2. The terminal: ``rfr workspace init`` and its first engineer; ``rfr media trust``, ``read`` and ``apply``;
   the people the accounts package made set their own passwords.
3. Casework: a case refused to its own RFR User as approver, approved by an Inspector, searched: the
   enrolled person is first; a Viable Match with its Match Report, the rest not viable, closed. A second
   case (16-17) finds the person who will be weeded and is left open; a third is rejected.
4. ``rfr audit export``; the oversight's own workspace, people and keys through ``rfr oversight``;
   ``import`` and ``report``: the figures exactly as this history implies (derived here from the
   manifest and the candidate list, not from the figures code).
5. Weeding: ``package build --remove``, sign, a second medium, ``media read`` (the removal shown),
   ``apply``. The person is then gone from the library's rows, the index (in memory and its snapshot
   on disk), staging, and the results of a new search with their probe. What is left is named
   exactly: the candidate list of the case searched before the weeding (its record: the reference and
   row numbers, no image or template); TUF's signed metadata names each target by a keyed hash and
   hashes only its sealed bytes, so not even an image's sha256 is left. A second export carries the
   library's new composition to the oversight. Neither medium holds any image in plaintext.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.casework.monitoring import MonitoringFigures
from engine.central.packages import Target, build_accounts, read_accounts
from engine.central.repository import Repository
from engine.cli import main
from engine.errors import CaseError
from engine.faces.pipeline import FaceEngine
from engine.library.index import IndexSet
from engine.library.snapshot import read_snapshot, snapshot_path
from engine.library.store import get_library
from engine.media.staging import STAGING_DIR
from engine.scoring.statistics import NOT_RECORDED
from engine.security.keys import read_key_file
from engine.security.users import ScryptParams
from engine.terminal import FaceProvider, Terminal, TerminalConfig
from engine.workspace import Workspace
from tests.central.conftest import PASSPHRASE as CENTRAL_PASSPHRASE
from tests.central.conftest import key_ring, make_keys
from tests.cli_casework import CHECKS, REPORT
from tests.plaintext import image_needles
from tests.terminals import FAST

pytestmark = pytest.mark.slow

FORCE, GROUP, TERMINAL = "force-a", "custody-suites", "CUSTODY-07"
# LFW people: (sex, IC code, age range); their images 1 and 2 are enrolled, image 3 is their Probe Image.
PEOPLE = {
    "Abel_Pacheco": ("male", "IC2", "45-54"),
    "Akhmed_Zakayev": ("male", "IC1", "45-54"),
    "Anders_Fogh_Rasmussen": ("male", "IC1", "35-44"),
    "Laura_Bush": ("female", "IC1", "55-64"),
}
FOUND, WEEDED = "Abel_Pacheco", "Akhmed_Zakayev"
# Laura_Bush_0002 shows two faces, neither clearly dominant: central enrolment skips it, as a terminal would.
ENROLLED = 7
PASSWORDS = {
    name: f"password {i} of this terminal, long enough"
    for i, name in enumerate(("eve", "alice", "ivan", "ann", "oe1", "oe2", "olive"))
}
OVERSIGHT_PASSPHRASE = "the oversight key passphrase, long enough"
FIRST = "a first password an engineer set"


def reference(person: str) -> str:
    return f"CRO-{person}"


@dataclass
class Rfr:
    """``rfr`` in-process: secrets through the environment (taken out of it by every run), ``--json`` output."""

    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    def __call__(self, *argv: str, user: str | None = None, **secrets: str) -> tuple[int, Any, str]:
        if user is not None:
            secrets.setdefault("RFR_PASSWORD", PASSWORDS[user])
            argv = (*argv, "--as", user)
        for name, value in secrets.items():
            self.monkeypatch.setenv(name, value)
        code = main([*argv, "--json"])
        out, err = self.capsys.readouterr()
        return code, (json.loads(out) if out.strip() else None), err

    def ok(self, *argv: str, user: str | None = None, **secrets: str) -> Any:
        code, out, err = self(*argv, user=user, **secrets)
        assert code == 0, err
        return out

    def central(self, *argv: str) -> Any:
        return self.ok("central", *argv, RFR_CENTRAL_PASSPHRASE=CENTRAL_PASSPHRASE)


@pytest.fixture(scope="module")
def face_engine() -> FaceEngine:
    return FaceEngine.open("CPU")


@pytest.fixture
def rfr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, face_engine: FaceEngine, tmp_path: Path
) -> Rfr:
    for name in ("RFR_CONFIG", "RFR_PASSPHRASE", "RFR_POLICY", "RFR_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("engine.cli.terminal.SCRYPT", FAST)  # the terminal's cost is a second a hash
    # The real engine, opened once for every command rather than once per command.
    faces = FaceProvider(lambda: face_engine, lambda: (face_engine.model_id, face_engine.model_sha256))
    monkeypatch.setattr("engine.cli.terminal.FACES", lambda _config: faces)
    terminal = {
        "RFR_WORKSPACE": tmp_path / "ws",
        "RFR_KEY_FILE": tmp_path / "ws.key",
        "RFR_AUDIT_KEY_FILE": tmp_path / "ws.audit-key",
        "RFR_OVERSIGHT_KEY_FILE": tmp_path / "oversight.pub",
        "RFR_MEDIA_KEY_FILE": tmp_path / "ws.media-key",
        "RFR_TERMINAL_NAME": TERMINAL,
        "RFR_FORCE": FORCE,
        "RFR_GROUPS": GROUP,
        "RFR_OVERSIGHT_WORKSPACE": tmp_path / "ovs",
        "RFR_OVERSIGHT_WORKSPACE_KEY_FILE": tmp_path / "ovs.key",
        "RFR_OVERSIGHT_AUDIT_KEY_FILE": tmp_path / "ovs.audit-key",
    }
    for name, value in terminal.items():
        monkeypatch.setenv(name, str(value))
    return Rfr(capsys, monkeypatch)


def images(data_root: Path, person: str) -> list[Path]:
    return [data_root / "lfw" / "images" / person / f"{person}_{n:04d}.jpg" for n in (1, 2, 3)]


def write_manifest(path: Path, data_root: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["subject", "image", "sex", "ic_code", "capture_date", "age_range", "source"])
        for person, (sex, ic_code, age_range) in PEOPLE.items():
            for image in images(data_root, person)[:2]:
                writer.writerow([reference(person), str(image), sex, ic_code, "2021-06-01", age_range, "custody A"])
    return path


def new_case(rfr: Rfr, probe: Path, use_case: str, age_band: str) -> str:
    form = [
        "--use-case", use_case, "--reference", "OCC/2026/0107", "--offence", "robbery",
        "--justification", "Identify the robber of a shop; every other line of enquiry is exhausted now.",
        *CHECKS, "--probe-source", "police", "--captured", "2026-11-30T21:40",
        "--obtained", "Exported from the shop's CCTV system by PC 1234", "--library", "custody",
    ]  # fmt: skip
    case = rfr.ok("case", "new", *form, "--age-band", age_band, "--probe", str(probe), user="alice")
    return str(case["case"])


def approved_and_searched(rfr: Rfr, probe: Path, use_case: str, age_band: str) -> tuple[str, list[dict[str, Any]]]:
    case_id = new_case(rfr, probe, use_case, age_band)
    assert rfr.ok("case", "submit", case_id, user="alice")["state"] == "submitted"
    assert rfr.ok("case", "approve", case_id, "--reason", "necessary and proportionate", user="ivan")["state"] == (
        "approved"
    )
    result = rfr.ok("case", "search", case_id, user="alice")
    return case_id, list(result["probes"][0]["candidates"])


def expected_figures(
    first: list[dict[str, Any]], *, searches: int, later: bool, weeded: str | None = None
) -> MonitoringFigures:
    """The figures this history implies: worked out from the manifest's fields and case 1's candidate list.

    ``weeded``: a person whose library rows are gone when the figures are made (their fields "not recorded").
    """
    tables: dict[str, dict[str, dict[str, int]]] = {"sex": {}, "ic_code": {}, "age_range": {}, "library": {}}
    decisions = {"viable": 0, "not_viable": 0}
    for candidate in first:
        decision = "viable" if candidate["rank"] == 1 else "not_viable"
        decisions[decision] += 1
        person = candidate["subject"].removeprefix("CRO-")
        values = (*(PEOPLE[person] if person != weeded else (NOT_RECORDED,) * 3), candidate["library"])
        for name, value in zip(("sex", "ic_code", "age_range", "library"), values, strict=True):
            row = tables[name].setdefault(value, {})
            row[decision] = row.get(decision, 0) + 1
    identify = "identify_unknown_subject"
    return MonitoringFigures(
        searches=searches,
        searches_by_use_case={identify: searches - 1, "locate_missing_person": 1},
        searches_by_age_band={"adult": searches - 1, "16-17": 1},
        searches_under_18=1,
        searches_under_16=0,
        submissions_by_use_case={identify: 2 + int(later), "locate_missing_person": 1},
        approvals_by_use_case={identify: searches - 1, "locate_missing_person": 1},
        rejections_by_use_case={identify: 1},
        peer_reviews={},
        cases_closed={"viable_match": 1},
        closed_by_use_case={identify: {"viable_match": 1}},
        closed_by_age_band={"adult": {"viable_match": 1}},
        closed_under_18={},
        closed_under_16={},
        potential_matches=decisions,
        potential_matches_by_sex=tables["sex"],
        potential_matches_by_ic_code=tables["ic_code"],
        potential_matches_by_age_range=tables["age_range"],
        potential_matches_by_library=tables["library"],
        cases_withdrawn=0,
        cases_expired=0,
    )


def set_up_oversight(rfr: Rfr, tmp_path: Path) -> None:
    """The oversight's key pair, its workspace, two engineers and the auditor olive, who registers the terminal."""
    pair = ("--private-key", str(tmp_path / "oversight.key"), "--public-key", str(tmp_path / "oversight.pub"))
    rfr.ok("oversight", "keys", "init", *pair, RFR_OVERSIGHT_PASSPHRASE=OVERSIGHT_PASSPHRASE)
    init = ["oversight", "init", str(tmp_path / "ovs"), "--new-key-file", str(tmp_path / "ovs.key")]
    rfr.ok(*init, "--new-audit-key-file", str(tmp_path / "ovs.audit-key"))
    rfr.ok("oversight", "user", "add", "oe1", "--role", "engineer", RFR_NEW_PASSWORD=PASSWORDS["oe1"])
    rfr.ok("oversight", "user", "add", "oe2", "--role", "engineer", user="oe1", RFR_NEW_PASSWORD=FIRST)
    rfr.ok("oversight", "user", "passwd", "oe2", RFR_PASSWORD=FIRST, RFR_NEW_PASSWORD=PASSWORDS["oe2"])
    request = rfr.ok("oversight", "user", "add", "olive", "--role", "auditor", user="oe1")["request"]
    rfr.ok("oversight", "user", "confirm", str(request), user="oe2", RFR_NEW_PASSWORD=FIRST)
    rfr.ok("oversight", "user", "passwd", "olive", RFR_PASSWORD=FIRST, RFR_NEW_PASSWORD=PASSWORDS["olive"])


def import_and_report(rfr: Rfr, tmp_path: Path, bundle: str, quarter: str, out: str) -> dict[str, Any]:
    imported = rfr.ok(
        "oversight",
        "import",
        bundle,
        "--private-key",
        str(tmp_path / "oversight.key"),
        user="olive",
        RFR_OVERSIGHT_PASSPHRASE=OVERSIGHT_PASSPHRASE,
    )
    assert [i["outcome"] for i in imported["imports"]] == ["accepted"], imported
    report = rfr.ok("oversight", "report", "--quarter", quarter, "--out", str(tmp_path / out), user="olive")
    assert (tmp_path / out / "report.html").is_file()
    return dict(report)


def composition(report: dict[str, Any]) -> tuple[int, dict[str, int], int]:
    (custody,) = report["library_composition"]
    assert custody["library"] == "custody" and custody["terminal"] == TERMINAL
    return custody["subjects"]["total"], custody["subjects"]["by_sex"], custody["images"]["total"]


def medium(repo: Path, folder: Path) -> Path:
    """The repository's media folder copied as it is, as the central unit copies it to removable media."""
    shutil.copytree(repo / "rfr-packages", folder / "rfr-packages")
    return folder


def test_central_enrolment_to_the_boards_figures_and_a_weeding_that_reaches_everywhere(
    rfr: Rfr, tmp_path: Path, data_root: Path, face_engine: FaceEngine
) -> None:
    # ---- 1. The central unit ---------------------------------------------------------------------
    keys, repo = tmp_path / "central-keys", tmp_path / "central-repo"
    make_keys(keys)
    made = rfr.central("keys", "media-key", "--keys", str(keys), "--out", str(tmp_path / "ws.media-key"))
    assert made["media_key_id"] == key_ring(keys).media_key().key_id  # installed on the terminal for step 2
    manifest = write_manifest(tmp_path / "custody.csv", data_root)
    enrolment = tmp_path / "enrolment"
    argv = ["enrol", "--manifest", str(manifest), "--out", str(enrolment), "--workers", "2", "--batch-size", "2"]
    summary = rfr.central(*argv)
    assert (summary["rows"], summary["enrolled"], summary["computed"], summary["workers"]) == (8, ENROLLED, 8, 2)
    assert summary["skipped_by_reason"] == {"several_faces": 1}
    target = ["--force", FORCE, "--group", GROUP]
    built = rfr.central("package", "build", "--repo", str(repo), "--keys", str(keys), "--kind", "library", *target,
                        "--library", "custody",
                        "--enrolment", str(enrolment), "--description", "custody images, first load")  # fmt: skip
    assert (built["stream"], built["sequence"], built["subjects_added"], built["images_added"]) == (
        "library:custody",
        1,
        4,
        ENROLLED,
    )
    (tmp_path / "users.yaml").write_text(
        "users:\n"
        "  - {username: alice, display_name: A Lice, roles: [rfr_user], rank: Constable, first_password: true}\n"
        "  - {username: ivan, display_name: I Van, roles: [approver], rank: Inspector, first_password: true}\n"
        "  - {username: ann, display_name: A Nn, roles: [auditor], first_password: true}\n"
    )
    slips = tmp_path / "first-passwords.txt"
    changes, removals = read_accounts(tmp_path / "users.yaml")
    build_accounts(
        Repository.open(repo),
        Target(FORCE, (GROUP,), "the custody suite's people"),
        changes,
        removals,
        media_key=key_ring(keys).media_key(),
        passwords_out=slips,
        scrypt=ScryptParams(n=2**12),
    )
    signed = rfr.central("package", "sign", "--repo", str(repo), "--keys", str(keys))
    assert sorted(signed["packages"]) == ["packages/accounts/00000001.json", "packages/library/custody/00000001.json"]
    first_medium = medium(repo, tmp_path / "usb-1")

    # ---- 2. The terminal -------------------------------------------------------------------------
    ws_dir = tmp_path / "ws"
    init = ["workspace", "init", str(ws_dir), "--new-key-file", str(tmp_path / "ws.key")]
    rfr.ok(*init, "--new-audit-key-file", str(tmp_path / "ws.audit-key"))
    rfr.ok("user", "add", "eve", "--role", "engineer", RFR_NEW_PASSWORD=PASSWORDS["eve"])
    trusted = rfr.ok("media", "trust", str(keys / "1.root.json"), user="eve")
    assert trusted["version"] == 1
    plan = rfr.ok("media", "read", str(first_medium), user="eve")
    assert plan["to_apply"] == ["accounts#1", "library:custody#1"]
    (library_plan,) = [p["changes"]["library"] for p in plan["packages"] if p["changes"]["library"]]
    assert library_plan["subjects_added_references"] == [reference(p) for p in PEOPLE]
    assert library_plan["images_added"] == ENROLLED and library_plan["new_library"] is True
    applied = rfr.ok("media", "apply", str(first_medium), "--yes", user="eve")["applied"]
    assert [(p["package"], p.get("images_added"), p.get("users_added")) for p in applied["packages"]] == [
        ("accounts#1", None, 3),
        ("library:custody#1", ENROLLED, None),
    ]
    handed = dict(line.split("\t") for line in slips.read_text().splitlines() if line and not line.startswith("#"))
    for name in ("alice", "ivan", "ann"):
        rfr.ok("user", "passwd", name, RFR_PASSWORD=handed[name], RFR_NEW_PASSWORD=PASSWORDS[name])

    # ---- 3. Casework -----------------------------------------------------------------------------
    probe = {person: images(data_root, person)[2] for person in PEOPLE}
    first_case = new_case(rfr, probe[FOUND], "identify_unknown_subject", "adult")
    rfr.ok("case", "submit", first_case, user="alice")
    code, _, err = rfr("case", "search", first_case, user="alice")
    assert code != 0 and "no search runs without a recorded approval" in err
    code, _, err = rfr("case", "approve", first_case, "--reason", "mine", user="alice")
    assert code != 0 and "approv" in err and "refused" in err
    assert rfr.ok("case", "approve", first_case, "--reason", "proportionate", user="ivan")["state"] == "approved"
    result = rfr.ok("case", "search", first_case, user="alice")
    first = result["probes"][0]["candidates"]
    assert len(first) == ENROLLED and [c["subject"] for c in first[:2]] == [reference(FOUND)] * 2
    assert "intelligence lead only" in result["notice"]
    (tmp_path / "report.yaml").write_text(REPORT)
    viable = ["--candidate", "1", "--decision", "viable", "--report", str(tmp_path / "report.yaml")]
    rfr.ok("case", "adjudicate", first_case, *viable, user="alice")
    for candidate in first[1:]:
        decision = ["--candidate", str(candidate["rank"]), "--decision", "not-viable"]
        rfr.ok("case", "adjudicate", first_case, *decision, user="alice")
    assert rfr.ok("case", "close", first_case, user="alice")["outcome"] == "viable_match"

    second_case, second = approved_and_searched(rfr, probe[WEEDED], "locate_missing_person", "16-17")
    assert second[0]["subject"] == reference(WEEDED) and len(second) == ENROLLED
    rejected = new_case(rfr, probe["Laura_Bush"], "identify_unknown_subject", "13-15")
    rfr.ok("case", "submit", rejected, user="alice")
    rfr.ok("case", "reject", rejected, "--reason", "other enquiries are not exhausted yet", user="ivan")

    # ---- 4. Audit out, oversight in, the Board's figures -------------------------------------------
    set_up_oversight(rfr, tmp_path)
    exported = rfr.ok("audit", "export", "--to", str(first_medium), user="ann")
    now = datetime.now(UTC)
    quarter = f"{now.year}Q{(now.month - 1) // 3 + 1}"
    assert exported["quarters"] == [quarter]
    (tmp_path / "terminal.pub").write_text(rfr.ok("audit", "public-key", user="ann")["public_key"])
    rfr.ok("oversight", "terminals", "add", TERMINAL, "--audit-public-key", str(tmp_path / "terminal.pub"),
           user="olive")  # fmt: skip
    report = import_and_report(rfr, tmp_path, exported["path"], quarter, "report-1")
    assert report["totals"] == expected_figures(first, searches=2, later=False).to_json()
    assert report["by_terminal"] == {TERMINAL: report["totals"]}
    assert composition(report) == (4, {"female": 1, "male": 3, "unknown": 0}, ENROLLED)
    # What the terminal's own auditor screen counts for the quarter ('rfr audit outcomes', the Monitoring
    # figures screen's source) is the Board's figure for this terminal.
    assert rfr.ok("audit", "outcomes", user="ann")["figures"] == report["by_terminal"][TERMINAL]

    # ---- 5. Weeding -----------------------------------------------------------------------------
    with Workspace.open(ws_dir, read_key_file(tmp_path / "ws.key")) as ws:
        weeded_vectors = [
            bytes(r[0])
            for r in ws.query(
                "SELECT t.vector FROM templates t JOIN images i ON i.id = t.image_id"
                " JOIN subjects s ON s.id = i.subject_id WHERE s.reference = ?",
                (reference(WEEDED),),
            )
        ]
        weeded_hashes = [bytes(r[0]).hex() for r in ws.query(
            "SELECT i.sha256 FROM images i JOIN subjects s ON s.id = i.subject_id WHERE s.reference = ?",
            (reference(WEEDED),),
        )]  # fmt: skip
    assert len(weeded_vectors) == 2 and len(weeded_hashes) == 2
    (tmp_path / "weed.txt").write_text(f"# acquitted: images to be destroyed\n{reference(WEEDED)}\n")
    weeding = rfr.central("package", "build", "--repo", str(repo), "--keys", str(keys), "--kind", "library", *target,
                          "--library", "custody", "--remove", str(tmp_path / "weed.txt"))  # fmt: skip
    assert (weeding["sequence"], weeding["subjects_removed"]) == (2, 1)
    rfr.central("package", "sign", "--repo", str(repo), "--keys", str(keys))
    second_medium = medium(repo, tmp_path / "usb-2")
    plan = rfr.ok("media", "read", str(second_medium), user="eve")
    assert plan["to_apply"] == ["library:custody#2"]
    (removal,) = [p["changes"]["library"] for p in plan["packages"] if p["package"] == "library:custody#2"]
    assert removal["subjects_removed_references"] == [reference(WEEDED)] and removal["removals_not_held"] == 0
    applied = rfr.ok("media", "apply", str(second_medium), "--yes", user="eve")["applied"]
    assert applied["packages"] == [
        {"package": "library:custody#2", "kind": "library", "library": "custody", "subjects_removed": 1,
         "images_removed": 2}
    ]  # fmt: skip

    # A new approved search with the weeded person's probe no longer finds them.
    _, after = approved_and_searched(rfr, probe[WEEDED], "identify_unknown_subject", "adult")
    assert len(after) == ENROLLED - 2 and reference(WEEDED) not in {c["subject"] for c in after}

    # Nowhere on the terminal: rows, the running index, the snapshot on disk, staging, any stored bytes.
    weeded_images = [p.read_bytes() for p in images(data_root, WEEDED)[:2]]
    config = TerminalConfig(ws_dir, tmp_path / "ws.audit-key", tmp_path / "ws.key", force=FORCE, groups=(GROUP,))
    faces = FaceProvider(lambda: face_engine, lambda: (face_engine.model_id, face_engine.model_sha256))
    with Terminal.open(config, faces=faces, scrypt=FAST) as terminal:
        ws = terminal.ws
        library = get_library(ws, "custody")
        assert ws.query("SELECT count(*) FROM subjects WHERE reference = ?", (reference(WEEDED),)) == [(0,)]
        assert ws.query("SELECT count(*) FROM images") == [(ENROLLED - 2,)]
        assert ws.query("SELECT count(*) FROM templates") == [(ENROLLED - 2,)]
        for vector in weeded_vectors:
            found = terminal.libraries.indexes().search(np.frombuffer(vector, dtype="<f4").copy(), [library], 10)
            assert reference(WEEDED) not in {c.subject for c in found} and len(found) == ENROLLED - 2
        (snapshot,) = ws.query("SELECT entries FROM index_snapshots WHERE library_id = ?", (library.id,))
        assert snapshot == (ENROLLED - 2,)
        _info, plain = read_snapshot(
            snapshot_path(ws.index_dir, library.id),
            key_for=IndexSet(ws, face_engine.model_id, face_engine.model_sha256)._key_for(library),
            library_id=library.id,
        )
        assert not any(v in bytes(plain) for v in weeded_vectors), "a weeded template is in the index snapshot"
        assert sorted(p.name for p in ws.index_dir.iterdir()) == [snapshot_path(ws.index_dir, library.id).name]
        staging = ws_dir / STAGING_DIR
        assert not staging.exists() or not any(staging.iterdir()), "a staged copy outlived the apply"
        # What is left of them, exactly: the open case's candidate list (no image, no template). TUF's signed
        # list of every target the central unit ever signed names keyed hashes and sealed bytes, not images.
        # Their images' own bytes (LFW's JPEG headers are alike, so the middle of each) and templates.
        needles = {k: v for k, v in image_needles(weeded_images).items() if " bytes " in k}
        needles |= {f"template {i}": v for i, v in enumerate(weeded_vectors)}
        left: dict[str, set[str]] = {}
        with ws.reading() as conn:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()]
            for table in tables:
                for row in conn.execute(f'SELECT * FROM "{table}"').fetchall():
                    for value in row:
                        data = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
                        for what, needle in needles.items():
                            assert needle not in data, f"{what} of the weeded person is still in {table}"
                        if reference(WEEDED).encode() in data:
                            left.setdefault("reference", set()).add(table)
                        if any(h.encode() in data for h in weeded_hashes):
                            left.setdefault("image sha256", set()).add(table)
        assert left == {"reference": {"case_candidates"}}
        held = ws.query("SELECT case_id, rank, reference_image FROM case_candidates WHERE subject = ?",
                        (reference(WEEDED),))  # fmt: skip
        listed = {(case, c["rank"]) for case, listing in ((first_case, first), (second_case, second))
                  for c in listing if c["subject"] == reference(WEEDED)}  # fmt: skip
        assert {(c, r) for c, r, _ in held} == listed and all(image is None for *_, image in held)
        alice = terminal.sign_in("alice", PASSWORDS["alice"])
        with pytest.raises(CaseError, match="no longer held"):
            terminal.cases.candidate_view(alice, second_case, 1)
    # Nothing of them in plaintext in any file of the workspace, or of either medium.
    for path in [*ws_dir.rglob("*"), *first_medium.rglob("*"), *second_medium.rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert not any(needle in data for needle in image_needles(weeded_images).values()), path

    # The second export carries the weeded library's composition; the quarter adds up.
    exported = rfr.ok("audit", "export", "--to", str(second_medium), user="ann")
    report = import_and_report(rfr, tmp_path, exported["path"], quarter, "report-2")
    assert report["totals"] == expected_figures(first, searches=3, later=True).to_json()
    assert composition(report) == (3, {"female": 1, "male": 2, "unknown": 0}, ENROLLED - 2)
    # The terminal recounts its quarter from what it holds now: the weeded person's Potential Matches in
    # case 1 have lost their recorded fields there, while the Board keeps them as exported before the weeding.
    on_terminal = rfr.ok("audit", "outcomes", user="ann")["figures"]
    assert on_terminal == expected_figures(first, searches=3, later=True, weeded=WEEDED).to_json() != report["totals"]
