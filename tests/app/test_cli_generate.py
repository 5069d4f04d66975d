"""`flywheel generate`: greedy output equals transformers' generate, sampling is seeded, errors exit
2 with one line. The loop itself (`stream_generate`) is tested in-process."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from app.commands.generate import stream_generate, stream_text
from model.loader import load_model
from shared import SamplingParams
from tests.model.factories import STORIES_HF

FLYWHEEL = str(Path(sys.executable).with_name("flywheel"))
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny model; threads only contend on shared CPUs
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
                 "{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FLYWHEEL, *args], capture_output=True, text=True, env=ENV, timeout=120)


def transformers_greedy(model_dir, prompt_ids: list[int], max_new_tokens: int) -> str:
    """The continuation text transformers generates greedily (stopping at generation_config eos)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=max_new_tokens, do_sample=False)
    full = tokenizer.decode(out[0], skip_special_tokens=True)
    return full[len(tokenizer.decode(prompt_ids, skip_special_tokens=True)):]


@pytest.fixture(scope="module")
def stories():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_model(STORIES_HF)
    torch.set_num_threads(previous)


def test_greedy_cli_matches_transformers(stories):
    prompt = "Once upon a time"
    result = run_cli("generate", "--model", str(STORIES_HF), "--prompt", prompt,
                     "--temperature", "0", "--max-tokens", "40")
    assert result.returncode == 0, result.stderr
    expected = transformers_greedy(STORIES_HF, stories.tokenizer.encode(prompt), 40)
    assert result.stdout == expected + "\n"
    assert expected.startswith(", there was a little girl named Lily")


def test_chat_cli_matches_transformers(tmp_path):
    for path in STORIES_HF.iterdir():
        if path.name != "tokenizer_config.json":
            shutil.copyfile(path, tmp_path / path.name)
    config = json.loads((STORIES_HF / "tokenizer_config.json").read_text())
    config["chat_template"] = CHAT_TEMPLATE
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    result = run_cli("generate", "--model", str(tmp_path), "--prompt", "Tell me about Lily.",
                     "--chat", "--temperature", "0", "--max-tokens", "30")
    assert result.returncode == 0, result.stderr
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(tmp_path).apply_chat_template(
        [{"role": "user", "content": "Tell me about Lily."}], add_generation_prompt=True,
        tokenize=True, return_dict=False)
    assert result.stdout == transformers_greedy(tmp_path, ids, 30) + "\n"


def test_seeded_sampling_is_reproducible(stories):
    prompt = stories.tokenizer.encode("Tom and his dog")

    def sample(seed):
        params = SamplingParams(temperature=1.0, seed=seed, max_tokens=24, ignore_eos=True)
        return list(stream_generate(stories, prompt, params))

    first = sample(7)
    assert len(first) == 24
    assert sample(7) == first
    assert sample(8) != first


def test_tiny_top_p_is_greedy(stories):
    prompt = stories.tokenizer.encode("Zoo")
    greedy = list(stream_generate(stories, prompt, SamplingParams(temperature=0.0, max_tokens=20)))
    nucleus = list(stream_generate(stories, prompt, SamplingParams(temperature=1.5, top_p=1e-6,
                                                                   seed=1, max_tokens=20)))
    assert nucleus == greedy


def test_stops_at_eos_without_emitting_it(stories):
    prompt = stories.tokenizer.encode("Zoo")
    greedy = list(stream_generate(stories, prompt, SamplingParams(temperature=0.0, max_tokens=10)))
    stop_at = greedy[4]
    first_hit = greedy.index(stop_at)
    config = dataclasses.replace(stories.config, eos_token_ids=[stop_at])
    stopped = list(stream_generate(dataclasses.replace(stories, config=config), prompt,
                                   SamplingParams(temperature=0.0, max_tokens=10)))
    assert stopped == greedy[:first_hit]


def test_stream_text_is_the_decoded_continuation(stories):
    tokenizer = stories.tokenizer
    prompt = tokenizer.encode("The cat said")
    new_ids = tokenizer.encode(" héllo 日本語 world", add_bos=False)
    deltas = list(stream_text(tokenizer, prompt, iter(new_ids)))
    full = tokenizer.decode(prompt + new_ids)
    assert "".join(deltas) == full[len(tokenizer.decode(prompt)):]
    assert all("\ufffd" not in delta for delta in deltas)


def test_prompt_longer_than_context(stories):
    with pytest.raises(ValueError, match="context is 512"):
        list(stream_generate(stories, [1] * 600, SamplingParams(max_tokens=5)))


@pytest.mark.parametrize("args, message", [
    (["--model", "{empty}"], "{empty}/config.json not found"),
    (["--model", str(STORIES_HF), "--temperature", "-1"], "temperature must be in [0, 100]"),
    (["--model", str(STORIES_HF), "--chat"], "no chat template"),
    (["--prompt", "hi"], "Missing option '--model'"),
])
def test_cli_errors_exit_2_with_one_line(tmp_path, args, message):
    args = [a.replace("{empty}", str(tmp_path)) for a in args]
    result = run_cli("generate", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flywheel: error: "), result.stderr
    assert message.replace("{empty}", str(tmp_path)) in lines[0]
