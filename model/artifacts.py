"""Content hashes of model directories: what a registered version's weights must hash to.

A version's directory lives under the model root (local, or a filesystem every machine mounts);
the registry records the hash of its weights when the version is registered, and a machine that
loads the version checks it first, so a half-copied, overwritten or different directory at the
same path is refused instead of served under the version's id.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

HASH_PREFIX = "sha256:"
_CHUNK = 8 << 20
WEIGHT_PATTERNS = ("*.safetensors", "*.bin")  # the files whose bytes make the model


class ArtifactMismatch(ValueError):
    """The weights at a version's path are not the ones that were registered."""


def weight_files(model_dir: str | Path) -> list[Path]:
    model_dir = Path(model_dir)
    return sorted({p for pattern in WEIGHT_PATTERNS for p in model_dir.glob(pattern)})


def content_hash(model_dir: str | Path) -> str:
    """"sha256:<hex>" over every weight file's name and bytes, in name order (renaming or
    swapping shards changes it). ValueError when the directory holds no weights."""
    files = weight_files(model_dir)
    if not files:
        raise ValueError(f"{model_dir}: no weight files ({', '.join(WEIGHT_PATTERNS)})")
    outer = hashlib.sha256()
    for path in files:
        inner = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                inner.update(chunk)
        outer.update(f"{path.name}\0{inner.hexdigest()}\n".encode())
    return HASH_PREFIX + outer.hexdigest()


def verify_content_hash(model_dir: str | Path, expected: str | None) -> None:
    """Raise ArtifactMismatch unless the weights in `model_dir` hash to `expected` (None: the
    version recorded no hash, e.g. the base model registered at first start; nothing to check)."""
    if expected is None:
        return
    actual = content_hash(model_dir)
    if actual != expected:
        raise ArtifactMismatch(f"{model_dir}: weights hash to {actual}, the registry recorded "
                               f"{expected} (a different or partly copied model)")
