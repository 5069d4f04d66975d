"""`TensorParallelEngine`: the `LLMEngine` of rank 0 in a tensor-parallel group.

Rank 0 does everything the single-process engine does (scheduling, the KV block table, sampling,
detokenizing, streaming); the model calls it makes reach the workers through `TensorParallelModel`.
It adds what a group needs: telling the workers the KV pool size, pinging them while idle, turning
a failed collective into one clear, final error, and stopping them.

Failure contract: a rank that dies is noticed at the next collective (a peer's closed connection
fails it at once on gloo and NCCL), or within `heartbeat_s` when idle; one that hangs, within the
group's collective timeout. From then on every `step()` raises `TensorParallelError`; the caller
fails its requests, and `on_failure` (if given) is called once, e.g. to stop a server.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from framework.distributed.communicator import CollectiveError, Communicator
from framework.distributed.driver import TensorParallelModel, TensorParallelRunner
from framework.distributed.messages import Ping, Shutdown, StartWorker
from framework.engine.llm_engine import LLMEngine
from shared import CausalLM, DeviceProfile, EngineConfig, RequestOutput, TokenizerLike

logger = logging.getLogger(__name__)


class TensorParallelError(RuntimeError):
    """The tensor-parallel group lost a rank; this engine cannot run another step."""


class TensorParallelEngine(LLMEngine):
    runner_class = TensorParallelRunner

    def __init__(self, model: TensorParallelModel, tokenizer: TokenizerLike, config: EngineConfig,
                 device_profile: DeviceProfile | None = None, *,
                 dead_ranks: Callable[[], str | None] = lambda: None,
                 on_failure: Callable[[TensorParallelError], None] | None = None,
                 heartbeat_s: float = 5.0):
        """`dead_ranks()` describes ranks known to have exited ("rank 1 (pid 42) exited with
        code -9"), or returns None; the launcher supplies it."""
        assert isinstance(model, TensorParallelModel), "wrap rank 0's shard in TensorParallelModel"
        if config.enable_lora:  # the workers' shards have no adapter slots, and sharded shapes
            raise ValueError("enable_lora is not supported with tensor parallelism yet")
        self.comm: Communicator = model.comm
        self._dead_ranks, self._on_failure = dead_ranks, on_failure
        self._lock = threading.Lock()  # one collective sequence at a time: steps or a ping
        self.failure: TensorParallelError | None = None
        super().__init__(model, tokenizer, config, device_profile)
        self._call(lambda: self.comm.broadcast_object(StartWorker(
            self.block_manager.num_blocks, config.block_size, config.quantization)))
        self._last_call = time.monotonic()
        self._stopped = threading.Event()
        self._heartbeat = threading.Thread(target=self._ping_while_idle, args=(heartbeat_s,),
                                           name="tp-heartbeat", daemon=True)
        self._heartbeat.start()

    def step(self) -> list[RequestOutput]:
        return self._call(super().step)

    def swap_model(self, model: CausalLM, tokenizer: TokenizerLike) -> None:
        raise ValueError("swapping the model is not supported with tensor parallelism; restart "
                         "the engine with the other model directory")

    def shutdown(self) -> None:
        """Stop the heartbeat and tell the workers to exit (idempotent, never raises)."""
        self._stopped.set()
        with self._lock:
            if self.failure is None:
                try:
                    self.comm.broadcast_object(Shutdown())
                except CollectiveError:
                    pass
                self.failure = TensorParallelError("the tensor-parallel engine was shut down")

    def _call(self, fn: Callable):
        with self._lock:
            if self.failure is not None:
                raise self.failure
            try:
                return fn()
            except CollectiveError as e:
                raise self._fail(e) from e
            finally:
                self._last_call = time.monotonic()

    def _ping_while_idle(self, interval_s: float) -> None:
        while not self._stopped.wait(interval_s / 2):
            idle = time.monotonic() - self._last_call >= interval_s
            if not idle or not self._lock.acquire(blocking=False):
                continue
            try:
                if self.failure is None:
                    dead = self._dead_ranks()
                    if dead is not None:
                        self._fail(None)
                    else:
                        self.comm.broadcast_object(Ping())
                        self._last_call = time.monotonic()
            except CollectiveError as e:
                self._fail(e)
            finally:
                self._lock.release()

    def _fail(self, error: CollectiveError | None) -> TensorParallelError:
        dead = self._wait_for_dead_ranks()
        cause = dead or str(error)
        self.failure = TensorParallelError(
            f"tensor-parallel group failed: {cause}; in-flight requests are failed and the engine "
            "must be restarted")
        logger.error("%s", self.failure)
        self._stopped.set()
        if self._on_failure is not None:
            self._on_failure(self.failure)
        return self.failure

    def _wait_for_dead_ranks(self, wait_s: float = 2.0) -> str | None:
        # A peer's closed socket can reach us before its exit is reaped; give it a moment so the
        # error names the rank and its exit code rather than only "connection closed".
        deadline = time.monotonic() + wait_s
        while (dead := self._dead_ranks()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return dead
