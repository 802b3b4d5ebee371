"""Library administration as people do it: each action by a signed-in engineer, checked and audited.

Engineers create, enrol, delete and measure Permitted Image Reference Libraries; auditors read
their composition; anyone signed in sees their names and sizes (the Submission Form offers
them). Nobody searches a library here: the one way to search is an approved case
(``engine.casework``). What the terminal does by itself under the policy (destroying a
temporary library whose authorisation lapsed) is recorded as ``system``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import LibraryError
from engine.library.check import DEFAULT_QUERIES, DEFAULT_TARGET, IndexCheck, IndexTuning, check_index, tune_index
from engine.library.enrol import EnrolmentReport, EnrolProgress, FaceAnalyzer, enroll_directory
from engine.library.index import IndexSet
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
    purge_expired,
    require_usable,
)
from engine.policy import Policy
from engine.security.users import Role

if TYPE_CHECKING:
    from engine.security.users import Accounts, Session, User
    from engine.workspace import Workspace

MAX_REASON = 2000


@dataclass(frozen=True)
class LibraryInfo:
    """A library with its sizes, as listed to anyone signed in."""

    library: Library
    subjects: int
    images: int
    templates: int

    def to_json(self) -> dict[str, Any]:
        return {**self.library.to_json(), "subjects": self.subjects, "images": self.images, "templates": self.templates}


@dataclass(frozen=True)
class IndexHealth:
    """What the terminal measured of one library's index: the search expansion in force and the last check."""

    library: str
    kind: str
    templates: int
    profile: str
    expansion: int
    expansion_source: str
    last_check: dict[str, Any] | None  # the details of the last library.index_checked event, and when
    last_checked_at: str | None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Libraries:
    """The Permitted Image Reference Libraries of one terminal, administered by named engineers."""

    def __init__(
        self,
        ws: Workspace,
        accounts: Accounts,
        policy: Policy,
        faces: Callable[[], FaceAnalyzer],
        identity: Callable[[], tuple[str, str]],
    ) -> None:
        self._ws = ws
        self._accounts = accounts
        self._policy = policy
        self._faces = faces
        self._identity = identity
        self._notices: list[str] = []
        self._notices_lock = threading.Lock()

    # ---- who may --------------------------------------------------------------------------------

    def _engineer(self, session: Session, doing: str) -> User:
        return self._accounts.require_any(session, doing, Role.ENGINEER)

    # ---- the index ------------------------------------------------------------------------------

    def indexes(self) -> IndexSet:
        """The workspace's in-memory indexes for the face model in use."""
        model_id, model_sha256 = self._identity()
        return indexes_for(self._ws, model_id, model_sha256, notify=self._notice)

    def _notice(self, message: str) -> None:
        with self._notices_lock:
            self._notices.append(message)

    def notices(self) -> list[str]:
        """What the index told people since last asked (a rebuild, a measurement lapsed), oldest first."""
        with self._notices_lock:
            out, self._notices = self._notices, []
        return out

    # ---- reading --------------------------------------------------------------------------------

    def sizes(self) -> list[tuple[str, str, int, int]]:
        """(name, kind, subjects, images) of every library: counts only, for the status bar."""
        rows = self._ws.query(
            "SELECT l.name, l.kind, (SELECT count(*) FROM subjects s WHERE s.library_id = l.id), "
            "(SELECT count(*) FROM images i WHERE i.library_id = l.id) FROM libraries l ORDER BY l.name"
        )
        return [(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]

    def listing(self, session: Session) -> list[LibraryInfo]:
        """Every library with its sizes (anyone signed in: the Submission Form names them)."""
        self._accounts.check(session)
        return [self._info(lib) for lib in list_libraries(self._ws)]

    def _info(self, lib: Library) -> LibraryInfo:
        counts = library_counts(self._ws, lib)
        return LibraryInfo(lib, counts["subjects"], counts["images"], counts["templates"])

    def get(self, name: str) -> Library:
        return get_library(self._ws, name)

    def composition(self, session: Session, names: Sequence[str] | None = None) -> list[Composition]:
        """Counts by sex, IC code and age range (engineers and auditors: the policy's monitoring)."""
        self._accounts.require_any(session, "reading library composition", Role.ENGINEER, Role.AUDITOR)
        libraries = [get_library(self._ws, n) for n in names] if names else list_libraries(self._ws)
        return [composition(self._ws, lib) for lib in libraries]

    def health(self, session: Session) -> list[IndexHealth]:
        """Each library index's search expansion and its last measured recall (engineers), from the records only."""
        from engine.audit._encoding import canonical_json
        from engine.library.index import SearchExpansion, profile_name

        self._engineer(session, "reading index health")
        indexes = self.indexes()
        out = []
        for lib in list_libraries(self._ws):
            counts = library_counts(self._ws, lib)
            tuning = indexes.tuning(lib)
            default = indexes.settings.expansion_search
            if tuning is None:
                expansion = SearchExpansion(default)
            elif tuning.holds_for(counts["templates"]):
                expansion = SearchExpansion(tuning.expansion_search, measured=tuning)
            else:
                expansion = SearchExpansion(default, lapsed=tuning)
            row = self._ws.query_one(
                "SELECT at, details FROM audit_events WHERE action = 'library.index_checked' AND subjects = ? "
                "ORDER BY seq DESC LIMIT 1",
                (canonical_json({"library": lib.id}),),
            )
            out.append(
                IndexHealth(
                    library=lib.name,
                    kind=lib.kind.value,
                    templates=counts["templates"],
                    profile=profile_name(indexes.settings),
                    expansion=expansion.value,
                    expansion_source=expansion.describe(),
                    last_check=None if row is None else json.loads(row[1]),
                    last_checked_at=None if row is None else str(row[0]),
                )
            )
        return out

    # ---- administration -------------------------------------------------------------------------

    def create(
        self,
        session: Session,
        name: str,
        kind: LibraryKind | str,
        *,
        authorisation: str | None = None,
        expires_at: datetime | None = None,
        description: str = "",
    ) -> Library:
        engineer = self._engineer(session, "creating a library")
        return create_library(
            self._ws,
            name,
            kind,
            authorisation=authorisation,
            expires_at=expires_at,
            description=description,
            created_by=engineer.username,
        )

    def enrol(
        self,
        session: Session,
        name: str,
        directory: Path,
        *,
        metadata: Path | None = None,
        progress: Callable[[EnrolProgress], None] | None = None,
        cancel: threading.Event | None = None,
        upsample: int = 0,
    ) -> EnrolmentReport:
        """Enrol a folder of reference images (one subfolder per subject) into a library."""
        engineer = self._engineer(session, "enrolling images")
        lib = get_library(self._ws, name)
        require_usable(self._ws, lib)
        engine = self._faces()
        indexes = indexes_for(self._ws, engine.model_id, engine.model_sha256, notify=self._notice)
        return enroll_directory(
            self._ws,
            lib,
            directory,
            engine,
            metadata=metadata,
            progress=progress,
            cancel=cancel,
            added_by=engineer.username,
            upsample=upsample,
            indexes=indexes,
        )

    def delete(self, session: Session, name: str, reason: str) -> PurgeRecord:
        """Destroy a library and everything in it now, recording who and why."""
        engineer = self._engineer(session, "deleting a library")
        text = " ".join(reason.split())
        if not text:
            raise LibraryError("deleting a library needs the reason (--reason TEXT); it is recorded")
        if len(text) > MAX_REASON:
            raise LibraryError(f"the reason is longer than {MAX_REASON} characters")
        return delete_library(self._ws, name, engineer.username, text)

    def measure(
        self,
        session: Session,
        names: Sequence[str] | None = None,
        *,
        queries: int = DEFAULT_QUERIES,
        top_k: int = 50,
        tune: bool = False,
        target: float = DEFAULT_TARGET,
    ) -> list[IndexCheck] | list[IndexTuning]:
        """Measure each library index's recall and search time here (``tune``: and keep a new expansion)."""
        engineer = self._engineer(session, "measuring library indexes")
        indexes = self.indexes()
        libraries = self._held(indexes, names)
        if tune:
            return [
                tune_index(indexes, lib, target=target, queries=queries, top_k=top_k, actor=engineer.username)
                for lib in libraries
            ]
        return [check_index(indexes, lib, queries=queries, top_k=top_k, actor=engineer.username) for lib in libraries]

    def _held(self, indexes: IndexSet, names: Sequence[str] | None) -> list[Library]:
        """The libraries named (each usable and holding templates of the model), or every one holding any."""
        chosen = [get_library(self._ws, n) for n in names] if names else list_libraries(self._ws)
        held = []
        for lib in chosen:
            require_usable(self._ws, lib)
            if len(indexes.get(lib)):
                held.append(lib)
            elif names:
                raise LibraryError(
                    f"library {lib.name!r} has no templates made with face model {indexes.model_id}: enrol it first"
                )
        if not held:
            raise LibraryError("there is no library with templates to measure: create one and enrol images first")
        return held

    # ---- the policy, applied by the terminal ------------------------------------------------------

    def purge_expired(self) -> list[PurgeRecord]:
        """Destroy every temporary library whose authorisation has lapsed (actor: system)."""
        return purge_expired(self._ws)
