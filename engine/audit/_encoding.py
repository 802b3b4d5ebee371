"""The one canonical JSON encoding used for hashing and signing."""

from __future__ import annotations

import json


def canonical_json(value: object) -> str:
    """Compact, key-sorted, ASCII-only JSON: one text for one value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
