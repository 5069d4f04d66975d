"""The synchronous engine: add requests, call `step()` until none are left.

It wires a `shared.CausalLM` and a `shared.TokenizerLike` into the scheduler, block pool and model
runner. It does not load models or know where they come from (that is `model/`), and it never
blocks on I/O: `AsyncEngine` drives it from an event loop.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import random
import time

import torch

from framework.engine.block_manager import BlockManager
from framework.engine.detokenizer import Detokenizer
from framework.engine.model_runner import ModelRunner, kv_block_bytes
from framework.engine.prompt_logprobs import PromptLogprobsChunk
from framework.engine.request_state import RequestState
from framework.engine.sampler import Sampler, SamplerOutput
from framework.engine.scheduler import Scheduler, SchedulerOutput
from framework.engine.sequence import Sequence
from framework.engine.speculative.decoder import build_decoder
from framework.engine.stats import StatsCollector
from framework.engine.structured import GrammarCompiler, GrammarState
from framework.layers import Linear
from framework.lora import LoRAManager
from shared import CausalLM, DeviceProfile, EngineConfig, EngineStats, Logprob, RequestOutput
from shared import LoRARequest, SamplingParams
from shared import TokenizerLike

logger = logging.getLogger(__name__)


SINGLE_THREAD_BELOW_TOKENS = 16  # steps with fewer tokens run on one CPU thread (see _apply_num_threads)


class QueueFullError(Exception):
    """The waiting queue holds `EngineConfig.max_queue_len` requests; retry later (HTTP 429)."""


class LLMEngine:
    runner_class = ModelRunner  # tensor parallelism swaps in a runner that informs its workers

    def __init__(self, model: CausalLM, tokenizer: TokenizerLike, config: EngineConfig,
                 device_profile: DeviceProfile | None = None, draft_model: CausalLM | None = None):
        """`draft_model`: the proposer for `config.speculative_config` method draft_model."""
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        self._max_threads = torch.get_num_threads()  # what big steps use
        self.config, self.device_profile = config, device_profile
        self.requests: dict[str, RequestState] = {}
        # seeds for requests that bring none: fresh entropy per start unless config.seed is set
        self._rng = random.Random(config.seed)
        self._pending_outputs: list[RequestOutput] = []  # aborted requests, reported next step
        # LoRA: the adapters' slots; requests wait in _lora_waiting while every slot is held
        self.lora = LoRAManager(config.max_loras, config.max_lora_rank) if config.enable_lora else None
        self._lora_waiting: list[RequestState] = []
        self._build(model, tokenizer)
        self.speculator = build_decoder(config.speculative_config, model, draft_model,
                                        self.block_manager.num_blocks, config.block_size,
                                        config.max_num_seqs, self.max_model_len)
        self.scheduler = Scheduler(config, self.block_manager)
        self._cumulative = EngineStats()

    def _build(self, model: CausalLM, tokenizer: TokenizerLike) -> None:
        self.model, self.tokenizer = model, tokenizer
        for module in model.modules():  # the model's linears follow this engine's setting
            if isinstance(module, Linear):
                module.quantization = self.config.quantization
        cfg, weight = model.config, next(model.parameters())
        self.device = weight.device
        num_blocks = self._num_kv_blocks(model, weight.dtype)
        self.block_manager = BlockManager(num_blocks, self.config.block_size,
                                          self.config.enable_prefix_caching)
        limit = min(self.config.max_model_len or cfg.max_position_embeddings, cfg.max_position_embeddings)
        self.max_model_len = min(limit, num_blocks * self.config.block_size)
        if not self.config.enable_chunked_prefill:  # a recomputed sequence must fit one step
            self.max_model_len = min(self.max_model_len, self.config.max_num_batched_tokens)
        self.eos_token_ids = sorted(set(tokenizer.eos_token_ids or cfg.eos_token_ids))
        self.grammar_compiler = GrammarCompiler(tokenizer, cfg.vocab_size, self.eos_token_ids)
        self.model_runner = self.runner_class(model, Sampler(self.eos_token_ids), num_blocks,
                                              self.config.block_size)
        if self.lora is not None:
            self.lora.attach(model)
            self.model_runner.lora = self.lora
        self.stats_collector = StatsCollector(model, weight.dtype, self.device_profile)
        logger.info("KV pool: %d blocks of %d tokens; max_model_len %d", num_blocks,
                    self.config.block_size, self.max_model_len)

    # ---- requests
    def add_request(self, request_id: str, prompt: str | list[int], params: SamplingParams | None = None,
                    priority: int = 0, lora_request: LoRARequest | None = None) -> None:
        """Validate (ValueError on bad input, before anything is allocated) and queue a request."""
        self.enqueue(self.make_request(request_id, prompt, params, priority, lora_request))

    def make_request(self, request_id: str, prompt: str | list[int], params: SamplingParams | None = None,
                     priority: int = 0, lora_request: LoRARequest | None = None) -> RequestState:
        """Validate and tokenize, touching no engine state (safe from another thread)."""
        if not isinstance(request_id, str) or not request_id:
            raise ValueError(f"request_id must be a non-empty string, got {request_id!r}")
        if request_id in self.requests:
            raise ValueError(f"request_id {request_id!r} is already in flight")
        if not isinstance(priority, int):
            raise ValueError(f"priority must be an int, got {priority!r}")
        try:  # copy, and re-run validation in case the caller mutated the fields
            params = dataclasses.replace(params or SamplingParams())
        except (TypeError, AttributeError) as e:
            raise ValueError(f"params must be a SamplingParams, got {type(params).__name__}") from e
        if params.speculative and self.config.speculative_config is None:
            raise ValueError("speculative=True but the engine was started without a speculative_config")
        vocab = self.model.config.vocab_size
        if params.logit_bias and max(params.logit_bias) >= vocab:
            raise ValueError(f"logit_bias token ids must be below the vocabulary size {vocab}, "
                             f"got {max(params.logit_bias)}")
        text, ids = self._tokenize(prompt)
        if len(ids) >= self.max_model_len:
            raise ValueError(f"prompt has {len(ids)} tokens; the context holds {self.max_model_len} "
                             "(prompt plus at least one generated token)")
        detokenizers = [Detokenizer(self.tokenizer, ids, params, self.eos_token_ids, self.max_model_len)
                        for _ in range(params.n)]
        grammar = (self.grammar_compiler.compile(params.structured_outputs)
                   if params.structured_outputs is not None else None)
        self._prepare_lora(lora_request)
        return RequestState(request_id, text, ids, params, priority, time.perf_counter(), detokenizers,
                            grammar=grammar, lora_request=lora_request)

    def enqueue(self, state: RequestState) -> None:
        """Queue a validated request; it joins the batch at the next step."""
        if len(self.scheduler.waiting) >= self.config.max_queue_len:
            raise QueueFullError(f"{len(self.scheduler.waiting)} requests are waiting; retry later")
        if state.request_id in self.requests:
            raise ValueError(f"request_id {state.request_id!r} is already in flight")
        params, ids = state.params, state.prompt_token_ids
        if params.n > 1 and len(ids) > 1:  # prefill once, then fork (copy-on-write)
            state.seqs = [Sequence(state.request_id, ids, params, state.priority, fork_into=params.n)]
        else:
            state.seqs = [Sequence(state.request_id, ids, params, state.priority, sample_index=i,
                                   generator=self._generator(params, i)) for i in range(params.n)]
        self.requests[state.request_id] = state
        self._attach_grammar(state, state.seqs)
        if state.lora_request is not None and not self._hold_lora(state):
            return  # every adapter slot is held: it joins when one frees (_admit_lora_waiting)
        for seq in state.seqs:
            self.scheduler.add(seq)

    def abort(self, request_id: str) -> None:
        """Stop a request now: its blocks go back to the pool; the next step reports it."""
        state = self.requests.pop(request_id, None)
        if state is None:
            return
        self._release_lora(state)
        for seq in state.seqs:
            if not seq.finished:
                self.scheduler.finish(seq)
        for detokenizer in state.detokenizers:
            if not detokenizer.finished:
                detokenizer.abort()
        self._cumulative.num_aborted += 1
        self._pending_outputs.append(state.to_output())

    def has_unfinished_requests(self) -> bool:
        return bool(self.requests) or bool(self._pending_outputs)

    # ---- the loop
    def step(self) -> list[RequestOutput]:
        """One forward pass; returns a snapshot of every request that progressed or ended."""
        started = time.perf_counter()
        self._admit_lora_waiting()
        self.speculator.propose(self.scheduler.running, self.max_model_len)  # drafts join token_ids
        scheduled = self.scheduler.schedule()
        self.speculator.after_schedule(scheduled)
        self._apply_num_threads(scheduled.num_batched_tokens)
        work = self.stats_collector.measure(scheduled)
        seqs, samples, scored = (self.model_runner.run(scheduled) if scheduled.seqs
                                 else ([], SamplerOutput([], []), []))
        num_kept, num_rejected = self.speculator.rollback(scheduled, seqs, samples)
        outputs = self._postprocess(scheduled, seqs, samples, scored)
        self.speculator.advance(self.block_manager)  # kept drafts' KV counts, the rest is freed
        self.stats_collector.record(self._cumulative, work, time.perf_counter() - started,
                                    len(seqs) + num_kept, num_rejected)
        return outputs

    def _apply_num_threads(self, num_tokens: int) -> None:
        # A step of a few tokens runs on one thread: its ops are too small to split, and waking a
        # second OpenMP thread for each of its ~300 ops cost more than it saved (batch-1 decode on
        # 2 cores: 33 tok/s on two threads, 54 on one). Bigger steps use every configured thread.
        # torch's thread count is per OS thread once a thread has run a parallel op: the worker
        # thread that AsyncEngine steps on keeps the count it first saw (measured: set_num_threads(1)
        # in the main thread left an already-used to_thread worker at 2), so apply it where we run.
        wanted = 1 if num_tokens < SINGLE_THREAD_BELOW_TOKENS else self._max_threads
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)

    def _postprocess(self, scheduled: SchedulerOutput, seqs: list[Sequence],
                     samples: SamplerOutput,
                     scored: list[PromptLogprobsChunk]) -> list[RequestOutput]:
        touched: dict[str, RequestState] = {}
        for chunk in scored:
            self._decode_logprob_tokens(chunk.entries)
            self.requests[chunk.seq.request_id].add_prompt_logprobs(chunk)
        for seq, num_new in zip(scheduled.seqs, scheduled.num_new_tokens):
            seq.num_computed_tokens += num_new
            self.block_manager.commit(seq)
            if seq.fork_into > 1 and seq.num_pending_tokens == 0:
                self._fork(seq)
        now = time.perf_counter()
        for row, (seq, logprobs) in enumerate(zip(seqs, samples.logprobs)):
            state = self.requests[seq.request_id]
            for token in samples.tokens_of(row):  # more than one when drafts were kept
                if not seq.finished:
                    self._accept_token(state, seq, token, logprobs)
            state.first_token_time = state.first_token_time or now
            touched[state.request_id] = state
        outputs, self._pending_outputs = self._pending_outputs, []
        for state in touched.values():
            outputs.append(state.to_output())
            if state.finished:
                del self.requests[state.request_id]
                self._release_lora(state)
                self._cumulative.num_finished += 1
        return outputs

    def _accept_token(self, state: RequestState, seq: Sequence, token: int, logprobs: dict | None) -> None:
        seq.append_token(token)
        index = seq.sample_index
        state.output_token_ids[index].append(token)
        if logprobs is not None:
            self._decode_logprob_tokens([logprobs])
            state.logprobs[index].append(logprobs)
        detokenizer = state.detokenizers[index]
        detokenizer.add_token(token)
        if seq.grammar is not None and not detokenizer.finished:
            self._advance_grammar(seq, token, detokenizer)
        if detokenizer.finished:
            self.scheduler.finish(seq)

    def _attach_grammar(self, state: RequestState, seqs: list[Sequence]) -> None:
        if state.grammar is not None:
            for seq in seqs:  # a parent that only prefills before forking never samples
                seq.grammar = GrammarState(state.grammar) if seq.fork_into == 1 else None

    @staticmethod
    def _advance_grammar(seq: Sequence, token: int, detokenizer: Detokenizer) -> None:
        # A complete output ends the sample even where EOS alone would not (ignore_eos, a stop
        # token id the grammar took as its end); a refused token (never, the sampler masks) too.
        if not seq.grammar.accept(token) or seq.grammar.terminated:
            detokenizer.finish_reason = "stop"

    def _decode_logprob_tokens(self, entries: list[dict[int, Logprob]]) -> None:
        for entry in entries:
            for token_id, logprob in entry.items():
                logprob.decoded_token = self.tokenizer.decode([token_id], skip_special_tokens=False)

    def _fork(self, parent: Sequence) -> None:
        state = self.requests[parent.request_id]
        children = parent.fork([self._generator(parent.params, i) for i in range(parent.fork_into)])
        self.block_manager.fork(children)
        self.scheduler.replace(parent, children)
        self._attach_grammar(state, children)
        state.seqs = children

    def _generator(self, params: SamplingParams, index: int) -> torch.Generator | None:
        if params.greedy:
            return None
        seed = params.seed + index if params.seed is not None else self._rng.getrandbits(62)
        return torch.Generator(device=self.device).manual_seed(seed)

    def _tokenize(self, prompt: str | list[int]) -> tuple[str | None, list[int]]:
        if isinstance(prompt, str):
            text, ids = prompt, self.tokenizer.encode(prompt, add_bos=True)
        elif isinstance(prompt, (list, tuple)):
            text, ids = None, list(prompt)
            vocab = self.model.config.vocab_size
            if not all(isinstance(t, int) and 0 <= t < vocab for t in ids):
                raise ValueError(f"prompt token ids must be ints in [0, {vocab})")
        else:
            raise ValueError(f"prompt must be a string or a list of token ids, got {type(prompt).__name__}")
        if not ids:
            if self.tokenizer.bos_token_id is None:
                raise ValueError("empty prompt and the tokenizer has no BOS token to start from")
            ids = [self.tokenizer.bos_token_id]
        return text, ids

    # ---- LoRA adapters (vLLM's add_lora / remove_lora / list_loras)
    def add_lora(self, lora_request: LoRARequest) -> None:
        """Read an adapter ahead of its first request (ValueError when it cannot be served)."""
        self._prepare_lora(lora_request)

    def remove_lora(self, lora_int_id: int) -> bool:
        """Forget an adapter; False while a request in flight uses it."""
        if self.lora is None or any(s.lora_request and s.lora_request.lora_int_id == lora_int_id
                                    for s in self.requests.values()):
            return False
        return self.lora.remove(lora_int_id)

    def list_loras(self) -> set[int]:
        """Ids of the adapters read and ready to serve."""
        return set() if self.lora is None else self.lora.known_ids

    def _prepare_lora(self, lora_request: LoRARequest | None) -> None:
        if lora_request is None:
            return
        if self.lora is None:
            raise ValueError(f"LoRA adapter {lora_request.lora_name!r} requested, but this engine "
                             "was not started with enable_lora=True")
        self.lora.prepare(lora_request)

    def _hold_lora(self, state: RequestState) -> bool:
        """Put the request's adapter in a slot and tag its sequences; False when none is free."""
        lora_id = state.lora_request.lora_int_id
        for seq in state.seqs:
            seq.lora_id = lora_id
        if self.lora.acquire(state.request_id, lora_id):
            return True
        self._lora_waiting.append(state)
        return False

    def _release_lora(self, state: RequestState) -> None:
        if self.lora is not None:
            self.lora.release(state.request_id)
        if state in self._lora_waiting:
            self._lora_waiting.remove(state)

    def _admit_lora_waiting(self) -> None:
        """Requests that waited for an adapter slot join the scheduler, in arrival order, while
        slots can be had."""
        while self._lora_waiting:
            state = self._lora_waiting[0]
            if not self.lora.acquire(state.request_id, state.lora_request.lora_int_id):
                return
            self._lora_waiting.pop(0)
            for seq in state.seqs:
                self.scheduler.add(seq)

    # ---- stats and maintenance
    @property
    def stats(self) -> EngineStats:
        """Last step's figures plus cumulative counters (a copy)."""
        stats = dataclasses.replace(self._cumulative)
        stats.num_running, stats.num_waiting = len(self.scheduler.running), len(self.scheduler.waiting)
        stats.num_kv_blocks_used = self.block_manager.num_used_blocks
        stats.num_kv_blocks_total = self.block_manager.num_blocks
        stats.num_preemptions = self.scheduler.num_preemptions
        stats.num_prefix_cache_queries = self.block_manager.num_cache_queries
        stats.num_prefix_cache_hits = self.block_manager.num_cache_hits
        self.speculator.fill(stats)
        return stats

    def swap_model(self, model: CausalLM, tokenizer: TokenizerLike) -> None:
        """Serve the next step with another model. Running sequences are recomputed under it (their
        generated tokens are kept); nothing is dropped. Call between steps."""
        self.scheduler.preempt_all()
        self.model_runner.release()
        queries, hits = self.block_manager.num_cache_queries, self.block_manager.num_cache_hits
        self._build(model, tokenizer)
        self.block_manager.num_cache_queries, self.block_manager.num_cache_hits = queries, hits
        self.scheduler.block_manager = self.block_manager

    def _num_kv_blocks(self, model: CausalLM, dtype: torch.dtype) -> int:
        cfg = self.config
        if cfg.num_kv_blocks is not None:
            return cfg.num_kv_blocks
        budget = cfg.kv_cache_memory_bytes or int(cfg.kv_cache_memory_fraction * self._device_memory())
        max_len = cfg.max_model_len or model.config.max_position_embeddings
        useful = cfg.max_num_seqs * -(-max_len // cfg.block_size)  # more could never be used
        return max(1, min(budget // kv_block_bytes(model, cfg.block_size, dtype), useful))

    def _device_memory(self) -> int:
        if self.device_profile is not None:
            return self.device_profile.memory_bytes
        if self.device.type == "cuda":
            return torch.cuda.mem_get_info(self.device)[1]
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
