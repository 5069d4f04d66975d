"""Start a tensor-parallel engine over N ranks: spawned processes on one machine, or the processes
torchrun started on several.

Rank 0 (this process) validates the model, starts or joins the group, tells every worker which
directory and dtype to load, loads its own shard and drives the engine. Each worker loads only
its shard and replays rank 0's model calls (`framework.distributed.worker`). Backends: NCCL on
CUDA, gloo on CPU. With torchrun, MASTER_ADDR / MASTER_PORT / RANK / WORLD_SIZE come from the
environment; ranks other than 0 call `run_torchrun_worker` instead of serving.
"""
from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from framework.distributed.communicator import (CollectiveError, TorchCommunicator,
                                                close_communicator, init_communicator)
from framework.distributed.driver import TensorParallelModel
from framework.distributed.engine import TensorParallelEngine, TensorParallelError
from framework.distributed.worker import run_worker
from model.hf_config import load_model_config
from model.loader import LoadedModel, load_model
from model.tensor_parallel import check_tensor_parallel
from shared import DeviceProfile, EngineConfig, TokenizerLike

logger = logging.getLogger(__name__)

# A collective that waits this long for a peer fails instead of hanging. Ranks load equal shards,
# so they reach the first collective at about the same time; an idle engine pings every
# HEARTBEAT_S, so no rank waits in one collective for long while healthy.
COLLECTIVE_TIMEOUT_S = 300.0
HEARTBEAT_S = 5.0


@dataclass(slots=True)
class LoadOrder:
    """What rank 0 tells every worker to load (workers need no model arguments of their own)."""

    model_dir: str  # the same path on every machine (a shared filesystem across machines)
    dtype: str | None  # None: the checkpoint's dtype
    num_threads: int  # CPU intra-op threads per rank


@dataclass
class TensorParallelGroup:
    """A running group: the engine on rank 0, and the worker processes when we spawned them."""

    engine: TensorParallelEngine
    loaded: LoadedModel  # rank 0's shard, tokenizer and configs
    processes: list = field(default_factory=list)  # spawned workers (empty under torchrun)

    def dead_ranks(self) -> str | None:
        return _describe_dead(self.processes)

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the workers and leave the group (idempotent)."""
        self.engine.shutdown()
        for process in self.processes:
            process.join(timeout_s)
            if process.is_alive():
                process.kill()
        close_communicator()


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def check_model_splits(model_dir: str | Path, tensor_parallel_size: int) -> None:
    """ValueError when the model in `model_dir` cannot be split over that many ranks."""
    check_tensor_parallel(load_model_config(model_dir), tensor_parallel_size)


def start_tensor_parallel(model_dir: str | Path, config: EngineConfig, tensor_parallel_size: int,
                          device_profile: DeviceProfile | None = None, on_failure=None,
                          tokenizer: TokenizerLike | None = None) -> TensorParallelGroup:
    """Start (or, under torchrun, join) a group of `tensor_parallel_size` ranks serving
    `model_dir`. ValueError when the model cannot be split that way. `tokenizer` replaces the
    directory's on rank 0 (benchmarks over random ids)."""
    check_model_splits(model_dir, tensor_parallel_size)
    if dist.is_initialized():
        raise ValueError("a tensor-parallel group already runs in this process: one model per "
                         "process with tensor parallelism (no hot swap or canary version)")
    if getattr(config, "speculative_config", None) or getattr(config, "enable_lora", False):
        raise ValueError("tensor parallelism does not combine with speculative decoding or LoRA "
                         "yet")
    device = _device(config.device, int(os.environ.get("LOCAL_RANK", 0)))
    num_threads = config.num_threads or max(1, (os.cpu_count() or 1) // tensor_parallel_size)
    processes = []
    if launched_by_torchrun():
        init_method = "env://"
        world_size = int(os.environ["WORLD_SIZE"])
        if world_size != tensor_parallel_size or int(os.environ["RANK"]) != 0:
            raise ValueError(f"torchrun started rank {os.environ['RANK']} of {world_size}; this "
                             f"process must be rank 0 of tensor_parallel_size="
                             f"{tensor_parallel_size}")
    else:
        init_method = f"tcp://127.0.0.1:{_free_port()}"
        processes = _spawn_workers(tensor_parallel_size, init_method, device)
    try:
        comm = init_communicator(0, tensor_parallel_size, init_method, device, COLLECTIVE_TIMEOUT_S)
        dtype = None if config.dtype == "auto" else config.dtype
        comm.broadcast_object(LoadOrder(str(Path(model_dir).resolve()), dtype, num_threads))
        if device == "cpu":
            torch.set_num_threads(num_threads)
        loaded = load_model(model_dir, dtype=None if config.dtype == "auto" else config.dtype,
                            device=device, comm=comm)
        engine = TensorParallelEngine(
            TensorParallelModel(loaded.model, comm), tokenizer or loaded.tokenizer, config,
            device_profile, dead_ranks=lambda: _describe_dead(processes), on_failure=on_failure,
            heartbeat_s=HEARTBEAT_S)
    except BaseException:
        for process in processes:
            process.kill()
        close_communicator()
        raise
    logger.info("tensor parallelism: %d ranks on %s", tensor_parallel_size, device)
    group = TensorParallelGroup(engine, loaded, processes)
    # Workers leave cleanly when this process ends (a server's graceful stop, a script's end),
    # rather than on a broken connection; under torchrun that makes every rank exit 0.
    atexit.register(group.close)
    return group


_failures: list[TensorParallelError] = []  # what stopped this process's server, if anything


def stop_this_process(error: TensorParallelError) -> None:
    """`on_failure` for a server: SIGTERM ourselves, so it fails what is in flight and exits
    (with status 1: see `group_failure`)."""
    logger.critical("stopping: %s", error)
    _failures.append(error)
    os.kill(os.getpid(), signal.SIGTERM)


def group_failure() -> TensorParallelError | None:
    """The failure `stop_this_process` stopped the server for, or None."""
    return _failures[0] if _failures else None


def run_torchrun_worker(device: str = "auto") -> None:
    """The whole life of a torchrun rank other than 0: join, load the shard rank 0 names, serve."""
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    _worker_main(rank, world_size, "env://", _device(device, int(os.environ.get("LOCAL_RANK", 0))))


def _spawn_workers(world_size: int, init_method: str, device: str) -> list:
    context = mp.get_context("spawn")
    processes = []
    for rank in range(1, world_size):
        worker_device = f"cuda:{rank}" if device.startswith("cuda") else device
        process = context.Process(target=_worker_main, name=f"tp-rank-{rank}", daemon=True,
                                  args=(rank, world_size, init_method, worker_device))
        process.start()
        processes.append(process)
    return processes


def _worker_main(rank: int, world_size: int, init_method: str, device: str) -> None:
    logging.basicConfig(level=logging.INFO,
                        format=f"%(asctime)s tp-rank-{rank} %(levelname)s %(message)s")
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    comm: TorchCommunicator | None = None
    try:
        comm = init_communicator(rank, world_size, init_method, device, COLLECTIVE_TIMEOUT_S)
        order: LoadOrder = comm.broadcast_object(None)
        if device == "cpu":
            torch.set_num_threads(order.num_threads)
        loaded = load_model(order.model_dir, dtype=order.dtype, device=device, comm=comm)
        run_worker(loaded.model, comm)
    except CollectiveError as e:  # rank 0 is gone: nothing left to serve
        logger.error("rank %d leaves the tensor-parallel group: %s", rank, e)
        raise SystemExit(1) from e
    finally:
        close_communicator()


def _describe_dead(processes: list) -> str | None:
    dead = [f"rank {rank} (pid {p.pid}) exited with code {p.exitcode}"
            for rank, p in enumerate(processes, start=1) if p.exitcode is not None]
    return "; ".join(dead) or None


def _device(name: str, local_rank: int) -> str:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    if name.startswith("cuda"):
        torch.cuda.set_device(name)
    return name


def _free_port() -> int:
    # Asked of the OS, never hard-coded: several groups (tests, servers) may run on one machine.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


__all__ = ["TensorParallelError", "TensorParallelGroup", "check_model_splits",
           "group_failure", "launched_by_torchrun", "run_torchrun_worker",
           "start_tensor_parallel", "stop_this_process"]
