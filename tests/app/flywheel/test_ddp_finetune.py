"""The finetune step on a worker with FLYWHEEL_TRAIN_PROCESSES=2: torchrun, two gloo ranks, the
same global batch; the candidate's weights equal the single-process candidate's."""
from __future__ import annotations

import pytest
from safetensors.torch import load_file

from app.flywheel import steps
from app.flywheel.ddp_finetune import ENV, check_divides, train_processes
from tests.app.flywheel.model_factory import tiny_chat_model
from tests.app.flywheel.test_steps import make_settings, seed_corrections


def _candidate(tmp_path, base_model, processes: int, monkeypatch) -> dict:
    monkeypatch.setenv(ENV, str(processes))
    settings = make_settings(tmp_path / f"p{processes}", base_model)
    settings.recipe["micro_batch_size"] = 2  # several optimizer steps on a few examples
    seed_corrections(settings, count=6)
    payload = steps.finetune(steps.build_dataset(steps.new_payload(settings)))
    return load_file(f"{payload.candidate.path}/model.safetensors")


def test_two_processes_train_the_candidate_one_process_trains(tmp_path, monkeypatch):
    base_model = tiny_chat_model(tmp_path / "tiny")
    single = _candidate(tmp_path, base_model, 1, monkeypatch)
    ddp = _candidate(tmp_path, base_model, 2, monkeypatch)
    base = load_file(f"{base_model}/model.safetensors")
    assert single.keys() == ddp.keys()
    diff = max((single[k] - ddp[k]).abs().max().item() for k in single)
    moved = max((single[k] - base[k]).abs().max().item() for k in single)
    assert moved > 1e-3  # training changed the weights, so the comparison means something
    assert diff < 1e-5, diff
    assert summary_steps(tmp_path / "p1") == summary_steps(tmp_path / "p2") > 1


def summary_steps(root) -> int:
    import json

    (summary,) = root.glob("data/models/*/train_summary.json")
    return json.loads(summary.read_text())["stages"]["sft"]["steps"]


def test_the_process_count_is_checked(monkeypatch):
    monkeypatch.setenv(ENV, "two")
    with pytest.raises(ValueError, match=ENV):
        train_processes()
    monkeypatch.setenv(ENV, "0")
    with pytest.raises(ValueError, match="between 1 and 256"):
        train_processes()
    with pytest.raises(ValueError, match="must divide the recipe's micro_batch_size"):
        check_divides({"micro_batch_size": 8}, 3)
