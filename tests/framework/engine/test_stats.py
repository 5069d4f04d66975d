"""Engine step FLOPs / bytes / MFU counted from the model's own weights and the step's shapes."""
from __future__ import annotations

from shared import DeviceProfile, EngineStats, SamplingParams
from tests.utils.engine import create_engine, create_model


def test_prefill_step_work_and_utilization():
    model = create_model(seed=2)
    cfg = model.config
    engine = create_engine(model)
    prompts = [list(range(10, 23)), list(range(40, 45))]  # 13 and 5 tokens, prefilled whole
    for i, prompt in enumerate(prompts):
        engine.add_request(f"r{i}", prompt, SamplingParams(max_tokens=3))
    scheduled = engine.scheduler.schedule()
    assert sorted(scheduled.num_new_tokens) == [5, 13]
    work = engine.stats_collector.measure(scheduled)

    # Independent count: every 2-D weight inside the decoder layers is one matmul per token.
    body = sum(p.numel() for name, p in model.named_parameters() if ".layers." in name and p.dim() == 2)
    head = cfg.vocab_size * cfg.hidden_size
    keys = sum(n * (n + 1) // 2 for n in (13, 5))  # causal: token j of a prompt sees j + 1 keys
    expected_flops = (2 * body * 18 + 2 * head * 2
                      + 4 * cfg.num_hidden_layers * cfg.num_attention_heads * cfg.head_dim * keys)
    assert work.num_tokens == 18 and work.flops == expected_flops

    kv_per_token = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * 4  # float32
    weights = sum(p.numel() * 4 for p in model.parameters())
    assert work.bytes_moved == weights + kv_per_token * 18 * 2  # the new KV written, then read

    profile = DeviceProfile(kind="cpu", name="test", compute_units=1, memory_bytes=1 << 30,
                            memory_bandwidth=2e9, peak_flops={"float32": 1e9})
    engine.stats_collector.profile = profile
    stats = EngineStats()
    engine.stats_collector.record(stats, work, step_time_s=0.5, num_sampled=2)
    assert stats.mfu == expected_flops / 0.5 / 1e9
    assert stats.mbu == work.bytes_moved / 0.5 / 2e9
    assert stats.num_prompt_tokens == 16 and stats.num_generation_tokens == 2
