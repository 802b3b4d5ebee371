"""The exact float32 templates behind a library index, grouped into cells around k-means centroids.

Every ranking the officer sees is computed from these float32 templates (bit-exact copies of
the database rows). The HNSW graph proposes candidates; on its own it sometimes ends its greedy
descent among the wrong people and misses a whole neighbourhood, the true mates with it
(measured on rotated LFW templates at 1M, connectivity 32: 4-13 of 1,000 queries found under
half of their exact top 50, their true nearest template 0.31-0.53 away). So the templates are
also grouped into cells of about ``cell_size`` around k-means centroids, and each search also
compares the probe with every template in its nearest few cells (``scan``): the neighbourhood
the graph can miss is the one those cells hold. In the same measurement four cells of ~1,000
brought those misses to none and recall@50 from 0.968 to 0.996.

Layout: rows are kept cell by cell (``bounds[j]:bounds[j + 1]`` is cell ``j``, each cell in
template id order), so a cell is compared with one contiguous slice and no gather. Rows added
later go to a tail with their cell recorded, regrouped into place once the tail grows (and
before every snapshot). Cells are trained once a library is big enough to need them and
retrained each time it has doubled since.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import cache

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import ThreadpoolController

from engine.errors import LibraryError

NDIM = 128
_BATCH = 65536
_TRAIN_ROUNDS = 10
_MAX_CELLS = 4096
_MIN_CELLS = 16
_DISTANCE_BLOCK = 1 << 25  # floats in one block of probe-to-centroid distances while assigning


def squared_distances(vectors: NDArray[np.float32], query: NDArray[np.float32]) -> NDArray[np.float32]:
    """Exact squared euclidean distances in float32 (the one function every ranking uses)."""
    diff = vectors.astype(np.float32, copy=False) - query.astype(np.float32, copy=False)
    out: NDArray[np.float32] = np.einsum("ij,ij->i", diff, diff, dtype=np.float32)
    return out


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager[object]:
    """Hold OpenBLAS to one thread for the cell scan that runs beside the graph's search.

    On two threads OpenBLAS splits even a 1,024 x 128 product, and its helper thread keeps
    spinning after it, taking a core from the graph's search thread: at 1M templates on 2 cores
    3-25 of 1,000 searches took over 3 ms (up to 29 ms) and p99 was 2.0-5.1 ms; on one thread
    at most 1 did and p99 was 1.3-1.6 ms. numpy's own loop (``einsum``) avoids BLAS too but keeps the
    GIL, so the graph's search could not start until the scan ended (about the mean, ef 128:
    p99 2.9-3.6 ms against 2.1-2.5 ms). Costs 6 microseconds a search.
    """
    limited: AbstractContextManager[object] = _blas().limit(limits=1, user_api="blas")
    return limited


def cell_count(size: int, cell_size: int) -> int:
    """How many cells ``size`` templates get: a power of two near ``size / cell_size``, or 0 (too few to need cells)."""
    if cell_size <= 0 or size < _MIN_CELLS * cell_size:
        return 0
    return int(min(_MAX_CELLS, 1 << round(float(np.log2(size / cell_size)))))


def assign_cells(vectors: NDArray[np.float32], centroids: NDArray[np.float32]) -> NDArray[np.int32]:
    """The nearest centroid of each vector (by |c|^2 - 2 x.c, in blocks of bounded memory)."""
    norms = np.einsum("ij,ij->i", centroids, centroids)
    out = np.empty(len(vectors), dtype=np.int32)
    step = max(1024, _DISTANCE_BLOCK // max(1, len(centroids)))
    for start in range(0, len(vectors), step):
        block = vectors[start : start + step]
        out[start : start + len(block)] = np.argmin(norms[None, :] - 2.0 * (block @ centroids.T), axis=1)
    return out


def train_centroids(vectors: NDArray[np.float32], cells: int, seed: int) -> NDArray[np.float32]:
    """k-means (Lloyd, seeded: a rebuild repeats) on a sample of 32 templates per cell."""
    rng = np.random.default_rng(seed)
    sample_size = min(len(vectors), 32 * cells)
    sample = vectors[np.sort(rng.choice(len(vectors), sample_size, replace=False))]
    centroids = sample[rng.choice(sample_size, cells, replace=False)].copy()
    for _ in range(_TRAIN_ROUNDS):
        labels = assign_cells(sample, centroids)
        counts = np.bincount(labels, minlength=cells)
        filled = counts > 0
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))[filled]
        sums = np.add.reduceat(sample[np.argsort(labels, kind="stable")], starts, axis=0)
        centroids[filled] = sums / counts[filled, None]
        if not bool(filled.all()):  # an empty cell starts again from a random template
            centroids[~filled] = sample[rng.choice(sample_size, int((~filled).sum()), replace=False)]
    return centroids.astype(np.float32)


class ExactVectors:
    """The float32 templates an index holds, cell by cell: what search ranks with.

    The graph's bfloat16 copies only choose candidates; the distances and the order the
    officer sees come from these, and each final candidate is checked byte for byte against
    its database row.
    """

    def __init__(self, cell_size: int = 1024) -> None:
        self.cell_size = cell_size
        self.keys: NDArray[np.uint64] = np.zeros(0, np.uint64)
        self.vectors: NDArray[np.float32] = np.zeros((0, NDIM), np.float32)
        self.centroids: NDArray[np.float32] = np.zeros((0, NDIM), np.float32)
        self.bounds: NDArray[np.int64] = np.zeros(1, np.int64)  # rows before bounds[-1] are grouped by cell
        self.tail_cells: NDArray[np.int32] = np.zeros(0, np.int32)  # with cells: the cell of each row after them
        self.trained_at = 0
        self._lookup()

    @classmethod
    def restored(
        cls,
        keys: NDArray[np.uint64],
        vectors: NDArray[np.float32],
        centroids: NDArray[np.float32],
        bounds: NDArray[np.int64],
        cell_size: int,
    ) -> ExactVectors:
        """Templates grouped as a snapshot holds them (the arrays are kept, not copied); ValueError if inconsistent."""
        n = len(keys)
        if vectors.shape != (n, NDIM) or centroids.shape[1:] != (NDIM,) or bounds.shape != (len(centroids) + 1,):
            raise ValueError("its templates and cells have inconsistent shapes")
        if len(centroids) and (bounds[0] != 0 or bounds[-1] != n or bool(np.any(np.diff(bounds) < 0))):
            raise ValueError("its cell bounds do not cover its templates")
        if not bool(np.all(np.isfinite(centroids))):
            raise ValueError("its cell centroids are not finite")
        exact = cls(cell_size)
        exact.keys, exact.vectors, exact.centroids = keys, vectors, centroids
        exact.bounds = bounds.astype(np.int64)
        exact.trained_at = n if len(centroids) else 0
        exact._lookup()
        if n > 1 and bool(np.any(exact._sorted[1:] == exact._sorted[:-1])):
            raise ValueError("it holds a template twice")
        return exact

    def __len__(self) -> int:
        return int(self.keys.size)

    def frozen(self) -> ExactVectors:
        """This store as it is now, sharing its arrays (nothing copied), to read without the index lock.

        Changes replace the arrays rather than write into them, so the twin keeps its state; the
        one exception is a restored store's decrypted snapshot, wiped when the index changes or is
        reset: check ``same_as`` afterwards and discard what was read if it fails.
        """
        twin = ExactVectors.__new__(ExactVectors)
        twin.__dict__.update(self.__dict__)
        return twin

    def same_as(self, twin: ExactVectors) -> bool:
        """Whether nothing has changed since ``twin = self.frozen()``."""
        return self.keys is twin.keys and self.vectors is twin.vectors

    @property
    def sorted_keys(self) -> NDArray[np.uint64]:
        """The template ids held, ascending."""
        return self._sorted

    def _lookup(self) -> None:
        self._by_key = np.argsort(self.keys, kind="stable")
        self._sorted = self.keys[self._by_key]
        self._centroid_norms = np.einsum("ij,ij->i", self.centroids, self.centroids)
        self._norms = np.einsum("ij,ij->i", self.vectors, self.vectors)
        self._max_norm = float(self._norms.max()) if self._norms.size else 0.0

    # ---- changing --------------------------------------------------------------------------------

    def add(self, ids: NDArray[np.uint64], vectors: NDArray[np.float32]) -> None:
        """Hold ``vectors`` (rows of ``ids``) at the tail; regroup or retrain the cells when due."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.asarray(ids, dtype=np.uint64)
        ordered = np.sort(ids)
        if bool(np.any(ordered[1:] == ordered[:-1])) or self.holds_any(ids):
            raise LibraryError("a template is already in the index: rebuild the index from the database")
        if len(self.centroids):
            self.tail_cells = np.concatenate([self.tail_cells, assign_cells(vectors, self.centroids)])
        if not self.keys.size:  # a rebuild: no second copy of up to 5 GiB
            self.keys, self.vectors = ids, vectors
        else:
            self.keys, self.vectors = np.concatenate([self.keys, ids]), np.concatenate([self.vectors, vectors])
        wanted = cell_count(len(self), self.cell_size)
        if wanted and (not len(self.centroids) or len(self) >= 2 * self.trained_at):
            self.train(wanted)
        elif self.tail_cells.size > max(_BATCH, len(self) // 8):
            self.regroup()
        else:
            self._lookup()

    def own(self, buffer: NDArray[np.uint8]) -> None:
        """Copy each array held that lies in ``buffer`` (a decrypted snapshot about to be wiped) out of it."""
        for name in ("keys", "vectors", "centroids"):
            held = getattr(self, name)
            if np.may_share_memory(held, buffer):
                setattr(self, name, held.copy())

    def train(self, cells: int) -> None:
        """k-means centroids for ``cells`` cells from the templates held, then every row regrouped under them."""
        self.centroids = train_centroids(self.vectors, cells, seed=len(self))
        self.bounds = np.zeros(cells + 1, np.int64)  # every row in the tail until regrouped
        self.tail_cells = assign_cells(self.vectors, self.centroids)
        self.trained_at = len(self)
        self.regroup()

    def regroup(self) -> None:
        """Move the tail into place: rows cell by cell, each cell in template id order (one copy of the templates)."""
        if not len(self.centroids):
            self._lookup()
            return
        grouped = np.repeat(np.arange(len(self.centroids), dtype=np.int32), np.diff(self.bounds))
        labels = np.concatenate([grouped, self.tail_cells])
        order = np.lexsort((self.keys, labels))
        self.keys, self.vectors = self.keys[order], self.vectors[order]
        self.bounds = np.searchsorted(labels[order], np.arange(len(self.centroids) + 1)).astype(np.int64)
        self.tail_cells = np.zeros(0, np.int32)
        self._lookup()

    def clear(self) -> None:
        self.__init__(self.cell_size)  # type: ignore[misc]

    # ---- reading ---------------------------------------------------------------------------------

    def _find(self, keys: NDArray[np.uint64]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        keys = np.asarray(keys, dtype=np.uint64)
        if not self._sorted.size:
            return np.zeros(keys.size, np.int64), np.zeros(keys.size, bool)
        at = np.minimum(np.searchsorted(self._sorted, keys), self._sorted.size - 1)
        return at, self._sorted[at] == keys

    def holds_any(self, keys: NDArray[np.uint64]) -> bool:
        return bool(self._find(keys)[1].any())

    def positions(self, keys: NDArray[np.uint64]) -> NDArray[np.int64] | None:
        """Rows of ``keys`` in that order, or None if any is not held."""
        at, held = self._find(keys)
        if not bool(held.all()):
            return None
        rows: NDArray[np.int64] = self._by_key[at]
        return rows

    def take(self, keys: NDArray[np.uint64]) -> NDArray[np.float32] | None:
        """The templates of ``keys`` in that order, or None if any is not held."""
        rows = self.positions(keys)
        return None if rows is None else self.vectors[rows]

    def scan(self, query: NDArray[np.float32], cells: int, count: int) -> NDArray[np.int64]:
        """Rows of the ``cells`` cells nearest ``query`` that may be among the ``count`` nearest there.

        Each cell is shortlisted in place with one matrix-vector product (``|x|^2 - 2 x.q``, which
        float32 gets wrong by far less than ``margin``), so the exact ``count`` nearest templates
        of those cells are always among the rows returned; ``ranked`` measures them exactly.
        """
        probed = min(cells, len(self.centroids))
        if not probed:
            return np.zeros(0, np.int64)
        if probed == len(self.centroids):
            near = np.arange(probed)
        else:
            to_centroid = self._centroid_norms - 2.0 * (self.centroids @ query)
            near = np.argpartition(to_centroid, probed - 1)[:probed]
        spans, approx = [], []
        for cell in near:
            start, end = int(self.bounds[cell]), int(self.bounds[cell + 1])
            spans.append(np.arange(start, end))
            approx.append(self._norms[start:end] - 2.0 * (self.vectors[start:end] @ query))
        if self.tail_cells.size:
            chosen = np.zeros(len(self.centroids), bool)
            chosen[near] = True
            tail = np.flatnonzero(chosen[self.tail_cells]) + int(self.bounds[-1])
            spans.append(tail)
            approx.append(self._norms[tail] - 2.0 * (self.vectors[tail] @ query))
        rows = np.concatenate(spans)
        if rows.size > count:
            scores = np.concatenate(approx)
            margin = 1e-4 * (1.0 + self._max_norm + float(query @ query))
            rows = rows[scores <= np.partition(scores, count - 1)[count - 1] + margin]
        return rows

    def ranked(
        self, query: NDArray[np.float32], rows: NDArray[np.int64], count: int
    ) -> tuple[NDArray[np.uint64], NDArray[np.float32], NDArray[np.float32]]:
        """The ``count`` nearest of ``rows`` (a row may be given twice) measured exactly in float32.

        Returns (keys, vectors, squared distances), nearest first, ties by template id.
        """
        rows = np.unique(rows)
        vectors = self.vectors[rows]
        d2 = squared_distances(vectors, query)
        order = np.lexsort((self.keys[rows], d2))[:count]
        return self.keys[rows[order]], vectors[order], d2[order]

    def nearest(
        self, query: NDArray[np.float32], count: int
    ) -> tuple[NDArray[np.uint64], NDArray[np.float32], NDArray[np.float32]]:
        """Every held template compared with ``query``: the ``count`` nearest (keys, vectors, squared distances)."""
        return self.ranked(query, self.nearest_rows(query[None, :], count)[0], count)

    def nearest_rows(self, queries: NDArray[np.float32], count: int) -> list[NDArray[np.int64]]:
        """For each of ``queries`` (one per row) the rows of its ``count`` nearest templates, by
        comparing it with every template: nearest first, ties by template id.

        Blocks of templates are shortlisted for all queries at once with one matrix product
        (``|x|^2 - 2 x.q`` within ``margin``, as ``scan`` does) and the shortlist measured exactly.
        """
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        best = [np.zeros(0, np.int64) for _ in queries]
        best_d2 = [np.zeros(0, np.float32) for _ in queries]
        if count <= 0 or not len(self):
            return best
        margins = 1e-4 * (1.0 + self._max_norm + np.einsum("ij,ij->i", queries, queries))
        step = max(4 * count, _DISTANCE_BLOCK // max(1, len(queries)))
        for start in range(0, len(self), step):
            block = self.vectors[start : start + step]
            approx = self._norms[start : start + len(block)][None, :] - 2.0 * (queries @ block.T)
            short = len(block) > count
            if short:
                limits = np.partition(approx, count - 1, axis=1)[:, count - 1] + margins
            for i, query in enumerate(queries):
                new = np.flatnonzero(approx[i] <= limits[i]) if short else np.arange(len(block))
                rows = np.concatenate([best[i], new + start])
                d2 = np.concatenate([best_d2[i], squared_distances(self.vectors[new + start], query)])
                keep = np.lexsort((self.keys[rows], d2))[:count]
                best[i], best_d2[i] = rows[keep], d2[keep]
        return best
