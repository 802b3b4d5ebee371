"""Keeping every policy a case was decided under, so its version and hash can be resolved later.

A case records ``policy.version`` and ``policy.sha256``; this table keeps the canonical text
behind each hash, so an auditor can read exactly which rules applied to a past decision.
``policy_in_force`` names the one a policy package from the central unit put in force: the
terminal works under it rather than its default file from then on.
"""

from __future__ import annotations

import json
from typing import Any

from engine.audit.clock import Clock, format_utc, utc_now
from engine.errors import PolicyError
from engine.policy.loader import parse_policy
from engine.policy.model import Policy
from engine.schema import Migration

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "policies in force",
        """
        CREATE TABLE policy_versions (
            sha256 TEXT PRIMARY KEY,
            version TEXT NOT NULL,
            canonical_json TEXT NOT NULL,
            recorded_at TEXT NOT NULL
        );
        """,
    ),
    Migration(
        2,
        "the policy in force, when a policy package from the central unit set it",
        """
        CREATE TABLE policy_in_force (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            sha256 TEXT NOT NULL REFERENCES policy_versions (sha256),
            set_at TEXT NOT NULL,
            set_by TEXT NOT NULL,
            package_id TEXT NOT NULL
        );
        """,
    ),
]


def record_policy(conn: Any, policy: Policy, clock: Clock = utc_now) -> None:
    """Store the policy's canonical text under its hash (inside the caller's transaction; idempotent)."""
    conn.execute(
        "INSERT OR IGNORE INTO policy_versions (sha256, version, canonical_json, recorded_at) VALUES (?, ?, ?, ?)",
        (policy.sha256, policy.version, policy.canonical_json(), format_utc(clock())),
    )


def recorded_policy(conn: Any, sha256: str) -> Policy:
    """The policy a case recorded, rebuilt from its stored canonical text and checked against its hash."""
    row = conn.execute("SELECT canonical_json FROM policy_versions WHERE sha256 = ?", (sha256,)).fetchone()
    if not row:
        raise PolicyError(f"no policy with hash {sha256[:16]} is recorded in this workspace")
    policy = parse_policy(json.loads(row[0]))
    if policy.sha256 != sha256:
        raise PolicyError(f"the recorded policy {sha256[:16]} does not match its hash: the workspace was altered")
    return policy


def set_policy_in_force(conn: Any, policy: Policy, *, by: str, package_id: str, clock: Clock = utc_now) -> None:
    """Make ``policy`` the one this terminal works under (inside the caller's transaction, with its record)."""
    record_policy(conn, policy, clock)
    conn.execute(
        "INSERT INTO policy_in_force (id, sha256, set_at, set_by, package_id) VALUES (1, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET sha256 = excluded.sha256, set_at = excluded.set_at,"
        " set_by = excluded.set_by, package_id = excluded.package_id",
        (policy.sha256, format_utc(clock()), by, package_id),
    )


def policy_in_force(conn: Any) -> Policy | None:
    """The policy a policy package put in force (checked against its hash), or None if none ever did."""
    row = conn.execute("SELECT sha256 FROM policy_in_force WHERE id = 1").fetchone()
    return None if row is None else recorded_policy(conn, str(row[0]))
