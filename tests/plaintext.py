"""How a test recognises an image stored in plaintext, without mistaking ciphertext for one.

A 3-byte JPEG start-of-image marker is no test: encrypted bytes hold it by chance about once
in every 16 MiB (2**24 positions), so a scan of a few megabytes of ciphertext failed now and
then for nothing. Every needle here is at least five bytes long (by chance once in 2**40).
"""

from __future__ import annotations

from collections.abc import Iterable

IMAGE_SIGNATURES = {
    "JPEG JFIF header": b"JFIF\x00",
    "JPEG Exif header": b"Exif\x00\x00",
    "PNG signature": b"\x89PNG\r\n\x1a\n",
}
SLICE = 32


def image_needles(images: Iterable[bytes]) -> dict[str, bytes]:
    """The generic headers, and 32 bytes of each image's own header and of its compressed
    middle (found even if the header were stripped)."""
    needles = dict(IMAGE_SIGNATURES)
    for i, data in enumerate(images):
        needles[f"image {i} first {SLICE} bytes"] = data[:SLICE]
        middle = len(data) // 2
        needles[f"image {i} bytes {middle}..{middle + SLICE}"] = data[middle : middle + SLICE]
    return needles
