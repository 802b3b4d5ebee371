"""Fixtures for the central unit's tests: keys with a cheap passphrase cost, LFW manifests, one real enrolment."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

from engine.central.keys import KeyRing, KeysMade, init_keys
from engine.central.sealed import Kdf

PASSPHRASE = "central passphrase for tests"
ROOT_PASSPHRASES = ("root one passphrase", "root two passphrase", "root three passphrase")
CHEAP = Kdf(n=2**14)  # the real cost (2**17) is a second per key file: tests need not pay it each time
# Two people with two images each, and two with one: six real photographs, one face each.
LFW_IMAGES = (
    ("Abel_Pacheco", "Abel_Pacheco_0001.jpg"),
    ("Abel_Pacheco", "Abel_Pacheco_0002.jpg"),
    ("Amber_Tamblyn", "Amber_Tamblyn_0001.jpg"),
    ("Amber_Tamblyn", "Amber_Tamblyn_0002.jpg"),
    ("Akhmed_Zakayev", "Akhmed_Zakayev_0001.jpg"),
    ("Anders_Fogh_Rasmussen", "Anders_Fogh_Rasmussen_0001.jpg"),
)
COLUMNS = ("subject", "image", "sex", "ic_code", "date_of_birth", "capture_date", "age_range", "source")


def write_manifest(path: Path, data_root: Path, *, extra_rows: list[dict[str, str]] | None = None) -> Path:
    """A central enrolment manifest (CSV) of the LFW images above, with paths relative to ``data_root``'s lfw."""
    rows = []
    for person, image in LFW_IMAGES:
        rows.append(
            {
                "subject": f"CRO-{person}",
                "image": str(data_root / "lfw" / "images" / person / image),
                "sex": "female" if person == "Amber_Tamblyn" else "male",
                "ic_code": "IC1",
                "date_of_birth": "1983-05-20" if person == "Amber_Tamblyn" else "1970-03-01",
                "capture_date": "2021-06-01",
                "age_range": "",
                "source": "custody suite A",
            }
        )
    rows += extra_rows or []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in COLUMNS})
    return path


def make_keys(directory: Path, *, roots: int = 1, threshold: int = 1) -> KeysMade:
    return init_keys(directory, PASSPHRASE, ROOT_PASSPHRASES[:roots], root_threshold=threshold, kdf=CHEAP)


def key_ring(directory: Path, *, root_key_files: tuple[Path, ...] = ()) -> KeyRing:
    return KeyRing(directory, lambda: PASSPHRASE, lambda number, _path: ROOT_PASSPHRASES[number - 1], root_key_files)


class FolderFetcher(FetcherInterface):
    """Reads the repository folder as a terminal reads mounted media (the simplest form: MEDIA's is hardened)."""

    BASE = "https://media.invalid/"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = self.folder / url.removeprefix(self.BASE)
        if not path.is_file():
            raise DownloadHTTPError(f"{url} is not on the media", 404)
        yield path.read_bytes()


def updater(media: Path, root: bytes, work: Path) -> Updater:
    """A TUF client on ``media`` (the repository's rfr-packages folder) from the pinned ``root``."""
    (work / "trusted").mkdir(parents=True, exist_ok=True)
    (work / "downloads").mkdir(parents=True, exist_ok=True)
    return Updater(
        str(work / "trusted"),
        FolderFetcher.BASE + "metadata/",
        str(work / "downloads"),
        FolderFetcher.BASE + "targets/",
        FolderFetcher(media),
        UpdaterConfig(targets_max_length=64 << 20),
        bootstrap=root,
    )


@pytest.fixture(scope="session")
def enrolled(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """One real enrolment of the LFW manifest on a LocalCluster of one worker process (shared: seconds, once)."""
    from engine.central.enrol import enrol

    base = tmp_path_factory.mktemp("central-enrolment")
    manifest = write_manifest(base / "manifest.csv", data_root)
    enrol(manifest, base / "out", PASSPHRASE, workers=1, threads_per_worker=1, batch_size=4, kdf=CHEAP)
    return base / "out"
