"""Fixtures for the oversight tests: one known history exported once per session, a fresh oversight per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.oversight.service import Oversight
from engine.security.users import Session
from tests.oversight.history import TERMINAL, World, add_branches, new_oversight, run_history


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The known history's bundles (export 1 and 2) and the fork, rollback, rebuilt and unknown bundles."""
    return add_branches(run_history(tmp_path_factory.mktemp("history")))


@pytest.fixture
def oversight(tmp_path: Path, world: World) -> Iterator[tuple[Oversight, Session]]:
    """A new oversight workspace, its auditor olive signed in, CUSTODY-01 registered with its audit key."""
    ov, olive = new_oversight(tmp_path / "oversight")
    ov.add_terminal(olive, TERMINAL, world.audit_public_key)
    with ov:
        yield ov, olive
