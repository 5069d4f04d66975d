"""Speculative decoding against plain decoding, in one run, alternating: where it should help and
where it should not hurt.

Workloads (all greedy):
- story: stories260K continues a story it wrote itself (8 seeded sampled tokens, then 150 greedy
  ones, as the prompt; 128 greedy tokens on, ignore_eos): a small model's story repeats phrases.
- copying: the demo model answers the copying family of its corpus (app.demo.corpus), chat
  template applied, up to 32 tokens, stopping at EOS: it copies a name from the prompt.
- W: the throughput benchmark's SmolLM2-135M-shaped model with random bf16 weights, prompts of
  64-512 random ids, OUTPUT tokens each (ignore_eos); nothing to look up, so proposals are rare.

For each workload and batch size (1, 8, 64 requests submitted at once, max_num_seqs the same),
one engine without and one with `speculative_config` run alternately (off, on, off, on, after a
warm-up of each); printed: output tokens per target forward pass per sequence, the acceptance
rate, median wall-clock of each side and the speed-up (off / on). Prefix caching is off so every
run computes the same prompts.

    python benchmarks/speculative.py                 # ~3 minutes on 2 idle cores
    python benchmarks/speculative.py --w-batches 64 --workloads W --rounds 1
    python benchmarks/speculative.py --method draft  # stories260K drafting for itself (k+1 passes)

The box may be shared: compare within one run.
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/throughput.py

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.llm import LLM  # noqa: E402
from model.loader import load_model  # noqa: E402
from shared import SamplingParams  # noqa: E402

logger = logging.getLogger("speculative")

STORIES = ROOT.parent / "shared" / "models" / "stories260K-hf"
DEMO = ROOT / "app" / "demo" / "model"
NGRAM = {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_max": 3,
         "prompt_lookup_min": 2}
# a copied name starts right after the chat template's tokens: only its first token matches
NGRAM_COPYING = {**NGRAM, "prompt_lookup_min": 1}


@dataclass(slots=True)
class Workload:
    name: str
    loaded: object  # model.loader.LoadedModel, or the throughput benchmark's model + tokenizer
    prompts: list  # token-id lists, at least max(batch sizes) of them
    params: SamplingParams
    max_model_len: int


@dataclass(slots=True)
class Run:
    seconds: float
    token_ids: list[list[int]]  # per request, to check both sides generated the same
    steps: int
    drafts: int  # verified rows
    draft_tokens: int
    accepted: int


def story_workload() -> Workload:
    loaded = load_model(STORIES, dtype="float32")
    llm = LLM.from_loaded(loaded, enable_prefix_caching=False)
    openings = [SamplingParams(max_tokens=8, temperature=1.0, seed=i, ignore_eos=True) for i in range(64)]
    bos = loaded.tokenizer.bos_token_id
    prompts = [[bos] + out.outputs[0].token_ids
               for out in llm.generate([[bos]] * 64, openings, use_tqdm=False)]
    story = SamplingParams(max_tokens=150, temperature=0.0, ignore_eos=True)
    prompts = [p + out.outputs[0].token_ids for p, out in zip(prompts, llm.generate(prompts, story, use_tqdm=False))]
    params = SamplingParams(max_tokens=128, temperature=0.0, ignore_eos=True)
    return Workload("story", loaded, prompts, params, max_model_len=320)


def copying_workload() -> Workload:
    from app.demo.corpus import eval_prompts
    from app.serving.chat_template import render_prompt_ids

    loaded = load_model(DEMO, dtype="float32")
    prompts = [render_prompt_ids(loaded.tokenizer, [{"role": "user", "content": user}])
               for user, _ in eval_prompts("copying", 64, seed=11)]
    return Workload("copying", loaded, prompts, SamplingParams(max_tokens=32, temperature=0.0),
                    max_model_len=256)


def w_workload(output_len: int) -> Workload:
    from benchmarks.throughput import IdTokenizer, build_model, workload

    torch.manual_seed(0)
    loaded = type("Loaded", (), {"model": build_model(), "tokenizer": IdTokenizer()})()
    params = SamplingParams(max_tokens=output_len, temperature=0.0, ignore_eos=True)
    return Workload("W", loaded, workload(), params, max_model_len=512 + output_len)


def run(llm: LLM, prompts: list, params: SamplingParams) -> Run:
    before = llm.engine.stats
    started = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    seconds = time.perf_counter() - started
    after = llm.engine.stats
    return Run(seconds, [o.outputs[0].token_ids for o in outputs],
               after.num_steps - before.num_steps, after.num_spec_drafts - before.num_spec_drafts,
               after.num_spec_draft_tokens - before.num_spec_draft_tokens,
               after.num_spec_accepted_tokens - before.num_spec_accepted_tokens)


def compare(work: Workload, batch: int, spec: dict, draft, rounds: int) -> dict:
    common = dict(max_num_seqs=batch, enable_prefix_caching=False, max_model_len=work.max_model_len)
    off = LLM.from_loaded(work.loaded, **common)
    on = LLM.from_loaded(work.loaded, speculative_config=dict(spec), draft_model=draft, **common)
    prompts = work.prompts[:batch]
    warm = SamplingParams(max_tokens=4, temperature=0.0, ignore_eos=True)
    run(off, prompts[:1], warm), run(on, prompts[:1], warm)
    runs: dict[str, list[Run]] = {"off": [], "on": []}
    for _ in range(rounds):
        for name, llm in (("off", off), ("on", on)):
            runs[name].append(run(llm, prompts, work.params))
    del off, on
    gc.collect()
    on_runs = runs["on"]
    drafts, accepted = sum(r.drafts for r in on_runs), sum(r.accepted for r in on_runs)
    draft_tokens = sum(r.draft_tokens for r in on_runs)
    # tokens per target forward pass per sequence: rows that speculated gain 1 + kept drafts
    return {
        "off_s": statistics.median(r.seconds for r in runs["off"]),
        "on_s": statistics.median(r.seconds for r in on_runs),
        "tokens_per_pass": (drafts + accepted) / drafts if drafts else 1.0,
        "acceptance": accepted / draft_tokens if draft_tokens else 0.0,
        "steps_off": runs["off"][0].steps, "steps_on": on_runs[0].steps,
        "same_tokens": all(r.token_ids == runs["off"][0].token_ids for r in runs["off"] + on_runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=["ngram", "draft"], default="ngram",
                        help="draft: the workload's own model as its draft (stories, copying)")
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--w-batches", default="1,8",
                        help="W's batch sizes (64: ~20 s of prefill per run on 2 cores)")
    parser.add_argument("--workloads", default="story,copying,W")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--w-output-len", type=int, default=16)
    parser.add_argument("--num-threads", type=int, default=2)
    parser.add_argument("--disable-by-batch-size", type=int, default=None,
                        help="speculate only while at most this many sequences run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logger.setLevel(logging.INFO)
    torch.set_num_threads(args.num_threads)
    makers = {"story": story_workload, "copying": copying_workload,
              "W": lambda: w_workload(args.w_output_len)}
    logger.info("method %s; %s", args.method, NGRAM if args.method == "ngram" else "k=4 draft")
    logger.info("(copying looks up 1-grams too; tok/pass: tokens per target pass of a row that "
                "speculated; steps: engine steps off/on in one run)")
    logger.info("%-8s %5s %10s %10s %8s %8s %9s %7s %6s", "workload", "batch", "tok/pass",
                "accept", "off s", "on s", "speed-up", "steps", "same")
    for name in args.workloads.split(","):
        work = makers[name]()
        for batch in map(int, (args.w_batches if name == "W" else args.batches).split(",")):
            spec, draft = dict(NGRAM_COPYING if name == "copying" else NGRAM), None
            if args.method == "draft":
                if name == "W":
                    continue
                spec = {"model": "self", "num_speculative_tokens": 4}
                draft = load_model(STORIES if name == "story" else DEMO, dtype="float32").model
            spec["disable_by_batch_size"] = args.disable_by_batch_size
            r = compare(work, batch, spec, draft, args.rounds)
            logger.info("%-8s %5d %10.2f %9.0f%% %8.2f %8.2f %8.2fx %3d/%-3d %6s", name, batch,
                        r["tokens_per_pass"], 100 * r["acceptance"], r["off_s"], r["on_s"],
                        r["off_s"] / r["on_s"], r["steps_off"], r["steps_on"], r["same_tokens"])


if __name__ == "__main__":
    random.seed(0)
    main()
