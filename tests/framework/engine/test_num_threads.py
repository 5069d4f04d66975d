"""EngineConfig.num_threads holds on the thread that runs the steps, not only where it was built;
steps of a few tokens run on one thread."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from shared import SamplingParams
from tests.utils.engine import create_engine


def test_num_threads_applies_to_a_worker_thread_that_already_ran_torch():
    before = torch.get_num_threads()
    wanted = before + 1
    with ThreadPoolExecutor(max_workers=1) as worker:  # like asyncio.to_thread's executor
        # The worker runs a parallel op first and so fixes its own thread count (the current one).
        assert worker.submit(lambda: (torch.randn(1000).exp(), torch.get_num_threads())[1]).result() == before
        try:
            engine = create_engine(num_threads=wanted)  # sets it on this (main) thread
            assert worker.submit(torch.get_num_threads).result() == before  # the worker did not follow
            engine.add_request("r", list(range(1, 21)), SamplingParams(max_tokens=2, temperature=0.0))
            worker.submit(engine.step).result()  # a 20-token prefill: every configured thread
            assert worker.submit(torch.get_num_threads).result() == wanted
            worker.submit(engine.step).result()  # a 1-token decode step: one thread
            assert worker.submit(torch.get_num_threads).result() == 1
        finally:
            worker.submit(torch.set_num_threads, before).result()
            torch.set_num_threads(before)
