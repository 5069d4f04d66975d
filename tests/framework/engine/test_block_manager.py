"""Block pool bookkeeping: prefix-cache hash chains, LRU reuse, copy-on-write, ref counts."""
from framework.engine.block_manager import BlockManager
from framework.engine.sequence import Sequence
from shared import SamplingParams


def _seq(tokens, fork_into=1):
    return Sequence("r", list(tokens), SamplingParams(), fork_into=fork_into)


def _compute_all(manager: BlockManager, seq: Sequence) -> None:
    manager.allocate(seq, seq.target_num_computed - len(manager.cached_prefix(seq)) * manager.block_size)
    seq.num_computed_tokens = seq.target_num_computed
    manager.commit(seq)


def test_prefix_hit_needs_the_whole_chain():
    manager = BlockManager(num_blocks=16, block_size=4)
    first = _seq(range(10))
    _compute_all(manager, first)
    same_prefix = _seq(list(range(8)) + [99, 98, 97])
    assert manager.cached_prefix(same_prefix) == first.block_table[:2]
    # Block 1's tokens match but block 0's do not: the chained hash must not hit.
    other_start = _seq([50, 51, 52, 53] + list(range(4, 8)) + [1, 2])
    assert manager.cached_prefix(other_start) == []
    # At least one token is always left to compute: an identical prompt reuses 2 blocks, not 3.
    assert len(manager.cached_prefix(_seq(range(12)))) == 2


def test_allocate_takes_cached_blocks_and_counts_refs():
    manager = BlockManager(num_blocks=16, block_size=4)
    first = _seq(range(10))
    _compute_all(manager, first)
    second = _seq(list(range(8)) + [42])
    manager.allocate(second, 1)
    assert second.num_cached_tokens == 8 and second.num_computed_tokens == 8
    shared = first.block_table[:2]
    assert second.block_table[:2] == shared
    assert [manager.ref_counts[b] for b in shared] == [2, 2]
    manager.free(first)
    manager.free(second)
    assert not any(manager.ref_counts) and manager.num_free_blocks == 16
    assert manager.num_cache_hits == 8


def test_freed_cached_blocks_are_reused_least_recently_freed_first():
    manager = BlockManager(num_blocks=6, block_size=4)
    old, new = _seq(range(0, 9)), _seq(range(100, 109))
    _compute_all(manager, old)
    _compute_all(manager, new)
    manager.free(old)
    manager.free(new)
    old_cached, new_cached = old.block_table, new.block_table
    assert old_cached == [] and new_cached == []  # free() empties the tables
    # Both prefixes are still findable after free.
    assert len(manager.cached_prefix(_seq(range(0, 9)))) == 2
    assert len(manager.cached_prefix(_seq(range(100, 109)))) == 2
    # 6 blocks: 2 uncached (the partial tails) are handed out first, then the older prefix's.
    taker = _seq(range(200, 216))
    manager.allocate(taker, 16)
    assert manager.cached_prefix(_seq(range(0, 9))) == []
    assert len(manager.cached_prefix(_seq(range(100, 109)))) == 2


def test_fork_shares_blocks_and_copies_on_write():
    manager = BlockManager(num_blocks=8, block_size=4)
    parent = _seq(range(7), fork_into=3)  # computes 6 tokens, then forks
    _compute_all(manager, parent)
    children = parent.fork([None, None, None])
    manager.fork(children)
    manager.free(parent)
    assert [manager.ref_counts[b] for b in children[0].block_table] == [3, 3]
    partial = children[0].block_table[1]  # holds tokens 4-5; each child writes token 6 into it
    copies = [manager.append(child, 1) for child in children]
    assert copies[0] == [(partial, children[0].block_table[1])] and copies[1][0][0] == partial
    assert copies[2] == []  # the last holder writes in place
    assert children[2].block_table[1] == partial
    assert len({c.block_table[1] for c in children}) == 3
    assert manager.ref_counts[children[0].block_table[0]] == 3  # the full block stays shared
    for child in children:
        manager.free(child)
    assert not any(manager.ref_counts)


def test_can_append_counts_the_copy():
    manager = BlockManager(num_blocks=3, block_size=4)
    parent = _seq(range(7), fork_into=2)
    _compute_all(manager, parent)
    children = parent.fork([None, None])
    manager.fork(children)
    manager.free(parent)
    assert manager.num_free_blocks == 1
    assert manager.can_append(children[0], 1)  # one copy, fits
    manager.append(children[0], 1)
    children[0].num_computed_tokens = 7
    assert manager.num_free_blocks == 0
    assert manager.can_append(children[0], 1)  # token 7 still fits its own copied block
    assert not manager.can_append(children[0], 2)  # token 8 needs a new block: none left
    assert manager.can_append(children[1], 1)  # now the sole holder of the original: no copy
