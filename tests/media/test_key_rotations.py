"""Root key rotation, table-driven (the manner of python-tuf's ``test_updater_key_rotations.py``).

Each case is a chain of root versions: the keys of each (numbered; a new number is a new key),
its threshold, and the keys that sign it. A rotation is accepted only when every new root is
signed by a threshold of the previous root's keys and a threshold of its own. The terminal
pinned version 1; the medium carries the whole chain. An accepted chain is kept in the
workspace (the newest trusted root version moves on); a refused one changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.media.fetcher import MediaRefused
from engine.media.trust import METADATA_DIR, trust_info
from tests.media.conftest import build_world, fingerprint
from tests.media.repository import library_package


@dataclass(frozen=True)
class RootVersion:
    keys: list[int]
    threshold: int
    sigs: list[int]


ROTATIONS: dict[str, tuple[list[RootVersion], bool]] = {
    "1-of-1 key rotated, signed by old and new": ([RootVersion([1], 1, [1]), RootVersion([2], 1, [2, 1])], True),
    "1-of-1 key rotated, signed by the new key only": ([RootVersion([1], 1, [1]), RootVersion([2], 1, [2])], False),
    "1-of-1 key rotated, signed by the old key only": ([RootVersion([1], 1, [1]), RootVersion([2], 1, [1])], False),
    "3-of-5 to 2-of-3, thresholds of both met": (
        [RootVersion([1, 2, 3, 4, 5], 3, [1, 2, 3, 4, 5]), RootVersion([4, 5, 6], 2, [1, 2, 4, 5])],
        True,
    ),
    "3-of-5 to 2-of-3, old threshold missed": (
        [RootVersion([1, 2, 3, 4, 5], 3, [1, 2, 3, 4, 5]), RootVersion([4, 5, 6], 2, [1, 4, 6])],
        False,
    ),
    "threshold raised and met": ([RootVersion([1, 2], 1, [1, 2]), RootVersion([1, 2], 2, [1, 2])], True),
    "threshold raised, new threshold missed": ([RootVersion([1, 2], 1, [1, 2]), RootVersion([1, 2], 2, [1])], False),
    "unrelated signatures do not count": ([RootVersion([1], 1, [1]), RootVersion([2], 1, [3, 4, 2])], False),
    "unused extra signatures do no harm": ([RootVersion([1], 1, [1]), RootVersion([2], 1, [3, 1, 4, 2])], True),
    "three rotations, each linked": (
        [RootVersion([1], 1, [1]), RootVersion([2], 1, [1, 2]), RootVersion([3], 1, [2, 3])],
        True,
    ),
    "three rotations, the middle one unlinked": (
        [RootVersion([1], 1, [1]), RootVersion([2], 1, [2]), RootVersion([3], 1, [2, 3])],
        False,
    ),
}


@pytest.mark.parametrize("name", list(ROTATIONS))
def test_root_rotation(tmp_path: Path, name: str) -> None:
    chain, accepted = ROTATIONS[name]
    first = chain[0]
    w = build_world(tmp_path, first_package=False, root_keys=len(first.keys), root_threshold=first.threshold)
    try:
        for version in chain[1:]:
            w.repo.rotate_root(version.keys, version.threshold, version.sigs)
        w.repo.add_package(*library_package(1, {"alpha": 1}))
        medium = w.medium()
        before = fingerprint(w.ws)
        if accepted:
            w.apply(medium)
            info = trust_info(w.ws)
            assert info is not None and info.newest_version == len(chain) and info.version == 1
        else:
            with pytest.raises(MediaRefused, match="not signed by enough trusted keys"):
                w.apply(medium)
            assert fingerprint(w.ws) == before
    finally:
        w.terminal.close()


def test_a_rotated_root_is_kept_by_the_workspace_not_the_folder(tmp_path: Path) -> None:
    """After a legitimate rotation the old root key is no longer trusted, even with TUF's folder deleted."""
    w = build_world(tmp_path)
    try:
        old_key = w.repo.pool[1]
        w.repo.rotate_root([2], 1, [1, 2])
        w.repo.add_package(*library_package(2, {"charlie": 1}))
        w.apply(w.medium())
        assert w.ws.query_one("SELECT version FROM media_metadata WHERE role = 'root'") == (2,)
        import shutil

        shutil.rmtree(w.ws.directory / METADATA_DIR)
        # Someone holding only the retired root key makes a "version 3": the terminal trusts version 2's key now.
        w.repo.pool[1] = old_key
        w.repo.rotate_root([1], 1, [1])
        w.repo.add_package(*library_package(3, {"delta": 1}))
        before = fingerprint(w.ws)
        with pytest.raises(MediaRefused, match="not signed by enough trusted keys"):
            w.apply(w.medium())
        assert fingerprint(w.ws) == before
    finally:
        w.terminal.close()
