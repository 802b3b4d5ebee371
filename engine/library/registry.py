"""Each open workspace's shared in-memory indexes: loaded once, measured by the terminal, dropped with it.

Kept apart from ``engine.library.index`` so that the index does not import the check built on it
(``engine.library.check``): this module sits above both, and hands the check's measurement to
each shared ``IndexSet`` as its tuner.
"""

from __future__ import annotations

import threading
import weakref

from engine.library.check import automatic_tuning
from engine.library.index import TUNE_FROM, IndexSet, Notify, index_profile
from engine.library.store import on_library_destroyed
from engine.workspace import Workspace

_sets: weakref.WeakKeyDictionary[Workspace, dict[str, IndexSet]] = weakref.WeakKeyDictionary()
_sets_lock = threading.Lock()


def indexes_for(ws: Workspace, model_id: str, model_sha256: str, *, notify: Notify | None = None) -> IndexSet:
    """The workspace's shared ``IndexSet`` for a face model (indexes are loaded once per open workspace)."""
    with _sets_lock:
        per_ws = _sets.get(ws)
        if per_ws is None:
            per_ws = _sets[ws] = {}
            ws.on_close(lambda: _close_all(per_ws))
        found = per_ws.get(model_sha256.lower())
        if found is None:
            found = per_ws[model_sha256.lower()] = IndexSet(
                ws,
                model_id,
                model_sha256,
                settings=index_profile(),
                notify=notify,
                tune_from=TUNE_FROM,
                tuner=automatic_tuning,
            )
        elif notify is not None:
            found.notify = notify
        return found


def _close_all(per_ws: dict[str, IndexSet]) -> None:
    for index_set in per_ws.values():
        index_set.close()
    per_ws.clear()


def _on_destroyed(ws: Workspace, library_id: int) -> None:
    for index_set in (_sets.get(ws) or {}).values():
        index_set.drop(library_id)


on_library_destroyed(_on_destroyed)
