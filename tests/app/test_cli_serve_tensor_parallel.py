"""`flywheel serve --tensor-parallel-size`: a size the model cannot be split into is refused before
anything starts (exit 2, the reason on stderr). Serving itself is covered through `LLM` in
test_llm_tensor_parallel.py (the same engine and launcher)."""
from __future__ import annotations

import pytest

from app.cli import main
from tests.shared_data import STORIES_HF


@pytest.mark.parametrize("size, message", [
    ("3", "num_attention_heads=8 is not divisible"),  # stories260K: 8 query heads, 4 KV heads
    ("0", "must be >= 1"),
])
def test_unsplittable_size_exits_2(size, message, capsys, tmp_path):
    code = main(["serve", "--model", str(STORIES_HF), "--tensor-parallel-size", size,
                 "--data-dir", str(tmp_path)])
    assert code == 2
    assert message in capsys.readouterr().err
