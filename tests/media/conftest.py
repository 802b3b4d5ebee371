"""Fixtures for the removable media tests: a terminal of force-a in group custody-suites, a central repository.

The terminal is real (encrypted workspace, audit key, accounts, the stand-in face engine) and
its clock fixed; the repository (``tests.media.repository``) signs with keys made per test.
``World.medium()`` publishes the repository as a fresh medium folder; ``fingerprint`` hashes
every table of the workspace, so a refused medium can be shown to have changed nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.media.apply import ApplyResult
from engine.media.reader import MediaReading
from engine.security.users import Session
from engine.terminal import Terminal, TerminalConfig
from engine.workspace import Workspace
from tests.media.repository import FORCE, GROUP, MEDIA_KEY, CentralRepository, library_package
from tests.terminals import FAST, WorkspaceKey, provision, synthetic_faces, terminal_config

START = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def media_config(directory: Path, *, force: str = FORCE, groups: tuple[str, ...] = (GROUP,)) -> TerminalConfig:
    media_key_file = directory.with_name(directory.name + ".media-key")
    return replace(terminal_config(directory), force=force, groups=groups, media_key_file=media_key_file)


def make_media_terminal(directory: Path, clock: Clock) -> Terminal:
    """A terminal of force-a holding the force's media key (``MEDIA_KEY``, which the test repository seals with)."""
    config = media_config(directory)
    key = WorkspaceKey.generate()
    assert config.key_file is not None and config.media_key_file is not None
    key.write_key_file(config.key_file)
    MEDIA_KEY.write_key_file(config.media_key_file)
    return Terminal.create(config, key, faces=synthetic_faces(), scrypt=FAST, clock=clock)


def reopen_media_terminal(directory: Path, clock: Clock) -> Terminal:
    return Terminal.open(media_config(directory), faces=synthetic_faces(), scrypt=FAST, clock=clock)


def fingerprint(ws: Workspace) -> dict[str, str]:
    """sha256 of every row of every table, by table: equal fingerprints mean an unchanged workspace."""
    out: dict[str, str] = {}
    with ws.reading() as conn:
        tables = [str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        for table in tables:
            digest = hashlib.sha256()
            for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY rowid'):
                digest.update(repr(tuple(row)).encode())
            out[table] = digest.hexdigest()
    return out


@dataclass
class World:
    """A terminal that trusts the repository's root and has applied its first library package."""

    tmp: Path
    clock: Clock
    terminal: Terminal
    session: Session
    repo: CentralRepository
    media_count: int = 0
    applied: list[ApplyResult] = field(default_factory=list)

    @property
    def ws(self) -> Workspace:
        return self.terminal.ws

    def medium(self) -> Path:
        """The repository published now, as a new medium folder."""
        self.media_count += 1
        return self.repo.publish(self.tmp / f"medium-{self.media_count}")

    def read(self, medium: Path) -> MediaReading:
        return self.terminal.media.read(self.session, medium)

    def apply(self, medium: Path) -> ApplyResult:
        result = self.terminal.media.apply(self.session, self.read(medium))
        self.applied.append(result)
        return result


def build_world(
    tmp: Path, clock: Clock | None = None, *, first_package: bool = True, trust: bool = True, **repo: int
) -> World:
    clock = clock or Clock()
    tmp.mkdir(parents=True, exist_ok=True)
    terminal = make_media_terminal(tmp / "ws", clock)
    sessions = provision(terminal, {})
    repository = CentralRepository(now=clock(), **repo)
    (tmp / "root.json").write_bytes(repository.root_bytes)
    if trust:
        terminal.media.trust(sessions["eng1"], tmp / "root.json")
    world = World(tmp, clock, terminal, sessions["eng1"], repository)
    if first_package:
        repository.add_package(*library_package(1, {"alpha": 2, "bravo": 1}))
        world.apply(world.medium())
    return world


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world(tmp_path: Path, clock: Clock) -> Iterator[World]:
    built = build_world(tmp_path, clock)
    yield built
    built.terminal.close()
