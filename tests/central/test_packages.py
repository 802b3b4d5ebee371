"""Package build and sign: a TUF repository that tuf.ngclient accepts from the pinned root, targets that verify,
sequence numbers that are never reused, expiry and root renewal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tuf.api.metadata import Metadata, Timestamp

from engine.central import CentralError, packages
from engine.central.outputs import EnrolmentOutput
from engine.central.packages import LibraryTarget, Target, read_accounts, read_removals
from engine.central.repository import ISSUED_AT_FIELD, Expiry, Repository
from engine.media.format import parse_manifest
from engine.media.sealing import MediaKey, read_media_key_file
from engine.policy.loader import default_policy_path
from engine.security.users import PasswordHash, ScryptParams, verify_password
from tests.central.conftest import PASSPHRASE, key_ring, make_keys, updater

FORCE = Target("force-a", ("custody-suites",), "monthly media round")
CHEAP_SCRYPT = ScryptParams(n=2**12)  # the terminal's cost (2**17) is a second per password
MEDIA = MediaKey.generate()  # the force's media key: every package built here is sealed with it


def build_library(*args: Any, **kwargs: Any) -> packages.BuiltPackage:
    return packages.build_library(*args, media_key=MEDIA, **kwargs)


def build_policy(*args: Any, **kwargs: Any) -> packages.BuiltPackage:
    return packages.build_policy(*args, media_key=MEDIA, **kwargs)


def build_accounts(*args: Any, **kwargs: Any) -> packages.BuiltPackage:
    return packages.build_accounts(*args, media_key=MEDIA, **kwargs)


def build_models(*args: Any, **kwargs: Any) -> packages.BuiltPackage:
    return packages.build_models(*args, media_key=MEDIA, **kwargs)


def download(client: object, path: str) -> bytes:
    """A target as TUF verified it: sealed; opened with the media key as a terminal opens it."""
    info = client.get_targetinfo(path)  # type: ignore[attr-defined]
    assert info is not None, path
    sealed = Path(client.download_target(info)).read_bytes()  # type: ignore[attr-defined]
    return MEDIA.open(path, sealed)


def test_a_signed_repository_is_accepted_by_tuf_and_every_target_verifies(
    tmp_path: Path, enrolled: Path, data_root: Path
) -> None:
    keys = tmp_path / "keys"
    make_keys(keys)
    repo = Repository.create_or_open(tmp_path / "repo")
    library = build_library(repo, FORCE, LibraryTarget("custody"), enrolment=enrolled, passphrase=lambda: PASSPHRASE)
    policy = build_policy(repo, FORCE, default_policy_path())
    users = tmp_path / "users.yaml"
    users.write_text(
        "users:\n"
        "  - {username: asmith, display_name: A Smith, roles: [rfr_user], rank: constable, first_password: true}\n"
        "  - {username: bjones, display_name: B Jones, roles: [approver, rfr_user], rank: inspector}\n"
        "remove: [cdavies]\n"
    )
    changes, removals = read_accounts(users)
    slips = tmp_path / "first-passwords.txt"
    accounts = build_accounts(repo, FORCE, changes, removals, passwords_out=slips, scrypt=CHEAP_SCRYPT)
    report = repo.sign(key_ring(keys))
    assert set(report.packages) == {library.manifest_path, policy.manifest_path, accounts.manifest_path}

    media = repo.media
    assert sorted(p.name for p in (media / "metadata").iterdir()) == [
        "1.accounts.json",
        "1.library.json",
        "1.models.json",
        "1.root.json",
        "1.snapshot.json",
        "1.targets.json",
        "timestamp.json",
    ]
    client = updater(media, (keys / "1.root.json").read_bytes(), tmp_path / "terminal")
    client.refresh()
    timestamp = Metadata[Timestamp].from_bytes((tmp_path / "terminal" / "trusted" / "timestamp.json").read_bytes())
    issued = datetime.fromisoformat(timestamp.signed.unrecognized_fields[ISSUED_AT_FIELD].replace("Z", "+00:00"))
    assert abs(issued - datetime.now(UTC)) < timedelta(minutes=5)

    # The library package: what the enrolment made, in the terminal's own format, every blob by hash.
    manifest = parse_manifest(download(client, library.manifest_path))
    assert (
        manifest.kind == "library" and manifest.sequence == 1 and manifest.for_terminal("force-a", ["custody-suites"])
    )
    assert manifest.library is not None
    delta = manifest.library
    assert [s.reference for s in delta.add] == [
        "CRO-Abel_Pacheco",
        "CRO-Amber_Tamblyn",
        "CRO-Akhmed_Zakayev",
        "CRO-Anders_Fogh_Rasmussen",
    ]
    amber = delta.add[1]
    assert (amber.sex, amber.ic_code, amber.date_of_birth) == ("female", "IC1", "1983-05-20")
    assert amber.images[0].age_range == "35-44" and amber.images[0].source == "custody suite A"
    templates = np.frombuffer(download(client, str(delta.templates)), dtype="<f4").reshape(-1, 128)
    outcomes = list(EnrolmentOutput.open(enrolled, PASSPHRASE).outcomes())
    np.testing.assert_array_equal(templates, np.stack([o.vector for o in outcomes]))
    for subject in delta.add:
        for image in subject.images:
            data = download(client, image.blob)
            assert data.startswith(b"\xff\xd8\xff")
            # On the media: named by a keyed hash, never by the image's own sha256; sealed, never the image.
            assert image.blob == f"blobs/{MEDIA.name_of(data)}" and image.sha256 not in image.blob
            on_media = list((media / "targets" / "blobs").glob(f"*.{image.blob.removeprefix('blobs/')}"))
            assert len(on_media) == 1 and data not in on_media[0].read_bytes()
            assert not on_media[0].read_bytes().startswith(b"\xff\xd8\xff")
            person = subject.reference.removeprefix("CRO-")
            assert any(data == p.read_bytes() for p in (data_root / "lfw" / "images" / person).iterdir())

    policy_manifest = parse_manifest(download(client, policy.manifest_path))
    assert policy_manifest.policy is not None
    assert download(client, policy_manifest.policy.blob) == default_policy_path().read_bytes()

    accounts_manifest = parse_manifest(download(client, accounts.manifest_path))
    assert accounts_manifest.accounts is not None
    users_out = {u.username: u for u in accounts_manifest.accounts.users}
    assert set(users_out) == {"asmith", "bjones"} and accounts_manifest.accounts.remove == ("cdavies",)
    assert users_out["bjones"].first_password is None and users_out["bjones"].roles == ("approver", "rfr_user")
    handed = dict(line.split("\t") for line in slips.read_text().splitlines() if line and not line.startswith("#"))
    first = users_out["asmith"].first_password
    assert first is not None and set(handed) == {"asmith"}
    assert verify_password(handed["asmith"], PasswordHash(first.n, first.r, first.p, first.salt, first.hash))
    assert oct(slips.stat().st_mode & 0o777) == "0o600"


def test_sequence_numbers_only_increase_and_are_never_reused(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    make_keys(keys)
    repo = Repository.create_or_open(tmp_path / "repo")
    assert build_policy(repo, FORCE, default_policy_path()).sequence == 1
    with pytest.raises(CentralError, match=r"sequence 1 of stream policy was already issued.*the next is 2"):
        build_policy(repo, FORCE, default_policy_path(), sequence=1)
    assert build_policy(repo, FORCE, default_policy_path(), sequence=5).sequence == 5
    assert build_policy(repo, FORCE, default_policy_path()).sequence == 6
    repo.sign(key_ring(keys))

    # A ledger rolled back (restored from an old backup) cannot make the repository sign a sequence twice.
    ledger = json.loads((repo.central / "issued.json").read_text())
    ledger["streams"]["policy"]["last"] = 0
    (repo.central / "issued.json").write_text(json.dumps(ledger))
    build_policy(repo, FORCE, default_policy_path(), sequence=1)
    with pytest.raises(CentralError, match="already signed in this repository: a sequence number is never reused"):
        repo.sign(key_ring(keys))


def test_library_deltas_never_skip_a_sequence_and_weeding_follows_in_order(tmp_path: Path, enrolled: Path) -> None:
    keys = tmp_path / "keys"
    make_keys(keys)
    repo = Repository.create_or_open(tmp_path / "repo")
    custody = LibraryTarget("custody")
    with pytest.raises(CentralError, match="would skip 1: terminals apply library deltas in order"):
        build_library(repo, FORCE, custody, enrolment=enrolled, passphrase=lambda: PASSPHRASE, sequence=2)
    with pytest.raises(CentralError, match="needs the stream's face model"):
        build_library(repo, FORCE, custody, enrolment=None, passphrase=lambda: PASSPHRASE, removals=["CRO-x"])
    build_library(repo, FORCE, custody, enrolment=enrolled, passphrase=lambda: PASSPHRASE)
    with pytest.raises(CentralError, match="already packaged as library:custody/1"):
        build_library(repo, FORCE, custody, enrolment=enrolled, passphrase=lambda: PASSPHRASE)
    first = repo.sign(key_ring(keys))
    removals_file = tmp_path / "weed.txt"
    removals_file.write_text("# weeded after review\nCRO-Amber_Tamblyn\n\n")
    weeding = build_library(
        repo, FORCE, custody, enrolment=None, passphrase=lambda: PASSPHRASE, removals=read_removals(removals_file)
    )
    assert weeding.sequence == 2
    second = repo.sign(key_ring(keys))
    assert second.versions["library"] == first.versions["library"] + 1
    assert second.versions["accounts"] == first.versions["accounts"]  # unchanged roles are not re-signed
    assert second.versions["snapshot"] == 2 and second.versions["timestamp"] == 2

    client = updater(repo.media, (keys / "1.root.json").read_bytes(), tmp_path / "terminal")
    client.refresh()
    manifest = parse_manifest(download(client, weeding.manifest_path))
    assert manifest.library is not None and manifest.library.remove == ("CRO-Amber_Tamblyn",)
    assert manifest.library.add == () and manifest.library.templates is None
    with pytest.raises(CentralError, match="cannot make it temporary"):
        build_library(
            repo,
            FORCE,
            LibraryTarget("custody", "temporary", "AUTH-1", "2027-01-01T23:59:59Z"),
            enrolment=None,
            passphrase=lambda: PASSPHRASE,
            removals=["CRO-x"],
        )


def test_a_library_package_is_built_one_image_at_a_time(tmp_path: Path) -> None:
    """A force's first load is gigabytes of images: building its package holds one of them, never all."""
    import tracemalloc

    from tests.central.conftest import CHEAP
    from tests.central.synthetic import generated_enrolment

    images, each = 24, 1 << 20
    model = ("generated-model", "ab" * 32)
    total = generated_enrolment(
        tmp_path / "source", tmp_path / "out", PASSPHRASE, images=images, bytes_each=each, model=model, kdf=CHEAP
    )
    assert total > 23 * each
    repo = Repository.create_or_open(tmp_path / "repo")
    tracemalloc.start()
    try:
        built = build_library(
            repo, FORCE, LibraryTarget("custody"), enrolment=tmp_path / "out", passphrase=lambda: PASSPHRASE
        )
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (built.blobs, built.summary["images_added"]) == (images + 1, images)  # the images and the templates
    assert peak < 6 * each, f"building a package of {total / 2**20:.0f} MiB of images held {peak / 2**20:.1f} MiB"
    pending = json.loads(next((repo.central / "pending").glob("*.json")).read_bytes())
    for path, target in pending["targets"].items():  # every image is in the repository as its signed target
        assert repo.target_file(path, target["sha256"]).stat().st_size == target["length"]


def test_a_models_package_carries_a_models_folder_that_meets_its_own_manifest(tmp_path: Path) -> None:
    import shutil

    from engine.faces.models import REPO_MODELS_DIR

    keys = tmp_path / "keys"
    make_keys(keys)
    repo = Repository.create_or_open(tmp_path / "repo")
    built = build_models(repo, FORCE, REPO_MODELS_DIR)
    repo.sign(key_ring(keys))
    client = updater(repo.media, (keys / "1.root.json").read_bytes(), tmp_path / "terminal")
    client.refresh()
    manifest = parse_manifest(download(client, built.manifest_path))
    assert manifest.models is not None
    names = dict(manifest.models.files)
    assert "manifest.yaml" in names and "face_resnet.bin" in names and "calibration.yaml" in names
    assert download(client, names["manifest.yaml"]) == (REPO_MODELS_DIR / "manifest.yaml").read_bytes()

    altered = tmp_path / "models"
    shutil.copytree(REPO_MODELS_DIR, altered)
    (altered / "calibration.yaml").write_text((altered / "calibration.yaml").read_text() + "\n# edited\n")
    with pytest.raises(CentralError, match=r"calibration.yaml does not match models/manifest.yaml"):
        build_models(repo, FORCE, altered)


def test_signing_renews_what_would_expire_and_refuses_an_expiring_root(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    make_keys(keys)
    repo = Repository.create_or_open(tmp_path / "repo")
    now = datetime.now(UTC).replace(microsecond=0)
    build_policy(repo, FORCE, default_policy_path())
    repo.sign(key_ring(keys), Expiry(timestamp=10, snapshot=20, delegated=30, targets=40), now=now)
    later = repo.sign(key_ring(keys), Expiry(), now=now + timedelta(days=15))
    # targets (40 days) and the delegated roles (30) would expire before the new timestamp (15 + 30): re-signed.
    assert later.versions["targets"] == 2 and later.versions["library"] == 2 and later.versions["accounts"] == 2
    with pytest.raises(CentralError, match=r"root metadata version 1 expires .* renew it first"):
        repo.sign(key_ring(keys), Expiry(), now=now + timedelta(days=350))
    with pytest.raises(CentralError, match="timestamp <= snapshot"):
        Expiry(timestamp=90, snapshot=30)


def test_root_renewal_needs_the_root_threshold_and_terminals_follow_it(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    make_keys(keys, roots=3, threshold=2)
    repo = Repository.create_or_open(tmp_path / "repo")
    build_policy(repo, FORCE, default_policy_path())
    repo.sign(key_ring(keys))
    pinned = (keys / "1.root.json").read_bytes()
    with pytest.raises(CentralError, match="root needs 2 root key"):
        repo.renew_root(key_ring(keys, root_key_files=(keys / "root-2.key.pem",)), days=365)
    assert not (repo.metadata / "2.root.json").exists()
    two = key_ring(keys, root_key_files=(keys / "root-2.key.pem", keys / "root-3.key.pem"))
    renewed = repo.renew_root(two, days=730)
    assert renewed.signed.version == 2
    client = updater(repo.media, pinned, tmp_path / "terminal")
    client.refresh()  # walks from the pinned version 1 to version 2
    trusted = Metadata.from_bytes((tmp_path / "terminal" / "trusted" / "root.json").read_bytes())
    assert trusted.signed.version == 2


def test_the_commands_build_and_sign_end_to_end(
    tmp_path: Path, enrolled: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engine.cli import main

    keys = tmp_path / "keys"
    make_keys(keys)
    repo = tmp_path / "repo"
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    monkeypatch.setenv("RFR_CENTRAL_PASSPHRASE", PASSPHRASE)
    common = ["--repo", str(repo), "--keys", str(keys), "--force", "force-a", "--group", "custody-suites", "--json"]
    assert (
        main(
            [
                "central",
                "package",
                "build",
                "--kind",
                "library",
                "--library",
                "custody",
                "--enrolment",
                str(enrolled),
                *common,
            ]
        )
        == 0
    )
    built = json.loads(capsys.readouterr().out)
    assert built["sequence"] == 1 and built["images_added"] == 6
    monkeypatch.setenv("RFR_CENTRAL_PASSPHRASE", PASSPHRASE)  # each command takes it out of its environment
    assert (
        main(["central", "package", "build", "--kind", "policy", "--policy", str(default_policy_path()), *common]) == 0
    )
    capsys.readouterr()
    monkeypatch.setenv("RFR_CENTRAL_PASSPHRASE", PASSPHRASE)
    assert (
        main(
            [
                "central",
                "package",
                "build",
                "--kind",
                "policy",
                "--policy",
                str(default_policy_path()),
                "--sequence",
                "1",
                *common,
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was already issued" in err
    monkeypatch.setenv("RFR_CENTRAL_PASSPHRASE", "not the central passphrase")
    assert main(["central", "package", "sign", "--repo", str(repo), "--keys", str(keys)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not open it" in err
    assert not (repo / "rfr-packages" / "metadata" / "timestamp.json").exists()  # nothing signed
    monkeypatch.setenv("RFR_CENTRAL_PASSPHRASE", PASSPHRASE)
    assert main(["central", "package", "sign", "--repo", str(repo), "--keys", str(keys), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["packages"]) == 2 and report["versions"]["timestamp"] == 1

    # The terminals' media key file: the key the packages above were sealed with, 0600, never overwritten.
    out = tmp_path / "force-a.media-key"
    monkeypatch.setenv("RFR_CENTRAL_PASSPHRASE", PASSPHRASE)
    assert main(["central", "keys", "media-key", "--keys", str(keys), "--out", str(out), "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    terminal_key = read_media_key_file(out)
    assert oct(out.stat().st_mode & 0o777) == "0o600" and written["media_key_id"] == terminal_key.key_id
    manifest = report["packages"][0]
    pending = repo / "rfr-packages" / "targets"
    sealed = next(pending.glob(f"**/*.{Path(manifest).name}"))
    assert parse_manifest(terminal_key.open(manifest, sealed.read_bytes())).force == "force-a"
    monkeypatch.setenv("RFR_CENTRAL_PASSPHRASE", PASSPHRASE)
    assert main(["central", "keys", "media-key", "--keys", str(keys), "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err
    monkeypatch.setenv("RFR_CENTRAL_PASSPHRASE", "not the central passphrase")
    assert main(["central", "keys", "media-key", "--keys", str(keys), "--out", str(tmp_path / "other")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not open it" in err and not (tmp_path / "other").exists()
