"""``check_index`` and ``tune_index``: recall and latency of a library's index, measured against comparing
every template, and the search expansion kept from those measurements."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.audit import AuditSigningKey
from engine.errors import LibraryError
from engine.library import create_library
from engine.library.check import automatic_tuning, check_index, tune_index
from engine.library.exact import ExactVectors
from engine.library.index import INDEX_PROFILES, TUNE_FROM, IndexSet, IndexSettings
from engine.library.registry import indexes_for
from engine.security.keys import WorkspaceKey
from engine.workspace import Workspace
from tests.terminals import library_events
from tests.unit.test_index import MODEL, clustered, insert_templates

AUDIT_KEY = AuditSigningKey.generate()  # the terminal's audit key, held in memory here


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    with Workspace.create(tmp_path / "ws", WorkspaceKey.generate(), audit_key=AUDIT_KEY) as workspace:
        yield workspace


def test_a_sound_index_finds_what_every_template_finds_and_the_check_is_recorded(ws: Workspace) -> None:
    lib = create_library(ws, "custody", "substantive", created_by="tester")
    insert_templates(ws, lib, clustered(3000, seed=21))
    settings = IndexSettings(cell_size=64, expansion_search=256)
    indexes = IndexSet(ws, *MODEL, settings=settings)
    result = check_index(indexes, lib, queries=40, top_k=20)
    assert (result.recall, result.recall_min, result.below_half) == (1.0, 1.0, 0)
    assert result.templates == 3000 and result.cells == 64 and result.queries == 40 and result.top_k == 20
    assert result.profile == "custom" and 0 < result.search_p50_ms <= result.search_p99_ms
    checked = [e for e in library_events(ws, "custody") if e["action"] == "index_checked"]
    assert len(checked) == 1 and checked[0]["detail"]["recall"] == 1.0 and checked[0]["detail"]["queries"] == 40
    assert IndexSet(ws, *MODEL).settings == INDEX_PROFILES["recall"]
    assert check_index(IndexSet(ws, *MODEL), lib, queries=5).profile == "recall"


def test_an_index_that_misses_templates_is_measured_as_missing_them(ws: Workspace) -> None:
    # Half of the templates taken out of the graph (the exact store still holds them) and no cells:
    # searches can only find the other half, and the check must say so.
    lib = create_library(ws, "custody", "substantive", created_by="tester")
    insert_templates(ws, lib, clustered(2000, seed=22))
    indexes = IndexSet(ws, *MODEL, settings=IndexSettings(cells_probed=0))
    loaded = indexes.get(lib)
    keys = loaded.keys()
    loaded.index.remove(keys[1::2])
    result = check_index(indexes, lib, queries=60, top_k=20)
    assert 0.3 < result.recall < 0.7 and result.recall_min < 1.0


def test_a_library_too_small_to_check_is_a_clear_error(ws: Workspace) -> None:
    lib = create_library(ws, "custody", "substantive", created_by="tester")
    insert_templates(ws, lib, clustered(1))
    with pytest.raises(LibraryError, match="too few to check its index"):
        check_index(IndexSet(ws, *MODEL), lib)
    insert_templates(ws, lib, clustered(2, seed=3))
    small = check_index(IndexSet(ws, *MODEL), lib, queries=10, top_k=50)
    assert small.top_k == 2 and small.queries == 3 and small.recall == 1.0
    with pytest.raises(LibraryError, match="at least 1 query"):
        check_index(IndexSet(ws, *MODEL), lib, queries=0)


def test_queries_are_the_librarys_own_templates_left_out_of_their_answers(ws: Workspace) -> None:
    # Two far-apart pairs: each template's only neighbour is its pair, so with K = 1 a check that
    # counted the query's own template would still score 1.0 against an index that found only it.
    lib = create_library(ws, "custody", "substantive", created_by="tester")
    pairs = np.repeat(clustered(2, seed=4) * 10, 2, axis=0) + np.float32(0.01) * np.arange(4)[:, None]
    insert_templates(ws, lib, pairs.astype(np.float32))
    indexes = IndexSet(ws, *MODEL, settings=IndexSettings(cells_probed=0))
    assert check_index(indexes, lib, queries=4, top_k=1).recall == 1.0
    loaded = indexes.get(lib)
    loaded.index.remove(loaded.keys()[[1, 3]])  # each pair's second template is gone from the graph
    result = check_index(indexes, lib, queries=4, top_k=1)
    # the first of each pair can no longer find its pair; the second still finds the first
    assert result.recall == 0.5 and result.below_half == 2


def test_searches_go_on_while_every_template_is_compared(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    # Comparing every template takes seconds at 10M: the check must not hold the index lock meanwhile.
    lib = create_library(ws, "custody", "substantive", created_by="tester")
    insert_templates(ws, lib, clustered(300, seed=31))
    indexes = IndexSet(ws, *MODEL)
    loaded = indexes.get(lib)
    exhaustive = ExactVectors.nearest_rows
    free: list[bool] = []

    def while_comparing(store: ExactVectors, queries: np.ndarray, count: int) -> list[np.ndarray]:
        def search_meanwhile() -> None:
            got = loaded.lock.acquire(timeout=5)
            free.append(got)
            if got:
                loaded.lock.release()

        other = threading.Thread(target=search_meanwhile)
        other.start()
        other.join()
        return exhaustive(store, queries, count)

    monkeypatch.setattr(ExactVectors, "nearest_rows", while_comparing)
    assert check_index(indexes, lib, queries=5).recall == 1.0 and free == [True]


def test_a_library_that_changes_during_its_check_gets_no_figure(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = create_library(ws, "custody", "substantive", created_by="tester")
    insert_templates(ws, lib, clustered(300, seed=32))
    indexes = IndexSet(ws, *MODEL)
    rank = indexes.rank
    armed = [True]

    def rank_while_enrolling(*args: object, **kwargs: object) -> object:
        if armed.pop() if armed else False:  # an enrolment lands while the check searches
            added = clustered(5, seed=33)
            indexes.add(lib, np.array(insert_templates(ws, lib, added), np.uint64), added)
        return rank(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(indexes, "rank", rank_while_enrolling)
    with pytest.raises(LibraryError, match="changed while its index was checked: check it again"):
        check_index(indexes, lib, queries=10)
    assert not [e for e in library_events(ws, "custody") if e["action"] == "index_checked"]
    # nor a tuning: nothing kept, and searches go on at the expansion in force, not a trial's
    armed.append(True)
    with pytest.raises(LibraryError, match="changed while its index was checked"):
        tune_index(indexes, lib, queries=10, expansions=(64,))
    assert indexes.tuning(lib) is None and indexes.get(lib).index.expansion_search == 512
    assert not [e for e in library_events(ws, "custody") if e["action"] == "index_tuned"]


# ---- tuning the search expansion ---------------------------------------------------------------

# A graph weak enough that its recall grows with the search expansion: random vectors (no faces'
# structure), connectivity 16, no cells, built on one thread so the figures repeat.
WEAK = IndexSettings(connectivity=16, expansion_add=64, cells_probed=0, threads=1, verify_beyond=100.0)


def weak_library(ws: Workspace) -> tuple[IndexSet, object]:
    lib = create_library(ws, "custody", "substantive", created_by="tester")
    insert_templates(ws, lib, np.random.default_rng(7).normal(size=(3000, 128)).astype(np.float32))
    return IndexSet(ws, *MODEL, settings=WEAK), lib


def test_tuning_keeps_the_smallest_expansion_reaching_the_target_and_searches_use_it(ws: Workspace) -> None:
    indexes, lib = weak_library(ws)
    tuned = tune_index(indexes, lib, target=0.99, queries=60, top_k=20, expansions=(1024, 64, 256, 128))
    tried = [t.expansion_search for t in tuned.trials]
    assert tried == sorted(tried) and tried[0] == 64 and 1024 not in tried  # ascending, stopped once reached
    assert tuned.reached and tuned.chosen is tuned.trials[-1] and tuned.chosen.recall >= 0.99
    assert all(t.recall < 0.99 for t in tuned.trials[:-1]) and tuned.trials[0].recall < 0.95
    kept = tuned.chosen.expansion_search
    assert indexes.get(lib).index.expansion_search == kept
    events = [e for e in library_events(ws, "custody") if e["action"] == "index_tuned"]
    assert len(events) == 1 and events[0]["detail"]["expansion_search"] == kept
    assert [t["expansion_search"] for t in events[0]["detail"]["trials"]] == tried

    # a fresh process searches with it, and the check says where it came from
    again = IndexSet(ws, *MODEL, settings=WEAK)
    assert again.get(lib).index.expansion_search == kept
    check = check_index(again, lib, queries=60, top_k=20)
    assert check.expansion_search == kept and check.expansion_source.startswith("measured ")
    assert check.recall == tuned.chosen.recall  # same queries, same expansion, same answers
    # an index built otherwise is not what was measured: the profile's expansion
    other = IndexSet(ws, *MODEL, settings=IndexSettings(connectivity=16, expansion_add=32, cells_probed=0))
    assert other.get(lib).index.expansion_search == 512
    assert check_index(other, lib, queries=5).expansion_source == "the profile's"


def test_a_target_no_expansion_reaches_keeps_the_best_recall_and_says_so(ws: Workspace) -> None:
    indexes, lib = weak_library(ws)
    tuned = tune_index(indexes, lib, target=1.0, queries=60, top_k=20, expansions=(64, 128))
    assert not tuned.reached and [t.expansion_search for t in tuned.trials] == [64, 128]
    best = max(tuned.trials, key=lambda t: t.recall)
    assert tuned.chosen is best and indexes.get(lib).index.expansion_search == best.expansion_search
    assert tuned.to_json()["reached"] is False
    for target in (0.0, 1.5):
        with pytest.raises(LibraryError, match="recall target must be above 0 and at most 1"):
            tune_index(indexes, lib, target=target)


def test_a_measured_expansion_lapses_when_the_library_has_doubled(ws: Workspace) -> None:
    lib = create_library(ws, "custody", "substantive", created_by="tester")
    insert_templates(ws, lib, clustered(300, seed=41))
    notes: list[str] = []
    indexes = IndexSet(ws, *MODEL, notify=notes.append)
    indexes.get(lib)
    notes.clear()  # "no index snapshot; rebuilt"
    assert tune_index(indexes, lib, queries=20).chosen.expansion_search == 64  # 300 clustered: found at once
    more = clustered(200, seed=42)
    indexes.add(lib, np.array(insert_templates(ws, lib, more), np.uint64), more)
    assert indexes.get(lib).index.expansion_search == 64 and notes == []  # 500: within twice 300
    more = clustered(150, seed=43)
    indexes.add(lib, np.array(insert_templates(ws, lib, more), np.uint64), more)
    assert indexes.get(lib).index.expansion_search == 512  # 650: the profile's again
    assert len(notes) == 1 and "measured on 300 templates does not hold" in notes[0] and "--tune" in notes[0]
    lapsed = [e["detail"] for e in library_events(ws, "custody") if e["action"] == "index_tuning_lapsed"]
    assert lapsed == [{"templates": 650, "expansion": 512, "model_id": MODEL[0]}]
    assert IndexSet(ws, *MODEL).get(lib).index.expansion_search == 512  # and in a fresh process


# ---- measured by the terminal itself -------------------------------------------------------------


def test_a_library_big_enough_is_measured_when_loaded_and_again_when_it_has_doubled(ws: Workspace) -> None:
    lib = create_library(ws, "custody", "substantive", created_by="tester")
    insert_templates(ws, lib, clustered(299, seed=51))
    notes: list[str] = []
    indexes = IndexSet(ws, *MODEL, notify=notes.append, tune_from=300, tuner=automatic_tuning)
    assert indexes.get(lib).index.expansion_search == 512 and indexes.tuning(lib) is None  # 299: too small
    more = clustered(1, seed=52)
    indexes.add(lib, np.array(insert_templates(ws, lib, more), np.uint64), more)
    assert indexes.get(lib).index.expansion_search == 64  # 300: measured at once
    assert notes[-1].startswith("index of library 'custody': search expansion 64 measured on 200 of its 300")
    tuned = [e["detail"] for e in library_events(ws, "custody") if e["action"] == "index_tuned"]
    assert len(tuned) == 1 and tuned[0]["automatic"] is True and tuned[0]["templates"] == 300

    again = IndexSet(
        ws, *MODEL, tune_from=300, tuner=automatic_tuning
    )  # a fresh process: the measurement holds, nothing re-measured
    assert again.get(lib).index.expansion_search == 64
    more = clustered(301, seed=53)
    again.add(lib, np.array(insert_templates(ws, lib, more), np.uint64), more)  # 601: measured again
    tuned = [e["detail"] for e in library_events(ws, "custody") if e["action"] == "index_tuned"]
    assert [t["templates"] for t in tuned] == [300, 601] and again.tuning(lib) is not None
    assert not [e for e in library_events(ws, "custody") if e["action"] == "index_tuning_lapsed"]


def test_a_measurement_that_fails_leaves_the_profiles_expansion_and_says_why(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import engine.library.check as check

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise LibraryError("library 'custody' changed while its index was checked: check it again")

    monkeypatch.setattr(check, "tune_index", refuse)
    lib = create_library(ws, "custody", "substantive", created_by="tester")
    insert_templates(ws, lib, clustered(300, seed=54))
    notes: list[str] = []
    indexes = IndexSet(ws, *MODEL, notify=notes.append, tune_from=300, tuner=automatic_tuning)
    assert indexes.get(lib).index.expansion_search == 512
    assert notes[-1] == (
        "index of library 'custody': search expansion not measured (library 'custody' changed while its index"
        " was checked: check it again); the profile's is used"
    )


def test_the_terminals_shared_indexes_measure_libraries_from_a_thousand_templates(ws: Workspace) -> None:
    assert indexes_for(ws, *MODEL).tune_from == TUNE_FROM == 1_000
    assert IndexSet(ws, *MODEL).tune_from is None  # tools and tests measure on request only
