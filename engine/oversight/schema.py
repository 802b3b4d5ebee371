"""Tables of the oversight workspace (domain "oversight" in engine.schema): terminals, bundles, events, findings.

Each registered terminal has the audit public keys the oversight trusts for it (the one an
auditor registered, then each it handed over to by a signed rotation seen in an accepted bundle).
Every bundle received and not refused is kept whole (its DSSE envelope and files, inside this
encrypted database) with what became of it: ``accepted`` (its events continue the terminal's
accepted chain), ``quarantined`` (a gap before it: waiting for the missing bundle),
``superseded`` (a later bundle over the same start replaced it, identical where they overlap),
or ``evidence`` (a fork, a rolled-back or rebuilt log, or an overlap that cannot be merged: kept
as signed evidence, never merged). Accepted events are copied into ``oversight_events``, whose
last row per terminal is the head the next bundle must continue. Figures are stored per bundle
and quarter; the report sums those of accepted bundles only.
"""

from __future__ import annotations

from engine.schema import Migration

STATUSES = ("accepted", "quarantined", "superseded", "evidence")
FINDINGS = ("gap", "fork", "rollback", "rebuilt", "overlap", "terminal_alert")

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "oversight: terminals and their keys, bundles, accepted events, figures, findings",
        f"""
        CREATE TABLE oversight_terminals (
            name TEXT PRIMARY KEY,
            registered_at TEXT NOT NULL,
            registered_by TEXT NOT NULL,
            workspace_id TEXT
        );

        CREATE TABLE oversight_terminal_keys (
            terminal TEXT NOT NULL REFERENCES oversight_terminals (name),
            key_id TEXT NOT NULL UNIQUE,
            public_key BLOB NOT NULL CHECK (length(public_key) = 32),
            source TEXT NOT NULL CHECK (source IN ('registered', 'rotation')),
            introduced_seq INTEGER NOT NULL,
            added_at TEXT NOT NULL,
            PRIMARY KEY (terminal, key_id)
        );

        CREATE TABLE oversight_bundles (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            terminal TEXT NOT NULL REFERENCES oversight_terminals (name),
            statement_sha256 TEXT NOT NULL,
            file_sha256 TEXT NOT NULL,
            first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            prev_hash TEXT NOT NULL,
            head_hash TEXT NOT NULL,
            exported_at TEXT NOT NULL,
            exported_by TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
            note TEXT NOT NULL,
            contents BLOB NOT NULL,
            received_at TEXT NOT NULL,
            received_by TEXT NOT NULL,
            accepted_at TEXT
        );
        CREATE INDEX oversight_bundles_by_terminal ON oversight_bundles (terminal, first_seq);

        CREATE TABLE oversight_events (
            terminal TEXT NOT NULL REFERENCES oversight_terminals (name),
            seq INTEGER NOT NULL,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            subjects TEXT NOT NULL,
            details TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            bundle_id INTEGER NOT NULL REFERENCES oversight_bundles (id),
            PRIMARY KEY (terminal, seq)
        );

        CREATE TABLE oversight_figures (
            bundle_id INTEGER NOT NULL REFERENCES oversight_bundles (id),
            quarter TEXT NOT NULL,
            figures TEXT NOT NULL,
            PRIMARY KEY (bundle_id, quarter)
        );

        CREATE TABLE oversight_compositions (
            bundle_id INTEGER PRIMARY KEY REFERENCES oversight_bundles (id),
            as_at TEXT NOT NULL,
            libraries TEXT NOT NULL
        );

        CREATE TABLE oversight_findings (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            terminal TEXT NOT NULL REFERENCES oversight_terminals (name),
            kind TEXT NOT NULL CHECK (kind IN ({", ".join(repr(k) for k in FINDINGS)})),
            bundle_id INTEGER REFERENCES oversight_bundles (id),
            other_bundle_id INTEGER REFERENCES oversight_bundles (id),
            detail TEXT NOT NULL,
            found_at TEXT NOT NULL,
            found_by TEXT NOT NULL,
            resolved_at TEXT
        );
        """,
    ),
]
