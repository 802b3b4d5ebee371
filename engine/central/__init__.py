"""The central unit's side: signing keys, enrolment at scale on Dask, package build and sign (never on a terminal).

``keys`` makes and opens the TUF role keys (passphrase-encrypted files); ``enrol`` turns a manifest of
custody images into templates on a Dask cluster, restartably, with its outputs encrypted; ``packages``
builds library, accounts, policy and models packages (``engine.media.format``) with sequence numbers
that only increase; ``repository`` signs them into the TUF repository that is copied to removable
media. A terminal never imports this package nor Dask (contracts in ``pyproject.toml``).
"""

from __future__ import annotations

from engine.errors import RfrError


class CentralError(RfrError):
    """A central-unit command cannot do what was asked; the message names the file, key or field and what to do."""
