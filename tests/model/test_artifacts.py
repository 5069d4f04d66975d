"""Content hashes of model directories (model/artifacts.py)."""
from __future__ import annotations

import hashlib
import shutil

import pytest

from model.artifacts import ArtifactMismatch, content_hash, verify_content_hash


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "model-00001-of-00002.safetensors").write_bytes(b"\x01" * 1000)
    (d / "model-00002-of-00002.safetensors").write_bytes(b"\x02" * 1000)
    return d


def test_the_hash_follows_the_weight_bytes_not_the_directory(model_dir, tmp_path):
    h = content_hash(model_dir)
    assert h.startswith("sha256:") and len(h) == len("sha256:") + 64
    copy = shutil.copytree(model_dir, tmp_path / "elsewhere")  # another mount, same bytes
    (copy / "config.json").write_text('{"comment": "not weights"}')
    assert content_hash(copy) == h
    shard = copy / "model-00002-of-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[500] ^= 1  # one bit
    shard.write_bytes(bytes(data))
    assert content_hash(copy) != h
    with pytest.raises(ArtifactMismatch, match="registry recorded"):
        verify_content_hash(copy, h)


def test_shards_are_part_of_the_hash_by_name(model_dir):
    h = content_hash(model_dir)
    a, b = (model_dir / f"model-0000{i}-of-00002.safetensors" for i in (1, 2))
    tmp = model_dir / "swap"
    a.rename(tmp), b.rename(a), tmp.rename(b)  # same files, swapped names
    assert content_hash(model_dir) != h
    single = model_dir.parent / "single"
    single.mkdir()
    (single / "model.safetensors").write_bytes(b"\x01" * 1000)
    # one shard's own digest is not the directory's hash (names are hashed in)
    assert content_hash(single) != "sha256:" + hashlib.sha256(b"\x01" * 1000).hexdigest()


def test_verify_accepts_the_same_weights_and_skips_an_unrecorded_hash(model_dir):
    verify_content_hash(model_dir, content_hash(model_dir))
    verify_content_hash(model_dir, None)
    with pytest.raises(ValueError, match="no weight files"):
        content_hash(model_dir.parent)
