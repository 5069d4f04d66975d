"""Offline batch generation in vLLM's shape: `LLM(model=DIR).generate(prompts, params)` and
`LLM.chat(conversations, params)`.

All prompts go into one engine at once; continuous batching does the rest. Outputs come back in
input order, each with its n completions. `chat` renders each conversation as the server does (the
model's chat template, or the server's default layout for models without one).
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Iterator, Mapping, Sequence

from shared import DeviceProfile, EngineConfig, LoRARequest, RequestOutput, SamplingParams
from shared import TokenizerLike

logger = logging.getLogger(__name__)

_ENGINE_FIELDS = {f.name for f in dataclasses.fields(EngineConfig)}


class LLM:
    """An engine over one loaded model. Engine options are `EngineConfig` fields."""

    def __init__(self, model: str, *, dtype: str | None = None, seed: int | None = None, device: str = "auto",
                 device_profile: DeviceProfile | None = None, tensor_parallel_size: int = 1,
                 warmup: bool = True, **engine_options):
        """`tensor_parallel_size` > 1 splits the model over that many processes (one per GPU, or
        CPU processes talking gloo); `shutdown()` stops them (they also end with this process).
        `warmup` (default): run throwaway requests first (a full token budget step, decode steps
        of 8..1 rows) so the first real workload pays none of the process's one-time costs
        (`framework.engine.warmup`: 1.06x -> 0.98x the second run's CPU time, ~1-4 s here)."""
        from model.loader import load_model

        config = _engine_config(engine_options, dtype=dtype or "auto", seed=seed, device=device)
        if tensor_parallel_size != 1:
            self._start_tensor_parallel(model, config, device_profile, tensor_parallel_size)
            return
        dtype, device = None if config.dtype == "auto" else config.dtype, _device(config.device)
        loaded = load_model(model, dtype=dtype, device=device)
        spec = config.speculative_config  # vLLM's speculative_config={"model": DRAFT_DIR, ...}
        draft = (load_model(spec.model, dtype=dtype, device=device).model
                 if spec is not None and spec.model else None)
        self._start(loaded.model, loaded.tokenizer, config, device_profile, draft)
        if warmup:
            from framework.engine.warmup import warm_up

            logger.info("warm-up took %.1fs", warm_up(self.engine))

    @classmethod
    def from_loaded(cls, loaded_model, *, seed: int | None = None, device_profile: DeviceProfile | None = None,
                    draft_model=None, **engine_options) -> LLM:
        """Wrap a `model.loader.LoadedModel` (or anything with `.model` and `.tokenizer`);
        `draft_model`: a loaded model for speculative_config's draft_model method."""
        llm = cls.__new__(cls)
        llm._start(loaded_model.model, loaded_model.tokenizer,
                   _engine_config(engine_options, seed=seed), device_profile, draft_model)
        return llm

    def _start(self, model, tokenizer: TokenizerLike, config: EngineConfig,
               device_profile: DeviceProfile | None, draft_model=None) -> None:
        from framework.engine import LLMEngine

        # With a profile the engine's stats carry MFU/MBU (e.g. chip.device.detect_profile()).
        self.engine = LLMEngine(model, tokenizer, config, device_profile, draft_model=draft_model)
        self._ids = itertools.count()

    def _start_tensor_parallel(self, model_dir: str, config: EngineConfig,
                               device_profile: DeviceProfile | None, size: int) -> None:
        from app.serving.tensor_parallel import start_tensor_parallel

        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"tensor_parallel_size must be a positive int, got {size!r}")
        self._tensor_parallel = start_tensor_parallel(model_dir, config, size, device_profile)
        self.engine = self._tensor_parallel.engine
        self._ids = itertools.count()

    def shutdown(self) -> None:
        """Stop the tensor-parallel workers, if any (idempotent)."""
        group = getattr(self, "_tensor_parallel", None)
        if group is not None:
            group.close()

    def get_tokenizer(self) -> TokenizerLike:
        return self.engine.tokenizer

    def generate(self, prompts: str | Sequence[str] | Sequence[Sequence[int]],
                 sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
                 use_tqdm: bool = True,
                 lora_request: LoRARequest | Sequence[LoRARequest | None] | None = None,
                 ) -> list[RequestOutput]:
        """Generate for every prompt; returns one finished RequestOutput per prompt, in order.
        `lora_request` (with enable_lora=True): one adapter for all prompts, or one per prompt
        (None: the base model); requests for different adapters share the engine's steps.

        Every prompt and parameter set is validated before any is queued (ValueError)."""
        prompts = _as_prompt_list(prompts)
        params = _as_params_list(sampling_params, len(prompts))
        loras = _as_lora_list(lora_request, len(prompts))
        states = [self.engine.make_request(f"llm-{next(self._ids)}", prompt, p, lora_request=lora)
                  for prompt, p, lora in zip(prompts, params, loras)]
        for state in states:
            self.engine.enqueue(state)
        try:
            finished = self._run([s.request_id for s in states], use_tqdm)
        except BaseException:  # interrupted: leave nothing running in the engine
            for state in states:
                self.engine.abort(state.request_id)
            raise
        return [finished[s.request_id] for s in states]

    def chat(self, messages: Sequence[Mapping] | Sequence[Sequence[Mapping]],
             sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
             use_tqdm: bool = True,
             lora_request: LoRARequest | Sequence[LoRARequest | None] | None = None,
             *, tools: Sequence[Mapping] | None = None, tool_choice: str | Mapping | None = None,
             parallel_tool_calls: bool | None = None,
             chat_template_kwargs: Mapping | None = None) -> list[RequestOutput]:
        """Answer one conversation (a list of {"role", "content"} messages) or a list of them;
        returns one finished RequestOutput per conversation, in order, its `prompt` the rendered
        text. Every conversation is rendered and validated before any is queued (ValueError).

        `tools` (OpenAI function definitions) are rendered through the model's chat template
        (or the Hermes layout); `tool_choice` "required" or {"type": "function", "function":
        {"name": ...}} forces a call whose arguments fit the function's schema. The outputs are
        raw text, as vLLM's: `parse_tool_calls` reads the calls out of one.
        `chat_template_kwargs`: extra template variables."""
        from app.serving.chat_template import render_prompt_ids
        from app.tool_calls import ToolPlan, parse_tool_request

        tokenizer = self.get_tokenizer()
        plan = ToolPlan.for_tokenizer(
            tokenizer, parse_tool_request(tools, tool_choice, parallel_tool_calls))
        template_kwargs = dict(chat_template_kwargs) if chat_template_kwargs else None
        rendered = [render_prompt_ids(tokenizer, conversation, plan.rendered_tools,
                                      template_kwargs)
                    for conversation in _as_conversations(messages)]
        params = _with_constraint(_as_params_list(sampling_params, len(rendered)),
                                  plan.constraint())
        if plan.keeps_special_tokens:  # Mistral's [TOOL_CALLS] is a special token
            params = [dataclasses.replace(p, skip_special_tokens=False) for p in params]
        outputs = self.generate(rendered, params, use_tqdm, lora_request)
        for output in outputs:
            output.prompt = tokenizer.decode(output.prompt_token_ids, skip_special_tokens=False)
        return outputs

    def parse_tool_calls(self, text: str):
        """An answer's content and tool calls (`app.tool_calls.ParsedMessage`), read in this
        model's tool-call format, as the server's `message.tool_calls`."""
        from app.tool_calls import ToolFormat, template_tools
        from app.tool_calls.formats import parser_for
        from app.tool_calls.parsing import message_from

        tool_format: ToolFormat = template_tools(
            getattr(self.get_tokenizer(), "chat_template", None)).format
        return message_from(parser_for(tool_format), text)

    def stream(self, prompt: str | Sequence[int], sampling_params: SamplingParams | None = None
               ) -> Iterator[RequestOutput]:
        """Run one request, yielding its snapshot after every engine step that advanced it (the last
        one finished). Closing the iterator early aborts the request."""
        state = self.engine.make_request(f"llm-{next(self._ids)}", _as_prompt_list(prompt)[0],
                                         sampling_params or SamplingParams())
        self.engine.enqueue(state)
        finished = False
        try:
            while not finished:
                for output in self.engine.step():
                    if output.request_id == state.request_id:
                        finished = output.finished
                        yield output
        finally:
            if not finished:
                self.engine.abort(state.request_id)

    def _run(self, request_ids: list[str], use_tqdm: bool) -> dict[str, RequestOutput]:
        from tqdm.auto import tqdm

        finished: dict[str, RequestOutput] = {}
        wanted = set(request_ids)
        with tqdm(total=len(request_ids), desc="Generating", unit="req", disable=not use_tqdm) as bar:
            while not wanted.issubset(finished):
                for output in self.engine.step():
                    if output.finished and output.request_id in wanted:
                        finished[output.request_id] = output
                        bar.update(1)
                bar.set_postfix(running=len(self.engine.scheduler.running), refresh=False)
        return finished


def _engine_config(options: dict, **fixed) -> EngineConfig:
    unknown = set(options) - _ENGINE_FIELDS
    if unknown:
        raise ValueError(f"unknown engine option(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(_ENGINE_FIELDS))}")
    return EngineConfig(**{**options, **{k: v for k, v in fixed.items() if k in _ENGINE_FIELDS}})


def _as_prompt_list(prompts) -> list[str | list[int]]:
    if isinstance(prompts, str):
        return [prompts]
    prompts = list(prompts)
    if prompts and all(isinstance(t, int) for t in prompts):
        return [prompts]  # one prompt given as token ids
    if not all(isinstance(p, str) or isinstance(p, (list, tuple)) for p in prompts):
        raise ValueError("prompts must be a string, a list of strings or a list of token-id lists")
    return [p if isinstance(p, str) else list(p) for p in prompts]


def _as_conversations(messages) -> list[list[dict]]:
    """One conversation or a list of them -> a list of conversations of plain message dicts, with
    OpenAI-style content parts ([{"type": "text", "text": ...}]) joined into one string."""
    messages = list(messages)
    if not messages:
        raise ValueError("messages must be a non-empty list of messages or of conversations")
    single = isinstance(messages[0], Mapping)
    if not single and not all(isinstance(c, (list, tuple)) for c in messages):
        raise ValueError("messages must be a list of message dicts or a list of such lists")
    conversations = [messages] if single else [list(c) for c in messages]
    result = []
    for i, conversation in enumerate(conversations):
        if not conversation:
            raise ValueError(f"conversation {i} has no messages")
        result.append([_message(m, i, j) for j, m in enumerate(conversation)])
    return result


def _message(message, conversation: int, index: int) -> dict:
    where = f"conversation {conversation}, message {index}"
    if not isinstance(message, Mapping):
        raise ValueError(f"{where}: a message is a dict with role and content, got "
                         f"{type(message).__name__}")
    role, content = message.get("role"), message.get("content")
    if not isinstance(role, str) or not role:
        raise ValueError(f"{where}: role must be a non-empty string, got {role!r}")
    if content is None and message.get("tool_calls"):
        content = ""  # an assistant turn that only calls tools
    if isinstance(content, list):
        if not all(isinstance(p, Mapping) and p.get("type") == "text"
                   and isinstance(p.get("text"), str) for p in content):
            raise ValueError(f"{where}: only text content parts are supported")
        content = "".join(p["text"] for p in content)
    if not isinstance(content, str):
        raise ValueError(f"{where}: content must be a string or text parts, got "
                         f"{type(content).__name__}")
    return {**message, "role": role, "content": content}


def _as_params_list(params, count: int) -> list[SamplingParams]:
    if params is None or isinstance(params, SamplingParams):
        return [params or SamplingParams()] * count
    params = list(params)
    if len(params) != count:
        raise ValueError(f"got {len(params)} sampling params for {count} prompts")
    return params


def _with_constraint(params: list[SamplingParams], constraint) -> list[SamplingParams]:
    """The forced tool call's grammar on every request (ValueError when one has its own)."""
    if constraint is None:
        return params
    if any(p.structured_outputs is not None for p in params):
        raise ValueError("tool_choice forces a function call; sampling_params.structured_outputs "
                         "constrains the output too; use one")
    return [dataclasses.replace(p, structured_outputs=constraint) for p in params]


def _as_lora_list(lora_request, count: int) -> list[LoRARequest | None]:
    if lora_request is None or isinstance(lora_request, LoRARequest):
        return [lora_request] * count
    loras = list(lora_request)
    if len(loras) != count or not all(x is None or isinstance(x, LoRARequest) for x in loras):
        raise ValueError(f"lora_request must be a LoRARequest or one (or None) per prompt; got "
                         f"{len(loras)} for {count} prompts")
    return loras


def _device(name: str) -> str:
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
