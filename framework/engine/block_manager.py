"""The KV block pool: fixed-size blocks, ref counts, a hash-based prefix cache and copy-on-write.

Only bookkeeping lives here; the tensors are owned by the model runner. A block's hash chains its
parent's (hash of (parent hash, its tokens)), so equal hashes mean equal whole prefixes. Freed
blocks that hold a cached prefix stay findable until the pool needs them, least recently freed
first; freed blocks holding nothing reusable are handed out before any cached one.
"""
from __future__ import annotations

from collections import OrderedDict

from framework.engine.sequence import Sequence


class BlockManager:
    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True):
        assert num_blocks > 0 and block_size > 0, "pool needs blocks of positive size"
        self.num_blocks, self.block_size = num_blocks, block_size
        self.enable_prefix_caching = enable_prefix_caching
        self.ref_counts = [0] * num_blocks
        self.block_hash: list[int | None] = [None] * num_blocks
        self.hash_to_block: dict[int, int] = {}
        self.free_blocks: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self.num_cache_queries = 0  # prompt tokens looked up, cumulative
        self.num_cache_hits = 0  # of which found cached

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
        if not self.enable_prefix_caching:
            return []
        max_blocks = (seq.target_num_computed - 1) // self.block_size
        blocks = []
        for i in range(max_blocks):
            block = self.hash_to_block.get(self._block_hash(seq, i))
            if block is None:
                break
            blocks.append(block)
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
        if not self.enable_prefix_caching:
            seq.num_committed_blocks = num_full
            return
        for i in range(seq.num_committed_blocks, num_full):
            block, block_hash = seq.block_table[i], self._block_hash(seq, i)
            if self.block_hash[block] is None and block_hash not in self.hash_to_block:
                self.block_hash[block] = block_hash
                self.hash_to_block[block_hash] = block
        seq.num_committed_blocks = max(seq.num_committed_blocks, num_full)

    def free(self, seq: Sequence) -> None:
        """Drop the sequence's references; tail blocks first so they are evicted first."""
        for block in reversed(seq.block_table):
            self.ref_counts[block] -= 1
            assert self.ref_counts[block] >= 0, f"block {block} freed twice"
            if self.ref_counts[block] == 0:
                self.free_blocks[block] = None
                if self.block_hash[block] is None:  # nothing to reuse: hand it out first
                    self.free_blocks.move_to_end(block, last=False)
        seq.block_table = []

    def reset_prefix_cache(self) -> None:
        """Forget every cached prefix (the model changed)."""
        self.hash_to_block.clear()
        self.block_hash = [None] * self.num_blocks

    # ---- internals
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
        old_hash = self.block_hash[block]
        if old_hash is not None:  # evict the least recently used cached prefix
            self.block_hash[block] = None
            if self.hash_to_block.get(old_hash) == block:
                del self.hash_to_block[old_hash]
        self.ref_counts[block] = 1
        return block

    def _block_hash(self, seq: Sequence, index: int) -> int:
        hashes, size = seq.block_hashes, self.block_size
        while len(hashes) <= index:
            i = len(hashes)
            parent = hashes[-1] if hashes else None
            hashes.append(hash((parent, tuple(seq.token_ids[i * size:(i + 1) * size]))))
        return hashes[index]
