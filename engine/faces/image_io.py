"""Load a Probe Image or reference image from hostile bytes into an RGB array, safely.

Images arrive on officers' removable media and in library packages, so every file is
treated as hostile. Before any decoder runs, the container is walked in pure Python:
the format is recognised by its signature, the declared dimensions are read from the
header (JPEG SOF, PNG IHDR, BMP info header, TIFF first IFD, WebP VP8/VP8L/VP8X) and
checked against a pixel budget, and the structure is checked for truncation. Only then
does OpenCV decode, with its warnings captured instead of printed, and the result must
have exactly the declared size.

Choices made here, so every caller gets the same pixels:

- Accepted formats: JPEG (8-bit, including CMYK), PNG (any bit depth and colour type,
  not animated), BMP, TIFF (8 or 16 bits per sample, orientation tag 1 only) and WebP
  (not animated). Anything else is refused with a message naming the format.
- Greyscale becomes RGB; 16-bit samples are scaled to 8-bit with rounding
  (``v * 255 / 65535``), not truncated.
- Transparency is composited on black: a viewer shows transparent pixels as
  background, never the colour values hidden under them, so compositing makes the
  engine compare what the officer sees rather than hidden content.
- EXIF orientation (all eight values) is applied here, from our own EXIF reader, for
  JPEG, PNG (``eXIf``) and WebP (``EXIF``). OpenCV 5.0 applies orientation itself for
  ``IMREAD_COLOR`` but not for ``IMREAD_UNCHANGED``; we decode with ``IMREAD_UNCHANGED``
  so that the rotation happens exactly once, in one place, and is reported. OpenCV's
  TIFF decoder rotates by the TIFF orientation tag on its own, so TIFFs that carry a
  non-default orientation are refused rather than risk a double or missing rotation.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import struct
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.errors import ImageError

MAX_FILE_BYTES = 64 * 1024 * 1024
"""Largest image file accepted (64 MiB): well above any still from a camera, CCTV export or scan."""

MAX_PIXELS = 50_000_000
"""Pixel budget (50 megapixels, e.g. 8660 x 5773): covers full-resolution stills from 50 MP phone
sensors. Checked on the declared header size before decoding, so a decompression bomb (a small file
declaring e.g. 30000 x 30000) is refused before anything is allocated. At the budget, decoding a
16-bit RGBA image peaks at a few hundred MB."""

MAX_JPEG_SCANS = 100
"""Most scans accepted in one JPEG. Progressive encoders write about 10; thousands of tiny scans make
the decoder re-process the whole image each time (a known CPU exhaustion trick)."""

MAX_CONTAINER_PARTS = 65_536
"""Most JPEG marker segments, PNG chunks or WebP chunks walked in one file. Real files have dozens
to a few thousand; millions of empty chunks make the walk and the decoders crawl and flood the log."""

_DISPLAY_NAMES = {"JPEG": "JPEG", "PNG": "PNG", "BMP": "BMP", "TIFF": "TIFF", "WEBP": "WebP"}
ACCEPTED_FORMATS = tuple(_DISPLAY_NAMES)
"""Values ``LoadedImage.format`` can take."""

_REEXPORT = "re-export it from the source system and try again"
_CONVERT = "export or convert the picture to a standard JPEG or PNG and try again"

# JPEG start-of-frame markers (all coding processes); C4, C8 and CC are DHT, JPG and DAC.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_ORIENTATION = 0x0112
# In entropy-coded data 0xFF is followed by 0x00 (stuffing), a restart marker or more 0xFF fill.
_MARKER_IN_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"})

# Decoding swaps file descriptor 2 process-wide, so decodes are serialised.
_DECODE_LOCK = threading.Lock()


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A decoded image ready for the face engine.

    ``rgb`` is (height, width, 3) uint8, C-contiguous and read-only, already turned upright
    by ``orientation_applied`` (the EXIF orientation value honoured, 1 when there is none);
    ``width`` and ``height`` are those of ``rgb``. ``source_bytes_sha256`` identifies the
    exact file bytes, for the audit log and the Match Report.
    """

    rgb: np.ndarray
    width: int
    height: int
    format: str
    source_bytes_sha256: str
    orientation_applied: int


@dataclass(frozen=True)
class _Header:
    format: str
    width: int
    height: int
    orientation: int = 1
    bits: int = 8


def load_image(source: Path | bytes, *, name: str | None = None) -> LoadedImage:
    """Read, check and decode one image file (a path, or its bytes).

    ``name`` is how the image is called in error messages (defaults to the path). Every
    problem a person can cause raises ``ImageError`` with a one-line message.
    """
    if isinstance(source, Path):
        label = _printable(name if name is not None else str(source))
        data = _read_file(source, label)
    elif isinstance(source, bytes | bytearray | memoryview):
        label = _printable(name if name is not None else "(unnamed)")
        data = bytes(source)
    else:
        raise TypeError(f"load_image takes a pathlib.Path or bytes, not {type(source).__name__}")
    return _load_bytes(data, label)


def _printable(text: str) -> str:
    # File names come from hostile media: control characters could forge terminal output.
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _read_file(path: Path, label: str) -> bytes:
    try:
        # O_NONBLOCK: opening a FIFO planted on the media must not hang the terminal.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ImageError(f"Image file {label} does not exist: check the path and the media.") from None
    except PermissionError:
        raise ImageError(f"Image file {label} cannot be read (permission denied): check its permissions.") from None
    except OSError as exc:
        raise ImageError(f"Image file {label} cannot be opened ({exc.strerror}).") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ImageError(f"{label} is a folder, not an image file: choose the image file itself.")
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(f"{label} is not a regular file: choose an image file.")
        if info.st_size > MAX_FILE_BYTES:
            raise ImageError(_too_large(label, info.st_size))
        chunks: list[bytes] = []
        remaining = MAX_FILE_BYTES + 1  # bounded even if the file grows after fstat
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise ImageError(f"Image file {label} cannot be read ({exc.strerror}).") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(_too_large(label, len(data)))
    return data


def _too_large(label: str, size: int) -> str:
    return f"Image {label} is too large ({size:,} bytes; the limit is {MAX_FILE_BYTES // 2**20} MiB): {_CONVERT}."


def _load_bytes(data: bytes, label: str) -> LoadedImage:
    if not data:
        raise ImageError(f"Image {label} is empty (0 bytes): copy it again from the source.")
    if len(data) > MAX_FILE_BYTES:
        raise ImageError(_too_large(label, len(data)))
    header = _read_header(data, label)
    if header.width <= 0 or header.height <= 0:
        raise ImageError(f"Image {label} declares no size ({header.width} x {header.height}): {_REEXPORT}.")
    if header.width * header.height > MAX_PIXELS:
        raise ImageError(
            f"Image {label} declares {header.width} x {header.height} pixels, over the limit of "
            f"{MAX_PIXELS // 1_000_000} megapixels (a damaged or malicious file?): export it at a smaller size "
            "and try again."
        )
    decoded = _decode(data, header, label)
    rgb = _to_rgb8(decoded, header, label)
    rgb = np.ascontiguousarray(_apply_orientation(rgb, header.orientation))
    rgb.flags.writeable = False
    return LoadedImage(
        rgb=rgb,
        width=int(rgb.shape[1]),
        height=int(rgb.shape[0]),
        format=header.format,
        source_bytes_sha256=hashlib.sha256(data).hexdigest(),
        orientation_applied=header.orientation,
    )


# ---------------------------------------------------------------- format recognition


def _read_header(data: bytes, label: str) -> _Header:
    if data.startswith(b"\xff\xd8\xff"):
        return _jpeg_header(data, label)
    if data.startswith(_PNG_SIGNATURE):
        return _png_header(data, label)
    if data.startswith(b"BM"):
        return _bmp_header(data, label)
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return _tiff_header(data, label)
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _webp_header(data, label)
    raise ImageError(_unsupported(data, label))


def _unsupported(data: bytes, label: str) -> str:
    kind: str | None = None
    if data.startswith((b"GIF87a", b"GIF89a")):
        kind = "a GIF"
    elif data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        kind = "a HEIC/HEIF photo (the iPhone default)"
    elif data[4:8] == b"ftyp" and data[8:12] in (b"avif", b"avis"):
        kind = "an AVIF image"
    elif data.startswith((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xff\x4f\xff\x51")):
        kind = "a JPEG 2000 image"
    elif data.startswith((b"II+\x00", b"MM\x00+")):
        kind = "a BigTIFF image"
    elif data.startswith(b"%PDF"):
        kind = "a PDF document"
    elif data.startswith(b"\xff\xd8"):
        return f"Image {label} is truncated or corrupt (damaged JPEG start): {_REEXPORT}."
    if kind is not None:
        return f"Image {label} is {kind}, a format this terminal does not accept: {_CONVERT}."
    return (
        f"File {label} is not an image this terminal can read (accepted: {', '.join(_DISPLAY_NAMES.values())}): "
        f"check it is the right file, or {_CONVERT}."
    )


def _too_many_parts(label: str) -> ImageError:
    return ImageError(
        f"Image {label} has more than {MAX_CONTAINER_PARTS} internal segments (a damaged or malicious file?): "
        f"{_REEXPORT}."
    )


def _truncated(label: str, what: str) -> ImageError:
    return ImageError(f"Image {label} is truncated or corrupt ({what}): {_REEXPORT}.")


def _jpeg_header(data: bytes, label: str) -> _Header:
    """Walk the JPEG marker segments up to EOI: dimensions, precision, EXIF orientation, completeness."""
    n = len(data)
    pos = 2
    frame: tuple[int, int, int] | None = None
    orientation: int | None = None
    scans = 0
    for _ in range(MAX_CONTAINER_PARTS):
        if pos >= n:
            raise _truncated(label, "the end-of-image marker is missing")
        if data[pos] != 0xFF:
            raise _truncated(label, f"unexpected bytes at offset {pos}")
        while pos < n and data[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= n:
            raise _truncated(label, "the end-of-image marker is missing")
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            continue
        if marker in (0xD8, 0x00):
            raise _truncated(label, f"misplaced marker 0x{marker:02X}")
        if pos + 2 > n:
            raise _truncated(label, "the end-of-image marker is missing")
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2:
            raise _truncated(label, "invalid segment length")
        if pos + length > n:
            raise _truncated(label, "the end-of-image marker is missing")
        segment = data[pos + 2 : pos + length]
        pos += length
        if marker in _JPEG_SOF and frame is None:
            if len(segment) < 6:
                raise _truncated(label, "short frame header")
            precision = segment[0]
            height, width = struct.unpack(">HH", segment[1:5])
            frame = (width, height, precision)
        elif marker == 0xE1 and orientation is None and segment.startswith(b"Exif\x00\x00"):
            orientation = _exif_orientation(segment[6:])
        elif marker == 0xDA:
            if frame is None:
                raise _truncated(label, "image data before the frame header")
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise ImageError(
                    f"Image {label} has more than {MAX_JPEG_SCANS} JPEG scans (a damaged or malicious file?): "
                    f"{_REEXPORT}."
                )
            pos = _skip_entropy_coded(data, pos, label)
    else:
        raise _too_many_parts(label)
    if frame is None:
        raise _truncated(label, "no frame header")
    width, height, precision = frame
    if precision != 8:
        raise ImageError(f"Image {label} is a {precision}-bit JPEG, which is not accepted: {_CONVERT}.")
    if height == 0:
        raise _truncated(label, "the frame header does not declare the height")
    return _Header("JPEG", width, height, orientation or 1)


def _skip_entropy_coded(data: bytes, pos: int, label: str) -> int:
    """Return the offset of the marker ending a scan's entropy-coded data."""
    found = _MARKER_IN_SCAN.search(data, pos)
    if found is None:
        raise _truncated(label, "the end-of-image marker is missing")
    return found.start()


def _png_header(data: bytes, label: str) -> _Header:
    """Walk the PNG chunks to IEND: IHDR dimensions, eXIf orientation, animation, completeness."""
    n = len(data)
    pos = len(_PNG_SIGNATURE)
    if data[pos + 4 : pos + 8] != b"IHDR" or pos + 8 + 13 > n or int.from_bytes(data[pos : pos + 4], "big") != 13:
        raise _truncated(label, "the PNG header chunk is missing or damaged")
    width, height, bits = struct.unpack(">IIB", data[pos + 8 : pos + 17])
    orientation: int | None = None
    for _ in range(MAX_CONTAINER_PARTS):
        if pos + 12 > n:
            raise _truncated(label, "the PNG end chunk is missing")
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if length > 0x7FFFFFFF or end > n:
            raise _truncated(label, "the PNG end chunk is missing")
        if kind == b"IEND":
            break
        if kind == b"acTL":
            raise ImageError(
                f"Image {label} is an animated PNG: export the single frame to search as a still PNG or JPEG."
            )
        if kind == b"eXIf" and orientation is None:
            orientation = _exif_orientation(data[pos + 8 : pos + 8 + length])
        pos = end
    else:
        raise _too_many_parts(label)
    return _Header("PNG", width, height, orientation or 1, bits=bits)


def _bmp_header(data: bytes, label: str) -> _Header:
    if len(data) < 26:
        raise _truncated(label, "the BMP header is incomplete")
    info_size = int.from_bytes(data[14:18], "little")
    if info_size == 12:
        width, height = struct.unpack("<HH", data[18:22])
    elif info_size >= 40 and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        height = abs(height)  # negative height means rows stored top-down
    else:
        raise _truncated(label, "unknown BMP header")
    return _Header("BMP", width, height)


def _tiff_header(data: bytes, label: str) -> _Header:
    tags = _ifd0_tags(data)
    if tags is None:
        raise _truncated(label, "the TIFF directory is damaged")
    width, height = tags.get(256, 0), tags.get(257, 0)
    orientation = tags.get(_TIFF_ORIENTATION, 1)
    if orientation != 1:
        raise ImageError(
            f"Image {label} is a TIFF with a rotated or mirrored orientation tag ({orientation}), "
            f"which is not accepted: {_CONVERT}."
        )
    return _Header("TIFF", width, height, bits=tags.get(258, 1))


def _webp_header(data: bytes, label: str) -> _Header:
    """Walk the RIFF chunks: canvas and bitstream dimensions, EXIF orientation, animation."""
    riff_end = 8 + int.from_bytes(data[4:8], "little")
    if riff_end > len(data) or len(data) < 20:
        raise _truncated(label, "the WebP file is shorter than it declares")
    pos = 12
    first = True
    width = height = 0
    orientation: int | None = None
    parts = 0
    while pos + 8 <= riff_end:
        parts += 1
        if parts > MAX_CONTAINER_PARTS:
            raise _too_many_parts(label)
        kind = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        payload = data[pos + 8 : pos + 8 + size]
        if len(payload) < size:
            raise _truncated(label, "a WebP chunk is cut short")
        if first and kind not in (b"VP8 ", b"VP8L", b"VP8X"):
            raise _truncated(label, "unknown WebP layout")
        if kind == b"VP8X":
            if len(payload) < 10:
                raise _truncated(label, "short WebP header")
            if payload[0] & 0x02:
                raise ImageError(
                    f"Image {label} is an animated WebP: export the single frame to search as a still PNG or JPEG."
                )
            width = max(width, 1 + int.from_bytes(payload[4:7], "little"))
            height = max(height, 1 + int.from_bytes(payload[7:10], "little"))
        elif kind == b"VP8 ":
            if len(payload) < 10 or payload[3:6] != b"\x9d\x01\x2a":
                raise _truncated(label, "damaged WebP image data")
            w, h = struct.unpack("<HH", payload[6:10])
            width, height = max(width, w & 0x3FFF), max(height, h & 0x3FFF)
        elif kind == b"VP8L":
            if len(payload) < 5 or payload[0] != 0x2F:
                raise _truncated(label, "damaged WebP image data")
            bits = int.from_bytes(payload[1:5], "little")
            width, height = max(width, (bits & 0x3FFF) + 1), max(height, ((bits >> 14) & 0x3FFF) + 1)
        elif kind in (b"ANIM", b"ANMF"):
            raise ImageError(
                f"Image {label} is an animated WebP: export the single frame to search as a still PNG or JPEG."
            )
        elif kind == b"EXIF" and orientation is None:
            exif = payload[6:] if payload.startswith(b"Exif\x00\x00") else payload
            orientation = _exif_orientation(exif)
        first = False
        pos += 8 + size + (size & 1)
    return _Header("WEBP", width, height, orientation or 1)


# ---------------------------------------------------------------- TIFF / EXIF directories


def _ifd0_tags(tiff: bytes) -> dict[int, int] | None:
    """First value of each SHORT or LONG tag in a TIFF structure's first directory; None if malformed."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return None
    order = "<" if tiff[:2] == b"II" else ">"
    magic, offset = struct.unpack(order + "HI", tiff[2:8])
    if magic != 42 or offset + 2 > len(tiff):
        return None
    (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
    if offset + 2 + 12 * count > len(tiff):
        return None
    tags: dict[int, int] = {}
    for k in range(count):
        entry = offset + 2 + 12 * k
        tag, kind, n = struct.unpack(order + "HHI", tiff[entry : entry + 8])
        if kind not in (3, 4) or n < 1:  # SHORT, LONG
            continue
        size = 2 if kind == 3 else 4
        where = entry + 8
        if n * size > 4:  # values stored elsewhere; the field holds their offset
            (where,) = struct.unpack(order + "I", tiff[entry + 8 : entry + 12])
            if where + size > len(tiff):
                return None
        (value,) = struct.unpack(order + ("H" if kind == 3 else "I"), tiff[where : where + size])
        tags.setdefault(tag, value)
    return tags


def _exif_orientation(exif: bytes) -> int:
    """The EXIF orientation value (1-8); 1 when absent or unreadable, since it is only metadata."""
    tags = _ifd0_tags(exif)
    value = (tags or {}).get(_TIFF_ORIENTATION, 1)
    return value if 1 <= value <= 8 else 1


# ---------------------------------------------------------------- decoding


@contextmanager
def _codec_messages() -> Iterator[list[str]]:
    """Capture what OpenCV, libjpeg and libpng print while decoding (they write to fd 2 directly).

    The CLI must print one line, and the TUI must not be scribbled on; libjpeg's warnings are
    also how a corrupt-but-complete JPEG is recognised. Anything another thread writes to
    fd 2 during a decode (milliseconds) is discarded with them.
    """
    messages: list[str] = []
    with _DECODE_LOCK:
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        try:
            saved: int | None = os.dup(2)
        except OSError:
            saved = None
        try:
            if saved is None:
                yield messages
                return
            with tempfile.TemporaryFile() as sink:
                os.dup2(sink.fileno(), 2)
                try:
                    yield messages
                finally:
                    os.dup2(saved, 2)
                    sink.seek(0)
                    messages.extend(sink.read(65536).decode("utf-8", "replace").splitlines())
        finally:
            if saved is not None:
                os.close(saved)
            cv2.utils.logging.setLogLevel(level)


def _decode(data: bytes, header: _Header, label: str) -> np.ndarray:
    buffer = np.frombuffer(data, dtype=np.uint8)
    with _codec_messages() as messages:
        try:
            # IMREAD_UNCHANGED: no orientation applied by OpenCV (we do it), full bit depth, alpha kept.
            decoded = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
        except cv2.error:
            decoded = None
    if decoded is None or decoded.size == 0:
        raise _truncated(label, f"the {_DISPLAY_NAMES[header.format]} decoder failed")
    if header.format == "JPEG":
        for line in messages:
            harmless = "extraneous bytes before marker 0xd9" in line  # padding before EOI, common from cameras
            if ("Corrupt JPEG data" in line and not harmless) or "Premature end of JPEG" in line:
                raise _truncated(label, "the JPEG decoder reported damaged image data")
    if decoded.shape[0] != header.height or decoded.shape[1] != header.width:
        raise ImageError(
            f"Image {label} decoded to {decoded.shape[1]} x {decoded.shape[0]} pixels but declares "
            f"{header.width} x {header.height} (a damaged or malicious file?): {_REEXPORT}."
        )
    return decoded


def _to_rgb8(decoded: np.ndarray, header: _Header, label: str) -> np.ndarray:
    if decoded.dtype == np.uint16:
        if header.bits != 16:
            raise ImageError(f"Image {label} has {header.bits}-bit samples, which are not accepted: {_CONVERT}.")
        # Exact rounding of v * 255 / 65535 (= v / 257; no value falls on a tie).
        decoded = cv2.convertScaleAbs(decoded, alpha=255.0 / 65535.0)
    elif decoded.dtype != np.uint8:
        raise ImageError(
            f"Image {label} has floating-point or other non-standard samples ({decoded.dtype}), which are not "
            f"accepted: {_CONVERT}."
        )
    channels = 1 if decoded.ndim == 2 else decoded.shape[2]
    if channels == 1:
        return cv2.cvtColor(decoded.reshape(decoded.shape[:2]), cv2.COLOR_GRAY2RGB)
    if channels == 2:
        grey, alpha = cv2.split(decoded)
        return cv2.cvtColor(cv2.multiply(grey, alpha, scale=1.0 / 255.0), cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    if channels == 4:
        rgb = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGB)
        alpha = cv2.split(decoded)[3]
        # Composite on black; c * a / 255 never lands on a rounding tie.
        return cv2.multiply(rgb, cv2.merge([alpha, alpha, alpha]), scale=1.0 / 255.0)
    raise ImageError(f"Image {label} has {channels} colour channels, which is not accepted: {_CONVERT}.")


def _apply_orientation(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Turn the stored pixels upright per the EXIF orientation value (TIFF/EXIF 2.3 definition)."""
    if orientation == 2:
        return cv2.flip(rgb, 1)
    if orientation == 3:
        return cv2.rotate(rgb, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(rgb, 0)
    if orientation == 5:
        return cv2.transpose(rgb)
    if orientation == 6:
        return cv2.rotate(rgb, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.transpose(cv2.rotate(rgb, cv2.ROTATE_180))
    if orientation == 8:
        return cv2.rotate(rgb, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return rgb
