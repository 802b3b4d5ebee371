"""The in-memory vector index over a library's templates, its encrypted snapshot, and search.

One usearch HNSW index per library and face model, keyed by template row id. The metric is
squared euclidean (L2sq) because the dlib descriptor is compared by euclidean distance and is
not normalised, so cosine would not preserve its ranking. The graph stores its vectors in
bfloat16 (``IndexSettings.dtype``): half the memory traffic of float32 while searching and
building. Beside it ``ExactVectors`` keeps the float32 templates, bit-exact copies of the
database rows, which every ranking is computed from.

At first use a library's index is restored from its encrypted snapshot and checked against
the database: the snapshot's entry count and digest (sha256 over sorted (template id,
template sha256) pairs, see ``rows_digest``) must match the database rows it holds. Rows added
since the snapshot (an enrolment killed before it saved) are added; anything else (damaged or
tampered snapshot, another model, rows deleted) means a rebuild from the database. Either way
the person is told and the event recorded, and a fresh snapshot is saved.

How deep the graph searches (its search expansion) is measured on each library: the smallest
expansion that finds the recall target among the library's own templates
(``engine.library.check.tune_index``), measured by the terminal when a library of ``TUNE_FROM``
templates or more is loaded or has doubled, or on request (``rfr library check-index --tune``).
It holds while the index is built the same way and the library keeps within a factor of two of
the size measured; until then the profile's (``RFR_INDEX_PROFILE``) is used.

Search asks the approximate index for more candidates than requested, re-ranks them exactly in
float32 from ``ExactVectors``, breaks ties by template id, and checks the final candidates against the database
(same vector bytes, current model), so the approximate index never decides what the officer sees.
That ranking of one index is ``shortlist``; ``MemoryIndex`` gives it to templates held only in
memory (the evaluation gallery of ``rfr evaluate search``), with no workspace, snapshot or database.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.audit.log import SYSTEM_ACTOR
from engine.errors import LibraryError, SnapshotError
from engine.library.exact import ExactVectors, one_blas_thread
from engine.library.snapshot import (
    KEY_LABEL,
    SnapshotInfo,
    read_snapshot,
    remove_snapshots,
    snapshot_path,
    sweep_stale_temp_files,
    wipe,
    write_snapshot,
)
from engine.library.store import Library, find_model, record_event, require_usable
from engine.scoring import LibrarySize, ScoreMeaning, ScoreView
from engine.workspace import Workspace

NDIM = 128
MAX_TOP_K = 1000
_PAIR = np.dtype([("id", "<u8"), ("sha", "S32")])
_DIGEST_DOMAIN = b"rfr/index-digest/v1\x00"
_BATCH = 65536
_SERIAL_START = 20_000
# Snapshot plaintext: this mark, the entry count and cell count, the template ids and their
# float32 templates cell by cell, the cell centroids (float32) and row bounds (uint64), then
# usearch's own serialisation of the graph.
_PLAIN_MARK = b"rfr-idx3"
_PLAIN_HEAD = struct.Struct("<8sQQ")

_CANDIDATE_SQL = (
    "SELECT t.id, t.vector, t.model_ref, t.library_id, t.image_id, s.id, s.reference FROM templates t"
    " JOIN images i ON i.id = t.image_id JOIN subjects s ON s.id = i.subject_id"
)
_POPULATION_SQL = (
    "SELECT count(DISTINCT i.subject_id), count(*) FROM templates t JOIN images i ON i.id = t.image_id"
    " WHERE t.model_ref = ?"
)

Notify = Callable[[str], None]
# Measures a library index's search expansion and keeps it (``engine.library.check.automatic_tuning``),
# handed in so this module does not import the check that is built on it.
Tuner = Callable[["IndexSet", Library], Any]


@dataclass(frozen=True)
class IndexSettings:
    """Graph and cell parameters, chosen for recall on rotated real LFW templates at 1M (scripts/bench_library.py).

    Recall comes first: a missed mate is worse than a slower search. Connectivity 32,
    expansion_add 128 and search expansion 512, with the 8 nearest cells scanned beside the
    graph, found 0.9963 of the exact top 50 with the populations rotated about their shared mean
    (the realistic case; 0.9919 at expansion 256) and all of it rotated about the origin, where
    the graph alone lost whole neighbourhoods for 3 queries in 1,000 (recall 0.9946). Cheaper
    settings meet the issue's speed targets about the origin but lose recall about the mean:
    expansion_add 64 builds in half the time and reached 0.9915 there; search expansion 128
    reached 0.9858. Connectivity 16 missed more, even with shuffled insertion (see
    ``_add_vectors``). Measured on 2 cores; see docs/benchmarks.md for latency and build time.
    ``expansion_search`` is where a library starts: the smallest that meets the recall target on
    the library itself is then measured by the terminal (from ``TUNE_FROM`` templates) or by
    ``rfr library check-index --tune`` (``IndexSet.expansion``).
    """

    connectivity: int = 32
    expansion_add: int = 128
    expansion_search: int = 512
    dtype: str = "bf16"  # how the graph stores vectors; rankings always use the float32 ExactVectors
    # When the graph's nearest candidate is farther than this, the probe is compared with every
    # template instead (``ExactVectors.nearest``). Among real faces nobody is that far from
    # everyone: in LFW (13,232 templates) the nearest other template was at most 0.604 away, the
    # nearest other person at most 0.635. A graph answer beyond 1.0 means the greedy descent
    # ended among the wrong people (measured on rotated populations: 1.70 or more), or the
    # probe is unlike any face, and then the exhaustive answer is the one to give. (A distance on
    # the dlib ResNet's scale: a face model with another scale needs its own figure.)
    verify_beyond: float = 1.0
    # Beside the graph's candidates every search compares the probe with all templates in its
    # ``cells_probed`` nearest cells of about ``cell_size`` (``ExactVectors.scan``); 0 turns it off.
    cell_size: int = 1024
    cells_probed: int = 8
    oversample: float = 2.0  # ask the index for top_k * oversample, then re-rank exactly
    min_extra: int = 32  # ... and at least top_k + min_extra
    threads: int = 0  # for building; 0 = all cores


# What a terminal's engineer chooses with RFR_INDEX_PROFILE (docs/benchmarks.md, 1M rotated LFW
# templates, 2 cores), each followed by the search expansion the terminal measures per library
# (TUNE_FROM). "speed", the default: builds in half the time; about the origin it keeps expansion
# 64, recall@50 0.9995, p99 1.4 ms, build 143-165 s; about the shared mean 1,024, recall@50 0.9974,
# p99 ~10 ms, build 209-258 s. "recall": about the origin 64, recall@50 0.9999, p99 1.5 ms, build
# 217-264 s; about the mean 1,024, recall@50 0.9990, p99 ~14 ms, build 466-558 s. ``IndexSettings()``
# are the recall profile. A library's cells keep the size they were trained with until it has
# doubled; search settings apply at once.
INDEX_PROFILES = {
    "recall": IndexSettings(),
    "speed": IndexSettings(expansion_add=64, expansion_search=64, cell_size=512, cells_probed=16),
}
DEFAULT_PROFILE = "speed"

# From this many templates the terminal measures each library's search expansion itself, when
# the library is loaded or has grown past twice the size measured (``IndexSet.tune_from``): 0.1 s
# at 10k templates, 1.5-6 s at 1M, against builds of minutes. Below it the profile's expansion is
# used as it is.
TUNE_FROM = 1_000


def index_profile() -> IndexSettings:
    """The index settings the terminal is configured for (``RFR_INDEX_PROFILE``, default ``speed``)."""
    name = os.environ.get("RFR_INDEX_PROFILE", "").strip().lower() or DEFAULT_PROFILE
    if name not in INDEX_PROFILES:
        raise LibraryError(
            f"RFR_INDEX_PROFILE is {name!r}, not an index profile: set it to one of {', '.join(INDEX_PROFILES)}"
        )
    return INDEX_PROFILES[name]


def profile_name(settings: IndexSettings) -> str:
    """The name of the index profile ``settings`` are, or "custom"."""
    return next((name for name, known in INDEX_PROFILES.items() if known == settings), "custom")


@dataclass(frozen=True)
class Tuning:
    """A search expansion measured for one library's index on this terminal (``check.tune_index``)."""

    expansion_search: int
    templates: int  # the library's templates for the face model when it was measured
    recall: float  # recall@K of the library's own templates at that expansion (K as tuned, 50 by default)
    target: float
    tuned_at: str

    def holds_for(self, templates: int) -> bool:
        """Whether a library of ``templates`` is near enough the one measured (within a factor of two)."""
        return self.templates <= 2 * templates and templates <= 2 * self.templates


@dataclass(frozen=True)
class SearchExpansion:
    """How deep a library's graph searches, and where that comes from."""

    value: int
    measured: Tuning | None = None  # in force: measured for this library's index
    lapsed: Tuning | None = None  # measured for it, but at a size too far from today's

    def describe(self) -> str:
        if self.measured is not None:
            m = self.measured
            return f"measured {m.tuned_at} on {m.templates:,} templates: recall {m.recall:.4f} (target {m.target})"
        if self.lapsed is not None:
            return f"the profile's: the one measured on {self.lapsed.templates:,} templates does not hold at this size"
        return "the profile's"


def build_settings(settings: IndexSettings) -> str:
    """What a measured expansion depends on besides the library: how the graph and cells are built
    and what a search adds to the graph's candidates (JSON, compared as text)."""
    fields = ("connectivity", "expansion_add", "dtype", "cell_size", "cells_probed", "oversample", "min_extra")
    return json.dumps({name: getattr(settings, name) for name in fields}, sort_keys=True)


def score_from_distance(distance: float) -> float:
    """Uncalibrated similarity in [0, 1]: 1 at distance 0, 0.5 at the dlib threshold 0.6, 0 beyond 1.2.

    A display aid for ordering only: it is not a probability and not a Viable Match decision.
    What a distance means is stated beside it by ``engine.scoring`` (the calibrated estimated
    false-match rate and the model, calibration, threshold and policy versions).
    """
    return max(0.0, 1.0 - distance / 1.2)


@dataclass(frozen=True)
class Candidate:
    """One Potential Match: a reference image whose template is near the Probe Image's."""

    rank: int
    score: float
    distance: float
    subject: str
    subject_id: int
    image_id: int
    template_id: int
    library: str

    def to_json(self, view: ScoreView | ScoreMeaning | None = None) -> dict[str, Any]:
        """The search contract's fields, with the score as ``view`` shows it (the policy's ``score_display``).

        A bare ``ScoreMeaning`` (or None) is the evaluation tools' view: every field, calibrated or "uncalibrated".
        """
        shown = view if isinstance(view, ScoreView) else ScoreView.everything(view)
        return {
            "rank": self.rank,
            "subject": self.subject,
            "image_id": str(self.image_id),
            "library": self.library,
            **shown.fields(self.score, self.distance),
        }


@dataclass(frozen=True)
class Ranked:
    """Template ids in final order with their exact squared distances, vectors and owning library ids."""

    keys: NDArray[np.uint64]
    d2: NDArray[np.float32]
    vectors: NDArray[np.float32]
    owner: NDArray[np.int64]


def rows_digest(pairs: NDArray[Any]) -> bytes:
    """sha256 over (template id, template sha256) pairs sorted by id: what an index snapshot was built from."""
    ordered = (
        pairs if pairs.size < 2 or bool(np.all(pairs["id"][1:] > pairs["id"][:-1])) else np.sort(pairs, order="id")
    )
    return hashlib.sha256(_DIGEST_DOMAIN + np.ascontiguousarray(ordered, dtype=_PAIR).tobytes()).digest()


def _new_usearch(settings: IndexSettings) -> Any:
    # OpenVINO's native libraries must be loaded before usearch's: with usearch first, every later
    # ``read_model`` in the process failed with an empty "Exception from .../core.cpp", so a search
    # that opened its library before the face engine could not embed its Probe Image.
    import openvino  # noqa: F401
    from usearch.index import Index

    return Index(
        ndim=NDIM,
        metric="l2sq",
        dtype=settings.dtype,
        connectivity=settings.connectivity,
        expansion_add=settings.expansion_add,
        expansion_search=settings.expansion_search,
    )


class LibraryIndex:
    """The usearch index of one library for one face model, with its exact templates. Thread-safe through its lock."""

    def __init__(
        self,
        library: Library,
        model_ref: int | None,
        index: Any,
        exact: ExactVectors | None = None,
        decrypted: memoryview | None = None,
        graph_at: int = 0,
    ) -> None:
        self.library = library
        self.model_ref = model_ref
        self.index = index
        self.exact = exact if exact is not None else ExactVectors()
        self.lock = threading.RLock()
        # Saves of this index run one at a time, in the order their states were taken, and a
        # reset waits for the one in progress (see ``IndexSet.save_loaded``). Taken before ``lock``.
        self.saving = threading.RLock()
        self.measured = False  # searching with an expansion measured for it (``IndexSet.expansion``)
        # A restored index is searched where its snapshot was decrypted (no copy; see
        # ``restore_index``): the exact templates are arrays over ``decrypted`` and the graph a
        # usearch ``view`` of ``decrypted[graph_at:]``, until the first change copies both into
        # memory of their own (``add``). The decrypted bytes are wiped then, or on reset.
        self._decrypted = decrypted
        self._viewed = decrypted[graph_at:] if decrypted is not None else None

    def __len__(self) -> int:
        return len(self.index)

    def keys(self) -> NDArray[np.uint64]:
        """The template ids held, ascending."""
        with self.lock:
            return self.exact.sorted_keys.copy()

    def add(self, ids: NDArray[np.uint64], vectors: NDArray[np.float32], threads: int) -> None:
        """Add templates to the exact store (which may regroup its cells), then to the graph (see ``_add_vectors``)."""
        with self.lock:
            if self._viewed is not None:  # the first change: the graph into usearch's own memory
                self.index.load(self._viewed)
            try:
                self.exact.add(ids, vectors)
            finally:
                self._own_memory()
            _add_vectors(self.index, ids, vectors, threads)

    def reset(self) -> None:
        with self.saving, self.lock:
            self.index.reset()
            self.exact.clear()
            self._forget_decrypted()

    @property
    def viewing(self) -> bool:
        """Whether the index is still searched in its decrypted snapshot rather than in memory of its own."""
        return self._decrypted is not None

    def _own_memory(self) -> None:
        """At the first change, once the graph is copied: copy whatever exact arrays still lie in the
        decrypted snapshot (adding has replaced the templates already), then wipe it."""
        if self._decrypted is not None:
            self.exact.own(np.frombuffer(self._decrypted, np.uint8))
            self._forget_decrypted()

    def _forget_decrypted(self) -> None:
        """Wipe the decrypted snapshot (call once neither the graph nor the exact templates use it)."""
        if self._decrypted is not None and self._viewed is not None:
            wipe(self._decrypted)
            self._viewed.release()
        self._decrypted = self._viewed = None

    def snapshot_parts(self) -> tuple[list[memoryview], bytearray]:
        """The snapshot plaintext as parts written one after another (see ``_PLAIN_MARK``), and the
        serialised graph among them, a copy the caller wipes. Call with the lock held; the parts
        stay as they are after it is let go (changes replace the exact arrays rather than write
        into them; arrays still in a decrypted snapshot, wiped at the first change, are copied)."""
        exact = self.exact
        if exact.tail_cells.size:
            exact.regroup()
        graph = self.index.save()
        head = _PLAIN_HEAD.pack(_PLAIN_MARK, len(exact), len(exact.centroids))
        arrays = [
            np.ascontiguousarray(exact.keys, dtype="<u8"),
            np.ascontiguousarray(exact.vectors, dtype="<f4"),
            np.ascontiguousarray(exact.centroids, dtype="<f4"),
            np.ascontiguousarray(exact.bounds if len(exact.centroids) else exact.bounds[:0], dtype="<u8"),
        ]
        if self._decrypted is not None:
            decrypted = np.frombuffer(self._decrypted, np.uint8)
            arrays = [a.copy() if np.may_share_memory(a, decrypted) else a for a in arrays]
        as_bytes = [a.view(np.uint8).reshape(-1).data for a in arrays]
        return [memoryview(head), *as_bytes, memoryview(graph)], graph


class IndexSet:
    """The indexes of a workspace's libraries for one face model, loaded on first use."""

    def __init__(
        self,
        ws: Workspace,
        model_id: str,
        model_sha256: str,
        *,
        settings: IndexSettings | None = None,
        notify: Notify | None = None,
        tune_from: int | None = None,
        tuner: Tuner | None = None,
    ) -> None:
        self.ws = ws
        self.model_id = model_id
        self.model_sha256 = model_sha256.lower()
        self.settings = settings or IndexSettings()
        self.notify: Notify = notify or (lambda _message: None)
        # Libraries of at least this many templates with no measured expansion holding for them
        # get one measured when loaded or grown (``_apply_expansion``); None: only on request.
        self.tune_from = tune_from
        self._tuner = tuner
        self._loaded: dict[int, LibraryIndex] = {}
        self._lock = threading.RLock()
        self._graph_worker = _graph_worker()

    # ---- loading, checking, repairing ---------------------------------------------------------

    def model_ref(self) -> int | None:
        return find_model(self.ws, self.model_sha256)

    def get(self, library: Library) -> LibraryIndex:
        """The library's index: restored from its snapshot, checked against the database, repaired if needed."""
        with self._lock:
            loaded = self._loaded.get(library.id)
            if loaded is None:
                loaded = self._loaded[library.id] = self._load(library)
                self._apply_expansion(loaded)  # may measure it, searching it through this method
            return loaded

    def drop(self, library_id: int) -> None:
        with self._lock:
            loaded = self._loaded.pop(library_id, None)
        if loaded is not None:
            loaded.reset()

    def close(self) -> None:
        for library_id in list(self._loaded):
            self.drop(library_id)
        worker, self._graph_worker = self._graph_worker, _graph_worker()  # usable again, like the indexes
        worker.shutdown(wait=True)

    def _key_for(self, library: Library) -> Callable[[bytes], bytes]:
        return lambda snapshot_id: self.ws.derive_key(KEY_LABEL, salt=library.index_salt, context=snapshot_id)

    def db_pairs(self, library_id: int, model_ref: int | None) -> NDArray[Any]:
        """(id, sha256) of the library's templates for this model, sorted by id, read through a covering index."""
        if model_ref is None:
            return np.zeros(0, _PAIR)
        parts = []
        with self.ws.cursor() as cur:
            cur.execute(
                "SELECT id, vector_sha256 FROM templates WHERE library_id = ? AND model_ref = ? ORDER BY id",
                (library_id, model_ref),
            )
            while rows := cur.fetchmany(_BATCH * 4):
                parts.append(np.fromiter(rows, dtype=_PAIR, count=len(rows)))
        return np.concatenate(parts) if parts else np.zeros(0, _PAIR)

    def _load(self, library: Library) -> LibraryIndex:
        sweep_stale_temp_files(self.ws.index_dir)
        model_ref = self.model_ref()
        pairs = self.db_pairs(library.id, model_ref)
        path = snapshot_path(self.ws.index_dir, library.id)
        loaded: LibraryIndex | None = None
        reason: str | None = None
        info: SnapshotInfo | None = None
        try:
            info, plain = read_snapshot(path, key_for=self._key_for(library), library_id=library.id)
        except FileNotFoundError:
            reason = "no index snapshot" if pairs.size else None
        except SnapshotError as exc:
            reason = f"index snapshot refused ({exc.diagnostics()})"
        else:
            try:
                if info.model_sha256 != self.model_sha256:
                    reason = "index snapshot was made for another face model"
                else:
                    loaded = restore_index(plain, self.settings, library, model_ref)
                    if len(loaded) != info.entries:
                        loaded.reset()
                        loaded, reason = None, "index snapshot holds a different number of entries than it says"
            except (RuntimeError, ValueError) as exc:
                reason = f"index snapshot could not be restored ({exc})"
            finally:
                if loaded is None:
                    wipe(plain)  # else it is what the restored index searches
        if loaded is not None and info is not None:
            reason = self._reconcile(loaded, info, pairs)
            if reason is None:
                return loaded
            loaded.reset()
        return self._rebuild(library, model_ref, reason)

    def _reconcile(self, loaded: LibraryIndex, info: SnapshotInfo, pairs: NDArray[Any]) -> str | None:
        """Bring a restored index level with the database, or say why it must be rebuilt instead."""
        if info.entries == pairs.size and info.digest == rows_digest(pairs):
            self._record_snapshot(loaded, info)
            return None
        keys = loaded.keys()
        in_snapshot = np.isin(pairs["id"], keys)
        if int(in_snapshot.sum()) != keys.size:
            return "index holds templates that are no longer in the database"
        if rows_digest(pairs[in_snapshot]) != info.digest:
            return "index snapshot does not match the database templates"
        missing = pairs["id"][~in_snapshot]
        self._add_from_db(loaded, missing)
        name = loaded.library.name
        self.notify(f"index of library {name!r} was {missing.size} templates behind the database: brought up to date")
        self.record(loaded.library, "index_caught_up", {"added": int(missing.size)})
        self.save_loaded(loaded)
        return None

    def _rebuild(self, library: Library, model_ref: int | None, reason: str | None) -> LibraryIndex:
        loaded = LibraryIndex(library, model_ref, _new_usearch(self.settings), ExactVectors(self.settings.cell_size))
        if model_ref is not None:
            self._add_from_db(loaded, None)
        if reason is not None:
            self.notify(
                f"index of library {library.name!r}: {reason}; rebuilt from the database ({len(loaded)} templates)"
            )
            self.record(library, "index_rebuilt", {"reason": reason, "templates": len(loaded)})
        if model_ref is not None:
            self.save_loaded(loaded)
        return loaded

    def _add_from_db(self, loaded: LibraryIndex, only: NDArray[np.uint64] | None) -> None:
        """Read template vectors from the database (all, or the ids in ``only``), then add them to the index.

        All are read before any is added so ``_add_vectors`` can insert them in a shuffled order
        (at 10M templates the vectors held meanwhile are 5 GiB, less than the index itself).
        """
        if loaded.model_ref is None or (only is not None and only.size == 0):
            return
        sql = "SELECT id, vector FROM templates WHERE library_id = ? AND model_ref = ?"
        params: tuple[Any, ...] = (loaded.library.id, loaded.model_ref)
        if only is not None:
            sql += " AND id >= ?"
            params += (int(only.min()),)
        id_parts: list[NDArray[np.uint64]] = []
        vector_parts: list[NDArray[np.float32]] = []
        with self.ws.cursor() as cur:
            cur.execute(sql + " ORDER BY id", params)
            while rows := cur.fetchmany(_BATCH):
                ids = np.fromiter((r[0] for r in rows), dtype=np.uint64, count=len(rows))
                vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(-1, NDIM)
                if only is not None:
                    keep = np.isin(ids, only)
                    ids, vectors = ids[keep], vectors[keep]
                id_parts.append(ids)
                vector_parts.append(vectors)
        if not id_parts:
            return
        all_ids = np.concatenate(id_parts)
        del id_parts
        all_vectors = np.concatenate(vector_parts).astype(np.float32, copy=False)
        del vector_parts
        if all_ids.size:
            loaded.add(all_ids, all_vectors, self.settings.threads)

    def record(self, library: Library, action: str, detail: dict[str, Any], actor: str = SYSTEM_ACTOR) -> None:
        """Record an index event about ``library`` in the audit log (with this face model).

        The actor is ``system`` for what the terminal does by itself (a rebuild, a measurement
        when a library is loaded) and the engineer for what they asked for.
        """
        with self.ws.transaction() as conn:
            record_event(conn, self.ws, actor, action, library.id, library.name, {**detail, "model_id": self.model_id})

    # ---- how deep the graph searches -----------------------------------------------------------

    def tuning(self, library: Library) -> Tuning | None:
        """The expansion measured for ``library``'s index built with these settings, if one was."""
        model_ref = self.model_ref()
        if model_ref is None:
            return None
        row = self.ws.query_one(
            "SELECT expansion_search, templates, recall, target, tuned_at, build FROM index_tuning"
            " WHERE library_id = ? AND model_ref = ?",
            (library.id, model_ref),
        )
        if row is None or row[5] != build_settings(self.settings):
            return None
        return Tuning(int(row[0]), int(row[1]), float(row[2]), float(row[3]), str(row[4]))

    def expansion(self, loaded: LibraryIndex) -> SearchExpansion:
        """How deep ``loaded``'s graph searches: the measured expansion while it holds, else the profile's."""
        tuning = self.tuning(loaded.library)
        if tuning is None:
            return SearchExpansion(self.settings.expansion_search)
        if not tuning.holds_for(len(loaded)):
            return SearchExpansion(self.settings.expansion_search, lapsed=tuning)
        return SearchExpansion(tuning.expansion_search, measured=tuning)

    def _apply_expansion(self, loaded: LibraryIndex) -> None:
        expansion = self.expansion(loaded)
        if expansion.measured is None and self._tunes(loaded) and self._tune(loaded):
            return  # the measured expansion is in force (``set_tuning``)
        with loaded.lock:
            lapsed = loaded.measured and expansion.measured is None
            loaded.index.expansion_search = expansion.value
            loaded.measured = expansion.measured is not None
        if lapsed:
            self.notify(
                f"index of library {loaded.library.name!r}: search expansion {expansion.value}, "
                f"{expansion.describe()}: run check-index --tune"
            )
            self.record(loaded.library, "index_tuning_lapsed", {"templates": len(loaded), "expansion": expansion.value})

    def _tunes(self, loaded: LibraryIndex) -> bool:
        return (
            self._tuner is not None
            and self.tune_from is not None
            and loaded.model_ref is not None
            and len(loaded) >= self.tune_from
        )

    def _tune(self, loaded: LibraryIndex) -> bool:
        """Measure the expansion for ``loaded`` now (the tuner); False, with a notice, if it could not be."""
        assert self._tuner is not None
        name = loaded.library.name
        try:
            tuned = self._tuner(self, loaded.library)
        except (LibraryError, SnapshotError) as exc:
            self.notify(f"index of library {name!r}: search expansion not measured ({exc}); the profile's is used")
            return False
        outcome = "" if tuned.reached else ", the best found: no expansion tried reaches the target"
        self.notify(
            f"index of library {name!r}: search expansion {tuned.chosen.expansion_search} measured on"
            f" {tuned.chosen.queries} of its {len(loaded):,} templates, recall@{tuned.chosen.top_k}"
            f" {tuned.chosen.recall:.4f} (target {tuned.target}){outcome}"
        )
        return True

    def set_tuning(self, library: Library, tuning: Tuning) -> None:
        """Record a measured expansion for ``library`` under these settings and search with it from now on."""
        loaded = self.get(library)
        if loaded.model_ref is None:
            raise LibraryError(f"library {library.name!r} has no templates for face model {self.model_id}")
        with self.ws.transaction() as conn:
            conn.execute(
                "INSERT INTO index_tuning (library_id, model_ref, expansion_search, build, templates, recall, target,"
                " tuned_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (library_id, model_ref) DO UPDATE SET"
                " expansion_search = excluded.expansion_search, build = excluded.build,"
                " templates = excluded.templates, recall = excluded.recall, target = excluded.target,"
                " tuned_at = excluded.tuned_at",
                (
                    library.id,
                    loaded.model_ref,
                    tuning.expansion_search,
                    build_settings(self.settings),
                    tuning.templates,
                    tuning.recall,
                    tuning.target,
                    tuning.tuned_at,
                ),
            )
        self._apply_expansion(loaded)

    # ---- changing and saving ------------------------------------------------------------------

    def add(self, library: Library, template_ids: NDArray[np.uint64], vectors: NDArray[np.float32]) -> None:
        """Add committed template rows to the in-memory index (the snapshot is saved by ``save``).

        Shuffled like a rebuild (``_add_vectors``): an enrolment batch holds each subject's images in a row.
        """
        loaded = self.get(library)
        if loaded.model_ref is None:
            loaded.model_ref = self.model_ref()
        loaded.add(np.asarray(template_ids, np.uint64), np.asarray(vectors, np.float32), self.settings.threads)
        self._apply_expansion(loaded)

    def save(self, library: Library) -> SnapshotInfo:
        return self.save_loaded(self.get(library))

    def save_loaded(self, loaded: LibraryIndex) -> SnapshotInfo:
        """Encrypt the index to its snapshot file and record count and digest in the database.

        The index lock is held only while the index's state is taken (``snapshot_parts``, the
        graph serialised: 1.7 s at 1M templates); searches go on while it is checked against the
        database, encrypted and written. Measured at 1M (scripts/bench_save_while_searching.py):
        the longest a search waited fell from 5.9 s (the whole save) to 2.8 s.
        """
        library = loaded.library
        with loaded.saving:
            with loaded.lock:
                keys = loaded.keys()
                parts, graph = loaded.snapshot_parts()
            try:
                pairs = self.db_pairs(library.id, loaded.model_ref)
                held = pairs[np.isin(pairs["id"], keys)]
                if held.size != keys.size:
                    raise SnapshotError(f"index of library {library.name!r} holds templates the database does not")
                digest = rows_digest(held)
                info = write_snapshot(
                    snapshot_path(self.ws.index_dir, library.id),
                    parts,
                    key_for=self._key_for(library),
                    library_id=library.id,
                    model_id=self.model_id,
                    model_sha256=self.model_sha256,
                    entries=int(keys.size),
                    digest=digest,
                    created_at=self.ws.now().isoformat(timespec="seconds"),
                )
            finally:
                wipe(graph)
            self._record_snapshot(loaded, info)
        return info

    def _record_snapshot(self, loaded: LibraryIndex, info: SnapshotInfo) -> None:
        """Record the snapshot in use (a crash between rename and this record is corrected at the next load)."""
        if loaded.model_ref is None:
            return
        key = (loaded.library.id, loaded.model_ref)
        row = self.ws.query_one("SELECT snapshot_id FROM index_snapshots WHERE library_id = ? AND model_ref = ?", key)
        if row is not None and bytes(row[0]) == info.snapshot_id:
            return
        with self.ws.transaction() as conn:
            recorded = conn.execute(
                "INSERT INTO index_snapshots (library_id, model_ref, snapshot_id, entries, digest, saved_at)"
                " SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM libraries WHERE id = ?)"
                " ON CONFLICT (library_id, model_ref) DO UPDATE SET"
                " snapshot_id = excluded.snapshot_id, entries = excluded.entries, digest = excluded.digest,"
                " saved_at = excluded.saved_at",
                (*key, info.snapshot_id, info.entries, info.digest, info.created_at, key[0]),
            ).rowcount
        if not recorded:  # destroyed while it was written (the purge waits for the save, then this)
            remove_snapshots(self.ws.index_dir, loaded.library.id)
            raise LibraryError(f"library {loaded.library.name!r} was deleted while its index was saved: nothing kept")

    # ---- searching ------------------------------------------------------------------------------

    def population(self, libraries: Sequence[Library]) -> LibrarySize:
        """The people (subjects) and templates of this face model a search of ``libraries`` compares with.

        What a candidate's distance means in 1:N depends on it: the more people searched, the more
        different people score close by chance (``engine.scoring``).
        """
        model_ref = self.model_ref()
        if model_ref is None or not libraries:
            return LibrarySize(0, 0)
        marks = ",".join("?" * len(libraries))
        # Only "?" placeholders are interpolated into the statement.
        sql = _POPULATION_SQL + f" AND t.library_id IN ({marks})"
        row = self.ws.query_one(sql, (model_ref, *(lib.id for lib in libraries)))
        return LibrarySize(int(row[0]), int(row[1])) if row else LibrarySize(0, 0)

    def search(self, probe: NDArray[np.float32], libraries: Sequence[Library], top_k: int) -> list[Candidate]:
        """The ``top_k`` nearest reference templates to ``probe`` over ``libraries``, exactly ranked."""
        ranked = self.rank(probe, libraries, top_k)
        return self._candidates(ranked, libraries)

    def rank(self, probe: NDArray[np.float32], libraries: Sequence[Library], top_k: int) -> Ranked:
        """The index part of ``search``: approximate candidates, re-ranked exactly (no database access)."""
        query = _check_request(probe, top_k)
        if not libraries:
            raise LibraryError("choose at least one library to search")
        parts: list[Shortlist] = []
        for library in libraries:
            require_usable(self.ws, library)
            loaded = self.get(library)
            with loaded.lock:
                if len(loaded.index) == 0:
                    raise LibraryError(
                        f"library {library.name!r} has no templates made with face model {self.model_id}: enrol first"
                    )
                found = shortlist(loaded.index, loaded.exact, query, top_k, self.settings, self._graph_worker)
            if found is None:
                self._distrust(library.id)
                raise SnapshotError("the index disagreed with the database and has been discarded: search again")
            parts.append(found)
        return merge_shortlists(parts, [library.id for library in libraries], top_k)

    def _candidates(self, ranked: Ranked, libraries: Sequence[Library]) -> list[Candidate]:
        """Attach subject, image and library to the ranked keys, checking each against its database row."""
        keys, d2, vectors, owner = ranked.keys, ranked.d2, ranked.vectors, ranked.owner
        model_ref = self.model_ref()
        ids = [int(k) for k in keys]
        marks = ",".join("?" * len(ids))
        # Only "?" placeholders are interpolated into the statement.
        sql = _CANDIDATE_SQL + f" WHERE t.id IN ({marks})"
        rows = self.ws.query(sql, tuple(ids))
        by_id = {int(r[0]): r for r in rows}
        names = {lib.id: lib.name for lib in libraries}
        out: list[Candidate] = []
        for rank, key in enumerate(ids, start=1):
            lib_id = int(owner[rank - 1])
            row = by_id.get(key)
            if (
                row is None
                or row[2] != model_ref
                or row[3] != lib_id
                or bytes(row[1]) != vectors[rank - 1].astype("<f4").tobytes()
            ):
                self._distrust(lib_id)
                raise SnapshotError("the index disagreed with the database and has been discarded: search again")
            distance = float(np.sqrt(d2[rank - 1]))
            out.append(
                Candidate(
                    rank,
                    score_from_distance(distance),
                    distance,
                    str(row[6]),
                    int(row[5]),
                    int(row[4]),
                    key,
                    names[lib_id],
                )
            )
        return out

    def _distrust(self, library_id: int) -> None:
        self.drop(library_id)
        remove_snapshots(self.ws.index_dir, library_id)


def _graph_worker() -> ThreadPoolExecutor:
    """The thread that runs the graph half of each search (``_graph_and_cells``); it starts on first use."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="rfr-graph-search")


Shortlist = tuple[NDArray[np.uint64], NDArray[np.float32], NDArray[np.float32]]
"""One index's nearest templates for a probe: (template ids, float32 templates, exact squared distances)."""


def shortlist(
    graph: Any,
    exact: ExactVectors,
    query: NDArray[np.float32],
    top_k: int,
    settings: IndexSettings,
    worker: ThreadPoolExecutor,
) -> Shortlist | None:
    """One index's part of every search: the graph's and the nearest cells' candidates, re-ranked exactly.

    Asks for ``top_k * oversample`` (at least ``top_k + min_extra``) candidates, measures them in
    float32 from ``exact`` (ties by template id), and compares the probe with every template
    instead when too few came back or the nearest is beyond ``verify_beyond``. Call with the
    index's lock held. None if the graph proposed a template the exact store does not hold.
    """
    wanted = min(len(graph), max(int(top_k * settings.oversample), top_k + settings.min_extra))
    rows = _graph_and_cells(graph, exact, query, wanted, settings, worker)
    if rows is None:
        return None
    keys, vectors, d2 = exact.ranked(query, rows, wanted)
    if keys.size < wanted or float(d2.min()) > settings.verify_beyond**2:
        keys, vectors, d2 = exact.nearest(query, wanted)
    return keys, vectors, d2


def merge_shortlists(parts: Sequence[Shortlist], owners: Sequence[int], top_k: int) -> Ranked:
    """The ``top_k`` nearest over several indexes' shortlists (``owners[i]`` owns ``parts[i]``), ties by template id."""
    keys = np.concatenate([p[0] for p in parts])
    d2 = np.concatenate([p[2] for p in parts])
    owner = np.concatenate([np.full(p[0].size, o, dtype=np.int64) for p, o in zip(parts, owners, strict=True)])
    order = np.lexsort((keys, d2))[:top_k]
    return Ranked(keys[order], d2[order], np.concatenate([p[1] for p in parts])[order], owner[order])


def _graph_and_cells(
    graph: Any,
    exact: ExactVectors,
    query: NDArray[np.float32],
    wanted: int,
    settings: IndexSettings,
    worker: ThreadPoolExecutor,
) -> NDArray[np.int64] | None:
    """Rows the graph proposes and the shortlist of the probe's nearest cells (``ExactVectors.scan``),
    or None if the graph proposed a template the exact store does not hold. Call with the lock held.

    The graph searches on a worker thread (usearch lets go of the GIL) while this thread scans
    the cells, so a search costs the slower of the two, not their sum (measured at 1M, 8 cells
    and search expansion 64: p50 1.26 ms one after the other, 0.91 ms side by side).
    """
    near: NDArray[np.int64] | None = None
    if settings.cells_probed > 0 and len(exact.centroids) > 0:
        from_graph = worker.submit(graph.search, query, wanted, threads=1)
        try:
            with one_blas_thread():  # a second BLAS thread would take the graph's core
                near = exact.scan(query, settings.cells_probed, wanted)
        finally:
            found = from_graph.result()  # never leave the graph searching once the lock is let go
    else:
        found = graph.search(query, wanted, threads=1)
    rows = exact.positions(np.asarray(found.keys[: len(found)], dtype=np.uint64))
    return rows if rows is None or near is None else np.concatenate([rows, near])


class MemoryIndex:
    """Templates held only in memory (an evaluation gallery), searched by the code that searches every
    library (``shortlist``): the graph beside its exact float32 templates, ranked exactly, ties by id.

    Built with the terminal's index profile (``index_profile``) and searched at that profile's
    expansion. Nothing is written anywhere; ``close`` drops it.
    """

    def __init__(self, settings: IndexSettings | None = None) -> None:
        self.settings = settings or index_profile()
        self.graph = _new_usearch(self.settings)
        self.exact = ExactVectors(self.settings.cell_size)
        self._lock = threading.Lock()
        self._worker = _graph_worker()

    def __len__(self) -> int:
        return len(self.exact)

    def __enter__(self) -> MemoryIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, ids: NDArray[np.uint64], vectors: NDArray[np.float32]) -> None:
        """Hold templates under their ids (inserted into the graph shuffled, as a library's are)."""
        ids, vectors = np.asarray(ids, np.uint64), np.ascontiguousarray(vectors, np.float32)
        if vectors.ndim != 2 or vectors.shape[1:] != (NDIM,) or len(vectors) != ids.size:
            raise LibraryError(f"templates to add must be {ids.size} rows of {NDIM} values, not {vectors.shape}")
        if not bool(np.all(np.isfinite(vectors))):
            raise LibraryError("a template to add contains non-finite values")
        with self._lock:
            self.exact.add(ids, vectors)
            _add_vectors(self.graph, ids, vectors, self.settings.threads)

    def rank(self, probe: NDArray[np.float32], top_k: int) -> Ranked:
        """The ``top_k`` nearest templates to ``probe``, exactly ranked (owner 0 for every one)."""
        query = _check_request(probe, top_k)
        with self._lock:
            if len(self.exact) == 0:
                raise LibraryError("the gallery holds no templates: nothing to search")
            found = shortlist(self.graph, self.exact, query, top_k, self.settings, self._worker)
        if found is None:  # graph and templates are filled together, so never; refuse rather than guess
            raise LibraryError("the in-memory index's graph and templates disagree: build the gallery again")
        return merge_shortlists([found], [0], top_k)

    def nearest(self, probe: NDArray[np.float32], top_k: int) -> Ranked:
        """The same answer by comparing the probe with every template (no graph), to check ``rank`` against."""
        query = _check_request(probe, top_k)
        with self._lock:
            found = self.exact.nearest(query, top_k)
        return merge_shortlists([found], [0], top_k)

    def close(self) -> None:
        with self._lock:
            self.graph.reset()
            self.exact.clear()
        self._worker.shutdown(wait=True)


def _add_vectors(index: Any, ids: NDArray[np.uint64], vectors: NDArray[np.float32], threads: int) -> None:
    """Add to a usearch index in a shuffled order; the first ``_SERIAL_START`` entries one thread at a time.

    Shuffled because rows come in id order, which is enrolment order: a subject's images one
    after another. Inserted like that, HNSW links each tight group of one person's images mostly
    to itself and searches reach only part of it: on rotated LFW templates at 200k (connectivity
    16, expansion_add 64, search expansion 256) recall@50 was 0.88 in id order and 0.9965 shuffled
    (build 26 s vs 29 s); at 1M rotated about the origin 0.797 vs 0.944, but the build took 207 s
    instead of 72 s there, because id order inserted one population at a time (cache-friendly), a
    locality a real library, all one population, does not have. The order is seeded: rebuilds repeat.

    usearch's parallel insertion into a small graph loses links: with 2 threads, 2,000 clustered
    vectors and expansion 512, a few true nearest neighbours were unreachable in most builds (none
    with 1 thread). Once the graph is large, concurrent inserts rarely meet and parallel is safe
    (no misses measured at 100k).
    """
    order = np.random.default_rng(ids.size).permutation(ids.size)
    serial = max(0, min(ids.size, _SERIAL_START - len(index)))
    done = 0
    while done < ids.size:
        part = order[done : done + (serial - done if done < serial else _BATCH)]
        index.add(ids[part], vectors[part], threads=1 if done < serial else threads)
        done += part.size


def restore_index(
    plain: bytearray | memoryview, settings: IndexSettings, library: Library, model_ref: int | None
) -> LibraryIndex:
    """The library's index from a decrypted snapshot, searching it where it lies in ``plain``.

    No copy is made: the exact templates are arrays over ``plain`` and the graph is a usearch
    ``view`` of its part of ``plain`` (copying the graph into usearch's own memory took 2.2 s of
    a 1M-template open on a fresh process, the view 0.1 s, with the same search speed). Graph and
    templates are copied and ``plain`` wiped at the index's first change, or wiped on its reset
    (also when this raises). Raises ValueError
    for a snapshot in another layout (an older version: the caller rebuilds) or one whose graph,
    templates and cells disagree.
    """
    if len(plain) < _PLAIN_HEAD.size:
        raise ValueError("too short")
    mark, n, cells = _PLAIN_HEAD.unpack_from(plain)
    if mark != _PLAIN_MARK:
        raise ValueError("an older snapshot layout")
    at = _PLAIN_HEAD.size
    bounds_size = (cells + 1) * 8 if cells else 0
    if len(plain) < at + n * (8 + NDIM * 4) + cells * NDIM * 4 + bounds_size:
        raise ValueError("shorter than its templates")

    def array(dtype: Any, count: int) -> NDArray[Any]:
        nonlocal at
        out = np.frombuffer(plain, dtype=dtype, count=count, offset=at)
        at += out.nbytes
        return out

    keys = array(np.uint64, n)
    vectors = array(np.float32, n * NDIM).reshape(n, NDIM)
    centroids = array(np.float32, cells * NDIM).reshape(cells, NDIM)
    bounds = array(np.uint64, cells + 1).astype(np.int64) if cells else np.zeros(1, np.int64)
    exact = ExactVectors.restored(keys, vectors, centroids, bounds, settings.cell_size)
    index = _new_usearch(settings)
    loaded = LibraryIndex(library, model_ref, index, exact, decrypted=memoryview(plain), graph_at=at)
    try:
        index.view(loaded._viewed)
        index.expansion_search = settings.expansion_search
        graph_keys = np.sort(np.asarray(index.keys[0 : len(index)], dtype=np.uint64)) if len(index) else keys[:0]
        if not np.array_equal(graph_keys, exact.sorted_keys):
            raise ValueError("its graph and its templates hold different template ids")
    except BaseException:
        loaded.reset()
        raise
    return loaded


def _check_request(probe: NDArray[Any], top_k: int) -> NDArray[np.float32]:
    query = _check_probe(probe)
    if not 1 <= top_k <= MAX_TOP_K:
        raise LibraryError(f"top K must be between 1 and {MAX_TOP_K}, not {top_k}")
    return query


def _check_probe(probe: NDArray[Any]) -> NDArray[np.float32]:
    query = np.asarray(probe)
    if query.shape != (NDIM,):
        raise LibraryError(f"a probe template has {NDIM} values, not shape {query.shape}")
    query = query.astype(np.float32, copy=False)
    if not np.all(np.isfinite(query)):
        raise LibraryError("the probe template contains non-finite values")
    return query
