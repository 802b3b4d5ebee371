"""The software's own version, as stamped on Match Reports and recorded with exports."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version


@cache
def software_version() -> str:
    """``rfr X.Y.Z`` from the installed package's metadata (``pyproject.toml``)."""
    try:
        return f"rfr {version('rfr')}"
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "rfr (not installed)"
