"""Operator-registered eval sets as the promotion gate's regression suites.

`registered_eval_cases(store)` is what the gate calls: every set in the store, by name, as
`model.evaluation.EvalCase`s. A set registered while an iteration runs is seen by the next one.
The sets are added with `flywheel eval-set add`, `POST /v1/eval-sets` or the Models page.
"""
from __future__ import annotations

from app.store import crud_eval_sets
from app.store.session import Store
from model.evaluation import EvalCase


def registered_eval_cases(store: Store) -> dict[str, list[EvalCase]]:
    """Set name -> its cases (prompt messages ending with a user turn, expected answer text)."""
    with store.session_factory() as session:
        sets = crud_eval_sets.all_eval_set_items(session)
    return {name: [EvalCase(messages=[dict(m) for m in item.messages], expected=item.expected)
                   for item in items] for name, items in sets.items()}
