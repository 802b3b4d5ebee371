"""Installing the central unit's root, and ``rfr media`` at the command line (JSON, exit codes, one-line errors)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner

from engine import audit
from engine.cli import main
from engine.errors import PermissionRefused
from engine.media.fetcher import MediaRefused
from tests.media.conftest import Clock, build_world, fingerprint, media_config
from tests.media.repository import CentralRepository, library_package, resign
from tests.terminals import FAST, PASSWORD, provision, synthetic_faces


def test_the_root_is_installed_once_by_an_engineer_and_recorded(tmp_path: Path) -> None:
    w = build_world(tmp_path, first_package=False, trust=False)
    try:
        officer = provision(w.terminal, {"olive": (["rfr_user"], "Constable")})["olive"]
        root = tmp_path / "root.json"
        with pytest.raises(PermissionRefused, match="needs the Engineer role"):
            w.terminal.media.trust(officer, root)
        with pytest.raises(MediaRefused, match="trusts no central unit yet"):
            w.read(w.medium())
        info = w.terminal.media.trust(w.session, root)
        assert info.version == 1 and info.installed_by == "eng1" and info.root_threshold == 1
        with pytest.raises(MediaRefused, match="already installed"):
            w.terminal.media.trust(w.session, root)
        other = tmp_path / "other-root.json"
        other.write_bytes(CentralRepository(now=w.clock()).root_bytes)
        with pytest.raises(MediaRefused, match=r"a root is already installed .* never takes a second root"):
            w.terminal.media.trust(w.session, other)
        with w.ws.reading() as conn:
            installed = [e for e in audit.events(conn) if e.action == "media.trust_installed"]
        assert [(e.actor, e.details["root_sha256"]) for e in installed] == [("eng1", info.sha256)]
    finally:
        w.terminal.close()


@pytest.mark.parametrize(
    ("spoil", "match"),
    [
        ("unsigned", "not signed by 1 of its own root keys"),
        ("expired", "the root expired"),
        ("not json", "not TUF root metadata"),
        ("symlink", "symbolic link"),
    ],
)
def test_a_root_that_cannot_be_trusted_is_not_installed(tmp_path: Path, spoil: str, match: str) -> None:
    w = build_world(tmp_path, first_package=False, trust=False)
    try:
        root = tmp_path / "root.json"
        if spoil == "unsigned":
            resign(root, CryptoSigner.generate_ed25519())
        elif spoil == "expired":
            w.clock.advance(days=400)
            w.session = w.terminal.sign_in("eng1", PASSWORD)
        elif spoil == "not json":
            root.write_bytes(b"\xff\xfe not a root")
        else:
            (tmp_path / "real.json").write_bytes(root.read_bytes())
            root.unlink()
            root.symlink_to(tmp_path / "real.json")
        before = fingerprint(w.ws)
        with pytest.raises(MediaRefused, match=match):
            w.terminal.media.trust(w.session, root)
        assert fingerprint(w.ws) == before
    finally:
        w.terminal.close()


def test_a_terminal_without_a_force_applies_nothing(tmp_path: Path) -> None:
    from dataclasses import replace

    from engine.terminal import Terminal

    w = build_world(tmp_path)
    w.terminal.close()
    config = replace(media_config(w.ws.directory), force=None)
    with Terminal.open(config, faces=synthetic_faces(), scrypt=FAST, clock=w.clock) as terminal:
        session = terminal.sign_in("eng1", PASSWORD)
        with pytest.raises(MediaRefused, match="no force configured"):
            terminal.media.read(session, w.tmp / "medium-1")


# ---- the command line ---------------------------------------------------------------------------------


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    os.environ["RFR_PASSWORD"] = PASSWORD
    code = main(list(argv))
    out, err = capsys.readouterr()
    try:
        payload = json.loads(out) if out.strip() else None
    except json.JSONDecodeError:
        payload = out
    return code, payload, err


@pytest.fixture
def cli_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # The command line runs on the real clock: the repository is made for now.
    w = build_world(tmp_path, Clock(datetime.now(UTC) - timedelta(minutes=1)), first_package=False, trust=False)
    w.terminal.close()
    config = media_config(w.ws.directory)
    monkeypatch.setattr("engine.cli.terminal.FACES", lambda _config: synthetic_faces())
    monkeypatch.setattr("engine.cli.terminal.SCRYPT", FAST)
    monkeypatch.delenv("RFR_CONFIG", raising=False)
    monkeypatch.delenv("RFR_PASSPHRASE", raising=False)
    monkeypatch.setenv("RFR_WORKSPACE", str(config.workspace))
    monkeypatch.setenv("RFR_KEY_FILE", str(config.key_file))
    monkeypatch.setenv("RFR_AUDIT_KEY_FILE", str(config.audit_key_file))
    monkeypatch.setenv("RFR_MEDIA_KEY_FILE", str(config.media_key_file))
    monkeypatch.setenv("RFR_FORCE", "force-a")
    monkeypatch.setenv("RFR_GROUPS", "custody-suites, north")
    return w


def test_trust_read_apply_and_status_at_the_command_line(cli_world: Any, capsys: pytest.CaptureFixture[str]) -> None:
    w = cli_world
    code, payload, err = run(capsys, "media", "trust", str(w.tmp / "root.json"), "--as", "eng1", "--json")
    assert code == 0, err
    assert payload["version"] == 1 and payload["installed_by"] == "eng1" and len(payload["sha256"]) == 64
    w.repo.add_package(*library_package(1, {"alpha": 2}))
    medium = w.medium()
    code, payload, err = run(capsys, "media", "read", str(medium), "--as", "eng1", "--json")
    assert code == 0, err
    assert payload["to_apply"] == ["library:custody#1"]
    assert payload["packages"][0]["changes"]["library"]["subjects_added_references"] == ["alpha"]
    code, payload, err = run(capsys, "media", "apply", str(medium), "--as", "eng1")
    assert code == 2 and err.startswith("rfr: applying asks for confirmation") and err.count("\n") == 1
    code, payload, err = run(capsys, "media", "apply", str(medium), "--as", "eng1", "--yes", "--json")
    assert code == 0, err
    assert payload["applied"]["packages"][0]["package"] == "library:custody#1"
    code, payload, err = run(capsys, "media", "status", "--as", "eng1", "--json")
    assert code == 0, err
    assert payload["streams"] == {"library:custody": 1} and payload["groups"] == ["custody-suites", "north"]
    code, text, err = run(capsys, "media", "apply", str(medium), "--as", "eng1", "--yes")
    assert code == 0 and "nothing new on this medium for this terminal" in text


def test_a_refused_medium_exits_non_zero_with_one_line(cli_world: Any, capsys: pytest.CaptureFixture[str]) -> None:
    w = cli_world
    assert run(capsys, "media", "trust", str(w.tmp / "root.json"), "--as", "eng1")[0] == 0
    w.repo.add_package(*library_package(1, {"alpha": 2}))
    w.repo.sign_with["timestamp"] = [CryptoSigner.generate_ed25519()]
    code, payload, err = run(capsys, "media", "apply", str(w.medium()), "--as", "eng1", "--yes", "--json")
    assert code == 1 and payload is None
    assert err.startswith("rfr: metadata not signed by enough trusted keys") and err.count("\n") == 1


def test_force_groups_and_media_key_come_from_the_configuration_file_or_the_environment(tmp_path: Path) -> None:
    from engine.errors import ConfigError
    from engine.terminal import TerminalConfig

    config = tmp_path / "terminal.yaml"
    config.write_text(
        "workspace: ws\naudit_key_file: audit.key\nforce: force-a\ngroups: custody-suites, north\n"
        "media_key_file: force-a.media-key\n"
    )
    resolved = TerminalConfig.resolve(env={}, config_file=config)
    assert (resolved.force, resolved.groups) == ("force-a", ("custody-suites", "north"))
    assert resolved.media_key_file == tmp_path / "force-a.media-key"  # relative to the configuration file
    moved = TerminalConfig.resolve(env={"RFR_MEDIA_KEY_FILE": "/etc/rfr/media.key"}, config_file=config)
    assert moved.media_key_file == Path("/etc/rfr/media.key")
    assert resolved.describe()["groups"] == ["custody-suites", "north"]
    from_env = TerminalConfig.resolve(env={"RFR_FORCE": "force-b", "RFR_GROUPS": "airport"}, config_file=config)
    assert (from_env.force, from_env.groups) == ("force-b", ("airport",))
    with pytest.raises(ConfigError, match="'Custody Suites' is not a terminal group name"):
        TerminalConfig.resolve(env={"RFR_GROUPS": "Custody Suites"}, config_file=config)
