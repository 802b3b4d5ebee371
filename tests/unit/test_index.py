"""The vector index: encrypted snapshot format and tampering, restore/repair at open, exact re-ranking, cells."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from engine.audit import AuditSigningKey
from engine.errors import LibraryError, SnapshotError
from engine.library import create_library, delete_library, get_library
from engine.library import index as index_module
from engine.library.exact import assign_cells, cell_count, squared_distances
from engine.library.index import (
    INDEX_PROFILES,
    ExactVectors,
    IndexSet,
    IndexSettings,
    LibraryIndex,
    _new_usearch,
    index_profile,
    restore_index,
    rows_digest,
)
from engine.library.registry import indexes_for
from engine.library.snapshot import (
    MAGIC,
    read_snapshot,
    snapshot_path,
    sweep_stale_temp_files,
    write_snapshot,
)
from engine.library.store import Library, ensure_model
from engine.security.keys import WorkspaceKey
from engine.workspace import Workspace
from tests.terminals import library_events

AUDIT_KEY = AuditSigningKey.generate()  # the terminal's audit key, held in memory here


MODEL = ("test-model", hashlib.sha256(b"test-model").hexdigest())
OTHER_MODEL = ("other-model", hashlib.sha256(b"other-model").hexdigest())


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    with Workspace.create(tmp_path / "ws", WorkspaceKey.generate(), audit_key=AUDIT_KEY) as workspace:
        yield workspace


def insert_templates(ws: Workspace, lib: Library, vectors: np.ndarray, model: tuple[str, str] = MODEL) -> list[int]:
    """Template rows (one subject and image each) written straight to the database, as enrolment would."""
    ids = []
    with ws.transaction() as conn:
        model_ref = ensure_model(conn, *model)
        base = conn.execute("SELECT count(*) FROM subjects").fetchone()[0]
        for i, vector in enumerate(np.asarray(vectors, dtype="<f4")):
            subject = conn.execute(
                "INSERT INTO subjects (library_id, reference, created_at) VALUES (?, ?, 'now')",
                (lib.id, f"S{base + i:05d}"),
            ).lastrowid
            image = conn.execute(
                "INSERT INTO images (library_id, subject_id, sha256, media_type, byte_length, width, height, source,"
                " added_at) VALUES (?, ?, ?, 'image/jpeg', 1, 1, 1, 'test', 'now')",
                (lib.id, subject, os.urandom(32)),
            ).lastrowid
            blob = vector.tobytes()
            ids.append(
                conn.execute(
                    "INSERT INTO templates (image_id, library_id, model_ref, vector, vector_sha256, face_box,"
                    " created_at) VALUES (?, ?, ?, ?, ?, '[]', 'now')",
                    (image, lib.id, model_ref, blob, hashlib.sha256(blob).digest()),
                ).lastrowid
            )
    return ids


def clustered(n: int, seed: int = 0) -> np.ndarray:
    """Vectors with face-template-like structure: people (clusters) with several nearby images."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 0.09, size=(max(1, n // 4), 128))
    return (centres[rng.integers(0, len(centres), n)] + rng.normal(0, 0.03, size=(n, 128))).astype(np.float32)


def hold_snapshot_writes(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Make the index's snapshot writes wait: ``writing`` is set when one starts, set ``release`` to let it go on."""
    writing, release = threading.Event(), threading.Event()

    def held_write(*args: object, **kwargs: object) -> object:
        writing.set()
        assert release.wait(timeout=60)
        return write_snapshot(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(index_module, "write_snapshot", held_write)
    return writing, release


def fresh_indexes(ws: Workspace, notes: list[str], model: tuple[str, str] = MODEL) -> IndexSet:
    """A new IndexSet, as a freshly started process would have (nothing loaded in memory)."""
    return IndexSet(ws, *model, notify=notes.append)


# ---------------------------------------------------------------- snapshot format


class TestSnapshotFormat:
    KEY = os.urandom(32)

    def key_for(self, snapshot_id: bytes) -> bytes:
        return hashlib.sha256(self.KEY + snapshot_id).digest()

    def write(self, path: Path, data: bytes, library_id: int = 1) -> None:
        write_snapshot(
            path,
            data,
            key_for=self.key_for,
            library_id=library_id,
            model_id="m",
            model_sha256="0" * 64,
            entries=3,
            digest=b"d" * 32,
            created_at="now",
            chunk_size=1000,
        )

    def test_round_trip_in_chunks(self, tmp_path: Path) -> None:
        data = os.urandom(4500)
        self.write(tmp_path / "s", data)
        info, plain = read_snapshot(tmp_path / "s", key_for=self.key_for, library_id=1)
        assert bytes(plain) == data
        assert info.chunks == 5 and info.entries == 3 and info.digest == b"d" * 32
        raw = (tmp_path / "s").read_bytes()
        assert data[:64] not in raw and b'"entries"' not in raw  # header and body encrypted
        assert raw.startswith(MAGIC)

    def test_empty_payload(self, tmp_path: Path) -> None:
        self.write(tmp_path / "s", b"")
        assert bytes(read_snapshot(tmp_path / "s", key_for=self.key_for, library_id=1)[1]) == b""

    @staticmethod
    def chunk_offsets(raw: bytes) -> list[int]:
        header_len = struct.unpack(">I", raw[24:28])[0]
        first = 28 + 12 + header_len
        return [first + i * (12 + 1000 + 16) for i in range(5)]

    def tamper_cases(self, tmp_path: Path) -> dict[str, tuple[bytes, str]]:
        self.write(tmp_path / "a", os.urandom(4500))
        self.write(tmp_path / "b", os.urandom(4500))
        raw, other = (tmp_path / "a").read_bytes(), (tmp_path / "b").read_bytes()
        offs = self.chunk_offsets(raw)
        size = 12 + 1000 + 16

        def flip(at: int) -> bytes:
            return raw[:at] + bytes([raw[at] ^ 0x01]) + raw[at + 1 :]

        swapped = raw[: offs[1]] + raw[offs[2] : offs[2] + size] + raw[offs[1] : offs[1] + size] + raw[offs[3] :]
        spliced = raw[: offs[2]] + other[offs[2] : offs[2] + size] + raw[offs[3] :]
        return {
            "flip a byte in the body": (flip(offs[3] + 40), "chunk 4 of 5 fails authentication"),
            "flip a byte in the header": (flip(50), "header fails authentication"),
            "flip a byte of the snapshot id": (flip(10), "header fails authentication"),
            "swap two chunks": (swapped, "chunk 2 of 5 fails authentication"),
            "truncate": (raw[: offs[4]], "truncated or extended"),
            "truncate mid-chunk": (raw[:-7], "truncated or extended"),
            "append": (raw + b"\x00" * 20, "truncated or extended"),
            "chunk from another snapshot": (spliced, "chunk 3 of 5 fails authentication"),
            "bad magic": (b"NOTRFR!!" + raw[8:], "not an rfr index snapshot"),
            "empty file": (b"", "not an rfr index snapshot"),
        }

    @pytest.mark.parametrize(
        "case",
        [
            "flip a byte in the body",
            "flip a byte in the header",
            "flip a byte of the snapshot id",
            "swap two chunks",
            "truncate",
            "truncate mid-chunk",
            "append",
            "chunk from another snapshot",
            "bad magic",
            "empty file",
        ],
    )
    def test_tampering_is_refused(self, tmp_path: Path, case: str) -> None:
        content, expected = self.tamper_cases(tmp_path)[case]
        (tmp_path / "t").write_bytes(content)
        with pytest.raises(SnapshotError, match=expected):
            read_snapshot(tmp_path / "t", key_for=self.key_for, library_id=1)

    def test_many_chunks_round_trip_and_the_first_bad_chunk_is_named(self, tmp_path: Path) -> None:
        # Chunks are sealed and opened on several threads: order and error reporting must not depend on it.
        data = os.urandom(40 * 1000 + 7)
        self.write(tmp_path / "s", data)
        info, plain = read_snapshot(tmp_path / "s", key_for=self.key_for, library_id=1)
        assert bytes(plain) == data and info.chunks == 41
        raw = bytearray((tmp_path / "s").read_bytes())
        first = 28 + 12 + struct.unpack(">I", raw[24:28])[0]
        for chunk in (33, 9):
            raw[first + chunk * (12 + 1000 + 16) + 100] ^= 0x01
        (tmp_path / "s").write_bytes(bytes(raw))
        with pytest.raises(SnapshotError, match="chunk 10 of 41 fails authentication"):
            read_snapshot(tmp_path / "s", key_for=self.key_for, library_id=1)

    def test_wrong_key_and_wrong_library(self, tmp_path: Path) -> None:
        self.write(tmp_path / "s", os.urandom(100))
        with pytest.raises(SnapshotError, match="header fails authentication"):
            read_snapshot(tmp_path / "s", key_for=lambda sid: bytes(32), library_id=1)
        with pytest.raises(SnapshotError, match="belongs to library #1, not #2"):
            read_snapshot(tmp_path / "s", key_for=self.key_for, library_id=2)

    def test_atomic_replace_leaves_no_temporary_files(self, tmp_path: Path) -> None:
        self.write(tmp_path / "s", os.urandom(3000))
        self.write(tmp_path / "s", os.urandom(3000))
        assert [p.name for p in tmp_path.iterdir()] == ["s"]

    def test_stale_temporary_files_are_swept(self, tmp_path: Path) -> None:
        (tmp_path / "library-1.rfridx.tmp-abc").write_bytes(b"left by a crash")
        assert sweep_stale_temp_files(tmp_path) == 0  # too recent: may belong to a save in progress
        assert sweep_stale_temp_files(tmp_path, older_than=-1) == 1
        assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- restore and repair at open


class TestOpenAndRepair:
    def test_restored_without_rebuild_when_snapshot_matches(self, ws: Workspace) -> None:
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        insert_templates(ws, lib, clustered(300))
        notes: list[str] = []
        first = fresh_indexes(ws, notes)
        assert len(first.get(lib)) == 300
        assert notes == ["index of library 'custody': no index snapshot; rebuilt from the database (300 templates)"]
        notes.clear()
        again = fresh_indexes(ws, notes)
        assert len(again.get(lib)) == 300
        assert notes == []
        assert [e["action"] for e in library_events(ws, "custody")].count("index_rebuilt") == 1

    @pytest.mark.parametrize("damage", ["flip", "truncate", "swap", "garbage"])
    def test_damaged_snapshot_is_refused_then_rebuilt(self, ws: Workspace, damage: str) -> None:
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        vectors = clustered(200)
        ids = insert_templates(ws, lib, vectors)
        fresh_indexes(ws, []).get(lib)
        path = snapshot_path(ws.index_dir, lib.id)
        raw = bytearray(path.read_bytes())
        if damage == "flip":
            raw[len(raw) // 2] ^= 0x80
        elif damage == "truncate":
            raw = raw[: len(raw) - 100]
        elif damage == "swap":
            raw = raw[:28] + raw[-64:] + raw[28:-64]
        else:
            raw = bytearray(os.urandom(len(raw)))
        path.write_bytes(bytes(raw))
        notes: list[str] = []
        indexes = fresh_indexes(ws, notes)
        loaded = indexes.get(lib)
        assert len(notes) == 1 and "refused" in notes[0] and "rebuilt from the database (200 templates)" in notes[0]
        assert np.array_equal(loaded.keys(), np.array(sorted(ids), dtype=np.uint64))
        assert indexes.search(vectors[17], [lib], 1)[0].template_id == ids[17]
        read_snapshot(path, key_for=indexes._key_for(lib), library_id=lib.id)  # a good snapshot again

    def test_snapshot_behind_the_database_is_caught_up(self, ws: Workspace) -> None:
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        insert_templates(ws, lib, clustered(100, seed=1))
        fresh_indexes(ws, []).get(lib)
        newer = insert_templates(ws, lib, clustered(25, seed=2))  # e.g. an enrolment killed before it saved
        notes: list[str] = []
        indexes = fresh_indexes(ws, notes)
        loaded = indexes.get(lib)
        assert notes == ["index of library 'custody' was 25 templates behind the database: brought up to date"]
        assert len(loaded) == 125 and set(newer) <= set(loaded.keys().tolist())
        assert library_events(ws, "custody")[-1]["action"] == "index_caught_up"
        notes.clear()
        fresh_indexes(ws, notes).get(lib)
        assert notes == []  # the caught-up snapshot was saved

    def test_rows_gone_from_the_database_force_a_rebuild(self, ws: Workspace) -> None:
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        ids = insert_templates(ws, lib, clustered(50))
        fresh_indexes(ws, []).get(lib)
        with ws.transaction() as conn:
            conn.execute("DELETE FROM templates WHERE id = ?", (ids[3],))
        notes: list[str] = []
        loaded = fresh_indexes(ws, notes).get(lib)
        assert "no longer in the database" in notes[0] and "rebuilt" in notes[0]
        assert ids[3] not in loaded.keys().tolist() and len(loaded) == 49

    def test_snapshot_of_another_model_is_not_used(self, ws: Workspace) -> None:
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        insert_templates(ws, lib, clustered(40), model=OTHER_MODEL)
        mine = insert_templates(ws, lib, clustered(10, seed=5), model=MODEL)
        fresh_indexes(ws, [], OTHER_MODEL).get(lib)
        notes: list[str] = []
        loaded = fresh_indexes(ws, notes, MODEL).get(lib)
        assert "another face model" in notes[0]
        assert sorted(loaded.keys().tolist()) == sorted(mine)

    def test_restored_graph_is_searched_in_place_until_its_first_change(self, ws: Workspace) -> None:
        # Restoring views the graph and the exact templates where they were decrypted (no copy: a
        # fast open). The first change copies both into memory of their own and wipes every
        # decrypted byte; a graph or template still pointing into them would then hold zeros, so
        # searches and templates read after the change prove the copies are complete.
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        vectors = clustered(3000, seed=6)
        keys = np.arange(1, len(vectors) + 1, dtype=np.uint64)
        built = LibraryIndex(lib, None, _new_usearch(IndexSettings()))
        built.add(keys[::-1].copy(), vectors[::-1].copy(), threads=0)
        parts, graph = built.snapshot_parts()
        plain = bytearray(b"".join(parts))
        graph_at = len(plain) - len(graph)
        restored = restore_index(plain, IndexSettings(expansion_search=77), lib, None)
        assert restored.viewing and plain[graph_at:] == graph  # searched in place
        assert len(restored) == len(vectors) and restored.index.expansion_search == 77
        assert np.array_equal(restored.exact.sorted_keys, keys) and np.array_equal(
            restored.exact.take(keys[[4, 0, 2999]]), vectors[[4, 0, 2999]]
        )
        assert int(restored.index.search(vectors[1234], 1, threads=1).keys[0]) == 1235
        with pytest.raises(LibraryError, match="already in the index"):
            restored.add(keys[:1], vectors[:1], threads=0)  # a refused change still lets go of the plaintext
        assert not restored.viewing and not any(plain)
        assert np.array_equal(restored.exact.take(keys[[4, 0, 2999]]), vectors[[4, 0, 2999]])
        assert int(restored.index.search(vectors[1234], 1, threads=1).keys[0]) == 1235
        restored.add(np.array([len(vectors) + 1], np.uint64), vectors[:1] + 0.5, threads=0)  # enrol into it
        assert not restored.viewing and not any(plain)  # copied, then all of the plaintext wiped
        assert len(restored) == len(vectors) + 1 and restored.index.expansion_search == 77
        for row in (1234, 0, 2999):
            assert int(restored.index.search(vectors[row], 1, threads=1).keys[0]) == row + 1
        assert np.array_equal(restored.exact.take(keys[[4, 0, 2999]]), vectors[[4, 0, 2999]])
        again = bytearray(b"".join(parts))
        viewed = restore_index(again, IndexSettings(), lib, None)
        viewed.reset()  # dropping a viewed index wipes what it viewed
        assert not viewed.viewing and not any(again) and len(viewed) == 0

    def test_searches_and_enrolment_go_on_while_a_save_encrypts_and_writes(
        self, ws: Workspace, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A save holds the index lock only while it takes the index's state: encrypting and
        # writing (28 s at 10M) must not hold up the officer's searches. The index here is still
        # viewed in its decrypted snapshot, which the enrolment during the write wipes: what the
        # save writes must be the state it took, whole.
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        vectors = clustered(600, seed=8)
        ids = insert_templates(ws, lib, vectors)
        fresh_indexes(ws, []).get(lib)  # built and saved
        indexes = fresh_indexes(ws, [])
        assert indexes.get(lib).viewing
        writing, release = hold_snapshot_writes(monkeypatch)
        saver = threading.Thread(target=indexes.save, args=(lib,))
        saver.start()
        try:
            assert writing.wait(timeout=30)
            found: list[int] = []
            more = clustered(50, seed=9)
            more_ids = insert_templates(ws, lib, more)

            def search_then_enrol() -> None:
                found.append(indexes.search(vectors[7], [lib], 1)[0].template_id)
                indexes.add(lib, np.array(more_ids, np.uint64), more)

            meanwhile = threading.Thread(target=search_then_enrol)
            meanwhile.start()
            meanwhile.join(timeout=30)
            assert not meanwhile.is_alive(), "the search waited for the save to finish writing"
            assert found == [ids[7]] and len(indexes.get(lib)) == 650
            dropping = threading.Thread(target=indexes.drop, args=(lib.id,))
            dropping.start()
            dropping.join(timeout=0.3)
            assert dropping.is_alive()  # dropping (a purge) waits for the save in progress
        finally:
            release.set()
            saver.join(timeout=60)
        dropping.join(timeout=30)
        assert not saver.is_alive() and not dropping.is_alive()
        notes: list[str] = []
        restored = fresh_indexes(ws, notes)  # the snapshot holds the 600 taken, then the database's 50
        assert [c.template_id for c in restored.search(vectors[7], [lib], 1)] == [ids[7]]
        assert [c.template_id for c in restored.search(more[3], [lib], 1)] == [more_ids[3]]
        assert notes == ["index of library 'custody' was 50 templates behind the database: brought up to date"]

    def test_a_library_deleted_while_its_index_is_saved_leaves_no_snapshot(
        self, ws: Workspace, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        insert_templates(ws, lib, clustered(300, seed=3))
        indexes = indexes_for(ws, *MODEL)  # the workspace's own, which a deletion drops
        indexes.get(lib)  # built and saved
        writing, release = hold_snapshot_writes(monkeypatch)
        failures: list[BaseException] = []

        def save() -> None:
            try:
                indexes.save(lib)
            except Exception as error:  # any failure is the test's to see
                failures.append(error)

        saver = threading.Thread(target=save)
        saver.start()
        assert writing.wait(timeout=30)
        deleting = threading.Thread(target=delete_library, args=(ws, "custody", "tester", "retention review"))
        deleting.start()
        for _ in range(300):  # the deletion commits, then waits to drop the index being saved
            if not ws.query_one("SELECT count(*) FROM libraries")[0]:
                break
            time.sleep(0.01)
        assert deleting.is_alive()
        release.set()
        saver.join(timeout=60)
        deleting.join(timeout=60)
        assert not saver.is_alive() and not deleting.is_alive()
        assert [str(f) for f in failures] == ["library 'custody' was deleted while its index was saved: nothing kept"]
        assert not [f for f in ws.index_dir.iterdir() if f.name.startswith(snapshot_path(ws.index_dir, lib.id).name)]
        assert ws.query_one("SELECT count(*) FROM index_snapshots")[0] == 0

    def test_snapshot_whose_graph_and_templates_disagree_is_refused(self, ws: Workspace) -> None:
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        loaded = LibraryIndex(lib, None, _new_usearch(IndexSettings()))
        loaded.add(np.arange(1, 101, dtype=np.uint64), clustered(100), threads=0)
        loaded.exact.keys = loaded.exact.keys.copy()
        loaded.exact.keys[-1] = 500
        parts, _ = loaded.snapshot_parts()
        plain = bytearray(b"".join(parts))
        with pytest.raises(ValueError, match="different template ids"):
            restore_index(plain, IndexSettings(), lib, None)
        assert not any(plain[len(plain) - len(loaded.index.save()) :])  # the refused graph's bytes are wiped
        with pytest.raises(ValueError, match="older snapshot layout"):
            restore_index(bytearray(_new_usearch(IndexSettings()).save()), IndexSettings(), lib, None)

    def test_snapshot_of_an_older_layout_is_rebuilt_with_a_message(self, ws: Workspace) -> None:
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        insert_templates(ws, lib, clustered(50))
        fresh_indexes(ws, []).get(lib)
        graph_only = _new_usearch(IndexSettings()).save()  # what snapshots held before ExactVectors
        info, _ = read_snapshot(
            snapshot_path(ws.index_dir, lib.id), key_for=fresh_indexes(ws, [])._key_for(lib), library_id=lib.id
        )
        write_snapshot(
            snapshot_path(ws.index_dir, lib.id),
            graph_only,
            key_for=fresh_indexes(ws, [])._key_for(lib),
            library_id=lib.id,
            model_id=info.model_id,
            model_sha256=info.model_sha256,
            entries=info.entries,
            digest=info.digest,
            created_at=info.created_at,
        )
        notes: list[str] = []
        assert len(fresh_indexes(ws, notes).get(lib)) == 50
        assert "older snapshot layout" in notes[0] and "rebuilt" in notes[0]

    def test_digest_is_over_sorted_id_sha_pairs(self) -> None:
        pairs = np.array([(2, b"b" * 32), (1, b"a" * 32)], dtype=[("id", "<u8"), ("sha", "S32")])
        expected = hashlib.sha256(
            b"rfr/index-digest/v1\x00" + struct.pack("<Q", 1) + b"a" * 32 + struct.pack("<Q", 2) + b"b" * 32
        ).digest()
        assert rows_digest(pairs) == expected == rows_digest(np.sort(pairs, order="id"))


# ---------------------------------------------------------------- search


class TestSearch:
    def test_exact_order_matches_brute_force(self, ws: Workspace) -> None:
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        vectors = clustered(2000, seed=3)
        ids = np.array(insert_templates(ws, lib, vectors), dtype=np.uint64)
        indexes = indexes_for(ws, *MODEL)
        rng = np.random.default_rng(9)
        for probe in vectors[rng.integers(0, len(vectors), 20)] + rng.normal(0, 0.02, size=(20, 128)):
            probe = probe.astype(np.float32)
            found = indexes.search(probe, [lib], 10)
            d2 = squared_distances(vectors, probe)
            order = np.lexsort((ids, d2))[:10]
            assert [c.template_id for c in found] == ids[order].tolist()
            assert [c.distance for c in found] == [float(np.sqrt(d2[i])) for i in order]
            assert [c.rank for c in found] == list(range(1, 11))

    def test_final_order_is_exact_even_when_the_index_is_approximate(self, ws: Workspace) -> None:
        # Stand in for an approximate index that returns the right candidates in a rough order
        # (here: reversed) with rough distances: the officer must still see the exact order.
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        vectors = clustered(500, seed=4)
        ids = np.array(insert_templates(ws, lib, vectors), dtype=np.uint64)
        indexes = IndexSet(ws, *MODEL)
        loaded = indexes.get(lib)
        real = loaded.index

        class Rough:
            def __init__(self, keys: np.ndarray) -> None:
                self.keys = keys[::-1].copy()
                self.distances = np.linspace(0, 1, len(keys), dtype=np.float32)

            def __len__(self) -> int:
                return len(self.keys)

        class RoughIndex:
            def __len__(self) -> int:
                return len(real)

            def search(self, query: np.ndarray, count: int, threads: int = 0) -> Rough:
                return Rough(np.asarray(real.search(query, count, threads=threads).keys, dtype=np.uint64))

            def get(self, keys: np.ndarray) -> object:
                return real.get(keys)

        loaded.index = RoughIndex()
        probe = (vectors[5] + np.float32(0.01)).astype(np.float32)
        found = indexes.search(probe, [lib], 20)
        d2 = squared_distances(vectors, probe)
        order = np.lexsort((ids, d2))[:20]
        assert [c.template_id for c in found] == ids[order].tolist()
        assert [c.distance for c in found] == [float(np.sqrt(d2[i])) for i in order]
        loaded.index = real

    def test_ties_are_broken_by_template_id(self, ws: Workspace) -> None:
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        same = np.tile(clustered(1, seed=6), (5, 1))
        ids = insert_templates(ws, lib, np.vstack([clustered(50, seed=7), same]))
        found = indexes_for(ws, *MODEL).search(same[0], [lib], 5)
        assert [c.template_id for c in found] == ids[50:]
        assert {c.distance for c in found} == {0.0}

    def test_several_libraries_are_merged_by_distance(self, ws: Workspace) -> None:
        a = create_library(ws, "a", "substantive", created_by="tester")
        b = create_library(ws, "b", "substantive", created_by="tester")
        va, vb = clustered(100, seed=10), clustered(100, seed=11)
        insert_templates(ws, a, va)
        insert_templates(ws, b, vb)
        probe = vb[3]
        found = indexes_for(ws, *MODEL).search(probe, [a, b], 20)
        assert found[0].library == "b" and found[0].distance == 0.0
        everything = np.vstack([va, vb])
        best = np.sort(squared_distances(everything, probe))[:20]
        assert np.allclose([c.distance**2 for c in found], best, rtol=1e-6)
        assert {c.library for c in found} <= {"a", "b"}

    def test_only_templates_of_the_current_model_are_searched(self, ws: Workspace) -> None:
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        other = insert_templates(ws, lib, clustered(30, seed=12), model=OTHER_MODEL)
        mine = insert_templates(ws, lib, clustered(30, seed=13), model=MODEL)
        found = indexes_for(ws, *MODEL).search(clustered(30, seed=12)[0], [lib], 60)
        assert len(found) == 30 and {c.template_id for c in found} == set(mine)
        assert not set(other) & {c.template_id for c in found}

    def test_refusals(self, ws: Workspace) -> None:
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        empty = create_library(ws, "empty", "substantive", created_by="tester")
        insert_templates(ws, lib, clustered(10))
        indexes = indexes_for(ws, *MODEL)
        with pytest.raises(LibraryError, match="no templates made with face model test-model"):
            indexes.search(np.zeros(128, np.float32), [empty], 5)
        with pytest.raises(LibraryError, match="128 values"):
            indexes.search(np.zeros(127, np.float32), [lib], 5)
        with pytest.raises(LibraryError, match="non-finite"):
            indexes.search(np.full(128, np.nan, np.float32), [lib], 5)
        with pytest.raises(LibraryError, match="between 1 and"):
            indexes.search(np.zeros(128, np.float32), [lib], 0)
        with pytest.raises(LibraryError, match="at least one library"):
            indexes.search(np.zeros(128, np.float32), [], 5)

    def test_index_that_disagrees_with_the_database_is_discarded(self, ws: Workspace) -> None:
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        vectors = clustered(20)
        insert_templates(ws, lib, vectors)
        indexes = indexes_for(ws, *MODEL)
        loaded = indexes.get(lib)
        loaded.index.remove(int(loaded.keys()[0]))
        loaded.index.add(int(loaded.keys()[0]) + 10_000, vectors[0])  # a key the database does not have
        with pytest.raises(SnapshotError, match="discarded"):
            indexes.search(vectors[0], [lib], 3)
        assert indexes.search(vectors[0], [get_library(ws, "custody")], 3)[0].distance == 0.0


def test_a_library_opened_before_the_face_engine_leaves_it_able_to_load_models() -> None:
    # Regression: with usearch's native library loaded before OpenVINO's, every later read_model in
    # the process failed. A fresh interpreter, because this test's own process already has both loaded.
    script = (
        "from engine.library.index import IndexSettings, _new_usearch\n"
        "_new_usearch(IndexSettings())\n"
        "from engine.faces.pipeline import FaceEngine\n"
        "print(FaceEngine.open(device='CPU').device_used)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2]
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "CPU"


class TestExactVectors:
    def test_take_returns_templates_in_the_order_asked_and_none_for_unknown_ids(self) -> None:
        exact = ExactVectors()
        vectors = clustered(10, seed=2)
        exact.add(np.array([9, 3, 7], np.uint64), vectors[:3])
        exact.add(np.array([20, 11], np.uint64), vectors[3:5])
        exact.add(np.array([5], np.uint64), vectors[5:6])
        assert exact.sorted_keys.tolist() == [3, 5, 7, 9, 11, 20]
        got = exact.take(np.array([20, 3, 9, 5], np.uint64))
        assert got is not None and np.array_equal(got, vectors[[3, 1, 0, 5]])
        assert exact.take(np.array([3, 4], np.uint64)) is None
        assert exact.take(np.array([21], np.uint64)) is None

    def test_a_template_cannot_be_held_twice(self) -> None:
        exact = ExactVectors()
        exact.add(np.array([1, 2], np.uint64), clustered(2))
        with pytest.raises(LibraryError, match="already in the index"):
            exact.add(np.array([2], np.uint64), clustered(1))
        assert exact.sorted_keys.tolist() == [1, 2]

    @pytest.mark.parametrize("count", [3, 10])
    def test_nearest_compares_every_template_exactly_with_ties_by_id(
        self, monkeypatch: pytest.MonkeyPatch, count: int
    ) -> None:
        monkeypatch.setattr("engine.library.exact._DISTANCE_BLOCK", 1)  # blocks of 4 * count rows, ties across edges
        tied = np.tile(clustered(1, seed=9), (6, 1))
        vectors = np.vstack([clustered(20, seed=8), tied, clustered(20, seed=10)])
        exact = ExactVectors()
        ids = np.arange(100, 100 + len(vectors), dtype=np.uint64)
        exact.add(ids[::-1].copy(), vectors[::-1].copy())
        queries = np.vstack([tied[:1], vectors[[0, 45]] + np.float32(0.003), clustered(1, seed=11)])
        rows = exact.nearest_rows(queries, count)
        for query, found in zip(queries, rows, strict=True):
            expected_d2 = squared_distances(vectors, query)
            order = np.lexsort((ids, expected_d2))[:count]
            assert exact.keys[found].tolist() == ids[order].tolist()
            keys, got, d2 = exact.nearest(query, count)
            assert keys.tolist() == ids[order].tolist()
            assert np.array_equal(d2, expected_d2[order]) and np.array_equal(got, vectors[order])
        assert exact.keys[rows[0][:6]].tolist() == ids[20 : 20 + min(count, 6)].tolist()  # the ties, by id
        assert [r.size for r in exact.nearest_rows(queries, 100)] == [len(vectors)] * len(queries)


class LostGraph:
    """Stands in for a usearch graph whose greedy descent ended among the wrong people: it offers ``offered``."""

    def __init__(self, offered: np.ndarray) -> None:
        self.offered = offered

    def __len__(self) -> int:
        return len(self.offered)

    def search(self, query: np.ndarray, count: int, threads: int = 0) -> object:
        keys = self.offered[:count]

        class Found:
            def __init__(self) -> None:
                self.keys = keys

            def __len__(self) -> int:
                return len(keys)

        return Found()


def test_a_graph_answer_no_face_could_give_is_checked_against_every_template(ws: Workspace) -> None:
    # Stand in for a graph whose greedy descent ended among the wrong people: it offers only the
    # templates farthest from the probe. Beyond IndexSettings.verify_beyond the search compares the
    # probe with every template, so the officer still sees the true nearest.
    lib = create_library(ws, "custody", "substantive", created_by="tester")
    vectors = clustered(300, seed=14)
    ids = np.array(insert_templates(ws, lib, vectors), dtype=np.uint64)
    indexes = IndexSet(ws, *MODEL)
    loaded = indexes.get(lib)
    probe = (vectors[17] + np.float32(0.005)).astype(np.float32)
    far = ids[np.argsort(squared_distances(vectors, probe))[::-1]]

    loaded.index = LostGraph(far)
    found = indexes.search(probe, [lib], 5)
    d2 = squared_distances(vectors, probe)
    assert [c.template_id for c in found] == ids[np.lexsort((ids, d2))[:5]].tolist()
    assert found[0].template_id == int(ids[17])


# ---------------------------------------------------------------- cells beside the graph


def check_layout(exact: ExactVectors) -> None:
    """Every grouped row sits in its nearest centroid's cell, each cell in id order; tail rows know their cell."""
    grouped = int(exact.bounds[-1])
    cells = assign_cells(exact.vectors, exact.centroids)
    for cell in range(len(exact.centroids)):
        start, end = int(exact.bounds[cell]), int(exact.bounds[cell + 1])
        assert np.all(cells[start:end] == cell)
        assert np.all(np.diff(exact.keys[start:end].astype(np.int64)) > 0)
    assert np.array_equal(cells[grouped:], exact.tail_cells)
    assert np.array_equal(exact.sorted_keys, np.sort(exact.keys))


def test_cell_count_grows_in_powers_of_two_from_sixteen_cells_and_stops_at_4096() -> None:
    assert cell_count(15 * 1024, 1024) == 0  # too few: the graph alone
    assert cell_count(16 * 1024, 1024) == 16
    assert cell_count(1_000_000, 1024) == 1024
    assert cell_count(10_000_000, 1024) == 4096
    assert cell_count(10_000, 0) == 0  # cells turned off


def test_cells_are_trained_when_due_regrouped_as_rows_arrive_and_retrained_on_doubling() -> None:
    vectors = clustered(2000, seed=1)
    exact = ExactVectors(cell_size=8)
    exact.add(np.arange(1, 101, dtype=np.uint64), vectors[:100])
    assert len(exact.centroids) == 0  # 100 < 16 cells of 8
    exact.add(np.arange(101, 201, dtype=np.uint64)[::-1].copy(), vectors[100:200][::-1].copy())
    assert len(exact.centroids) == 32 and exact.trained_at == 200 and exact.tail_cells.size == 0
    check_layout(exact)
    exact.add(np.arange(201, 251, dtype=np.uint64), vectors[200:250])  # a small batch waits in the tail
    assert exact.tail_cells.size == 50 and exact.trained_at == 200
    check_layout(exact)
    exact.regroup()
    assert exact.tail_cells.size == 0
    check_layout(exact)
    exact.add(np.arange(251, 401, dtype=np.uint64), vectors[250:400])  # doubled since training
    assert exact.trained_at == 400 and len(exact.centroids) == 64
    check_layout(exact)
    got = exact.take(np.array([7, 399, 120], np.uint64))
    assert got is not None and np.array_equal(got, vectors[[6, 398, 119]])


def test_scan_and_ranked_give_the_exact_top_of_the_graph_rows_and_the_probed_cells() -> None:
    vectors = clustered(3000, seed=2)
    ids = np.arange(10, 3010, dtype=np.uint64)
    exact = ExactVectors(cell_size=64)
    exact.add(ids[:2800], vectors[:2800])
    exact.add(ids[2800:], vectors[2800:])  # some rows in the tail
    assert exact.tail_cells.size == 200
    query = vectors[2900] + np.float32(0.01)
    graph_rows = exact.positions(ids[[5, 2999, 100]])
    assert graph_rows is not None
    near = exact.scan(query, 3, 20)
    assert 20 <= near.size < 3 * 64  # a shortlist, not the cells whole
    keys, got, d2 = exact.ranked(query, np.concatenate([graph_rows, near]), 20)
    # expected: the graph's rows plus everything in the 3 nearest cells, ranked exactly, ties by id
    nearest_cells = np.argsort(squared_distances(exact.centroids, query))[:3]
    cell_of = assign_cells(vectors, exact.centroids)
    pool = np.union1d(np.flatnonzero(np.isin(cell_of, nearest_cells)), [5, 2999, 100])
    want = pool[np.lexsort((ids[pool], squared_distances(vectors[pool], query)))][:20]
    assert keys.tolist() == ids[want].tolist()
    assert np.array_equal(got, vectors[want]) and np.array_equal(d2, squared_distances(vectors[want], query))
    assert 2900 in want  # the probe's own neighbourhood is in its nearest cell
    # probing every cell is the exhaustive answer
    every = exact.scan(query, len(exact.centroids), 20)
    all_keys, _, all_d2 = exact.ranked(query, np.concatenate([graph_rows, every]), 20)
    nearest_keys, _, nearest_d2 = exact.nearest(query, 20)
    assert all_keys.tolist() == nearest_keys.tolist() and np.array_equal(all_d2, nearest_d2)
    assert exact.scan(query, 0, 20).size == 0


def test_search_finds_the_neighbourhood_a_lost_graph_missed(ws: Workspace) -> None:
    # Stand in for a graph whose greedy descent ended among plausible but wrong people (nearer
    # than verify_beyond, so no exhaustive check): the probe's own cells still hold its mates.
    lib = create_library(ws, "custody", "substantive", created_by="tester")
    vectors = clustered(1200, seed=3)
    ids = np.array(insert_templates(ws, lib, vectors), dtype=np.uint64)
    settings = IndexSettings(cell_size=32, cells_probed=2, verify_beyond=3.0)  # this data: people ~1.4 apart
    indexes = IndexSet(ws, *MODEL, settings=settings)
    loaded = indexes.get(lib)
    assert len(loaded.exact.centroids) == 32
    probe = (vectors[700] + np.float32(0.002)).astype(np.float32)
    d2 = squared_distances(vectors, probe)
    wrong = ids[np.argsort(d2)][300:]  # plausible strangers: none of the true top 300
    assert float(np.sqrt(d2[np.argsort(d2)][300])) < settings.verify_beyond

    loaded.index = LostGraph(wrong)
    found = indexes.search(probe, [lib], 5)
    assert found[0].template_id == int(ids[700])
    # without the cells: the graph's strangers
    indexes.settings = IndexSettings(cell_size=32, cells_probed=0, verify_beyond=3.0)
    assert indexes.search(probe, [lib], 5)[0].template_id != int(ids[700])


def test_the_graph_searches_on_its_own_thread_while_the_cells_are_scanned(ws: Workspace) -> None:
    lib = create_library(ws, "custody", "substantive", created_by="tester")
    vectors = clustered(1200, seed=5)
    ids = np.array(insert_templates(ws, lib, vectors), dtype=np.uint64)
    indexes = IndexSet(ws, *MODEL, settings=IndexSettings(cell_size=32, cells_probed=2))
    loaded = indexes.get(lib)
    probe = (vectors[40] + np.float32(0.002)).astype(np.float32)
    scanning = threading.Event()
    seen: dict[str, object] = {}
    scan = loaded.exact.scan

    def scan_and_tell(*args: object) -> np.ndarray:
        scanning.set()
        # one BLAS thread while the graph searches: a spinning second one would take its core
        # numpy's (OpenCV brings an OpenBLAS of its own, which the scan does not use)
        numpy_blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas" and "numpy" in lib["filepath"]]
        seen["blas_threads"] = {lib["num_threads"] for lib in numpy_blas}
        return scan(*args)  # type: ignore[arg-type]

    class WaitingGraph(LostGraph):
        def search(self, query: np.ndarray, count: int, threads: int = 0) -> object:
            seen["thread"] = threading.current_thread().name
            seen["overlapped"] = scanning.wait(timeout=10)  # one after the other, this would wait in vain
            return super().search(query, count, threads)

    graph = loaded.index
    loaded.exact.scan = scan_and_tell  # type: ignore[method-assign]
    loaded.index = WaitingGraph(ids[np.argsort(squared_distances(vectors, probe))])
    with threadpool_limits(limits=2, user_api="blas"):
        found = indexes.search(probe, [lib], 3)
    assert found[0].template_id == int(ids[40])
    assert seen == {"thread": seen["thread"], "overlapped": True, "blas_threads": {1}}
    assert str(seen["thread"]).startswith("rfr-graph-search")

    class BrokenGraph(LostGraph):
        def search(self, query: np.ndarray, count: int, threads: int = 0) -> object:
            raise RuntimeError("graph search failed")

    loaded.index = BrokenGraph(ids)
    with pytest.raises(RuntimeError, match="graph search failed"):
        indexes.search(probe, [lib], 3)
    assert loaded.lock.acquire(blocking=False)  # the failure let go of the index
    loaded.lock.release()
    loaded.index = graph
    indexes.close()  # and a closed set opens again on the next search
    assert indexes.search(probe, [lib], 3)[0].template_id == int(ids[40])


def test_the_terminal_chooses_its_index_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RFR_INDEX_PROFILE", raising=False)
    speed = index_profile()  # the default: it builds in half the time, and each library's expansion is measured
    assert speed == INDEX_PROFILES["speed"]
    assert (speed.expansion_add, speed.expansion_search, speed.cell_size, speed.cells_probed) == (64, 64, 512, 16)
    monkeypatch.setenv("RFR_INDEX_PROFILE", " Recall ")
    assert index_profile() == IndexSettings() == INDEX_PROFILES["recall"]
    ws = Workspace.create(tmp_path / "ws", WorkspaceKey.generate(), audit_key=AUDIT_KEY)
    try:
        assert indexes_for(ws, *MODEL).settings == IndexSettings()
    finally:
        ws.close()
    monkeypatch.setenv("RFR_INDEX_PROFILE", "fastest")
    with pytest.raises(LibraryError, match="RFR_INDEX_PROFILE is 'fastest', not an index profile: set it to one of"):
        index_profile()


def test_cells_survive_the_snapshot_and_a_bad_layout_is_refused(ws: Workspace) -> None:
    lib = create_library(ws, "custody", "substantive", created_by="tester")
    vectors = clustered(700, seed=4)
    keys = np.arange(1, 701, dtype=np.uint64)
    settings = IndexSettings(cell_size=16)
    built = LibraryIndex(lib, None, _new_usearch(settings), ExactVectors(settings.cell_size))
    built.add(keys[:600], vectors[:600], threads=0)
    built.add(keys[600:], vectors[600:], threads=0)
    assert built.exact.tail_cells.size == 100
    parts, _ = built.snapshot_parts()  # regroups the tail first
    assert built.exact.tail_cells.size == 0
    plain = bytearray(b"".join(parts))
    exact = restore_index(bytearray(plain), settings, lib, None).exact
    assert np.array_equal(exact.keys, built.exact.keys) and np.array_equal(exact.vectors, built.exact.vectors)
    assert np.array_equal(exact.centroids, built.exact.centroids) and np.array_equal(exact.bounds, built.exact.bounds)
    check_layout(exact)
    # bounds that do not cover the templates: refused, so the caller rebuilds
    at = len(plain) - len(parts[-1]) - 8  # the last bound
    broken = bytearray(plain)
    broken[at : at + 8] = (699).to_bytes(8, "little")
    with pytest.raises(ValueError, match="cell bounds"):
        restore_index(broken, settings, lib, None)
