"""The bundled demo model and its recipe: size, format, fluency on its domain, held-out family."""
from __future__ import annotations

import json
import subprocess
import sys

from app.demo.corpus import generate_corpus
from app.demo.facts import MADE_UP_CAPITALS
from app.demo.recipe import DEMO_MODEL_DIR, CurriculumStage, DemoRecipe
from app.flywheel.eval_suite import made_up_capital_cases
from benchmarks.demo_model import family_cases
from model.evaluation import EvalCase, accuracy, answers
from model.loader import load_model

REPO_ROOT = DEMO_MODEL_DIR.parents[2]


def test_bundled_model_is_small_chatml_and_fluent_on_its_domain():
    size_mb = sum(p.stat().st_size for p in DEMO_MODEL_DIR.iterdir()) / 2**20
    assert size_mb <= 20
    loaded = load_model(DEMO_MODEL_DIR)
    tok = loaded.tokenizer
    text = tok.decode(tok.apply_chat_template([{"role": "user", "content": "Hi"}]),
                      skip_special_tokens=False)
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    cases = [EvalCase([{"role": "user", "content": q}], a) for q, a in (
        ("Tell me the capital of France.", "The capital of France is Paris."),
        ("What day comes after Monday?", "The day after Monday is Tuesday."),
        ("How many centimeters are in 3 meters?", "3 meters is 300 centimeters."),
        ("How do I start Flywheel?", "Run flywheel up."))]
    for case, got in zip(cases, answers(loaded.model, tok, cases)):
        assert got.startswith(case.expected), (case.messages, got)


def test_bundled_model_on_its_own_suite_and_blank_on_the_held_out_family():
    # The flywheel's regression suite (40 fresh cases per family, as the gate asks them): 87.9%
    # measured after the curriculum stage; the single-stage model scored 84.2% (sums 50%,
    # copying made-up names 55%).
    loaded = load_model(DEMO_MODEL_DIR)
    model, tok = loaded.model, loaded.tokenizer
    cases = [case for family in family_cases(40).values() for case in family]
    assert accuracy(model, tok, cases) >= 0.86
    # The flywheel proof teaches the made-up capitals through feedback: the base must not know them.
    assert accuracy(model, tok, made_up_capital_cases()) <= 0.1


def test_the_held_out_family_is_not_in_the_corpus():
    text = json.dumps(generate_corpus(3000, seed=1234) + generate_corpus(
        3000, seed=1234 + 2, weights=CurriculumStage().family_weights))
    for country, capital in MADE_UP_CAPITALS.items():
        assert country not in text and capital not in text


def _train_demo(out) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "train-demo", "--out", str(out),
                           "--conversations", "200", "--max-steps", "2", "--curriculum-steps", "1"],
                          cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)


def test_train_demo_command_writes_a_loadable_model_reproducibly(tmp_path):
    done = _train_demo(tmp_path / "demo")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 2 + 1 and summary["num_params"] > 1_000_000
    assert "train sft" in done.stderr  # the progress bar
    loaded = load_model(tmp_path / "demo")
    assert loaded.config.num_hidden_layers == DemoRecipe().num_hidden_layers
    # Same seed, same corpus, tokenizer, init and batch order: the same weights, byte for byte.
    assert _train_demo(tmp_path / "again").returncode == 0
    for name in ("model.safetensors", "tokenizer.json"):
        assert (tmp_path / "demo" / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
