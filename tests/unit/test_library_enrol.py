"""Enrolment with a deterministic stand-in face engine: what goes in, what is skipped, and why."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.audit import AuditSigningKey
from engine.errors import LibraryError, MetadataError
from engine.library import EnrolProgress, create_library, enroll_directory, indexes_for
from engine.library.metadata import parse_csv
from engine.security.keys import WorkspaceKey
from engine.workspace import Workspace
from tests.synthetic import (
    SyntheticFaceEngine,
    load_rgb_with_opencv,
    synthetic_jpeg,
    write_subject_folders,
)
from tests.terminals import library_events

AUDIT_KEY = AuditSigningKey.generate()  # the terminal's audit key, held in memory here


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    with Workspace.create(tmp_path / "ws", WorkspaceKey.generate(), audit_key=AUDIT_KEY) as workspace:
        yield workspace


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three subjects with good images, plus every kind of image that must be skipped."""
    root = tmp_path / "enrol"
    write_subject_folders(root, {"alice": 3, "bob": 2, "carol": 1})
    (root / "bob" / "dark.jpg").write_bytes(synthetic_jpeg(7, 0, kind="none"))
    (root / "carol" / "pair.jpg").write_bytes(synthetic_jpeg(8, 0, kind="pair"))
    (root / "carol" / "copy_of_alice.jpg").write_bytes((root / "alice" / "alice_0001.jpg").read_bytes())
    (root / "carol" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    (root / "carol" / "notes.txt").write_text("not an image")
    (root / "stray.jpg").write_bytes(synthetic_jpeg(9, 0))
    (root / "dave").mkdir()  # a subject with no images
    return root


def enrol(ws: Workspace, folder: Path, **kwargs: object) -> tuple[object, SyntheticFaceEngine]:
    engine = SyntheticFaceEngine()
    lib = kwargs.pop("library", None) or create_library(ws, "custody", "substantive", created_by="tester")
    kwargs.setdefault("added_by", "tester")
    report = enroll_directory(ws, lib, folder, engine, loader=load_rgb_with_opencv, **kwargs)  # type: ignore[arg-type]
    return report, engine


def test_enrols_good_images_and_reports_the_rest(ws: Workspace, folder: Path) -> None:
    report, _ = enrol(ws, folder, added_by="officer 1234")
    summary = report.to_json()  # type: ignore[attr-defined]
    assert summary["enrolled"] == 6
    assert summary["subjects_added"] == 3
    assert summary["skipped_by_reason"] == {
        "not_in_subject_folder": 1,
        "not_an_image": 1,
        "no_face": 1,
        "several_faces": 1,
        "duplicate": 1,
        "unreadable": 1,
    }
    reasons = {Path(s["path"]).name: s["reason"] for s in summary["skipped"]}
    assert reasons["copy_of_alice.jpg"] == "duplicate"
    assert reasons["dark.jpg"] == "no_face" and reasons["pair.jpg"] == "several_faces"
    assert reasons["broken.jpg"] == "unreadable"
    events = library_events(ws, "custody")
    assert events[-1]["action"] == "enrol" and events[-1]["detail"]["images"] == 6


def test_every_row_is_complete_and_bytes_are_kept_exactly(ws: Workspace, folder: Path) -> None:
    enrol(ws, folder, added_by="officer 1234")
    rows = ws.query(
        "SELECT s.reference, i.sha256, b.data, i.media_type, i.added_by, i.source, t.vector, t.vector_sha256,"
        " t.face_box, m.model_id FROM images i JOIN subjects s ON s.id = i.subject_id"
        " JOIN image_bytes b ON b.image_id = i.id JOIN templates t ON t.image_id = i.id"
        " JOIN models m ON m.id = t.model_ref ORDER BY i.id"
    )
    assert len(rows) == 6
    assert ws.query_one("SELECT count(*) FROM images") == (6,)
    assert ws.query_one("SELECT count(*) FROM templates") == (6,)
    engine = SyntheticFaceEngine()
    for reference, sha, data, media, added_by, source, vector, vector_sha, box, model_id in rows:
        path = folder / reference
        original = next(p for p in path.iterdir() if p.suffix == ".jpg" and p.read_bytes() == data)
        assert hashlib.sha256(data).digest() == sha  # stored as read, not re-encoded
        assert media == "image/jpeg" and added_by == "officer 1234" and source == "enrolment from folder enrol"
        expected = engine.analyze(load_rgb_with_opencv(original.read_bytes(), "x"))[0].embedding
        assert expected is not None
        assert vector == expected.astype("<f4").tobytes()
        assert hashlib.sha256(vector).digest() == vector_sha
        assert json.loads(box) == [0, 0, 63, 63] and model_id == engine.model_id
    assert {r[0] for r in ws.query("SELECT reference FROM subjects")} == {"alice", "bob", "carol"}


def test_templates_cannot_be_changed_in_place(ws: Workspace, folder: Path) -> None:
    enrol(ws, folder)
    with pytest.raises(Exception, match="immutable"), ws.transaction() as conn:
        conn.execute("UPDATE templates SET vector = zeroblob(512)")


def test_running_again_adds_nothing(ws: Workspace, folder: Path) -> None:
    enrol(ws, folder)
    lib = ws.query_one("SELECT id FROM libraries")
    from engine.library import get_library

    again, engine = enrol(ws, folder, library=get_library(ws, "custody"))
    assert again.enrolled == 0  # type: ignore[attr-defined]
    assert again.to_json()["skipped_by_reason"]["duplicate"] == 7  # type: ignore[attr-defined]
    assert engine.calls == 4  # only the two images skipped for their faces again: the faceless one at 3 sizes
    assert lib is not None and ws.query_one("SELECT count(*) FROM templates") == (6,)


def test_index_follows_enrolment_and_snapshot_is_saved(ws: Workspace, folder: Path) -> None:
    _, engine = enrol(ws, folder)
    from engine.library import get_library
    from engine.library.snapshot import snapshot_path

    lib = get_library(ws, "custody")
    indexes = indexes_for(ws, engine.model_id, engine.model_sha256)
    assert len(indexes.get(lib)) == 6
    assert snapshot_path(ws.index_dir, lib.id).stat().st_size > 0
    stored = ws.query_one("SELECT entries FROM index_snapshots WHERE library_id = ?", (lib.id,))
    assert stored == (6,)


def test_cancel_stops_after_the_current_image(ws: Workspace, folder: Path) -> None:
    cancel = threading.Event()
    seen: list[EnrolProgress] = []

    def progress(p: EnrolProgress) -> None:
        seen.append(p)
        if p.enrolled == 2:
            cancel.set()

    report, _ = enrol(ws, folder, progress=progress, cancel=cancel)
    assert report.cancelled and report.enrolled == 2  # type: ignore[attr-defined]
    assert seen[-1].total == 10 and seen[-1].done == 2
    assert ws.query_one("SELECT count(*) FROM templates") == (2,)
    assert ws.query_one("SELECT count(*) FROM images") == (2,)
    lib_id = ws.query_one("SELECT id FROM libraries")
    assert ws.query_one("SELECT entries FROM index_snapshots WHERE library_id = ?", lib_id) == (2,)


def test_metadata_is_applied(ws: Workspace, folder: Path) -> None:
    meta = parse_csv("subject,image,sex,ic_code,capture_date\nalice,,F,IC2,\nbob,bob_0001.jpg,,,2021-01-01\n", "m.csv")
    enrol(ws, folder, metadata=meta)
    assert ws.query_one("SELECT sex, ic_code FROM subjects WHERE reference = 'alice'") == ("female", "IC2")
    assert ws.query_one("SELECT sex, ic_code FROM subjects WHERE reference = 'bob'") == ("unknown", "IC0")
    assert ws.query("SELECT capture_date FROM images WHERE capture_date IS NOT NULL") == [("2021-01-01",)]


def test_a_face_named_in_the_metadata_is_enrolled_and_counted(ws: Workspace, folder: Path) -> None:
    """carol/pair.jpg (two faces of a size, 64x64: left half and right half) is refused by the rules; a point
    on its right face enrols that face. A point off alice_0002.jpg's one face skips it, saying so."""
    meta = parse_csv("subject,image,face_x,face_y\ncarol,pair.jpg,48,20\nalice,alice_0002.jpg,70,20\n", "m.csv")
    report, _ = enrol(ws, folder, metadata=meta)
    summary = report.to_json()  # type: ignore[attr-defined]
    assert summary["enrolled"] == 6 and summary["face_named_by_person"] == 1 and summary["chose_dominant_face"] == 0
    assert report.face_named_by_person == [str(folder / "carol" / "pair.jpg")]  # type: ignore[attr-defined]
    assert "several_faces" not in summary["skipped_by_reason"]
    assert summary["skipped_by_reason"]["no_face_at_point"] == 1
    (missed,) = [s for s in summary["skipped"] if s["reason"] == "no_face_at_point"]
    assert missed["path"] == str(folder / "alice" / "alice_0002.jpg")
    assert missed["detail"].startswith("the point named (face_x 70, face_y 20) is outside the photograph")
    digest = hashlib.sha256((folder / "carol" / "pair.jpg").read_bytes()).digest()
    box = ws.query_one(
        "SELECT t.face_box FROM templates t JOIN images i ON i.id = t.image_id WHERE i.sha256 = ?", (digest,)
    )
    assert box is not None and json.loads(box[0]) == [32, 0, 63, 63]  # the right half: the face named
    events = library_events(ws, "custody")
    assert events[-1]["detail"]["face_named_by_person"] == 1  # type: ignore[index]


def test_bad_metadata_changes_nothing(ws: Workspace, folder: Path) -> None:
    meta = parse_csv("subject,sex\nalice,F\nzed,M\n", "m.csv")
    with pytest.raises(MetadataError, match="row 3: subject 'zed' has no folder"):
        enrol(ws, folder, metadata=meta)
    assert ws.query_one("SELECT count(*) FROM images") == (0,)


def test_metadata_contradicting_the_library_is_refused_before_any_change(ws: Workspace, folder: Path) -> None:
    enrol(ws, folder, metadata=parse_csv("subject,sex\nalice,F\n", "first.csv"))
    (folder / "alice" / "new.jpg").write_bytes(synthetic_jpeg(123, 0))
    from engine.library import get_library

    with pytest.raises(MetadataError, match=r"second\.csv row 2: sex 'male' contradicts 'female' already recorded"):
        enrol(
            ws, folder, library=get_library(ws, "custody"), metadata=parse_csv("subject,sex\nalice,M\n", "second.csv")
        )
    assert ws.query_one("SELECT count(*) FROM images") == (6,)


def test_missing_folder_and_lapsed_library(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(LibraryError, match="does not exist"):
        enrol(ws, tmp_path / "nowhere")
    from datetime import timedelta

    lib = create_library(
        ws, "op", "temporary", authorisation="A", expires_at=ws.now() + timedelta(seconds=1), created_by="tester"
    )
    ws.clock = lambda: lib.created_at + timedelta(days=1)
    with pytest.raises(LibraryError, match="lapsed"):
        enrol(ws, tmp_path, library=lib)


def test_probe_search_finds_the_same_person_first(ws: Workspace, folder: Path) -> None:
    _, engine = enrol(ws, folder)
    from engine.library import get_library

    lib = get_library(ws, "custody")
    probe_rgb = load_rgb_with_opencv(synthetic_jpeg(0, 99), "probe")  # alice's pattern, new noise
    probe = engine.analyze(probe_rgb)[0].embedding
    assert probe is not None
    found = indexes_for(ws, engine.model_id, engine.model_sha256).search(probe, [lib], 4)
    assert [c.subject for c in found[:3]] == ["alice"] * 3
    assert [c.rank for c in found] == [1, 2, 3, 4]
    assert np.all(np.diff([c.distance for c in found]) >= 0)


def test_new_face_model_adds_templates_without_duplicating_images(ws: Workspace, folder: Path) -> None:
    enrol(ws, folder)
    from engine.library import get_library

    lib = get_library(ws, "custody")
    upgraded = SyntheticFaceEngine(model_id="synthetic-test-engine-v2")
    report = enroll_directory(ws, lib, folder, upgraded, loader=load_rgb_with_opencv, added_by="tester")
    assert report.enrolled == 0 and report.retemplated == 6
    assert ws.query_one("SELECT count(*) FROM images") == (6,)
    assert ws.query(
        "SELECT m.model_id, count(*) FROM templates t JOIN models m ON m.id = t.model_ref GROUP BY m.id"
    ) == [
        ("synthetic-test-engine-v1", 6),
        ("synthetic-test-engine-v2", 6),
    ]
    again = enroll_directory(ws, lib, folder, upgraded, loader=load_rgb_with_opencv, added_by="tester")
    assert again.retemplated == 0 and again.to_json()["skipped_by_reason"]["duplicate"] == 7
    assert len(indexes_for(ws, upgraded.model_id, upgraded.model_sha256).get(lib)) == 6
