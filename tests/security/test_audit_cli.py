"""``rfr audit ...`` as an auditor and an engineer run it, on a real terminal, after real tampering.

The terminal is made as ``rfr workspace init`` makes it (a workspace key file and an audit
signing key file beside the workspace), with an auditor, two engineers and an RFR User. The
attacker holds the workspace key only and changes the database with plain SQL; the auditor
then runs ``rfr audit verify`` through the real command line (in-process, as the console
script would), which must exit 1 and name each problem. Key files that are FIFOs or symbolic
links are refused with one line and never hang the command.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine import audit
from engine.audit import AuditSigningKey
from engine.audit.store import ALL_TRIGGERS
from engine.cli import main
from engine.workspace import Workspace
from tests.terminals import FAST, PASSWORD, make_terminal, provision, synthetic_faces, terminal_config

HEAD = re.compile(r"Record this head for next time: --expect (\d+):([0-9a-f]{64})$")


@dataclass
class Rfr:
    """Runs ``rfr`` in this process as the configured terminal, signed in as ``user``."""

    directory: Path
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    def __call__(self, *argv: str, user: str | None = "aud") -> tuple[int, str, str]:
        self.monkeypatch.setenv("RFR_PASSWORD", PASSWORD)  # each run takes it out of the environment
        code = main([*argv, *(["--as", user] if user else [])])
        out, err = self.capsys.readouterr()
        return code, out, err

    def verify(self, *options: str) -> tuple[int, str, str]:
        return self("audit", "verify", *options)

    def head(self) -> tuple[int, str]:
        code, out, err = self.verify()
        assert code == 0, out + err
        match = HEAD.search(out.strip())
        assert match is not None, out
        return int(match.group(1)), match.group(2)

    def tamper(self, *statements: str, attack: Callable[[Any], None] | None = None) -> None:
        """As someone holding the workspace key only: plain SQL, triggers dropped and put back."""
        config = terminal_config(self.directory)
        with Workspace.unlock(self.directory, config.key_file) as ws, ws.reading() as conn:
            for name in ALL_TRIGGERS:
                conn.execute(f"DROP TRIGGER {name}")
            for statement in statements:
                conn.execute(statement)
            if attack is not None:
                attack(conn)
            for sql in ALL_TRIGGERS.values():
                conn.execute(sql)


@pytest.fixture
def rfr(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Rfr]:
    directory = tmp_path / "ws"
    with make_terminal(directory) as terminal:
        provision(terminal, {"aud": (["auditor"], None), "alice": (["rfr_user"], "Constable")})
    config = terminal_config(directory)
    for name in ("RFR_CONFIG", "RFR_PASSPHRASE", "RFR_POLICY", "RFR_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RFR_WORKSPACE", str(directory))
    monkeypatch.setenv("RFR_KEY_FILE", str(config.key_file))
    monkeypatch.setenv("RFR_AUDIT_KEY_FILE", str(config.audit_key_file))
    monkeypatch.setattr("engine.cli.terminal.SCRYPT", FAST)
    monkeypatch.setattr("engine.cli.terminal.FACES", lambda config: synthetic_faces())
    yield Rfr(directory, capsys, monkeypatch)


def failed(result: tuple[int, str, str], problems: list[str]) -> None:
    """Exit 1, and the report names exactly these problems, one a line."""
    code, out, err = result
    assert code == 1, out + err
    lines = out.rstrip("\n").split("\n")
    assert re.fullmatch(r"AUDIT LOG FAILED VERIFICATION \(\d+ events\):", lines[0]), out
    assert [line.removeprefix("  ") for line in lines[1:]] == problems


def refused(result: tuple[int, str, str], message: str) -> None:
    """A non-zero exit, nothing on stdout, one line on stderr naming what is wrong."""
    code, out, err = result
    assert code != 0 and out == "", out
    assert err.count("\n") == 1 and err.startswith("rfr: ") and message in err, err


def test_verify_a_clean_log_and_record_its_head(rfr: Rfr) -> None:
    code, out, err = rfr.verify()
    assert code == 0, err
    assert out.startswith("Audit log verified with the terminal's own audit key: ")
    seq, digest = rfr.head()
    code, out, _ = rfr.verify("--json", "--expect", f"{seq}:{digest.upper()}")
    payload = json.loads(out)
    assert code == 0 and payload["ok"] is True and payload["problems"] == []
    assert payload["signed_through"] == payload["events"] == payload["head"][0] > seq
    assert payload["keys"] == [AuditSigningKey.read_file(terminal_config(rfr.directory).audit_key_file).key_id]
    code, out, _ = rfr("audit", "events", "--action", "audit.verify", "--json")
    assert code == 0 and [e["details"]["ok"] for e in json.loads(out)["events"]] == [True, True, True]


def appended_forgeries(conn: Any) -> None:
    last_seq, last_hash = conn.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    prev = last_hash
    for seq in range(last_seq + 1, last_seq + 4):
        fields = (seq, "2025-03-02T10:00:00.000000Z", "mallory", "case.search", "{}", "{}", prev)
        prev = audit.event_hash(*fields)
        conn.execute("INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*fields, prev))


FOUND = "the terminal found, when it next wrote, that {} (events written behind its back, or signed heads deleted)"


@pytest.mark.parametrize(
    ("statements", "attack", "problems"),
    [
        (
            ["UPDATE audit_events SET actor = 'mallory' WHERE seq = 7"],
            None,
            ["seq 7: hash mismatch (event edited)"],
        ),
        (
            ["DELETE FROM audit_checkpoints", "DELETE FROM audit_events WHERE seq > 5"],
            None,
            ["seq 7: " + FOUND.format("no signed head covered seq 1 to seq 5")],
        ),
        (
            ["DELETE FROM audit_checkpoints"],
            None,
            ["seq 16: " + FOUND.format("no signed head covered seq 1 to seq 14")],
        ),
        (
            [],
            appended_forgeries,
            ["seq 19: " + FOUND.format("seq 15 to seq 17 followed the last signed head (checkpoint 14)")],
        ),
        (
            ["DELETE FROM audit_checkpoints WHERE number = 3"],
            None,
            ["signed heads deleted: checkpoint 3 missing"],
        ),
        (
            ["UPDATE audit_checkpoints SET signature = randomblob(64) WHERE number = 4"],
            None,
            ["checkpoint 4 (seq 4): signature does not verify with the log's audit keys (forged signed head)"],
        ),
    ],
    ids=[
        "an event edited",
        "every signed head deleted and the log truncated",
        "every signed head deleted",
        "events appended after the last signed head",
        "a signed head deleted",
        "a signed head forged",
    ],
)
def test_verify_names_each_problem_after_tampering(
    rfr: Rfr, statements: list[str], attack: Callable[[Any], None] | None, problems: list[str]
) -> None:
    with Workspace.unlock(rfr.directory, terminal_config(rfr.directory).key_file) as ws:
        assert ws.query("SELECT MAX(seq) FROM audit_events") == [(14,)], "the log the expected problems assume"
    rfr.tamper(*statements, attack=attack)
    failed(rfr.verify(), problems)
    code, out, _ = rfr.verify("--json")
    assert code == 1 and json.loads(out)["ok"] is False and json.loads(out)["problems"] == problems


def test_the_triggers_dropped_are_reported(rfr: Rfr) -> None:
    config = terminal_config(rfr.directory)
    with Workspace.unlock(rfr.directory, config.key_file) as ws, ws.reading() as conn:
        conn.execute("DROP TRIGGER audit_events_no_delete")
        conn.execute("DROP TRIGGER audit_keys_no_update")
    failed(
        rfr.verify(),
        [
            "append-only protection removed: trigger audit_events_no_delete is missing",
            "append-only protection removed: trigger audit_keys_no_update is missing",
        ],
    )


def test_expect_catches_a_log_cut_back_to_an_earlier_signed_head(rfr: Rfr) -> None:
    earlier = rfr.head()
    later = rfr.head()
    rfr.tamper(
        f"DELETE FROM audit_events WHERE seq > {earlier[0]}", f"DELETE FROM audit_checkpoints WHERE seq > {earlier[0]}"
    )
    code, out, err = rfr.verify()
    assert code == 0, out + err  # without a head recorded outside the terminal: the documented limit
    failed(
        rfr.verify("--expect", f"{later[0]}:{later[1]}"),
        [
            f"the log does not hold the head recorded outside the terminal (seq {later[0]}, hash {later[1][:16]}): "
            "it was rolled back or rebuilt"
        ],
    )


def test_the_auditors_public_key_must_be_the_terminals(rfr: Rfr, tmp_path: Path) -> None:
    code, pem, _ = rfr("audit", "public-key")
    assert code == 0 and pem.startswith("-----BEGIN PUBLIC KEY-----")
    mine = tmp_path / "terminal.pem"
    mine.write_text(pem)
    code, out, _ = rfr.verify("--public-key", str(mine))
    assert code == 0 and out.startswith("Audit log verified with the public key given: "), out
    other = make_terminal(tmp_path / "other")
    theirs = tmp_path / "other.pem"
    theirs.write_text(audit.public_key_pem(other.ws.audit_public_key))
    other.close()
    own_id = AuditSigningKey.read_file(terminal_config(rfr.directory).audit_key_file).key_id
    other_id = AuditSigningKey.read_file(terminal_config(tmp_path / "other").audit_key_file).key_id
    failed(
        rfr.verify("--public-key", str(theirs)),
        [
            f"the log is not signed with the public key given ({other_id[:16]}); its keys are {own_id[:16]}: "
            "the log was rebuilt, or the key is another terminal's"
        ],
    )
    theirs.write_text("not a key\n")
    refused(rfr.verify("--public-key", str(theirs)), "the public key is neither PEM nor 32 raw bytes")


def test_rotate_the_key_then_verify_with_the_old_and_the_new(rfr: Rfr, tmp_path: Path) -> None:
    key_file = terminal_config(rfr.directory).audit_key_file
    old_pem = tmp_path / "old.pem"
    old_pem.write_text(rfr("audit", "public-key")[1])
    refused(rfr("audit", "rotate-key", "--reason", "yearly"), "rotating the audit key refused: it needs the Engineer")
    code, out, err = rfr("audit", "rotate-key", "--reason", "yearly rotation", "--json", user="eng1")
    assert code == 0, err
    rotated = json.loads(out)
    new_pem = tmp_path / "new.pem"
    new_pem.write_text(rotated["public_key"])
    assert rotated["public_key"] != old_pem.read_text()
    assert audit.public_key_pem(AuditSigningKey.read_file(key_file).public_key) == rotated["public_key"]
    for options in ((), ("--public-key", str(old_pem)), ("--public-key", str(new_pem))):
        code, out, err = rfr.verify(*options)
        assert code == 0, out + err
    code, out, _ = rfr("audit", "events", "--action", "audit.key_rotated", "--json")
    (event,) = json.loads(out)["events"]
    assert (event["seq"], event["actor"], event["details"]["reason"]) == (
        rotated["rotated_at_seq"],
        "eng1",
        "yearly rotation",
    )


def test_a_malformed_expectation_is_refused(rfr: Rfr) -> None:
    refused(rfr.verify("--expect", "12:abc"), "'12:abc' is not SEQ:HASH (a sequence number and 64 hex digits)")


# Key files that are not regular files


def run_with_deadline(action: Callable[[], int], fifo: Path | None, seconds: float = 3.0) -> tuple[int, bool]:
    """Run ``action`` in a thread; if it is still blocked after ``seconds``, open the FIFO's other end to free it.

    Returns (its exit code, whether it hung), so a hang fails the test instead of the suite.
    """
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(action()), daemon=True)
    thread.start()
    thread.join(seconds)
    hung = thread.is_alive()
    if hung and fifo is not None:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # a reader is blocked in open(): this lets it go
        thread.join(seconds)
    assert not thread.is_alive(), "the command is still blocked"
    return result[0], hung


def special(path: Path, kind: str, real: Path) -> None:
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    else:
        path.symlink_to(real)


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("public key", {"fifo": "is not a regular file: give the file itself", "symlink": "is a symbolic link"}),
        (
            "audit signing key file",
            {"fifo": "is not a regular file: give the file itself", "symlink": "is a symbolic link"},
        ),
        ("key file", {"fifo": "is not a regular file: give the file itself", "symlink": "is a symbolic link"}),
    ],
)
def test_key_files_that_are_not_regular_files_are_refused_without_hanging(
    rfr: Rfr, tmp_path: Path, which: str, message: dict[str, str], kind: str
) -> None:
    config = terminal_config(rfr.directory)
    path = tmp_path / f"{kind}.key"
    argv = ["audit", "verify", "--as", "aud"]
    if which == "public key":
        pem = tmp_path / "real.pem"
        pem.write_text(rfr("audit", "public-key")[1])
        special(path, kind, pem)
        argv += ["--public-key", str(path)]
    else:
        real = config.audit_key_file if which == "audit signing key file" else config.key_file
        special(path, kind, real)  # type: ignore[arg-type]
        variable = "RFR_AUDIT_KEY_FILE" if which == "audit signing key file" else "RFR_KEY_FILE"
        rfr.monkeypatch.setenv(variable, str(path))
    rfr.monkeypatch.setenv("RFR_PASSWORD", PASSWORD)
    code, hung = run_with_deadline(lambda: main(argv), path if kind == "fifo" else None)
    out, err = rfr.capsys.readouterr()
    assert not hung, f"rfr waited on the {which} FIFO {path} instead of refusing it"
    refused((code, out, err), f"{which} {path}")
    assert message[kind] in err, err
