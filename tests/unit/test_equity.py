"""Equity across thresholds and the NIST-style 1:N construction, on synthetic score sets with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.evaluation.demographics import PersonLabels, label_quality
from engine.evaluation.equity import (
    EquityError,
    Figure,
    Grouping,
    PairCells,
    PairSet,
    errors_by_person,
    floor_text,
    group_thresholds,
    person_sweep,
    rate_text,
    ratio,
    sweep,
    threshold_for_target,
)
from engine.evaluation.metrics import stratified_bootstrap_weights
from engine.evaluation.one_to_n import Construction, Searches, never_enrolled
from engine.evaluation.protocol import HalfImages
from engine.scoring.statistics import clopper_pearson_upper

# ---------------------------------------------------------------------------------------------
# Wording: the rule of 30
# ---------------------------------------------------------------------------------------------


def test_rate_text_reads_at_any_size() -> None:
    assert rate_text(0.095) == "9.5 %"
    assert rate_text(0.5) == "50 %"
    assert rate_text(1 / 2000) == "1 in 2,000"
    assert rate_text(1 / 12_345) == "1 in 12,000"
    assert rate_text(0.0) == "0"


def test_floor_is_thirty_errors_and_never_claims_more_than_the_data() -> None:
    # 30 errors in 100,000 comparisons is 1 in 3,333.3: stated as "below 1 in 3,300" (rounded down, weaker).
    assert floor_text(100_000) == "below 1 in 3,300 (the lowest this evaluation can show)"
    assert floor_text(29) == "no figure: 29 comparisons cannot show 30 errors"


@pytest.mark.parametrize(
    ("errors", "people", "stated", "text"),
    [
        (29, 40, False, "below 1 in 3,300 (the lowest this evaluation can show)"),
        (30, 40, True, "1 in 3,300"),
        (300, 29, False, "too few people for a figure (29; needs 30)"),
    ],
)
def test_a_figure_is_stated_only_from_30_errors_and_30_people(
    errors: int, people: int, stated: bool, text: str
) -> None:
    f = Figure(errors, 100_000, people, 1e-4, 5e-4)
    assert f.stated is stated
    assert f.text() == text
    assert (f.interval_text() != "") is stated


def test_the_floor_never_weakens_as_the_trials_grow() -> None:
    # More comparisons can only lower the floor (a stronger statement), never raise it.
    floors = [int(floor_text(n).split("1 in ")[1].split(" ")[0].replace(",", "")) for n in range(30, 200_000, 997)]
    assert floors == sorted(floors)


# ---------------------------------------------------------------------------------------------
# Synthetic pair sets
# ---------------------------------------------------------------------------------------------


def make_pairs(
    groups: dict[str, int],
    images: int,
    within_false: dict[str, int],
    cross_false: int,
    genuine_misses: dict[str, int],
    *,
    genuine_per_person: int = 2,
) -> tuple[PairSet, list[str]]:
    """People in groups, ``images`` each; ``within_false[g]`` impostor pairs at 0.3 inside g (spread over people);
    ``cross_false`` pairs at 0.3 between the first two groups; ``genuine_misses[g]`` people of g whose genuine
    pairs are all at 0.9 (the others at 0.1)."""
    labels: list[str] = []
    for g, n in groups.items():
        labels += [g] * n
    people = len(labels)
    members = {g: [i for i, x in enumerate(labels) if x == g] for g in groups}
    a: list[int] = []
    b: list[int] = []
    for g, k in within_false.items():
        m = members[g]
        for e in range(k):
            a.append(m[e % len(m)])
            b.append(m[(e + 1) % len(m)])
    names = list(groups)
    for e in range(cross_false):
        a.append(members[names[0]][e % groups[names[0]]])
        b.append(members[names[1]][e % groups[names[1]]])
    g_person: list[int] = []
    g_dist: list[float] = []
    for g, m in members.items():
        for j, p in enumerate(m):
            d = 0.9 if j < genuine_misses.get(g, 0) else 0.1
            g_person += [p] * genuine_per_person
            g_dist += [d] * genuine_per_person
    pairs = PairSet(
        people=tuple(f"P{i:03d}" for i in range(people)),
        images=np.full(people, images, dtype=np.int64),
        genuine_person=np.array(g_person, dtype=np.int64),
        genuine_distance=np.array(g_dist),
        impostor_a=np.array(a, dtype=np.int64),
        impostor_b=np.array(b, dtype=np.int64),
        impostor_distance=np.full(len(a), 0.3),
        complete_to=0.6,
    )
    return pairs, labels


def test_fmr_within_and_across_groups_and_fnmr_are_exact() -> None:
    pairs, labels = make_pairs(
        {"A": 40, "B": 50}, images=10, within_false={"A": 300, "B": 60}, cross_false=45, genuine_misses={"A": 10}
    )
    grouping = Grouping.build("race", labels, ("A", "B"), n_boot=200, seed=1)
    s = sweep(pairs, grouping, [0.2, 0.5])
    # Within A: 400 images, 400*400/2 - 40 * 10*10/2 = 78,000 comparisons.
    assert s.fmr_within["A"][0].errors == 0
    assert (s.fmr_within["A"][1].errors, s.fmr_within["A"][1].trials) == (300, 78_000)
    assert (s.fmr_within["B"][1].errors, s.fmr_within["B"][1].trials) == (60, 500 * 500 // 2 - 50 * 50)
    assert (s.fmr_cross["A x B"][1].errors, s.fmr_cross["A x B"][1].trials) == (45, 400 * 500)
    # FNMR: 10 of 40 people in A miss both their genuine pairs, at both thresholds below 0.9.
    assert (s.fnmr["A"][1].errors, s.fnmr["A"][1].trials, s.fnmr["A"][1].people) == (20, 80, 40)
    assert s.fnmr["B"][1].errors == 0
    r = s.fmr_ratio[1]
    assert r.kind == "stated" and (r.highest, r.lowest) == ("A", "B")
    assert r.value == pytest.approx((300 / 78_000) / (60 / 122_500))
    assert r.low is not None and r.high is not None and r.low <= r.value <= r.high
    f = s.fmr_within["A"][1]
    assert f.low is not None and f.high is not None and f.low <= f.rate <= f.high  # type: ignore[operator]


def test_two_names_of_one_person_are_not_impostor_comparisons() -> None:
    pairs, labels = make_pairs({"A": 30}, images=2, within_false={"A": 0}, cross_false=0, genuine_misses={})
    merged = PairSet(**{**pairs.__dict__, "same_person": frozenset({(0, 1)})})
    everyone = np.ones(30, dtype=bool)
    assert merged.impostor_trials(everyone) == pairs.impostor_trials(everyone) - 4
    grouping = Grouping.build("x", labels, ("A",), n_boot=50)
    s = sweep(merged, grouping, [0.5])
    assert s.fmr_within["A"][0].trials == 60 * 59 // 2 - 30 - 4  # 60 images, 30 same-person pairs, 4 merged


def test_a_person_drawn_with_the_same_error_rate_gives_a_zero_width_interval() -> None:
    # Every person of A misses exactly one of two genuine pairs: every bootstrap replicate has FNMR 0.5.
    people = 40
    person = np.repeat(np.arange(people), 2)
    distance = np.tile([0.1, 0.9], people)
    errors = errors_by_person(person, distance, np.array([0.5]), people, error_above=True)
    grouping = Grouping.build("g", ["A"] * people, ("A",), n_boot=300, seed=3)
    figures, ratios = person_sweep(errors, np.full(people, 2), grouping)
    f = figures["A"][0]
    assert (f.errors, f.trials, f.low, f.high) == (40, 80, 0.5, 0.5)
    assert ratios[0].kind == "none"


def test_ratio_compares_stated_groups_and_bounds_a_group_below_the_floor() -> None:
    figs = {
        "A": Figure(600, 10_000, 50, None, None),  # 6 %
        "B": Figure(300, 100_000, 50, None, None),  # 0.3 %
        "D": Figure(5, 1_000_000, 50, None, None),  # below its floor of 3e-5, which is under B's rate
        "E": Figure(20, 100, 50, None, None),  # observed 20 %, but below its floor of 30 %: never the highest
        "C": Figure(900, 10_000, 20, None, None),  # too few people: not compared
    }
    reps = {g: np.full(10, f.errors / f.trials) for g, f in figs.items()}
    r = ratio(figs, reps)
    assert r.kind == "stated" and (r.highest, r.lowest) == ("A", "B") and r.value == pytest.approx(20.0)
    assert r.groups == ("A", "B") and r.below_floor == ("D", "E")
    assert (r.at_least_lowest, r.at_least) == ("D", pytest.approx(0.06 / 3e-5))
    assert r.text() == "20 (A over B; 95 % 20 – 20); more than 2,000 counting D (below the floor)"


def test_ratio_with_one_stated_group_is_only_a_lower_bound() -> None:
    figs = {"A": Figure(600, 10_000, 50, None, None), "B": Figure(5, 100_000, 50, None, None)}
    r = ratio(figs, {g: np.zeros(3) for g in figs})
    assert r.kind == "at least" and r.value is None and r.at_least == pytest.approx(0.06 / 3e-4)
    assert r.text() == "more than 200 (A over B, below the floor)"
    # A floor above the stated rate bounds nothing.
    high_floor = {"A": Figure(600, 10_000, 50, None, None), "B": Figure(5, 400, 50, None, None)}  # floor 7.5 %
    assert ratio(high_floor, {g: np.zeros(3) for g in high_floor}).text() == "no ratio: only A has 30 errors"


def test_ratio_interval_is_unbounded_when_a_replicate_has_no_errors() -> None:
    figs = {"A": Figure(60, 1_000, 40, None, None), "B": Figure(30, 1_000, 40, None, None)}
    reps = {"A": np.full(100, 0.06), "B": np.r_[np.zeros(50), np.full(50, 0.03)]}
    r = ratio(figs, reps)
    assert r.kind == "stated" and r.value == pytest.approx(2.0) and r.high is None
    assert "unbounded" in r.text()


def test_no_ratio_without_two_groups_of_30_people_or_any_group_with_30_errors() -> None:
    one = {"A": Figure(100, 1_000, 40, None, None), "B": Figure(100, 1_000, 10, None, None)}
    assert ratio(one, {g: np.zeros(3) for g in one}).kind == "none"
    few = {"A": Figure(29, 1_000, 40, None, None), "B": Figure(3, 1_000, 40, None, None)}
    assert "no group has 30 errors" in ratio(few, {g: np.zeros(3) for g in few}).text()


def test_stratified_weights_keep_every_group_size_in_every_replicate() -> None:
    strata = np.array([0] * 7 + [1] * 5 + [-1] * 3)
    w = stratified_bootstrap_weights(strata, 500, np.random.default_rng(0))
    assert w.shape == (500, 15)
    assert np.all(w[:, :7].sum(axis=1) == 7) and np.all(w[:, 7:12].sum(axis=1) == 5) and np.all(w[:, 12:].sum(1) == 3)


def test_bootstrap_interval_covers_the_true_rate_about_95_percent_of_the_time() -> None:
    # People with heterogeneous error rates (the clustering the subject bootstrap is for); true FNMR known.
    rng = np.random.default_rng(7)
    true_rate, covered, runs = 0.2, 0, 120
    for run in range(runs):
        people = 60
        p = rng.beta(2, 8, size=people)  # mean 0.2
        trials = rng.integers(2, 30, size=people)
        err = rng.binomial(trials, p)
        person = np.repeat(np.arange(people), trials)
        dist = np.concatenate([np.r_[np.full(e, 0.9), np.full(t - e, 0.1)] for e, t in zip(err, trials, strict=True)])
        errors = errors_by_person(person, dist, np.array([0.5]), people, error_above=True)
        grouping = Grouping.build("g", ["A"] * people, ("A",), n_boot=400, seed=run)
        f = person_sweep(errors, trials.astype(np.int64), grouping)[0]["A"][0]
        assert f.low is not None and f.high is not None
        covered += f.low <= true_rate <= f.high
    assert 0.85 <= covered / runs <= 1.0


def test_pair_cells_refuse_thresholds_beyond_the_pairs_kept() -> None:
    pairs, _ = make_pairs({"A": 30}, images=2, within_false={"A": 5}, cross_false=0, genuine_misses={})
    with pytest.raises(EquityError, match="lies above the impostor pairs kept"):
        PairCells.build(pairs, np.array([0.5, 0.7]))


def test_thresholds_must_ascend() -> None:
    pairs, labels = make_pairs({"A": 30}, images=2, within_false={"A": 5}, cross_false=0, genuine_misses={})
    with pytest.raises(EquityError, match="ascending"):
        sweep(pairs, Grouping.build("x", labels, ("A",), n_boot=10), [0.5, 0.4])


# ---------------------------------------------------------------------------------------------
# The threshold each group would need
# ---------------------------------------------------------------------------------------------


def test_threshold_for_target_is_the_calibration_rule() -> None:
    trials = 100_000
    d = np.r_[np.full(50, 0.300), np.full(50, 0.400)]
    thr, events, upper, reason = threshold_for_target(d, trials, 1e-3, complete_to=0.6)
    # 50 events at 0.300 have an exact upper bound below 1e-3; 100 at 0.400 do not.
    assert clopper_pearson_upper(50, trials) <= 1e-3 < clopper_pearson_upper(100, trials)
    assert (thr, events, reason) == (0.399, 50, "")
    assert upper == pytest.approx(clopper_pearson_upper(50, trials))


def test_threshold_for_target_refuses_what_the_data_cannot_show() -> None:
    assert "cannot show 30 errors" in threshold_for_target(np.zeros(0), 20_000, 1e-3, complete_to=0.6)[3]
    few = threshold_for_target(np.full(29, 0.3), 100_000, 1e-3, complete_to=0.6)
    assert few[0] is None and "fewer than 30 false matches" in few[3]
    dense = threshold_for_target(np.full(200, 0.1), 100_000, 1e-3, complete_to=0.6)
    assert dense[0] is None and "upper bound" in dense[3]


def test_group_thresholds_differ_where_the_impostor_tails_differ() -> None:
    pairs, labels = make_pairs(
        {"A": 100, "B": 100, "C": 5}, images=10, within_false={}, cross_false=0, genuine_misses={}
    )
    members = {g: [i for i, x in enumerate(labels) if x == g] for g in ("A", "B")}
    a, b, d = [], [], []
    # A: 100 close pairs at 0.35 and 1,000 at 0.45; B the same 0.1 further. 495,000 comparisons in each.
    for g, near in (("A", 0.35), ("B", 0.45)):
        m = members[g]
        for e in range(1100):
            a.append(m[e % 100])
            b.append(m[(e + 1) % 100])
            d.append(near if e < 100 else near + 0.1)
    pairs = PairSet(
        **{
            **pairs.__dict__,
            "impostor_a": np.array(a),
            "impostor_b": np.array(b),
            "impostor_distance": np.array(d),
        }
    )
    out = {t.group: t for t in group_thresholds(pairs, labels, ("A", "B", "C"), 1e-3)}
    assert out["A"].trials == out["B"].trials == 1000 * 999 // 2 - 100 * 45
    assert (out["A"].threshold, out["A"].events) == (0.449, 100)
    assert (out["B"].threshold, out["B"].events) == (0.549, 100)
    assert out["C"].threshold is None and "cannot show 30 errors" in out["C"].reason


# ---------------------------------------------------------------------------------------------
# Label precision and recall
# ---------------------------------------------------------------------------------------------


def test_label_precision_and_recall_against_hand_labels() -> None:
    hand = PersonLabels("hand", {"a": "X", "b": "X", "c": "Y", "d": "Y", "e": "X"}, 0, (), "")
    auto = PersonLabels("auto", {"a": "X", "b": "Y", "c": "Y", "d": "X", "z": "X"}, 0, (), "")
    q = {x.group: x for x in label_quality(hand, auto, ("X", "Y"))}
    assert (q["X"].true_positives, q["X"].labelled_as, q["X"].in_group, q["X"].unlabelled) == (1, 2, 2, 1)
    assert q["X"].precision == 0.5 and q["X"].recall == 0.5
    assert (q["Y"].precision, q["Y"].recall) == (0.5, 0.5)


# ---------------------------------------------------------------------------------------------
# 1:N as NIST FRTE builds it
# ---------------------------------------------------------------------------------------------


def make_half(images_per_person: list[int]) -> tuple[HalfImages, np.ndarray]:
    """People Q000.. with orthogonal identity directions; image k of a person is its direction plus a small offset."""
    people = tuple(f"Q{i:03d}" for i in range(len(images_per_person)))
    owner = np.repeat(np.arange(len(people)), images_per_person)
    n = owner.size
    vectors = np.zeros((n, 128), dtype=np.float32)
    seen: dict[int, int] = {}
    for r, p in enumerate(owner.tolist()):
        k = seen.get(p, 0)
        seen[p] = k + 1
        vectors[r, p % 128] = 1.0
        vectors[r, (p + 64) % 128] += 0.01 * k  # images of one person lie 0.01 * k apart
    balanced = np.array([np.sum(owner[: r + 1] == owner[r]) <= 10 for r in range(n)])
    half = HalfImages(
        name="statement",
        folds=frozenset(range(6, 11)),
        rows=np.arange(n),
        owner=owner,
        people=people,
        balanced=balanced,
        same_person=frozenset(),
        images=n,
        images_without_face=0,
        label_error_images=0,
    )
    return half, vectors


def test_never_enrolled_people_are_chosen_by_name_alone() -> None:
    names = [f"Person_{i}" for i in range(2000)]
    held = [never_enrolled(n) for n in names]
    assert 0.45 < sum(held) / len(held) < 0.55
    assert held[:50] == [never_enrolled(n) for n in names[:50]]  # the same whoever else is in the set


def test_nist_construction_gallery_mated_and_non_mated_people_never_enrolled() -> None:
    half, vectors = make_half([12, 3, 1, 4, 2, 5, 1, 3] * 5)
    c = Construction.from_half(half)
    enrolled = set(np.flatnonzero(c.enrolled).tolist())
    assert set(c.gallery_person.tolist()) == enrolled  # one reference per enrolled person
    assert c.gallery_person.size == len(enrolled)
    assert set(c.mated_person.tolist()) <= enrolled
    assert not set(c.nonmated_person.tolist()) & enrolled  # non-mated probes: people absent from the gallery
    for p in enrolled:
        first = half.rows[(half.owner == p) & half.balanced][0]
        assert first in c.gallery_rows.tolist() and first not in c.mated_rows.tolist()
    # The balanced images only: person 0 has 12 images, at most 10 are used (1 reference + 9 probes, or 10 probes).
    assert np.sum(c.mated_person == 0) + np.sum(c.nonmated_person == 0) + np.sum(c.gallery_person == 0) == 10
    s = Searches.run(vectors, c)
    assert np.all(s.mate_rank == 1)  # each mate is 0.01*k away; every other person sqrt(2) away
    assert np.allclose(s.nonmated_top, math.sqrt(2), atol=0.01)
    t = np.array([0.055, 1.0, 1.5])
    fp, searches = s.fpir_errors(t)
    assert searches.sum() == c.nonmated_rows.size
    assert fp[:, 0].sum() == 0 and fp[:, 1].sum() == 0 and fp[:, 2].sum() == c.nonmated_rows.size
    miss, mated = s.fnir_errors(t)
    offsets = np.concatenate([0.01 * np.arange(1, k) for k in np.bincount(c.mated_person)[c.gallery_person] + 1])
    assert mated.sum() == c.mated_rows.size
    assert miss[:, 0].sum() == np.count_nonzero(offsets > 0.055)
    assert miss[:, 2].sum() == 0


def test_fpir_by_group_is_counted_over_never_enrolled_people() -> None:
    half, vectors = make_half([3] * 160)
    c = Construction.from_half(half)
    s = Searches.run(vectors, c)
    labels = ["A" if i % 2 else "B" for i in range(len(half.people))]
    grouping = Grouping.build("g", labels, ("A", "B"), n_boot=50)
    fp, searches = s.fpir_errors(np.array([1.5]))
    figures, _ = person_sweep(fp, searches, grouping)
    held = ~c.enrolled
    for g in ("A", "B"):
        f = figures[g][0]
        in_g = np.array([x == g for x in labels])
        assert f.people == int(np.count_nonzero(held & in_g))
        assert f.trials == f.errors == 3 * f.people
