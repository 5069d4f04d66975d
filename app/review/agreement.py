"""Inter-annotator agreement over review labels.

Only items labelled by two or more annotators count ("overlapping items"). With more than two
annotators the statistics are pairwise: every pair of annotators who labelled the same item gives
one comparison. Percent agreement is the share of comparisons that agree; Cohen's kappa is computed
per annotator pair over that pair's shared items and averaged, weighted by the number of shared
items. This module knows nothing about the database; callers pass plain labels.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import combinations


@dataclass(frozen=True, slots=True)
class Label:
    item_id: str  # the labelled assistant message
    annotator: str
    verdict: str  # accept | reject | rewrite


@dataclass(frozen=True, slots=True)
class Agreement:
    items_with_overlap: int
    percent_agreement: float | None  # 0..100; None when no item overlaps
    cohens_kappa: float | None  # None when undefined (no overlap, or chance agreement is 1)


def cohens_kappa(first: list[str], second: list[str]) -> float | None:
    """Cohen's kappa of two raters' paired labels; None when expected agreement is 1 (undefined)."""
    if len(first) != len(second):
        raise ValueError(f"paired labels differ in length: {len(first)} != {len(second)}")
    if not first:
        return None
    num_items = len(first)
    observed = sum(a == b for a, b in zip(first, second)) / num_items
    counts_first, counts_second = Counter(first), Counter(second)
    expected = sum(counts_first[k] * counts_second[k] for k in counts_first) / num_items**2
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def _verdicts_by_item(labels: list[Label]) -> dict[str, dict[str, str]]:
    """item -> annotator -> verdict; an annotator's later label of the same item wins."""
    by_item: dict[str, dict[str, str]] = defaultdict(dict)
    for label in labels:
        by_item[label.item_id][label.annotator] = label.verdict
    return by_item


def agreement(labels: list[Label]) -> Agreement:
    """Percent agreement and pair-weighted Cohen's kappa over items with two or more annotators."""
    overlapping = {item: v for item, v in _verdicts_by_item(labels).items() if len(v) >= 2}
    if not overlapping:
        return Agreement(items_with_overlap=0, percent_agreement=None, cohens_kappa=None)
    num_agree = num_comparisons = 0
    pairs: dict[tuple[str, str], tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for verdicts in overlapping.values():
        for a, b in combinations(sorted(verdicts), 2):
            num_comparisons += 1
            num_agree += verdicts[a] == verdicts[b]
            pairs[(a, b)][0].append(verdicts[a])
            pairs[(a, b)][1].append(verdicts[b])
    weighted_kappa = weight = 0.0
    for first, second in pairs.values():
        kappa = cohens_kappa(first, second)
        if kappa is not None:
            weighted_kappa += kappa * len(first)
            weight += len(first)
    return Agreement(
        items_with_overlap=len(overlapping),
        percent_agreement=100.0 * num_agree / num_comparisons,
        cohens_kappa=weighted_kappa / weight if weight else None,
    )
