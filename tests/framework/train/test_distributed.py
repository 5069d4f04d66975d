"""Two gloo processes with a shared global batch give the weights of one process (atol 1e-5)."""
from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from framework.train import DistContext, TrainConfig, train
from tests.framework.train.conftest import max_param_diff, sft_examples, tiny_model

STEPS, GLOBAL_BATCH = 3, 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out_path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        model = tiny_model(seed=rank)  # different inits: rank 0's weights are broadcast
        config = TrainConfig(learning_rate=1e-2, max_steps=STEPS,
                             micro_batch_size=GLOBAL_BATCH // world_size)
        train(model, sft_examples(20, seed=5), config, DistContext(rank, world_size))
        if rank == 0:
            torch.save(model.state_dict(), out_path)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_match_one_process(tmp_path):
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    single = tiny_model(seed=0)
    train(single, sft_examples(20, seed=5), TrainConfig(learning_rate=1e-2, max_steps=STEPS,
                                                         micro_batch_size=GLOBAL_BATCH))
    ddp = tiny_model(seed=0)
    ddp.load_state_dict(torch.load(out))
    assert max_param_diff(single, ddp) < 1e-5
    assert max_param_diff(single, tiny_model(seed=0)) > 1e-3  # training did move the weights
