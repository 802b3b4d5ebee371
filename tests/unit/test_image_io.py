"""Hostile-input-safe image loading: every refusal names the problem, every accepted form decodes right.

Bad files are built here, byte by byte, into tmp_path; real photographs come from RFR_DATA.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import resource
import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from engine.errors import ImageError
from engine.faces import image_io
from engine.faces.image_io import MAX_FILE_BYTES, LoadedImage, load_image

FR_EXAMPLES = Path("examples/face_recognition/examples")
FR_TESTS = Path("examples/face_recognition/tests/test_images")

# A 16x16 CMYK JPEG (Adobe APP14, inverted CMYK as Photoshop writes it): quadrants red, green, blue,
# white. Written once by Pillow from a synthetic array; no encoder here can write CMYK.
CMYK_JPEG = base64.b64decode(
    "/9j/7gAOQWRvYmUAZAAAAAAA/9sAQwACAQEBAQECAQEBAgICAgIEAwICAgIFBAQDBAYFBgYGBQYGBgcJCAYHCQcGBggLCAkKCgoKCgYICwwL"
    "CgwJCgoK/8AAFAgAEAAQBEMRAE0RAFkRAEsRAP/EAB8AAAEFAQEBAQEBAAAAAAAAAAABAgMEBQYHCAkKC//EALUQAAIBAwMCBAMFBQQEAAAB"
    "fQECAwAEEQUSITFBBhNRYQcicRQygZGhCCNCscEVUtHwJDNicoIJChYXGBkaJSYnKCkqNDU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
    "anN0dXZ3eHl6g4SFhoeIiYqSk5SVlpeYmZqio6Slpqeoqaqys7S1tre4ubrCw8TFxsfIycrS09TV1tfY2drh4uPk5ebn6Onq8fLz9PX29/j5"
    "+v/aAA4EQwBNAFkASwAAPwD9/K/n/r+f+v38r+AOv7/KKKK/gDr+/wAor+/yv7/KKK//2Q=="
)


# ---------------------------------------------------------------- builders


def _encode(ext: str, img: np.ndarray, params: tuple[int, ...] = ()) -> bytes:
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    return bytes(buf.tobytes())


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png(
    width: int, height: int, raw: bytes, *, color_type: int, bit_depth: int, extra: tuple[bytes, ...] = ()
) -> bytes:
    """A PNG from unfiltered scanlines; ``extra`` chunks go between IHDR and IDAT."""
    stride = len(raw) // height
    rows = b"".join(b"\x00" + raw[i * stride : (i + 1) * stride] for i in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + b"".join(extra)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def _tiff_ifd(entries: list[tuple[int, int, list[int]]], order: str = "<") -> bytes:
    """A TIFF structure holding one directory (no image data): for EXIF blocks."""
    return _tiff(np.zeros((0, 0), np.uint8), entries, order=order, image_tags=False)


def _tiff(
    img: np.ndarray,
    extra: list[tuple[int, int, list[int]]] | None = None,
    *,
    order: str = "<",
    image_tags: bool = True,
    size: tuple[int, int] | None = None,
) -> bytes:
    """A baseline uncompressed single-strip TIFF (or just a directory when ``image_tags`` is False)."""
    entries = list(extra or [])
    data = b""
    if image_tags:
        height, width = img.shape[:2] if size is None else size[::-1]
        spp = 1 if img.ndim == 2 else img.shape[2]
        data = img.astype(img.dtype.newbyteorder(order)).tobytes()
        entries += [
            (256, 4, [width]),
            (257, 4, [height]),
            (258, 3, [img.dtype.itemsize * 8] * spp),
            (259, 3, [1]),
            (262, 3, [1 if spp == 1 else 2]),
            (273, 4, [0]),  # patched below to the data offset
            (277, 3, [spp]),
            (278, 4, [height]),
            (279, 4, [len(data)]),
        ]
    entries.sort()
    ifd_size = 2 + 12 * len(entries) + 4
    overflow = b""
    body = struct.pack(order + "H", len(entries))
    for tag, kind, values in entries:
        fmt = "H" if kind == 3 else "I"
        packed = struct.pack(order + fmt * len(values), *values)
        if len(packed) > 4:
            body += struct.pack(order + "HHII", tag, kind, len(values), 8 + ifd_size + len(overflow))
            overflow += packed
        else:
            body += struct.pack(order + "HHI", tag, kind, len(values)) + packed.ljust(4, b"\x00")
    body += b"\x00\x00\x00\x00"
    data_offset = 8 + ifd_size + len(overflow)
    if image_tags:
        pos = body.find(struct.pack(order + "HHI", 273, 4, 1))
        body = body[: pos + 8] + struct.pack(order + "I", data_offset) + body[pos + 12 :]
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    return magic + struct.pack(order + "I", 8) + body + overflow + data


def _exif(orientation: int, order: str = "<") -> bytes:
    return _tiff_ifd([(0x0112, 3, [orientation])], order)


def _jpeg_with_app1(jpeg: bytes, payload: bytes) -> bytes:
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def _jpeg_with_orientation(jpeg: bytes, orientation: int, order: str = "<") -> bytes:
    return _jpeg_with_app1(jpeg, b"Exif\x00\x00" + _exif(orientation, order))


def _sof_offset(jpeg: bytes) -> int:
    for marker in (b"\xff\xc0", b"\xff\xc2"):
        pos = jpeg.find(marker)
        if pos > 0:
            return pos
    raise AssertionError("no SOF in test JPEG")


def _jpeg_declaring(jpeg: bytes, width: int, height: int) -> bytes:
    sof = _sof_offset(jpeg)
    return jpeg[: sof + 5] + struct.pack(">HH", height, width) + jpeg[sof + 9 :]


def _riff(*chunks: bytes) -> bytes:
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) % 2 else b"")


def _vp8x(width: int, height: int, flags: int) -> bytes:
    payload = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return _riff_chunk(b"VP8X", payload)


def _webp_extended(img: np.ndarray, *, exif: bytes | None = None, canvas: tuple[int, int] | None = None) -> bytes:
    lossless = _encode(".webp", img, (cv2.IMWRITE_WEBP_QUALITY, 101))
    assert lossless[12:16] == b"VP8L"
    height, width = img.shape[:2]
    cw, ch = canvas or (width, height)
    chunks = [_vp8x(cw, ch, 0x08 if exif else 0), lossless[12:]]
    if exif is not None:
        chunks.append(_riff_chunk(b"EXIF", exif))
    return _riff(*chunks)


def _bmp_header(width: int, height: int) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def _photo(data_root: Path, rel: Path | str) -> bytes:
    return (data_root / rel).read_bytes()


def _marker_image(height: int = 40, width: int = 64) -> np.ndarray:
    """BGR grey image, red block at stored top-left, green block at stored top-right."""
    img = np.full((height, width, 3), 128, np.uint8)
    img[:10, :10] = (0, 0, 255)
    img[:10, -10:] = (0, 255, 0)
    return img


def _corner_colour(rgb: np.ndarray, corner: str) -> str:
    rows = slice(2, 7) if corner[0] == "T" else slice(-7, -2)
    cols = slice(2, 7) if corner[1] == "L" else slice(-7, -2)
    r, g, b = rgb[rows, cols].reshape(-1, 3).mean(axis=0)
    if r > 200 and g < 60 and b < 60:
        return "red"
    if g > 200 and r < 60 and b < 60:
        return "green"
    return "grey"


# ---------------------------------------------------------------- refusals


def _refusal_cases(root: Path) -> list[tuple[str, Callable[[], bytes], str]]:
    photo = _photo(root, FR_EXAMPLES / "obama-240p.jpg")
    grey = np.full((30, 50), 100, np.uint8)
    sof = _sof_offset(photo)
    sos = photo.find(b"\xff\xda")
    scan = photo[sos:-2]
    rng = random.Random(1234)

    def corrupt_entropy() -> bytes:
        damaged = bytearray(photo)
        mid = len(photo) // 2
        damaged[mid : mid + 50] = b"\x00" * 50
        return bytes(damaged)

    return [
        ("empty", lambda: b"", r"empty \(0 bytes\)"),
        ("random bytes", lambda: bytes(rng.getrandbits(8) for _ in range(4096)), "not an image"),
        ("text file", lambda: b"Officer notes: subject seen at 14:02 on Tuesday.\n" * 20, "not an image"),
        ("truncated JPEG", lambda: photo[: len(photo) // 2], "truncated or corrupt.*re-export"),
        ("JPEG without EOI", lambda: photo[:-2], "truncated or corrupt.*end-of-image"),
        ("JPEG cut inside a header", lambda: photo[: sof + 4], "truncated or corrupt"),
        ("JPEG with damaged image data", corrupt_entropy, "truncated or corrupt.*damaged image data"),
        ("JPEG signature only", lambda: b"\xff\xd8", "truncated or corrupt"),
        ("12-bit JPEG", lambda: photo[: sof + 4] + b"\x0c" + photo[sof + 5 :], "12-bit JPEG"),
        ("JPEG with 101 scans", lambda: photo[:-2] + scan * 100 + b"\xff\xd9", "more than 100 JPEG scans"),
        ("JPEG with 70000 segments", lambda: photo[:2] + b"\xff\xfe\x00\x02" * 70_000 + photo[2:], "65536 internal"),
        ("truncated PNG", lambda: _encode(".png", grey)[:-20], "truncated or corrupt.*PNG end chunk"),
        ("PNG without IEND", lambda: _encode(".png", grey)[:-12], "truncated or corrupt"),
        ("PNG with bad IHDR", lambda: b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", b"\x00" * 5), "PNG header"),
        (
            "animated PNG",
            lambda: _png(2, 2, b"\x00" * 4, color_type=0, bit_depth=8, extra=(_chunk(b"acTL", b"\x00" * 8),)),
            "animated PNG",
        ),
        (
            "PNG with 70000 chunks",
            lambda: _png(2, 2, b"\x00" * 4, color_type=0, bit_depth=8, extra=(_chunk(b"tEXt", b"k\x00v") * 70_000,)),
            "65536 internal",
        ),
        ("PNG with damaged pixels", lambda: _png(4, 4, b"\x00" * 8, color_type=0, bit_depth=8), "decoder failed"),
        ("truncated TIFF", lambda: _tiff(grey)[:200], "truncated or corrupt"),
        ("TIFF directory out of file", lambda: b"II*\x00\xff\xff\x00\x00" + b"\x00" * 30, "TIFF directory"),
        ("TIFF rotated", lambda: _tiff(grey, [(0x0112, 3, [6])]), r"orientation tag \(6\)"),
        (
            "TIFF float samples",
            lambda: _tiff(grey.astype(np.float32), [(339, 3, [3])]),
            r"non-standard samples \(float32\)",
        ),
        ("truncated BMP", lambda: _encode(".bmp", grey)[:600], "truncated or corrupt"),
        ("BMP header only", lambda: b"BM\x00\x00", "BMP header"),
        ("truncated WebP", lambda: _encode(".webp", grey)[:40], "truncated or corrupt"),
        ("animated WebP", lambda: _riff(_vp8x(8, 8, 0x02)), "animated WebP"),
        ("WebP canvas larger than image", lambda: _webp_extended(grey, canvas=(90, 90)), "corrupt|declares"),
        ("GIF", lambda: b"GIF89a" + b"\x00" * 64, "a GIF"),
        ("HEIC", lambda: b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, "HEIC"),
        ("AVIF", lambda: b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1" + b"\x00" * 64, "AVIF"),
        ("JPEG 2000", lambda: b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 64, "JPEG 2000"),
        ("BigTIFF", lambda: b"II+\x00\x08\x00\x00\x00" + b"\x00" * 64, "BigTIFF"),
        ("PDF", lambda: b"%PDF-1.7\n" + b"\x00" * 64, "PDF"),
    ]


def _bomb_cases(root: Path) -> list[tuple[str, Callable[[], bytes], str]]:
    photo = _photo(root, FR_EXAMPLES / "obama-240p.jpg")
    tiny = np.zeros((2, 2), np.uint8)
    return [
        ("JPEG", lambda: _jpeg_declaring(photo, 30000, 30000), "30000 x 30000"),
        ("PNG", lambda: _png(30000, 30000, b"\x00" * 30000, color_type=0, bit_depth=8), "30000 x 30000"),
        ("TIFF", lambda: _tiff(tiny, size=(30000, 30000)), "30000 x 30000"),
        ("BMP", lambda: _bmp_header(30000, -30000) + b"\x00" * 64, "30000 x 30000"),
        ("WebP", lambda: _webp_extended(tiny, canvas=(16383, 16383)), "16383 x 16383"),
        ("zero-height JPEG", lambda: _jpeg_declaring(photo, 427, 0), "declares no size|does not declare the height"),
    ]


REFUSAL_NAMES = [
    "empty",
    "random bytes",
    "text file",
    "truncated JPEG",
    "JPEG without EOI",
    "JPEG cut inside a header",
    "JPEG with damaged image data",
    "JPEG signature only",
    "12-bit JPEG",
    "JPEG with 101 scans",
    "JPEG with 70000 segments",
    "truncated PNG",
    "PNG without IEND",
    "PNG with bad IHDR",
    "animated PNG",
    "PNG with 70000 chunks",
    "PNG with damaged pixels",
    "truncated TIFF",
    "TIFF directory out of file",
    "TIFF rotated",
    "TIFF float samples",
    "truncated BMP",
    "BMP header only",
    "truncated WebP",
    "animated WebP",
    "WebP canvas larger than image",
    "GIF",
    "HEIC",
    "AVIF",
    "JPEG 2000",
    "BigTIFF",
    "PDF",
]


def test_refusal_table_is_complete(data_root: Path) -> None:
    assert [name for name, _, _ in _refusal_cases(data_root)] == REFUSAL_NAMES


@pytest.mark.parametrize("case", REFUSAL_NAMES)
def test_bad_file_is_refused_with_one_clean_line(
    case: str, data_root: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    build, pattern = next((b, p) for n, b, p in _refusal_cases(data_root) if n == case)
    path = tmp_path / "probe.img"
    path.write_bytes(build())
    with pytest.raises(ImageError, match=pattern) as refused:
        load_image(path)
    message = refused.value.diagnostics()
    assert str(path) in message
    assert "\n" not in str(refused.value)
    out, err = capfd.readouterr()
    assert (out, err) == ("", ""), "codec warnings leaked to the terminal"


@pytest.mark.parametrize("case", ["JPEG", "PNG", "TIFF", "BMP", "WebP", "zero-height JPEG"])
def test_decompression_bomb_refused_before_decoding(
    case: str, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build, pattern = next((b, p) for n, b, p in _bomb_cases(data_root) if n == case)
    data = build()
    assert len(data) < 100_000  # small file, huge declared image

    def decoder_must_not_run(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("decoder ran on a decompression bomb")

    monkeypatch.setattr(image_io.cv2, "imdecode", decoder_must_not_run)
    with pytest.raises(ImageError, match=pattern):
        load_image(data, name="bomb")


def test_bomb_message_says_what_to_do(data_root: Path) -> None:
    with pytest.raises(ImageError, match=r"over the limit of 50 megapixels.*export it at a smaller size"):
        load_image(_jpeg_declaring(_photo(data_root, FR_EXAMPLES / "obama-240p.jpg"), 30000, 30000))


def test_jpeg_bomb_keeps_memory_bounded(data_root: Path) -> None:
    """Unpatched: a 30000 x 30000 JPEG would need 2.7 GB to decode; peak RSS must not move."""
    bomb = _jpeg_declaring(_photo(data_root, FR_EXAMPLES / "obama-240p.jpg"), 30000, 30000)
    before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(3):
        with pytest.raises(ImageError, match="30000 x 30000"):
            load_image(bomb)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_kib) / 1024
    assert grown_mib < 32


def test_pixel_budget_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_io, "MAX_PIXELS", 100 * 80)
    assert load_image(_encode(".png", np.zeros((80, 100), np.uint8))).width == 100
    with pytest.raises(ImageError, match="101 x 80"):
        load_image(_encode(".png", np.zeros((80, 101), np.uint8)))


def test_oversized_file_refused_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.jpg"
    with path.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(ImageError, match=r"too large \(67,108,865 bytes; the limit is 64 MiB\)"):
        load_image(path)
    with pytest.raises(ImageError, match="too large"):
        load_image(b"\xff\xd8\xff" + bytes(MAX_FILE_BYTES))


def test_directory_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=f"{tmp_path}.*is a folder"):
        load_image(tmp_path)


def test_missing_file_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "no_such_probe.jpg"
    with pytest.raises(ImageError, match=r"no_such_probe\.jpg does not exist"):
        load_image(path)


def test_unreadable_file_refused_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.jpg"
    path.write_bytes(b"\xff\xd8\xff")
    path.chmod(0)
    if os.geteuid() == 0:
        # root ignores permission bits; give the loader what the kernel gives any other user.
        def denied(*args: Any, **kwargs: Any) -> int:
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(image_io.os, "open", denied)
    with pytest.raises(ImageError, match=r"locked\.jpg cannot be read \(permission denied\)"):
        load_image(path)


def test_fifo_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="not a regular file"):
        load_image(fifo)


def test_control_characters_in_names_are_neutralised() -> None:
    with pytest.raises(ImageError) as refused:
        load_image(b"not an image", name="probe\x1b[2J\nforged line.jpg")
    assert "\x1b" not in str(refused.value) and "\n" not in str(refused.value)
    assert "probe?[2J?forged line.jpg" in str(refused.value)


def test_wrong_source_type_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        load_image("a/str/path.jpg")  # type: ignore[arg-type]


# ---------------------------------------------------------------- accepted forms


def _check_invariants(image: LoadedImage) -> None:
    assert image.rgb.dtype == np.uint8
    assert image.rgb.ndim == 3 and image.rgb.shape[2] == 3
    assert image.rgb.flags.c_contiguous
    assert not image.rgb.flags.writeable
    assert image.rgb.shape[:2] == (image.height, image.width)


@pytest.mark.parametrize(
    "rel",
    [
        FR_EXAMPLES / "obama.jpg",
        FR_EXAMPLES / "biden.jpg",
        FR_EXAMPLES / "two_people.jpg",
        FR_EXAMPLES / "knn_examples/train/kit_harington/john2.jpeg",
        Path("examples/dlib/faces/Tom_Cruise_avp_2014_4.jpg"),
        Path("lfw/images/George_W_Bush/George_W_Bush_0001.jpg"),
    ],
)
def test_real_jpeg_matches_opencv_reference_decode(rel: Path, data_root: Path) -> None:
    path = data_root / rel
    image = load_image(path)
    _check_invariants(image)
    reference = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(image.rgb, reference)
    assert image.format == "JPEG"
    assert image.orientation_applied == 1
    assert image.source_bytes_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_example_photo_loads_as_opencv_shows_it(data_root: Path) -> None:
    """All shared example photographs (JPEG and PNG) load, upright as OpenCV's own EXIF-aware reader shows them."""
    paths = sorted(p for p in (data_root / "examples").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert len(paths) > 50
    for path in paths:
        image = load_image(path)
        reference = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert image.rgb.shape == reference.shape, path


@pytest.mark.parametrize("rel", [FR_TESTS / "32bit.png", FR_EXAMPLES / "alex-lacamoire.png"])
def test_real_rgba_png(rel: Path, data_root: Path) -> None:
    path = data_root / rel
    bgra = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert bgra.shape[2] == 4  # the premise: these files really carry alpha
    image = load_image(path)
    _check_invariants(image)
    assert image.format == "PNG"
    alpha = bgra[:, :, 3:].astype(np.float64) / 255.0
    expected = np.rint(bgra[:, :, 2::-1].astype(np.float64) * alpha).astype(np.uint8)
    np.testing.assert_array_equal(image.rgb, expected)


def test_rgba_is_composited_on_black() -> None:
    bgra = np.zeros((4, 6, 4), np.uint8)
    bgra[:, :] = (50, 100, 200, 128)  # half-transparent orange
    bgra[0, 0] = (255, 255, 255, 0)  # hidden white under a fully transparent pixel
    bgra[0, 1] = (10, 20, 30, 255)
    rgb = load_image(_encode(".png", bgra)).rgb
    assert tuple(rgb[1, 1]) == (100, 50, 25)  # 200*128/255 = 100.4, 100*128/255 = 50.2, 50*128/255 = 25.1
    assert tuple(rgb[0, 0]) == (0, 0, 0)
    assert tuple(rgb[0, 1]) == (30, 20, 10)


def test_palette_png_with_transparency() -> None:
    palette = bytes([255, 0, 0, 0, 0, 255, 10, 20, 30])
    trns = bytes([255, 0, 255])  # entry 1 fully transparent
    raw = bytes([0, 1, 2, 0, 1, 2])
    data = _png(3, 2, raw, color_type=3, bit_depth=8, extra=(_chunk(b"PLTE", palette), _chunk(b"tRNS", trns)))
    rgb = load_image(data).rgb
    assert rgb[0].tolist() == [[255, 0, 0], [0, 0, 0], [10, 20, 30]]


def test_one_bit_greyscale_png_is_stretched_to_full_range() -> None:
    raw = bytes([0b10100000, 0b01010000])  # 4 x 2 pixels, 1 bit each
    rgb = load_image(_png(4, 2, raw, color_type=0, bit_depth=1)).rgb
    assert rgb[:, :, 0].tolist() == [[255, 0, 255, 0], [0, 255, 0, 255]]


def test_grey_alpha_png() -> None:
    raw = bytes([200, 255, 200, 0, 100, 128, 0, 255])  # (grey, alpha) pairs, 4 x 1
    rgb = load_image(_png(4, 1, raw, color_type=4, bit_depth=8)).rgb
    assert rgb[0, :, 1].tolist() == [200, 0, 50, 0]
    assert (rgb[..., 0] == rgb[..., 2]).all()


def _gradient16() -> np.ndarray:
    values = np.arange(0, 65536, 7, dtype=np.uint32)
    values = np.concatenate([values, [128, 129, 385, 386, 32767, 32768, 65535]])
    values = np.concatenate([values, np.full((-len(values)) % 64, 65535)])  # whole rows of 64
    return values.reshape(-1, 64).astype(np.uint16)


def _expected8(values16: np.ndarray) -> np.ndarray:
    return np.rint(values16.astype(np.float64) * 255.0 / 65535.0).astype(np.uint8)


@pytest.mark.parametrize("ext", [".png", ".tiff"])
def test_sixteen_bit_grey_is_scaled_with_rounding(ext: str) -> None:
    grad = _gradient16()
    image = load_image(_encode(ext, grad))
    for channel in range(3):
        np.testing.assert_array_equal(image.rgb[..., channel], _expected8(grad))
    assert image.rgb.max() == 255 and image.rgb.min() == 0


def test_sixteen_bit_png_from_raw_bytes() -> None:
    grad = _gradient16()
    height, width = grad.shape
    data = _png(width, height, grad.astype(">u2").tobytes(), color_type=0, bit_depth=16)
    np.testing.assert_array_equal(load_image(data).rgb[..., 0], _expected8(grad))


@pytest.mark.parametrize("ext", [".png", ".tiff"])
def test_sixteen_bit_colour_channels_stay_in_order(ext: str) -> None:
    grad = _gradient16()
    bgr = np.dstack([grad, 65535 - grad, np.full_like(grad, 40000)])
    rgb = load_image(_encode(ext, bgr)).rgb
    np.testing.assert_array_equal(rgb[..., 0], np.full_like(rgb[..., 0], 156))  # 40000 * 255 / 65535 = 155.6
    np.testing.assert_array_equal(rgb[..., 1], _expected8(65535 - grad))
    np.testing.assert_array_equal(rgb[..., 2], _expected8(grad))


def test_sixteen_bit_rgba_png_is_scaled_then_composited() -> None:
    bgra = np.zeros((2, 2, 4), np.uint16)
    bgra[..., :3] = 65535
    bgra[..., 3] = [[65535, 32768], [0, 257 * 51]]
    rgb = load_image(_encode(".png", bgra)).rgb
    assert rgb[..., 0].tolist() == [[255, 128], [0, 51]]


def test_greyscale_jpeg_becomes_rgb() -> None:
    grey = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (32, 1))
    data = _encode(".jpg", grey, (cv2.IMWRITE_JPEG_QUALITY, 95))
    assert data[_sof_offset(data) + 9] == 1  # one component: a real greyscale JPEG
    image = load_image(data)
    assert (image.rgb[..., 0] == image.rgb[..., 1]).all() and (image.rgb[..., 1] == image.rgb[..., 2]).all()
    assert np.abs(image.rgb[..., 0].astype(int) - grey).max() <= 4


def test_cmyk_jpeg() -> None:
    image = load_image(CMYK_JPEG)
    assert (image.width, image.height, image.format) == (16, 16, "JPEG")
    expected = {(4, 4): (255, 0, 0), (4, 12): (0, 255, 0), (12, 4): (0, 0, 255), (12, 12): (255, 255, 255)}
    for (y, x), colour in expected.items():
        assert np.abs(image.rgb[y, x].astype(int) - colour).max() <= 8, (y, x, image.rgb[y, x])


@pytest.mark.parametrize(
    ("ext", "fmt", "params", "tolerance"),
    [
        (".bmp", "BMP", (), 0),
        (".tiff", "TIFF", (), 0),
        (".webp", "WEBP", (cv2.IMWRITE_WEBP_QUALITY, 101), 0),
        (".webp", "WEBP", (cv2.IMWRITE_WEBP_QUALITY, 90), 4),
        (".png", "PNG", (), 0),
        (".jpg", "JPEG", (cv2.IMWRITE_JPEG_QUALITY, 95), 4),
    ],
)
def test_other_formats(ext: str, fmt: str, params: tuple[int, ...], tolerance: int) -> None:
    """Lossless formats must match exactly; lossy ones on average within ``tolerance`` grey levels."""
    bgr = _marker_image()
    image = load_image(_encode(ext, bgr, params))
    _check_invariants(image)
    assert image.format == fmt
    diff = np.abs(image.rgb.astype(int) - bgr[..., ::-1])
    assert (diff.max() if tolerance == 0 else diff.mean()) <= tolerance
    _assert_upright(image, 1, (40, 64))


def test_baseline_tiff_from_bytes_and_big_endian() -> None:
    rgb = _marker_image()[..., ::-1].copy()
    for order in ("<", ">"):
        np.testing.assert_array_equal(load_image(_tiff(rgb, order=order)).rgb, rgb)


def test_bottom_up_and_top_down_bmp() -> None:
    bgr = _marker_image(height=5, width=7)  # 21-byte rows: padded to 24
    rows = [bgr[y].tobytes() + b"\x00" * 3 for y in range(5)]
    bottom_up = _bmp_header(7, 5) + b"".join(reversed(rows))
    top_down = _bmp_header(7, -5) + b"".join(rows)
    for data in (bottom_up, top_down, _encode(".bmp", bgr)):
        image = load_image(data)
        assert image.format == "BMP"
        np.testing.assert_array_equal(image.rgb, bgr[..., ::-1])


def test_jpeg_with_data_after_end_marker_is_accepted(data_root: Path) -> None:
    photo = _photo(data_root, FR_EXAMPLES / "obama-240p.jpg")
    reference = load_image(photo).rgb
    np.testing.assert_array_equal(load_image(photo + b"\x00" * 100 + b"trailer").rgb, reference)


def test_jpeg_padding_before_end_marker_is_accepted_quietly(data_root: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Cameras often pad before EOI; libjpeg calls that 'extraneous bytes before marker 0xd9'."""
    photo = _photo(data_root, FR_EXAMPLES / "obama-240p.jpg")
    reference = load_image(photo).rgb
    np.testing.assert_array_equal(load_image(photo[:-2] + b"\x12\x34\x56" + b"\xff\xd9").rgb, reference)
    assert capfd.readouterr() == ("", "")


def test_name_is_used_for_bytes() -> None:
    with pytest.raises(ImageError, match=r"custody_still\.jpg is empty"):
        load_image(b"", name="custody_still.jpg")


def test_concurrent_loads_are_safe(data_root: Path) -> None:
    photo = _photo(data_root, FR_EXAMPLES / "obama-480p.jpg")
    reference = load_image(photo).rgb
    bad = photo[:-2]
    results: list[bool] = []

    def work() -> None:
        for _ in range(5):
            results.append(np.array_equal(load_image(photo).rgb, reference))
            try:
                load_image(bad)
                results.append(False)
            except ImageError:
                results.append(True)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 40


# ---------------------------------------------------------------- EXIF orientation

# Where the stored top-left (red) and top-right (green) blocks must appear, read from the EXIF 2.3
# definitions (e.g. 6: "the 0th row is the visual right-hand side, the 0th column the visual top").
ORIENTATION_CORNERS = {
    1: ("TL", "TR"),
    2: ("TR", "TL"),
    3: ("BR", "BL"),
    4: ("BL", "BR"),
    5: ("TL", "BL"),
    6: ("TR", "BR"),
    7: ("BR", "TR"),
    8: ("BL", "TL"),
}


def _assert_upright(image: LoadedImage, orientation: int, stored_hw: tuple[int, int]) -> None:
    red, green = ORIENTATION_CORNERS[orientation]
    expected_hw = stored_hw if orientation <= 4 else stored_hw[::-1]
    assert image.rgb.shape[:2] == expected_hw
    assert (image.height, image.width) == expected_hw
    colours = {corner: _corner_colour(image.rgb, corner) for corner in ("TL", "TR", "BL", "BR")}
    assert colours[red] == "red" and colours[green] == "green", colours
    assert sorted(colours.values()) == ["green", "grey", "grey", "red"]
    assert image.orientation_applied == orientation


def test_opencv_unchanged_decode_ignores_exif_orientation() -> None:
    """The premise of the design, pinned: OpenCV 5 rotates for IMREAD_COLOR but not IMREAD_UNCHANGED."""
    jpeg = _jpeg_with_orientation(_encode(".jpg", _marker_image()), 6)
    buf = np.frombuffer(jpeg, np.uint8)
    assert cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).shape[:2] == (40, 64)
    assert cv2.imdecode(buf, cv2.IMREAD_COLOR).shape[:2] == (64, 40)


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation(orientation: int, order: str) -> None:
    jpeg = _jpeg_with_orientation(_encode(".jpg", _marker_image(), (cv2.IMWRITE_JPEG_QUALITY, 95)), orientation, order)
    image = load_image(jpeg)
    _check_invariants(image)
    _assert_upright(image, orientation, (40, 64))
    # and the same pixels as OpenCV's own EXIF handling
    reference = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(image.rgb, reference)


@pytest.mark.parametrize("orientation", [3, 6, 7, 8])
def test_png_exif_orientation(orientation: int) -> None:
    png = _encode(".png", _marker_image())
    with_exif = png[:33] + _chunk(b"eXIf", _exif(orientation)) + png[33:]
    _assert_upright(load_image(with_exif), orientation, (40, 64))


@pytest.mark.parametrize("orientation", [2, 5, 6, 8])
def test_webp_exif_orientation(orientation: int) -> None:
    webp = _webp_extended(_marker_image(), exif=_exif(orientation, ">"))
    _assert_upright(load_image(webp), orientation, (40, 64))


def test_webp_exif_with_exif_header_prefix() -> None:
    webp = _webp_extended(_marker_image(), exif=b"Exif\x00\x00" + _exif(6))
    _assert_upright(load_image(webp), 6, (40, 64))


@pytest.mark.parametrize(
    ("label", "app1"),
    [
        ("orientation out of range", b"Exif\x00\x00" + _exif(9)),
        ("orientation zero", b"Exif\x00\x00" + _exif(0)),
        ("garbage EXIF", b"Exif\x00\x00" + b"\xde\xad\xbe\xef" * 8),
        ("directory past the end", b"Exif\x00\x00II*\x00\xff\x00\x00\x00"),
        ("entry count past the end", b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\x00"),
        ("XMP, not EXIF", b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta/>"),
    ],
)
def test_unusable_exif_means_no_rotation(label: str, app1: bytes) -> None:
    image = load_image(_jpeg_with_app1(_encode(".jpg", _marker_image()), app1))
    _assert_upright(image, 1, (40, 64))


def test_first_exif_block_wins() -> None:
    jpeg = _jpeg_with_orientation(_jpeg_with_orientation(_encode(".jpg", _marker_image()), 3), 6)
    _assert_upright(load_image(jpeg), 6, (40, 64))


def test_orientation_applies_to_real_photo(data_root: Path) -> None:
    photo = _photo(data_root, FR_EXAMPLES / "obama-240p.jpg")
    upright = load_image(photo).rgb
    rotated = load_image(_jpeg_with_orientation(photo, 8))
    assert rotated.orientation_applied == 8
    np.testing.assert_array_equal(rotated.rgb, np.rot90(upright, 1))
