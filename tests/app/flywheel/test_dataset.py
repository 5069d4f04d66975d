"""Dataset snapshots from a real SQLite store: SFT/DPO/KTO rules, dedupe, idempotence, split."""
from __future__ import annotations

from app.flywheel.dataset import (build_dataset_snapshot, load_snapshot_records,
                                  split_for_iteration, to_examples)
from app.demo.tokenizer_builder import train_tokenizer
from model.tokenizer import Tokenizer
from tests.app.flywheel.store_factory import add_exchange, add_feedback, add_user, open_sqlite_store


def _seed(store):
    with store.transaction() as s:
        uid = add_user(s)
        (wrong,) = add_exchange(s, uid, "What is the capital of Zorvania?", ["Paris."])
        add_feedback(s, wrong, uid, thumbs="down", correction="The capital of Zorvania is Quillport.")
        (good,) = add_exchange(s, uid, "Hi", ["Hello! How can I help you today?"])
        add_feedback(s, good, uid, rating=5)
        (meh,) = add_exchange(s, uid, "Hey", ["Bye."])
        add_feedback(s, meh, uid, thumbs="down", rating=2)
        # the same correction twice on identical conversations: one SFT record after dedupe
        (dup,) = add_exchange(s, uid, "What is the capital of Zorvania?", ["Paris."])
        add_feedback(s, dup, uid, correction="The capital of Zorvania is Quillport.")


def test_snapshot_rules_dedupe_and_idempotence(tmp_path):
    store = open_sqlite_store(tmp_path)
    _seed(store)
    ref = build_dataset_snapshot(store)
    records = load_snapshot_records(store, ref.id)
    sft_answers = sorted((r["messages"][-1]["content"], r["source"]) for r in records["sft"])
    assert sft_answers == [("Hello! How can I help you today?", "accepted"),
                           ("The capital of Zorvania is Quillport.", "correction")]
    (pair,) = records["dpo"]
    assert pair["chosen"][-1]["content"].endswith("Quillport.")
    assert pair["rejected"][-1]["content"] == "Paris."
    labels = {r["completion"][-1]["content"]: r["label"] for r in records["kto"]}
    assert labels == {"Hello! How can I help you today?": True, "Bye.": False, "Paris.": False}
    assert ref.counts == {"sft": 2, "dpo": 1, "kto": 3}
    again = build_dataset_snapshot(store)
    assert again.reused and again.id == ref.id and again.content_hash == ref.content_hash
    with store.transaction() as s:
        uid = add_user(s, "bob")
        (new,) = add_exchange(s, uid, "Thanks", ["You're welcome!"])
        add_feedback(s, new, uid, thumbs="up")
    newer = build_dataset_snapshot(store)
    assert not newer.reused and newer.version == ref.version + 1
    assert newer.counts["kto"] == 4 and newer.content_hash != ref.content_hash


def test_split_is_stable_by_prompt_and_examples_encode(tmp_path):
    store = open_sqlite_store(tmp_path)
    _seed(store)
    records = load_snapshot_records(store, build_dataset_snapshot(store).id)
    split = split_for_iteration(records, "salt", eval_fraction=0.5)
    for name in records:
        assert len(split.train[name]) + len(split.eval[name]) == len(records[name])
    assert split_for_iteration(records, "salt", 0.5) == split
    assert split_for_iteration(records, "salt", 0.0).eval == {"sft": [], "dpo": [], "kto": []}
    tok_dir = train_tokenizer(["What is the capital of Zorvania? Quillport Paris Hello"] * 3, 300,
                              tmp_path / "tok")
    tokenizer = Tokenizer.from_dir(tok_dir)
    (pair,) = to_examples(tokenizer, records, "dpo")
    assert tokenizer.decode(pair.chosen_ids).startswith("The capital of Zorvania is Quillport.")
    sft = to_examples(tokenizer, records, "sft")
    assert all(sum(e.loss_mask) > 0 for e in sft)
    assert len(to_examples(tokenizer, records, "kto")) == 3


def test_regenerated_and_stopped_answers_become_implicit_negatives(tmp_path):
    from app.store.models import Message

    store = open_sqlite_store(tmp_path)
    with store.transaction() as s:
        uid = add_user(s)
        first, second = add_exchange(s, uid, "Tell me a joke", ["Knock knock.", "Why did the chicken..."])
        s.get(Message, second).sampling_params = {"temperature": 0.7, "regenerate_of": first}
        (stopped,) = add_exchange(s, uid, "Write a long poem", ["Roses are red and"])
        s.get(Message, stopped).finish_reason = "abort"
        (plain,) = add_exchange(s, uid, "Hi", ["Hello!"])  # no signal at all: not exported
    records = load_snapshot_records(store, build_dataset_snapshot(store).id)
    signals = {r["completion"][-1]["content"]: (r["label"], r["signal"], r["weight"])
               for r in records["kto"]}
    assert signals == {"Knock knock.": (False, "regenerated", 0.5),
                       "Roses are red and": (False, "stopped", 0.25)}
    assert records["sft"] == [] and records["dpo"] == []
