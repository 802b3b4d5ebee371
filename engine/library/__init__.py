"""Permitted Image Reference Libraries: encrypted store, enrolment, vector index and search.

Typical use::

    ws = Workspace.unlock(directory, key_file)
    purge_expired(ws)                                   # the policy: lapsed temporary libraries go
    lib = create_library(ws, "custody", "substantive")
    enroll_directory(ws, lib, folder, face_engine)      # one subfolder per subject
    indexes = indexes_for(ws, face_engine.model_id, face_engine.model_sha256)
    candidates = indexes.search(probe_template, [lib], top_k=50)
"""

from engine.library.enrol import EnrolmentReport, EnrolProgress, FaceAnalyzer, Skipped, enroll_directory
from engine.library.index import Candidate, IndexSet, IndexSettings, score_from_distance
from engine.library.metadata import Metadata, load_metadata
from engine.library.registry import indexes_for
from engine.library.store import (
    Composition,
    Library,
    LibraryKind,
    PurgeRecord,
    composition,
    create_library,
    delete_library,
    get_library,
    library_counts,
    list_libraries,
    parse_expiry,
    purge_expired,
)

__all__ = [
    "Candidate",
    "Composition",
    "EnrolProgress",
    "EnrolmentReport",
    "FaceAnalyzer",
    "IndexSet",
    "IndexSettings",
    "Library",
    "LibraryKind",
    "Metadata",
    "PurgeRecord",
    "Skipped",
    "composition",
    "create_library",
    "delete_library",
    "enroll_directory",
    "get_library",
    "indexes_for",
    "library_counts",
    "list_libraries",
    "load_metadata",
    "parse_expiry",
    "purge_expired",
    "score_from_distance",
]
