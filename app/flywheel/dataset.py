"""Build a versioned dataset snapshot from the store, and turn a snapshot into training examples.

The export rules live in `app.review.export` (shared with the review console): SFT from
corrections, rewrites and accepted answers; DPO from a preferred sibling over the others and a
correction over the original; KTO from verdicts or thumbs. This module adds the flywheel's own
signal — answers rated >= `min_rating` count as accepted — reuses an existing snapshot when the
content hash is unchanged, and splits records into train/eval by prompt group
(`app.flywheel.grouping`) so an eval prompt, or a near-duplicate of it, is never trained on.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace

from app.flywheel.grouping import SnapshotSplit, split_snapshot, teaching_prompt_ids

logger = logging.getLogger(__name__)

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
    from app.store.crud_review import (create_snapshot, latest_ratings, reviewed_answers,
                                       snapshot_with_hash)

    with store.transaction() as session:
        items = _with_high_ratings(reviewed_answers(session), latest_ratings(session), min_rating)
        snapshot = build_snapshot(items)
        existing = snapshot_with_hash(session, content_hash=snapshot.content_hash)
        if existing is not None:
            return SnapshotRef(existing.id, existing.version, existing.content_hash,
                               dict(existing.counts), reused=True)
        row = create_snapshot(session, snapshot=snapshot, created_by=created_by)
        return SnapshotRef(row.id, row.version, row.content_hash, dict(row.counts))


def _with_high_ratings(items: list, latest: dict[str, int], min_rating: int) -> list:
    """Mark answers whose latest star rating is >= min_rating as accepted."""
    from app.review.export import Verdict

    return [replace(item, verdicts=item.verdicts + (Verdict("accept"),))
            if latest.get(item.message_id, 0) >= min_rating else item for item in items]


def load_snapshot_records(store, snapshot_id: str) -> dict[str, list[dict]]:
    """{format: [record, ...]} of a stored snapshot. ValueError when it does not exist."""
    from app.store.crud_review import get_snapshot

    with store.transaction() as session:
        row = get_snapshot(session, snapshot_id=snapshot_id)
        if row is None:
            raise ValueError(f"dataset snapshot {snapshot_id!r} not found")
        texts = {"sft": row.sft_jsonl, "dpo": row.dpo_jsonl, "kto": row.kto_jsonl}
    return {name: [json.loads(line) for line in text.splitlines() if line.strip()]
            for name, text in texts.items()}


def split_for_iteration(records: dict[str, list[dict]], content_hash: str,
                        eval_fraction: float,
                        base_records: dict[str, list[dict]] | None = None) -> SnapshotSplit:
    """Train and eval sides of a snapshot, by prompt group (`app.flywheel.grouping`), salted by
    the snapshot so each iteration holds out different groups. `base_records`: the snapshot the
    base version was trained on, if any; what it taught is held out apart from what is new."""
    taught = teaching_prompt_ids(base_records) if base_records else frozenset()
    return split_snapshot(records, eval_fraction, salt=content_hash, taught_before=taught)


def to_examples(tokenizer, records: dict[str, list[dict]], objective: str) -> list:
    """Training examples of one objective from snapshot records. A record whose answer does not
    tokenize as a continuation of its prompt is skipped with a warning, not fatal."""
    from app.flywheel.encode import kto_example, preference_example, record_example, style_of

    builders = {
        "sft": lambda r: record_example(tokenizer, r["messages"], style_of(r)),
        "dpo": lambda r: preference_example(tokenizer, r["prompt"], r["chosen"][-1]["content"],
                                            r["rejected"][-1]["content"], style_of(r)),
        "kto": lambda r: kto_example(tokenizer, r["prompt"], r["completion"][-1]["content"],
                                     bool(r["label"]), style_of(r), float(r.get("weight", 1.0))),
    }
    if objective not in builders:
        raise ValueError(f"unknown objective {objective!r}")
    examples = []
    for record in records.get(objective, []):
        try:
            examples.append(builders[objective](record))
        except ValueError as e:
            logger.warning("skipped a %s record: %s", objective, e)
    return examples


def replay_records(records: dict[str, list[dict]]) -> list[dict]:
    """Answers users liked (thumbs-up or accepted, from every snapshot so far: the store keeps
    them) as SFT records: replaying them keeps what production does well while new feedback is
    learned, on any model, not only on the demo's own corpus."""
    return [{"messages": [*r["prompt"], *r["completion"]], "source": "accepted",
             **({"style": r["style"]} if "style" in r else {})}
            for r in records.get("kto", []) if r.get("label")]
