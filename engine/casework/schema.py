"""Tables of casework (domain "casework" in engine.schema): cases, their Probe Image, candidates, reviews.

Biometric data sits in two places only, both inside the encrypted database: ``case_probes``
(the Probe Image bytes, the chosen face's box and landmarks and, after the search, its template)
and ``case_candidates.reference_image`` (a copy of the reference image of a Viable Match, kept
for the Match Report). Retention deletes them; everything else is the record of what was
decided, by whom, under which policy. ``case_approved_libraries`` binds an approval to the
libraries it covered by identity (row id and content version), never by name.
"""

from __future__ import annotations

from engine.schema import Migration

_STATES_V1 = ("draft", "submitted", "approved", "rejected", "searched", "adjudicated", "peer_review", "closed")
STATES = (*_STATES_V1, "withdrawn", "expired")

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "cases, probe images, candidate lists, reviews",
        f"""
        CREATE TABLE cases (
            id TEXT PRIMARY KEY,
            number INTEGER NOT NULL UNIQUE,
            state TEXT NOT NULL CHECK (state IN ({", ".join(repr(s) for s in _STATES_V1)})),
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
    Migration(
        2,
        "withdrawn and expired cases; chosen face; approval bound to library identity; recorded advice",
        """
        CREATE TABLE cases_v2 (
            id TEXT PRIMARY KEY,
            number INTEGER NOT NULL UNIQUE,
            state TEXT NOT NULL CHECK (state IN ('draft', 'submitted', 'approved', 'rejected', 'searched',
                'adjudicated', 'peer_review', 'closed', 'withdrawn', 'expired')),
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
            probe_deleted_at TEXT,
            ended_reason TEXT
        );
        INSERT INTO cases_v2 SELECT *, NULL FROM cases;
        DROP TABLE cases;
        ALTER TABLE cases_v2 RENAME TO cases;

        ALTER TABLE case_probes ADD COLUMN width INTEGER;
        ALTER TABLE case_probes ADD COLUMN height INTEGER;
        ALTER TABLE case_probes ADD COLUMN faces_found INTEGER;
        ALTER TABLE case_probes ADD COLUMN face_number INTEGER;
        ALTER TABLE case_probes ADD COLUMN face_box TEXT;
        ALTER TABLE case_probes ADD COLUMN face_landmarks TEXT;
        ALTER TABLE case_probes ADD COLUMN upsample INTEGER;
        ALTER TABLE case_probes ADD COLUMN detection_note TEXT;

        CREATE TABLE case_approved_libraries (
            case_id TEXT NOT NULL REFERENCES cases (id),
            library_id INTEGER NOT NULL,
            name TEXT NOT NULL,
            kind TEXT NOT NULL,
            content_version INTEGER NOT NULL,
            authorisation TEXT,
            expires_at TEXT,
            PRIMARY KEY (case_id, library_id)
        );

        CREATE TABLE case_advice (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            case_id TEXT NOT NULL REFERENCES cases (id),
            flag TEXT NOT NULL,
            adviser TEXT NOT NULL,
            given_on TEXT NOT NULL,
            advice TEXT NOT NULL,
            recorded_by TEXT NOT NULL,
            recorded_at TEXT NOT NULL
        );
        CREATE INDEX case_advice_by_case ON case_advice (case_id, id);
        """,
        rebuilds_tables=True,
    ),
]
