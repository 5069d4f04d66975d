"""Split a dataset snapshot into train and eval *by prompt group*, so the eval side measures
whether a candidate generalizes what users taught to phrasings it never trained on.

The rule (README "The flywheel"):
- A prompt's text is its turns joined and normalized (NFKC, lower case, words of letters and
  digits). Its shingles are word pairs, with start and end markers.
- Two prompts are near-duplicates when the Jaccard overlap of their shingles is at least
  NEAR_DUPLICATE (0.75): the same question asked again, a word added or changed ("What is the
  capital of Zorbia?" / "What is the capital of Zorbia, please?").
- Two prompts expecting the same reference answer are one group when they overlap at least
  SAME_ANSWER_OVERLAP (0.5): a re-asking reworded a little ("What is the capital of Zorbia?" /
  "what's the capital of zorbia"). A genuinely different phrasing of the same fact ("Which city
  is the seat of government in Zorbia?") stays separable: an eval item is then a prompt no
  training example resembles, a fact asked in a way it was never taught. (Grouping every prompt
  with one answer together would put every prompt a refusal style was taught on into one group,
  and every held-out fact would be one never taught, which no model can answer. Grouping one
  template asked about different subjects — tried first — held out one whole phrasing: a small
  model that carried the facts to three phrasings but not to that one was judged to have learned
  nothing.)
- Groups are formed by leader clustering in a stable order (each prompt joins the first group
  whose leader it matches), which avoids the chaining of transitive closure where A~B~C~...
  merges a whole snapshot into one group.
- The eval side takes whole groups in the order of a salted SHA-256 of their leader, each one
  that still fits under `eval_fraction` of the prompts (the smallest group when none fits); it
  never takes every group. Groups whose reference answers another group still teaches go first
  (the fact is held out in one phrasing, taught in another), then any group. Groups that teach (a correction, rewrite or preference) and groups
  that only hold liked answers are held out separately, so the taught skill always has eval
  items when it has two groups or more. The salt is the snapshot's content hash, so each
  iteration holds out different groups.
- Teaching groups that are all in the base version's own snapshot (`taught_before`: what earlier
  iterations taught, held out then or not) are never held out: they are replayed in training, so
  earlier skills are rehearsed instead of a quarter of them being left out each time, and the
  gate guards them as production's good answers (regression, not gain). The eval side measures
  what this iteration's feedback newly teaches, with `eval_fraction` of its own prompts, instead
  of a share that shrinks with every earlier skill (none at all when a few big template groups
  of old skills fill the target). A correction held out once is trained on the next iteration.
"""
from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field

NEAR_DUPLICATE = 0.75
SAME_ANSWER_OVERLAP = 0.5
_WORD = re.compile(r"[^\W_]+")


def normalize(text: str) -> str:
    """Lower-cased words of letters and digits, single-spaced (NFKC first)."""
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", text).lower()))


def shingles(text: str) -> frozenset[str]:
    words = ["^", *normalize(text).split(), "$"]
    return frozenset(f"{a} {b}" for a, b in zip(words, words[1:]))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass(frozen=True, slots=True)
class PromptKey:
    """What grouping looks at: the prompt's text and the answer it is expected to give."""
    text: str
    answer: str | None = None
    teaches: bool = False  # a correction, rewrite or preference was given on this prompt
    taught_before: bool = False  # it already taught the base version (in the base's snapshot)

    @property
    def shingles(self) -> frozenset[str]:
        return shingles(self.text)


@dataclass(slots=True)
class _Group:
    leader: PromptKey
    leader_shingles: frozenset[str]
    answers: set[str] = field(default_factory=set)

    def accepts(self, key: PromptKey, key_shingles: frozenset[str]) -> bool:
        overlap = jaccard(self.leader_shingles, key_shingles)
        if overlap >= NEAR_DUPLICATE:
            return True
        answer = normalize(key.answer) if key.answer else None
        return bool(answer) and answer in self.answers and overlap >= SAME_ANSWER_OVERLAP


def group_prompts(keys: list[PromptKey]) -> list[int]:
    """The group index of each key (groups numbered in order of first appearance)."""
    order = sorted(range(len(keys)), key=lambda i: (normalize(keys[i].text), keys[i].answer or ""))
    groups: list[_Group] = []
    raw = [0] * len(keys)
    for i in order:
        key = keys[i]
        key_shingles = key.shingles
        found = next((n for n, g in enumerate(groups) if g.accepts(key, key_shingles)), None)
        if found is None:
            found = len(groups)
            groups.append(_Group(key, key_shingles))
        raw[i] = found
        if key.answer:
            groups[found].answers.add(normalize(key.answer))
    renumber: dict[int, int] = {}  # stable numbering: by first appearance in the input
    return [renumber.setdefault(g, len(renumber)) for g in raw]


def eval_groups(keys: list[PromptKey], assignment: list[int], eval_fraction: float,
                salt: str) -> set[int]:
    """Which groups form the eval side (see the module docstring). Groups that newly teach (hold
    a correction or a preference not in the base's snapshot) and groups that do not teach are held
    out separately, each to `eval_fraction` of its prompts: the newly taught skill needs eval items
    of its own. Groups that taught the base already are never held out."""
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    teaching = {g for key, g in zip(keys, assignment) if key.teaches}
    new = {g for key, g in zip(keys, assignment) if key.teaches and not key.taught_before}
    chosen: set[int] = set()
    for stratum in (new, set(assignment) - teaching):
        members = [(key, g) for key, g in zip(keys, assignment) if g in stratum]
        chosen |= _hold_out(members, eval_fraction, salt)
    return chosen


def _hold_out(members: list[tuple[PromptKey, int]], eval_fraction: float, salt: str) -> set[int]:
    sizes: dict[int, int] = {}
    leaders: dict[int, str] = {}
    answers: dict[int, set[str]] = {}
    for key, g in members:
        sizes[g] = sizes.get(g, 0) + 1
        leaders.setdefault(g, normalize(key.text))
        answers.setdefault(g, set()).update([normalize(key.answer)] if key.answer else [])
    if len(sizes) < 2 or eval_fraction == 0.0:
        return set()
    target = eval_fraction * len(members)
    ranked = sorted(sizes, key=lambda g: hashlib.sha256(f"{salt}\n{leaders[g]}".encode()).hexdigest())
    left_in_train: dict[str, int] = {}
    for g in ranked:
        for answer in answers[g]:
            left_in_train[answer] = left_in_train.get(answer, 0) + 1
    chosen: set[int] = set()
    held = 0
    # First the groups whose answers stay taught by another group (a fact asked another way),
    # then any group: in salted order, each that still fits under the target.
    for keeps_answers_taught in (True, False):
        for g in ranked:
            if g in chosen or held + sizes[g] > target:
                continue
            if keeps_answers_taught and any(left_in_train[a] < 2 for a in answers[g]):
                continue
            chosen.add(g)
            held += sizes[g]
            for answer in answers[g]:
                left_in_train[answer] -= 1
    if not chosen:  # every group is bigger than the target: hold out the smallest one
        chosen.add(min(ranked, key=lambda g: sizes[g]))
    return chosen


# ---- snapshot records ------------------------------------------------------------------------
def prompt_of(record: dict) -> list[dict]:
    """The prompt messages of a record of any format (SFT: all but the final answer)."""
    return record["prompt"] if "prompt" in record else record["messages"][:-1]


def reference_of(record: dict) -> str | None:
    """The answer a record says is right: an SFT target, a DPO chosen, a desirable KTO."""
    if "messages" in record:
        return record["messages"][-1]["content"]
    if "chosen" in record:
        return record["chosen"][-1]["content"]
    if record.get("label"):
        return record["completion"][-1]["content"]
    return None


def teaches_skill(record: dict) -> bool:
    """Does the record say what the answer should have been (not only that it was good)?"""
    if "chosen" in record:
        return True
    return "messages" in record and record.get("source", "correction") != "accepted"


def prompt_text(messages: list[dict]) -> str:
    return "\n".join(m["content"] for m in messages)


@dataclass(frozen=True, slots=True)
class SnapshotSplit:
    train: dict[str, list[dict]]
    eval: dict[str, list[dict]]
    num_groups: int
    num_eval_groups: int
    taught_before: frozenset[str] = frozenset()  # prompt ids that already taught the base version


def prompt_id(record: dict) -> str:
    return json.dumps(prompt_of(record), sort_keys=True, ensure_ascii=False)


def teaching_prompt_ids(records: dict[str, list[dict]]) -> frozenset[str]:
    """The prompts that teach in a snapshot (`taught_before` of a later snapshot's split)."""
    return frozenset(prompt_id(r) for fmt in records.values() for r in fmt if teaches_skill(r))


def split_snapshot(records: dict[str, list[dict]], eval_fraction: float, salt: str,
                   taught_before: frozenset[str] = frozenset()) -> SnapshotSplit:
    """Every record of every format goes to the side of its prompt's group. `taught_before`: the
    teaching prompt ids of the base version's own snapshot (see the module docstring)."""
    prompts: dict[str, PromptKey] = {}
    for fmt_records in records.values():
        for record in fmt_records:
            pid = prompt_id(record)
            known = prompts.get(pid)
            answer = (known.answer if known else None) or reference_of(record)
            teaches = (known is not None and known.teaches) or teaches_skill(record)
            prompts[pid] = PromptKey(prompt_text(prompt_of(record)), answer, teaches,
                                     pid in taught_before)
    ids = list(prompts)
    keys = [prompts[i] for i in ids]
    assignment = group_prompts(keys)
    held = eval_groups(keys, assignment, eval_fraction, salt)
    side = {pid: assignment[n] in held for n, pid in enumerate(ids)}

    def is_eval(record: dict) -> bool:
        return side[prompt_id(record)]

    return SnapshotSplit(
        train={k: [r for r in v if not is_eval(r)] for k, v in records.items()},
        eval={k: [r for r in v if is_eval(r)] for k, v in records.items()},
        num_groups=len(set(assignment)), num_eval_groups=len(held), taught_before=taught_before)
