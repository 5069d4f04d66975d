"""Paired comparisons of a base model and a candidate on the same items.

Each item is scored pass/fail under both models. Only the discordant items carry information:
`gained` (base failed, candidate passed) and `lost` (base passed, candidate failed). Under "the
candidate is no different" each discordant item is a fair coin, so the exact one-sided McNemar
test is a binomial tail: P(X >= gained | X ~ Bin(gained + lost, 1/2)). A bootstrap over items
gives an interval for the change in pass rate, reported alongside.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

ALPHA = 0.05  # significance level of every gate decision (one-sided)


@dataclass(frozen=True, slots=True)
class PairedOutcome:
    n: int  # items compared
    base_passed: int
    candidate_passed: int
    gained: int  # failed under base, passed under the candidate
    lost: int  # passed under base, failed under the candidate
    p_gain: float  # one-sided exact McNemar p-value for "the candidate passes more"
    p_loss: float  # one-sided exact McNemar p-value for "the candidate passes fewer"
    change_low: float  # 95% bootstrap interval of candidate minus base pass rate
    change_high: float

    @property
    def base_rate(self) -> float:
        return self.base_passed / self.n if self.n else 0.0

    @property
    def candidate_rate(self) -> float:
        return self.candidate_passed / self.n if self.n else 0.0

    @property
    def change_points(self) -> float:
        return 100.0 * (self.candidate_rate - self.base_rate)

    def to_dict(self) -> dict:
        return {**asdict(self), "base_rate": self.base_rate, "candidate_rate": self.candidate_rate,
                "change_points": self.change_points}


def binomial_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Bin(n, 1/2)."""
    if k <= 0:
        return 1.0
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n


def bootstrap_interval(diffs: list[int], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of `diffs` (per-item candidate minus base, -1/0/1)."""
    if not diffs:
        return 0.0, 0.0
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(rng.choice(diffs) for _ in range(n)) / n for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def compare(base: list[bool], candidate: list[bool]) -> PairedOutcome:
    """The paired outcome of two pass/fail lists over the same items."""
    if len(base) != len(candidate):
        raise ValueError("base and candidate must score the same items")
    gained = sum(not b and c for b, c in zip(base, candidate))
    lost = sum(b and not c for b, c in zip(base, candidate))
    low, high = bootstrap_interval([int(c) - int(b) for b, c in zip(base, candidate)])
    return PairedOutcome(n=len(base), base_passed=sum(base), candidate_passed=sum(candidate),
                         gained=gained, lost=lost, p_gain=binomial_tail(gained, gained + lost),
                         p_loss=binomial_tail(lost, gained + lost), change_low=low,
                         change_high=high)
