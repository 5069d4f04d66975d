"""The pure parts of `flywheel bench peers` (benchmarks/peers*.py): the workload both systems get,
the medians, ratios and cold/warm split it prints, and what it reads back from drivers and vLLM's
benchmark client. vLLM itself never runs in the test suite."""
from __future__ import annotations

import statistics

import pytest

from benchmarks.peers_report import (RESULT_PREFIX, Run, Workload, format_report, format_run,
                                     make_workload, parse_driver_output, summarize)
from benchmarks.peers_serve import ServeResult
from benchmarks.peers_venv import vllm_env


def test_workload_w_is_deterministic_in_range_and_survives_json():
    work = make_workload()
    lengths = [len(p) for p in work.prompts]
    assert len(work.prompts) == 64 and work.output_len == 128
    assert min(lengths) >= 64 and max(lengths) <= 512 and len(set(lengths)) > 32
    ids = [t for p in work.prompts for t in p]
    assert min(ids) >= 3 and max(ids) < 49152  # no <pad>, <s>, </s>: EOS never appears in a prompt
    assert make_workload() == work
    assert Workload.from_json(work.to_json()) == work
    short = make_workload(16, 32)
    assert short.prompts == work.prompts[:16]  # a short run is a prefix of W, not another draw
    assert short.batch1_prompt == work.batch1_prompt and len(work.batch1_prompt) == 128
    with pytest.raises(ValueError):
        make_workload(prompt_range=(10, 5))


def test_each_later_run_gets_the_same_lengths_but_no_shared_prefix():
    work = make_workload(8, 4)
    assert work.prompts_for_rep(0) == work.prompts
    later = work.prompts_for_rep(1)
    assert [len(p) for p in later] == [len(p) for p in work.prompts]
    # a prefix cache hits in 16-token blocks: no later prompt starts like any earlier one
    firsts = {tuple(p[:16]) for p in work.prompts}
    assert not any(tuple(p[:16]) in firsts for p in later)
    assert work.prompts_for_rep(2) != later and work.prompts_for_rep(1) == later


def run(system, sitting, mode, rep, seconds, requests=64, tokens=64 * 128):
    return Run(system, sitting, mode, rep, seconds, requests, tokens)


RUNS = [
    run("flywheel", 0, "W", 0, 80.0), run("flywheel", 0, "W", 1, 50.0),
    run("flywheel", 0, "batch-1", 0, 10.0, 1, 128), run("flywheel", 0, "batch-1", 1, 8.0, 1, 128),
    run("vllm", 0, "W", 0, 64.0), run("vllm", 0, "W", 1, 40.0),
    run("vllm", 0, "batch-1", 0, 16.0, 1, 128),
    run("flywheel", 1, "W", 0, 64.0), run("flywheel", 1, "W", 1, 40.0),
    run("vllm", 1, "W", 0, 32.0), run("vllm", 1, "W", 1, 32.0), run("vllm", 1, "W", 2, 64.0),
]


def test_medians_split_cold_from_warm_per_system():
    fw, vl = summarize(RUNS, "flywheel"), summarize(RUNS, "vllm")
    assert fw.cold_req_s == statistics.median([64 / 80, 64 / 64])
    assert fw.warm_req_s == statistics.median([64 / 50, 64 / 40])
    assert fw.batch1_tok_s == statistics.median([12.8, 16.0])
    assert vl.cold_req_s == statistics.median([1.0, 2.0])
    assert vl.warm_req_s == statistics.median([64 / 40, 2.0, 1.0])  # reps 1 and 2 are both warm
    assert vl.batch1_tok_s == 8.0
    assert fw.cold_over_warm == pytest.approx(0.9 / 1.44)


def test_report_prints_ratios_and_dashes_for_what_was_not_measured():
    lines = format_report(RUNS)
    assert lines[-1] == "flywheel/vllm: W warm 0.90x, W cold 0.60x, batch-1 1.80x"
    assert "cold/warm 0.62" in lines[0] and "batch-1 14.4 tok/s" in lines[0]
    only_ours = format_report([r for r in RUNS if r.system == "flywheel"])
    assert only_ours[1].startswith("vllm     W cold — req/s, warm — req/s (cold/warm —)")
    assert only_ours[-1] == "flywheel/vllm: W warm —x, W cold —x, batch-1 —x"
    assert format_run(RUNS[0]).startswith("sitting 0 flywheel W       rep 0 (cold): 0.800 req/s")
    assert "12.8 tok/s" in format_run(RUNS[2])


def test_driver_result_lines_are_picked_out_of_the_systems_logs():
    text = ("INFO 11-29 vllm starting\n"
            + RESULT_PREFIX + '{"system": "vllm", "rep": 0}\n'
            + "WARNING something PEERS-RUN in the middle\n"
            + RESULT_PREFIX + '{"system": "vllm", "rep": 1}\n')
    assert parse_driver_output(text) == [{"system": "vllm", "rep": 0}, {"system": "vllm", "rep": 1}]


def test_vllm_environment_gives_it_every_core_asked_for_and_a_4_gib_kv_cache():
    env = vllm_env(1, base={"PATH": "/bin"})
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "4" and env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert env["PATH"] == "/bin"
    import os

    cores = sorted(os.sched_getaffinity(0))
    if len(cores) > 1:
        assert env["VLLM_CPU_OMP_THREADS_BIND"] == str(cores[0])
    assert "VLLM_CPU_OMP_THREADS_BIND" not in vllm_env(len(cores), base={})


def test_serve_result_reads_vllm_benchmark_client_json():
    data = {"completed": 63, "failed": 1, "request_throughput": 0.5, "median_ttft_ms": 1500.0,
            "p99_ttft_ms": 4000.0, "median_tpot_ms": 420.0, "p99_tpot_ms": 800.0,
            "mean_ttft_ms": 2000.0}
    result = ServeResult.from_client_json("flywheel", "inf", data)
    assert (result.completed, result.failed, result.req_s) == (63, 1, 0.5)
    assert result.ttft_p99_ms == 4000.0
    assert result.line() == ("flywheel rate  inf: 0.500 req/s, TTFT p50 1.50s p99 4.00s, TPOT p50 "
                             "420ms p99 800ms (63 ok, 1 failed)")
