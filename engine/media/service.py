"""Removable media as engineers use them: install the central unit's root, read a medium, apply it.

Every step is a signed-in engineer's (``--as ENGINEER`` at the command line, the media screen
in the application). Reading verifies and plans without writing anything; applying stages,
switches in one transaction (``engine.media.apply``), then brings the changed libraries'
indexes up to date and removes the staging folder. ``recover`` runs when the terminal opens:
it removes what a crash or power cut left (staging folders, model folders no package names).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import RfrError
from engine.files import read_regular_file
from engine.library.service import Libraries
from engine.library.store import get_library_by_id
from engine.media.apply import MODELS_DIR, ApplyResult, apply_staged, stage
from engine.media.fetcher import MediaRefused
from engine.media.reader import MediaProgress, MediaReading, Progress, Scope, read_medium
from engine.media.sealing import MediaKey, read_media_key_file
from engine.media.staging import sweep, sweep_folders
from engine.media.trust import MAX_ROOT_BYTES, TrustInfo, install_root, trust_info
from engine.policy import Policy
from engine.security.users import Accounts, Role, Session
from engine.workspace import Workspace

MOUNT_ROOTS = (Path("/media"), Path("/run/media"))


@dataclass(frozen=True)
class AppliedPackage:
    package_id: str
    kind: str
    description: str
    applied_at: str
    applied_by: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class MediaStatus:
    """What this terminal trusts and has applied, for engineers."""

    trust: TrustInfo | None
    force: str | None
    groups: tuple[str, ...]
    streams: tuple[tuple[str, int], ...]
    recent: tuple[AppliedPackage, ...]

    def lines(self) -> list[str]:
        if self.trust is None:
            out = ["no central unit root installed: 'rfr media trust ROOT.json --as ENGINEER'"]
        else:
            t = self.trust
            out = [
                f"root version {t.version} installed by {t.installed_by} at {t.installed_at} (sha256 {t.sha256})",
                f"newest trusted root version {t.newest_version}; time floor {t.time_floor or 'none yet'}",
            ]
        out.append(f"force {self.force or 'NOT CONFIGURED'}; terminal groups {', '.join(self.groups) or 'none'}")
        out += [f"{stream}: applied up to {sequence}" for stream, sequence in self.streams]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "trust": None if self.trust is None else self.trust.to_json(),
            "force": self.force,
            "groups": list(self.groups),
            "streams": dict(self.streams),
            "recent": [p.to_json() for p in self.recent],
        }


def media_folders(roots: tuple[Path, ...] = MOUNT_ROOTS) -> list[Path]:
    """Mounted media an engineer may choose: the folders under /media and /run/media (and one level below)."""
    found: list[Path] = []
    for root in roots:
        try:
            entries = sorted(root.iterdir())
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_symlink() or not entry.is_dir():
                    continue
                inner = sorted(e for e in entry.iterdir() if e.is_dir() and not e.is_symlink())
            except OSError:
                continue
            if (entry / "rfr-packages").is_dir() or not inner:
                found.append(entry)
            else:
                found += inner  # /media/USER/LABEL and /run/media/USER/LABEL
    return found


def recover(ws: Workspace) -> None:
    """Remove what an apply interrupted by a crash left: staging (ciphertext) and model folders never put in use."""
    sweep(ws)
    named = {str(r[0]) for r in ws.query("SELECT folder FROM media_models")}
    sweep_folders(ws.directory / MODELS_DIR, keep=named.__contains__)


def installed_models(ws: Workspace) -> Path | None:
    """The model folder the newest models package installed (the terminal loads it), or None."""
    row = ws.query_one("SELECT folder FROM media_models ORDER BY id DESC LIMIT 1")
    return None if row is None else ws.directory / MODELS_DIR / str(row[0])


class Media:
    """The terminal's removable media, handled by named engineers."""

    def __init__(
        self,
        ws: Workspace,
        accounts: Accounts,
        libraries: Libraries,
        *,
        force: str | None,
        groups: tuple[str, ...],
        media_key_file: Path | None,
        identity: Callable[[], tuple[str, str]],
        policy: Callable[[], Policy],
        adopt_policy: Callable[[Policy], None],
    ) -> None:
        self._ws = ws
        self._accounts = accounts
        self._libraries = libraries
        self.force = force
        self.groups = groups
        self._media_key_file = media_key_file
        self._identity = identity
        self._policy = policy
        self._adopt_policy = adopt_policy
        self._applying = threading.Lock()

    def _engineer(self, session: Session, doing: str) -> str:
        return self._accounts.require_any(session, doing, Role.ENGINEER).username

    def trust(self, session: Session, root_file: Path) -> TrustInfo:
        """Install the central unit's root from ``root_file`` (once per terminal; recorded)."""
        by = self._engineer(session, "installing the central unit's root")
        data = read_regular_file(root_file, limit=MAX_ROOT_BYTES, what="root metadata file", error=MediaRefused)
        return install_root(self._ws, data, by=by)

    def status(self, session: Session) -> MediaStatus:
        self._engineer(session, "reading the removable media status")
        streams = tuple((str(r[0]), int(r[1])) for r in self._ws.query("SELECT stream, sequence FROM media_streams"))
        recent = tuple(
            AppliedPackage(*(str(v) for v in row))
            for row in self._ws.query(
                "SELECT package_id, kind, description, applied_at, applied_by FROM media_packages"
                " ORDER BY applied_at DESC, package_id LIMIT 20"
            )
        )
        return MediaStatus(trust_info(self._ws), self.force, self.groups, tuple(sorted(streams)), recent)

    def scope(self) -> Scope:
        model_id, model_sha256 = self._identity()
        return Scope(self.force, self.groups, model_id, model_sha256)

    def read(self, session: Session, medium: Path, *, progress: Progress | None = None) -> MediaReading:
        """Verify the medium and plan its packages for this terminal (nothing is written to the workspace)."""
        self._engineer(session, "reading removable media")
        return read_medium(
            self._ws,
            Path(medium),
            self.scope(),
            self._accounts,
            self._policy(),
            self.media_key(),
            session=session,
            progress=progress,
        )

    def media_key(self) -> MediaKey:
        """The force's media key, read from its key file each time a medium is read (it may have been replaced)."""
        if self._media_key_file is None:
            raise MediaRefused(
                "no media key configured, so no package can be opened: install the force's media key file from the "
                "central unit ('rfr central keys media-key') and set 'media_key_file' in the terminal configuration "
                "(or RFR_MEDIA_KEY_FILE)"
            )
        return read_media_key_file(self._media_key_file)

    def apply(
        self,
        session: Session,
        reading: MediaReading,
        *,
        progress: Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> ApplyResult:
        """Apply what ``reading`` planned: stage, switch in one transaction, then bring the indexes up to date."""
        self._engineer(session, "applying removable media")
        if not reading.to_apply:
            raise MediaRefused("nothing on this medium is to be applied")
        say = progress or (lambda _p: None)
        with self._applying:
            staged = stage(self._ws, reading, progress=say, cancel=cancel)
            committed = False
            try:
                result = apply_staged(
                    self._ws, reading, staged, self._accounts, self._policy(), by=session, progress=say
                )
                committed = True
            finally:
                staged.remove(keep_models=committed)
        if result.policy is not None:
            self._adopt_policy(result.policy)
        self._reindex(result, say)
        if result.weeded_libraries:
            # Weeding destroys data: fold the write-ahead log back now, so the database pages that held the
            # weeded images and templates are overwritten (secure_delete) at once, as casework does when it
            # deletes probe data, not whenever SQLite next checkpoints on its own.
            self._ws.checkpoint()
        say(MediaProgress("done", 1, 1, ""))
        return result

    def _reindex(self, result: ApplyResult, say: Progress) -> None:
        """Bring each changed library's index level with its rows now (weeded ones are rebuilt without them)."""
        if not result.libraries:
            return
        try:
            indexes = self._libraries.indexes()
        except RfrError as exc:
            result.notices.append(f"indexes not brought up to date now ({exc.diagnostics()}): they are at next use")
            return
        for i, library_id in enumerate(result.libraries):
            indexes.drop(library_id)  # the rows changed under it; weeded templates must leave memory too
            try:
                library = get_library_by_id(self._ws, library_id)
                say(MediaProgress("indexing", i, len(result.libraries), library.name))
                indexes.get(library)
            except RfrError as exc:
                result.notices.append(f"index of library #{library_id} not rebuilt now ({exc.diagnostics()})")
        # The index's own words assume a snapshot went missing; here it was this apply that made it so.
        weeded = {get_library_by_id(self._ws, i).name for i in result.weeded_libraries}
        created = {get_library_by_id(self._ws, i).name for i in result.created_libraries}
        for notice in self._libraries.notices():
            name = notice.split("'")[1] if notice.count("'") >= 2 else ""
            if "no index snapshot; rebuilt" in notice and name in created:
                notice = notice.replace("no index snapshot; rebuilt", "built")
            elif "no index snapshot; rebuilt" in notice and name in weeded:
                notice = notice.replace("no index snapshot; rebuilt", "rebuilt without the weeded subjects,")
            result.notices.append(notice)
