"""Registered lm-eval tasks in the promotion gate: `flywheel eval-set add-lm-eval` refuses bad tasks
(exit 2, nothing stored) and stores a good one; the gate's "lm-eval NAME" suite then holds, per
item, what lm_eval's own `hf` backend (transformers) computes on the same model directories —
the base stories260K-hf and a candidate whose weights were scrambled — and a candidate that loses
items is judged like on any other suite."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from app.core.data_dir import DataDir
from app.flywheel.candidate_eval import evaluate_candidate
from app.flywheel.gate import GateConfig
from app.flywheel.grouping import SnapshotSplit
from app.flywheel.lm_eval_tasks import registered_tasks, run_task
from tests.shared_data import STORIES_HF

pytest.importorskip("lm_eval")
pytest.importorskip("transformers")

ATOL = 1e-4
ITEMS = [  # stories260K gets the first two right and the last two wrong
    {"context": "Once upon a time, there was a little", "choices": ["girl", "dog", "tree"],
     "label": 0},
    {"context": "The sun was shining and the birds were", "choices": ["singing", "sad", "blue"],
     "label": 0},
    {"context": "Tom and Sue went to the", "choices": ["park", "moon", "big red car"], "label": 1},
    {"context": "She had a big red", "choices": ["ball", "sky", "run"], "label": 2},
]
TASK_YAML = """task: flywheel_tiny_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
"""


@pytest.fixture(scope="module", autouse=True)
def offline():
    with pytest.MonkeyPatch.context() as patch:  # lm_eval and datasets must not reach the hub
        for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
            patch.setenv(name, "1")
        yield


def _data(root: Path) -> DataDir:
    return DataDir.at(root, f"sqlite:///{root / 'flywheel.db'}")


def _cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", "eval-set", *args, "--data-dir",
                           str(data_dir)], check=False, capture_output=True, text=True,
                          timeout=600)


def _task_folder(folder: Path, yaml_text: str | None = None, data: str = "items.jsonl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in ITEMS))
    (folder / "task.yaml").write_text(yaml_text or TASK_YAML.format(data=data))
    return folder


@pytest.fixture(scope="module")
def registered(tmp_path_factory) -> Path:
    """A data directory with the task registered through the CLI, its originals then deleted."""
    root = tmp_path_factory.mktemp("lm_eval_gate")
    source = _task_folder(root / "source")
    done = _cli(root / "data", "add-lm-eval", "tiny", str(source))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("added lm-eval task tiny (flywheel_tiny_choice, metric acc)")
    for path in source.iterdir():  # the gate runs the stored copy
        path.unlink()
    (task,) = registered_tasks(_data(root / "data"))
    listed = _cli(root / "data", "list-lm-eval")
    assert listed.stdout == f"tiny  flywheel_tiny_choice  acc  {task.sha256[:12]}\n"
    return root / "data"


@pytest.fixture(scope="module")
def candidate_dir(tmp_path_factory) -> Path:
    """stories260K-hf with every weight scrambled by noise: it forgets what it knew."""
    from model.checkpoint_writer import save_checkpoint
    from model.loader import load_model

    loaded = load_model(str(STORIES_HF), dtype="float32")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in loaded.model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.5)
    return save_checkpoint(loaded.model, loaded.config, tmp_path_factory.mktemp("cand") / "m",
                           tokenizer_dir=STORIES_HF, dtype="float32")


def _hf_reference(task, model_dir: Path) -> list[tuple[bool, list[float]]]:
    """lm_eval run directly on the model directory with its transformers backend."""
    from lm_eval import simple_evaluate

    from app.flywheel.lm_eval_tasks import _runnable

    config = _runnable(task)
    results = simple_evaluate(model="hf", model_args={"pretrained": str(model_dir),
                                                      "dtype": "float32", "device": "cpu"},
                              tasks=[config], log_samples=True, bootstrap_iters=0)
    samples = sorted(results["samples"][config["task"]], key=lambda s: s["doc_id"])
    return [(bool(s["acc"]), [float(r[0][0]) for r in s["resps"]]) for s in samples]


@pytest.fixture(scope="module")
def base_reference(registered) -> list[tuple[bool, list[float]]]:
    (task,) = registered_tasks(_data(registered))
    return _hf_reference(task, STORIES_HF)


def _empty_split() -> SnapshotSplit:
    empty = {"sft": [], "dpo": [], "kto": []}
    return SnapshotSplit(train=dict(empty), eval=dict(empty), num_groups=0, num_eval_groups=0)


@pytest.mark.slow  # two models through the gate and lm_eval's hf backend: ~1 min on 2 cores
def test_gate_report_holds_the_lm_eval_suite_as_lm_eval_computes_it(registered, candidate_dir,
                                                                     base_reference):
    (task,) = registered_tasks(_data(registered))
    report = evaluate_candidate(str(STORIES_HF), str(candidate_dir), _empty_split(), {},
                                GateConfig(), lm_eval_tasks=[task])
    (suite,) = [s for s in report.regression if s.name == "lm-eval tiny"]
    base_ref, cand_ref = base_reference, _hf_reference(task, candidate_dir)
    assert [p for p, _ in base_ref] == [True, True, False, False]  # the task is not trivial
    outcome = suite.outcome
    assert (outcome.n, outcome.base_passed, outcome.candidate_passed) == (
        len(ITEMS), sum(p for p, _ in base_ref), sum(p for p, _ in cand_ref))
    assert outcome.lost == sum(b and not c for (b, _), (c, _) in zip(base_ref, cand_ref))
    assert outcome.gained == sum(c and not b for (b, _), (c, _) in zip(base_ref, cand_ref))
    assert "lm-eval tiny" in json.dumps(report.to_dict())


@pytest.mark.slow
def test_per_item_results_equal_lm_eval_on_the_model_dir(registered, base_reference):
    from model.loader import load_model

    (task,) = registered_tasks(_data(registered))
    loaded = load_model(str(STORIES_HF), dtype="float32")
    mine = run_task(task, loaded.model.eval(), loaded.tokenizer)
    assert len(mine) == len(base_reference) == len(ITEMS)
    for item, (passed, loglikelihoods) in zip(mine, base_reference):
        assert item.passed == passed
        assert item.loglikelihoods == pytest.approx(loglikelihoods, abs=ATOL)


@pytest.mark.parametrize("case, message", [
    ("bad_yaml", "not plain YAML"),
    ("missing_data", "data file gone.jsonl for split 'test' not found"),
    ("generation", "output_type must be multiple_choice"),
    ("bad_metric", "first metric must be one of"),
    ("no_task", "no such file or folder"),
])
def test_bad_registrations_are_refused_and_store_nothing(tmp_path, case, message):
    good = TASK_YAML.format(data="items.jsonl")
    yaml_text = {"bad_yaml": "task: [unclosed\n",
                 "generation": good.replace("multiple_choice", "generate_until"),
                 "bad_metric": good.replace("metric: acc", "metric: f1")}.get(case)
    folder = _task_folder(tmp_path / "src", yaml_text,
                          data="gone.jsonl" if case == "missing_data" else "items.jsonl")
    source = tmp_path / "nowhere" if case == "no_task" else folder
    done = _cli(tmp_path / "data", "add-lm-eval", "t", str(source))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("flywheel: error: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert registered_tasks(_data(tmp_path / "data")) == []


def test_a_registered_or_changed_task_changes_the_gate_report_cache_key(tmp_path):
    from app.flywheel.lm_eval_tasks import LmEvalTask
    from app.flywheel.scoring import EvalItem
    from app.flywheel.training import suites_fingerprint

    suites = {"eval set facts": [EvalItem([{"role": "user", "content": "Q?"}], "A")]}
    task = LmEvalTask("tiny", tmp_path, {}, "acc", "0" * 64)
    keys = {suites_fingerprint(suites), suites_fingerprint(suites, [task]),
            suites_fingerprint(suites, [LmEvalTask("tiny", tmp_path, {}, "acc", "1" * 64)])}
    assert len(keys) == 3
    assert suites_fingerprint(suites, []) == suites_fingerprint(suites)  # none: the old key


@pytest.mark.slow  # one fine-tuning of a tiny model and two gate measurements
def test_a_task_registered_after_a_measurement_is_in_the_next_gate_report(tmp_path):
    from app.flywheel import steps
    from app.flywheel.lm_eval_tasks import register_task
    from tests.app.flywheel.model_factory import tiny_chat_model
    from tests.app.flywheel.test_steps import make_settings, seed_corrections

    settings = make_settings(tmp_path, tiny_chat_model(tmp_path / "tiny"))
    seed_corrections(settings)
    payload = steps.finetune(steps.build_dataset(steps.new_payload(settings)))
    assert not any(name.startswith("lm-eval ") for name in steps.evaluate(payload).metrics[
        "regression"])
    register_task(settings.data, "tiny", _task_folder(tmp_path / "source"))
    # the same candidate: measured again (the cache key holds the task), not read from cache
    suite = steps.evaluate(payload).metrics["regression"]["lm-eval tiny"]
    assert suite["n"] == len(ITEMS)


def test_removing_a_task_stops_the_gate_running_it(tmp_path):
    from app.flywheel.lm_eval_tasks import register_task

    register_task(_data(tmp_path), "tiny", _task_folder(tmp_path / "src") / "task.yaml")
    assert [t.name for t in registered_tasks(_data(tmp_path))] == ["tiny"]
    done = _cli(tmp_path, "remove-lm-eval", "tiny")
    assert (done.returncode, done.stdout) == (0, "removed lm-eval task tiny\n")
    assert registered_tasks(_data(tmp_path)) == []
    again = _cli(tmp_path, "remove-lm-eval", "tiny")
    assert (again.returncode, again.stderr) == (2, "flywheel: error: no lm-eval task named 'tiny'\n")


def test_task_folders_from_before_the_database_move_in_once(registered, tmp_path):
    """A data dir whose tasks were folders (<data dir>/lm_eval_tasks/<name>/, as registration
    wrote them before): each comes in with the hash it had, so cached gate reports still match,
    and runs from the database's copy; importing again adds nothing, the database's task wins."""
    import hashlib
    import shutil

    (task,) = registered_tasks(_data(registered))
    old = tmp_path / "lm_eval_tasks"
    shutil.copytree(task.directory, old / "tiny")  # task.yaml + test.jsonl, as stored then
    (old / ".tiny-staging").mkdir()  # a registration's leftover staging folder: no task
    digest = hashlib.sha256()
    for path in sorted((old / "tiny").iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    (moved,) = registered_tasks(_data(tmp_path))
    assert (moved.name, moved.sha256, moved.config) == ("tiny", digest.hexdigest(), task.config)
    assert moved.directory != old / "tiny" and (moved.directory / "test.jsonl").read_bytes() == \
        (old / ".imported" / "tiny" / "test.jsonl").read_bytes()
    assert sorted(p.name for p in old.iterdir()) == [".imported", ".tiny-staging"]
    shutil.copytree(old / ".imported" / "tiny", old / "tiny")  # a backup restored
    (old / "tiny" / "test.jsonl").write_text("changed\n")
    assert [t.sha256 for t in registered_tasks(_data(tmp_path))] == [moved.sha256]
