"""Chat messages -> token-id training examples, through the model's own chat template.

The loss covers assistant turns only. Completion ids are "render(prompt + answer) minus
render(prompt with generation prompt)", so they are exactly what the model emits at serving time.
"""
from __future__ import annotations

from framework.train import KTOExample, PreferenceExample, SFTExample


def split_completion(tokenizer, prompt: list[dict], answer: str) -> tuple[list[int], list[int]]:
    """(prompt ids ending in the assistant header, answer ids ending in the end-of-turn)."""
    prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True)
    full_ids = tokenizer.apply_chat_template(
        [*prompt, {"role": "assistant", "content": answer}], add_generation_prompt=False)
    if full_ids[:len(prompt_ids)] != prompt_ids or len(full_ids) <= len(prompt_ids):
        raise ValueError("chat template does not render the prompt as a prefix of the full chat")
    return prompt_ids, full_ids[len(prompt_ids):]


def sft_example(tokenizer, messages: list[dict], max_tokens: int | None = None) -> SFTExample:
    """Every assistant turn of `messages` is a target; the rest is context."""
    ids: list[int] = []
    mask: list[int] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt_ids, answer_ids = split_completion(tokenizer, messages[:i], message["content"])
        if prompt_ids[:len(ids)] != ids:
            raise ValueError("chat template re-renders earlier turns differently")
        mask += [0] * (len(prompt_ids) - len(ids)) + [1] * len(answer_ids)
        ids = prompt_ids + answer_ids
    if not any(mask):
        raise ValueError("conversation has no assistant turn to learn from")
    if max_tokens is not None:
        ids, mask = ids[:max_tokens], mask[:max_tokens]
    return SFTExample(ids, mask)


def preference_example(tokenizer, prompt: list[dict], chosen: str, rejected: str) -> PreferenceExample:
    prompt_ids, chosen_ids = split_completion(tokenizer, prompt, chosen)
    _, rejected_ids = split_completion(tokenizer, prompt, rejected)
    return PreferenceExample(prompt_ids, chosen_ids, rejected_ids)


def kto_example(tokenizer, prompt: list[dict], completion: str, desirable: bool) -> KTOExample:
    prompt_ids, completion_ids = split_completion(tokenizer, prompt, completion)
    return KTOExample(prompt_ids, completion_ids, desirable)
