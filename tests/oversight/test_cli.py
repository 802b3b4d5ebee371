"""The commands as an auditor at a terminal and the oversight's auditors run them, in-process through ``rfr``.

From the oversight's key pair to the Board's report: ``rfr oversight keys init``, ``rfr audit
export`` at the terminal, ``rfr oversight init``, its accounts (two engineers, then an auditor),
``terminals add``, ``import`` (a genuine bundle, then a tampered one), ``report``. Secrets come
from the environment, which every run takes out of it, and never from argv.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.cli import main
from tests.oversight.history import PASSPHRASE, TERMINAL, Clock, at, new_terminal
from tests.terminals import FAST, FIRST_PASSWORD, PASSWORD, provision, synthetic_faces


@dataclass
class Rfr:
    capsys: pytest.CaptureFixture[str]
    monkeypatch: pytest.MonkeyPatch

    def __call__(self, *argv: str, **secrets: str) -> tuple[int, str, str]:
        for name, value in secrets.items():
            self.monkeypatch.setenv(name, value)
        code = main(list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def rfr(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Rfr:
    for name in ("RFR_CONFIG", "RFR_PASSPHRASE", "RFR_POLICY", "RFR_MODELS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("engine.cli.terminal.SCRYPT", FAST)
    monkeypatch.setattr("engine.cli.terminal.FACES", lambda config: synthetic_faces())
    return Rfr(capsys, monkeypatch)


def test_from_the_terminal_to_the_boards_report(rfr: Rfr, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = tmp_path / "oversight.key", tmp_path / "oversight.pub"
    code, out, _ = rfr(
        "oversight",
        "keys",
        "init",
        "--private-key",
        str(private),
        "--public-key",
        str(public),
        RFR_OVERSIGHT_PASSPHRASE=PASSPHRASE,
    )
    assert code == 0 and "Oversight key pair made" in out and PASSPHRASE not in out

    # The terminal: an auditor exports its log to the media.
    directory = tmp_path / "ws"
    with new_terminal(directory, public, Clock(at("2026-07-01T09:00:00"))) as terminal:
        provision(terminal, {"ann": (["auditor"], None)})
    for name, value in {
        "RFR_WORKSPACE": directory,
        "RFR_KEY_FILE": directory.with_name("ws.key"),
        "RFR_AUDIT_KEY_FILE": directory.with_name("ws.audit-key"),
        "RFR_OVERSIGHT_KEY_FILE": public,
        "RFR_TERMINAL_NAME": TERMINAL,
    }.items():
        monkeypatch.setenv(name, str(value))
    media = tmp_path / "media"
    media.mkdir()
    code, out, err = rfr("audit", "export", "--to", str(media), "--as", "ann", "--json", RFR_PASSWORD=PASSWORD)
    assert code == 0, err
    exported = json.loads(out)
    bundle = Path(exported["path"])
    assert bundle.parent == media and exported["first"] == 1
    code, pem, _ = rfr("audit", "public-key", "--as", "ann", RFR_PASSWORD=PASSWORD)
    (tmp_path / "terminal.pub").write_text(pem)

    # The oversight's own workspace and people.
    ovs = tmp_path / "ovs"
    code, out, err = rfr(
        "oversight",
        "init",
        str(ovs),
        "--new-key-file",
        str(tmp_path / "ovs.key"),
        "--new-audit-key-file",
        str(tmp_path / "ovs.audit-key"),
    )
    assert code == 0, err
    monkeypatch.setenv("RFR_OVERSIGHT_WORKSPACE", str(ovs))
    monkeypatch.setenv("RFR_OVERSIGHT_WORKSPACE_KEY_FILE", str(tmp_path / "ovs.key"))
    monkeypatch.setenv("RFR_OVERSIGHT_AUDIT_KEY_FILE", str(tmp_path / "ovs.audit-key"))
    assert rfr("oversight", "user", "add", "eng1", "--role", "engineer", RFR_NEW_PASSWORD=PASSWORD)[0] == 0
    code, out, err = rfr(
        "oversight",
        "user",
        "add",
        "eng2",
        "--role",
        "engineer",
        "--as",
        "eng1",
        RFR_PASSWORD=PASSWORD,
        RFR_NEW_PASSWORD=FIRST_PASSWORD,
    )
    assert code == 0, err
    code, out, err = rfr(
        "oversight", "user", "add", "olive", "--role", "auditor", "--as", "eng1", "--json", RFR_PASSWORD=PASSWORD
    )
    assert code == 0, err
    request = json.loads(out)["request"]
    assert rfr("oversight", "user", "passwd", "eng2", RFR_PASSWORD=FIRST_PASSWORD, RFR_NEW_PASSWORD=PASSWORD)[0] == 0
    code, out, err = rfr(
        "oversight",
        "user",
        "confirm",
        str(request),
        "--as",
        "eng2",
        RFR_PASSWORD=PASSWORD,
        RFR_NEW_PASSWORD=FIRST_PASSWORD,
    )
    assert code == 0, err
    assert rfr("oversight", "user", "passwd", "olive", RFR_PASSWORD=FIRST_PASSWORD, RFR_NEW_PASSWORD=PASSWORD)[0] == 0

    # An auditor registers the terminal and imports; an engineer may not.
    code, out, err = rfr(
        "oversight",
        "terminals",
        "add",
        TERMINAL,
        "--audit-public-key",
        str(tmp_path / "terminal.pub"),
        "--as",
        "olive",
        RFR_PASSWORD=PASSWORD,
    )
    assert code == 0 and "Registered terminal CUSTODY-01" in out, err
    code, out, err = rfr(
        "oversight",
        "import",
        str(bundle),
        "--private-key",
        str(private),
        "--as",
        "eng1",
        RFR_PASSWORD=PASSWORD,
        RFR_OVERSIGHT_PASSPHRASE=PASSPHRASE,
    )
    assert code != 0 and "importing audit bundles refused: it needs the Auditor role" in err and out == ""
    tampered = media / "tampered.rfrbundle"
    data = bundle.read_bytes()
    tampered.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    code, out, err = rfr(
        "oversight",
        "import",
        str(bundle),
        str(tampered),
        "--private-key",
        str(private),
        "--as",
        "olive",
        RFR_PASSWORD=PASSWORD,
        RFR_OVERSIGHT_PASSPHRASE=PASSPHRASE,
    )
    assert code == 1 and "1 of 2 bundles need an auditor's attention" in err
    lines = out.splitlines()
    assert lines[0].startswith(f"ACCEPTED     {bundle.name} CUSTODY-01 seq 1-{exported['last']}: accepted")
    assert lines[1].startswith("REFUSED      tampered.rfrbundle: the bundle does not decrypt")
    code, out, err = rfr("oversight", "terminals", "list", "--as", "olive", RFR_PASSWORD=PASSWORD)
    assert code == 0 and f"accepted through seq {exported['last']}" in out

    # The Board's report for the first quarter the terminal's events fall in.
    quarter = exported["quarters"][0]
    code, out, err = rfr(
        "oversight",
        "report",
        "--quarter",
        quarter,
        "--out",
        str(tmp_path / "report"),
        "--as",
        "olive",
        "--json",
        RFR_PASSWORD=PASSWORD,
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["totals"]["searches"] == 0 and report["coverage"][0]["accepted_through"] == exported["last"]
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "coverage.csv",
        "figures.csv",
        "library_composition.csv",
        "rates.csv",
        "report.html",
    ]
    code, _, err = rfr("oversight", "report", "--quarter", "2026Q5", "--as", "olive", RFR_PASSWORD=PASSWORD)
    assert code == 2 and "'2026Q5' is not a quarter such as 2026Q3" in err
