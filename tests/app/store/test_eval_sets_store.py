"""Eval sets in the store on SQLite and PostgreSQL: add, list, items back in order, replace only when
asked, remove, and the gate's view of them (`registered_eval_cases`)."""
from __future__ import annotations

import hashlib
import threading
import time

import pytest
from sqlalchemy import inspect, select

from app.flywheel.eval_set_items import EvalItem, parse_jsonl
from app.flywheel.eval_sets import registered_eval_cases
from app.store import crud_eval_sets, crud_users
from app.store.crud_eval_sets import EvalSetExists
from app.store.eval_sets import EvalSet
from model.evaluation import EvalCase

ITEMS = [EvalItem([{"role": "system", "content": "Be brief."},
                   {"role": "user", "content": "Café? ünïcode ✓ and 'quotes'"}], "oui"),
         EvalItem([{"role": "user", "content": "What is 2 plus 3?"}], "5")]


def _add(store, name, items=ITEMS, **kwargs):
    with store.transaction() as session:
        return crud_eval_sets.add_eval_set(session, name=name, description=kwargs.pop("description", ""),
                                           items=items, created_by=kwargs.pop("created_by", None), **kwargs)


def test_migration_creates_the_table(store):
    columns = {c["name"] for c in inspect(store.engine).get_columns("eval_sets")}
    assert {"name", "description", "created_by", "created_at", "item_count", "content_sha256",
            "items_jsonl"} <= columns


def test_add_list_items_and_remove(store):
    with store.transaction() as session:
        boss = crud_users.create_user(session, username="boss", password="long enough pw", role="admin")
    info = _add(store, "facts", description="made-up facts", created_by=boss.id)
    assert (info.name, info.item_count, info.created_by, info.replaced) == ("facts", 2, "boss", False)
    _add(store, "arith", items=ITEMS[1:])
    with store.session_factory() as session:
        listed = crud_eval_sets.list_eval_sets(session)
        assert [(s.name, s.item_count, s.created_by) for s in listed] == [("arith", 1, None),
                                                                         ("facts", 2, "boss")]
        assert listed[1].description == "made-up facts"
        assert crud_eval_sets.eval_set_items(session, name="facts") == ITEMS
        assert crud_eval_sets.eval_set_items(session, name="nope") is None
        stored = session.scalar(select(EvalSet).where(EvalSet.name == "facts"))
        # the hash is over exactly the stored text, so the gate can prove which items it ran
        assert info.content_sha256 == hashlib.sha256(stored.items_jsonl.encode()).hexdigest()
    with store.transaction() as session:
        assert crud_eval_sets.remove_eval_set(session, name="facts")
        assert not crud_eval_sets.remove_eval_set(session, name="facts")
    with store.session_factory() as session:
        assert [s.name for s in crud_eval_sets.list_eval_sets(session)] == ["arith"]


def test_adding_a_taken_name_keeps_the_old_set_unless_replace(store):
    first = _add(store, "facts")
    with pytest.raises(EvalSetExists, match="already exists"):
        _add(store, "facts", items=ITEMS[1:], description="other")
    with store.session_factory() as session:
        assert crud_eval_sets.eval_set_items(session, name="facts") == ITEMS
        assert crud_eval_sets.get_eval_set(session, name="facts").content_sha256 == first.content_sha256
    replaced = _add(store, "facts", items=ITEMS[1:], description="other", replace=True)
    assert replaced.replaced and replaced.item_count == 1 and replaced.content_sha256 != first.content_sha256
    with store.session_factory() as session:
        assert crud_eval_sets.eval_set_items(session, name="facts") == ITEMS[1:]
        assert len(crud_eval_sets.list_eval_sets(session)) == 1


def test_a_concurrent_add_of_the_same_name_is_refused(store):
    """A second writer passes the existence check while the first one's insert is uncommitted:
    the unique name decides, and the loser gets EvalSetExists, not a database error."""
    flushed, outcome = threading.Event(), []

    def second_writer():
        flushed.wait(10)
        try:
            _add(store, "race", items=ITEMS[1:])
            outcome.append("added")
        except EvalSetExists:
            outcome.append("exists")

    thread = threading.Thread(target=second_writer)
    thread.start()
    with store.transaction() as session:
        crud_eval_sets.add_eval_set(session, name="race", description="", items=ITEMS, created_by=None)
        flushed.set()
        time.sleep(0.5)  # the second writer checks, finds nothing committed, and waits on its insert
    thread.join(30)
    assert outcome == ["exists"]
    with store.session_factory() as session:
        assert crud_eval_sets.eval_set_items(session, name="race") == ITEMS


def test_registered_eval_cases_are_what_the_gate_runs(store):
    assert registered_eval_cases(store) == {}
    _add(store, "zeta", items=parse_jsonl(b'{"prompt": "Once upon a", "expected": "time"}\n'))
    _add(store, "alpha")
    cases = registered_eval_cases(store)
    assert list(cases) == ["alpha", "zeta"]
    assert cases["zeta"] == [EvalCase([{"role": "user", "content": "Once upon a"}], "time")]
    assert cases["alpha"] == [EvalCase(item.messages, item.expected) for item in ITEMS]
