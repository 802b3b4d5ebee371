"""Search latency while a library's index snapshot is saved (encrypted and written) in another thread.

A save used to hold the index lock from start to end, so every search waited for it; now the
lock is held only while the index's state is taken (the graph serialised, the exact templates
referenced). Synthetic clustered vectors (not biometric data), SQLCipher rows, the product's
``IndexSet`` with the default profile; figures in docs/benchmarks.md.

  python scripts/bench_save_while_searching.py --templates 1000000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))


def summary(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000.0
    p50, p99 = np.percentile(ms, [50, 99])
    return f"{len(ms)} searches, p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {ms.max():.1f} ms"


def main() -> int:
    from bench_library import MODEL, insert_templates

    from engine.audit import AuditSigningKey
    from engine.library.index import IndexSet, index_profile
    from engine.library.store import create_library
    from engine.security.keys import WorkspaceKey
    from engine.workspace import Workspace

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--templates", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    centres = rng.normal(0, 0.09, size=(max(1, args.templates // 4), 128))
    data = centres[rng.integers(0, len(centres), args.templates)] + rng.normal(0, 0.03, size=(args.templates, 128))
    data = data.astype(np.float32)
    probes = data[rng.integers(0, args.templates, 2000)] + np.float32(0.01)
    with tempfile.TemporaryDirectory(prefix="rfr-bench-save-") as folder:
        ws = Workspace.create(Path(folder) / "ws", WorkspaceKey.generate(), audit_key=AuditSigningKey.generate())
        library = create_library(ws, "bench", "substantive", created_by="bench")
        insert_templates(ws, library, data)
        indexes = IndexSet(ws, *MODEL, settings=index_profile())
        started = time.perf_counter()
        indexes.get(library)  # built from the database and saved
        print(f"{args.templates:,} templates: built and saved in {time.perf_counter() - started:.1f} s")
        quiet: list[float] = []
        for probe in probes[:500]:
            started = time.perf_counter()
            indexes.search(probe, [library], 50)
            quiet.append(time.perf_counter() - started)
        saved = threading.Event()
        took: dict[str, float] = {}
        loaded = indexes.get(library)
        take_state = loaded.snapshot_parts

        def timed_state() -> tuple[list[memoryview], bytearray]:  # what the save does under the index lock
            started = time.perf_counter()
            try:
                return take_state()
            finally:
                took["state"] = time.perf_counter() - started

        loaded.snapshot_parts = timed_state  # type: ignore[method-assign]

        def save() -> None:
            started = time.perf_counter()
            indexes.save(library)
            took["save"] = time.perf_counter() - started
            saved.set()

        saver = threading.Thread(target=save)
        saver.start()
        during: list[float] = []
        while not saved.is_set():
            started = time.perf_counter()
            indexes.search(probes[len(during) % len(probes)], [library], 50)
            during.append(time.perf_counter() - started)
        saver.join()
        indexes.close()
        ws.close()
    print(f"save: {took['save']:.2f} s, of which the state taken (graph serialised) {took['state']:.2f} s")
    print(f"searches during the save: {summary(during)}")
    print(f"searches before it:       {summary(quiet)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
