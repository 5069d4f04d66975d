"""EleutherAI's lm-evaluation-harness (`lm_eval`, the real CLI) against a live server, as the README
documents it: its `local-completions` model on two local tasks (a log-likelihood multiple-choice
task and a generation task, JSONL files, no downloads). Its log-likelihoods must equal a
transformers forward pass over the same token ids within 1e-4, and its generations transformers'
greedy continuation cut at the task's stop string."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.app.api.conftest import MODEL_DIR, MODEL_ID

pytest.importorskip("lm_eval")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.slow  # one lm_eval process: about 30-50 s on 2 shared cores

ATOL = 1e-4
MAX_GEN_TOKS = 12
CHOICE_ITEMS = [
    {"context": "Once upon a time, there was a little", "choices": ["girl", "dog", "tree"],
     "label": 0},
    {"context": "The sun was shining and the birds were", "choices": ["singing", "sad", "blue"],
     "label": 0},
    {"context": "Tom and Sue went to the", "choices": ["park", "moon", "big red car"], "label": 0},
]
GENERATION_ITEMS = [{"prompt": "Once upon a time", "target": ", there was a girl"},
                    {"prompt": "The little dog", "target": " was happy"}]


def _task(name: str, data: Path, body: str) -> str:
    return (f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
            f"    test: {data}\ntest_split: test\n{body}")


def _write_tasks(folder: Path) -> None:
    for name, items in (("choice", CHOICE_ITEMS), ("generation", GENERATION_ITEMS)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    (folder / "flywheel_choice.yaml").write_text(_task(
        "flywheel_choice", folder / "choice.jsonl",
        'output_type: multiple_choice\ndoc_to_text: "{{context}}"\n'
        'doc_to_choice: "{{choices}}"\ndoc_to_target: "{{label}}"\n'
        "metric_list:\n  - metric: acc\n"))
    (folder / "flywheel_generation.yaml").write_text(_task(
        "flywheel_generation", folder / "generation.jsonl",
        'output_type: generate_until\ndoc_to_text: "{{prompt}}"\ndoc_to_target: "{{target}}"\n'
        f'generation_kwargs:\n  until: ["."]\n  max_gen_toks: {MAX_GEN_TOKS}\n'
        "  do_sample: false\n  temperature: 0\nmetric_list:\n  - metric: exact_match\n"))


@pytest.fixture(scope="module")
def lm_eval_samples(live_server, tmp_path_factory) -> dict[str, list[dict]]:
    """Run the lm_eval CLI once, as the README shows it; its logged samples per task."""
    folder = tmp_path_factory.mktemp("lm_eval")
    _write_tasks(folder)
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(folder / "hf"),
           "OPENAI_API_KEY": "unused"}  # lm_eval always sends a bearer token
    model_args = (f"model={MODEL_ID},base_url={live_server.url}/v1/completions,"
                  f"tokenizer_backend=huggingface,tokenizer={MODEL_DIR},max_length=512")
    command = [sys.executable, "-m", "lm_eval", "--model", "local-completions",
               "--model_args", model_args, "--batch_size", "4",
               "--tasks", "flywheel_choice", "flywheel_generation",
               "--include_path", str(folder), "--log_samples", "--output_path",
               str(folder / "out")]
    done = subprocess.run(command, env=env, cwd=folder, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    samples = {}
    for task in ("flywheel_choice", "flywheel_generation"):
        (path,) = (folder / "out").rglob(f"samples_{task}_*.jsonl")
        samples[task] = [json.loads(line) for line in path.read_text().splitlines()]
    return samples


@pytest.fixture(scope="module")
def reference():
    model = transformers.LlamaForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(MODEL_DIR)
    return model, tokenizer


def _encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """The token ids lm_eval sends for (context, continuation): trailing spaces of the context
    move to the continuation; the whole string is encoded once, without BOS, and split."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
    context_ids = tokenizer(context, add_special_tokens=False).input_ids
    return context_ids, whole[len(context_ids):]


def test_lm_eval_log_likelihoods_equal_a_forward_pass(lm_eval_samples, reference):
    model, tokenizer = reference
    samples = lm_eval_samples["flywheel_choice"]
    assert len(samples) == len(CHOICE_ITEMS)
    for sample in samples:
        arguments = [sample["arguments"][f"gen_args_{k}"] for k in range(len(sample["resps"]))]
        for args, resp in zip(arguments, sample["resps"]):
            context_ids, continuation_ids = _encode_pair(tokenizer, args["arg_0"], args["arg_1"])
            ids = context_ids + continuation_ids
            with torch.no_grad():
                logprobs = model(torch.tensor([ids])).logits[0].float().log_softmax(-1)
            rows = logprobs[len(context_ids) - 1:-1]  # the rows that predict the continuation
            expected = sum(rows[i, t].item() for i, t in enumerate(continuation_ids))
            greedy = all(int(rows[i].argmax()) == t for i, t in enumerate(continuation_ids))
            (log_likelihood, is_greedy), = resp
            assert float(log_likelihood) == pytest.approx(expected, abs=ATOL), args
            assert (is_greedy == "True") == greedy


def test_lm_eval_generations_equal_greedy_decoding(lm_eval_samples, reference):
    model, tokenizer = reference
    samples = lm_eval_samples["flywheel_generation"]
    assert len(samples) == len(GENERATION_ITEMS)
    for sample in samples:
        prompt = sample["doc"]["prompt"]
        ids = tokenizer(prompt, add_special_tokens=False).input_ids
        with torch.no_grad():
            generated = model.generate(torch.tensor([ids]), max_new_tokens=MAX_GEN_TOKS,
                                       do_sample=False)[0, len(ids):].tolist()
        if tokenizer.eos_token_id in generated:
            generated = generated[:generated.index(tokenizer.eos_token_id)]
        text = tokenizer.decode(ids + generated)[len(tokenizer.decode(ids)):]
        assert sample["resps"] == [[text.split(".")[0]]]
