"""Removable media: signed packages from the central unit, verified with The Update Framework, applied atomically.

A package is a TUF repository on the media (``metadata/`` with every root version and
consistent-snapshot metadata, ``targets/`` with files named by their hash, each sealed with the
force's media key: ``engine.media.sealing``). The terminal runs
``tuf.ngclient.Updater`` from its pinned root through a fetcher that reads the mounted media
safely; the package's own content (``engine.media.format``) is checked, staged encrypted on the
workspace's disk, and switched in one workspace transaction.

TUF's HTTP fetcher is never used here, and never imported: ``tuf.ngclient`` imports it from its
package ``__init__``, and it imports urllib3, whose import opens and binds a socket to probe for
IPv6 (``urllib3.util.connection.HAS_IPV6``). The terminal opens no socket, ever
(``tests/security/test_no_network.py``), so before anything here imports ``tuf.ngclient`` its
``urllib3_fetcher`` module is replaced by one whose fetcher cannot be made.
"""

from __future__ import annotations

import sys
import types
from typing import Any, NoReturn

_HTTP_FETCHER = "tuf.ngclient.urllib3_fetcher"


class _NoHttpFetcher:
    """Stands in for TUF's ``Urllib3Fetcher``: a terminal reads media from a folder, never over HTTP."""

    def __init__(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError("a terminal never fetches over HTTP: give the Updater the media fetcher")


if _HTTP_FETCHER not in sys.modules:
    _module = types.ModuleType(_HTTP_FETCHER, _NoHttpFetcher.__doc__)
    _module.Urllib3Fetcher = _NoHttpFetcher  # type: ignore[attr-defined]
    sys.modules[_HTTP_FETCHER] = _module
