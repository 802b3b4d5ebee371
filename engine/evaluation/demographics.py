"""Loaders for the public LFW demographic annotations, reduced to one label per person.

Three sets live in ``lfw/demographics/`` (its README states their limits):

- ``gender/``: per-image female/male, hand-checked (Afifi and Abdelhamed). Used for sex.
- ``attributes/``: Kumar et al.'s attribute classifiers, binarised (True only for the most
  confident two-thirds of positives). Used for Asian / Black / Indian / White: it is the only set
  covering most people. These are *classifier outputs about appearance*, not self-identification
  and not the police IC codes.
- ``race_by_person/``: hand labels for 866 people; too few Asian (15) and Indian (10) people for
  group figures, so it is used only to measure how far the attribute labels can be trusted.

Demographics belong to people, and impostor pairs are pairs of people, so every set is reduced to
one label per person by strict majority over that person's labelled images (no majority: no label).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import RfrError

GENDER_GROUPS = ("female", "male")
RACE_GROUPS = ("Asian", "Black", "Indian", "White")

# race_by_person's vocabulary mapped onto the attribute set's four groups; mixed or other labels map to none.
RACE_BY_PERSON_MAP = {"eastasian": "Asian", "african": "Black", "asianindian": "Indian", "caucasian": "White"}


class DemographicsFileError(RfrError):
    """An LFW demographic annotation file is missing or not in its published format."""


def person_of(image: str) -> str:
    """The person of an image key or file name: ``Aaron_Eckhart_0001.jpg`` -> ``Aaron_Eckhart``."""
    stem = Path(image).name.removesuffix(".jpg")
    person, _, number = stem.rpartition("_")
    if not person or not number.isdigit():
        raise DemographicsFileError(f"{image!r} is not an LFW image name (Name_NNNN.jpg)")
    return person


def image_key(image: str) -> str:
    """An image's key, its file stem: ``lfw/A_B/A_B_0001.jpg`` or ``A_B_0001`` -> ``A_B_0001``."""
    return Path(image).name.removesuffix(".jpg")


def majority(labels: Iterable[str]) -> str | None:
    """The label held by more than half of ``labels``, or None."""
    counts = Counter(labels)
    total = sum(counts.values())
    if not total:
        return None
    label, n = counts.most_common(1)[0]
    return label if 2 * n > total else None


def per_person(image_labels: Mapping[str, str]) -> dict[str, str]:
    """One label per person by strict majority over their labelled images."""
    grouped: dict[str, list[str]] = {}
    for image, label in image_labels.items():
        grouped.setdefault(person_of(image), []).append(label)
    return {person: m for person, labels in sorted(grouped.items()) if (m := majority(labels)) is not None}


@dataclass(frozen=True)
class PersonLabels:
    """One label per person from one annotation set, with what was lost on the way."""

    source: str
    labels: dict[str, str]
    images_labelled: int
    images_conflicting: tuple[str, ...]
    note: str

    def group_of(self, person: str) -> str | None:
        return self.labels.get(person)


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DemographicsFileError(f"cannot read {path}: {type(exc).__name__}; check RFR_DATA") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_gender(demographics_dir: Path) -> PersonLabels:
    """Sex per person from ``gender/{female,male}_names.txt``.

    An image in both lists carries no image label (the README says the five such images appear to
    be women; their people still get a label from their other images or stay unlabelled). Names
    missing ``.jpg`` (one in the female list) are accepted.
    """
    image_sets: dict[str, set[str]] = {}
    for group in GENDER_GROUPS:
        names = _read_lines(demographics_dir / "gender" / f"{group}_names.txt")
        image_sets[group] = {image_key(n) for n in names}
    both = image_sets["female"] & image_sets["male"]
    image_labels = {k: g for g in GENDER_GROUPS for k in image_sets[g] if k not in both}
    labels = per_person(image_labels)
    return PersonLabels(
        "gender (Afifi & Abdelhamed, hand-checked, per image)",
        labels,
        len(image_labels),
        tuple(sorted(both)),
        f"{len(both)} images in both lists carry no image label; person label by strict majority of images",
    )


def _load_attributes(demographics_dir: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """Kumar et al.'s binarised attributes: image file names, the (images, attributes) array, attribute names."""
    folder = demographics_dir / "attributes"
    files = _read_lines(folder / "filelist.txt")
    try:
        with np.load(folder / "lfw_binary_attributes2.npz") as npz:
            data = np.asarray(npz["data"], dtype=np.bool_)
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in npz["attrname"].tolist()]
    except (OSError, KeyError, ValueError) as exc:
        raise DemographicsFileError(f"cannot read the LFW attributes in {folder}: {type(exc).__name__}") from None
    if data.shape != (len(files), len(names)):
        raise DemographicsFileError(f"attributes: {data.shape} does not fit {len(files)} files x {len(names)} names")
    return files, data, names


def _exclusive_labels(files: list[str], data: np.ndarray, names: list[str], columns: dict[str, str]) -> dict[str, str]:
    """Per image, the label whose attribute column alone is True among ``columns`` (label -> column name)."""
    try:
        index = [names.index(c) for c in columns.values()]
    except ValueError:
        raise DemographicsFileError(f"attributes: missing one of the columns {', '.join(columns.values())}") from None
    labels = list(columns)
    chosen = data[:, index]
    single = chosen.sum(axis=1) == 1
    return {image_key(files[i]): labels[int(np.argmax(chosen[i]))] for i in np.flatnonzero(single)}


def load_race_attributes(demographics_dir: Path) -> PersonLabels:
    """Race group per person from the binarised Kumar et al. attributes.

    An image is labelled only when exactly one of Asian, Black, Indian, White is True (a False is "not
    confidently positive", not "no"); the person's label is the strict majority of their labelled images.
    """
    files, data, names = _load_attributes(demographics_dir)
    image_labels = _exclusive_labels(files, data, names, {g: g for g in RACE_GROUPS})
    labels = per_person(image_labels)
    return PersonLabels(
        "attributes (Kumar et al. classifiers, binarised by Upchurch et al., per image)",
        labels,
        len(image_labels),
        (),
        "image labelled only when exactly one race attribute is True; person label by strict majority of images",
    )


def load_sex_attributes(demographics_dir: Path) -> PersonLabels:
    """Sex per person from the same automatic attributes (``Male``, ``Female``): the automatic counterpart of
    ``load_gender``'s hand-checked lists, so both can be shown side by side and the automatic one measured."""
    files, data, names = _load_attributes(demographics_dir)
    image_labels = _exclusive_labels(files, data, names, {"female": "Female", "male": "Male"})
    labels = per_person(image_labels)
    return PersonLabels(
        "attributes (Kumar et al. Male/Female classifiers, binarised by Upchurch et al., per image)",
        labels,
        len(image_labels),
        (),
        "image labelled only when exactly one of Male, Female is True; person label by strict majority of images",
    )


def load_race_by_person(demographics_dir: Path) -> PersonLabels:
    """Hand labels per person (866 people), mapped to the four groups; mixed and other labels are left out."""
    path = demographics_dir / "race_by_person" / "lfw_race_dict.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DemographicsFileError(f"cannot read {path}: {type(exc).__name__}; check RFR_DATA") from None
    if not isinstance(raw, dict):
        raise DemographicsFileError(f"{path}: expected a JSON object of person -> label")
    labels = {str(p): RACE_BY_PERSON_MAP[v] for p, v in sorted(raw.items()) if v in RACE_BY_PERSON_MAP}
    return PersonLabels(
        "race_by_person (hand labels per person)",
        labels,
        0,
        (),
        f"{len(raw) - len(labels)} of {len(raw)} people with mixed or other labels left out",
    )


@dataclass(frozen=True)
class Agreement:
    """How often two label sets agree on the people both label."""

    common: int
    agree: int
    by_label: dict[str, tuple[int, int]]

    @property
    def rate(self) -> float:
        return self.agree / self.common if self.common else float("nan")


def agreement(reference: PersonLabels, other: PersonLabels) -> Agreement:
    """Agreement of ``other`` with ``reference`` per reference label: (people in common, agreeing)."""
    by_label: dict[str, list[int]] = {}
    for person, label in reference.labels.items():
        theirs = other.labels.get(person)
        if theirs is None:
            continue
        counts = by_label.setdefault(label, [0, 0])
        counts[0] += 1
        counts[1] += theirs == label
    common = sum(c[0] for c in by_label.values())
    agree = sum(c[1] for c in by_label.values())
    return Agreement(common, agree, {k: (v[0], v[1]) for k, v in sorted(by_label.items())})


@dataclass(frozen=True)
class LabelQuality:
    """How far one label set can be trusted for one group, measured against hand labels.

    Over the people both sets label: precision = of the people this set puts in the group, how many
    the hand labels put there too; recall = of the people the hand labels put in the group, how many
    this set puts there too. ``unlabelled`` counts hand-labelled group members this set gives no label.
    """

    group: str
    true_positives: int
    labelled_as: int
    in_group: int
    unlabelled: int

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.labelled_as if self.labelled_as else None

    @property
    def recall(self) -> float | None:
        return self.true_positives / self.in_group if self.in_group else None

    def to_json(self) -> dict[str, object]:
        return {
            "group": self.group,
            "precision": self.precision,
            "precision_counts": [self.true_positives, self.labelled_as],
            "recall": self.recall,
            "recall_counts": [self.true_positives, self.in_group],
            "hand_labelled_without_a_label_here": self.unlabelled,
        }


def label_quality(hand: PersonLabels, other: PersonLabels, groups: Iterable[str]) -> list[LabelQuality]:
    """Precision and recall of ``other`` per group against ``hand`` (see ``LabelQuality``)."""
    common = [p for p in hand.labels if p in other.labels]
    out: list[LabelQuality] = []
    for g in groups:
        tp = sum(1 for p in common if hand.labels[p] == g and other.labels[p] == g)
        labelled_as = sum(1 for p in common if other.labels[p] == g)
        in_group = sum(1 for p in common if hand.labels[p] == g)
        unlabelled = sum(1 for p, label in hand.labels.items() if label == g and p not in other.labels)
        out.append(LabelQuality(g, tp, labelled_as, in_group, unlabelled))
    return out
