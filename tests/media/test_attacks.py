"""Hostile media, table-driven: each attack named, each refused with one clear line, the workspace unchanged.

In the manner of python-tuf's ``test_updater_top_level_update.py``: a terminal that trusts the
central unit's root and has applied a first medium (``World``) is handed a medium an attacker
(or an accident) made; the apply must raise the error named, with a one-line message matching
the pattern, and afterwards every table of the workspace must hash as before (``fingerprint``),
no staging may be left, and the next good medium must still apply. The first half are TUF's
own refusals (we check they reach the engineer as plain lines); the second half are what TUF
leaves to us (paths and file kinds on the medium, stream order, scope, space, the clock).
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import DelegatedRole, Snapshot, Targets, Timestamp

import engine.media.apply as media_apply
from engine.errors import RfrError
from engine.media.fetcher import MediaRefused
from engine.media.format import PackageRejected
from engine.media.sealing import MediaKey
from engine.media.staging import STAGING_DIR
from engine.media.trust import METADATA_DIR
from tests.media.conftest import START, World, build_world, fingerprint
from tests.media.repository import (
    GROUP,
    accounts_package,
    library_package,
    model_files,
    models_package,
    policy_package,
    policy_text,
    resign_chain,
)
from tests.terminals import PASSWORD

Tamper = Callable[[World, pytest.MonkeyPatch], Path]


@dataclass(frozen=True)
class Attack:
    name: str
    tamper: Tamper
    error: type[RfrError]
    match: str


def _next(w: World) -> None:
    """A good next package, so a medium has something to apply unless the attack stops it."""
    w.repo.add_package(*library_package(2, {"charlie": 1}))


def _metadata(medium: Path) -> Path:
    return medium / "rfr-packages" / "metadata"


def _current(medium: Path, role: str) -> Path:
    versions = sorted(int(p.name.split(".")[0]) for p in _metadata(medium).glob(f"*.{role}.json"))
    return _metadata(medium) / f"{versions[-1]}.{role}.json"


# ---- TUF's refusals ----------------------------------------------------------------------------------


def unknown_key(w: World, _mp: pytest.MonkeyPatch) -> Path:
    _next(w)
    w.repo.sign_with["timestamp"] = [CryptoSigner.generate_ed25519()]
    return w.medium()


def below_threshold(w: World, _mp: pytest.MonkeyPatch) -> Path:
    _next(w)
    w.repo.sign_with["snapshot"] = [w.repo.signers["snapshot"][0]]  # 1 of the 2 the root asks for
    return w.medium()


def revoked_key(w: World, _mp: pytest.MonkeyPatch) -> Path:
    _next(w)
    old = w.repo.signers["timestamp"][0]
    w.repo.rotate_root([1], 1, [1], replace_role={"timestamp": CryptoSigner.generate_ed25519()})
    w.repo.sign_with["timestamp"] = [old]  # signed with the key root v2 revoked
    return w.medium()


def wrong_role_key(w: World, _mp: pytest.MonkeyPatch) -> Path:
    _next(w)
    w.repo.sign_with["library"] = [w.repo.signers["accounts"][0]]  # a valid key of the repository, not library's
    return w.medium()


def timestamp_rollback(w: World, _mp: pytest.MonkeyPatch) -> Path:
    old = w.tmp / "medium-1"  # the first medium, already applied
    _next(w)
    w.apply(w.medium())
    return old


def snapshot_rollback(w: World, _mp: pytest.MonkeyPatch) -> Path:
    _next(w)
    w.apply(w.medium())
    w.repo.add_package(*library_package(3, {"delta": 1}))
    medium = w.medium()

    def older(ts: Timestamp) -> None:
        ts.snapshot_meta.version = 1  # the terminal trusts snapshot 2 already

    resign_chain(w.repo, medium, timestamp=older)
    return medium


def targets_rollback(w: World, _mp: pytest.MonkeyPatch) -> Path:
    _next(w)
    w.apply(w.medium())
    w.repo.add_package(*library_package(3, {"delta": 1}))
    w.repo.targets.signed.version -= 2  # published as a version older than the one trusted
    return w.medium()


def expired(role: str) -> Tamper:
    def tamper(w: World, _mp: pytest.MonkeyPatch) -> Path:
        _next(w)
        w.repo.expires[role] = timedelta(hours=-1)
        return w.medium()

    return tamper


def frozen_medium(w: World, _mp: pytest.MonkeyPatch) -> Path:
    _next(w)
    medium = w.medium()
    w.clock.advance(days=30)  # a month later the same medium is presented: its timestamp expired
    w.session = w.terminal.sign_in("eng1", PASSWORD)
    return medium


def mix_and_match(w: World, _mp: pytest.MonkeyPatch) -> Path:
    _next(w)
    medium = w.medium()
    older = _current(w.tmp / "medium-1", "library").read_bytes()
    _current(medium, "library").write_bytes(older)  # an older, validly signed library role in the new one's place
    return medium


def snapshot_hash(w: World, _mp: pytest.MonkeyPatch) -> Path:
    _next(w)
    medium = w.medium()
    path = _current(medium, "snapshot")
    path.write_bytes(path.read_bytes().replace(b"\n", b" ", 1))  # same length and signed content, other bytes
    return medium


def manifest_hash(w: World, _mp: pytest.MonkeyPatch) -> Path:
    _next(w)
    medium = w.medium()
    path = w.repo.target_file(medium, "packages/library/custody/00000002.json")
    data = bytearray(path.read_bytes())
    data[-20] ^= 0x01  # one bit of the sealed manifest
    path.write_bytes(bytes(data))
    return medium


def blob_hash(w: World, _mp: pytest.MonkeyPatch) -> Path:
    manifest, blobs = library_package(2, {"charlie": 1})
    w.repo.add_package(manifest, blobs)
    medium = w.medium()
    image = next(p for p in blobs if p != manifest.library.templates)  # type: ignore[union-attr]
    path = w.repo.target_file(medium, image)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    return medium


def blob_short(w: World, _mp: pytest.MonkeyPatch) -> Path:
    manifest, blobs = library_package(2, {"charlie": 1})
    w.repo.add_package(manifest, blobs)
    medium = w.medium()
    path = w.repo.target_file(medium, manifest.library.templates)  # type: ignore[union-attr, arg-type]
    path.write_bytes(path.read_bytes()[:-4])
    return medium


def endless_timestamp(w: World, _mp: pytest.MonkeyPatch) -> Path:
    _next(w)
    medium = w.medium()
    path = _metadata(medium) / "timestamp.json"
    path.write_bytes(path.read_bytes() + b" " * (1 << 20))
    return medium


def endless_blob(w: World, _mp: pytest.MonkeyPatch) -> Path:
    manifest, blobs = library_package(2, {"charlie": 1})
    w.repo.add_package(manifest, blobs)
    medium = w.medium()
    path = w.repo.target_file(medium, manifest.library.templates)  # type: ignore[union-attr, arg-type]
    with path.open("ab") as extra:
        extra.write(b"\0" * (3 << 20))
    return medium


def malformed_timestamp(w: World, _mp: pytest.MonkeyPatch) -> Path:
    _next(w)
    medium = w.medium()
    (_metadata(medium) / "timestamp.json").write_bytes(b'{"signed": {"_type": "timestamp", "version": "two"}')
    return medium


def malformed_root(w: World, _mp: pytest.MonkeyPatch) -> Path:
    _next(w)
    medium = w.medium()
    (_metadata(medium) / "2.root.json").write_bytes(b"\x00\xffnot json at all")
    return medium


def attacker_rotated_root(w: World, _mp: pytest.MonkeyPatch) -> Path:
    _next(w)
    w.repo.rotate_root([9], 1, [9])  # a new root signed only by the attacker's own new key
    return w.medium()


def targets_signs_itself(w: World, _mp: pytest.MonkeyPatch) -> Path:
    manifest, blobs = library_package(2, {"charlie": 1})
    w.repo.add_package(manifest, blobs, role="targets")  # bypassing the library role's key
    return w.medium()


# ---- what TUF leaves to us ------------------------------------------------------------------------------


def hostile_role_name(name: str) -> Tamper:
    def tamper(w: World, _mp: pytest.MonkeyPatch) -> Path:
        _next(w)
        medium = w.medium()
        key = w.repo.signers["library"][0].public_key

        def delegate(targets: Targets) -> None:
            assert targets.delegations is not None and targets.delegations.roles is not None
            roles = {name: DelegatedRole(name, [key.keyid], 1, False, ["packages/library/*/*"])}
            targets.delegations.roles = {**roles, **targets.delegations.roles}

        def listed(snapshot: Snapshot) -> None:
            snapshot.meta[f"{name}.json"] = snapshot.meta["library.json"]

        resign_chain(w.repo, medium, targets=delegate, snapshot=listed)
        return medium

    return tamper


def symlinked(relative: str, *, folder: bool = False) -> Tamper:
    def tamper(w: World, _mp: pytest.MonkeyPatch) -> Path:
        _next(w)
        medium = w.medium()
        path = medium / "rfr-packages" / relative
        moved = medium / f"elsewhere-{path.name}"
        shutil.move(path, moved)
        path.symlink_to(moved, target_is_directory=folder)
        return medium

    return tamper


def hard_link(w: World, _mp: pytest.MonkeyPatch) -> Path:
    manifest, blobs = library_package(2, {"charlie": 1})
    w.repo.add_package(manifest, blobs)
    medium = w.medium()
    os.link(w.repo.target_file(medium, manifest.library.templates), medium / "another-name")  # type: ignore[union-attr, arg-type]
    return medium


def special_file(kind: str) -> Tamper:
    def tamper(w: World, _mp: pytest.MonkeyPatch) -> Path:
        _next(w)
        medium = w.medium()
        path = _metadata(medium) / "timestamp.json"
        path.unlink()
        if kind == "fifo":
            os.mkfifo(path)
        else:
            try:
                os.mknod(path, 0o600 | 0o020000, os.makedev(1, 3))  # a character device (/dev/null's numbers)
            except PermissionError:
                # Without the privilege to make a device, a socket takes the same path: looked at, never opened.
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.bind(str(path))
        return medium

    return tamper


def old_package_resigned(w: World, _mp: pytest.MonkeyPatch) -> Path:
    manifest, blobs = library_package(1, {"alpha": 2, "bravo": 1, "mallory": 1})  # sequence 1 again, other content
    w.repo.remove_target(manifest.path)
    w.repo.add_package(manifest, blobs)
    return w.medium()


def delta_gap(w: World, _mp: pytest.MonkeyPatch) -> Path:
    w.repo.add_package(*library_package(3, {"charlie": 1}))  # 2 never came
    return w.medium()


def other_force(w: World, _mp: pytest.MonkeyPatch) -> Path:
    w.repo.add_package(*library_package(1, {"xray": 1}, name="north", force="force-b"))
    return w.medium()


def other_group(w: World, _mp: pytest.MonkeyPatch) -> Path:
    w.repo.add_package(*library_package(1, {"xray": 1}, name="north", groups=("airport-suites",)))
    return w.medium()


def other_model(w: World, _mp: pytest.MonkeyPatch) -> Path:
    w.repo.add_package(*library_package(2, {"charlie": 1}, model_sha256="ab" * 32))
    return w.medium()


def unsigned_blob(w: World, _mp: pytest.MonkeyPatch) -> Path:
    manifest, _blobs = library_package(2, {"charlie": 1})
    w.repo.add_package(manifest, {})  # the manifest alone: its blobs are not signed
    return w.medium()


def no_engineer_left(w: World, _mp: pytest.MonkeyPatch) -> Path:
    w.repo.add_package(*accounts_package(1, [], remove=["eng1", "eng2"]))
    return w.medium()


def policy_mislabelled(w: World, _mp: pytest.MonkeyPatch) -> Path:
    w.repo.add_package(*policy_package(1, "2027.1", data=policy_text("2026.9")))
    return w.medium()


def model_file_unpinned(w: World, _mp: pytest.MonkeyPatch) -> Path:
    files = model_files()
    files["face_resnet.bin"] = files["face_resnet.bin"][:-1] + b"\x00"  # not what manifest.yaml pins
    w.repo.add_package(*models_package(1, files))
    return w.medium()


def sealed_for_another_force(w: World, _mp: pytest.MonkeyPatch) -> Path:
    """Signed by the central unit, but sealed with a media key this terminal does not hold."""
    manifest, blobs = library_package(2, {"charlie": 1})
    for path, data in [(manifest.path, manifest.to_bytes()), *blobs.items()]:
        w.repo.add_target("library", path, MediaKey.generate().seal(path, data), sealed=False)
    return w.medium()


def unsealed_manifest(w: World, _mp: pytest.MonkeyPatch) -> Path:
    manifest, blobs = library_package(2, {"charlie": 1})
    w.repo.add_package(manifest, blobs)
    w.repo.add_target("library", manifest.path, manifest.to_bytes(), sealed=False)
    return w.medium()


def sealed_file_moved(w: World, _mp: pytest.MonkeyPatch) -> Path:
    """An image's sealed bytes signed under another image's name: the seal binds its path."""
    manifest, blobs = library_package(2, {"charlie": 2})
    w.repo.add_package(manifest, blobs)
    first, second = (p for p in blobs if p != manifest.library.templates)  # type: ignore[union-attr]
    w.repo.add_target("library", second, w.repo.blobs[first][1], sealed=False)
    return w.medium()


def blob_under_another_name(w: World, _mp: pytest.MonkeyPatch) -> Path:
    """Other templates sealed under the template array's name: they open, but are not what the name pins."""
    manifest, blobs = library_package(2, {"charlie": 2})
    w.repo.add_package(manifest, blobs)
    templates = manifest.library.templates  # type: ignore[union-attr]
    assert templates is not None
    w.repo.add_target("library", templates, bytes(reversed(blobs[templates])))
    return w.medium()


def image_under_another_name(w: World, _mp: pytest.MonkeyPatch) -> Path:
    """Another image sealed under this image's name: it opens, but is not the image the manifest states."""
    manifest, blobs = library_package(2, {"charlie": 2})
    w.repo.add_package(manifest, blobs)
    first, second = (p for p in blobs if p != manifest.library.templates)  # type: ignore[union-attr]
    w.repo.add_target("library", second, blobs[first])
    return w.medium()


def image_not_its_stated_sha(w: World, _mp: pytest.MonkeyPatch) -> Path:
    manifest, blobs = library_package(2, {"charlie": 1})
    library = manifest.library
    assert library is not None
    image = library.add[0].images[0]
    wrong = replace(image, sha256="0" * 64)
    subject = replace(library.add[0], images=(wrong,))
    w.repo.add_package(replace(manifest, library=replace(library, add=(subject,))), blobs)
    return w.medium()


def no_free_space(w: World, mp: pytest.MonkeyPatch) -> Path:
    _next(w)
    free = shutil.disk_usage(w.tmp)._replace(free=10 << 20)
    mp.setattr(media_apply, "disk_usage", lambda _path: free)
    return w.medium()


def clock_behind(w: World, _mp: pytest.MonkeyPatch) -> Path:
    _next(w)
    medium = w.medium()
    w.clock.now = START - timedelta(days=2)  # the terminal's clock set back behind what it has seen
    return medium


def metadata_folder_deleted(w: World, _mp: pytest.MonkeyPatch) -> Path:
    old = w.tmp / "medium-1"
    _next(w)
    w.apply(w.medium())
    shutil.rmtree(w.ws.directory / METADATA_DIR)  # TUF's folder gone: the workspace still holds its state
    return old


ATTACKS = [
    Attack("timestamp signed by an unknown key", unknown_key, MediaRefused, "not signed by enough trusted keys"),
    Attack("snapshot signed below its threshold", below_threshold, MediaRefused, "threshold is not met"),
    Attack("timestamp signed by a revoked key", revoked_key, MediaRefused, "not signed by enough trusted keys"),
    Attack("library role signed by another role's key", wrong_role_key, MediaRefused, "not signed by enough"),
    Attack("rollback: an older timestamp", timestamp_rollback, MediaRefused, "rollback"),
    Attack("rollback: an older snapshot", snapshot_rollback, MediaRefused, "rollback"),
    Attack("rollback: an older targets", targets_rollback, MediaRefused, "rollback"),
    Attack("freeze: timestamp expired", expired("timestamp"), MediaRefused, "expired metadata.*timestamp"),
    Attack("freeze: snapshot expired", expired("snapshot"), MediaRefused, "expired metadata.*snapshot"),
    Attack("freeze: targets expired", expired("targets"), MediaRefused, "expired metadata.*targets"),
    Attack("freeze: delegated role expired", expired("library"), MediaRefused, "expired metadata.*library"),
    Attack("freeze: an old medium presented a month on", frozen_medium, MediaRefused, "expired metadata"),
    Attack("mix-and-match: another version's library role", mix_and_match, MediaRefused, "mix-and-match"),
    Attack("wrong hash: snapshot bytes", snapshot_hash, MediaRefused, "length or hash"),
    Attack("wrong hash: package manifest", manifest_hash, MediaRefused, "length or hash"),
    Attack("wrong hash: an image", blob_hash, MediaRefused, "length or hash"),
    Attack("wrong length: templates cut short", blob_short, MediaRefused, "length or hash"),
    Attack("endless data: timestamp of a megabyte", endless_timestamp, MediaRefused, "endless data"),
    Attack("endless data: templates longer than signed", endless_blob, MediaRefused, "endless data"),
    Attack("malformed metadata: timestamp", malformed_timestamp, MediaRefused, "malformed metadata"),
    Attack("malformed metadata: next root", malformed_root, MediaRefused, "malformed metadata"),
    Attack("root rotated by an attacker's key", attacker_rotated_root, MediaRefused, "not signed by enough trusted"),
    Attack("top-level targets signs a package itself", targets_signs_itself, MediaRefused, "instead of delegating"),
    Attack("path traversal in a role name", hostile_role_name("../../etc/x"), MediaRefused, "unsafe path"),
    Attack("absolute path in a role name", hostile_role_name("/etc/passwd"), MediaRefused, "unsafe path"),
    Attack("symbolic link: timestamp", symlinked("metadata/timestamp.json"), MediaRefused, "symbolic link"),
    Attack("symbolic link: metadata folder", symlinked("metadata", folder=True), MediaRefused, "symbolic link"),
    Attack("symbolic link: a package folder", symlinked("targets/packages", folder=True), MediaRefused, "symbolic"),
    Attack("hard link: templates", hard_link, MediaRefused, "hard link"),
    Attack("device file: timestamp", special_file("device"), MediaRefused, "device file|socket"),
    Attack("FIFO: timestamp", special_file("fifo"), MediaRefused, "FIFO"),
    Attack("a new signature over an old package", old_package_resigned, PackageRejected, "over an old package"),
    Attack("library delta with a gap", delta_gap, PackageRejected, "2 must come first"),
    Attack("package for another force", other_force, PackageRejected, "for force force-b"),
    Attack("package for another terminal group", other_group, PackageRejected, "terminal groups airport-suites"),
    Attack("library package for another face model", other_model, PackageRejected, "face model"),
    Attack("package naming a blob nobody signed", unsigned_blob, PackageRejected, "not signed on this medium"),
    Attack("accounts package leaving no engineer", no_engineer_left, PackageRejected, "no engineer able"),
    Attack("policy file not the version it states", policy_mislabelled, PackageRejected, "policy file is version"),
    Attack("model file not meeting its pin", model_file_unpinned, PackageRejected, "does not meet the pin"),
    Attack("sealed with another force's media key", sealed_for_another_force, MediaRefused, "sealed with media key"),
    Attack("manifest not sealed", unsealed_manifest, MediaRefused, "not sealed with a media key"),
    Attack("sealed image moved to another name", sealed_file_moved, MediaRefused, "does not open with the media key"),
    Attack("blob not the content its name pins", blob_under_another_name, PackageRejected, "content its name pins"),
    Attack("image not the sha256 its manifest states", image_not_its_stated_sha, PackageRejected, "whose sha256"),
    Attack("another image under an image's name", image_under_another_name, PackageRejected, "whose sha256"),
    Attack("not enough free space", no_free_space, MediaRefused, "not enough free space.*nothing was copied"),
    Attack("clock behind the time floor", clock_behind, MediaRefused, "clock .* is behind the newest signed issue"),
    Attack("rollback after the metadata folder was deleted", metadata_folder_deleted, MediaRefused, "rollback"),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
def test_attack_is_refused_and_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, attack: Attack) -> None:
    w = build_world(tmp_path, snapshot_keys=2, snapshot_threshold=2)
    try:
        medium = attack.tamper(w, monkeypatch)
        before = fingerprint(w.ws)
        snapshots = sorted(p.name for p in w.ws.index_dir.iterdir())
        with pytest.raises(attack.error, match=attack.match) as refused:
            w.apply(medium)
        message = refused.value.diagnostics()
        assert "\n" not in message and len(message) < 400, message
        assert "Traceback" not in message
        assert fingerprint(w.ws) == before
        assert sorted(p.name for p in w.ws.index_dir.iterdir()) == snapshots
        assert not any((w.ws.directory / STAGING_DIR).glob("*")), "staging left behind"
    finally:
        w.terminal.close()


def test_the_terminal_still_takes_a_good_medium_after_refusing_one(tmp_path: Path) -> None:
    w = build_world(tmp_path)
    try:
        _next(w)
        w.repo.sign_with["timestamp"] = [CryptoSigner.generate_ed25519()]
        with pytest.raises(MediaRefused):
            w.apply(w.medium())
        result = w.apply(w.medium())  # signed properly this time
        assert [p.package_id for p in result.packages] == ["library:custody#2"]
    finally:
        w.terminal.close()


def test_a_medium_for_the_terminal_group_star_and_others_applies_only_its_own(tmp_path: Path) -> None:
    w = build_world(tmp_path)
    try:
        w.repo.add_package(*library_package(1, {"xray": 1}, name="north", force="force-b"))
        w.repo.add_package(*library_package(1, {"yankee": 1}, name="south", groups=("*",)))
        w.repo.add_package(*library_package(2, {"charlie": 1}, groups=(GROUP, "airport-suites")))
        reading = w.read(w.medium())
        assert [p.package_id for p in reading.to_apply] == ["library:custody#2", "library:south#1"]
        assert {p.package_id: p.status.value for p in reading.packages}["library:north#1"] == "not for this terminal"
        w.terminal.media.apply(w.session, reading)
        names = {r[0] for r in w.ws.query("SELECT name FROM libraries")}
        assert names == {"custody", "south"}
    finally:
        w.terminal.close()
