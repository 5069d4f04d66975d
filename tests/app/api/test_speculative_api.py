"""Speculative decoding over HTTP through the official openai client: a server started with a
speculative_config answers greedy requests exactly as one without, with the per-request
`speculative` switch (extra_body) on or off, and /metrics carries vLLM's spec_decode counters;
a bad switch is a 400 naming the field."""
from __future__ import annotations

import httpx
import openai
import pytest

from app.api.main import create_app
from app.core.config import Settings
from app.serving.model_host import ModelHost
from tests.app.api.conftest import MODEL_ID, ServerThread, load_model

PROMPT = "Once upon a time there was a little dog named Tim. Tim liked to run. One day, Tim"


@pytest.fixture(scope="module")
def spec_server(tmp_path_factory):
    host = ModelHost()
    served = load_model(speculative_config={"method": "ngram", "num_speculative_tokens": 3,
                                            "prompt_lookup_max": 3})
    host.add(served)
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("data")), host=host)
    with ServerThread(app) as url:
        yield served, url, openai.OpenAI(base_url=f"{url}/v1", api_key="unused",
                                         max_retries=0, timeout=120)


def _complete(client: openai.OpenAI, **extra) -> str:
    return client.completions.create(model=MODEL_ID, prompt=PROMPT, max_tokens=40, temperature=0,
                                     extra_body=extra or None).choices[0].text


def test_speculative_server_matches_plain_greedy(client, spec_server):
    served, url, spec_client = spec_server
    reference = _complete(client)  # the session's server: no speculative_config
    assert _complete(spec_client, speculative=False) == reference
    assert served.engine.stats.num_spec_drafts == 0
    assert _complete(spec_client) == reference
    assert _complete(spec_client, speculative=True) == reference
    stats = served.engine.stats
    assert stats.num_spec_accepted_tokens > 0
    scraped = httpx.get(f"{url}/metrics").text
    assert (f'flywheel_spec_decode_num_accepted_tokens_total{{model_version="{served.id}"}} '
            f'{float(stats.num_spec_accepted_tokens)}') in scraped


def test_bad_switch_is_400(spec_server):
    with pytest.raises(openai.BadRequestError) as caught:
        _complete(spec_server[2], speculative="yes")
    assert "speculative" in str(caught.value.body)
