"""Tensor parallelism over 2 gloo ranks on CPU: each rank loads only its shard from the checkpoint,
and the sharded model's logits equal the whole model's (float32) on random Llama / Qwen2 /
Mistral checkpoints (GQA with KV heads split and replicated, tied and untied heads, q/k/v bias, an
explicit head_dim, a vocabulary that does not split evenly) and on stories260K.

One pair of spawned processes checks every checkpoint (spawning costs seconds on 2 cores)."""
from __future__ import annotations

import re
import socket

import pytest
import torch
import torch.multiprocessing as mp

from framework.distributed.sharding import ShardSpec, even_split, head_split
from model.loader import load_model
from model.tensor_parallel import check_tensor_parallel
from tests.model.factories import STORIES_HF, save_tiny_hf_model
from tests.model.test_hf_parity import PROMPT
from tests.shared_data import REPO_ROOT

ATOL = RTOL = 1e-5  # float32; a row-parallel layer sums its partial products in another order
WORLD_SIZE = 2

CASES = {
    "llama-gqa": ("LlamaForCausalLM", {}),  # 2 KV heads: one per rank
    "llama-kv1-replicated": ("LlamaForCausalLM", {"num_key_value_heads": 1}),  # 1 KV head on both
    "llama-tied-uneven-vocab": ("LlamaForCausalLM", {"tie_word_embeddings": True,
                                                     "vocab_size": 515}),
    "qwen2-qkv-bias-tied": ("Qwen2ForCausalLM", {"tie_word_embeddings": True}),
    "mistral-head-dim": ("MistralForCausalLM", {"head_dim": 16, "sliding_window": None,
                                                "vocab_size": 517}),
}


@pytest.fixture(scope="module")
def parity(tmp_path_factory) -> dict[str, dict]:
    """case -> {"max_diff", "close", "shard_numel", "full_numel"}, measured on rank 0."""
    dirs = {"stories260K": str(STORIES_HF)}
    for case, (architecture, overrides) in CASES.items():
        dirs[case] = str(tmp_path_factory.mktemp(case))
        save_tiny_hf_model(dirs[case], architecture, **overrides)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        init_method = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    context = mp.get_context("spawn")
    results = context.Queue()
    processes = [context.Process(target=_parity_rank, args=(rank, init_method, dirs, results))
                 for rank in range(WORLD_SIZE)]
    for process in processes:
        process.start()
    try:
        outcome = results.get(timeout=240)
    finally:
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
    assert not isinstance(outcome, str), outcome  # a traceback from a rank
    return outcome


def _parity_rank(rank: int, init_method: str, dirs: dict[str, str], results) -> None:
    import traceback

    from framework.distributed.communicator import close_communicator, init_communicator

    torch.set_num_threads(1)
    try:
        comm = init_communicator(rank, WORLD_SIZE, init_method, "cpu", timeout_s=120)
        outcome = {}
        ids = torch.tensor(PROMPT)
        for case, directory in dirs.items():
            shard = load_model(directory, comm=comm).model
            with torch.inference_mode():
                logits = shard.compute_logits(shard(ids, torch.arange(len(ids))))  # (T, V)
            paged = _paged_last_logits(shard, ids)  # (1, V) through this rank's KV-cache shard
            if rank == 0:
                whole = load_model(directory).model
                with torch.inference_mode():
                    expected = whole.compute_logits(whole(ids, torch.arange(len(ids))))
                outcome[case] = {
                    "max_diff": float((logits - expected).abs().max()),
                    "close": bool(torch.allclose(logits, expected, atol=ATOL, rtol=RTOL)),
                    "paged_close": bool(torch.allclose(paged, expected[-1:], atol=ATOL, rtol=RTOL)),
                    "magnitude": float(expected.abs().max()),
                    "shard_numel": sum(p.numel() for p in shard.parameters()),
                    "full_numel": sum(p.numel() for p in whole.parameters())}
        if rank == 0:
            results.put(outcome)
        close_communicator()
    except Exception:  # noqa: BLE001 - handed to the test process
        results.put(f"rank {rank}: {traceback.format_exc()}")


@torch.inference_mode()
def _paged_last_logits(model, ids: torch.Tensor, block_size: int = 16) -> torch.Tensor:
    """Prefill all but the last token into a paged KV cache, then decode the last one from it."""
    from framework.engine.model_runner import ModelRunner
    from framework.layers import AttentionMetadata, attention_metadata

    runner = ModelRunner(model, None, num_blocks=-(-len(ids) // block_size), block_size=block_size)
    table = torch.arange(runner.kv_cache.shape[2], dtype=torch.int32)[None]  # (1, blocks)
    prefill = len(ids) - 1
    steps = [(torch.arange(prefill), prefill), (torch.tensor([prefill]), len(ids))]
    for positions, context_len in steps:
        meta = AttentionMetadata(
            slot_mapping=positions, block_tables=table,
            cu_seqlens_q=torch.tensor([0, len(positions)], dtype=torch.int32),
            context_lens=torch.tensor([context_len], dtype=torch.int32),
            max_seqlen_q=len(positions), max_context_len=context_len)
        with attention_metadata(meta):
            hidden = model(ids[positions], positions)
    runner.release()
    return model.compute_logits(hidden)


@pytest.mark.parametrize("case", ["stories260K", *CASES])
def test_tp2_logits_equal_tp1(parity, case):
    result = parity[case]
    assert result["magnitude"] > 1.0  # logits large enough for the tolerance to mean something
    assert result["close"], result
    assert result["paged_close"], result  # the last token decoded from the paged KV shard


@pytest.mark.parametrize("case", ["stories260K", "llama-gqa"])
def test_each_rank_holds_about_half_the_weights(parity, case):
    # Replicated: norms only (tiny). Everything else is split in two.
    result = parity[case]
    assert result["shard_numel"] < 0.55 * result["full_numel"], result


def test_head_split_replicates_kv_heads_when_fewer_than_ranks():
    # 2 KV heads over 4 ranks: ranks 0-1 read head 0, ranks 2-3 head 1 (their query heads' group).
    spans = [(s.start, s.stop) for s in (head_split(2, 8, rank, 4) for rank in range(4))]
    assert spans == [(0, 8), (0, 8), (8, 16), (8, 16)]
    assert [head_split(8, 4, rank, 2).start for rank in range(2)] == [0, 16]


def test_even_split_pads_the_last_part():
    parts = [even_split(515, rank, 2, dim=0) for rank in range(2)]
    assert [(p.start, p.stop, p.size) for p in parts] == [(0, 258, 258), (258, 515, 258)]
    full = torch.arange(515 * 3, dtype=torch.float32).view(515, 3)
    taken = parts[1].take(full)
    assert taken.shape == (258, 3) and torch.equal(taken[:257], full[258:]) and not taken[257].any()
    column = ShardSpec(1, 1, 3, 2, 3).take(full)
    assert torch.equal(column, full[:, 1:3])


def test_unsplittable_models_are_refused():
    from model.hf_config import load_model_config

    config = load_model_config(STORIES_HF)  # 8 query heads, 4 KV heads, intermediate 172
    check_tensor_parallel(config, 4)
    with pytest.raises(ValueError, match="num_attention_heads=8 is not divisible"):
        check_tensor_parallel(config, 3)


def test_model_files_never_import_torch_distributed():
    # Collectives reach the model only through framework.distributed's Communicator.
    imports = re.compile(r"^\s*(import|from)\s+torch\.distributed", re.MULTILINE)
    for path in sorted((REPO_ROOT / "model").glob("*.py")):
        assert not imports.search(path.read_text(encoding="utf-8")), path
