"""The documented LFW labelling errors the evaluation leaves out (``lfw_label_errors.yaml``, with its source).

LFW's authors publish its known errors and leave the data uncorrected; so do we. But a wrongly
labelled image makes a genuine pair an impostor one (or the reverse), and a handful of such pairs
decide the closest impostor distances, exactly where a false-match rate is stated. So every image the
errata name as wrong is dropped from every pair, and two names of one person are never an impostor
pair. How many images and pairs this removes is reported beside every figure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from engine.errors import RfrError

LABEL_ERRORS_FILE = Path(__file__).with_name("lfw_label_errors.yaml")
KINDS = ("image", "duplicate", "split_person", "same_person")


class LabelErrorsFileError(RfrError):
    """The list of documented LFW label errors is missing or malformed."""


@dataclass(frozen=True)
class LabelError:
    """One documented error: the image dropped (or the two names of one person) and what the errata say."""

    kind: str
    image: str | None = None
    names: tuple[str, str] | None = None
    actually: str | None = None
    duplicate_of: str | None = None
    note: str | None = None

    def describe(self) -> str:
        if self.names is not None:
            return f"{self.names[0]} and {self.names[1]} are one person"
        if self.duplicate_of:
            return f"{self.image} is a copy of {self.duplicate_of}"
        if self.actually:
            return f"{self.image} shows {self.actually}"
        return f"{self.image}: {self.note or 'wrongly labelled'}"


@dataclass(frozen=True)
class LabelErrors:
    """The errors, as the evaluation uses them: image keys to drop and name pairs that are one person."""

    source: str
    errors: tuple[LabelError, ...]

    @property
    def images(self) -> frozenset[str]:
        """Image keys (``Name_NNNN``) dropped from every pair."""
        return frozenset(e.image for e in self.errors if e.image is not None)

    @property
    def same_person(self) -> frozenset[frozenset[str]]:
        """Pairs of names that are one person: never an impostor pair."""
        return frozenset(frozenset(e.names) for e in self.errors if e.names is not None)

    def excludes_image(self, image: str) -> bool:
        """True for an image path or key (``A/A_0001.jpg`` or ``A_0001``) the errata name as wrong."""
        return Path(image).name.removesuffix(".jpg") in self.images

    def excludes_pair_of_names(self, first: str, second: str) -> bool:
        return frozenset((first, second)) in self.same_person


def _fail(source: str, message: str) -> LabelErrorsFileError:
    restore = "restore engine/evaluation/lfw_label_errors.yaml"
    return LabelErrorsFileError(f"LFW label errors {source}: {message}; {restore}")


def _entry(raw: object, n: int, source: str) -> LabelError:
    if not isinstance(raw, dict):
        raise _fail(source, f"entry {n} must be a mapping")
    kind = raw.get("kind")
    if kind not in KINDS:
        raise _fail(source, f"entry {n} kind must be one of {', '.join(KINDS)}, got {kind!r}")
    unknown = sorted(set(raw) - {"kind", "image", "names", "actually", "duplicate_of", "note"})
    if unknown:
        raise _fail(source, f"entry {n} has unknown key {unknown[0]!r}")
    texts = {k: raw.get(k) for k in ("image", "actually", "duplicate_of", "note")}
    for key, value in texts.items():
        if value is not None and not isinstance(value, str):
            raise _fail(source, f"entry {n} {key} must be text")
    if kind == "same_person":
        names = raw.get("names")
        if not (isinstance(names, list) and len(names) == 2 and all(isinstance(x, str) and x for x in names)):
            raise _fail(source, f"entry {n} (same_person) needs names: [first, second]")
        if names[0] == names[1]:
            raise _fail(source, f"entry {n} (same_person) names the same person twice")
        return LabelError(kind, names=(names[0], names[1]), note=texts["note"])
    image = texts["image"]
    if not image or not image.rpartition("_")[2].isdigit():
        raise _fail(source, f"entry {n} needs image: Name_NNNN")
    if kind == "duplicate" and not texts["duplicate_of"]:
        raise _fail(source, f"entry {n} (duplicate) needs duplicate_of")
    return LabelError(
        kind, image=image, actually=texts["actually"], duplicate_of=texts["duplicate_of"], note=texts["note"]
    )


def parse_label_errors(text: str, source: str = "(text)") -> LabelErrors:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _fail(source, f"not valid YAML ({type(exc).__name__})") from None
    if not isinstance(data, dict) or not isinstance(data.get("source"), str) or not data["source"].strip():
        raise _fail(source, "must be a mapping with a non-empty 'source'")
    entries = data.get("errors")
    if not isinstance(entries, list) or not entries:
        raise _fail(source, "'errors' must be a non-empty list")
    errors = tuple(_entry(raw, n, source) for n, raw in enumerate(entries))
    images = [e.image for e in errors if e.image is not None]
    if len(images) != len(set(images)):
        raise _fail(source, "an image is listed twice")
    return LabelErrors(source=data["source"].strip(), errors=errors)


def load_label_errors(path: Path | None = None) -> LabelErrors:
    """The repository's list (or another file in the same format)."""
    path = path or LABEL_ERRORS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(str(path), f"cannot be read ({exc.strerror or exc})") from None
    return parse_label_errors(text, str(path))


def errata_image_names(errata_text: str, known_names: Iterable[str]) -> set[str]:
    """Image keys (``Name_NNNN``) that the published ``LFW_ERRATA.txt`` text states are wrong.

    The errata are prose; each error opens with a line naming the image (``Recep_Tayyip_Erdogan_0004``),
    several images (``Claire_Hentzen_0001, 0002``) or a person whose name holds two people. Only
    entries naming an image of a person in ``known_names`` count; commented-out entries are skipped.
    Used by the tests to check the repository's list covers the published errata.
    """
    import re

    people = set(known_names)
    text = re.sub(r"<!--.*?-->", "", errata_text, flags=re.S)
    found: set[str] = set()
    for line in text.splitlines():
        m = re.match(r"^([A-Z][A-Za-z'\-]*(?:_[A-Za-z'\-]+)*)_(\d{4})((?:,\s*\d{4})*)\s*$", line.strip())
        if m and m.group(1) in people:
            found.add(f"{m.group(1)}_{m.group(2)}")
            found.update(f"{m.group(1)}_{n}" for n in re.findall(r"\d{4}", m.group(3)))
            continue
        m = re.match(r"^([A-Z][A-Za-z'\-]*(?:_[A-Za-z'\-]+)*)_(\d{4})\s+is\b", line.strip())
        if m and m.group(1) in people:
            found.add(f"{m.group(1)}_{m.group(2)}")
    return found
