"""Tables of the Permitted Image Reference Libraries (domain "library" in engine.schema).

Image bytes sit in their own table so that scans over image rows never read them; template
vectors are immutable (a trigger refuses updates) and row ids are never reused
(AUTOINCREMENT), which is what lets the index trust "same key, same template".
"""

from __future__ import annotations

from engine.schema import Migration

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "libraries, subjects, images, templates, index snapshots, library events",
        """
        CREATE TABLE libraries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('substantive', 'temporary')),
            authorisation TEXT,
            expires_at TEXT,
            description TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            created_by TEXT,
            index_salt BLOB NOT NULL CHECK (length(index_salt) = 16),
            CHECK ((kind = 'substantive' AND authorisation IS NULL AND expires_at IS NULL)
                OR (kind = 'temporary' AND authorisation IS NOT NULL AND expires_at IS NOT NULL))
        );

        CREATE TABLE models (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            model_id TEXT NOT NULL,
            sha256 TEXT NOT NULL UNIQUE CHECK (length(sha256) = 64)
        );

        CREATE TABLE subjects (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
            reference TEXT NOT NULL,
            sex TEXT NOT NULL DEFAULT 'unknown' CHECK (sex IN ('female', 'male', 'unknown')),
            ic_code TEXT NOT NULL DEFAULT 'IC0'
                CHECK (ic_code IN ('IC0', 'IC1', 'IC2', 'IC3', 'IC4', 'IC5', 'IC6')),
            date_of_birth TEXT,
            created_at TEXT NOT NULL,
            UNIQUE (library_id, reference)
        );

        CREATE TABLE images (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
            subject_id INTEGER NOT NULL REFERENCES subjects(id) ON DELETE CASCADE,
            sha256 BLOB NOT NULL CHECK (length(sha256) = 32),
            media_type TEXT NOT NULL,
            byte_length INTEGER NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            capture_date TEXT,
            age_range TEXT NOT NULL DEFAULT 'unknown' CHECK (age_range IN
                ('0-12', '13-15', '16-17', '18-24', '25-34', '35-44', '45-54', '55-64', '65+', 'unknown')),
            source TEXT NOT NULL,
            added_by TEXT,
            package_id TEXT,
            added_at TEXT NOT NULL,
            UNIQUE (library_id, sha256)
        );
        CREATE INDEX images_by_subject ON images (subject_id);

        CREATE TABLE image_bytes (
            image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
            data BLOB NOT NULL
        );

        CREATE TABLE templates (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
            model_ref INTEGER NOT NULL REFERENCES models(id),
            vector BLOB NOT NULL CHECK (length(vector) = 512),
            vector_sha256 BLOB NOT NULL CHECK (length(vector_sha256) = 32),
            face_box TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        -- covering index: the index check reads (id, sha) per library and model without the vectors
        CREATE INDEX templates_by_library ON templates (library_id, model_ref, id, vector_sha256);
        CREATE INDEX templates_by_image ON templates (image_id);

        CREATE TRIGGER templates_immutable BEFORE UPDATE ON templates
        BEGIN
            SELECT RAISE(ABORT, 'templates are immutable: delete and re-enrol instead');
        END;

        CREATE TABLE index_snapshots (
            library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
            model_ref INTEGER NOT NULL REFERENCES models(id),
            snapshot_id BLOB NOT NULL,
            entries INTEGER NOT NULL,
            digest BLOB NOT NULL,
            saved_at TEXT NOT NULL,
            PRIMARY KEY (library_id, model_ref)
        );

        -- What happened to libraries (created, purged, index rebuilt). Until the audit log is wired in
        -- this is the record of purges; it never holds biometric data.
        CREATE TABLE library_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            actor TEXT,
            action TEXT NOT NULL,
            library_name TEXT NOT NULL,
            detail TEXT NOT NULL
        );
        """,
    ),
    Migration(
        2,
        "search expansion measured per library index",
        """
        -- The search expansion measured for a library's index on this terminal (rfr library
        -- check-index --tune): the smallest that found the recall target among the library's own
        -- templates, with what it was measured on. It holds for that build of the index only.
        CREATE TABLE index_tuning (
            library_id INTEGER NOT NULL REFERENCES libraries(id) ON DELETE CASCADE,
            model_ref INTEGER NOT NULL REFERENCES models(id),
            expansion_search INTEGER NOT NULL CHECK (expansion_search > 0),
            build TEXT NOT NULL,
            templates INTEGER NOT NULL CHECK (templates > 0),
            recall REAL NOT NULL,
            target REAL NOT NULL,
            tuned_at TEXT NOT NULL,
            PRIMARY KEY (library_id, model_ref)
        );
        """,
    ),
    Migration(
        3,
        "library content version; library history moves to the signed audit log",
        """
        -- Counts every change of a library's content (images enrolled, subjects removed, a snapshot
        -- replaced): an approval records it, so a case never searches a library changed since.
        ALTER TABLE libraries ADD COLUMN content_version INTEGER NOT NULL DEFAULT 0;
        -- Library administration is recorded in the one hash-chained, signed audit log now.
        DROP TABLE library_events;
        """,
    ),
]
