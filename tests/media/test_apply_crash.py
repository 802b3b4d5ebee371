"""Power cut during apply: SIGKILL at many points; reopened, the terminal is exactly as before or exactly as after.

A child process opens the terminal, reads a medium (a policy, an accounts and a library package
that adds and weeds) and applies it, parking (and announcing it on stdout) at one point of the
apply: while copying, once staged, inside the transaction, just before its commit, after the
commit, while the indexes are rebuilt. The parent kills it with SIGKILL and reopens the
terminal. The same apply run to the end on a copy of the same terminal, with the same fixed
clock, gives the "before" and "after" references: the fingerprint of every table (the index
bookkeeping aside, which is a cache rebuilt from the rows) and the answers of fresh index
searches must equal one of the two. Nothing is left in staging, and no image lies anywhere
in the workspace folder in plaintext.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine.library.index import IndexSet
from engine.library.store import get_library
from engine.media.format import UserEntry
from engine.media.staging import STAGING_DIR
from engine.workspace import Workspace
from tests.media.conftest import START, Clock, build_world, reopen_media_terminal
from tests.media.repository import (
    ENGINE,
    accounts_package,
    first_password,
    library_package,
    policy_package,
    template_of,
)
from tests.plaintext import image_needles
from tests.synthetic import synthetic_jpeg
from tests.terminals import PASSWORD

REPO = Path(__file__).resolve().parents[2]
# Tables that are caches of the rows (the index snapshot records) or record them (signed heads, index events).
CACHES = {"index_snapshots", "index_tuning", "audit_checkpoints"}

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tests.media.conftest import START, Clock, reopen_media_terminal
    from tests.terminals import PASSWORD

    ws_dir, medium, stop_at = sys.argv[1:4]
    terminal = reopen_media_terminal(Path(ws_dir), Clock(START))
    session = terminal.sign_in("eng1", PASSWORD)
    reading = terminal.media.read(session, Path(medium))

    def progress(p):
        if p.phase != stop_at or (stop_at == "copying" and not 0 < p.done < p.total):
            return
        print("parked", flush=True)
        time.sleep(3600)  # the parent kills us here (long: a loaded machine may take its time)

    terminal.media.apply(session, reading, progress=progress)
    print("finished without being killed", flush=True)
    """
)

POINTS = {
    "copying": "before",  # part of the files staged
    "staged": "before",  # every file staged, nothing switched
    "applying": "before",  # inside the transaction, rows written
    "committing": "before",  # inside the transaction, everything written but the commit
    "committed": "after",  # committed, staging not yet removed
    "indexing": "after",  # committed, the weeded library's index being rebuilt
}


def fingerprint(ws: Workspace) -> dict[str, str]:
    out: dict[str, str] = {}
    with ws.reading() as conn:
        tables = [str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in sorted(set(tables) - CACHES):
            query = f'SELECT * FROM "{table}" ORDER BY rowid'
            if table == "audit_events":
                query = "SELECT * FROM audit_events WHERE action NOT LIKE 'library.index%' ORDER BY seq"
            digest = hashlib.sha256()
            for row in conn.execute(query):
                digest.update(repr(tuple(row)).encode())
            out[table] = digest.hexdigest()
    return out


def searches(ws: Workspace) -> list[list[tuple[str, float]]]:
    """What a freshly started terminal's index answers for the faces involved."""
    indexes = IndexSet(ws, ENGINE.model_id, ENGINE.model_sha256)
    lib = get_library(ws, "custody")
    answers = []
    for seed in range(3):
        probe, _box = template_of(synthetic_jpeg(2 * 101 + seed, 0))
        found = indexes.search(np.asarray(probe, dtype=np.float32), [lib], 4)
        answers.append([(c.subject, round(c.distance, 5)) for c in found])
    indexes.close()
    return answers


def state(ws_dir: Path) -> tuple[dict[str, str], list[list[tuple[str, float]]]]:
    with reopen_media_terminal(ws_dir, Clock(START)) as terminal:
        assert not any((ws_dir / STAGING_DIR).glob("*")), "staging left after reopening"
        return fingerprint(terminal.ws), searches(terminal.ws)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object], list[bytes]]:
    """A terminal and a medium to apply; the before and after references from applying it on a copy."""
    base = tmp_path_factory.mktemp("crash")
    w = build_world(base / "a", Clock(START))
    w.repo.add_package(*policy_package(1, "2027.1"))
    users = [UserEntry("dave", "Dave D", ("rfr_user",), "Constable", first_password("dave's first pass"), False)]
    w.repo.add_package(*accounts_package(1, users))
    manifest, blobs = library_package(2, {"charlie": 2, "delta": 1}, remove=["alpha"])
    w.repo.add_package(manifest, blobs)
    w.medium()  # medium-2
    w.terminal.close()
    shutil.copytree(base / "a", base / "ref", symlinks=True)
    ref_ws = base / "ref" / "ws"
    with reopen_media_terminal(ref_ws, Clock(START)) as terminal:
        session = terminal.sign_in("eng1", PASSWORD)
        before = (fingerprint(terminal.ws), searches(terminal.ws))
        terminal.media.apply(session, terminal.media.read(session, base / "ref" / "medium-2"))
    after = state(ref_ws)
    assert before[0] != after[0] and before[1] != after[1]
    images = [data for path, data in blobs.items() if path != manifest.library.templates]  # type: ignore[union-attr]
    return base, {"before": before, "after": after}, images


def run_and_kill(ws_dir: Path, medium: Path, stop_at: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(ws_dir), str(medium), stop_at],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(ws_dir.parent)},
        cwd=REPO,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        if line.strip() != "parked":
            why = child.stderr.read() if child.stderr else ""
            pytest.fail(f"child did not reach {stop_at}: {line!r} {why}")
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("stop_at", list(POINTS))
def test_killed_during_apply_the_terminal_is_exactly_before_or_after(
    prepared: tuple[Path, dict[str, object], list[bytes]], tmp_path: Path, stop_at: str
) -> None:
    base, references, images = prepared
    shutil.copytree(base / "a", tmp_path / "t", symlinks=True)
    ws_dir = tmp_path / "t" / "ws"
    run_and_kill(ws_dir, tmp_path / "t" / "medium-2", stop_at)
    if stop_at in ("copying", "staged", "applying", "committing"):
        assert any((ws_dir / STAGING_DIR).glob("*")), "the child was killed with its staging in place"
    needles = image_needles(images)
    for path in ws_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert [what for what, needle in needles.items() if needle in data] == [], path
    assert state(ws_dir) == references[POINTS[stop_at]]
