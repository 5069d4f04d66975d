"""Agreement statistics against hand-computed values (Wikipedia's Cohen's kappa worked example)."""
import pytest

from app.review.agreement import Label, agreement, cohens_kappa


def _wikipedia_pairs() -> tuple[list[str], list[str]]:
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15 -> p_o 0.7, p_e 0.5, kappa 0.4
    rows = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    return [a for a, _ in rows], [b for _, b in rows]


def test_cohens_kappa_matches_worked_example():
    first, second = _wikipedia_pairs()
    assert cohens_kappa(first, second) == pytest.approx(0.4)


def test_kappa_is_one_for_perfect_agreement_and_negative_for_systematic_disagreement():
    assert cohens_kappa(["a", "b", "a"], ["a", "b", "a"]) == pytest.approx(1.0)
    # p_o = 0, p_e = 0.5 -> kappa = -1
    assert cohens_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)


def test_kappa_undefined_when_chance_agreement_is_certain():
    assert cohens_kappa(["accept"] * 3, ["accept"] * 3) is None
    assert cohens_kappa([], []) is None


def test_kappa_rejects_unpaired_input():
    with pytest.raises(ValueError, match="differ in length"):
        cohens_kappa(["a"], ["a", "b"])


def test_agreement_counts_only_overlapping_items():
    first, second = _wikipedia_pairs()
    labels = [Label(f"m{i}", "alice", v) for i, v in enumerate(first)]
    labels += [Label(f"m{i}", "bob", v) for i, v in enumerate(second)]
    labels.append(Label("solo", "alice", "reject"))  # labelled once: not in the statistics
    result = agreement(labels)
    assert result.items_with_overlap == 50
    assert result.percent_agreement == pytest.approx(70.0)
    assert result.cohens_kappa == pytest.approx(0.4)


def test_agreement_with_three_annotators_is_pairwise():
    labels = [Label("m1", "a", "accept"), Label("m1", "b", "accept"), Label("m1", "c", "reject"),
              Label("m2", "a", "reject"), Label("m2", "b", "reject")]
    result = agreement(labels)
    assert result.items_with_overlap == 2
    # comparisons: m1 (a,b) agree, (a,c) no, (b,c) no; m2 (a,b) agree -> 2 of 4
    assert result.percent_agreement == pytest.approx(50.0)
    # pair (a,b): [accept, reject] vs [accept, reject] -> kappa 1 over 2 items;
    # pairs (a,c) and (b,c): one item each, p_e = 0 -> kappa 0. Weighted: (1*2 + 0 + 0) / 4 = 0.5
    assert result.cohens_kappa == pytest.approx(0.5)


def test_relabel_by_same_annotator_replaces_earlier_label_and_no_overlap_gives_none():
    labels = [Label("m1", "a", "accept"), Label("m1", "a", "reject")]
    result = agreement(labels)
    assert (result.items_with_overlap, result.percent_agreement, result.cohens_kappa) == (0, None, None)
