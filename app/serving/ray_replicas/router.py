"""Prefix-cache affinity routing as a Ray Serve `RequestRouter`.

Ray ships `PrefixCacheAffinityRouter`, but only in `ray.serve.llm`, which needs vLLM or SGLang
installed; this is the same policy over token ids instead of text. The router keeps, per chain of
full KV-cache blocks (a block's hash covers every token before it, as the engine's prefix cache
keys blocks), the replica that last took a prompt with that prefix. A request goes to the replica
holding its longest known prefix, so the turns of one conversation (each turn's prompt extends
the last) and prompts sharing a system prompt land where their KV blocks are cached. A prompt
with no known prefix, or whose preferred replica has `imbalanced_threshold` more requests queued
than the least-loaded one, falls back to Ray's own choice among all candidates (the shortest
queue). The router runs in the front process, inside the DeploymentHandle.
"""
from __future__ import annotations

import hashlib
import random
from collections import OrderedDict

from ray.serve.request_router import PendingRequest, ReplicaID, RequestRouter, RunningReplica


def block_hashes(token_ids: list[int], block_size: int, max_blocks: int) -> list[bytes]:
    """Chained hashes of the prompt's first full blocks: hash i covers tokens [0, (i+1)*bs)."""
    hashes, previous = [], b""
    for start in range(0, min(len(token_ids) // block_size, max_blocks) * block_size,
                       block_size):
        block = token_ids[start:start + block_size]
        previous = hashlib.blake2b(previous + repr(block).encode(), digest_size=16).digest()
        hashes.append(previous)
    return hashes


class PrefixAffinityRouter(RequestRouter):
    def initialize_state(self, block_size: int = 16, max_blocks: int = 256,
                         imbalanced_threshold: int = 4, max_entries: int = 200_000) -> None:
        self._block_size, self._max_blocks = block_size, max_blocks
        self._imbalanced_threshold, self._max_entries = imbalanced_threshold, max_entries
        self._owner: OrderedDict[bytes, ReplicaID] = OrderedDict()  # block chain -> replica, LRU

    async def choose_replicas(self, candidate_replicas: list[RunningReplica],
                              pending_request: PendingRequest | None = None
                              ) -> list[list[RunningReplica]]:
        """One rank: the replica holding the longest cached prefix when load allows, else every
        candidate (Ray probes their queues and takes the shortest)."""
        # Ray takes the first of equally short queues: shuffled, idle replicas share the load.
        shuffled = random.sample(candidate_replicas, len(candidate_replicas))
        if pending_request is None or not candidate_replicas:
            return [shuffled]
        by_id = {r.replica_id: r for r in candidate_replicas}
        preferred = self._longest_prefix_owner(pending_request, by_id)
        if preferred is None or self._imbalanced(preferred, candidate_replicas):
            return [shuffled]
        return [[preferred], [r for r in candidate_replicas if r is not preferred]]

    def on_request_routed(self, pending_request: PendingRequest, replica_id: ReplicaID,
                          result) -> None:
        for digest in self._hashes(pending_request):
            self._owner[digest] = replica_id
            self._owner.move_to_end(digest)
        while len(self._owner) > self._max_entries:
            self._owner.popitem(last=False)

    def _longest_prefix_owner(self, pending_request: PendingRequest,
                              by_id: dict[ReplicaID, RunningReplica]) -> RunningReplica | None:
        for digest in reversed(self._hashes(pending_request)):
            owner = self._owner.get(digest)
            if owner in by_id:  # a replica that died (and was replaced) is no candidate
                return by_id[owner]
        return None

    def _imbalanced(self, preferred: RunningReplica, candidates: list[RunningReplica]) -> bool:
        queue_lens = {r.replica_id: self._cached_queue_len(r) for r in candidates}
        known = [n for n in queue_lens.values() if n is not None]
        mine = queue_lens[preferred.replica_id]
        return mine is not None and bool(known) and mine - min(known) > self._imbalanced_threshold

    def _cached_queue_len(self, replica: RunningReplica) -> int | None:
        # the queue lengths Ray's probes and replies left in the router's cache (None: unknown)
        cache = getattr(self, "_replica_queue_len_cache", None)
        return cache.get(replica.replica_id) if cache is not None else None

    def _hashes(self, pending_request: PendingRequest) -> list[bytes]:
        request = pending_request.args[0] if pending_request.args else None
        token_ids = getattr(request, "prompt_token_ids", None)
        if not token_ids:
            return []
        return block_hashes(list(token_ids), self._block_size, self._max_blocks)
