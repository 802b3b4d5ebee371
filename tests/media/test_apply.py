"""Applying media: what each kind of package does to the terminal, who it is recorded as, and what it leaves behind."""

from __future__ import annotations

import hashlib
import tracemalloc

import numpy as np
import pytest
import yaml

from engine import audit
from engine.errors import PasswordChangeRequired
from engine.library.index import IndexSet
from engine.library.snapshot import read_snapshot, snapshot_path
from engine.library.store import get_library
from engine.media.fetcher import MediaRefused
from engine.media.format import UserEntry
from engine.media.reader import MediaProgress, Status
from engine.media.staging import STAGING_DIR
from engine.media.trust import METADATA_DIR, trust_info
from engine.workspace import DB_NAME
from tests.media.conftest import START, World, reopen_media_terminal
from tests.media.repository import (
    ENGINE,
    accounts_package,
    first_password,
    library_package,
    model_files,
    models_package,
    policy_package,
)
from tests.terminals import PASSWORD, provision


def _events(w: World, prefix: str) -> list[audit.AuditEvent]:
    with w.ws.reading() as conn:
        return [e for e in audit.events(conn) if e.action.startswith(prefix)]


def test_a_library_package_enrols_as_enrolment_does(world: World) -> None:
    rows = world.ws.query(
        "SELECT s.reference, s.sex, s.ic_code, i.age_range, i.source, i.added_by, i.package_id, i.media_type"
        " FROM images i JOIN subjects s ON s.id = i.subject_id ORDER BY s.reference, i.id"
    )
    assert [r[0] for r in rows] == ["alpha", "alpha", "bravo"]
    assert {r[1:] for r in rows} == {("male", "IC1", "25-34", "suite B", "eng1", "library:custody#1", "image/jpeg")}
    lib = get_library(world.ws, "custody")
    assert lib.content_version == 1
    assert world.ws.query_one("SELECT count(*) FROM templates WHERE library_id = ?", (lib.id,)) == (3,)
    applied = _events(world, "media.package_applied")
    assert [(e.actor, e.subjects["package"], e.details["stream"], e.details["sequence"]) for e in applied] == [
        ("eng1", "library:custody#1", "library:custody", 1)
    ]
    assert world.ws.query("SELECT stream, sequence, applied_by FROM media_streams") == [("library:custody", 1, "eng1")]


def test_weeding_removes_the_person_everywhere_the_index_included(world: World) -> None:
    lib = get_library(world.ws, "custody")
    alpha = [
        bytes(r[0])
        for r in world.ws.query(
            "SELECT t.vector FROM templates t JOIN images i ON i.id = t.image_id JOIN subjects s ON s.id = i.subject_id"
            " WHERE s.reference = 'alpha'"
        )
    ]
    indexes = world.terminal.libraries.indexes()
    probe = np.frombuffer(alpha[0], dtype="<f4").copy()
    assert indexes.search(probe, [lib], 1)[0].subject == "alpha"
    world.repo.add_package(*library_package(2, {"charlie": 1}, remove=["alpha", "nobody-here"]))
    reading = world.read(world.medium())
    changes = reading.to_apply[0].changes
    assert changes is not None and changes.library is not None
    assert changes.library.subjects_removed == ("alpha",) and changes.library.removals_not_held == 1
    result = world.terminal.media.apply(world.session, reading)
    assert result.packages[0].detail["subjects_removed"] == 1 and result.packages[0].detail["images_removed"] == 2
    assert world.ws.query("SELECT reference FROM subjects ORDER BY reference") == [("bravo",), ("charlie",)]
    assert world.ws.query_one("SELECT count(*) FROM image_bytes") == (2,)
    lib = get_library(world.ws, "custody")
    # The running terminal's index and a fresh one (from the snapshot on disk) both lack alpha's templates.
    for index_set in (world.terminal.libraries.indexes(), IndexSet(world.ws, ENGINE.model_id, ENGINE.model_sha256)):
        found = index_set.search(probe, [lib], 3)
        assert "alpha" not in {c.subject for c in found} and len(found) == 2
    _info, plain = read_snapshot(
        snapshot_path(world.ws.index_dir, lib.id),
        key_for=IndexSet(world.ws, ENGINE.model_id, ENGINE.model_sha256)._key_for(lib),
        library_id=lib.id,
    )
    assert not any(vector in bytes(plain) for vector in alpha), "a weeded template is still in the index snapshot"
    with world.ws.reading() as conn:  # not even the weeded person's reference is kept, anywhere
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
            assert not any("'alpha'" in repr(row) or '"alpha"' in repr(row) for row in rows), table
    weeds = _events(world, "library.weed")
    assert [(e.actor, e.details["package"], e.details["subjects"]) for e in weeds] == [("eng1", "library:custody#2", 1)]
    # Nor in the database file: the write-ahead log was folded back at once, so the pages that held alpha's
    # images are overwritten (secure_delete) now, not whenever SQLite next checkpoints on its own.
    assert (world.ws.directory / DB_NAME).is_file() and (world.ws.directory / f"{DB_NAME}-wal").stat().st_size == 0


def test_deltas_on_one_medium_apply_in_order(world: World) -> None:
    world.repo.add_package(*library_package(3, {"delta": 1}, remove=["charlie"]))
    world.repo.add_package(*library_package(2, {"charlie": 1}))
    result = world.apply(world.medium())
    assert [p.package_id for p in result.packages] == ["library:custody#2", "library:custody#3"]
    assert world.ws.query("SELECT reference FROM subjects ORDER BY reference") == [
        ("alpha",),
        ("bravo",),
        ("delta",),
    ]
    assert world.ws.query("SELECT sequence FROM media_streams") == [(3,)]


def test_a_medium_applied_already_has_nothing_new(world: World) -> None:
    reading = world.read(world.tmp / "medium-1")
    assert [p.status for p in reading.packages] == [Status.APPLIED] and reading.to_apply == []
    assert reading.lines()[-1] == "nothing new on this medium for this terminal"
    with pytest.raises(MediaRefused, match="nothing on this medium is to be applied"):
        world.terminal.media.apply(world.session, reading)


def test_accounts_package_adds_changes_locks_and_removes_as_the_engineer_applying_it(world: World) -> None:
    provision(world.terminal, {"alice": (["rfr_user"], "Constable"), "bob": (["rfr_user"], "Constable")})
    users = [
        UserEntry("dave", "Dave D", ("approver",), "Inspector", first_password("dave's first pass"), False),
        UserEntry("alice", "Alice A", ("rfr_user", "peer_reviewer"), "Sergeant", None, True),
    ]
    world.repo.add_package(*accounts_package(1, users, remove=["bob"]))
    reading = world.read(world.medium())
    changes = reading.to_apply[0].changes
    assert changes is not None
    assert [(c.username, c.change) for c in changes.users] == [("dave", "add"), ("alice", "change"), ("bob", "remove")]
    world.terminal.media.apply(world.session, reading)
    dave = world.terminal.accounts.get_user("dave")
    assert dave.must_change_password and dave.rank == "Inspector"
    session = world.terminal.sign_in("dave", "dave's first pass")
    with pytest.raises(PasswordChangeRequired):
        world.terminal.accounts.check(session)
    alice = world.terminal.accounts.get_user("alice")
    assert (
        alice.locked_by_admin
        and alice.rank == "Sergeant"
        and {r.value for r in alice.roles}
        == {
            "rfr_user",
            "peer_reviewer",
        }
    )
    assert "bob" not in {u.username for u in world.terminal.accounts.list_users()}
    recorded = [(e.actor, e.action, e.subjects.get("user"), e.details.get("package")) for e in _events(world, "user.")]
    assert ("eng1", "user.add", "dave", "accounts#1") in recorded
    assert ("eng1", "user.change", "alice", "accounts#1") in recorded
    assert ("eng1", "user.remove", "bob", "accounts#1") in recorded


def test_policy_package_puts_the_policy_in_force_now_and_after_a_restart(world: World) -> None:
    world.repo.add_package(*policy_package(1, "2027.1"))
    reading = world.read(world.medium())
    assert reading.to_apply[0].changes is not None
    assert reading.to_apply[0].changes.lines() == ["policy 2026.6 -> 2027.1"]
    world.terminal.media.apply(world.session, reading)
    assert world.terminal.policy.version == "2027.1"
    assert world.terminal.accounts.policy.version == "2027.1"
    world.terminal.close()
    with reopen_media_terminal(world.ws.directory, world.clock) as again:
        assert again.policy.version == "2027.1"
        assert again.status().policy_version == "2027.1"


def test_models_package_installs_a_versioned_folder_the_terminal_loads_next(world: World) -> None:
    files = model_files()
    world.repo.add_package(*models_package(1, files))
    result = world.apply(world.medium())
    assert result.restart_required and result.model_folder is not None
    folder = result.model_folder
    assert folder.parent == world.ws.directory / "models"
    assert {p.name for p in folder.iterdir()} == set(files)
    assert all((folder / name).read_bytes() == data for name, data in files.items())
    world.terminal.close()
    with reopen_media_terminal(world.ws.directory, world.clock) as again:
        assert again.config.models_dir == folder


def test_time_floor_and_tuf_state_are_kept_in_the_workspace(world: World) -> None:
    info = trust_info(world.ws)
    assert info is not None and info.time_floor == "2026-12-01T10:00:00.000000Z"
    roles = {r[0] for r in world.ws.query("SELECT role FROM media_metadata")}
    assert {"root", "timestamp", "snapshot", "targets", "library"} <= roles
    world.repo.issued = START.replace(hour=12)
    world.clock.advance(hours=3)
    world.session = world.terminal.sign_in("eng1", PASSWORD)
    world.repo.add_package(*library_package(2, {"charlie": 1}))
    world.apply(world.medium())
    info = trust_info(world.ws)
    assert info is not None and info.time_floor == "2026-12-01T12:00:00.000000Z"


def test_refused_media_are_read_without_writing_to_the_workspace_folder_beyond_tuf_s(world: World) -> None:
    world.repo.add_package(*library_package(2, {"charlie": 1}))
    world.read(world.medium())
    assert not any((world.ws.directory / STAGING_DIR).glob("*"))
    assert (world.ws.directory / METADATA_DIR / "timestamp.json").is_file()


def test_a_large_target_is_copied_in_one_pass_in_bounded_memory_with_progress(world: World) -> None:
    big = np.random.default_rng(7).bytes(48 << 20)
    small = b"<net/>"
    pins = {
        "format": 1,
        "source": "test",
        "inputs": {},
        "outputs": {
            "face_resnet.xml": {"sha256": hashlib.sha256(small).hexdigest(), "bytes": len(small)},
            "face_resnet.bin": {"sha256": hashlib.sha256(big).hexdigest(), "bytes": len(big)},
        },
        "pinned": {},
    }
    files = {"manifest.yaml": yaml.safe_dump(pins).encode(), "face_resnet.xml": small, "face_resnet.bin": big}
    world.repo.add_package(*models_package(1, files))
    medium = world.medium()
    del big, files
    world.repo.blobs.clear()
    reading = world.read(medium)
    seen: list[MediaProgress] = []
    tracemalloc.start()
    try:
        world.terminal.media.apply(world.session, reading, progress=seen.append)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 << 20, f"applying a 48 MiB target held {peak / 2**20:.1f} MiB at its peak"
    copying = [p.done for p in seen if p.phase == "copying"]
    assert copying == sorted(copying) and copying[-1] == reading.total_bytes and len(copying) > 40
    assert [p.phase for p in seen][-1] == "done"


def test_stopping_while_copying_changes_nothing(world: World) -> None:
    import threading

    from tests.media.conftest import fingerprint

    world.repo.add_package(*library_package(2, {"charlie": 2}))
    reading = world.read(world.medium())
    before = fingerprint(world.ws)
    stop = threading.Event()

    def progress(p: MediaProgress) -> None:
        if p.phase == "copying" and p.done:
            stop.set()

    with pytest.raises(MediaRefused, match="cancelled: nothing was changed"):
        world.terminal.media.apply(world.session, reading, progress=progress, cancel=stop)
    assert fingerprint(world.ws) == before
    assert not any((world.ws.directory / STAGING_DIR).glob("*"))
