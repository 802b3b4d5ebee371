"""Keeping every policy a case was decided under, so its version and hash can be resolved later.

A case records ``policy.version`` and ``policy.sha256``; this table keeps the canonical text
behind each hash, so an auditor can read exactly which rules applied to a past decision.
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
