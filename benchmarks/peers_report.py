"""The pure half of `benchmarks/peers.py`: workload W's prompt ids, one run's result, and the
medians, ratios and cold/warm split printed at the end. No torch, no engine: the vLLM driver
process imports this file too (with its own Python), and the unit tests run it in milliseconds.
"""
from __future__ import annotations

import dataclasses
import json
import random
import statistics
from collections.abc import Sequence

VOCAB = 49152  # SmolLM2-135M
NUM_REQUESTS, PROMPT_RANGE, OUTPUT_LEN = 64, (64, 512), 128
BATCH1_PROMPT_LEN = 128
FIRST_ID = 3  # ids 0..2 are <pad>, <s>, </s> in the written checkpoint's tokenizer


@dataclasses.dataclass(frozen=True)
class Workload:
    """Prompt token ids both systems receive verbatim, and how many tokens each must produce.

    Every W run after the first gets its own ids (`prompts_for_rep`): the same lengths, so the
    same work, but no prefix shared with an earlier run. Re-sending identical prompts lets both
    systems' prefix caches skip the prefill, which made the "warm" runs of the issue's tables
    ~35% faster than the first for a reason that no user workload shares."""
    prompts: list[list[int]]
    output_len: int
    batch1_prompt: list[int]
    seed: int = 1234

    def prompts_for_rep(self, rep: int) -> list[list[int]]:
        if rep == 0:
            return self.prompts
        rng = random.Random(self.seed + 1000 * rep)
        return [[rng.randint(FIRST_ID, VOCAB - 1) for _ in p] for p in self.prompts]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Workload:
        return cls(**json.loads(text))


def make_workload(num_requests: int = NUM_REQUESTS, output_len: int = OUTPUT_LEN,
                  prompt_range: tuple[int, int] = PROMPT_RANGE, seed: int = 1234,
                  vocab: int = VOCAB) -> Workload:
    """W: `num_requests` prompts of uniform random length in `prompt_range` (inclusive), random
    ids above the special tokens; the batch-1 prompt has its own seed, so W's size does not move
    it."""
    lo, hi = prompt_range
    if not 1 <= lo <= hi:
        raise ValueError(f"prompt range must be 1 <= lo <= hi, got {prompt_range}")
    if num_requests < 1 or output_len < 1:
        raise ValueError("need at least one request and one output token")
    rng = random.Random(seed)
    prompts = []
    for _ in range(num_requests):
        length = rng.randint(lo, hi)
        prompts.append([rng.randint(FIRST_ID, vocab - 1) for _ in range(length)])
    single = random.Random(seed + 1)
    return Workload(prompts, output_len,
                    [single.randint(FIRST_ID, vocab - 1) for _ in range(BATCH1_PROMPT_LEN)], seed)


@dataclasses.dataclass(frozen=True)
class Run:
    """One timed `generate` call of one system; `rep` 0 is the first W run of its process (cold)."""
    system: str  # "flywheel" or "vllm"
    sitting: int  # which alternation (A/B/A/B: 0, 0, 1, 1)
    mode: str  # "W" or "batch-1"
    rep: int
    seconds: float
    requests: int
    output_tokens: int

    @property
    def req_s(self) -> float:
        return self.requests / self.seconds

    @property
    def tok_s(self) -> float:
        return self.output_tokens / self.seconds


def median_or_none(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclasses.dataclass(frozen=True)
class Summary:
    """Per system: medians of cold W runs (rep 0), warm W runs (rep >= 1), all batch-1 runs."""
    system: str
    cold_req_s: float | None
    warm_req_s: float | None
    batch1_tok_s: float | None

    @property
    def cold_over_warm(self) -> float | None:
        if self.cold_req_s is None or not self.warm_req_s:
            return None
        return self.cold_req_s / self.warm_req_s


def summarize(runs: Sequence[Run], system: str) -> Summary:
    mine = [r for r in runs if r.system == system]
    return Summary(system,
                   median_or_none([r.req_s for r in mine if r.mode == "W" and r.rep == 0]),
                   median_or_none([r.req_s for r in mine if r.mode == "W" and r.rep > 0]),
                   median_or_none([r.tok_s for r in mine if r.mode == "batch-1"]))


def ratio(ours: float | None, theirs: float | None) -> float | None:
    return None if ours is None or not theirs else ours / theirs


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def format_run(run: Run) -> str:
    unit = f"{run.req_s:.3f} req/s" if run.mode == "W" else f"{run.tok_s:.1f} tok/s"
    return (f"sitting {run.sitting} {run.system:<8} {run.mode:<7} rep {run.rep}"
            f"{' (cold)' if run.mode == 'W' and run.rep == 0 else '       '}: {unit} "
            f"({run.requests} req, {run.output_tokens} tokens out in {run.seconds:.1f}s)")


def format_report(runs: Sequence[Run], ours: str = "flywheel", theirs: str = "vllm") -> list[str]:
    """The closing lines: each system's medians and cold/warm split, then ours / theirs."""
    a, b = summarize(runs, ours), summarize(runs, theirs)
    lines = []
    for s in (a, b):
        lines.append(f"{s.system:<8} W cold {_fmt(s.cold_req_s, '.3f')} req/s, warm "
                     f"{_fmt(s.warm_req_s, '.3f')} req/s "
                     f"(cold/warm {_fmt(s.cold_over_warm, '.2f')}), "
                     f"batch-1 {_fmt(s.batch1_tok_s, '.1f')} tok/s  [medians]")
    lines.append(f"{ours}/{theirs}: W warm {_fmt(ratio(a.warm_req_s, b.warm_req_s), '.2f')}x, "
                 f"W cold {_fmt(ratio(a.cold_req_s, b.cold_req_s), '.2f')}x, "
                 f"batch-1 {_fmt(ratio(a.batch1_tok_s, b.batch1_tok_s), '.2f')}x")
    return lines


RESULT_PREFIX = "PEERS-RUN "  # how a driver marks its result lines among the system's own logs


def parse_driver_output(text: str) -> list[dict]:
    """The result dicts a driver printed (one `PEERS-RUN {json}` line each); other lines ignored."""
    return [json.loads(line[len(RESULT_PREFIX):]) for line in text.splitlines()
            if line.startswith(RESULT_PREFIX)]
