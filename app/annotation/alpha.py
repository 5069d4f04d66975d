"""Krippendorff's alpha from its definition (Krippendorff, "Computing Krippendorff's
Alpha-Reliability", 2011), for any number of annotators and missing values.

alpha = 1 - D_o / D_e, written with the coincidence matrix o_ck (pairable values of the same unit,
each unit's pairs weighted 1 / (m_u - 1)), its marginals n_c and n = sum n_c:

    alpha = 1 - (n - 1) * sum_ck o_ck delta2(c, k) / sum_ck n_c n_k delta2(c, k)

Units with fewer than two values are not pairable and drop out. Distance metrics: nominal
(0 if equal else 1), ordinal (rank distance through the marginals) and interval ((c - k)^2).
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable
from enum import Enum


class Level(str, Enum):
    NOMINAL = "nominal"
    ORDINAL = "ordinal"
    INTERVAL = "interval"


def coincidences(units: Iterable[list[Hashable]]) -> dict[tuple[Hashable, Hashable], float]:
    """o_ck over units given as the list of values each received (missing values left out)."""
    matrix: dict[tuple[Hashable, Hashable], float] = defaultdict(float)
    for values in units:
        num_values = len(values)
        if num_values < 2:
            continue
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    matrix[(c, k)] += 1.0 / (num_values - 1)
    return matrix


def _delta2(level: Level, marginals: dict, c, k) -> float:
    if level is Level.NOMINAL:
        return 0.0 if c == k else 1.0
    if level is Level.INTERVAL:
        return float(c - k) ** 2
    low, high = (c, k) if c <= k else (k, c)
    between = sum(n for value, n in marginals.items() if low <= value <= high)
    return (between - (marginals[c] + marginals[k]) / 2.0) ** 2


def krippendorff_alpha(units: Iterable[list[Hashable]], level: Level = Level.NOMINAL) -> float | None:
    """Alpha over `units` (each: the values its annotators gave); None when undefined (fewer than
    two pairable values, or every pairable value the same so that no disagreement is expected)."""
    matrix = coincidences(units)
    marginals: dict[Hashable, float] = defaultdict(float)
    for (c, _k), weight in matrix.items():
        marginals[c] += weight
    total = sum(marginals.values())
    if total < 2:
        return None
    observed = sum(w * _delta2(level, marginals, c, k) for (c, k), w in matrix.items())
    expected = sum(marginals[c] * marginals[k] * _delta2(level, marginals, c, k)
                   for c in marginals for k in marginals)
    if expected == 0:
        return None
    return 1.0 - (total - 1.0) * observed / expected
