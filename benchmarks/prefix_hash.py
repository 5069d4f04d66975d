"""What the verified prefix cache costs per KV block, against the Python `hash()` chain it replaced.

    .venv/bin/python benchmarks/prefix_hash.py [--blocks 10000] [--block-size 16] [--rounds 15]

Block digests are computed once per full block of every prompt at admission (on the scheduling
path), so their cost is per block. Rows, each the best of `rounds` (interleaved, so load from
other processes hits all alike):
- old: `hash((parent, tuple(tokens)))`, the chain used before (unkeyed, invertible);
- sha256: the block manager's own digest chain (SHA-256 over parent digest + packed token ids);
- blake2b keyed: the same chain with BLAKE2b keyed by a per-process random key, the alternative;
- hit check: walking a fully cached prompt (digest lookup + the token/salt/parent comparison),
  with digests already computed, as a waiting request's admission does.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from framework.engine.block_manager import BlockManager, sha256_digest  # noqa: E402
from framework.engine.sequence import Sequence  # noqa: E402
from shared import SamplingParams  # noqa: E402

VOCAB_SIZE = 49152  # SmolLM2's


def old_chain(tokens: list[int], block_size: int) -> list[int]:
    hashes, parent = [], None
    for i in range(len(tokens) // block_size):
        parent = hash((parent, tuple(tokens[i * block_size:(i + 1) * block_size])))
        hashes.append(parent)
    return hashes


def keyed_blake2b() -> Callable[[bytes], bytes]:
    keyed = hashlib.blake2b(key=os.urandom(32), digest_size=32)  # copied per call: key set once

    def digest(data: bytes) -> bytes:
        h = keyed.copy()
        h.update(data)
        return h.digest()
    return digest


def digest_chain(manager: BlockManager, tokens: list[int], num_blocks: int) -> None:
    seq = Sequence("bench", tokens, SamplingParams())
    manager._block_digest(seq, num_blocks - 1)  # the manager's own path, filled block by block


def cached_walk(num_blocks: int, block_size: int, tokens: list[int]) -> Callable[[], None]:
    """A pool holding the whole prompt; the returned call re-walks it as an admission does."""
    manager = BlockManager(num_blocks + 1, block_size)
    seq = Sequence("bench", tokens + [0], SamplingParams())
    manager.allocate(seq, len(seq))
    seq.num_computed_tokens = len(tokens)
    manager.commit(seq)
    probe = Sequence("probe", tokens + [0], SamplingParams())

    def walk() -> None:
        assert len(manager.cached_prefix(probe)) == num_blocks
    return walk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10_000)
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    n, size = args.blocks, args.block_size
    rng = random.Random(0)
    tokens = [rng.randrange(VOCAB_SIZE) for _ in range(n * size)]
    sha = BlockManager(1, size, digest=sha256_digest)
    blake = BlockManager(1, size, digest=keyed_blake2b())
    cases = {"old hash()": lambda: old_chain(tokens, size),
             "sha256": lambda: digest_chain(sha, tokens, n),
             "blake2b keyed": lambda: digest_chain(blake, tokens, n),
             "hit check (walk)": cached_walk(n, size, tokens)}
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(args.rounds):
        for name, run in cases.items():
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    print(f"{n} blocks of {size} tokens, best of {args.rounds}")
    print(f"{'':18} {'ms total':>9} {'ns/block':>9} {'vs old':>7}")
    for name, seconds in best.items():
        print(f"{name:18} {seconds * 1e3:9.2f} {seconds / n * 1e9:9.0f} "
              f"{seconds / best['old hash()']:6.2f}x")


if __name__ == "__main__":
    main()
