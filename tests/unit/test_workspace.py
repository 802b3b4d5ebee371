"""The encrypted workspace: create, open, wrong keys, settings, and forward migrations."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from engine.audit import AuditSigningKey
from engine.errors import WorkspaceError, WrongKeyError
from engine.schema import Migration, applied_versions, migrate, registry, split_statements
from engine.security.keys import KdfSpec, WorkspaceKey
from engine.workspace import DB_NAME, HEADER_NAME, Workspace

AUDIT_KEY = AuditSigningKey.generate()  # the terminal's audit key, held in memory here


def fingerprint(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def key() -> WorkspaceKey:
    return WorkspaceKey.generate()


@pytest.fixture
def ws_dir(tmp_path: Path, key: WorkspaceKey) -> Path:
    directory = tmp_path / "ws"
    Workspace.create(directory, key, audit_key=AUDIT_KEY).close()
    return directory


class TestCreateAndOpen:
    def test_round_trip(self, ws_dir: Path, key: WorkspaceKey) -> None:
        with Workspace.open(ws_dir, key) as ws:
            with ws.transaction() as conn:
                conn.execute("INSERT INTO workspace_meta (key, value) VALUES ('note', 'kept')")
        with Workspace.open(ws_dir, key) as ws:
            assert ws.query_one("SELECT value FROM workspace_meta WHERE key = 'note'") == ("kept",)
            assert ws.schema_versions() == {domain: len(migrations) for domain, migrations in registry()}

    def test_header_holds_nothing_secret(self, ws_dir: Path, key: WorkspaceKey) -> None:
        header = json.loads((ws_dir / HEADER_NAME).read_text())
        assert set(header) == {"format", "format_version", "workspace_id", "kdf", "key_check"}
        assert header["kdf"] == {"method": "key-file"}
        raw = (ws_dir / HEADER_NAME).read_bytes()
        for secret in (key.derive("rfr/sqlcipher/v1"), key._key):
            assert secret.hex().encode() not in raw and secret not in raw

    def test_database_is_encrypted_and_owner_only(self, ws_dir: Path) -> None:
        db = (ws_dir / DB_NAME).read_bytes()
        assert not db.startswith(b"SQLite format 3")
        assert b"workspace_meta" not in db and b"CREATE TABLE" not in db
        assert stat.S_IMODE(ws_dir.stat().st_mode) == 0o700
        for path in ws_dir.rglob("*"):
            if path.is_file():
                assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path

    def test_settings(self, ws_dir: Path, key: WorkspaceKey) -> None:
        with Workspace.open(ws_dir, key) as ws:
            assert ws.query_one("PRAGMA journal_mode") == ("wal",)
            assert ws.query_one("PRAGMA secure_delete") == (1,)
            assert ws.query_one("PRAGMA temp_store") == (2,)  # MEMORY
            assert ws.query_one("PRAGMA foreign_keys") == (1,)
            assert ws.query_one("PRAGMA synchronous") == (2,)  # FULL
            assert ws.query_one("PRAGMA cipher_page_size") == ("4096",)
            assert ws.query_one("PRAGMA integrity_check") == ("ok",)

    def test_passphrase_workspace_unlocks_from_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        spec = KdfSpec.new_scrypt(n=2**10)
        Workspace.create(
            tmp_path / "p", WorkspaceKey.from_passphrase("a passphrase for tests", spec), audit_key=AUDIT_KEY
        ).close()
        monkeypatch.setenv("RFR_PASSPHRASE", "a passphrase for tests")
        with Workspace.unlock(tmp_path / "p") as ws:
            assert ws.header.kdf == spec
        monkeypatch.setenv("RFR_PASSPHRASE", "not the passphrase")
        with pytest.raises(WrongKeyError):
            Workspace.unlock(tmp_path / "p")

    def test_refuses_non_empty_folder_and_leaves_no_staging(self, tmp_path: Path, key: WorkspaceKey) -> None:
        target = tmp_path / "busy"
        target.mkdir()
        (target / "something").write_text("x")
        with pytest.raises(WorkspaceError, match="not empty"):
            Workspace.create(target, key, audit_key=AUDIT_KEY)
        Workspace.create(tmp_path / "empty", key, audit_key=AUDIT_KEY).close()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "empty"]

    def test_empty_existing_folder_is_fine(self, tmp_path: Path, key: WorkspaceKey) -> None:
        (tmp_path / "e").mkdir()
        Workspace.create(tmp_path / "e", key, audit_key=AUDIT_KEY).close()
        assert (tmp_path / "e" / HEADER_NAME).is_file()

    def test_not_a_workspace(self, tmp_path: Path, key: WorkspaceKey) -> None:
        with pytest.raises(WorkspaceError, match="does not exist"):
            Workspace.open(tmp_path / "missing", key)
        with pytest.raises(WorkspaceError, match="not an rfr workspace"):
            Workspace.open(tmp_path, key)

    def test_closed_workspace_refuses_use(self, ws_dir: Path, key: WorkspaceKey) -> None:
        ws = Workspace.open(ws_dir, key)
        ws.close()
        ws.close()
        with pytest.raises(WorkspaceError, match="closed"):
            ws.query("SELECT 1")

    def test_failed_transaction_rolls_back(self, ws_dir: Path, key: WorkspaceKey) -> None:
        with Workspace.open(ws_dir, key) as ws:
            with pytest.raises(RuntimeError), ws.transaction() as conn:
                conn.execute("INSERT INTO workspace_meta (key, value) VALUES ('half', 'done')")
                raise RuntimeError("boom")
            assert ws.query("SELECT * FROM workspace_meta WHERE key = 'half'") == []


class TestWrongKey:
    def test_wrong_key_is_refused_and_changes_nothing(self, ws_dir: Path) -> None:
        before = fingerprint(ws_dir)
        with pytest.raises(WrongKeyError, match="workspace key is wrong: check the passphrase or key file"):
            Workspace.open(ws_dir, WorkspaceKey.generate())
        assert fingerprint(ws_dir) == before

    def test_database_under_another_key_is_refused(self, tmp_path: Path, key: WorkspaceKey) -> None:
        # The header's key check passes, but the database was encrypted with another key.
        Workspace.create(tmp_path / "a", key, audit_key=AUDIT_KEY).close()
        Workspace.create(tmp_path / "b", WorkspaceKey.generate(), audit_key=AUDIT_KEY).close()
        (tmp_path / "a" / DB_NAME).write_bytes((tmp_path / "b" / DB_NAME).read_bytes())
        before = fingerprint(tmp_path / "a")
        with pytest.raises(WrongKeyError):
            Workspace.open(tmp_path / "a", key)
        assert fingerprint(tmp_path / "a") == before

    def test_header_and_database_must_belong_together(self, tmp_path: Path, key: WorkspaceKey) -> None:
        Workspace.create(tmp_path / "a", key, audit_key=AUDIT_KEY).close()
        Workspace.create(tmp_path / "b", key, audit_key=AUDIT_KEY).close()
        (tmp_path / "a" / DB_NAME).write_bytes((tmp_path / "b" / DB_NAME).read_bytes())
        with pytest.raises(WorkspaceError, match="do not belong together"):
            Workspace.open(tmp_path / "a", key)


class TestMigrations:
    def test_registry_is_ordered_and_numbered(self) -> None:
        plan = registry()
        assert [d for d, _ in plan][:2] == ["core", "library"]
        for _domain, migrations in plan:
            assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))

    def test_new_domain_and_new_version_apply_to_existing_workspace(self, ws_dir: Path, key: WorkspaceKey) -> None:
        extra = [Migration(1, "widgets", "CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT);")]
        with Workspace.open(ws_dir, key) as ws:
            with ws._lock:
                done = migrate(ws._conn, [*registry(), ("widgets", extra)])
            assert done == [("widgets", 1, "widgets")]
            extra.append(
                Migration(2, "widget colour", lambda conn: conn.execute("ALTER TABLE widgets ADD colour TEXT"))
            )
            with ws._lock:
                assert migrate(ws._conn, [*registry(), ("widgets", extra)]) == [("widgets", 2, "widget colour")]
                assert migrate(ws._conn, [*registry(), ("widgets", extra)]) == []
            ws.query("SELECT id, name, colour FROM widgets")
            assert ws.schema_versions()["widgets"] == 2

    def test_failing_migration_leaves_nothing_behind(self, ws_dir: Path, key: WorkspaceKey) -> None:
        bad = [
            Migration(
                1,
                "half",
                "CREATE TABLE first_half (id INTEGER);\nCREATE TABLE broken (id INTEGER REFERENCES);",
            )
        ]
        with Workspace.open(ws_dir, key) as ws:
            with ws._lock, pytest.raises(Exception, match="syntax error"):
                migrate(ws._conn, [*registry(), ("bad", bad)])
            assert ws.query("SELECT name FROM sqlite_master WHERE name = 'first_half'") == []
            with ws._lock:
                assert "bad" not in applied_versions(ws._conn)

    def test_newer_workspace_is_refused(self, ws_dir: Path, key: WorkspaceKey) -> None:
        with Workspace.open(ws_dir, key) as ws, ws.transaction() as conn:
            conn.execute("INSERT INTO schema_migrations VALUES ('library', 99, 'from the future', 'now')")
        with pytest.raises(WorkspaceError, match="newer rfr"):
            Workspace.open(ws_dir, key)

    def test_badly_numbered_domain_is_a_programming_error(self) -> None:
        import types

        module = types.ModuleType("fake_domain")
        module.MIGRATIONS = [Migration(2, "skipped one", "SELECT 1;")]  # type: ignore[attr-defined]
        import sys

        sys.modules["fake_domain"] = module
        try:
            with pytest.raises(RuntimeError, match="numbered"):
                registry((("fake", "fake_domain"),))
        finally:
            del sys.modules["fake_domain"]

    def test_split_statements_keeps_triggers_whole(self) -> None:
        script = """

        CREATE TABLE t (x);
        CREATE TRIGGER t_no BEFORE UPDATE ON t
        BEGIN
            SELECT RAISE(ABORT, 'no; really');
        END;
        -- a comment
        CREATE INDEX t_x ON t (x);
        """
        statements = split_statements(script)
        assert len(statements) == 3
        assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
