"""`LLM.stream`: one request step by step; it ends where `generate` ends, and closing it aborts."""

import pytest

from app import LLM, SamplingParams
from tests.shared_data import STORIES_HF

STORIES = STORIES_HF

pytestmark = pytest.mark.skipif(not STORIES.exists(), reason="needs the stories260K model")


@pytest.fixture(scope="module")
def llm():
    return LLM(str(STORIES), dtype="float32", num_threads=1)


def test_stream_grows_token_by_token_and_ends_like_generate(llm):
    params = SamplingParams(temperature=0.8, seed=5, max_tokens=20)
    expected = llm.generate("Once upon a time", params, use_tqdm=False)[0].outputs[0]
    snapshots = list(llm.stream("Once upon a time", params))
    lengths = [len(s.outputs[0].token_ids) for s in snapshots]
    assert lengths == list(range(1, len(lengths) + 1))  # one token per step, none skipped
    assert [s.finished for s in snapshots] == [False] * (len(snapshots) - 1) + [True]
    assert snapshots[-1].outputs[0].token_ids == expected.token_ids
    assert snapshots[-1].outputs[0].text == expected.text


def test_closing_the_stream_aborts_the_request(llm):
    stream = llm.stream([1, 400, 401], SamplingParams(temperature=0, max_tokens=50, ignore_eos=True))
    next(stream)
    stream.close()
    aborted = llm.engine.step()  # the abort is reported at the next step
    assert [o.outputs[0].finish_reason for o in aborted] == ["abort"]
    assert not llm.engine.has_unfinished_requests()
    assert llm.engine.block_manager.num_used_blocks == 0
