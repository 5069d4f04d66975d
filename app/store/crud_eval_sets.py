"""Queries for operator-registered eval sets: add (or replace), list, read items, remove.

Keyword-only, no HTTP or CLI knowledge. Items arrive validated (`app.flywheel.eval_set_items`);
the store keeps their canonical JSONL and its sha256. Errors a caller should report to the user are
`EvalSetExists` (adding a name that is taken, without `replace`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from app.flywheel.eval_set_items import EvalItem, content_sha256, items_to_jsonl, parse_jsonl
from app.store.base import new_id, utcnow
from app.store.eval_sets import EvalSet
from app.store.models import User


class EvalSetExists(ValueError):
    """An eval set of this name is already registered (and replacing it was not asked for)."""


@dataclass(frozen=True, slots=True)
class EvalSetInfo:
    name: str
    description: str
    item_count: int
    content_sha256: str  # of the canonical JSONL of the items
    created_by: str | None  # username; None when added from the command line
    created_at: datetime
    replaced: bool = False  # set by add_eval_set: an earlier set of this name was overwritten


def add_eval_set(session: Session, *, name: str, description: str, items: list[EvalItem],
                 created_by: str | None, replace: bool = False) -> EvalSetInfo:
    """Register `items` as `name`; with `replace`, an existing set of that name is overwritten
    in the same transaction (a failure leaves the old one)."""
    assert items, "an eval set has items"
    row = session.scalar(select(EvalSet).where(EvalSet.name == name))
    if row is not None and not replace:
        raise EvalSetExists(f"an eval set named {name!r} already exists")
    replaced = row is not None
    if row is None:
        row = EvalSet(id=new_id("evs"), name=name)
        session.add(row)
    row.description, row.item_count, row.created_by, row.created_at = (
        description, len(items), created_by, utcnow())
    row.items_jsonl, row.content_sha256 = items_to_jsonl(items), content_sha256(items)
    try:
        session.flush()
    except IntegrityError as e:  # another writer added the same name since the check above
        if "eval_sets.name" in str(e.orig) or "uq_eval_sets_name" in str(e.orig):
            raise EvalSetExists(f"an eval set named {name!r} already exists") from e
        raise
    return _info(row, _username(session, created_by), replaced=replaced)


def list_eval_sets(session: Session) -> list[EvalSetInfo]:
    """Every registered set, by name, without loading the items."""
    query = (select(EvalSet, User.username).outerjoin(User, EvalSet.created_by == User.id)
             .options(defer(EvalSet.items_jsonl)).order_by(EvalSet.name))
    return [_info(row, username) for row, username in session.execute(query)]


def get_eval_set(session: Session, *, name: str) -> EvalSetInfo | None:
    query = select(EvalSet).where(EvalSet.name == name).options(defer(EvalSet.items_jsonl))
    row = session.scalar(query)
    return None if row is None else _info(row, _username(session, row.created_by))


def eval_set_items(session: Session, *, name: str) -> list[EvalItem] | None:
    """The items of `name` in the order they were given; None when no such set."""
    text = session.scalar(select(EvalSet.items_jsonl).where(EvalSet.name == name))
    return None if text is None else parse_jsonl(text)


def all_eval_set_items(session: Session) -> dict[str, list[EvalItem]]:
    """name -> items for every registered set, by name."""
    rows = session.execute(select(EvalSet.name, EvalSet.items_jsonl).order_by(EvalSet.name))
    return {name: parse_jsonl(text) for name, text in rows}


def remove_eval_set(session: Session, *, name: str) -> bool:
    """Delete `name`; False when there was no such set."""
    return session.execute(delete(EvalSet).where(EvalSet.name == name)).rowcount > 0


def _username(session: Session, user_id: str | None) -> str | None:
    if user_id is None:
        return None
    return session.scalar(select(User.username).where(User.id == user_id))


def _info(row: EvalSet, username: str | None, replaced: bool = False) -> EvalSetInfo:
    return EvalSetInfo(name=row.name, description=row.description, item_count=row.item_count,
                       content_sha256=row.content_sha256, created_by=username,
                       created_at=_aware(row.created_at), replaced=replaced)


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; the store writes UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
