"""The loop of ranks 1..N-1: replay every model call rank 0 announces, on this rank's shard.

A worker owns its shard of the weights and of the KV cache and nothing else: no scheduler, no
sampler, no tokenizer. It returns when rank 0 says `Shutdown`; a dead rank 0 makes the next
collective raise, which ends the process too.
"""
from __future__ import annotations

import logging

import torch

from framework.distributed.communicator import Communicator
from framework.distributed.messages import (ComputeLogits, CopyBlocks, Forward, Ping, Shutdown,
                                            StartWorker, metadata_to)
from framework.engine.model_runner import ModelRunner
from framework.layers import Linear, attention_metadata
from shared import CausalLM

logger = logging.getLogger(__name__)


@torch.inference_mode()
def run_worker(model: CausalLM, comm: Communicator) -> None:
    """Serve rank 0's calls until it sends `Shutdown`."""
    start = comm.broadcast_object(None)
    assert isinstance(start, StartWorker), f"expected StartWorker first, got {start!r}"
    for module in model.modules():
        if isinstance(module, Linear):
            module.quantization = start.quantization
    # The runner allocates this rank's KV shard and hands each attention layer its view; the
    # worker never samples, so it gets no sampler.
    runner = ModelRunner(model, None, start.num_kv_blocks, start.block_size)
    device = runner.device
    logger.info("rank %d: serving with %d KV blocks", comm.rank, start.num_kv_blocks)
    while True:
        message = comm.broadcast_object(None)
        if isinstance(message, Forward):
            with attention_metadata(metadata_to(message.metadata, device)):
                model(message.input_ids.to(device), message.positions.to(device))
        elif isinstance(message, ComputeLogits):
            hidden = comm.broadcast(torch.empty(message.shape, dtype=message.dtype, device=device))
            model.compute_logits(hidden)
        elif isinstance(message, CopyBlocks):
            runner.copy_blocks(message.pairs)
        elif isinstance(message, Shutdown):
            return
        else:
            assert isinstance(message, Ping), f"unknown message {message!r}"
