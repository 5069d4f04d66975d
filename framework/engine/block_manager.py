"""The KV block pool: fixed-size blocks, ref counts, a verified prefix cache and copy-on-write.

Only bookkeeping lives here; the tensors are owned by the model runner. A full block is found by
its digest: SHA-256 over (parent block's digest, its token ids), the chain rooted in the request's
`cache_salt`, so equal digests mean equal salted prefixes. Python's `hash()` was used before: it is
unkeyed and invertible, so crafted prompts could collide with another user's blocks and read their
KV (the class of vLLM CVE-2025-25183). A digest hit is also checked against what the block holds
(its token ids, salt and parent entry), so even a collision never shares KV.

Freed blocks that hold a cached prefix stay findable until the pool needs them, least recently
freed first; freed blocks holding nothing reusable are handed out before any cached one.
"""
from __future__ import annotations

import hashlib
import itertools
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from framework.engine.sequence import Sequence

Digest = Callable[[bytes], bytes]


def sha256_digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


_ROOT_DOMAIN = b"flywheel/prefix-cache/root\0"  # roots seed chains; kept apart from block inputs


@dataclass(slots=True)
class CachedBlock:
    """What a cached block holds, to verify a digest hit before its KV is shared."""
    digest: bytes  # the lookup key in `hash_to_block`
    entry_id: int  # never reused in this pool, so a stale parent link can't match
    parent_entry_id: int | None  # the entry of the block before it; None for a prompt's first block
    cache_salt: str | None
    token_ids: list[int]
    lora_id: int = 0  # the adapter the KV was computed under (0: the base model)


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True,
                 digest: Digest = sha256_digest):
        """`digest` is replaceable so tests can truncate it and force collisions."""
        assert num_blocks > 0 and block_size > 0, "pool needs blocks of positive size"
        self.num_blocks, self.block_size = num_blocks, block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.ref_counts = [0] * num_blocks
        self.cached: list[CachedBlock | None] = [None] * num_blocks
        self.hash_to_block: dict[bytes, int] = {}
        self.free_blocks: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self.num_cache_queries = 0  # prompt tokens looked up, cumulative
        self.num_cache_hits = 0  # of which found cached
        # lookups whose digest matched a block holding another prefix (a digest collision, or a
        # block whose parent was evicted and recomputed elsewhere)
        self.num_rejected_hits = 0
        self._live_entry_ids: set[int] = set()  # entries a lookup can still reach by digest
        self._digest = digest
        self._pack_tokens = struct.Struct(f"<{block_size}q").pack  # fixed width: injective
        self._entry_ids = itertools.count()

    @property
    def num_free_blocks(self) -> int:
        return len(self.free_blocks)

    @property
    def num_used_blocks(self) -> int:
        return self.num_blocks - len(self.free_blocks)

    # ---- admission: a waiting sequence gets its cached prefix plus room for its first chunk
    def cached_prefix(self, seq: Sequence) -> list[int]:
        """Blocks already holding this sequence's leading full blocks (at least one token is left
        to compute, so the sequence always produces a logits row)."""
        if not self._uses_cache(seq) or seq.params.prompt_logprobs is not None:
            return []  # prompt logprobs need every prompt position computed (it still offers)
        max_blocks = (seq.target_num_computed - 1) // self.block_size
        blocks, parent_entry_id = [], None
        for i in range(max_blocks):
            block = self.hash_to_block.get(self._block_digest(seq, i))
            if block is None:
                break
            entry = self.cached[block]
            if not self._holds(entry, seq, i, parent_entry_id):
                self.num_rejected_hits += 1
                break
            blocks.append(block)
            parent_entry_id = entry.entry_id
        return blocks

    def can_allocate(self, seq: Sequence, num_new_tokens: int) -> bool:
        cached = self.cached_prefix(seq)
        num_needed = self._blocks_for(len(cached) * self.block_size + num_new_tokens) - len(cached)
        num_revived = sum(1 for b in cached if self.ref_counts[b] == 0)
        return num_needed + num_revived <= self.num_free_blocks

    def allocate(self, seq: Sequence, num_new_tokens: int) -> None:
        """Give a waiting sequence its cached prefix and blocks for `num_new_tokens` more."""
        assert not seq.block_table, f"sequence {seq.seq_id} already holds blocks"
        cached = self.cached_prefix(seq)
        for block in cached:
            self._take(block)
        seq.block_table = cached
        seq.num_computed_tokens = seq.num_cached_tokens = len(cached) * self.block_size
        seq.num_committed_blocks = len(cached)
        seq.cache_entry_ids = [self.cached[block].entry_id for block in cached]
        self.num_cache_queries += seq.target_num_computed
        self.num_cache_hits += seq.num_cached_tokens
        self._grow(seq, seq.num_computed_tokens + num_new_tokens)

    # ---- growth: a running sequence computes `num_new_tokens` more
    def can_append(self, seq: Sequence, num_new_tokens: int) -> bool:
        num_needed = self._blocks_for(seq.num_computed_tokens + num_new_tokens) - len(seq.block_table)
        return max(num_needed, 0) + int(self._needs_copy(seq)) <= self.num_free_blocks

    def append(self, seq: Sequence, num_new_tokens: int) -> list[tuple[int, int]]:
        """Make room for the tokens; returns (src, dst) block copies the runner must do first
        (copy-on-write of a partly filled block shared with a sibling sample)."""
        copies = []
        if self._needs_copy(seq):
            index = seq.num_computed_tokens // self.block_size
            src, dst = seq.block_table[index], self._pop_free()
            self.ref_counts[src] -= 1
            seq.block_table[index] = dst
            copies.append((src, dst))
        self._grow(seq, seq.num_computed_tokens + num_new_tokens)
        return copies

    def fork(self, children: list[Sequence]) -> None:
        """Children copied their parent's block table; each now holds a reference."""
        for child in children:
            for block in child.block_table:
                self.ref_counts[block] += 1

    def commit(self, seq: Sequence) -> None:
        """Offer blocks that became full of computed tokens to the prefix cache."""
        num_full = seq.num_computed_tokens // self.block_size
        if self._uses_cache(seq):
            for i in range(seq.num_committed_blocks, num_full):
                seq.cache_entry_ids.append(self._publish(seq, i))
        seq.num_committed_blocks = max(seq.num_committed_blocks, num_full)

    def free(self, seq: Sequence) -> None:
        """Drop the sequence's references; tail blocks first so they are evicted first."""
        for block in reversed(seq.block_table):
            self.ref_counts[block] -= 1
            assert self.ref_counts[block] >= 0, f"block {block} freed twice"
            if self.ref_counts[block] == 0:
                self.free_blocks[block] = None
                if self.cached[block] is None:  # nothing to reuse: hand it out first
                    self.free_blocks.move_to_end(block, last=False)
        seq.block_table = []

    def truncate(self, seq: Sequence) -> None:
        """Return the blocks past the sequence's computed tokens (speculative decoding: KV of
        rejected drafts). They were appended this step, so nothing cached or shared is among them."""
        num_kept = self._blocks_for(seq.num_computed_tokens)
        for block in reversed(seq.block_table[num_kept:]):
            self.ref_counts[block] -= 1
            assert self.ref_counts[block] == 0 and self.cached[block] is None, \
                f"block {block} past the computed tokens is shared or cached"
            self.free_blocks[block] = None
            self.free_blocks.move_to_end(block, last=False)
        del seq.block_table[num_kept:]

    def reset_prefix_cache(self) -> None:
        """Forget every cached prefix (the model changed)."""
        self.hash_to_block.clear()
        self._live_entry_ids.clear()
        self.cached = [None] * self.num_blocks

    # ---- internals: the cache
    def _uses_cache(self, seq: Sequence) -> bool:
        return self.enable_prefix_caching and not seq.params.skip_prefix_cache

    def _publish(self, seq: Sequence, index: int) -> int | None:
        """Offer block `index` (now full) to the cache; returns the cache entry holding its prefix,
        None when none does (then its successors are not offered: they could not be verified)."""
        parent_entry_id = seq.cache_entry_ids[index - 1] if index else None
        if index and parent_entry_id is None:
            return None
        digest, block = self._block_digest(seq, index), seq.block_table[index]
        existing = self.hash_to_block.get(digest)
        if existing is not None:
            entry = self.cached[existing]
            if self._holds(entry, seq, index, parent_entry_id):  # computed twice: keep the first
                return entry.entry_id
            if entry.parent_entry_id is None or entry.parent_entry_id in self._live_entry_ids:
                return None  # a collision with a reachable prefix: it keeps the digest
            # else its parent was evicted, so no walk can reach it: ours takes the digest
            self._live_entry_ids.discard(entry.entry_id)
        if self.cached[block] is not None:
            return None
        size = self.block_size
        entry = CachedBlock(digest, next(self._entry_ids), parent_entry_id, seq.params.cache_salt,
                            seq.token_ids[index * size:(index + 1) * size], seq.lora_id)
        self.cached[block] = entry
        self.hash_to_block[digest] = block
        self._live_entry_ids.add(entry.entry_id)
        return entry.entry_id

    def _holds(self, entry: CachedBlock, seq: Sequence, index: int,
               parent_entry_id: int | None) -> bool:
        """Whether the cached block holds exactly the KV of `seq`'s block `index`: same parent
        entry (so, inductively, the same prefix), same salt, same tokens. Digest-independent."""
        size = self.block_size
        return (entry.parent_entry_id == parent_entry_id
                and entry.cache_salt == seq.params.cache_salt and entry.lora_id == seq.lora_id
                and entry.token_ids == seq.token_ids[index * size:(index + 1) * size])

    def _block_digest(self, seq: Sequence, index: int) -> bytes:
        digests = seq.block_digests
        if len(digests) <= index:  # extend the chain (locals: this runs once per prompt block)
            size, tokens = self.block_size, seq.token_ids
            pack, digest = self._pack_tokens, self._digest
            parent = (digests[-1] if digests
                      else self._root_digest(seq.params.cache_salt, seq.lora_id))
            for i in range(len(digests), index + 1):
                parent = digest(parent + pack(*tokens[i * size:(i + 1) * size]))
                digests.append(parent)
        return digests[index]

    def _root_digest(self, cache_salt: str | None, lora_id: int = 0) -> bytes:
        salt = b"\0" if cache_salt is None else b"\1" + cache_salt.encode("utf-8")
        # A LoRA adapter's id goes first, fixed width after a marker byte the salts never start
        # with; the base model's roots are unchanged.
        adapter = struct.pack("<cq", b"L", lora_id) if lora_id else b""
        return self._digest(_ROOT_DOMAIN + adapter + salt)

    # ---- internals: the pool
    def _blocks_for(self, num_tokens: int) -> int:
        return (num_tokens + self.block_size - 1) // self.block_size

    def _needs_copy(self, seq: Sequence) -> bool:
        index = seq.num_computed_tokens // self.block_size
        return index < len(seq.block_table) and self.ref_counts[seq.block_table[index]] > 1

    def _grow(self, seq: Sequence, num_tokens: int) -> None:
        while len(seq.block_table) < self._blocks_for(num_tokens):
            seq.block_table.append(self._pop_free())

    def _take(self, block: int) -> None:
        if self.ref_counts[block] == 0:
            del self.free_blocks[block]
        self.ref_counts[block] += 1

    def _pop_free(self) -> int:
        assert self.free_blocks, "block pool exhausted (the scheduler should have checked)"
        block, _ = self.free_blocks.popitem(last=False)
        old = self.cached[block]
        if old is not None:  # evict the least recently used cached prefix
            self.cached[block] = None
            self._live_entry_ids.discard(old.entry_id)
            if self.hash_to_block.get(old.digest) == block:
                del self.hash_to_block[old.digest]
        self.ref_counts[block] = 1
        return block
