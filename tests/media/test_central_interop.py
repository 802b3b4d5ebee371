"""A medium the central unit's own tools made (``engine.central``) is read, verified and applied by a terminal.

The rest of tests/media uses its own repository builder; here the real one signs: keys from
``keys init``, a policy and an accounts package from ``package build``, ``Repository.sign``,
then the terminal pins ``KEYS/1.root.json`` and applies the repository's ``rfr-packages``
folder as it would from a mounted medium. The library package with real enrolled templates is
the round trip's (real face engine, Dask): not repeated here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.central.keys import export_media_key
from engine.central.packages import Target, build_accounts, build_policy, read_accounts
from engine.central.repository import Repository
from engine.errors import PasswordChangeRequired
from engine.media.fetcher import MediaRefused
from engine.policy.loader import default_policy_path
from engine.security.users import ScryptParams
from tests.central.conftest import PASSPHRASE, key_ring, make_keys
from tests.media.conftest import Clock, build_world


def test_a_medium_signed_by_the_central_unit_applies_on_a_terminal(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    make_keys(keys)
    repo = Repository.create_or_open(tmp_path / "repo")
    target = Target("force-a", ("custody-suites",), "monthly media round")
    policy = default_policy_path().read_text(encoding="utf-8").replace('version: "2026.6"', 'version: "2027.1"')
    (tmp_path / "policy.yaml").write_text(policy, encoding="utf-8")
    media_key = key_ring(keys).media_key()
    build_policy(repo, target, tmp_path / "policy.yaml", media_key=media_key)
    (tmp_path / "users.yaml").write_text(
        "users:\n"
        "  - {username: asmith, display_name: A Smith, roles: [rfr_user], rank: Constable, first_password: true}\n"
    )
    changes, removals = read_accounts(tmp_path / "users.yaml")
    slips = tmp_path / "first-passwords.txt"
    build_accounts(
        repo, target, changes, removals, media_key=media_key, passwords_out=slips, scrypt=ScryptParams(n=2**12)
    )
    repo.sign(key_ring(keys))

    w = build_world(tmp_path / "terminal", Clock(datetime.now(UTC)), first_package=False, trust=False)
    try:
        w.terminal.media.trust(w.session, keys / "1.root.json")
        # The terminal holds another force's media key: the packages do not open, and it says which key it needs.
        with pytest.raises(MediaRefused, match=f"sealed with media key {media_key.key_id}; this terminal holds"):
            w.read(repo.media)
        # The engineer installs the force's media key file, as 'rfr central keys media-key' writes it.
        key_file = w.terminal.config.media_key_file
        assert key_file is not None
        key_file.unlink()
        export_media_key(keys, PASSPHRASE, key_file)
        reading = w.read(repo.media)
        assert [p.package_id for p in reading.to_apply] == ["policy#1", "accounts#1"]
        result = w.terminal.media.apply(w.session, reading)
        assert result.policy is not None and result.policy.version == "2027.1"
        handed = dict(line.split("\t") for line in slips.read_text().splitlines() if line and line[0] != "#")
        session = w.terminal.sign_in("asmith", handed["asmith"])
        with pytest.raises(PasswordChangeRequired):
            w.terminal.accounts.check(session)
    finally:
        w.terminal.close()
