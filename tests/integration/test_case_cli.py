"""Casework through the real ``rfr`` commands, on a real terminal, with the real face engine on LFW photographs.

Two cases end to end: one adjudicated a Viable Match with a Match Report and exported; one
adjudicated "no viable match" and peer reviewed by someone else, which closes it and deletes its
probe data at once. Along the way each refusal is checked to be one line naming the rule, every
command acts as a named, signed-in person, the audit log verifies, and an edited or deleted event
is reported by ``rfr audit verify``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pyrage
import pytest

from engine.cli import main
from engine.policy import load_default_policy
from engine.security.keys import read_key_file
from engine.workspace import Workspace
from tests.cli_casework import CHECKS, REPORT
from tests.terminals import FAST

pytestmark = pytest.mark.slow

PEOPLE = 5
PASSWORDS = {
    "eve": "pw-1 correct horse battery",
    "ed": "pw-0 correct horse battery",
    "alice": "pw-2 correct horse battery",
    "ivan": "pw-3 correct horse battery",
    "sue": "pw-4 correct horse battery",
    "pat": "pw-5 correct horse battery",
    "ann": "pw-6 correct horse battery",
}
FIRST = "a first password an engineer set"


REPORT_PASSPHRASE = "a passphrase passed on by telephone"


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capsys, self.monkeypatch = capsys, monkeypatch

    def __call__(
        self, *argv: str, user: str | None = None, password: str | None = None, new_password: str | None = None
    ) -> tuple[int, Any, str]:
        for name, value in (("RFR_PASSWORD", password or (PASSWORDS[user] if user else None)),
                            ("RFR_NEW_PASSWORD", new_password)):  # fmt: skip
            if value is None:
                self.monkeypatch.delenv(name, raising=False)
            else:
                self.monkeypatch.setenv(name, value)
        args = [*argv, "--json"]
        if user is not None:
            args += ["--as", user]
        code = main(args)
        out, err = self.capsys.readouterr()
        assert "RFR_PASSWORD" not in __import__("os").environ  # read once, then gone from the environment
        return code, (json.loads(out) if out.strip() else None), err


def refused(result: tuple[int, Any, str], rule: str) -> None:
    code, out, err = result
    assert code != 0 and out is None, err
    assert err.count("\n") == 1 and err.startswith("rfr: ") and rule in err, err


def without(argv: list[str], option: str) -> list[str]:
    at = argv.index(option)
    return argv[:at] + argv[at + 2 :]


def new_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """``rfr workspace init`` and the terminal's first two engineers, as an installer does it."""
    monkeypatch.setattr("engine.cli.terminal.SCRYPT", FAST)  # the terminal's cost is a second a hash
    monkeypatch.delenv("RFR_PASSPHRASE", raising=False)
    monkeypatch.setenv("RFR_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("RFR_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("RFR_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    init = ["workspace", "init", str(tmp_path / "ws"), "--new-key-file", str(tmp_path / "key")]
    assert main([*init, "--new-audit-key-file", str(tmp_path / "audit.key"), "--json"]) == 0
    capsys.readouterr()
    rfr = Cli(capsys, monkeypatch)
    code, out, err = rfr("user", "add", "eve", "--role", "engineer", new_password=PASSWORDS["eve"])
    assert code == 0 and out["roles"] == ["engineer"], err
    code, out, err = rfr("user", "add", "ed", "--role", "engineer", user="eve", new_password=FIRST)
    assert code == 0 and out["state"] == "confirmed", err  # the second engineer: nobody else could confirm
    assert rfr("user", "passwd", "ed", password=FIRST, new_password=PASSWORDS["ed"])[0] == 0
    return rfr


def add_person(rfr: Cli, name: str, roles: list[str], rank: str | None) -> None:
    """One engineer asks, the other confirms, the person chooses their own password at first use."""
    argv = ["user", "add", name, *[x for r in roles for x in ("--role", r)]] + (["--rank", rank] if rank else [])
    code, out, err = rfr(*argv, user="eve")
    assert code == 0 and out["state"] == "pending", err
    code, _, err = rfr("user", "confirm", str(out["request"]), user="ed", new_password=FIRST)
    assert code == 0, err
    refused(rfr("case", "list", user=name, password=FIRST), f"{name} must choose a new password")
    assert rfr("user", "passwd", name, password=FIRST, new_password=PASSWORDS[name])[0] == 0


@pytest.fixture(scope="module")
def people(data_root: Path) -> list[tuple[str, list[Path]]]:
    lfw = data_root / "lfw" / "images"
    chosen = []
    for name in ("Colin_Powell", "Tony_Blair", "Donald_Rumsfeld", "Gerhard_Schroeder", "Ariel_Sharon")[:PEOPLE]:
        chosen.append((name, sorted((lfw / name).glob("*.jpg"))[:3]))
    return chosen


def test_two_cases_end_to_end(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    people: list[tuple[str, list[Path]]],
    data_root: Path,
) -> None:
    rfr = new_terminal(tmp_path, capsys, monkeypatch)
    # Nobody acts as nobody: once a terminal has users, even the first engineer's path is closed.
    refused(
        rfr("user", "add", "mallory", "--role", "engineer", new_password=FIRST),
        "only possible on a terminal with no users",
    )
    for name, roles, rank in (
        ("alice", ["rfr_user"], "Constable"),
        ("ivan", ["approver"], "Inspector"),
        ("sue", ["approver"], "Superintendent"),
        ("pat", ["peer_reviewer"], None),
        ("ann", ["auditor"], None),
    ):
        add_person(rfr, name, roles, rank)
    code, out, _ = rfr("user", "list", user="eve")
    assert [u["username"] for u in out["users"]] == ["alice", "ann", "ed", "eve", "ivan", "pat", "sue"]

    # A library of real photographs, enrolled with the real face engine by a named engineer.
    source = tmp_path / "source"
    for name, images in people:
        (source / name).mkdir(parents=True)
        for image in images[:2]:
            shutil.copy(image, source / name / image.name)
    refused(rfr("library", "create", "custody", "--kind", "substantive"), "the following arguments are required: --as")
    refused(rfr("library", "create", "custody", "--kind", "substantive", user="alice"), "needs the Engineer role")
    assert rfr("library", "create", "custody", "--kind", "substantive", user="eve")[0] == 0
    code, out, err = rfr("library", "enroll", str(source), "--library", "custody", user="eve")
    assert code == 0 and out["enrolled"] == 2 * PEOPLE, err
    # The key holder's search without a case is gone: one way to search, an approved case.
    code, _, err = rfr("library", "search", str(people[0][1][2]), user="alice")
    assert code == 2 and "invalid choice: 'search'" in err

    form = [
        "--use-case", "identify_unknown_subject", "--reference", "OCC/2025/0001", "--offence", "robbery",
        "--justification", "Identify the robber of a post office; every other line of enquiry is exhausted.",
        *CHECKS, "--probe-source", "police", "--captured", "2025-01-02T14:30",
        "--obtained", "Exported from the post office CCTV by PC 1234", "--library", "custody",
    ]  # fmt: skip

    # Refusals, each one line naming the rule.
    refused(
        rfr("case", "new", *without(form, "--justification"), "--age-band", "adult",
            "--probe", str(people[0][1][2]), user="alice"),
        "submission form: justification is missing",
    )  # fmt: skip
    refused(
        rfr("case", "new", *form, "--age-band", "adult", "--probe", str(people[0][1][2]), user="ivan"),
        "needs the RFR User or Tasking officer / SPOC role",
    )
    refused(
        rfr("case", "new", *form, "--age-band", "adult", "--probe", str(people[0][1][2]),
            "--probe", str(people[0][1][1]), user="alice"),
        "2 Probe Images given: a case searches one Probe Image",
    )  # fmt: skip
    two = data_root / "examples" / "face_recognition" / "examples" / "two_people.jpg"
    refused(
        rfr("case", "new", *form, "--age-band", "adult", "--probe", str(two), user="alice"),
        "shows 2 faces: choose the one to search with --face N",
    )
    code, young, err = rfr("case", "new", *form, "--age-band", "under13", "--probe", str(people[2][1][2]), user="alice")
    assert code == 0 and young["required_rank"] == "Superintendent" and young["flags"] == ["under_18", "under_16"]
    assert rfr("case", "submit", young["case"], user="alice")[0] == 0
    code, _, err = rfr("case", "approve", young["case"], "--reason", "child at risk", user="ivan")
    assert code == 1 and err == "rfr: approval refused: case needs Superintendent, you are Inspector\n"
    refused(rfr("case", "search", young["case"], user="alice"), "no search runs without a recorded approval")

    # Case 1: a Viable Match, with its Match Report, exported.
    probe_name, probe_images = people[0]
    code, case, err = rfr("case", "new", *form, "--age-band", "adult", "--probe", str(probe_images[2]), user="alice")
    assert code == 0, err
    assert {k: case[k] for k in ("state", "required_rank", "flags")} == {
        "state": "draft",
        "required_rank": "Inspector",
        "flags": [],
    }
    assert case["probe"]["face"] == 1 and case["probe"]["faces_found"] == 1
    case_id = case["case"]
    assert rfr("case", "submit", case_id, user="alice")[1]["state"] == "submitted"
    refused(rfr("case", "approve", case_id, user="ivan"), "give the reason")
    code, out, err = rfr("case", "approve", case_id, "--reason", "proportionate", user="ivan")
    assert code == 0 and out["state"] == "approved", err
    code, result, err = rfr("case", "search", case_id, user="alice")
    assert code == 0, err
    candidates = result["probes"][0]["candidates"]
    assert result["top_k"] == 20 and len(candidates) == 2 * PEOPLE and result["libraries"] == ["custody"]
    assert candidates[0]["subject"] == probe_name and candidates[1]["subject"] == probe_name
    assert "intelligence lead only" in result["notice"]
    point = load_default_policy().operating_point
    assert result["scoring"]["calibrated"] is True and result["scoring"]["calibration"] == point.calibration_id
    assert result["scoring"]["score_display"] == "similarity" and result["scoring"]["library"]["people"] == PEOPLE
    assert candidates[0]["within_operating_threshold"] is True and "distance" not in candidates[0]
    assert candidates[0]["score"] == round(candidates[0]["score"], 3)  # the policy's decimals
    refused(
        rfr("case", "adjudicate", case_id, "--candidate", "1", "--decision", "viable", user="alice"),
        "a Viable Match needs a Match Report covering factors (i) to (v)",
    )
    report = tmp_path / "report.yaml"
    report.write_text(REPORT)
    code, out, err = rfr(
        "case", "adjudicate", case_id, "--candidate", "1", "--decision", "viable", "--report", str(report), user="alice"
    )
    assert code == 0 and out["state"] == "searched", err
    html_path = tmp_path / "out" / "match-report.html.age"
    html_path.parent.mkdir()
    monkeypatch.setenv("RFR_REPORT_PASSPHRASE", REPORT_PASSPHRASE)
    refused(rfr("case", "report", case_id, "--out", str(html_path), user="alice"), "exported only once every")
    for rank in range(2, len(candidates) + 1):
        code, out, err = rfr(
            "case", "adjudicate", case_id, "--candidate", str(rank), "--decision", "not-viable", user="alice"
        )
        assert code == 0, err
    assert out["state"] == "adjudicated"
    # The Match Report leaves the terminal only encrypted: a passphrase too short is refused before anything.
    monkeypatch.setenv("RFR_REPORT_PASSPHRASE", "too short")
    refused(rfr("case", "report", case_id, "--out", str(html_path), user="alice"), "passphrase is too short")
    assert not html_path.exists() and "RFR_REPORT_PASSPHRASE" not in os.environ  # taken out as the command started
    monkeypatch.setenv("RFR_REPORT_PASSPHRASE", REPORT_PASSPHRASE)
    code, out, err = rfr("case", "report", case_id, "--out", str(html_path), user="alice")
    assert code == 0 and out["encrypted"] == "passphrase", err
    assert stat.S_IMODE(html_path.stat().st_mode) == 0o600
    sealed = html_path.read_bytes()
    assert sealed.startswith(b"age-encryption.org/v1\n") and b"data:image" not in sealed and b"JFIF" not in sealed
    text = pyrage.passphrase.decrypt(sealed, REPORT_PASSPHRASE).decode("utf-8")  # as age -d opens it
    assert text.count("data:image/jpeg;base64,") == 2
    assert "A Viable Match is an intelligence lead only. It is not an identification and it is not evidence." in text
    assert "(iii) the time lapse between the two images" in text and "Eyebrows, nose, mouth and ears agree" in text
    assert "dlib_face_recognition_resnet_model_v1" in text and "with rfr " in text
    assert (
        f"within the operating threshold {point.threshold:.3f}" in text
        and f"calibration {point.calibration_id}" in text
    )
    assert "Equity caveat: at the operating threshold" in text and f"{PEOPLE} people (" in text
    monkeypatch.setenv("RFR_REPORT_PASSPHRASE", REPORT_PASSPHRASE)
    refused(rfr("case", "report", case_id, "--out", str(html_path), user="alice"), "already exists")
    # A terminal given the public keys of those who may open Match Reports encrypts to them, asking nothing.
    receiver = pyrage.x25519.Identity.generate()
    recipients = tmp_path / "report-recipients.txt"
    recipients.write_text(f"# the force's disclosure unit\n{receiver.to_public()}\n")
    monkeypatch.setenv("RFR_REPORT_RECIPIENTS_FILE", str(recipients))
    to_unit = tmp_path / "out" / "for-the-unit.html.age"
    code, out, err = rfr("case", "report", case_id, "--out", str(to_unit), user="alice")
    assert code == 0 and out["encrypted"] == "recipients", err
    assert "data:image/jpeg;base64," in pyrage.decrypt(to_unit.read_bytes(), [receiver]).decode("utf-8")
    monkeypatch.delenv("RFR_REPORT_RECIPIENTS_FILE")
    code, out, err = rfr("case", "close", case_id, user="alice")
    assert code == 0 and out["outcome"] == "viable_match" and out["probe_template_deleted"], err

    # Case 2: no viable match; the peer reviewer's agreement closes it and deletes its probe data at once.
    code, case2, err = rfr("case", "new", *form, "--age-band", "16-17", "--probe", str(people[1][1][2]), user="alice")
    assert code == 0 and case2["flags"] == ["under_18"], err
    second = case2["case"]
    rfr("case", "submit", second, user="alice")
    rfr("case", "approve", second, "--reason", "proportionate", user="sue")
    code, result, err = rfr("case", "search", second, user="alice")
    assert code == 0, err
    for c in result["probes"][0]["candidates"]:
        code, out, err = rfr(
            "case", "adjudicate", second, "--candidate", str(c["rank"]), "--decision", "not-viable", user="alice"
        )
        assert code == 0, err
    assert out["state"] == "peer_review"
    refused(rfr("case", "close", second, user="alice"), "is peer_review, not adjudicated")
    refused(
        rfr("case", "peer-review", second, "--agree", "--reason", "fine", user="alice"), "needs the Peer reviewer role"
    )
    code, out, err = rfr("case", "peer-review", second, "--agree", "--reason", "none is viable", user="pat")
    assert code == 0 and out["state"] == "closed", err
    assert out["probe_template_deleted"] and out["probe_image_deleted"]
    code, shown, err = rfr("case", "show", second, user="pat")
    assert code == 0 and shown["state"] == "closed" and shown["probe"]["template_held"] is False
    with Workspace.open(tmp_path / "ws", read_key_file(tmp_path / "key")) as ws:
        assert ws.query("SELECT image, template, quality FROM case_probes WHERE case_id = ?", (second,)) == [
            (None, None, None)
        ]
        actions = [r[0] for r in ws.query("SELECT action FROM audit_events WHERE subjects LIKE ?", (f'%"{second}"%',))]
    assert actions[-3:] == ["case.peer_review", "case.probe_deleted", "case.view"]

    # A third case withdrawn before search: its probe data goes at once.
    code, case3, err = rfr("case", "new", *form, "--age-band", "adult", "--probe", str(people[3][1][2]), user="alice")
    assert code == 0, err
    refused(rfr("case", "withdraw", case3["case"], user="alice"), "give the reason")
    code, out, err = rfr("case", "withdraw", case3["case"], "--reason", "suspect named by a witness", user="alice")
    assert code == 0 and out["state"] == "withdrawn" and out["probe_image_deleted"], err

    # The queues: every case, or those in one state; the listing is audited like any view.
    code, out, err = rfr("case", "list", user="pat")
    assert code == 0 and [c["case"] for c in out["cases"]] == [young["case"], case_id, second, case3["case"]], err
    code, out, err = rfr("case", "list", "--state", "submitted", user="sue")
    assert code == 0 and [(c["case"], c["required_rank"]) for c in out["cases"]] == [
        (young["case"], "Superintendent")
    ], err
    refused(rfr("case", "list", user="eve"), "list refused: casework is seen only by")
    refused(rfr("case", "show", case_id), "the following arguments are required: --as")

    # The quarterly figures: outcomes by the recorded demographic fields, this quarter by default.
    code, out, err = rfr("audit", "outcomes", user="ann")
    assert code == 0 and (out["closed_cases"], out["viable_match_cases"]) == (2, 1), err
    assert out["adjudicated_potential_matches"] == len(candidates) + len(result["probes"][0]["candidates"])
    assert {b["field"] for b in out["by_potential_match"]} == {"sex", "ic_code", "age_range", "library"}
    refused(
        rfr("audit", "outcomes", "--since", "2026-02-01", "--until", "2026-01-01", user="ann"), "is not before --until"
    )

    # The audit log verifies, and an edited or deleted event is named.
    code, out, err = rfr("audit", "verify", user="ann")
    assert code == 0 and out["ok"] is True and out["events"] > 40 and out["problems"] == [], err
    with Workspace.open(tmp_path / "ws", read_key_file(tmp_path / "key")) as ws, ws.transaction() as conn:
        conn.execute("DROP TRIGGER audit_events_no_update")
        conn.execute("DROP TRIGGER audit_events_no_delete")
        conn.execute("UPDATE audit_events SET actor = 'sue' WHERE action = 'case.approve' AND actor = 'ivan'")
        edited = conn.execute(
            "SELECT seq FROM audit_events WHERE action = 'case.approve' AND actor = 'sue'"
        ).fetchone()[0]
        conn.execute("DELETE FROM audit_events WHERE seq = 5")
    code, out, _ = rfr("audit", "verify", user="ann")
    assert code == 1 and out["ok"] is False
    problems = " | ".join(out["problems"])
    assert f"seq {edited}: hash mismatch (event edited)" in problems
    assert "events deleted: seq 5 missing" in problems
    assert "append-only protection removed" in problems


def test_secrets_never_come_from_argv(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["case", "approve", "RFR-000001", "--as", "ivan", "--password", "hunter2hunter2"]) == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_a_small_face_is_found_enlarged_when_the_case_is_made(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    people: list[tuple[str, list[Path]]],
) -> None:
    """Found: casework detected at upsampling 0, where the smallest face is about 80 px: a CCTV still with a
    60 px face was "no face". Here an LFW photograph is shrunk so its face is about 50 px wide."""
    import cv2

    rfr = new_terminal(tmp_path, capsys, monkeypatch)
    add_person(rfr, "alice", ["rfr_user"], "Constable")
    assert rfr("library", "create", "custody", "--kind", "substantive", user="eve")[0] == 0
    image = cv2.imread(str(people[0][1][0]))
    small = tmp_path / "small.jpg"
    cv2.imwrite(str(small), cv2.resize(image, (125, 125), interpolation=cv2.INTER_AREA))
    form = [
        "--use-case", "identify_unknown_subject", "--reference", "OCC/2025/0002", "--offence", "robbery",
        "--justification", "Identify the robber of a post office; every other line of enquiry is exhausted.",
        *CHECKS, "--probe-source", "other", "--captured", "2025-01-02",
        "--obtained", "Still taken from a member of the public's phone video", "--library", "custody",
        "--age-band", "adult", "--probe", str(small),
    ]  # fmt: skip
    code, out, err = rfr("case", "new", *form, user="alice")
    assert code == 0, err
    assert out["probe"]["upsample"] >= 1 and "enlarge" in out["probe"]["note"], out["probe"]
