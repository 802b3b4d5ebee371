"""Libraries: kinds, validation, lapsed temporary libraries and their purge, composition figures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from engine.audit import AuditSigningKey
from engine.errors import LibraryError
from engine.library import (
    composition,
    create_library,
    delete_library,
    enroll_directory,
    get_library,
    indexes_for,
    list_libraries,
    parse_expiry,
    purge_expired,
)
from engine.library.check import tune_index
from engine.library.metadata import parse_csv
from engine.library.snapshot import snapshot_path
from engine.security.keys import WorkspaceKey
from engine.workspace import Workspace
from tests.synthetic import SyntheticFaceEngine, load_rgb_with_opencv, write_subject_folders
from tests.terminals import library_events

AUDIT_KEY = AuditSigningKey.generate()  # the terminal's audit key, held in memory here


START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ws(tmp_path: Path, clock: Clock) -> Iterator[Workspace]:
    with Workspace.create(tmp_path / "ws", WorkspaceKey.generate(), clock=clock, audit_key=AUDIT_KEY) as workspace:
        yield workspace


def count(ws: Workspace, table: str, library_id: int) -> int:
    column = "image_id IN (SELECT id FROM images WHERE library_id = ?)" if table == "image_bytes" else "library_id = ?"
    row = ws.query_one(f"SELECT count(*) FROM {table} WHERE {column}", (library_id,))
    assert row is not None
    return int(row[0])


class TestCreate:
    def test_substantive_and_temporary(self, ws: Workspace) -> None:
        custody = create_library(ws, "custody", "substantive", created_by="tester")
        op = create_library(
            ws,
            "op-x",
            "temporary",
            authorisation="AUTH/123",
            expires_at=START + timedelta(days=30),
            created_by="tester",
        )
        assert [lib.name for lib in list_libraries(ws)] == ["custody", "op-x"]
        assert get_library(ws, "op-x") == op
        assert custody.to_json()["expires_at"] is None
        assert op.to_json()["authorisation"] == "AUTH/123"
        assert "index_salt" not in repr(op)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"name": "t", "kind": "temporary", "expires_at": START + timedelta(days=1)}, "authorisation reference"),
            ({"name": "t", "kind": "temporary", "authorisation": "A"}, "lapses"),
            ({"name": "t", "kind": "temporary", "authorisation": "A", "expires_at": START}, "not in the future"),
            ({"name": "s", "kind": "substantive", "authorisation": "A"}, "use --kind temporary"),
            ({"name": "s", "kind": "permanent"}, "'substantive' or 'temporary'"),
            ({"name": " ", "kind": "substantive"}, "printable"),
            ({"name": "x" * 65, "kind": "substantive"}, "printable"),
        ],
    )
    def test_refused(self, ws: Workspace, kwargs: dict[str, object], match: str) -> None:
        name = kwargs.pop("name")
        kind = kwargs.pop("kind")
        with pytest.raises(LibraryError, match=match):
            create_library(ws, name, kind, **kwargs, created_by="tester")  # type: ignore[arg-type]
        assert list_libraries(ws) == []

    def test_duplicate_name(self, ws: Workspace) -> None:
        create_library(ws, "custody", "substantive", created_by="tester")
        with pytest.raises(LibraryError, match="already exists"):
            create_library(ws, "custody", "substantive", created_by="tester")

    def test_unknown_library_names_the_known_ones(self, ws: Workspace) -> None:
        create_library(ws, "custody", "substantive", created_by="tester")
        with pytest.raises(LibraryError, match="no library called 'custdy' \\(libraries: custody\\)"):
            get_library(ws, "custdy")

    def test_expiry_parsing(self) -> None:
        assert parse_expiry("2025-06-30") == datetime(2025, 7, 1, tzinfo=UTC)
        assert parse_expiry("2025-06-30T09:00:00+01:00") == datetime(2025, 6, 30, 8, tzinfo=UTC)
        assert parse_expiry("2025-06-30T09:00") == datetime(2025, 6, 30, 9, tzinfo=UTC)
        with pytest.raises(LibraryError, match="not a date"):
            parse_expiry("next tuesday")


def enrol_some(ws: Workspace, library_name: str, root: Path, subjects: dict[str, int], seed: int = 0) -> None:
    write_subject_folders(root, subjects, seed=seed)
    engine = SyntheticFaceEngine()
    enroll_directory(ws, get_library(ws, library_name), root, engine, loader=load_rgb_with_opencv, added_by="tester")


class TestPurge:
    def test_lapsed_temporary_library_is_destroyed_and_recorded(
        self, ws: Workspace, clock: Clock, tmp_path: Path
    ) -> None:
        create_library(ws, "custody", "substantive", created_by="tester")
        op = create_library(
            ws, "op", "temporary", authorisation="AUTH/9", expires_at=START + timedelta(days=2), created_by="tester"
        )
        enrol_some(ws, "custody", tmp_path / "c", {"keep_a": 2, "keep_b": 1})
        enrol_some(ws, "op", tmp_path / "o", {"gone_a": 2, "gone_b": 3}, seed=1)
        assert snapshot_path(ws.index_dir, op.id).exists()
        assert count(ws, "templates", op.id) == 5
        engine = SyntheticFaceEngine()
        tune_index(indexes_for(ws, engine.model_id, engine.model_sha256), op, queries=5)
        assert count(ws, "index_tuning", op.id) == 1

        assert purge_expired(ws) == []  # not yet
        clock.now = START + timedelta(days=2)
        with pytest.raises(LibraryError, match="lapsed"):
            indexes_for(ws, SyntheticFaceEngine().model_id, SyntheticFaceEngine().model_sha256).search(
                np.zeros(128, np.float32), [op], 5
            )
        records = purge_expired(ws, actor="tester")

        assert [r.to_json() for r in records] == [
            {
                "library": "op",
                "authorisation": "AUTH/9",
                "expires_at": (START + timedelta(days=2)).isoformat(),
                "subjects": 2,
                "images": 5,
                "templates": 5,
            }
        ]
        for table in ("subjects", "images", "image_bytes", "templates", "index_snapshots", "index_tuning"):
            assert count(ws, table, op.id) == 0, table
        assert not snapshot_path(ws.index_dir, op.id).exists()
        assert [lib.name for lib in list_libraries(ws)] == ["custody"]
        custody = get_library(ws, "custody")
        assert count(ws, "templates", custody.id) == 3
        purge = library_events(ws, "op")[-1]
        assert purge["action"] == "purge" and purge["actor"] == "tester"
        assert purge["detail"]["templates"] == 5 and purge["detail"]["authorisation"] == "AUTH/9"
        assert (ws.directory / "rfr.db-wal").stat().st_size == 0  # checkpointed: no copy of the rows left in the WAL
        assert purge_expired(ws) == []

    def test_search_index_forgets_a_purged_library(self, ws: Workspace, clock: Clock, tmp_path: Path) -> None:
        engine = SyntheticFaceEngine()
        op = create_library(
            ws, "op", "temporary", authorisation="A", expires_at=START + timedelta(hours=1), created_by="tester"
        )
        enrol_some(ws, "op", tmp_path / "o", {"a": 2})
        indexes = indexes_for(ws, engine.model_id, engine.model_sha256)
        assert len(indexes.get(op)) == 2
        clock.now = START + timedelta(hours=1)
        purge_expired(ws)
        assert op.id not in indexes._loaded

    def test_delete_any_library(self, ws: Workspace, tmp_path: Path) -> None:
        create_library(ws, "custody", "substantive", created_by="tester")
        enrol_some(ws, "custody", tmp_path / "c", {"a": 1})
        record = delete_library(ws, "custody", actor="dpo", reason="retention review")
        assert record.images == 1
        assert list_libraries(ws) == []
        event = library_events(ws, "custody")[-1]
        assert event["action"] == "delete" and event["detail"]["reason"] == "retention review"


class TestComposition:
    def test_counts_by_sex_ic_code_and_age_range(self, ws: Workspace, tmp_path: Path) -> None:
        lib = create_library(ws, "custody", "substantive", created_by="tester")
        root = tmp_path / "c"
        write_subject_folders(root, {"s1": 2, "s2": 1, "s3": 1})
        meta = parse_csv(
            "subject,image,sex,ic_code,date_of_birth,capture_date,age_range\n"
            "s1,,female,IC3,1990-05-01,,\n"
            "s1,s1_0001.jpg,,,,2005-05-01,\n"
            "s1,s1_0002.jpg,,,,2020-05-02,\n"
            "s2,,M,ic1,,,45-54\n",
            "meta.csv",
        )
        enroll_directory(
            ws, lib, root, SyntheticFaceEngine(), metadata=meta, loader=load_rgb_with_opencv, added_by="tester"
        )
        fig = composition(ws, lib).to_json()
        assert fig["subjects"]["total"] == 3
        assert fig["subjects"]["by_sex"] == {"female": 1, "male": 1, "unknown": 1}
        assert fig["subjects"]["by_ic_code"] == {"IC0": 1, "IC1": 1, "IC2": 0, "IC3": 1, "IC4": 0, "IC5": 0, "IC6": 0}
        assert fig["images"]["total"] == 4
        assert fig["images"]["by_sex"] == {"female": 2, "male": 1, "unknown": 1}
        ages = fig["images"]["by_age_range"]
        assert ages["13-15"] == 1 and ages["25-34"] == 1 and ages["45-54"] == 1 and ages["unknown"] == 1
        assert sum(ages.values()) == 4
        assert list(fig["templates"].values()) == [4]
