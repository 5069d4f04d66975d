"""Offline throughput of the engine against transformers on a SmolLM2-135M-shaped model.

Workload W: 64 requests, prompt lengths uniform in [64, 512] (random ids, random.Random(1234)),
exactly 128 output tokens each (ignore_eos), greedy, all submitted at once. Reported: requests/s,
output tokens/s, TTFT and TPOT p50/p99, MFU/MBU; the same model in transformers one request at a
time (on a subset, as a rate) and in static batches of 16 with left padding; and a batch-1 figure
(128-token prompt, 128 out). Random bf16 weights: speed does not depend on what they say.

    python benchmarks/throughput.py --quick      # < 3 minutes on 2 cores
    python benchmarks/throughput.py --num-threads 1   # one core for both sides
    python benchmarks/throughput.py --profile    # also: where a step's time goes, vs the roofline
    python benchmarks/throughput.py --profile-only --quick  # only that, on 16 of W's requests
    python benchmarks/throughput.py --int8       # also the engine with weight-only int8 linears
    python benchmarks/throughput.py --json-schema  # also W with every request under a JSON schema
    python benchmarks/throughput.py --tensor-parallel-size 2 --quick  # TP=2 vs TP=1 only
    python benchmarks/throughput.py --cold-warm --quick [--no-warmup]  # first W run vs second

int8 figures are reported on their own lines; every ratio against transformers is bf16 vs bf16.

The box may be shared: numbers move with other load; compare within one run.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import random
import statistics
import sys
import time
from pathlib import Path

# Idle OpenMP workers sleep instead of spinning: on a shared box, spinning threads that lose their
# core stall every parallel region (measured 7x slower decode steps with 2 threads here).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framework.engine import LLMEngine  # noqa: E402
from model.llama import LlamaForCausalLM  # noqa: E402
from shared import EngineConfig, ModelConfig, SamplingParams  # noqa: E402

logger = logging.getLogger("throughput")

SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                    rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
                    bos_token_id=1, eos_token_ids=[2], torch_dtype="bfloat16")
NUM_REQUESTS, OUTPUT_LEN, PROMPT_RANGE = 64, 128, (64, 512)


class IdTokenizer:
    """Stands in for a real tokenizer: every id decodes to a short word."""
    bos_token_id, eos_token_ids, vocab_size = 1, [2], SMOLLM2_135M["vocab_size"]

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        return [1] * add_bos + [int(w[1:]) for w in text.split()]

    def decode(self, token_ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(f" t{t}" for t in token_ids)


def build_model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(ModelConfig(**SMOLLM2_135M)).to(torch.bfloat16).eval()


def workload() -> list[list[int]]:
    rng = random.Random(1234)
    return [[rng.randrange(3, SMOLLM2_135M["vocab_size"]) for _ in range(rng.randint(*PROMPT_RANGE))]
            for _ in range(NUM_REQUESTS)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# ---- our engine
def run_engine(model, prompts: list[list[int]], config: EngineConfig, profile=None,
               tokenizer=None, params: SamplingParams | None = None) -> dict:
    engine = LLMEngine(model, tokenizer or IdTokenizer(), config, device_profile=profile)
    params = params or SamplingParams(temperature=0.0, max_tokens=OUTPUT_LEN, ignore_eos=True)
    started = time.perf_counter()
    for i, prompt in enumerate(prompts):
        engine.add_request(f"w{i}", prompt, params)
    ttft, tpot, weighted_mfu, weighted_mbu = [], [], 0.0, 0.0
    while engine.has_unfinished_requests():
        outputs = engine.step()
        stats = engine.stats
        weighted_mfu += stats.mfu * stats.step_time_s
        weighted_mbu += stats.mbu * stats.step_time_s
        now = time.perf_counter() - started
        for out in outputs:
            if out.finished:
                assert len(out.outputs[0].token_ids) == OUTPUT_LEN
                ttft.append(out.first_token_latency)
                tpot.append((now - out.first_token_latency) / (OUTPUT_LEN - 1))
    elapsed = time.perf_counter() - started
    return dict(seconds=elapsed, req_s=len(prompts) / elapsed, out_tok_s=len(prompts) * OUTPUT_LEN / elapsed,
                ttft_p50=percentile(ttft, 0.5), ttft_p99=percentile(ttft, 0.99),
                tpot_p50=percentile(tpot, 0.5), tpot_p99=percentile(tpot, 0.99),
                mfu=weighted_mfu / elapsed, mbu=weighted_mbu / elapsed, steps=engine.stats.num_steps,
                preemptions=engine.stats.num_preemptions)


def engine_batch1(model, config: EngineConfig) -> float:
    """Output tokens/s of one request (128-token prompt, 128 out), prefill included."""
    prompt = workload()[0][:128] + [5] * max(0, 128 - len(workload()[0]))
    return OUTPUT_LEN / run_engine(model, [prompt], config)["seconds"]


# ---- transformers baselines
def hf_model(model: LlamaForCausalLM):
    import transformers

    c = model.config
    config = transformers.LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, max_position_embeddings=c.max_position_embeddings,
        rope_theta=c.rope_theta, rms_norm_eps=c.rms_norm_eps, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=None, pad_token_id=0)
    hf = transformers.LlamaForCausalLM(config).to(torch.bfloat16).eval()
    missing, unexpected = hf.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    hf.generation_config.eos_token_id = None
    return hf


@torch.inference_mode()
def hf_generate(hf, prompts: list[list[int]], new_tokens: int = OUTPUT_LEN) -> float:
    """Seconds for one static batch, left-padded to its longest prompt."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    started = time.perf_counter()
    out = hf.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                      min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    assert out.shape[1] == width + new_tokens
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller transformers baselines (< 3 min)")
    parser.add_argument("--num-threads", type=int, default=None,
                        help="torch threads for both sides (default: every usable core, as the "
                             "issue's figures for this machine were taken; 1 gives steadier numbers "
                             "on a busy box)")
    parser.add_argument("--max-num-batched-tokens", type=int, default=1024)
    parser.add_argument("--profile", action="store_true",
                        help="also break prefill and decode steps down by part (linears, attention, "
                             "LM head, sampler, other layers, Python/scheduling) against the roofline")
    parser.add_argument("--profile-only", action="store_true",
                        help="only the --profile breakdown; --quick: 16 requests, 8 decode steps")
    parser.add_argument("--engine-only", action="store_true", help="skip the transformers baselines")
    parser.add_argument("--int8", action="store_true",
                        help="also run the engine with EngineConfig.quantization='int8'")
    parser.add_argument("--json-schema", action="store_true",
                        help="also W with every request under a JSON schema vs free, same tokenizer")
    parser.add_argument("--tensor-parallel-size", type=int, default=1,
                        help="only compare N tensor-parallel ranks with one process (see "
                             "benchmarks/tensor_parallel.py); --quick: 8 requests, 32 tokens out")
    parser.add_argument("--cold-warm", action="store_true",
                        help="only the first W run of a fresh engine vs its second (benchmarks/"
                             "cold_warm.py); --quick: 16 requests, 16 tokens out")
    parser.add_argument("--no-warmup", action="store_true",
                        help="--cold-warm without the engine's start-up warm-up (the before)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    if args.num_threads is None:
        from chip.device.cpu_info import usable_cores

        args.num_threads = usable_cores()
    torch.set_num_threads(args.num_threads)
    from chip.device import detect_profile

    if args.tensor_parallel_size > 1:
        from benchmarks.tensor_parallel import report_tensor_parallel

        count, output_len = (8, 32) if args.quick else (NUM_REQUESTS, OUTPUT_LEN)
        report_tensor_parallel(args.tensor_parallel_size, SMOLLM2_135M, workload()[:count],
                               output_len, args.num_threads, IdTokenizer())
        return
    # verify: a quick probe re-measures a cached profile that was taken under load (or a day ago)
    profile = detect_profile("cpu", verify=True)
    log_profile(profile)
    model, prompts = build_model(), workload()
    config = EngineConfig(max_num_seqs=NUM_REQUESTS, max_num_batched_tokens=args.max_num_batched_tokens,
                          max_model_len=1024, num_threads=args.num_threads)
    logger.info("model: SmolLM2-135M shape, bf16, random weights; %d threads; W: %d requests, "
                "%d prompt tokens, %d output tokens each", args.num_threads, len(prompts),
                sum(map(len, prompts)), OUTPUT_LEN)
    if args.profile_only:
        count, decode_steps = (16, 8) if args.quick else (NUM_REQUESTS, 16)
        profile_steps(model, prompts[:count], config, profile, decode_steps)
        return
    if args.cold_warm:
        from benchmarks.cold_warm import report_cold_warm

        count, output_len = (16, 16) if args.quick else (NUM_REQUESTS, OUTPUT_LEN)
        report_cold_warm(model, IdTokenizer(), prompts[:count], config, output_len,
                         warmup=not args.no_warmup)
        return
    run_engine(model, [p[:64] for p in prompts[:4]], config)  # warm-up
    ours = run_engine(model, prompts, config, profile)
    logger.info("engine  W: %.2f req/s, %.1f output tok/s, TTFT p50 %.2fs p99 %.2fs, TPOT p50 %.0fms "
                "p99 %.0fms, MFU %.1f%%, MBU %.1f%% (%d steps, %d preemptions, %.1fs)",
                ours["req_s"], ours["out_tok_s"], ours["ttft_p50"], ours["ttft_p99"], ours["tpot_p50"] * 1e3,
                ours["tpot_p99"] * 1e3, ours["mfu"] * 100, ours["mbu"] * 100, ours["steps"],
                ours["preemptions"], ours["seconds"])
    if args.int8:
        int8_config = dataclasses.replace(config, quantization="int8")
        int8 = run_engine(model, prompts, int8_config, profile)
        logger.info("engine int8 W: %.2f req/s, %.1f output tok/s, TPOT p50 %.0fms (%.1fs); batch-1 %.1f "
                    "output tok/s (weight-only int8 linears; not compared with transformers)",
                    int8["req_s"], int8["out_tok_s"], int8["tpot_p50"] * 1e3, int8["seconds"],
                    engine_batch1(model, int8_config))
    if args.json_schema:
        report_json_schema_cost(model, prompts, config, profile)
    if args.profile:
        profile_steps(model, prompts, config, profile)
    if args.engine_only:
        return

    hf = hf_model(model)
    one_subset = prompts[:1] if args.quick else prompts[:4]
    one_rate = len(one_subset) / sum(hf_generate(hf, [p]) for p in one_subset)
    static_sets = [prompts[i:i + 16] for i in range(0, (16 if args.quick else NUM_REQUESTS), 16)]
    static_rate = 16 * len(static_sets) / sum(hf_generate(hf, batch) for batch in static_sets)
    # Batch-1, interleaved and best of two each, so a burst of load elsewhere hits both sides.
    ours_b1 = hf_b1 = 0.0
    for _ in range(2):
        ours_b1 = max(ours_b1, engine_batch1(model, config))
        hf_b1 = max(hf_b1, OUTPUT_LEN / hf_generate(hf, [workload()[0][:128]]))
    logger.info("engine  batch-1: %.1f output tok/s (128 prompt + 128 out, best of 2)", ours_b1)
    logger.info("transformers one-at-a-time (%d reqs): %.3f req/s -> engine is %.1fx",
                len(one_subset), one_rate, ours["req_s"] / one_rate)
    logger.info("transformers static batches of 16 (%d batches): %.3f req/s -> engine is %.1fx",
                len(static_sets), static_rate, ours["req_s"] / static_rate)
    logger.info("transformers batch-1: %.1f tok/s (best of 2) -> engine is %.2fx", hf_b1, ours_b1 / hf_b1)
    report_ceilings(model, prompts, profile, ours["req_s"], ours_b1)


def log_profile(profile) -> None:
    """The roof every MFU/MBU and ceiling below is measured against, and when it was measured."""
    when = (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(profile.measured_at))
            if profile.measured_at else "unknown time")
    logger.info("device profile (roof for MFU/MBU and ceilings): %s, %.0f GFLOP/s bf16, %.1f GB/s, "
                "measured %s (best of several short runs)", profile.name,
                profile.peak_flops_for("bfloat16") / 1e9, profile.memory_bandwidth / 1e9, when)


def report_json_schema_cost(model, prompts: list[list[int]], config: EngineConfig, profile) -> None:
    """W free and W under a JSON schema (benchmarks/structured_workload.py), back to back, with the
    same synthetic 49,152-token vocabulary; the ratio is the cost of structured outputs."""
    from benchmarks.structured_workload import PieceTokenizer, json_params

    tokenizer = PieceTokenizer(SMOLLM2_135M["vocab_size"])
    started = time.perf_counter()  # once per tokenizer and schema; engines share it afterwards
    LLMEngine(model, tokenizer, config).grammar_compiler.compile(json_params(1).structured_outputs)
    logger.info("json schema: vocabulary read and schema compiled once in %.2fs",
                time.perf_counter() - started)
    free = run_engine(model, prompts, config, profile, tokenizer)
    with timed_grammar_masks() as mask_seconds:
        constrained = run_engine(model, prompts, config, profile, tokenizer,
                                 json_params(OUTPUT_LEN))
    for name, run in (("free", free), ("json schema", constrained)):
        logger.info("engine  W %-11s: %.2f req/s, %.1f output tok/s, TPOT p50 %.0fms p99 %.0fms "
                    "(%.1fs)", name, run["req_s"], run["out_tok_s"], run["tpot_p50"] * 1e3,
                    run["tpot_p99"] * 1e3, run["seconds"])
    logger.info("json schema / free: %.3fx throughput (%.1f%% cost); the grammar masks (fill + "
                "apply) took %.2fs of the constrained run's %.1fs (%.1f%%), a share other load on "
                "the box does not skew", constrained["req_s"] / free["req_s"],
                100 * (1 - constrained["req_s"] / free["req_s"]), mask_seconds[0],
                constrained["seconds"], 100 * mask_seconds[0] / constrained["seconds"])


@contextlib.contextmanager
def timed_grammar_masks():
    """Time every call of the sampler's grammar-mask step (a list holding the total seconds)."""
    from framework.engine import sampler

    total, original = [0.0], sampler.apply_grammar_mask

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            total[0] += time.perf_counter() - started

    sampler.apply_grammar_mask = timed
    try:
        yield total
    finally:
        sampler.apply_grammar_mask = original


def report_ceilings(model, prompts: list[list[int]], profile, req_s: float, batch1_tok_s: float) -> None:
    """Roofline ceilings from the measured device profile (chip.utilization): W can go no faster
    than its matmul FLOPs (2 x parameters x every prompt and output token) at peak bf16 FLOP/s;
    batch-1 decode no faster than reading every weight once per token at the measured bandwidth."""
    from chip import utilization

    c = model.config
    params = utilization.decoder_matmul_params(c.hidden_size, c.intermediate_size, c.num_hidden_layers,
                                               c.num_attention_heads, c.num_key_value_heads,
                                               c.head_dim, c.vocab_size)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    tokens = sum(map(len, prompts)) + len(prompts) * OUTPUT_LEN
    w_ceiling = len(prompts) / utilization.roofline_seconds(
        utilization.step_flops(params, tokens), 0, profile, "bfloat16")
    b1_ceiling = 1 / utilization.roofline_seconds(
        utilization.step_flops(params, 1), utilization.step_bytes(weight_bytes), profile, "bfloat16")
    logger.info("ceilings (%s, %.0f GFLOP/s bf16, %.1f GB/s): W <= %.2f req/s (engine at %.0f%%), "
                "batch-1 <= %.0f tok/s (engine at %.0f%%)", profile.name,
                profile.peak_flops_for("bfloat16") / 1e9, profile.memory_bandwidth / 1e9,
                w_ceiling, 100 * req_s / w_ceiling, b1_ceiling, 100 * batch1_tok_s / b1_ceiling)


def profile_steps(model, prompts: list[list[int]], config: EngineConfig, profile,
                  decode_steps: int = 16, output_len: int = OUTPUT_LEN) -> None:
    """Per-part breakdown (benchmarks/step_breakdown.py) of every prefill step of `prompts`, then of
    `decode_steps` decode steps of the full batch; the rest of the requests are aborted."""
    from benchmarks.step_breakdown import report_breakdown
    from framework.engine.step_profiler import StepProfiler

    from framework.engine.warmup import warm_up

    engine = LLMEngine(model, IdTokenizer(), config, device_profile=profile)
    warm_up(engine)  # as LLM(model=DIR) does: oneDNN primitives and the heap are not what we time
    params = SamplingParams(temperature=0, max_tokens=output_len, ignore_eos=True)
    for i, prompt in enumerate(prompts):
        engine.add_request(f"p{i}", prompt, params)
    with StepProfiler(engine) as profiler:
        while engine.has_unfinished_requests() and (
                sum(s.is_decode for s in profiler.steps) < decode_steps):
            engine.step()
    for request_id in list(engine.requests):
        engine.abort(request_id)
    weight = next(model.parameters())
    report_breakdown(profiler.steps, model.config, weight.element_size(), profile,
                     str(weight.dtype).removeprefix("torch."))


if __name__ == "__main__":
    main()
