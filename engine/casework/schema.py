"""Tables of casework (domain "casework" in engine.schema): cases, their Probe Image, candidates, reviews.

Biometric data sits in two places only, both inside the encrypted database: ``case_probes``
(the Probe Image bytes and, after the search, its template) and ``case_candidates.reference_image``
(a copy of the reference image of a Viable Match, kept for the Match Report). Retention deletes
them; everything else is the record of what was decided, by whom, under which policy.
"""

from __future__ import annotations

from engine.schema import Migration

STATES = ("draft", "submitted", "approved", "rejected", "searched", "adjudicated", "peer_review", "closed")

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "cases, probe images, candidate lists, reviews",
        f"""
        CREATE TABLE cases (
            id TEXT PRIMARY KEY,
            number INTEGER NOT NULL UNIQUE,
            state TEXT NOT NULL CHECK (state IN ({", ".join(repr(s) for s in STATES)})),
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            form TEXT NOT NULL,
            required_rank TEXT NOT NULL,
            approval_flags TEXT NOT NULL,
            monitoring_flags TEXT NOT NULL,
            approval_reasons TEXT NOT NULL,
            policy_version TEXT NOT NULL,
            policy_sha256 TEXT NOT NULL REFERENCES policy_versions (sha256),
            submitted_by TEXT,
            submitted_at TEXT,
            decided_by TEXT,
            decided_rank TEXT,
            decided_at TEXT,
            searched_by TEXT,
            searched_at TEXT,
            model_id TEXT,
            model_sha256 TEXT,
            libraries_searched TEXT,
            peer_reviewed_by TEXT,
            outcome TEXT CHECK (outcome IN ('viable_match', 'no_viable_match')),
            closed_by TEXT,
            closed_at TEXT,
            probe_deleted_at TEXT
        );

        CREATE TABLE case_probes (
            case_id TEXT PRIMARY KEY REFERENCES cases (id),
            image BLOB,
            media_type TEXT,
            sha256 TEXT NOT NULL,
            byte_length INTEGER NOT NULL,
            template BLOB,
            quality TEXT
        );

        CREATE TABLE case_candidates (
            case_id TEXT NOT NULL REFERENCES cases (id),
            rank INTEGER NOT NULL,
            score REAL,
            distance REAL,
            library TEXT NOT NULL,
            subject TEXT NOT NULL,
            subject_id INTEGER NOT NULL,
            image_id INTEGER NOT NULL,
            template_id INTEGER NOT NULL,
            decision TEXT CHECK (decision IN ('viable', 'not_viable')),
            decided_by TEXT,
            decided_at TEXT,
            match_report TEXT,
            reference_image BLOB,
            reference_media_type TEXT,
            PRIMARY KEY (case_id, rank)
        );

        CREATE TABLE case_reviews (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            case_id TEXT NOT NULL REFERENCES cases (id),
            kind TEXT NOT NULL CHECK (kind IN ('approval', 'rejection', 'peer_review')),
            actor TEXT NOT NULL,
            rank TEXT,
            agree INTEGER,
            reason TEXT NOT NULL,
            at TEXT NOT NULL
        );
        CREATE INDEX case_reviews_by_case ON case_reviews (case_id, id);
        """,
    ),
]
