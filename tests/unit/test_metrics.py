"""Error-rate metrics on synthetic score sets with exactly known answers, interval coverage, 1:N, groups."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.evaluation.demographics import (
    agreement,
    load_gender,
    load_race_attributes,
    load_race_by_person,
    majority,
    per_person,
    person_of,
)
from engine.evaluation.metrics import (
    NO_RANK,
    Scores,
    SizeRule,
    bootstrap_error_interval,
    bootstrap_fmr_interval,
    cmc,
    cross_pair_count,
    det_curve,
    equal_error_rate,
    fmr,
    fmr_by_subject,
    fnir,
    fnir_at_fpir,
    fnmr,
    fnmr_by_subject,
    fpir,
    group_error_rates,
    group_fmr,
    mate_ranks,
    nonmated_top_distance,
    threshold_at_fmr,
)
from engine.scoring.statistics import (
    NOT_RECORDED,
    GroupFigure,
    Proportion,
    clopper_pearson_interval,
    clopper_pearson_upper,
    outcome_breakdown,
    spread,
    wilson_interval,
)

INF = math.inf
distances = st.floats(min_value=0.0, max_value=2.0, allow_nan=False).map(lambda x: round(x, 2))
score_lists = st.lists(distances, min_size=1, max_size=30)


# ---- 1:1 rates ----


class TestRates:
    GENUINE = (0.1, 0.2, 0.3, 0.4, INF)
    IMPOSTOR = (0.7, 0.25, 0.5, 0.6)

    def test_exact_fmr_and_fnmr(self) -> None:
        t = [0.0, 0.25, 0.5, 1.0]
        assert fmr(self.IMPOSTOR, t).tolist() == [0.0, 0.25, 0.5, 1.0]
        # +inf (no template) never matches, so FNMR never drops below 1/5 here.
        assert fnmr(self.GENUINE, t).tolist() == pytest.approx([1.0, 0.6, 0.2, 0.2])

    def test_a_score_equal_to_the_threshold_matches(self) -> None:
        assert fmr([0.5], 0.5).tolist() == [1.0]
        assert fnmr([0.5], 0.5).tolist() == [0.0]
        assert fmr([0.5], np.nextafter(0.5, 0)).tolist() == [0.0]

    @given(score_lists, score_lists, st.lists(distances, min_size=1, max_size=5))
    def test_sweep_equals_the_definition(self, genuine: list[float], impostor: list[float], ts: list[float]) -> None:
        expected_fmr = [sum(d <= t for d in impostor) / len(impostor) for t in ts]
        expected_fnmr = [sum(not d <= t for d in genuine) / len(genuine) for t in ts]
        assert fmr(impostor, ts).tolist() == pytest.approx(expected_fmr)
        assert fnmr(genuine, ts).tolist() == pytest.approx(expected_fnmr)

    @pytest.mark.parametrize("bad", [[math.nan], [-INF], [[0.1, 0.2]]])
    def test_refuses_nan_minus_inf_and_2d(self, bad: list[object]) -> None:
        with pytest.raises(ValueError):
            Scores(bad)

    def test_presorted_is_checked(self) -> None:
        with pytest.raises(ValueError, match="ascending"):
            Scores([0.3, 0.1], presorted=True)
        assert Scores(np.array([0.1, 0.3]), presorted=True).n == 2

    def test_empty_set_has_no_rate(self) -> None:
        with pytest.raises(ValueError, match="empty"):
            fmr([], 0.5)


class TestDetAndEer:
    def test_det_curve_at_every_distinct_score(self) -> None:
        curve = det_curve([0.1, 0.3, 0.3], [0.2, 0.4])
        assert curve.thresholds.tolist() == [0.1, 0.2, 0.3, 0.4]
        assert curve.fmr.tolist() == [0.0, 0.5, 0.5, 1.0]
        assert curve.fnmr.tolist() == pytest.approx([2 / 3, 2 / 3, 0.0, 0.0])

    def test_thinned_det_curve_keeps_both_ends(self) -> None:
        rng = np.random.default_rng(0)
        g, i = rng.normal(0.4, 0.1, 5000), rng.normal(0.9, 0.1, 200_000)
        curve = det_curve(g, i, max_points=200)
        assert curve.thresholds.size <= 200
        assert np.all(np.diff(curve.fmr) >= 0) and np.all(np.diff(curve.fnmr) <= 0)
        assert curve.fmr[0] <= 1 / 200_000 + 1e-12  # the smallest impostor score is a threshold
        assert curve.fmr.tolist() == fmr(i, curve.thresholds).tolist()

    def test_exact_crossing(self) -> None:
        eer = equal_error_rate([0.1, 0.2, 0.3, 0.6], [0.4, 0.5, 0.7, 0.8])
        assert (eer.rate, eer.low, eer.high, eer.threshold) == (0.25, 0.25, 0.25, 0.4)

    def test_crossing_between_steps_is_the_midpoint_of_the_better_side(self) -> None:
        # t=2.5: FMR 1/4, FNMR 1/3 (sum 7/12); t=3: FMR 1/4, FNMR 0 (sum 1/4): FVC2000 takes t=3, EER 1/8.
        eer = equal_error_rate([1.0, 2.0, 3.0], [2.5, 4.0, 5.0, 6.0])
        assert (eer.rate, eer.low, eer.high, eer.threshold) == (0.125, 0.0, 0.25, 3.0)

    def test_separated_sets_have_zero_eer(self) -> None:
        assert equal_error_rate([0.1, 0.2], [0.5, 0.6]).rate == 0.0

    @settings(max_examples=200)
    @given(score_lists, score_lists)
    def test_eer_equals_brute_force_fvc_definition(self, genuine: list[float], impostor: list[float]) -> None:
        cands = [-INF, *sorted(set(genuine) | set(impostor))]
        rates = [(fmr(impostor, t)[0], fnmr(genuine, t)[0], t) for t in cands]
        t1 = max((r for r in rates if r[0] <= r[1]), key=lambda r: r[2])
        above = [r for r in rates if r[0] >= r[1]]
        eer = equal_error_rate(genuine, impostor)
        if t1[0] == t1[1]:
            assert eer.rate == pytest.approx(t1[0])
        elif not above:
            assert eer.rate == pytest.approx((t1[0] + t1[1]) / 2)
        else:
            t2 = min(above, key=lambda r: r[2])
            best = t1 if t1[0] + t1[1] <= t2[0] + t2[1] else t2
            assert eer.rate == pytest.approx((best[0] + best[1]) / 2)


class TestThresholdAtFmr:
    IMPOSTOR = (0.1, 0.2, 0.2, 0.3)

    @pytest.mark.parametrize(
        ("target", "expected"), [(0.25, 0.15), (0.5, 0.15), (0.75, 0.25), (1.0, 0.3), (0.9999, 0.25)]
    )
    def test_known_answers(self, target: float, expected: float) -> None:
        assert threshold_at_fmr(self.IMPOSTOR, target) == pytest.approx(expected)

    def test_below_one_comparison_nothing_may_match(self) -> None:
        t = threshold_at_fmr(self.IMPOSTOR, 0.1)
        assert t < 0.1 and fmr(self.IMPOSTOR, t)[0] == 0.0

    @settings(max_examples=200)
    @given(score_lists, st.floats(min_value=0.0, max_value=1.0))
    def test_largest_threshold_within_target(self, impostor: list[float], target: float) -> None:
        t = threshold_at_fmr(impostor, target)
        assert fmr(impostor, t)[0] <= target + 1e-12
        larger = [d for d in impostor if d > t]
        if larger:  # the next score up would break the target
            assert fmr(impostor, min(larger))[0] > target


# ---- confidence intervals ----


def _binomial_pmf(n: int, p: float) -> np.ndarray:
    return np.array([math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)])


class TestIntervals:
    def test_clopper_pearson_textbook_values(self) -> None:
        assert clopper_pearson_interval(5, 20) == pytest.approx((0.0866, 0.4910), abs=5e-5)
        assert clopper_pearson_interval(3, 10) == pytest.approx((0.0667, 0.6525), abs=5e-5)
        assert clopper_pearson_interval(0, 10)[1] == pytest.approx(1 - 0.025 ** (1 / 10))

    def test_rule_of_three(self) -> None:
        n = 1_000_000
        assert clopper_pearson_upper(0, n) == pytest.approx(3 / n, rel=0.002)

    @pytest.mark.parametrize(("k", "n"), [(1, 7), (4, 30), (12, 40)])
    def test_clopper_pearson_tails_hold_exactly(self, k: int, n: int) -> None:
        low, high = clopper_pearson_interval(k, n)
        assert sum(_binomial_pmf(n, high)[: k + 1]) == pytest.approx(0.025, abs=1e-9)
        assert sum(_binomial_pmf(n, low)[k:]) == pytest.approx(0.025, abs=1e-9)

    def test_wilson_known_value(self) -> None:
        z2 = 1.959963984540054**2
        assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))
        assert wilson_interval(10, 10)[1] == 1.0

    @pytest.mark.parametrize("p", [0.02, 0.1, 0.3])
    def test_exact_coverage(self, p: float) -> None:
        """Coverage computed exactly over the binomial: Clopper-Pearson never below 95 %, Wilson close to it."""
        n = 150
        pmf = _binomial_pmf(n, p)
        cp = sum(
            w for k, w in enumerate(pmf) if clopper_pearson_interval(k, n)[0] <= p <= clopper_pearson_interval(k, n)[1]
        )
        wi = sum(w for k, w in enumerate(pmf) if wilson_interval(k, n)[0] <= p <= wilson_interval(k, n)[1])
        assert cp >= 0.95
        assert 0.92 <= wi <= 0.98

    def test_simulated_coverage_of_wilson(self) -> None:
        rng = np.random.default_rng(7)
        p, n = 0.05, 400
        hits = [lo <= p <= hi for lo, hi in (wilson_interval(int(k), n) for k in rng.binomial(n, p, 2000))]
        assert 0.93 <= np.mean(hits) <= 0.97

    def test_subject_bootstrap_covers_clustered_fnmr_where_wilson_does_not(self) -> None:
        """One person's genuine pairs fail together: the subject bootstrap keeps ~95 %; Wilson does not."""
        rng = np.random.default_rng(11)
        boot = wil = 0
        trials = 200
        for seed in range(trials):
            m = rng.integers(2, 20, 150)
            p = rng.beta(0.5, 4.5, 150)  # mean 0.1
            errors = np.concatenate([rng.random(k) < q for k, q in zip(m, p, strict=True)])
            subject = np.repeat(np.arange(150), m)
            lo, hi = bootstrap_error_interval(errors, subject, n_boot=300, seed=seed)
            boot += lo <= 0.1 <= hi
            wl, wh = wilson_interval(int(errors.sum()), errors.size)
            wil += wl <= 0.1 <= wh
        assert 0.89 <= boot / trials <= 0.99
        assert wil / trials < 0.85

    def test_subject_bootstrap_covers_clustered_fmr(self) -> None:
        rng = np.random.default_rng(5)
        s = 100
        i, j = np.triu_indices(s, 1)
        covered = wilson_covered = 0
        trials = 120
        for seed in range(trials):
            n = rng.integers(1, 6, s)
            u = rng.gamma(1.0, 1.0, s)  # some people look like many others: mean 1, so the true FMR is 0.02
            events = rng.binomial(n[i] * n[j], np.minimum(1.0, 0.02 * u[i] * u[j]))
            a, b = np.repeat(i, events), np.repeat(j, events)
            lo, hi = bootstrap_fmr_interval(a, b, n, n_boot=300, seed=seed)
            covered += lo <= 0.02 <= hi
            wl, wh = wilson_interval(int(events.sum()), cross_pair_count(n))
            wilson_covered += wl <= 0.02 <= wh
        assert 0.87 <= covered / trials <= 0.99
        assert wilson_covered / trials < 0.6

    def test_bootstrap_is_exact_when_every_pair_fails(self) -> None:
        sizes = np.array([3, 1, 2, 5])
        a, b = zip(
            *[(x, y) for x in range(4) for y in range(x + 1, 4) for _ in range(sizes[x] * sizes[y])], strict=True
        )
        assert bootstrap_fmr_interval(np.array(a), np.array(b), sizes, n_boot=200) == pytest.approx((1.0, 1.0))

    def test_cross_population_bootstrap_is_exact_when_every_pair_fails(self) -> None:
        a, b = np.meshgrid(np.arange(3), np.arange(2), indexing="ij")
        sizes_a, sizes_b = np.array([1, 1, 1]), np.array([1, 1])
        assert bootstrap_fmr_interval(a.ravel(), b.ravel(), sizes_a, images_per_subject_b=sizes_b, n_boot=50) == (
            1.0,
            1.0,
        )

    def test_cross_pair_count(self) -> None:
        sizes = [2, 1, 3]
        images = [s for s, n in enumerate(sizes) for _ in range(n)]
        brute = sum(images[x] != images[y] for x in range(len(images)) for y in range(x + 1, len(images)))
        assert cross_pair_count(sizes) == brute == 11


# ---- 1:N ----


class TestIdentification:
    # Gallery of 4 people; probe 3 ties three ways; probe 4 had no face (a row of +inf).
    D = np.array(
        [
            [0.2, 0.5, 0.6, 0.9],
            [0.3, 0.4, 0.1, 0.9],
            [0.5, 0.5, 0.5, 0.9],
            [INF, INF, INF, INF],
        ]
    )
    MATE = np.array([0, 1, 2, 3])

    def test_ranks_with_pessimistic_ties_and_no_template(self) -> None:
        assert mate_ranks(self.D, self.MATE).tolist() == [1, 3, 3, NO_RANK]
        assert mate_ranks(self.D, np.array([0, -1, 2, 3]))[1] == NO_RANK

    def test_cmc(self) -> None:
        assert cmc(mate_ranks(self.D, self.MATE), max_rank=4).tolist() == [0.25, 0.25, 0.75, 0.75]

    def test_nonmated_top_removes_the_mate(self) -> None:
        assert nonmated_top_distance(self.D, self.MATE).tolist() == [0.5, 0.1, 0.5, INF]

    def test_fnir_needs_rank_and_threshold(self) -> None:
        ranks = mate_ranks(self.D, self.MATE)
        mate_d = self.D[np.arange(4), self.MATE]
        assert fnir(mate_d, ranks, 0.45).tolist() == [0.5]
        assert fnir(mate_d, ranks, 0.45, max_rank=1).tolist() == [0.75]
        assert fnir(mate_d, ranks, [0.0, 1.0]).tolist() == [1.0, 0.25]

    def test_fnir_at_fpir(self) -> None:
        ranks = mate_ranks(self.D, self.MATE)
        mate_d = self.D[np.arange(4), self.MATE]
        nonmated = nonmated_top_distance(self.D, self.MATE)[:3]  # the probe with no face makes no non-mated search
        point = fnir_at_fpir(mate_d, ranks, nonmated, 1 / 3)
        assert point.threshold == pytest.approx(0.3)
        assert (point.fpir.events, point.fpir.trials) == (1, 3)
        assert (point.fnir.events, point.fnir.trials) == (3, 4)
        assert fpir(nonmated, point.threshold).tolist() == [pytest.approx(1 / 3)]

    @given(st.integers(0, 10_000))
    def test_ranks_equal_brute_force(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        d = rng.integers(0, 5, size=(6, 5)).astype(float)  # many ties
        mate = rng.integers(0, 5, 6)
        expected = [sum(d[p, g] <= d[p, mate[p]] for g in range(5)) for p in range(6)]
        assert mate_ranks(d, mate).tolist() == expected
        hits = cmc(mate_ranks(d, mate), 5)
        assert hits.tolist() == [np.mean([r <= k for r in expected]) for k in range(1, 6)]


# ---- group-wise figures ----


class TestGroups:
    # People 0,1 female, 2,3 male; images per person 2,1,2,1. Images: 0,1 (p0) 2 (p1) 3,4 (p2) 5 (p3).
    SIZES = np.array([2, 1, 2, 1])
    GROUP = ("female", "female", "male", "male")
    OWNER = (0, 0, 1, 2, 2, 3)

    def impostors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pairs = [(x, y) for x in range(6) for y in range(x + 1, 6) if self.OWNER[x] != self.OWNER[y]]
        false_matches = {(0, 2), (0, 3)}  # one within female, one female x male
        d = np.array([0.3 if p in false_matches else 0.9 for p in pairs])
        a = np.array([self.OWNER[x] for x, _ in pairs])
        b = np.array([self.OWNER[y] for _, y in pairs])
        return d, a, b

    def test_within_and_cross_group_fmr(self) -> None:
        d, a, b = self.impostors()
        assert d.size == cross_pair_count(self.SIZES) == 13
        result = group_fmr(d, a, b, self.SIZES, self.GROUP, 0.5, SizeRule(1, 1), n_boot=50)
        within = {f.group: (f.errors, f.comparisons, f.subjects) for f in result.within}
        assert within == {"female": (1, 2, 2), "male": (0, 2, 2)}
        assert [(f.group, f.errors, f.comparisons) for f in result.cross] == [("female x male", 1, 9)]
        assert result.within[0].proportion is not None and result.within[0].proportion.rate == 0.5

    def test_small_groups_are_reported_as_such(self) -> None:
        d, a, b = self.impostors()
        result = group_fmr(d, a, b, self.SIZES, self.GROUP, 0.5, SizeRule(min_subjects=30), n_boot=50)
        for figure in [*result.within, *result.cross]:
            assert figure.proportion is None and not figure.stable
            assert figure.too_small is not None and "too small for a stable figure" in figure.too_small
            assert figure.comparisons > 0  # sizes are still reported
        assert spread(result.within).ratio is None
        assert spread(result.within).left_out == ("female", "male")

    def test_rule_of_30_on_comparisons(self) -> None:
        rule = SizeRule.for_rate(0.001)
        assert rule.min_comparisons == 30_000
        assert rule.problem(50, 29_999) is not None and rule.problem(50, 30_000) is None
        assert "people" in (rule.problem(29, 10**6) or "")

    def test_group_fnmr_and_spread(self) -> None:
        # female: 1 error in 4; male: 1 error in 2 -> ratio 2.
        errors = np.array([True, False, False, False, True, False])
        subject = np.array([0, 0, 1, 1, 2, 2])
        figures = group_error_rates(errors, subject, ["female", "female", "male"], SizeRule(1, 1), n_boot=50)
        assert [(f.group, f.errors, f.comparisons, f.subjects) for f in figures] == [
            ("female", 1, 4, 2),
            ("male", 1, 2, 1),
        ]
        result = spread(figures)
        assert (result.ratio, result.highest, result.lowest) == (2.0, "male", "female")

    def test_spread_with_a_zero_group_is_unbounded_not_infinite(self) -> None:
        zero = GroupFigure("a", 40, 100, 0, Proportion(0, 100, 0.0, 0.03, "x"))
        some = GroupFigure("b", 40, 100, 5, Proportion(5, 100, 0.02, 0.1, "x"))
        result = spread([zero, some])
        assert result.ratio is None and "unbounded" in result.note

    def test_unlabelled_people_are_left_out(self) -> None:
        figures = group_error_rates([True, False], [0, 1], [None, "x"], SizeRule(1, 1), n_boot=10)
        assert [(f.group, f.comparisons) for f in figures] == [("x", 1)]

    def test_headline_rates_by_subject(self) -> None:
        d, a, b = self.impostors()
        p = fmr_by_subject(d, a, b, self.SIZES, 0.5, n_boot=100)
        assert (p.events, p.trials) == (2, 13) and p.low <= 2 / 13 <= p.high
        g = fnmr_by_subject([0.2, 0.7, 0.3], [0, 0, 2], 0.5, n_boot=100)
        assert (g.events, g.trials) == (1, 3) and "subject bootstrap" in g.method


class TestOutcomeBreakdown:
    def records(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        rows += [{"sex": "female", "outcome": "viable_match"}] * 12 + [{"sex": "female", "outcome": "no_match"}] * 28
        rows += [{"sex": "male", "outcome": "viable_match"}] * 24 + [{"sex": "male", "outcome": "no_match"}] * 16
        rows += [{"sex": None, "outcome": "viable_match"}, {"outcome": "no_match"}, {"sex": "  ", "outcome": "x"}]
        rows += [{"sex": "female", "ic_code": "IC3", "outcome": "viable_match"}]
        return rows

    def test_counts_rates_and_not_recorded(self) -> None:
        (by_sex,) = outcome_breakdown(self.records(), ["sex"])
        rows = {r.value: r for r in by_sex.rows}
        assert [r.value for r in by_sex.rows] == ["female", "male", NOT_RECORDED]
        assert rows["female"].records == 41 and rows["female"].outcomes == {"no_match": 28, "viable_match": 13}
        assert rows["male"].positive is not None and rows["male"].positive.rate == 0.6
        assert rows[NOT_RECORDED].records == 3 and rows[NOT_RECORDED].too_small is not None
        assert by_sex.spread.ratio == pytest.approx(0.6 / (13 / 41))
        assert NOT_RECORDED not in by_sex.spread.groups

    def test_small_values_are_not_given_a_rate(self) -> None:
        (by_ic,) = outcome_breakdown(self.records(), ["ic_code"], min_records=30)
        rows = {r.value: r for r in by_ic.rows}
        assert rows["IC3"].positive is None and "too small" in (rows["IC3"].too_small or "")
        assert by_ic.spread.ratio is None


# ---- demographic annotation loaders ----


class TestDemographics:
    def test_majority_is_strict(self) -> None:
        assert majority(["a", "a", "b"]) == "a"
        assert majority(["a", "b"]) is None
        assert majority([]) is None

    def test_per_person(self) -> None:
        labels = {"Ann_Lee_0001": "x", "Ann_Lee_0002": "x", "Ann_Lee_0003": "y", "Bo_0001": "y", "Bo_0002": "x"}
        assert per_person(labels) == {"Ann_Lee": "x"}
        assert person_of("lfw/Ann_Lee/Ann_Lee_0001.jpg") == "Ann_Lee"

    def test_real_sets_load_with_documented_sizes(self, data_root: Path) -> None:
        folder = data_root / "lfw" / "demographics"
        gender = load_gender(folder)
        assert len(gender.images_conflicting) == 5  # the five images in both lists (README)
        assert gender.labels["Aaron_Eckhart"] == "male" and gender.labels["Serena_Williams"] == "female"
        assert 5_700 <= len(gender.labels) <= 5_749
        race = load_race_attributes(folder)
        assert race.images_labelled == 7_752  # images with exactly one race label (README)
        hand = load_race_by_person(folder)
        assert hand.labels["Sidney_Poitier"] == "Black"
        check = agreement(hand, race)
        assert check.common > 500 and check.rate > 0.9
