"""Build a versioned dataset snapshot from the store, and turn a snapshot into training examples.

The export rules live in `app.review.export` (shared with the review console): SFT from
corrections, rewrites and accepted answers; DPO from a preferred sibling over the others and a
correction over the original; KTO from verdicts or thumbs. This module adds the flywheel's own
signal — answers rated >= `min_rating` count as accepted — reuses an existing snapshot when the
content hash is unchanged, and splits records into train/eval by a stable hash of the prompt so
an eval prompt is never trained on.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

from sqlalchemy import select

FORMATS = ("sft", "dpo", "kto")


@dataclass(frozen=True, slots=True)
class SnapshotRef:
    id: str
    version: int
    content_hash: str
    counts: dict
    reused: bool = False  # True when an identical snapshot already existed


def build_dataset_snapshot(store, min_rating: int = 4, created_by: str | None = None) -> SnapshotRef:
    """Snapshot every reviewed answer now in the store (idempotent on content)."""
    from app.review.export import build_snapshot
    from app.store.crud_review import create_snapshot, reviewed_answers
    from app.store.review import DatasetSnapshot

    with store.transaction() as session:
        items = _with_high_ratings(session, reviewed_answers(session), min_rating)
        snapshot = build_snapshot(items)
        existing = session.scalar(select(DatasetSnapshot).where(
            DatasetSnapshot.content_hash == snapshot.content_hash).order_by(DatasetSnapshot.version))
        if existing is not None:
            return SnapshotRef(existing.id, existing.version, existing.content_hash,
                               dict(existing.counts), reused=True)
        row = create_snapshot(session, snapshot=snapshot, created_by=created_by)
        return SnapshotRef(row.id, row.version, row.content_hash, dict(row.counts))


def _with_high_ratings(session, items: list, min_rating: int) -> list:
    """Mark answers whose latest star rating is >= min_rating as accepted."""
    from app.review.export import Verdict
    from app.store.models import Feedback

    rows = session.execute(select(Feedback.message_id, Feedback.rating, Feedback.created_at)
                           .where(Feedback.rating.is_not(None)).order_by(Feedback.created_at))
    latest = {message_id: rating for message_id, rating, _ in rows}
    return [replace(item, verdicts=item.verdicts + (Verdict("accept"),))
            if latest.get(item.message_id, 0) >= min_rating else item for item in items]


def load_snapshot_records(store, snapshot_id: str) -> dict[str, list[dict]]:
    """{format: [record, ...]} of a stored snapshot. ValueError when it does not exist."""
    from app.store.review import DatasetSnapshot

    with store.transaction() as session:
        row = session.get(DatasetSnapshot, snapshot_id)
        if row is None:
            raise ValueError(f"dataset snapshot {snapshot_id!r} not found")
        texts = {"sft": row.sft_jsonl, "dpo": row.dpo_jsonl, "kto": row.kto_jsonl}
    return {name: [json.loads(line) for line in text.splitlines() if line.strip()]
            for name, text in texts.items()}


def prompt_of(record: dict) -> list[dict]:
    """The prompt messages of a record of any format (SFT: all but the final answer)."""
    return record["prompt"] if "prompt" in record else record["messages"][:-1]


def is_eval(record: dict, eval_percent: int) -> bool:
    """Stable split on the prompt: the same prompt always lands on the same side."""
    key = json.dumps(prompt_of(record), sort_keys=True, ensure_ascii=False)
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100 < eval_percent


def split_records(records: dict[str, list[dict]], eval_percent: int = 10):
    """({format: train records}, {format: eval records})."""
    if not 0 <= eval_percent < 100:
        raise ValueError(f"eval_percent must be in [0, 100), got {eval_percent}")
    train = {k: [r for r in v if not is_eval(r, eval_percent)] for k, v in records.items()}
    held = {k: [r for r in v if is_eval(r, eval_percent)] for k, v in records.items()}
    return train, held


def to_examples(tokenizer, records: dict[str, list[dict]], objective: str) -> list:
    """Training examples of one objective from snapshot records (conversational format)."""
    from app.flywheel.encode import kto_example, preference_example, sft_example

    if objective == "sft":
        return [sft_example(tokenizer, r["messages"]) for r in records.get("sft", [])]
    if objective == "dpo":
        return [preference_example(tokenizer, r["prompt"], r["chosen"][-1]["content"],
                                   r["rejected"][-1]["content"]) for r in records.get("dpo", [])]
    if objective == "kto":
        return [kto_example(tokenizer, r["prompt"], r["completion"][-1]["content"],
                            bool(r["label"])) for r in records.get("kto", [])]
    raise ValueError(f"unknown objective {objective!r}")
