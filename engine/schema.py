"""The workspace database schema: forward-only migrations, grouped by domain.

Each domain module owns its tables and exposes ``MIGRATIONS: list[Migration]`` with versions
1, 2, 3... counted within that domain. ``registry()`` lists the domains in a fixed order
(``DOMAINS`` below); a domain may reference tables of domains before it, never after.
The database records, per domain, which versions were applied (table ``schema_migrations``),
so a domain can gain a migration later without renumbering anyone else's.

To add tables for a new domain (users, audit, casework...):
1. in the domain module, define ``MIGRATIONS = [Migration(1, "create users", "CREATE TABLE ...")]``;
2. append ``("users", "engine.security.users")`` to ``DOMAINS`` (after the domains it depends on).
To change a domain's tables later, append ``Migration(n + 1, ...)``; never edit an applied one.
A migration is SQL (one or more statements) or a callable taking the open connection; each
runs in its own transaction together with its ``schema_migrations`` row, so a crash leaves it
either applied and recorded, or neither.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.errors import WorkspaceError

# (domain, module exposing MIGRATIONS), in dependency order. "core" is this module.
DOMAINS: tuple[tuple[str, str], ...] = (
    ("core", "engine.schema"),
    ("library", "engine.library.schema"),
    ("policy", "engine.policy.store"),
    ("users", "engine.security.users"),
    ("audit", "engine.audit.store"),
    ("casework", "engine.casework.schema"),
    ("media", "engine.media.schema"),
    ("oversight", "engine.oversight.schema"),
)


@dataclass(frozen=True)
class Migration:
    """One forward step of one domain's schema.

    ``rebuilds_tables``: the step rebuilds tables that others reference (SQLite changes a CHECK
    constraint only by copying the table), so it runs with foreign-key enforcement off, as
    SQLite's documented procedure asks, and the references are checked before it commits.
    """

    version: int
    name: str
    apply: str | Callable[[Any], None]
    rebuilds_tables: bool = False


MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "workspace metadata",
        """
        CREATE TABLE workspace_meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """,
    ),
]

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    domain TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    PRIMARY KEY (domain, version)
)
"""


def registry(domains: Sequence[tuple[str, str]] = DOMAINS) -> list[tuple[str, list[Migration]]]:
    """Every domain's migrations in the fixed domain order, checked to be numbered 1, 2, 3..."""
    out: list[tuple[str, list[Migration]]] = []
    for domain, module_name in domains:
        migrations = list(importlib.import_module(module_name).MIGRATIONS)
        versions = [m.version for m in migrations]
        if versions != list(range(1, len(migrations) + 1)):
            raise RuntimeError(f"schema domain {domain!r}: migrations must be numbered 1..n in order, got {versions}")
        out.append((domain, migrations))
    return out


def applied_versions(conn: Any) -> dict[str, int]:
    """The highest applied version per domain (empty for a new database)."""
    conn.execute(_BOOKKEEPING)
    rows = conn.execute("SELECT domain, MAX(version) FROM schema_migrations GROUP BY domain").fetchall()
    return {str(domain): int(version) for domain, version in rows}


def migrate(conn: Any, plan: Sequence[tuple[str, Sequence[Migration]]] | None = None) -> list[tuple[str, int, str]]:
    """Apply every migration not yet applied; return what was applied as (domain, version, name).

    ``conn`` must be in autocommit mode (``isolation_level=None``): each step manages its own
    transaction. A database already at a newer version than this software knows is refused.
    """
    steps = registry() if plan is None else plan
    current = applied_versions(conn)
    known = {domain for domain, _ in steps}
    for domain, version in current.items():
        latest = next((len(migs) for d, migs in steps if d == domain), 0)
        if domain not in known or version > latest:
            raise WorkspaceError(
                f"this workspace was written by a newer rfr (schema {domain} v{version}): upgrade rfr to open it"
            )
    done: list[tuple[str, int, str]] = []
    for domain, migrations in steps:
        for migration in migrations[current.get(domain, 0) :]:
            _apply_one(conn, domain, migration)
            done.append((domain, migration.version, migration.name))
    return done


def _apply_one(conn: Any, domain: str, migration: Migration) -> None:
    if migration.rebuilds_tables:
        conn.execute("PRAGMA foreign_keys = OFF")  # cannot change inside a transaction
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if callable(migration.apply):
                migration.apply(conn)
            else:
                for statement in split_statements(migration.apply):
                    conn.execute(statement)
            if migration.rebuilds_tables and conn.execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise WorkspaceError(
                    f"schema {domain} v{migration.version} would break references between tables: "
                    "the workspace is damaged; restore it from a backup"
                )
            conn.execute(
                "INSERT INTO schema_migrations (domain, version, name, applied_at) VALUES (?, ?, ?, ?)",
                (domain, migration.version, migration.name, datetime.now(UTC).isoformat(timespec="seconds")),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        if migration.rebuilds_tables:
            conn.execute("PRAGMA foreign_keys = ON")


def apply_all(conn: Any, migrations: Sequence[Migration]) -> None:
    """Create one domain's tables on a bare connection, without bookkeeping (tests of that domain alone)."""
    for migration in migrations:
        if callable(migration.apply):
            migration.apply(conn)
        else:
            for statement in split_statements(migration.apply):
                conn.execute(statement)
    if conn.in_transaction:
        conn.execute("COMMIT")


def split_statements(script: str) -> list[str]:
    """Split SQL into complete statements (``executescript`` would commit behind our back)."""
    from sqlcipher3 import dbapi2

    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if dbapi2.complete_statement(pending):
            if pending.strip().strip(";").strip():
                statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise RuntimeError(f"incomplete SQL statement in migration: {pending.strip()[:60]!r}")
    return statements
