"""How well a library's index finds what comparing every template finds, measured on this terminal.

The figures in docs/benchmarks.md come from rotated LFW templates on one machine; a real
library has its own geometry and a terminal its own CPU. ``check_index`` measures the index as
configured (``RFR_INDEX_PROFILE``) on the library itself: it takes a seeded sample of the
library's own templates as queries, searches each through the product's search path
(``IndexSet.rank``: graph, cells and exact re-ranking), compares the result with the exact
answer from every template (``ExactVectors.nearest_rows``), and times the searches. Each
query's own template is left out of both answers, so the figure is about its neighbours, as a
Probe Image not in the library would be. The result is recorded in the library's history.

The exhaustive comparison reads a frozen twin of the exact store without the index lock (it
takes seconds at 10M templates, and searches must not wait); a library that changes during the
check gets no figure, only an error asking for the check to be run again.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.errors import LibraryError
from engine.library.index import IndexSet, IndexSettings, profile_name
from engine.library.store import Library

DEFAULT_QUERIES = 200


@dataclass(frozen=True)
class IndexCheck:
    """Recall@K of a library's index against exhaustive search, and its search latency, as measured."""

    library: str
    profile: str
    settings: IndexSettings
    templates: int
    cells: int
    queries: int
    top_k: int
    recall: float
    recall_min: float
    below_half: int  # queries that found under half of their true top K
    search_p50_ms: float
    search_p99_ms: float

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["settings"] = {k: v for k, v in out["settings"].items() if k not in ("threads", "verify_beyond")}
        for key in ("recall", "recall_min"):
            out[key] = round(out[key], 4)
        for key in ("search_p50_ms", "search_p99_ms"):
            out[key] = round(out[key], 3)
        return out


def check_index(
    indexes: IndexSet, library: Library, *, queries: int = DEFAULT_QUERIES, top_k: int = 50, seed: int = 0
) -> IndexCheck:
    """Measure recall@``top_k`` and search latency of ``library``'s index over ``queries`` of its templates."""
    if queries < 1:
        raise LibraryError(f"the index check needs at least 1 query, not {queries}")
    loaded = indexes.get(library)
    with loaded.lock:
        store = loaded.exact.frozen()
    # Without the lock from here: comparing every template takes seconds at 10M, and searches go on.
    held = len(store)
    if held < 2:
        raise LibraryError(
            f"library {library.name!r} holds {held} templates for this face model: too few to check its index"
        )
    k = min(top_k, held - 1)
    rows = np.sort(np.random.default_rng(seed).choice(held, size=min(queries, held), replace=False))
    probes, own = store.vectors[rows].copy(), store.keys[rows].copy()
    truth = [store.keys[r] for r in store.nearest_rows(probes, k + 1)]
    recalls, latencies = [], []
    for probe, key, exact in zip(probes, own, truth, strict=True):
        start = time.perf_counter()
        found = indexes.rank(probe, [library], k + 1).keys
        latencies.append(time.perf_counter() - start)
        recalls.append(np.intersect1d(_others(found, key, k), _others(exact, key, k)).size / k)
    with loaded.lock:  # an enrolment, rebuild or reset meanwhile replaced the arrays: the figures are stale
        if not loaded.exact.same_as(store):
            raise LibraryError(f"library {library.name!r} changed while its index was checked: check it again")
    result = IndexCheck(
        library=library.name,
        profile=profile_name(indexes.settings),
        settings=indexes.settings,
        templates=held,
        cells=len(store.centroids),
        queries=len(probes),
        top_k=k,
        recall=float(np.mean(recalls)),
        recall_min=float(np.min(recalls)),
        below_half=int(np.sum(np.array(recalls) < 0.5)),
        search_p50_ms=float(np.percentile(latencies, 50) * 1e3),
        search_p99_ms=float(np.percentile(latencies, 99) * 1e3),
    )
    detail = result.to_json()
    indexes.record(library, "index_checked", {name: value for name, value in detail.items() if name != "library"})
    return result


def _others(keys: NDArray[np.uint64], own: np.uint64, count: int) -> NDArray[np.uint64]:
    """The first ``count`` of ``keys`` other than the query's own template."""
    others: NDArray[np.uint64] = keys[keys != own][:count]
    return others
