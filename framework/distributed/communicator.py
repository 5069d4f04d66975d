"""The collectives tensor parallelism needs, behind one small interface.

Layers and engines call `Communicator`; only `TorchCommunicator` imports torch.distributed (gloo
on CPU, NCCL on GPU). It also keeps the wall time spent in collectives, so a benchmark can report
communication time per step.
"""
from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Iterator
from typing import Any, Protocol

import torch
import torch.distributed as dist


class CollectiveError(RuntimeError):
    """A collective failed: a peer died, the connection broke, or it waited past the timeout.
    The group cannot be used again."""


class Communicator(Protocol):
    rank: int
    world_size: int

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum `tensor` over all ranks, in place; returns it. Every rank calls it."""

    def all_gather(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """Every rank's `tensor` (equal shapes) concatenated along `dim`, in rank order."""

    def broadcast(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rank 0's `tensor` copied into every rank's `tensor` (same shape, dtype); returns it."""

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's picklable `obj` on every rank (the others pass None)."""


class TorchCommunicator:
    """`Communicator` over the default torch.distributed process group."""

    def __init__(self) -> None:
        assert dist.is_initialized(), "init the process group first (init_communicator)"
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.comm_seconds = 0.0  # wall time inside collectives since the last reset
        self.num_collectives = 0
        self.sync_timing = False  # GPU: sync around collectives so comm_seconds is exact

    def all_reduce(self, tensor: torch.Tensor) -> torch.Tensor:
        with self._collective("all_reduce", tensor):
            dist.all_reduce(tensor)
        return tensor

    def all_gather(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        with self._collective("all_gather", tensor):
            dist.all_gather(parts, tensor)
        return torch.cat(parts, dim=dim)

    def broadcast(self, tensor: torch.Tensor) -> torch.Tensor:
        with self._collective("broadcast", tensor):
            dist.broadcast(tensor, src=0)
        return tensor

    def broadcast_object(self, obj: Any) -> Any:
        box = [obj]
        with self._collective("broadcast_object", None):
            dist.broadcast_object_list(box, src=0)
        return box[0]

    def reset_timing(self) -> None:
        self.comm_seconds, self.num_collectives = 0.0, 0

    @contextlib.contextmanager
    def _collective(self, name: str, tensor: torch.Tensor | None) -> Iterator[None]:
        # NCCL returns before the GPU finishes: with `sync_timing` (benchmarks) sync around the
        # collective so the time counted is its own. Off by default: two syncs per collective
        # would cost the overlap NCCL gives. CPU/gloo is synchronous either way.
        on_gpu = self.sync_timing and tensor is not None and tensor.is_cuda
        if on_gpu:
            torch.cuda.synchronize(tensor.device)
        started = time.perf_counter()
        try:
            yield
            if on_gpu:
                torch.cuda.synchronize(tensor.device)
        except Exception as e:  # gloo: RuntimeError; NCCL: DistBackendError; both mean the same
            raise CollectiveError(f"{name} failed on rank {self.rank}: {e}") from e
        finally:
            self.comm_seconds += time.perf_counter() - started
            self.num_collectives += 1


def init_communicator(rank: int, world_size: int, init_method: str, device: str,
                      timeout_s: float) -> TorchCommunicator:
    """Join the process group (NCCL when `device` is CUDA, else gloo). `init_method` is
    "tcp://host:port" (processes we spawn) or "env://" (torchrun's MASTER_ADDR / MASTER_PORT).
    A collective that waits longer than `timeout_s` on a peer raises instead of hanging."""
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=timeout_s))
    return TorchCommunicator()


def close_communicator() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
