"""Speculative decoding: cheap proposals, verified by one batched forward pass of the target.

- `ngram.py`: prompt lookup, proposes what followed the last n-gram earlier in the request.
- `draft_model.py`: a smaller model with its own KV pool proposes greedily or by sampling.
- `rejection.py`: turns the target's k+1 rows per sequence into exact tokens.
- `decoder.py`: the engine's side: who speculates, drafts in and out of a step, KV rollback.

Submodules are imported directly (the sampler imports `rejection` while the engine loads).
"""
