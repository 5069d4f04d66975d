"""The promotion gate: did the candidate learn what the feedback taught, without breaking what
production already does well?

Promote only when all three hold (README "The flywheel", the gate):
1. Taught skill: on the snapshot's eval side (prompt groups never trained on), the candidate
   answers significantly more corrections right than the base: exact one-sided McNemar test,
   p < ALPHA (0.05), over the items whose outcome changed. When that is not significant (no
   corrections on the eval side, or too few flipped for the test), DPO preference accuracy —
   the corrected answer more likely than the original one, on the same held-out prompts —
   decides the same way, provided correction accuracy did not get worse: a small model often
   prefers the taught answer on an unseen phrasing before it says it word for word. A candidate
   that learned nothing measurable is not promoted.
2. No regression: no suite (production's good answers, operator eval sets, the demo domain when
   the base is the demo model) drops by more than `max_regression_points` with confidence: the
   drop exceeds the threshold AND the McNemar test for a loss is significant. One flipped
   answer on a small suite is noise, not a regression.
3. Sanity: held-out loss on production's good answers does not rise by more than
   max(50%, `max_loss_rise_nats`) — a broken model, not the small rise new facts cause.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from app.flywheel.significance import ALPHA, PairedOutcome

MAX_RELATIVE_LOSS_RISE = 0.5


@dataclass(frozen=True, slots=True)
class SkillReport:
    """What the eval side says about the taught skill."""
    num_groups: int
    num_eval_groups: int
    corrections: PairedOutcome | None = None  # correction accuracy (contained / normalized match)
    f1_before: float | None = None  # mean token F1 of the answers against the corrections
    f1_after: float | None = None
    preferences: PairedOutcome | None = None  # chosen more likely than rejected
    kto_margin_before: float | None = None  # mean per-token log p: desirable minus undesirable
    kto_margin_after: float | None = None

    def learned(self, alpha: float) -> tuple[bool, str]:
        """(significant gain?, one line saying what was measured)."""
        measured = [(name, o) for name, o in (("correction accuracy", self.corrections),
                                               ("preference accuracy", self.preferences))
                    if o is not None and o.n]
        if not measured:
            return False, (f"the eval side ({self.num_eval_groups} of {self.num_groups} prompt "
                           "groups) holds no corrections or preferences to measure")
        summary = "; ".join(_summary(name, o) for name, o in measured)
        corrections_ok = self.corrections is None or self.corrections.gained >= self.corrections.lost
        for name, o in measured:
            if o.gained > o.lost and o.p_gain < alpha and (name.startswith("correction")
                                                            or corrections_ok):
                return True, summary
        return False, summary


def _summary(name: str, o: PairedOutcome) -> str:
    return (f"{name} {_pct(o.base_rate)} -> {_pct(o.candidate_rate)} on {o.n} held-out items "
            f"(+{o.gained}/-{o.lost}, one-sided p={o.p_gain:.3g})")


@dataclass(frozen=True, slots=True)
class SuiteReport:
    name: str
    outcome: PairedOutcome


@dataclass(frozen=True, slots=True)
class GateConfig:
    max_regression_points: float = 2.0
    max_loss_rise_nats: float = 0.5
    alpha: float = ALPHA


@dataclass(slots=True)
class GateReport:
    skill: SkillReport
    regression: list[SuiteReport]
    held_out_loss_before: float | None = None
    held_out_loss_after: float | None = None
    passed: bool = False
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        def outcome(o: PairedOutcome | None) -> dict | None:
            return o.to_dict() if o is not None else None

        skill = {**asdict(self.skill), "corrections": outcome(self.skill.corrections),
                 "preferences": outcome(self.skill.preferences)}
        return {"passed": self.passed, "reasons": self.reasons, "skill": skill,
                "regression": {s.name: s.outcome.to_dict() for s in self.regression},
                "held_out_loss": {"before": self.held_out_loss_before,
                                  "after": self.held_out_loss_after}}


def _pct(rate: float) -> str:
    return f"{100 * rate:.1f}%"


def decide(report: GateReport, config: GateConfig) -> GateReport:
    """Fill in `passed` and `reasons` (every reason, passing or not, is kept)."""
    reasons: list[str] = []
    learned, summary = report.skill.learned(config.alpha)
    reasons.append(f"learned: {summary}" if learned else f"no measurable gain: {summary}")
    failed = not learned
    for suite in report.regression:
        o = suite.outcome
        drop = -o.change_points
        line = (f"{suite.name} {_pct(o.base_rate)} -> {_pct(o.candidate_rate)} on {o.n} items "
                f"(-{o.lost}/+{o.gained}, p={o.p_loss:.3g})")
        if drop > config.max_regression_points and o.p_loss < config.alpha:
            failed = True
            reasons.append(f"regressed: {line}")
        else:
            reasons.append(f"kept: {line}")
    before, after = report.held_out_loss_before, report.held_out_loss_after
    if before is not None and after is not None:
        limit = max(MAX_RELATIVE_LOSS_RISE * before, config.max_loss_rise_nats)
        if after - before > limit:
            failed = True
            reasons.append(f"sanity check failed: held-out loss rose from {before:.4f} to "
                           f"{after:.4f} (more than {limit:.2f} nats)")
    report.passed = not failed
    report.reasons = reasons
    return report
