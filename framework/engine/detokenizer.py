"""Incremental text for one sample, and the stop conditions that end it.

Text grows by decoding a small window of ids and taking what the newest token added, so a token
whose bytes complete a character only appears once the character is whole. Stop strings are
matched across token boundaries; while a sample runs, the tail that could still become a stop
string is held back, so a partial stop string is never shown.
"""
from __future__ import annotations

from shared import SamplingParams, TokenizerLike

_PROMPT_CONTEXT_TOKENS = 5  # prompt ids decoded along with the first outputs (leading spaces)


class Detokenizer:
    def __init__(self, tokenizer: TokenizerLike, prompt_token_ids: list[int], params: SamplingParams,
                 eos_token_ids: list[int], max_num_tokens: int):
        self.tokenizer, self.params = tokenizer, params
        self.eos_token_ids = set() if params.ignore_eos else set(eos_token_ids)
        self.stop_token_ids = set(params.stop_token_ids)
        self.max_output_tokens = min(params.max_tokens or max_num_tokens,
                                     max_num_tokens - len(prompt_token_ids))
        self.max_stop_len = max((len(s) for s in params.stop), default=0)
        self.ids = list(prompt_token_ids[-_PROMPT_CONTEXT_TOKENS:])
        self.prefix_offset, self.read_offset = 0, len(self.ids)
        self.text = ""
        self.num_output_tokens = 0
        self.finish_reason: str | None = None
        self.stop_reason: int | str | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def add_token(self, token_id: int) -> None:
        """Account one generated token: extend the text, then check every stop condition."""
        assert not self.finished, "token added to a finished sample"
        self.num_output_tokens += 1
        past_min = self.num_output_tokens >= self.params.min_tokens
        if past_min and token_id in self.stop_token_ids:
            self.finish_reason, self.stop_reason = "stop", token_id
        elif past_min and token_id in self.eos_token_ids:
            self.finish_reason = "stop"
        else:
            delta = self._decode_next(token_id)
            if past_min and self.params.stop and delta:
                self._check_stop_strings(len(delta))
        if not self.finished and self.num_output_tokens >= self.max_output_tokens:
            self.finish_reason = "length"

    def abort(self) -> None:
        self.finish_reason = "abort"

    def visible_text(self) -> str:
        """Text safe to show now: all of it once finished, else without a possible stop prefix."""
        if self.finished or not self.params.stop:
            return self.text
        for held in range(min(len(self.text), self.max_stop_len - 1), 0, -1):
            tail = self.text[-held:]
            if any(stop.startswith(tail) for stop in self.params.stop):
                return self.text[:-held]
        return self.text

    def _decode_next(self, token_id: int) -> str:
        self.ids.append(token_id)
        skip = self.params.skip_special_tokens
        before = self.tokenizer.decode(self.ids[self.prefix_offset:self.read_offset], skip_special_tokens=skip)
        after = self.tokenizer.decode(self.ids[self.prefix_offset:], skip_special_tokens=skip)
        if len(after) <= len(before) or after.endswith("\ufffd"):
            return ""  # an incomplete character (or nothing visible) so far: wait for more bytes
        delta = after[len(before):]
        self.text += delta
        self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
        return delta

    def _check_stop_strings(self, delta_len: int) -> None:
        search_from = max(0, len(self.text) - delta_len - self.max_stop_len + 1)
        hits = [(self.text.find(stop, search_from), stop) for stop in self.params.stop]
        hits = [(index, stop) for index, stop in hits if index >= 0]
        if hits:
            index, stop = min(hits)
            self.text = self.text[:index]
            self.finish_reason, self.stop_reason = "stop", stop
