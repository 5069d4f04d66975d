"""Through the live API: unseeded chat requests sample differently, a seed repeats exactly."""
from __future__ import annotations

from tests.app.api.conftest import MODEL_ID

PROMPT = "Once upon a time"
TRIES = 4


def test_api_unseeded_requests_differ_and_seeded_ones_repeat(http):
    def answer(**extra) -> str:
        response = http.post("/v1/chat/completions", json={
            "model": MODEL_ID, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 16,
            "temperature": 1.0, **extra})
        assert response.status_code == 200, response.text
        return response.json()["choices"][0]["message"]["content"]

    assert len({answer() for _ in range(TRIES)}) > 1
    assert answer(seed=99) == answer(seed=99)
