"""The medium reader (paths, links, file kinds, bounds, TUF's 404) and the encrypted staging area, on their own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tuf.api import exceptions as tuf_errors

from engine.media.fetcher import METADATA_URL, MediaFetcher, MediaFolder, MediaRefused, split_path
from engine.media.staging import STAGING_DIR, StagingArea, StagingError, sweep
from engine.workspace import Workspace
from tests.plaintext import image_needles
from tests.synthetic import synthetic_jpeg
from tests.terminals import new_workspace

HOSTILE_PATHS = {
    "parent folder": "metadata/../../etc/passwd",
    "absolute": "/etc/passwd",
    "empty component": "metadata//timestamp.json",
    "dot": "./metadata/timestamp.json",
    "backslash": "metadata\\timestamp.json",
    "NUL": "metadata/timestamp.json\x00.png",
    "percent-encoded traversal": "metadata/..%2F..%2Fetc",
    "leading dot": "metadata/.hidden",
    "empty": "",
}


@pytest.mark.parametrize("path", list(HOSTILE_PATHS.values()), ids=list(HOSTILE_PATHS))
def test_unsafe_paths_are_refused_before_anything_is_opened(path: str) -> None:
    with pytest.raises(MediaRefused, match="unsafe path"):
        split_path(path)


@pytest.fixture
def medium(tmp_path: Path) -> Path:
    root = tmp_path / "usb" / "rfr-packages"
    (root / "metadata").mkdir(parents=True)
    (root / "metadata" / "timestamp.json").write_bytes(b"x" * 1000)
    return tmp_path / "usb"


def test_a_missing_file_is_tuf_s_404_so_the_root_walk_ends(medium: Path) -> None:
    with MediaFolder(medium) as folder:
        fetcher = MediaFetcher(folder)
        with pytest.raises(tuf_errors.DownloadHTTPError) as missing:
            fetcher.download_bytes(METADATA_URL + "2.root.json", 1000)
        assert missing.value.status_code == 404
        assert fetcher.download_bytes(METADATA_URL + "timestamp.json", 1000) == b"x" * 1000
        with pytest.raises(tuf_errors.DownloadLengthMismatchError):
            fetcher.download_bytes(METADATA_URL + "timestamp.json", 999)
        with pytest.raises(tuf_errors.DownloadError) as outside:
            fetcher.download_bytes("file:///etc/passwd", 1000)
        assert isinstance(outside.value.__cause__, MediaRefused)


def test_reads_are_bounded_by_what_the_caller_allows(medium: Path) -> None:
    with MediaFolder(medium) as folder:
        assert sum(len(c) for c in folder.read_chunks("metadata/timestamp.json", 10, chunk=4)) == 11


def test_the_medium_may_be_named_by_its_rfr_packages_folder(medium: Path) -> None:
    with MediaFolder(medium / "rfr-packages") as folder:
        assert folder.listing("metadata") == ["timestamp.json"]
    with pytest.raises(MediaRefused, match="not a medium from the central unit"):
        MediaFolder(medium / "rfr-packages" / "metadata")
    with pytest.raises(MediaRefused, match="does not exist"):
        MediaFolder(medium / "elsewhere")


def test_a_symlinked_rfr_packages_folder_is_refused(tmp_path: Path, medium: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "rfr-packages").symlink_to(medium / "rfr-packages", target_is_directory=True)
    with pytest.raises(MediaRefused, match="symbolic link"):
        MediaFolder(other)


def test_a_fifo_is_refused_without_being_opened(medium: Path) -> None:
    os.mkfifo(medium / "rfr-packages" / "metadata" / "snapshot.json")
    with MediaFolder(medium) as folder, pytest.raises(MediaRefused, match="FIFO"):
        folder.open_file("metadata/snapshot.json")  # would block for ever if it were opened for reading


# ---- staging ---------------------------------------------------------------------------------------------


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return new_workspace(tmp_path / "ws")


def test_staged_files_are_ciphertext_and_read_back_exactly(ws: Workspace) -> None:
    images = [synthetic_jpeg(seed, 0, size=256) for seed in range(3)]
    area = StagingArea(ws, chunk_size=4096)
    try:
        for i, data in enumerate(images):
            writer = area.writer(f"image{i}")
            for start in range(0, len(data), 1000):
                writer.write(data[start : start + 1000])
            assert writer.finish() == len(data)
        needles = image_needles(images)
        for path in area.path.iterdir():
            found = [what for what, needle in needles.items() if needle in path.read_bytes()]
            assert found == [], path
        for i, data in enumerate(images):
            with area.open(f"image{i}") as staged:
                assert staged.read_all() == data
                assert staged.read_at(5000, 300) == data[5000:5300]
    finally:
        area.remove()
    assert not area.path.exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "extend", "swap"])
def test_a_staged_file_changed_on_disk_is_refused(ws: Workspace, damage: str) -> None:
    area = StagingArea(ws, chunk_size=1024)
    try:
        writer = area.writer("blob")
        writer.write(bytes(range(256)) * 20)
        writer.finish()
        path = area.path / "blob"
        data = bytearray(path.read_bytes())
        if damage == "flip":
            data[-5] ^= 1
        elif damage == "truncate":
            data = data[: -(1024 + 28)]
            area.lengths["blob"] -= 1024  # as if the length, too, were believed
        elif damage == "extend":
            data += data[12 : 12 + 1024 + 28]
            area.lengths["blob"] += 1024
        else:
            first, second = 12, 12 + 1024 + 28
            chunk = 1024 + 28
            data[first : first + chunk], data[second : second + chunk] = (
                data[second : second + chunk],
                data[first : first + chunk],
            )
        path.write_bytes(bytes(data))
        with area.open("blob") as staged, pytest.raises(StagingError, match="fails authentication"):
            staged.read_all()
    finally:
        area.remove()


def test_sweep_removes_what_a_crash_left_but_not_what_is_in_use(ws: Workspace) -> None:
    live = StagingArea(ws)
    left = ws.directory / STAGING_DIR / "0123456789abcdef"
    left.mkdir()
    (left / ".lock").write_bytes(b"")
    (left / "blob").write_bytes(b"ciphertext")
    try:
        assert sweep(ws) == 1
        assert not left.exists() and live.path.is_dir()
    finally:
        live.remove()
    assert sweep(ws) == 0
