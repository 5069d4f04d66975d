"""Dataset snapshot export: reviewed answers -> SFT, DPO and KTO JSONL, with counts and a content hash.

Rules (DESIGN "Flywheel" flow):
- SFT ("messages", "source"): corrections from feedback, annotator rewrites, and accepted answers
  ("source" says which: the gate measures corrections and rewrites as the taught skill).
- DPO ("prompt"/"chosen"/"rejected"): a preferred sibling over each other sibling; a correction or
  rewrite over the original answer.
- KTO ("prompt"/"completion"/"label"): annotator verdicts (majority of accept vs reject/rewrite)
  when present, otherwise the latest thumbs, otherwise an implicit negative — the answer was
  regenerated or stopped — with "signal" and a lower "weight" (IMPLICIT_WEIGHTS).
Records use the conversational format (lists of role/content messages); records of answers to
`/v1/completions` carry "style": "completion" (the prompt is one plain-text user turn). Each file's lines are
sorted and de-duplicated, so the content hash depends only on content, never on database order.
This module knows nothing about the database; callers build `ReviewedAnswer`s.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum

FORMATS = ("sft", "dpo", "kto")


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: str  # accept | reject | rewrite
    rewrite: str | None = None
    preferred_message_id: str | None = None


class ImplicitSignal(str, Enum):
    """What a user did instead of rating: asked for another answer, or stopped this one."""
    REGENERATED = "regenerated"
    STOPPED = "stopped"


# KTO weight of an implicit negative (an explicit thumbs or verdict weighs 1 and overrides it):
# a regeneration says "not this one" fairly clearly; a stop may only mean "that is enough".
IMPLICIT_WEIGHTS = {ImplicitSignal.REGENERATED: 0.5, ImplicitSignal.STOPPED: 0.25}


@dataclass(frozen=True, slots=True)
class ReviewedAnswer:
    message_id: str
    prompt: list[dict]  # the conversation up to and including the user turn: [{role, content}]
    answer: str
    sibling_answers: dict[str, str] = field(default_factory=dict)  # other answers to the same prompt
    thumbs: str | None = None  # latest "up" | "down" | None
    corrections: tuple[str, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    completion: bool = False  # asked through /v1/completions (a plain-text prompt), not chat
    implicit: ImplicitSignal | None = None  # regenerated or stopped by its user


@dataclass(frozen=True, slots=True)
class Snapshot:
    files: dict[str, str]  # format -> JSONL text
    counts: dict[str, int]
    content_hash: str  # sha256 hex over all three files


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def _styled(item: ReviewedAnswer, record: dict) -> dict:
    """Completion-endpoint records say so: they train and evaluate as plain text, not chat."""
    return {**record, "style": "completion"} if item.completion else record


def _sft_records(item: ReviewedAnswer) -> list[dict]:
    targets = [(c, "correction") for c in item.corrections if c.strip()]
    targets += [(v.rewrite, "rewrite") for v in item.verdicts if v.verdict == "rewrite" and v.rewrite]
    if any(v.verdict == "accept" for v in item.verdicts):
        targets.append((item.answer, "accepted"))
    return [_styled(item, {"messages": item.prompt + _assistant(t), "source": source})
            for t, source in targets]


def _dpo_records(item: ReviewedAnswer) -> list[dict]:
    pairs: list[tuple[str, str]] = []
    better = [c for c in item.corrections if c.strip()]
    better += [v.rewrite for v in item.verdicts if v.verdict == "rewrite" and v.rewrite]
    pairs += [(b, item.answer) for b in better if b != item.answer]
    answers = {item.message_id: item.answer, **item.sibling_answers}
    for verdict in item.verdicts:
        chosen = answers.get(verdict.preferred_message_id or "")
        if chosen is None:
            continue
        pairs += [(chosen, other) for mid, other in answers.items()
                  if mid != verdict.preferred_message_id and other != chosen]
    return [_styled(item, {"prompt": item.prompt, "chosen": _assistant(c), "rejected": _assistant(r)})
            for c, r in pairs]


def _kto_records(item: ReviewedAnswer) -> list[dict]:
    good = sum(v.verdict == "accept" for v in item.verdicts)
    bad = sum(v.verdict in ("reject", "rewrite") for v in item.verdicts)
    if good != bad:
        desirable = good > bad
    elif item.thumbs in ("up", "down"):
        desirable = item.thumbs == "up"
    elif item.implicit is not None:
        return [_styled(item, {"prompt": item.prompt, "completion": _assistant(item.answer),
                               "label": False, "signal": item.implicit.value,
                               "weight": IMPLICIT_WEIGHTS[item.implicit]})]
    else:
        return []
    return [_styled(item, {"prompt": item.prompt, "completion": _assistant(item.answer),
                           "label": desirable})]


def _jsonl(records: list[dict]) -> str:
    lines = sorted({json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")) for r in records})
    return "".join(line + "\n" for line in lines)


def build_snapshot(items: list[ReviewedAnswer]) -> Snapshot:
    """Turn reviewed answers into the three JSONL files, their line counts and a content hash."""
    builders = {"sft": _sft_records, "dpo": _dpo_records, "kto": _kto_records}
    files = {name: _jsonl([r for item in items for r in build(item)]) for name, build in builders.items()}
    digest = hashlib.sha256()
    for name in FORMATS:
        digest.update(f"{name}\n".encode())
        digest.update(files[name].encode("utf-8"))
    counts = {name: files[name].count("\n") for name in FORMATS}
    return Snapshot(files=files, counts=counts, content_hash=digest.hexdigest())
