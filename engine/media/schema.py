"""Tables of removable media (domain "media" in engine.schema): the pinned root, TUF's trusted state, streams.

Everything TUF needs to keep its promises across runs lives here, inside the encrypted
workspace, not only in the metadata folder the Updater reads: deleting that folder (or
putting older files into it) cannot roll the terminal back, because the folder is rewritten
from these rows before every read. ``media_streams`` holds the last package applied in each
stream (package sequence numbers only increase; library deltas apply in order with no gap),
``media_packages`` every package applied and what it changed, ``media_models`` the model
folders installed by packages (the newest is the one the terminal loads).
"""

from __future__ import annotations

from engine.schema import Migration

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "pinned root, TUF trusted metadata, time floor, package streams, applied packages, installed models",
        """
        -- The root an engineer installed (rfr media trust): the terminal's first trust in the central unit.
        CREATE TABLE media_trust (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pinned_root BLOB NOT NULL,
            pinned_version INTEGER NOT NULL,
            pinned_sha256 TEXT NOT NULL CHECK (length(pinned_sha256) = 64),
            installed_by TEXT NOT NULL,
            installed_at TEXT NOT NULL,
            -- The newest signed issue time (x-rfr-issued of a timestamp) this terminal has accepted:
            -- a clock behind it is refused, so an old medium cannot be made to look fresh.
            time_floor TEXT
        );

        -- TUF's trusted metadata after the last applied medium, by role ('root' is the newest
        -- trusted root): written back to the Updater's folder before every read.
        CREATE TABLE media_metadata (
            role TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            data BLOB NOT NULL
        );

        CREATE TABLE media_streams (
            stream TEXT PRIMARY KEY,
            sequence INTEGER NOT NULL CHECK (sequence >= 1),
            manifest_sha256 TEXT NOT NULL,
            package_id TEXT NOT NULL,
            applied_at TEXT NOT NULL,
            applied_by TEXT NOT NULL
        );

        CREATE TABLE media_packages (
            package_id TEXT PRIMARY KEY,
            stream TEXT NOT NULL,
            sequence INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('library', 'accounts', 'policy', 'models')),
            manifest_sha256 TEXT NOT NULL,
            description TEXT NOT NULL,
            created_at TEXT NOT NULL,
            issued_at TEXT NOT NULL,
            applied_at TEXT NOT NULL,
            applied_by TEXT NOT NULL,
            changes TEXT NOT NULL,
            UNIQUE (stream, sequence)
        );

        CREATE TABLE media_models (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            package_id TEXT NOT NULL REFERENCES media_packages (package_id),
            model_id TEXT NOT NULL,
            model_sha256 TEXT NOT NULL,
            folder TEXT NOT NULL UNIQUE,
            installed_at TEXT NOT NULL
        );
        """,
    ),
]
