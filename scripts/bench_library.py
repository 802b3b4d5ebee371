"""Benchmark the encrypted library and its vector index at 100k, 1M and 10M templates.

Each (population, size) runs in its own process, so peak memory is that run's alone, and goes
through the product's own code: templates are written to an encrypted workspace (SQLCipher),
the usearch index is built from the database and saved as an encrypted chunked snapshot, the
workspace is reopened and the index restored and checked against the database, and searches
go through ``IndexSet.search`` (approximate search, exact float32 re-ranking, database check).

``--index-only`` (for 10M, where 10M SQLCipher rows would not fit the time) skips the template
rows: the index is built from the array with the product's ``LibraryIndex.add``, saved with
``write_snapshot``, opened with ``read_snapshot`` + ``restore_index`` and searched with
``IndexSet.rank``; the database read and the final-candidate check are then not measured.

Populations:
  rotated  real face templates (``--templates FILE``, encrypted, made with ``--make-templates``)
           rotated by random orthogonal matrices (``--rotate-about origin``, as the issue
           prescribes, or ``mean``, harder: see ``make_data``): each rotation is a new
           synthetic population with the same geometry as real templates. Queries are held-out
           real templates (people with other images in the set), rotated like one population.
  random   random unit vectors: a pathological worst case for graph indexes, reported for honesty.

Settings: the terminal's (its index profile, ``RFR_INDEX_PROFILE`` or ``DEFAULT_PROFILE``, and from
``TUNE_FROM`` templates the search expansion it measures on the library itself, as the terminal does
when it loads one); ``--profile``, ``--no-tune`` and the settings switches change them.

Baseline: numpy brute force (``np.linalg.norm(X - q, axis=1)`` then the top 50), what
``face_recognition`` users do. Recall@K is measured against exact float32 search.

Reproduce (figures in docs/benchmarks.md; templates are biometric data: keep them in /tmp, delete after):
  python scripts/bench_library.py --make-templates /tmp/rfr_bench/lfw_templates.sealed      # ~15 min, once
  python scripts/bench_library.py --templates /tmp/rfr_bench/lfw_templates.sealed --rotate-about origin \
      --sizes 100000 1000000 --search-nice -10 --brute-queries 20
  python scripts/bench_library.py --templates /tmp/rfr_bench/lfw_templates.sealed --rotate-about origin \
      --populations rotated --sizes 10000000 --index-only --queries 500 --brute-queries 5 --search-nice -10
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODEL = ("bench-synthetic-population", hashlib.sha256(b"bench-synthetic-population").hexdigest())
HELD_OUT = 1000
TEMPLATES_MAGIC = b"RFR-BENCH-TEMPLATES-1\n"
TEMPLATES_LABEL = "bench-templates"


def random_orthogonal(rng: np.random.Generator, n: int = 128) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def make_data(
    kind: str, size: int, templates: Path | None, queries: int, seed: int, about: str = "mean"
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "random":
        data = rng.normal(size=(size, 128)).astype(np.float32)
        data /= np.linalg.norm(data, axis=1, keepdims=True)
        probes = rng.normal(size=(queries, 128)).astype(np.float32)
        return data, probes / np.linalg.norm(probes, axis=1, keepdims=True)
    if templates is None:
        raise SystemExit("--templates FILE is needed for the rotated population (see --make-templates)")
    real, names = open_templates(templates)
    # hold out images of people who have other images in the set
    _, inverse, counts = np.unique(names, return_inverse=True, return_counts=True)
    eligible = np.flatnonzero(counts[inverse] >= 2)
    held = rng.choice(eligible, size=min(HELD_OUT, len(eligible) // 2), replace=False)
    base = np.delete(real, held, axis=0)
    # About the mean, every population overlaps the others like more people from the same distribution;
    # about the origin (x @ Q), populations land far apart (mean norm 1.3 vs spread 0.58) and search is easier.
    mean = base.mean(axis=0) if about == "mean" else np.zeros(128, dtype=np.float32)
    populations = -(-size // len(base))
    rotations = [random_orthogonal(rng) for _ in range(populations)]
    data = np.empty((size, 128), dtype=np.float32)
    for p, rotation in enumerate(rotations):
        start = p * len(base)
        end = min(size, start + len(base))
        data[start:end] = (base[: end - start] - mean) @ rotation + mean
    picks = rng.integers(0, len(held), size=queries)
    which = rng.integers(0, populations, size=queries)
    probes = np.stack([(real[held[i]] - mean) @ rotations[p] + mean for i, p in zip(picks, which, strict=True)])
    return data, probes.astype(np.float32)


def exact_top(data: np.ndarray, probes: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k row numbers by float32 squared euclidean distance (ties by row): the product's own
    exhaustive search (``ExactVectors.nearest_rows``) over the rows as they are (no cells, no copy)."""
    from engine.library.exact import ExactVectors

    store = ExactVectors(cell_size=0)
    store.add(np.arange(len(data), dtype=np.uint64), data)
    return np.stack(store.nearest_rows(probes, k))


def insert_templates(ws: Any, library: Any, data: np.ndarray, batch: int = 20000) -> np.ndarray:
    from engine.library.store import ensure_model

    ids = np.empty(len(data), dtype=np.int64)
    with ws.transaction() as conn:
        model_ref = ensure_model(conn, *MODEL)
    for start in range(0, len(data), batch):
        chunk = np.ascontiguousarray(data[start : start + batch], dtype="<f4")
        with ws.transaction() as conn:
            for i, vector in enumerate(chunk):
                n = start + i
                subject = conn.execute(
                    "INSERT INTO subjects (library_id, reference, created_at) VALUES (?, ?, 'bench')",
                    (library.id, f"S{n:08d}"),
                ).lastrowid
                image = conn.execute(
                    "INSERT INTO images (library_id, subject_id, sha256, media_type, byte_length, width, height,"
                    " source, added_at) VALUES (?, ?, ?, 'image/jpeg', 0, 0, 0, 'bench', 'bench')",
                    (library.id, subject, hashlib.sha256(n.to_bytes(8, "little")).digest()),
                ).lastrowid
                blob = vector.tobytes()
                ids[n] = conn.execute(
                    "INSERT INTO templates (image_id, library_id, model_ref, vector, vector_sha256, face_box,"
                    " created_at) VALUES (?, ?, ?, ?, ?, '[]', 'bench')",
                    (image, library.id, model_ref, blob, hashlib.sha256(blob).digest()),
                ).lastrowid
    return ids


def operating_threshold() -> float:
    """The policy's calibrated operating threshold for the product's face model (the rotated
    populations keep real templates' distances, so it means there what it means for real faces)."""
    from engine.faces.pipeline import model_identity
    from engine.policy import load_default_policy
    from engine.scoring import meaning_for_model

    meaning = meaning_for_model(load_default_policy(), *model_identity())
    if meaning is None:
        raise SystemExit("the installed calibration is not for the product's face model: run make models")
    return meaning.threshold


def within_threshold_found(found_rows: list[np.ndarray], truth_within: list[set[int]]) -> dict[str, Any]:
    """Of the exact top-k candidates within the operating threshold, how many the index returned,
    and how many queries lost at least one of them."""
    missed = [len(want - set(found.tolist())) for found, want in zip(found_rows, truth_within, strict=True)]
    total = sum(map(len, truth_within))
    return {
        "within_threshold_recall": 1.0 - sum(missed) / total if total else None,
        "within_threshold_missed": sum(missed),
        "queries_missing_within_threshold": sum(m > 0 for m in missed),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    arr = np.array(values) * 1000.0
    return {"p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99))}


def pairs_of(keys: np.ndarray, data: np.ndarray) -> np.ndarray:
    """(template id, sha256 of the vector bytes) pairs, as the database's covering index would give them."""
    from engine.library.index import _PAIR

    pairs = np.empty(len(keys), dtype=_PAIR)
    pairs["id"] = keys
    blobs = np.ascontiguousarray(data, dtype="<f4")
    pairs["sha"] = [hashlib.sha256(row.tobytes()).digest() for row in blobs]
    return pairs


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_times() -> list[int]:
    """The machine's cpu line of /proc/stat (user nice system idle iowait irq softirq steal ...), in ticks."""
    with open("/proc/stat") as stat:
        return [int(x) for x in stat.readline().split()[1:]]


def stolen_share(before: list[int], after: list[int]) -> float:
    """Of the CPU time between two ``cpu_times``, the share the hypervisor gave to other guests."""
    spent = [b - a for a, b in zip(before, after, strict=True)]
    return spent[7] / max(1, sum(spent[:8]))


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    from engine.audit import AuditSigningKey
    from engine.library.check import check_index, tune_index
    from engine.library.exact import ExactVectors
    from engine.library.index import (
        INDEX_PROFILES,
        TUNE_FROM,
        IndexSet,
        IndexSettings,
        LibraryIndex,
        _new_usearch,
        restore_index,
        rows_digest,
    )
    from engine.library.snapshot import read_snapshot, snapshot_path, wipe, write_snapshot
    from engine.library.store import create_library, ensure_model
    from engine.security.keys import WorkspaceKey
    from engine.workspace import Workspace

    kind, size = args.one[0], int(args.one[1])
    result: dict[str, Any] = {"population": kind, "templates": size, "top_k": args.top, "load_start": load()}
    t = time.perf_counter()
    data, probes = make_data(kind, size, args.templates, args.queries, args.seed, args.rotate_about)
    result["make_data_s"] = time.perf_counter() - t
    if kind == "rotated":
        result["population"] = f"rotated about {args.rotate_about}"
    base = INDEX_PROFILES[args.profile]
    cells_probed = args.cells_probed or [base.cells_probed]
    expansions = args.expansions or [base.expansion_search]
    settings = IndexSettings(
        connectivity=args.connectivity or base.connectivity,
        expansion_add=args.expansion_add or base.expansion_add,
        expansion_search=expansions[0],
        oversample=base.oversample if args.oversample is None else args.oversample,
        min_extra=base.min_extra if args.min_extra is None else args.min_extra,
        threads=args.threads,
        dtype=args.dtype or base.dtype,
        cell_size=base.cell_size if args.cell_size is None else args.cell_size,
        cells_probed=cells_probed[0],
    )
    result["settings"] = {
        "profile": args.profile,  # what the settings not given on the command line came from
        "dtype": settings.dtype,
        "connectivity": settings.connectivity,
        "expansion_add": settings.expansion_add,
        "expansion_search": settings.expansion_search,
        "oversample": settings.oversample,
        "min_extra": settings.min_extra,
        "threads": settings.threads,
        "cell_size": settings.cell_size,
        "cells_probed": settings.cells_probed,
    }
    result["path"] = "index and snapshot only (no template rows)" if args.index_only else "product (SQLCipher + index)"

    workdir = Path(args.workdir) / f"ws-{kind}-{size}"
    shutil.rmtree(workdir, ignore_errors=True)
    key = WorkspaceKey.generate()
    audit_key = AuditSigningKey.generate()  # the bench's terminal key, held in memory only
    ws = Workspace.create(workdir, key, audit_key=audit_key)
    library = create_library(ws, "bench", "substantive", created_by="bench")
    if args.index_only:
        with ws.transaction() as conn:
            ensure_model(conn, *MODEL)
        ids = np.arange(1, size + 1, dtype=np.int64)
    else:
        t = time.perf_counter()
        ids = insert_templates(ws, library, data)
        result["db_insert_s"] = time.perf_counter() - t

    # Ground truth and the numpy baseline first, so the raw array can go before the index is built.
    t = time.perf_counter()
    truth = exact_top(data, probes, args.top)
    result["exact_ground_truth_s"] = time.perf_counter() - t
    # The exact candidates an officer would be shown as within the operating threshold: the ones
    # whose loss matters most (a missed Potential Match, not a missed far-off face at rank 48).
    threshold = operating_threshold()
    truth_distances = np.sqrt(np.sum((data[truth] - probes[:, None, :]) ** 2, axis=2))
    truth_within = [set(rows[d <= threshold].tolist()) for rows, d in zip(truth, truth_distances, strict=True)]
    result["operating_threshold"] = threshold
    result["within_threshold_exact"] = sum(map(len, truth_within))
    brute = []
    for probe in probes[: args.brute_queries]:
        t = time.perf_counter()
        distances = np.linalg.norm(data - probe, axis=1)
        top = np.argpartition(distances, args.top)[: args.top]
        _ = top[np.argsort(distances[top])]
        brute.append(time.perf_counter() - t)
        del distances
    result["numpy_brute_force"] = percentiles(brute)
    result["load_build"] = load()

    indexes = IndexSet(ws, *MODEL, settings=settings)
    loaded = LibraryIndex(library, indexes.model_ref(), _new_usearch(settings), ExactVectors(settings.cell_size))
    if args.index_only:
        keys = ids.astype(np.uint64)
        pairs = pairs_of(keys, data)
        t = time.perf_counter()
        loaded.add(keys, data, settings.threads)  # as IndexSet._add_from_db does with all rows
        result["build_s"] = time.perf_counter() - t
        result["cells"] = len(loaded.exact.centroids)
        del data
        result["index_memory_gib"] = loaded.index.memory_usage / 2**30
        t = time.perf_counter()
        parts, graph = loaded.snapshot_parts()
        info = write_snapshot(
            snapshot_path(ws.index_dir, library.id),
            parts,
            key_for=indexes._key_for(library),
            library_id=library.id,
            model_id=MODEL[0],
            model_sha256=MODEL[1],
            entries=size,
            digest=rows_digest(pairs),
            created_at="bench",
        )
        result["snapshot_save_s"] = time.perf_counter() - t
        wipe(graph)
        del parts, graph
    else:
        del data
        t = time.perf_counter()
        indexes._add_from_db(loaded, None)
        result["build_s"] = time.perf_counter() - t
        result["cells"] = len(loaded.exact.centroids)
        result["index_memory_gib"] = loaded.index.memory_usage / 2**30
        t = time.perf_counter()
        indexes.save_loaded(loaded)
        result["snapshot_save_s"] = time.perf_counter() - t
    result["load_after_build"] = load()
    loaded.reset()
    ws.close()
    del loaded, indexes
    result["snapshot_bytes"] = snapshot_path(workdir / "index", library.id).stat().st_size
    result["db_bytes"] = sum(p.stat().st_size for p in workdir.glob("rfr.db*"))

    t = time.perf_counter()
    ws = Workspace.open(workdir, key, audit_key=audit_key)
    result["workspace_open_s"] = time.perf_counter() - t
    notices: list[str] = []
    indexes = IndexSet(ws, *MODEL, settings=settings, notify=notices.append)
    snapshot_file = snapshot_path(ws.index_dir, library.id)
    if args.index_only:
        # What IndexSet._load does, minus reading (id, sha256) pairs from the database (there are no rows).
        t = time.perf_counter()
        info, plain = read_snapshot(snapshot_file, key_for=indexes._key_for(library), library_id=library.id)
        result["decrypt_s"] = time.perf_counter() - t
        t2 = time.perf_counter()
        loaded = restore_index(plain, settings, library, indexes.model_ref())
        del plain
        result["restore_s"] = time.perf_counter() - t2
        if len(loaded) != info.entries or rows_digest(pairs) != info.digest:
            raise SystemExit("the index did not restore cleanly")
        result["index_open_s"] = time.perf_counter() - t
        indexes._loaded[library.id] = loaded
    else:
        t = time.perf_counter()
        loaded = indexes.get(library)
        result["index_open_s"] = time.perf_counter() - t  # read, decrypt, restore, digest check against the database
        # The same steps once more, one at a time, to show where the open time goes (files now cached).
        open_parts: dict[str, float] = {}
        t = time.perf_counter()
        pairs = indexes.db_pairs(library.id, indexes.model_ref())
        open_parts["db_pairs"] = time.perf_counter() - t
        t = time.perf_counter()
        info, plain = read_snapshot(snapshot_file, key_for=indexes._key_for(library), library_id=library.id)
        open_parts["read_decrypt"] = time.perf_counter() - t
        t = time.perf_counter()
        again = restore_index(plain, settings, library, loaded.model_ref)
        open_parts["restore"] = time.perf_counter() - t
        t = time.perf_counter()
        if rows_digest(pairs) != info.digest:
            raise SystemExit("the snapshot does not match the database")
        open_parts["digest"] = time.perf_counter() - t
        result["open_parts_s"] = open_parts
        again.reset()
        del again, plain, pairs
    if len(loaded) != size or notices:
        raise SystemExit(f"the index did not restore cleanly: {notices}")
    if args.search_nice:
        os.nice(args.search_nice)  # other work (e.g. a 10M build) is sharing the cores: timed searches first
    result["search_nice"] = os.nice(0)
    result["load_search"] = load()

    def measure(expansion: int, probed: int) -> dict[str, Any]:
        indexes.settings = replace(settings, expansion_search=expansion, cells_probed=probed)
        loaded.index.expansion_search = expansion
        for probe in probes[:20]:  # warm up
            indexes.rank(probe, [library], args.top)
        ticks = cpu_times()
        found_rows: list[np.ndarray] = []
        latencies, rank_latencies, ann_latencies = [], [], []
        graph_nearest = []
        # Separate passes, so no measurement runs on caches warmed by the same probe.
        for probe in probes:
            t = time.perf_counter()
            found = loaded.index.search(probe, args.top, threads=1)
            ann_latencies.append(time.perf_counter() - t)
            graph_nearest.append(found.keys[0])
        nearest_vectors = loaded.exact.take(np.asarray(graph_nearest, dtype=np.uint64))
        assert nearest_vectors is not None
        graph_d = np.sqrt(np.einsum("ij,ij->i", nearest_vectors - probes, nearest_vectors - probes))
        for probe in probes:
            t = time.perf_counter()
            ranked = indexes.rank(probe, [library], args.top)
            rank_latencies.append(time.perf_counter() - t)
            if args.index_only:
                found_rows.append(np.searchsorted(ids, ranked.keys.astype(np.int64)))
        if not args.index_only:
            for probe in probes:
                t = time.perf_counter()
                found = indexes.search(probe, [library], args.top)
                latencies.append(time.perf_counter() - t)
                found_rows.append(np.searchsorted(ids, np.array([c.template_id for c in found], dtype=np.int64)))
        recalls = [len(set(f.tolist()) & set(e.tolist())) / args.top for f, e in zip(found_rows, truth, strict=True)]
        same = [(f, e) for f, e in zip(found_rows, truth, strict=True) if set(f.tolist()) == set(e.tolist())]
        out = {
            "expansion_search": expansion,
            "cells_probed": probed,
            "ann_only": percentiles(ann_latencies),
            "index_search": percentiles(rank_latencies),
            "recall": float(np.mean(recalls)),
            "recall_min": float(np.min(recalls)),
            "queries_below_half": int(np.sum(np.array(recalls) < 0.5)),
            # queries whose graph answer was implausibly far, so IndexSet.rank compared every template
            "exhaustive_checks": int(np.sum(graph_d > indexes.settings.verify_beyond)),
            "nearest_found": float(np.mean([f[0] == e[0] for f, e in zip(found_rows, truth, strict=True)])),
            **within_threshold_found(found_rows, truth_within),
            "exact_order_when_same_set": all(np.array_equal(f, e) for f, e in same),
            "load": load(),
            "steal": stolen_share(ticks, cpu_times()),  # a busy neighbour on the host shows here
        }
        if latencies:
            out["search_with_db"] = percentiles(latencies)
        if args.check_queries:  # what `rfr library check-index` would tell the terminal's engineer
            t = time.perf_counter()
            out["check_index"] = check_index(indexes, library, queries=args.check_queries, top_k=args.top).to_json()
            out["check_index"]["seconds"] = time.perf_counter() - t
        return out

    sweep = [(e, c) for e in expansions for c in cells_probed]
    result.update(measure(*sweep[0]))
    result["sweep"] = [measure(*point) for point in sweep[1:]]
    # What the terminal does by itself from TUNE_FROM templates (and `rfr library check-index --tune`
    # on request): measure the expansion on the library, then that expansion on the held-out queries.
    if args.tune if args.tune is not None else size >= TUNE_FROM:
        indexes.settings = replace(settings, cells_probed=cells_probed[0])
        t = time.perf_counter()
        tuned = tune_index(indexes, library, queries=args.check_queries or 200, top_k=args.top)
        result["tuning"] = {**tuned.to_json(), "seconds": time.perf_counter() - t}
        if (tuned.chosen.expansion_search, cells_probed[0]) not in sweep:
            result["sweep"].append(measure(tuned.chosen.expansion_search, cells_probed[0]))
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    ws.close()
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def make_templates(out: Path, limit: int | None) -> None:
    """Templates of LFW with the product's face engine (largest, most central face per image)."""
    if out.exists() or not out.parent.is_dir():
        raise SystemExit(f"{out}: give a new file in an existing folder (templates are never written over a file)")
    from engine.faces.image_io import load_image
    from engine.faces.pipeline import FaceEngine

    data = Path(os.environ.get("RFR_DATA", REPO.parent / "shared" / "data")) / "lfw" / "images"
    paths = sorted(data.glob("*/*.jpg"))[:limit]
    engine = FaceEngine.open(device="CPU")
    vectors, names = [], []
    started = time.monotonic()
    for n, path in enumerate(paths):
        faces = [f for f in engine.analyze(load_image(path).rgb, upsample=0, embed=True) if f.embedding is not None]
        if faces:
            face = min(faces, key=lambda f: (f.box.center[0] - 125) ** 2 + (f.box.center[1] - 125) ** 2)
            vectors.append(np.asarray(face.embedding, dtype=np.float32))
            names.append(path.parent.name)
        if n % 500 == 0:
            print(f"{n}/{len(paths)} images, {time.monotonic() - started:.0f} s", file=sys.stderr)
    seal_templates(out, np.stack(vectors), np.array(names))
    print(f"wrote {len(vectors)} templates to {out}, encrypted under RFR_PASSPHRASE")


def seal_templates(out: Path, vectors: np.ndarray, names: np.ndarray) -> None:
    """Templates are biometric data even in a benchmark: AES-256-GCM under a key from the passphrase."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from engine.security.keys import KdfSpec, WorkspaceKey, read_passphrase

    kdf = KdfSpec.new_scrypt()
    key = WorkspaceKey.from_passphrase(read_passphrase(confirm=True), kdf)
    header = json.dumps(kdf.to_json()).encode("ascii")
    plain = io.BytesIO()
    np.savez(plain, vectors=vectors.astype(np.float32), names=names.astype(str))
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(key.derive(TEMPLATES_LABEL)).encrypt(nonce, plain.getvalue(), TEMPLATES_MAGIC + header)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as sink:
        sink.write(TEMPLATES_MAGIC + struct.pack(">I", len(header)) + header + nonce + sealed)


def open_templates(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The (vectors, names) written by ``seal_templates``; the passphrase from RFR_PASSPHRASE or a prompt."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from engine.security.keys import KdfSpec, WorkspaceKey, read_passphrase

    raw = path.read_bytes()
    if not raw.startswith(TEMPLATES_MAGIC):
        raise SystemExit(f"{path} is not a template file written by --make-templates: make one with it")
    start = len(TEMPLATES_MAGIC) + 4
    (length,) = struct.unpack(">I", raw[len(TEMPLATES_MAGIC) : start])
    header = raw[start : start + length]
    key = WorkspaceKey.from_passphrase(read_passphrase(), KdfSpec.from_json(json.loads(header)))
    nonce, sealed = raw[start + length : start + length + 12], raw[start + length + 12 :]
    try:
        plain = AESGCM(key.derive(TEMPLATES_LABEL)).decrypt(nonce, sealed, TEMPLATES_MAGIC + header)
    except InvalidTag:
        raise SystemExit(
            f"{path}: wrong passphrase or a damaged file: set RFR_PASSPHRASE to the one it was made with"
        ) from None
    with np.load(io.BytesIO(plain), allow_pickle=False) as arrays:
        return arrays["vectors"], arrays["names"]


def markdown(results: list[dict[str, Any]]) -> str:
    columns = (
        "population",
        "templates",
        "path",
        "profile: graph dtype, M / ef_add / ef",
        "cells (probed)",
        "build s",
        "on disk MiB (DB + snapshot)",
        "open s (DB open + id/sha pairs + read/decrypt + restore + digest)",
        "ANN only p50/p99 ms",
        "index search p50/p99 ms",
        "with DB check p50/p99 ms",
        "recall@50 (min, <1/2)",
        "check-index recall@50 (own templates)",
        "within threshold: found of exact (queries missing any)",
        "exhaustive checks",
        "numpy brute force p50 ms",
        "peak RSS GiB",
        "load (build / search)",
    )
    rows = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]

    def p(t: dict[str, float] | None) -> str:
        return f"{t['p50_ms']:.2f} / {t['p99_ms']:.2f}" if t else "n/a"

    def opened(r: dict[str, Any]) -> str:
        total = f"{r['workspace_open_s'] + r['index_open_s']:.2f}"
        if "open_parts_s" in r:  # product path: DB open, then the index's parts timed once more
            parts = r["open_parts_s"]
            steps = [r["workspace_open_s"], *(parts[k] for k in ("db_pairs", "read_decrypt", "restore", "digest"))]
            return f"{total} ({' + '.join(f'{v:.2f}' for v in steps)})"
        if "decrypt_s" in r:
            return f"{total} ({r['decrypt_s']:.2f} + {r['restore_s']:.2f})"
        return total

    def checked(c: dict[str, Any] | None) -> str:
        if not c:
            return "n/a"
        took = f", {c['seconds']:.1f} s" if "seconds" in c else ""
        return f"{c['recall']:.4f} ({c['queries']} queries{took})"

    def within(r: dict[str, Any], m: dict[str, Any]) -> str:
        if m.get("within_threshold_recall") is None:
            return "n/a"
        exact = r["within_threshold_exact"]
        found = exact - m["within_threshold_missed"]
        return f"{found:,} of {exact:,} ({m['queries_missing_within_threshold']})"

    for r in results:
        st = r["settings"]
        for m in [r, *r.get("sweep", [])]:
            cells = (
                r["population"],
                f"{r['templates']:,}",
                "index only" if "decrypt_s" in r else "product",
                f"{st.get('profile', 'custom')}: {st.get('dtype', 'f32')}, {st['connectivity']} / "
                f"{st['expansion_add']} / {m['expansion_search']}"
                + (" (kept by tuning)" if m["expansion_search"] == r.get("tuning", {}).get("expansion_search") else ""),
                f"{r.get('cells', 0):,} ({m.get('cells_probed', 0)})",
                f"{r['build_s']:.1f}",
                f"{r['db_bytes'] / 2**20:,.0f} + {r['snapshot_bytes'] / 2**20:,.0f}",
                opened(r),
                p(m.get("ann_only")),
                p(m["index_search"]),
                p(m.get("search_with_db")),
                f"{m['recall']:.4f} ({m['recall_min']:.2f}, {m.get('queries_below_half', '?')})",
                checked(m.get("check_index")),
                within(r, m),
                str(m.get("exhaustive_checks", "n/a")),
                f"{r['numpy_brute_force']['p50_ms']:.1f}",
                f"{r['peak_rss_gib']:.1f}",
                f"{r['load_build'].split('/')[0]} / {m['load'].split('/')[0]}",
            )
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def main() -> int:
    from engine.library.index import DEFAULT_PROFILE, INDEX_PROFILES, TUNE_FROM, index_profile, profile_name

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--templates", type=Path, help="real templates, made with --make-templates (encrypted)")
    parser.add_argument(
        "--make-templates",
        type=Path,
        metavar="OUT",
        help="compute LFW templates, write them encrypted (RFR_PASSPHRASE), exit",
    )
    parser.add_argument("--limit", type=int, help="with --make-templates: only the first N images")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--populations", nargs="+", default=["rotated", "random"], choices=["rotated", "random"])
    parser.add_argument("--random-max", type=int, default=1_000_000, help="largest size for the random worst case")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--brute-queries", type=int, default=50)
    parser.add_argument("--top", type=int, default=50)
    parser.add_argument(
        "--check-queries",
        type=int,
        default=200,
        help="library templates `rfr library check-index` searches at each point of the sweep (0: skip)",
    )
    parser.add_argument(
        "--profile",
        choices=sorted(INDEX_PROFILES),
        default=None,
        help="the index profile the settings below start from (default: the terminal's, RFR_INDEX_PROFILE or "
        f"{DEFAULT_PROFILE})",
    )
    parser.add_argument(
        "--expansions", type=int, nargs="+", help="usearch expansion_search (several: a sweep; default: the profile's)"
    )
    parser.add_argument("--connectivity", type=int, help="HNSW connectivity (default: the profile's)")
    parser.add_argument("--dtype", choices=["bf16", "f16", "f32", "i8"], help="graph storage (default: the profile's)")
    parser.add_argument("--expansion-add", type=int, help="HNSW expansion on insertion (default: the profile's)")
    parser.add_argument("--oversample", type=float, help="ask the index for top * this, then re-rank")
    parser.add_argument("--min-extra", type=int, help="... and at least top + this (default: the profile's)")
    parser.add_argument("--cell-size", type=int, help="templates per cell; 0: no cells (default: the profile's)")
    parser.add_argument(
        "--cells-probed",
        type=int,
        nargs="+",
        help="nearest cells scanned beside the graph (several: a sweep, with each expansion; default: the profile's)",
    )
    parser.add_argument("--threads", type=int, default=0, help="build threads after the serial start (0: all)")
    parser.add_argument(
        "--search-nice", type=int, default=0, help="change the process's niceness before timing searches (e.g. -10)"
    )
    parser.add_argument(
        "--index-only",
        action="store_true",
        help="skip the database: build from the array, snapshot, decrypt and restore, search via IndexSet.rank",
    )
    parser.add_argument(
        "--tune",
        action=argparse.BooleanOptionalAction,
        help="run check-index --tune (its --check-queries) and measure the expansion it keeps (default: as the "
        f"terminal does, from {TUNE_FROM:,} templates)",
    )
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--rotate-about", choices=["mean", "origin"], default="mean", help="see make_data")
    parser.add_argument("--workdir", default=None, help="where the benchmark workspaces go (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark workspaces")
    parser.add_argument("--json", type=Path, help="also write all results here")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument("--one", nargs=2, metavar=("POPULATION", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.profile = args.profile or profile_name(index_profile())

    if args.make_templates:
        make_templates(args.make_templates, args.limit)
        return 0
    if args.one:
        print(json.dumps(run_one(args)))
        return 0
    workdir = args.workdir or tempfile.mkdtemp(prefix="rfr-bench-")
    Path(workdir).mkdir(mode=0o700, parents=True, exist_ok=True)
    results = []
    for population in args.populations:
        for size in args.sizes:
            if population == "random" and size > args.random_max:
                continue
            cmd = [sys.executable, __file__, "--one", population, str(size), "--workdir", workdir]
            flags = (
                "templates",
                "queries",
                "brute_queries",
                "top",
                "check_queries",
                "expansions",
                "connectivity",
                "dtype",
                "expansion_add",
                "oversample",
                "min_extra",
                "cell_size",
                "cells_probed",
                "threads",
                "search_nice",
                "seed",
                "rotate_about",
                "profile",
            )
            for flag in flags:
                value = getattr(args, flag)
                if isinstance(value, list):
                    cmd += [f"--{flag.replace('_', '-')}", *map(str, value)]
                elif value is not None:
                    cmd += [f"--{flag.replace('_', '-')}", str(value)]
            cmd += [f"--{name.replace('_', '-')}" for name in ("keep", "index_only") if getattr(args, name)]
            if args.tune is not None:
                cmd.append("--tune" if args.tune else "--no-tune")
            print(f"running {population} {size:,} ...", file=sys.stderr, flush=True)
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if out.returncode != 0:
                print(out.stderr, file=sys.stderr)
                return out.returncode
            result = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(result)
            print(json.dumps(result), file=sys.stderr, flush=True)
    table = markdown(results)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if args.markdown:
        args.markdown.write_text(table)
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
