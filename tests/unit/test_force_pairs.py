"""The force's labelled-pairs manifest: every bad row refused in one line, matched impostors, the same evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.evaluation.equity import Grouping, sweep
from engine.evaluation.force_pairs import (
    COLUMNS,
    ForcePairsError,
    kind_pairs,
    load_manifest,
    parse_manifest,
    subject_labels,
)

HEADER = ",".join(COLUMNS)


def row(kind: str, a: str, b: str, same: str, sa: str, sb: str, demo_a: str = "F,IC1,25-34", demo_b: str = "") -> str:
    sex_a, ic_a, age_a = demo_a.split(",")
    sex_b, ic_b, age_b = (demo_b or demo_a).split(",")
    return ",".join([kind, a, b, same, sa, sb, sex_a, sex_b, ic_a, ic_b, age_a, age_b])


GOOD = [
    row("custody-custody", "c/s1_1.jpg", "c/s1_2.jpg", "same", "S1", "S1"),
    row("custody-custody", "c/s2_1.jpg", "c/s2_2.jpg", "same", "S2", "S2"),
    row("custody-custody", "c/s1_1.jpg", "c/s2_1.jpg", "different", "S1", "S2"),
    row("cctv-custody", "v/s1.jpg", "c/s1_1.jpg", "same", "S1", "S1"),
    row("cctv-custody", "v/s3.jpg", "c/s3_1.jpg", "same", "S3", "S3", "M,IC3,18-24"),
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in ("c/s1_1.jpg", "c/s1_2.jpg", "c/s2_1.jpg", "c/s2_2.jpg", "c/s3_1.jpg", "v/s1.jpg", "v/s3.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"not read by the loader")
    return tmp_path


def write(folder: Path, lines: list[str]) -> Path:
    path = folder / "pairs.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_good_manifest_is_read(folder: Path) -> None:
    m = load_manifest(write(folder, [HEADER, *GOOD]))
    assert len(m.pairs) == 5 and len(m.images) == 7 and set(m.subjects) == {"S1", "S2", "S3"}
    assert m.summary()["listed_pairs"] == {
        "custody-custody": {"same": 2, "different": 1},
        "cctv-custody": {"same": 2, "different": 0},
    }
    roles = {im.path.name: im.role for im in m.images}
    assert roles["s1.jpg"] == "cctv" and roles["s1_1.jpg"] == "custody"


# Each bad manifest: a name, the rows after the header (or a whole text), the expected one-line problem.
BAD = [
    ("empty file", None, "is empty"),
    ("missing column", "pair_kind,image_a\n", "missing column 'image_b'"),
    ("unknown kind", [row("cctv-cctv", "v/s1.jpg", "v/s3.jpg", "same", "S1", "S1")], "row 2: pair_kind 'cctv-cctv'"),
    ("bad same", [row("custody-custody", "c/s1_1.jpg", "c/s1_2.jpg", "yes", "S1", "S1")], "same 'yes' must be"),
    ("empty cell", [row("custody-custody", "c/s1_1.jpg", "c/s1_2.jpg", "same", "", "S1")], "subject_a is empty"),
    (
        "bad sex",
        [row("custody-custody", "c/s1_1.jpg", "c/s1_2.jpg", "same", "S1", "S1", "X,IC1,25-34")],
        "sex 'X' is not one of",
    ),
    (
        "bad IC code",
        [row("custody-custody", "c/s1_1.jpg", "c/s1_2.jpg", "same", "S1", "S1", "F,IC7,25-34")],
        "ic_code 'IC7'",
    ),
    (
        "bad age",
        [row("custody-custody", "c/s1_1.jpg", "c/s1_2.jpg", "same", "S1", "S1", "F,IC1,adult")],
        "age_range 'adult'",
    ),
    ("missing image", [row("custody-custody", "c/s1_1.jpg", "c/nope.jpg", "same", "S1", "S1")], "does not exist"),
    ("same image", [row("custody-custody", "c/s1_1.jpg", "c/s1_1.jpg", "same", "S1", "S1")], "are the same image"),
    (
        "same with two subjects",
        [row("custody-custody", "c/s1_1.jpg", "c/s2_1.jpg", "same", "S1", "S2")],
        "a 'same' pair must have one subject",
    ),
    (
        "different with one subject",
        [row("custody-custody", "c/s1_1.jpg", "c/s1_2.jpg", "different", "S1", "S1")],
        "a 'different' pair must have two subjects",
    ),
    (
        "impostor not matched on demographics",
        [row("custody-custody", "c/s1_1.jpg", "c/s2_1.jpg", "different", "S1", "S2", "F,IC1,25-34", "M,IC1,25-34")],
        "must match on sex and IC code",
    ),
    (
        "subject's sex changes",
        [GOOD[0], row("custody-custody", "c/s1_2.jpg", "c/s2_1.jpg", "different", "S1", "S2", "M,IC1,25-34")],
        "row 3: subject 'S1' is male/IC1 here but female/IC1",
    ),
    (
        "image changes subject",
        [GOOD[0], row("custody-custody", "c/s1_1.jpg", "c/s2_2.jpg", "same", "S2", "S2")],
        "image s1_1.jpg is subject 'S1' in an earlier row",
    ),
    (
        "image changes role",
        [GOOD[0], row("cctv-custody", "c/s1_1.jpg", "c/s1_2.jpg", "same", "S1", "S1")],
        "is a custody image in an earlier row, cctv here",
    ),
    ("repeated pair", [GOOD[0], GOOD[0]], "row 3: repeats the pair of row 2"),
    ("extra cell", [GOOD[0] + ",extra"], "more cells than the header"),
    ("no pairs", [], "lists no pairs"),
]


@pytest.mark.parametrize(("name", "rows", "problem"), BAD, ids=[b[0] for b in BAD])
def test_bad_manifests_are_refused_in_one_line(
    folder: Path, name: str, rows: list[str] | str | None, problem: str
) -> None:
    if rows is None:
        text = ""
    elif isinstance(rows, str):
        text = rows
    else:
        text = "\n".join([HEADER, *rows]) + "\n"
    with pytest.raises(ForcePairsError, match=problem) as info:
        parse_manifest(text, "pairs.csv", folder)
    message = info.value.diagnostics()
    assert "\n" not in message and message.startswith("force pairs pairs.csv")


def test_an_unreadable_manifest_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ForcePairsError, match="cannot be read"):
        load_manifest(tmp_path / "absent.csv")


def test_matched_impostors_and_the_same_evaluation(folder: Path) -> None:
    """40 subjects: 20 F/IC1, 20 M/IC3, 3 custody photos each; genuine pairs listed; impostors matched."""
    lines = [HEADER]
    for s in range(40):
        demo = "F,IC1,25-34" if s < 20 else "M,IC3,35-44"
        for k in range(3):
            (folder / f"p/{s}_{k}.jpg").parent.mkdir(parents=True, exist_ok=True)
            (folder / f"p/{s}_{k}.jpg").write_bytes(b"x")
        lines.append(row("custody-custody", f"p/{s}_0.jpg", f"p/{s}_1.jpg", "same", f"T{s:02d}", f"T{s:02d}", demo))
        lines.append(row("custody-custody", f"p/{s}_0.jpg", f"p/{s}_2.jpg", "same", f"T{s:02d}", f"T{s:02d}", demo))
    m = load_manifest(write(folder, lines))
    # Templates: each subject a direction; image k is 0.1*k along a shared offset; subject 0 has no face in image 2.
    vectors = np.zeros((len(m.images), 128))
    for i, im in enumerate(m.images):
        s, k = int(im.subject[1:]), int(im.path.stem.split("_")[1])
        vectors[i, s] = 1.0
        vectors[i, 100] = 0.1 * k
        if s == 0 and k == 2:
            vectors[i] = np.nan
    (kp,) = kind_pairs(m, vectors)
    assert kp.kind == "custody-custody" and kp.listed_impostors == 0
    # Matched impostors: within each of the two groups, 20 subjects x 3 images: (60*60 - 20*9) / 2 = 1,710 each.
    assert kp.matched_impostors == 2 * 1710
    assert kp.impostors_without_face == 19 * 3  # subject 0's faceless image against its 19 group-mates' images
    assert kp.genuine_without_face == 1
    labels = subject_labels(m, kp.pairs.people)
    assert labels["sex"][:1] == ["female"] and labels["ic_code"][-1] == "IC3" and labels["age_range"][0] == "25-34"
    grouping = Grouping.build("sex", labels["sex"], ("female", "male"), n_boot=100)
    s = sweep(kp.pairs, grouping, [0.15, 1.0, 1.5])
    # Genuine distances are 0.1 and 0.2: all missed at 0.15 for the 0-2 pairs; impostors are all about sqrt(2) apart.
    assert s.fnmr["female"][0].errors == 19 and s.fnmr["female"][0].trials == 39
    assert s.fmr_within["male"][1].errors == 0 and s.fmr_within["male"][2].errors == 1710
    assert s.fmr_within["male"][2].trials == 1710 and s.fmr_within["female"][2].trials == 1710 - 57
    assert s.fmr_cross["female x male"][2].trials == 0  # impostors are matched: no cross-group comparisons
