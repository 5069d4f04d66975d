"""The prefix cache shares KV only between equal salted prefixes, whatever the digest does.

Reference for "equal": each block's full token prefix and salt, recorded by the test as it
computes them. A digest truncated to 8 bits collides constantly, so these tests show that the
hit check (tokens, salt, parent entry) and not the digest keeps prompts apart. The crafted
collision shows why Python's `hash()` was not enough: its tuple hash is invertible.
"""
import hashlib
import random

import pytest

from framework.engine.block_manager import BlockManager
from framework.engine.sequence import Sequence
from shared import SamplingParams

BLOCK_SIZE = 4


def truncated_digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:1]  # 256 values: collisions after a few dozen blocks


def _seq(tokens, salt=None, skip=False):
    return Sequence("r", list(tokens), SamplingParams(cache_salt=salt, skip_prefix_cache=skip))


def _compute_all(manager: BlockManager, seq: Sequence) -> None:
    num_cached = len(manager.cached_prefix(seq)) * manager.block_size
    manager.allocate(seq, seq.target_num_computed - num_cached)
    seq.num_computed_tokens = seq.target_num_computed
    manager.commit(seq)


# ---- Python's tuple hash (CPython >= 3.8, xxHash-based) is invertible: craft a collision
_M = (1 << 64) - 1
_P1, _P2, _P5 = 11400714785074694791, 14029467366897019727, 2870177450012600261


def _lanes(acc: int, items) -> int:
    for item in items:
        acc = (acc + (hash(item) & _M) * _P2) & _M
        acc = ((acc << 31) | (acc >> 33)) & _M
        acc = (acc * _P1) & _M
    return acc


def _colliding_blocks(rng: random.Random) -> tuple[list[int], list[int]]:
    """Two different token blocks with equal `hash(tuple(block))`: pick the last token of the
    second so its hash state lands on the first's (about 1 try in 8 gives an int hash(x) == x)."""
    first = [rng.randrange(256) for _ in range(BLOCK_SIZE)]
    target = _lanes(_P5, first)
    unrotated = (target * pow(_P1, -1, 1 << 64)) & _M
    unrotated = ((unrotated >> 31) | (unrotated << 33)) & _M
    while True:
        head = [rng.randrange(256) for _ in range(BLOCK_SIZE - 1)]
        last = ((unrotated - _lanes(_P5, head)) * pow(_P2, -1, 1 << 64)) & _M
        if last < (1 << 61) - 1:  # hash(int) is the int itself below the Mersenne modulus
            second = head + [last]
            assert hash(tuple(first)) == hash(tuple(second)) and first != second
            return first, second


def test_python_hash_collisions_share_no_kv():
    """The old key, hash((parent, tuple(tokens))), let the crafted block reuse the first's KV."""
    first, second = _colliding_blocks(random.Random(3))
    manager = BlockManager(num_blocks=16, block_size=BLOCK_SIZE)
    _compute_all(manager, _seq(first + [1]))
    assert manager.cached_prefix(_seq(second + [1])) == []
    assert manager.cached_prefix(_seq(first + [2])) != []  # the genuine prefix still hits


@pytest.mark.parametrize("seed", [0, 1])
def test_truncated_digest_never_shares_a_block_between_different_prefixes(seed):
    rng = random.Random(seed)
    manager = BlockManager(num_blocks=4096, block_size=BLOCK_SIZE, digest=truncated_digest)
    holds: dict[int, tuple] = {}  # block -> (salt, full token prefix) whose KV it holds
    num_hit_blocks = 0
    for _ in range(300):
        # A small alphabet and shared openings make genuine hits common, too.
        opening = rng.choice([[1, 2, 3, 4], [5, 6, 7, 8], [rng.randrange(8) for _ in range(4)]])
        tokens = opening + [rng.randrange(8) for _ in range(rng.randrange(1, 12))]
        seq = _seq(tokens, salt=rng.choice([None, "a", "b"]))
        cached = manager.cached_prefix(seq)
        for i, block in enumerate(cached):
            assert holds[block] == (seq.params.cache_salt, tuple(tokens[:(i + 1) * BLOCK_SIZE]))
        num_hit_blocks += len(cached)
        _compute_all(manager, seq)
        for i in range(len(cached), seq.num_computed_tokens // BLOCK_SIZE):  # KV it computed
            holds[seq.block_table[i]] = (seq.params.cache_salt,
                                         tuple(tokens[:(i + 1) * BLOCK_SIZE]))
        manager.free(seq)
    assert manager.num_rejected_hits > 0, "the truncated digest should have collided"
    assert num_hit_blocks > 50, "equal prefixes should still be shared"


def test_salts_and_opt_out():
    manager = BlockManager(num_blocks=64, block_size=BLOCK_SIZE)
    prompt = list(range(13))
    _compute_all(manager, _seq(prompt, salt="tenant-a"))
    assert manager.cached_prefix(_seq(prompt)) == []
    assert manager.cached_prefix(_seq(prompt, salt="tenant-b")) == []
    assert len(manager.cached_prefix(_seq(prompt, salt="tenant-a"))) == 3
    assert manager.cached_prefix(_seq(prompt, salt="tenant-a", skip=True)) == []  # reads nothing
    private = list(range(100, 113))
    _compute_all(manager, _seq(private, skip=True))
    assert manager.cached_prefix(_seq(private)) == []  # and publishes nothing


def test_a_block_whose_parent_was_evicted_is_replaced_not_trusted():
    """Blocks are evicted one by one; a child left behind by its evicted parent must neither hit
    nor keep the recomputed prefix out of the cache."""
    manager = BlockManager(num_blocks=4, block_size=BLOCK_SIZE)
    prompt = list(range(9))
    first = _seq(prompt)
    _compute_all(manager, first)
    root, stale_child = first.block_table[:2]
    manager.free(first)
    manager.free_blocks.move_to_end(root, last=False)  # the next allocation evicts the root only
    taker = _seq(range(50, 52))
    _compute_all(manager, taker)
    assert taker.block_table == [root]
    manager.free(taker)
    again = _seq(prompt)
    assert manager.cached_prefix(again) == []
    _compute_all(manager, again)
    recomputed = again.block_table[:2]
    manager.free(again)
    assert stale_child not in recomputed
    assert manager.cached_prefix(_seq(prompt)) == recomputed
