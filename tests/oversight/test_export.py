"""``rfr audit export`` on the terminal: who may, where each export starts and ends, what reaches the media.

Each test has its own small terminal (real workspace and keys, the synthetic face engine) and the
oversight's key pair; bundles are read back through the oversight's own import where it matters.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import pytest

from engine import audit
from engine.audit import public_key_pem
from engine.audit.bundle import Bundle, read_bundle, unseal
from engine.audit.export import AuditExport, ExportResult
from engine.casework.monitoring import bundle_figures
from engine.errors import AuditError, ConfigError, PermissionRefused
from engine.oversight.imports import import_bundle
from engine.oversight.keys import create_key_pair, read_private_key
from engine.terminal import Terminal, TerminalConfig
from tests.oversight.history import PASSPHRASE, TERMINAL, Clock, at, new_oversight, new_terminal
from tests.terminals import PASSWORD, provision


@dataclass
class Site:
    terminal: Terminal
    clock: Clock
    media: Path
    public: Path
    private: Path

    def export(self, by: str = "ann") -> ExportResult:
        return self.terminal.exports.export(self.terminal.accounts.login(by, PASSWORD), self.media)

    def audit_key_pem(self) -> bytes:
        return public_key_pem(self.terminal.ws.audit_public_key).encode()

    def exporter(self, **options: object) -> AuditExport:
        settings: dict[str, object] = {"oversight_key_file": self.public, **options}
        return AuditExport(
            self.terminal.ws,
            self.terminal.accounts,
            terminal_name=TERMINAL,
            figures=bundle_figures,
            **settings,  # type: ignore[arg-type]
        )

    def activity(self, n: int = 1) -> None:
        """``n`` sign-ins by the auditor: events the next export must carry."""
        for _ in range(n):
            self.terminal.accounts.login("ann", PASSWORD)

    def events(self, action: str) -> list[audit.AuditEvent]:
        with self.terminal.ws.reading() as conn:
            return [e for e in audit.events(conn) if e.action == action]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    private, public = tmp_path / "oversight.key", tmp_path / "oversight.pub"
    create_key_pair(private, public, PASSPHRASE)
    clock = Clock(at("2026-07-01T09:00:00"))
    media = tmp_path / "media"
    media.mkdir()
    with new_terminal(tmp_path / "ws", public, clock) as terminal:
        provision(terminal, {"ann": (["auditor"], None), "alice": (["rfr_user"], "Constable")})
        yield Site(terminal, clock, media, public, private)


def read(site: Site, path: Path) -> Bundle:
    return read_bundle(unseal(path.read_bytes(), read_private_key(site.private, PASSPHRASE)), lambda _t: {})


def test_auditors_and_engineers_export_and_nobody_else(site: Site) -> None:
    with pytest.raises(PermissionRefused, match="exporting the audit log refused: it needs the Auditor or Engineer"):
        site.export("alice")
    assert site.events("audit.export") == [] and list(site.media.iterdir()) == []
    result = site.export("eng1")
    assert result.first == 1 and result.path.parent == site.media


def test_without_the_oversight_key_nothing_is_exported(site: Site) -> None:
    with pytest.raises(ConfigError, match="no oversight public key configured: set 'oversight_key_file'"):
        site.exporter(oversight_key_file=None).export(site.terminal.accounts.login("ann", PASSWORD), site.media)
    assert site.events("audit.export") == []


def test_each_export_starts_where_the_last_ended_and_is_recorded(site: Site) -> None:
    one = site.export()
    site.activity(3)
    two = site.export()
    assert (one.first, two.first) == (1, one.last + 1)
    recorded = site.events("audit.export")
    assert [e.seq for e in recorded] == [one.recorded_seq, two.recorded_seq]
    assert recorded[0].details["file_sha256"] == one.file_sha256 and recorded[0].details["last"] == one.last
    bundle = read(site, two.path)
    assert bundle.events[0].action == "audit.export" and bundle.events[0].seq == one.recorded_seq
    assert bundle.predicate.prev_hash == one.head_hash and bundle.checkpoints[0].seq == one.last
    # The head the export names is the one an auditor checks the terminal against later.
    with site.terminal.ws.reading() as conn:
        assert audit.verify(conn, site.terminal.ws.audit_public_key, expect=(two.last, two.head_hash)).ok
    # Nothing readable reaches the media: the file is owner-only and encrypted.
    data = two.path.read_bytes()
    assert stat.S_IMODE(os.stat(two.path).st_mode) == 0o600
    assert b"ann" not in data and b"audit.export" not in data and b"workspace.create" not in data


def test_a_bundle_never_replaces_a_file(site: Site, tmp_path: Path) -> None:
    taken = site.media / "taken.rfrbundle"
    taken.write_bytes(b"someone else's file")
    with pytest.raises(AuditError, match="already exists: an audit bundle is never written over another file"):
        site.terminal.exports.export(site.terminal.accounts.login("ann", PASSWORD), taken)
    assert taken.read_bytes() == b"someone else's file"
    link = site.media / "link.rfrbundle"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(AuditError, match="already exists"):
        site.terminal.exports.export(site.terminal.accounts.login("ann", PASSWORD), link)
    assert not (tmp_path / "elsewhere").exists()
    with pytest.raises(AuditError, match="is not a folder"):
        site.terminal.exports.export(site.terminal.accounts.login("ann", PASSWORD), tmp_path / "unmounted" / "x")
    assert site.events("audit.export") == [] and sorted(p.name for p in site.media.iterdir()) == [
        "link.rfrbundle",
        "taken.rfrbundle",
    ]


def test_a_record_that_fails_takes_the_file_back(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AuditError("the disk refused the record")

    monkeypatch.setattr("engine.audit.export.append", refuse)
    with pytest.raises(AuditError, match="the disk refused the record"):
        site.export()
    assert list(site.media.iterdir()) == []  # no bundle, and no partial file, without its record


def test_exports_are_bounded_and_continue(tmp_path: Path, site: Site) -> None:
    site.activity(25)
    ov, olive = new_oversight(tmp_path / "oversight")
    with ov:
        ov.add_terminal(olive, TERMINAL, site.audit_key_pem())
        key = read_private_key(site.private, PASSPHRASE)
        bounded = site.exporter(max_events=10)
        results = []
        while True:
            result = bounded.export(site.terminal.accounts.login("ann", PASSWORD), site.media)
            results.append(result)
            assert result.events <= 10
            outcome = import_bundle(ov, olive, result.path.read_bytes(), key, source=result.path.name)
            assert outcome.outcome == "accepted", outcome.message
            if not result.more_to_export:
                break
        assert len(results) >= 3
        assert all(b.first == a.last + 1 for a, b in pairwise(results))
        assert ov.terminal(TERMINAL).accepted_through == results[-1].last


def test_a_power_cut_between_writing_and_recording(tmp_path: Path, site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file survives, unrecorded: the next export covers its range again, and the oversight takes the later."""
    import shutil

    from engine.audit import export as exporting

    written: list[Path] = []
    real_write = exporting.write_bundle_file

    def write_then_lose_power(path: Path, data: bytes) -> None:
        real_write(path, data)
        survivor = tmp_path / "survivor.rfrbundle"
        shutil.copy2(path, survivor)  # what the media held when the power went
        written.append(survivor)
        raise KeyboardInterrupt  # the process dies before the export is recorded

    monkeypatch.setattr(exporting, "write_bundle_file", write_then_lose_power)
    with pytest.raises(KeyboardInterrupt):
        site.export()
    monkeypatch.undo()
    assert site.events("audit.export") == []
    site.activity(2)
    again = site.export()
    assert again.first == 1
    ov, olive = new_oversight(tmp_path / "oversight")
    with ov:
        ov.add_terminal(olive, TERMINAL, site.audit_key_pem())
        key = read_private_key(site.private, PASSPHRASE)
        first = import_bundle(ov, olive, written[0].read_bytes(), key, source="survivor")
        later = import_bundle(ov, olive, again.path.read_bytes(), key, source="again")
        assert first.outcome == "accepted" and later.outcome == "accepted"
        assert "supersedes bundle 1" in later.message
        statuses = ov.ws.query("SELECT id, status FROM oversight_bundles ORDER BY id")
        assert statuses == [(1, "superseded"), (2, "accepted")]  # its figures are counted once, from bundle 2


def test_a_key_rotation_between_exports_is_followed(tmp_path: Path, site: Site) -> None:
    one = site.export()
    engineer = site.terminal.accounts.login("eng1", PASSWORD)
    site.terminal.audit.rotate_key(engineer, site.terminal.config.audit_key_file, "yearly rotation")
    site.activity(2)
    two = site.export()
    bundle = read(site, two.path)
    assert bundle.signer == site.terminal.ws.audit_key_id != read(site, one.path).signer
    ov, olive = new_oversight(tmp_path / "oversight")
    with ov:
        # The auditor registered the key the terminal was installed with: export 1's signer.
        first_key = read(site, one.path).keys[0]
        ov.add_terminal(olive, TERMINAL, public_key_pem(first_key.public_key).encode())
        key = read_private_key(site.private, PASSPHRASE)
        for result in (one, two):
            outcome = import_bundle(ov, olive, result.path.read_bytes(), key, source=result.path.name)
            assert outcome.outcome == "accepted", outcome.message
        keys = ov.ws.query("SELECT key_id, source FROM oversight_terminal_keys ORDER BY introduced_seq")
        assert keys == [(first_key.key_id, "registered"), (site.terminal.ws.audit_key_id, "rotation")]


def test_the_oversight_key_is_a_terminal_setting(tmp_path: Path) -> None:
    config_file = tmp_path / "terminal.yaml"
    config_file.write_text("workspace: ws\naudit_key_file: keys/audit.key\noversight_key_file: keys/oversight.pub\n")
    config = TerminalConfig.resolve(env={}, config_file=config_file)
    assert config.oversight_key_file == tmp_path / "keys" / "oversight.pub"
    env = {"RFR_WORKSPACE": "/w", "RFR_AUDIT_KEY_FILE": "/a", "RFR_OVERSIGHT_KEY_FILE": "/etc/rfr/oversight.pub"}
    assert TerminalConfig.resolve(env=env).oversight_key_file == Path("/etc/rfr/oversight.pub")
    assert TerminalConfig.resolve(env={"RFR_WORKSPACE": "/w", "RFR_AUDIT_KEY_FILE": "/a"}).oversight_key_file is None


def test_the_envelope_is_standard_dsse_over_an_in_toto_statement(site: Site) -> None:
    """Anyone with securesystemslib and the terminal's public key can check a bundle's envelope, not only rfr."""
    import hashlib
    import json

    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    result = site.export()
    bundle = read(site, result.path)
    envelope = Envelope.from_dict(json.loads(bundle.envelope_json))
    key_id = site.terminal.ws.audit_key_id
    assert key_id is not None
    public = SSlibKey(
        key_id, "ed25519", "ed25519", {"public": site.terminal.ws.audit_public_key.public_bytes_raw().hex()}
    )
    assert set(envelope.verify([public], 1)) == {key_id}
    stated = json.loads(envelope.payload)
    assert (
        stated["_type"] == "https://in-toto.io/Statement/v1" and envelope.payload_type == "application/vnd.in-toto+json"
    )
    assert {s["name"]: s["digest"]["sha256"] for s in stated["subject"]} == {
        name: hashlib.sha256(data).hexdigest() for name, data in bundle.files.items()
    }
    assert stated["predicate"]["terminal"] == TERMINAL and stated["predicate"]["last_seq"] == result.last
