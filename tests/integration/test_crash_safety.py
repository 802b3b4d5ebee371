"""Crash safety: SIGKILL in the middle of enrolment and in the middle of saving the index snapshot.

A child process works on a workspace and announces (on stdout) when it has reached the point
to be interrupted, then waits there; the parent kills it with SIGKILL and reopens the
workspace. Afterwards the workspace must open, every image must be fully in (subject, image,
bytes, template) or absent, and the index must agree with the database.

The stand-in face engine is used: what is tested is the storage, not face analysis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from engine.audit import AuditSigningKey
from engine.library import create_library, enroll_directory, get_library
from engine.library.index import IndexSet
from engine.library.snapshot import read_snapshot, snapshot_path
from engine.security.keys import read_key_file
from engine.workspace import Workspace
from tests.plaintext import image_needles
from tests.synthetic import SyntheticFaceEngine, load_rgb_with_opencv, write_subject_folders

REPO = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from engine.audit import AuditSigningKey
    from engine.security.keys import read_key_file
    from engine.workspace import Workspace
    from engine.library import enroll_directory, get_library
    from tests.synthetic import SyntheticFaceEngine, load_rgb_with_opencv
    import engine.library.enrol as enrol
    import engine.library.snapshot as snapshot

    ws_dir, key_file, folder, stop_at = sys.argv[1:5]

    def park(marker):
        print(marker, flush=True)
        time.sleep(60)  # the parent kills us here

    if stop_at == "inside_image_transaction":
        real_subject_row = enrol._subject_row
        def subject_row(conn, *args):
            result = real_subject_row(conn, *args)
            if ws.query_one("SELECT count(*) FROM templates")[0] >= 9:  # 6 before + 3: the 4th image, mid-transaction
                park("parked")
            return result
        enrol._subject_row = subject_row
    elif stop_at == "between_images":
        def progress(p):
            if p.enrolled >= 5:
                park("parked")
    elif stop_at == "snapshot_mid_chunks":
        snapshot.write_snapshot.__kwdefaults__["chunk_size"] = 4096
        real_aead = snapshot.AESGCM
        class SlowAead:
            calls = 0
            def __init__(self, key):
                self.aead = real_aead(key)
            def encrypt(self, nonce, data, ad):
                SlowAead.calls += 1
                if SlowAead.calls == 4:  # header, then chunks 1 and 2 written, chunk 3 under way
                    park("parked")
                return self.aead.encrypt(nonce, data, ad)
            def __getattr__(self, name):
                return getattr(self.aead, name)
        snapshot.AESGCM = SlowAead
    elif stop_at in ("snapshot_before_rename", "snapshot_after_rename"):
        real_replace = os.replace
        def replace(src, dst):
            if stop_at == "snapshot_before_rename":
                park("parked")
            real_replace(src, dst)
            park("parked")
        snapshot.os.replace = replace

    audit_key = AuditSigningKey.read_file(Path(key_file).with_name("audit.key"))
    ws = Workspace.open(Path(ws_dir), read_key_file(Path(key_file)), audit_key=audit_key)
    lib = get_library(ws, "custody")
    enroll_directory(ws, lib, Path(folder), SyntheticFaceEngine(), loader=load_rgb_with_opencv,
                     progress=progress if stop_at == "between_images" else None, added_by="tester")
    print("finished without being killed", flush=True)
    """
)


def run_and_kill(ws_dir: Path, key_file: Path, folder: Path, stop_at: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ws_dir), str(key_file), str(folder), stop_at],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "parked", (
            f"child did not reach {stop_at}: {line!r} {child.stderr.read() if child.stderr else ''}"
        )
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


def reopen(ws_dir: Path, key_file: Path) -> Workspace:
    """The workspace as the terminal opens it: with its key file and its audit signing key."""
    audit_key = AuditSigningKey.read_file(key_file.with_name("audit.key"))
    return Workspace.open(ws_dir, read_key_file(key_file), audit_key=audit_key)


def check_consistent(ws: Workspace) -> None:
    """No row is half there: every image has its bytes and one template, every subject an image."""
    assert ws.query_one("PRAGMA integrity_check") == ("ok",)
    assert ws.query("PRAGMA foreign_key_check") == []
    assert ws.query("SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM image_bytes)") == []
    assert ws.query("SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM templates)") == []
    assert ws.query("SELECT image_id FROM templates GROUP BY image_id HAVING count(*) > 1") == []
    assert ws.query("SELECT id FROM subjects WHERE id NOT IN (SELECT subject_id FROM images)") == []
    assert ws.query("SELECT image_id FROM image_bytes WHERE image_id NOT IN (SELECT id FROM images)") == []


def check_index_agrees(ws: Workspace) -> list[str]:
    """A freshly started process's index equals the database's templates, and search works."""
    engine = SyntheticFaceEngine()
    notes: list[str] = []
    indexes = IndexSet(ws, engine.model_id, engine.model_sha256, notify=notes.append)
    lib = get_library(ws, "custody")
    loaded = indexes.get(lib)
    ids = sorted(r[0] for r in ws.query("SELECT id FROM templates WHERE library_id = ?", (lib.id,)))
    assert loaded.keys().tolist() == ids
    row = ws.query_one("SELECT id, vector FROM templates ORDER BY id DESC LIMIT 1")
    assert row is not None
    best = indexes.search(np.frombuffer(row[1], dtype="<f4").copy(), [lib], 1)[0]
    assert best.template_id == row[0] and best.distance == 0.0
    read_snapshot(snapshot_path(ws.index_dir, lib.id), key_for=indexes._key_for(lib), library_id=lib.id)
    stored = ws.query_one("SELECT entries FROM index_snapshots WHERE library_id = ?", (lib.id,))
    assert stored == (len(ids),)
    return notes


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A workspace with a library of 6 images, and a folder of 12 more to enrol."""
    ws_dir, key_file = tmp_path / "ws", tmp_path / "key"
    from engine.security.keys import new_key

    key = new_key(new_key_file=key_file)
    audit_key = AuditSigningKey.generate()
    audit_key.write_file(tmp_path / "audit.key")
    with Workspace.create(ws_dir, key, audit_key=audit_key) as ws:
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        write_subject_folders(tmp_path / "first", {"a": 3, "b": 3}, seed=1)
        enroll_directory(
            ws, lib, tmp_path / "first", SyntheticFaceEngine(), loader=load_rgb_with_opencv, added_by="tester"
        )
    folder = tmp_path / "more"
    write_subject_folders(folder, {"c": 4, "d": 4, "e": 4}, seed=2)
    return ws_dir, key_file, folder


@pytest.mark.parametrize("stop_at", ["inside_image_transaction", "between_images"])
def test_kill_during_enrolment(setup: tuple[Path, Path, Path], stop_at: str) -> None:
    ws_dir, key_file, folder = setup
    run_and_kill(ws_dir, key_file, folder, stop_at)
    with reopen(ws_dir, key_file) as ws:
        check_consistent(ws)
        count = ws.query_one("SELECT count(*) FROM templates")
        # 6 before; the killed run committed 3 (killed inside the 4th image's transaction) or 5.
        assert count == ((6 + 3,) if stop_at == "inside_image_transaction" else (6 + 5,))
        notes = check_index_agrees(ws)
        assert len(notes) == 1 and "behind the database: brought up to date" in notes[0]
        # The interrupted enrolment can simply be run again: what is in is skipped, the rest goes in.
        report = enroll_directory(ws, get_library(ws, "custody"), folder, SyntheticFaceEngine(),
                                  loader=load_rgb_with_opencv, added_by="tester")  # fmt: skip
        assert report.enrolled + report.to_json()["skipped_by_reason"].get("duplicate", 0) == 12
        assert ws.query_one("SELECT count(*) FROM templates") == (18,)
        check_consistent(ws)
        assert check_index_agrees(ws) == []


@pytest.mark.parametrize("stop_at", ["snapshot_mid_chunks", "snapshot_before_rename", "snapshot_after_rename"])
def test_kill_while_saving_the_index(setup: tuple[Path, Path, Path], stop_at: str) -> None:
    ws_dir, key_file, folder = setup
    path_before = snapshot_path(ws_dir / "index", 1).read_bytes()
    run_and_kill(ws_dir, key_file, folder, stop_at)
    leftovers = [p.name for p in (ws_dir / "index").iterdir() if ".tmp-" in p.name]
    if stop_at == "snapshot_after_rename":
        assert snapshot_path(ws_dir / "index", 1).read_bytes() != path_before and leftovers == []
    else:
        assert snapshot_path(ws_dir / "index", 1).read_bytes() == path_before  # the old one, untouched
        assert len(leftovers) == 1
    with reopen(ws_dir, key_file) as ws:
        check_consistent(ws)
        assert ws.query_one("SELECT count(*) FROM templates") == (18,)  # enrolment itself had finished
        notes = check_index_agrees(ws)
        if stop_at == "snapshot_after_rename":
            assert notes == []  # the new snapshot is complete and matches the database
        else:
            assert len(notes) == 1 and "12 templates behind" in notes[0]
    # A temporary file left by the crash is ciphertext only; once stale it is swept at the next load.
    for name in leftovers:
        old = time.time() - 3600
        os.utime(ws_dir / "index" / name, (old, old))
    with reopen(ws_dir, key_file) as ws:
        check_index_agrees(ws)
    assert [p.name for p in (ws_dir / "index").iterdir()] == ["library-1.rfridx"]


def test_interrupted_run_leaves_no_plain_image_anywhere(setup: tuple[Path, Path, Path]) -> None:
    ws_dir, key_file, folder = setup
    run_and_kill(ws_dir, key_file, folder, "inside_image_transaction")
    needles = image_needles(image.read_bytes() for image in sorted(folder.rglob("*.jpg")))
    for path in ws_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert [what for what, needle in needles.items() if needle in data] == [], path
