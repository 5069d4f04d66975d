"""Text <-> ids for a model directory, via `tokenizers` (tokenizer.json) or sentencepiece
(tokenizer.model). Implements `shared.TokenizerLike`.

BOS is added by this class, never by the backend's post-processor, so `encode(text, add_bos)` means
the same thing for both backends. Knows nothing about the model's weights.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from model.chat_template import TOKENIZER_CONFIG, load_chat_template, render_chat
from model.hf_config import read_json

TOKENIZER_JSON = "tokenizer.json"
SENTENCEPIECE_MODEL = "tokenizer.model"
_SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "pad_token")
_LLAMA_CLASSES = ("LlamaTokenizer", "LlamaTokenizerFast")


class Tokenizer:
    """A loaded tokenizer plus the special tokens and chat template that travel with it."""

    def __init__(self, backend: _Backend, special_tokens: dict[str, str],
                 eos_token_ids: list[int], chat_template: str | None = None):
        self._backend = backend
        self.special_tokens = special_tokens  # bos_token/eos_token/... strings, for chat templates
        bos = special_tokens.get("bos_token")
        self.bos_token_id: int | None = backend.token_to_id(bos) if bos else None
        self.eos_token_ids = list(eos_token_ids)
        self.vocab_size: int = backend.vocab_size
        self.chat_template = chat_template

    @classmethod
    def from_dir(cls, model_dir: str | Path, eos_token_ids: Sequence[int] = ()) -> Tokenizer:
        """Load tokenizer.json (preferred) or tokenizer.model, with tokenizer_config.json's special
        tokens. `eos_token_ids` (from the model config) come first; the tokenizer's eos is added."""
        model_dir = Path(model_dir)
        config_file = model_dir / TOKENIZER_CONFIG
        config = read_json(config_file) if config_file.is_file() else {}
        backend = _open_backend(model_dir, config)
        special = _special_tokens(config, backend)
        eos_ids = list(eos_token_ids)
        eos = special.get("eos_token")
        if eos and backend.token_to_id(eos) is not None and backend.token_to_id(eos) not in eos_ids:
            eos_ids.append(backend.token_to_id(eos))
        return cls(backend, special, eos_ids, load_chat_template(model_dir))

    @property
    def max_token_id(self) -> int:
        return self._backend.max_token_id

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        """Text -> ids, with BOS prepended when `add_bos` and the tokenizer has one."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a string, got {type(text).__name__}")
        ids = self._backend.encode(text) if text else []
        if add_bos and self.bos_token_id is not None:
            ids = [self.bos_token_id, *ids]
        return ids

    def decode(self, token_ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Ids -> text (special tokens dropped when `skip_special_tokens`)."""
        return self._backend.decode(list(token_ids), skip_special_tokens)

    def token_bytes(self) -> list[bytes]:
        """Per token id, the bytes it adds to decoded text (b"" for special tokens). A grammar
        engine needs this to know which tokens can continue a constrained output."""
        return self._backend.token_bytes()

    def apply_chat_template(self, messages: Sequence[dict], add_generation_prompt: bool = True,
                            tools: list[dict] | None = None,
                            template_kwargs: dict | None = None) -> list[int]:
        """Render `messages` with the model's template and encode the text. BOS is prepended only
        when the template does not already write it. `template_kwargs`: extra template variables
        (vLLM's chat_template_kwargs)."""
        if self.chat_template is None:
            raise ValueError("this model has no chat template (tokenizer_config.json chat_template "
                             "or chat_template.jinja)")
        text = render_chat(self.chat_template, messages, add_generation_prompt,
                           self.special_tokens, tools, template_kwargs)
        bos = self.special_tokens.get("bos_token")
        return self.encode(text, add_bos=not (bos and text.startswith(bos)))


class _Backend:
    """What Tokenizer needs from a tokenizer library."""

    vocab_size: int
    max_token_id: int

    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: list[int], skip_special_tokens: bool) -> str: ...
    def token_to_id(self, token: str) -> int | None: ...
    def id_to_token(self, token_id: int) -> str | None: ...
    def token_bytes(self) -> list[bytes]: ...


_RELEASE_GIL_CHARS = 20_000  # below this the batch call's thread hand-off costs more than it saves


class _HFTokenizersBackend(_Backend):
    def __init__(self, path: Path, tokenizer_config: dict):
        from tokenizers import Tokenizer as HFTokenizer

        try:
            self._tok = HFTokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises a bare Exception on bad JSON / unknown model
            raise ValueError(f"{path}: cannot load tokenizer ({e})") from e
        if (tokenizer_config.get("tokenizer_class") in _LLAMA_CLASSES
                and getattr(self._tok.model, "byte_fallback", False)):  # sentencepiece-style BPE
            _as_transformers_llama(self._tok, tokenizer_config)
        vocab = self._tok.get_vocab(with_added_tokens=True)
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self.max_token_id = max(vocab.values())

    def encode(self, text: str) -> list[int]:
        if len(text) >= _RELEASE_GIL_CHARS:
            # encode() holds the GIL for the whole call: a server thread tokenizing a long prompt
            # would stall the event loop (health checks, running streams) for seconds.
            # encode_batch releases it while the Rust side works; same ids.
            return self._tok.encode_batch([text], add_special_tokens=False)[0].ids
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int], skip_special_tokens: bool) -> str:
        return self._tok.decode(ids, skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self._tok.id_to_token(token_id)

    def token_bytes(self) -> list[bytes]:
        special = {i for i, t in self._tok.get_added_tokens_decoder().items() if t.special}
        byte_level = type(self._tok.decoder).__name__ == "ByteLevel"
        result = []
        for token_id in range(self.max_token_id + 1):
            piece = self._tok.id_to_token(token_id)
            if piece is None or token_id in special:
                result.append(b"")
            elif byte_level:
                result.append(bytes(_BYTE_LEVEL_DECODE.get(c, 0) for c in piece))
            else:
                result.append(_metaspace_bytes(piece))
        return result


class _SentencePieceBackend(_Backend):
    def __init__(self, path: Path):
        import sentencepiece

        self._sp = sentencepiece.SentencePieceProcessor()
        try:
            self._sp.Load(str(path))
        except (OSError, RuntimeError) as e:
            raise ValueError(f"{path}: cannot load sentencepiece model ({e})") from e
        self.vocab_size = self._sp.GetPieceSize()
        self.max_token_id = self.vocab_size - 1
        specials = [self._sp.IdToPiece(i) for i in range(self.vocab_size) if self._is_special(i)]
        # Control pieces written as text (chat templates write "<s>") are the tokens, as in HF.
        self._special_re = None
        if specials:
            self._special_re = re.compile("(" + "|".join(map(re.escape, specials)) + ")")

    def encode(self, text: str) -> list[int]:
        if self._special_re is None:
            return self._sp.EncodeAsIds(text)
        ids = []
        for index, part in enumerate(self._special_re.split(text)):
            if index % 2:
                ids.append(self._sp.PieceToId(part))
            elif part:
                ids += self._sp.EncodeAsIds(part)
        return ids

    def decode(self, ids: list[int], skip_special_tokens: bool) -> str:
        if skip_special_tokens:
            return self._sp.DecodeIds([i for i in ids if not self._is_special(i)])
        # sentencepiece drops control pieces; keep them as their text, decoding the runs between.
        parts, run = [], []
        for token_id in ids:
            if self._is_special(token_id):
                parts += [self._sp.DecodeIds(run), self._sp.IdToPiece(token_id)]
                run = []
            else:
                run.append(token_id)
        return "".join(parts + [self._sp.DecodeIds(run)])

    def token_to_id(self, token: str) -> int | None:
        token_id = self._sp.PieceToId(token)
        return token_id if self._sp.IdToPiece(token_id) == token else None

    def id_to_token(self, token_id: int) -> str | None:
        return self._sp.IdToPiece(token_id) if 0 <= token_id < self.vocab_size else None

    def token_bytes(self) -> list[bytes]:
        return [b"" if self._is_special(i) else _metaspace_bytes(self._sp.IdToPiece(i))
                for i in range(self.vocab_size)]

    def _is_special(self, token_id: int) -> bool:
        return self._sp.IsControl(token_id) or self._sp.IsUnknown(token_id)


def _byte_level_decode_table() -> dict[str, int]:
    """GPT-2 byte-level BPE writes each byte as one printable character: printable Latin-1 bytes
    stand for themselves, the others are shifted to code points from 256 up, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table = {chr(b): b for b in printable}
    shifted = 256
    for b in range(256):
        if b not in printable:
            table[chr(shifted)] = b
            shifted += 1
    return table


_BYTE_LEVEL_DECODE = _byte_level_decode_table()
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _metaspace_bytes(piece: str) -> bytes:
    """A sentencepiece-style piece: "▁" is a space, "<0xNN>" a byte-fallback byte."""
    match = _BYTE_PIECE.fullmatch(piece)
    if match:
        return bytes([int(match.group(1), 16)])
    return piece.replace("\u2581", " ").encode("utf-8")


def _as_transformers_llama(tok, tokenizer_config: dict) -> None:
    """transformers' LlamaTokenizer rebuilds the text pipeline around the stored BPE when it
    loads: no normalizer, a Metaspace that prefixes "▁" only at the start of the input (not after
    every special token) unless `legacy`, and a decoder that strips that prefix. Do the same, so
    the ids match."""
    from tokenizers import decoders, pre_tokenizers

    add_prefix_space = tokenizer_config.get("add_prefix_space")
    add_prefix_space = True if add_prefix_space is None else bool(add_prefix_space)
    scheme = "always" if tokenizer_config.get("legacy", False) else "first"
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme=scheme if add_prefix_space else "never", split=False)
    steps = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_prefix_space:
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    tok.decoder = decoders.Sequence(steps)


def _open_backend(model_dir: Path, tokenizer_config: dict) -> _Backend:
    if (model_dir / TOKENIZER_JSON).is_file():
        return _HFTokenizersBackend(model_dir / TOKENIZER_JSON, tokenizer_config)
    if (model_dir / SENTENCEPIECE_MODEL).is_file():
        return _SentencePieceBackend(model_dir / SENTENCEPIECE_MODEL)
    raise ValueError(f"{model_dir / TOKENIZER_JSON} not found (nor {SENTENCEPIECE_MODEL})")


def _special_tokens(config: dict, backend: _Backend) -> dict[str, str]:
    """bos/eos/unk/pad token strings from tokenizer_config.json (strings or {"content": ...})."""
    special = {}
    for name in _SPECIAL_NAMES:
        value = config.get(name)
        if isinstance(value, dict):
            value = value.get("content")
        if isinstance(value, str):
            special[name] = value
    if not config and isinstance(backend, _SentencePieceBackend):
        special.update(_sentencepiece_specials(backend))
    return special


def _sentencepiece_specials(backend: _SentencePieceBackend) -> dict[str, str]:
    sp = backend._sp
    ids = {"bos_token": sp.bos_id(), "eos_token": sp.eos_id(), "unk_token": sp.unk_id(),
           "pad_token": sp.pad_id()}
    return {name: sp.IdToPiece(i) for name, i in ids.items() if i >= 0}
