"""HTTP client the UI pages use: httpx for the Flywheel JSON API, the `openai` client for chat.

Every failure (API down, timeout, 4xx/5xx, unreadable body) becomes an `ApiError` with one readable
sentence, so pages show `st.error(str(e))` and never a traceback. The client knows nothing about
Streamlit; the pages own session state.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_API_URL = "http://127.0.0.1:8000"


def api_url_from_env() -> str:
    return os.environ.get("FLYWHEEL_API_URL", DEFAULT_API_URL).rstrip("/")


class ApiError(Exception):
    """A readable API failure; `status` is the HTTP code, or None when the API was not reached;
    `param` the request field an OpenAI-style error names."""

    def __init__(self, message: str, status: int | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param


@dataclass(slots=True)
class ChatIds:
    """What a chat stream carries besides the text drawn: the ids the API attaches to every
    chunk, the answer's raw text and its tool calls; filled while the stream is consumed."""
    conversation_id: str | None = None
    message_id: str | None = None
    model_version: str | None = None
    text: str = ""  # the answer's content as sent (the page draws it neutralized)
    # OpenAI's calls, joined from the deltas: {"id", "type", "function": {"name", "arguments"}}
    tool_calls: list[dict] = field(default_factory=list)

    def add_call_delta(self, entry: Any) -> None:
        """One `delta.tool_calls` entry: a call's first one has its id and name, later ones
        carry argument fragments (OpenAI's streaming shape)."""
        while entry.index >= len(self.tool_calls):
            self.tool_calls.append({"id": "", "type": "function",
                                    "function": {"name": "", "arguments": ""}})
        call = self.tool_calls[entry.index]
        call["id"] = entry.id or call["id"]
        if entry.function is not None:
            call["function"]["name"] += entry.function.name or ""
            call["function"]["arguments"] += entry.function.arguments or ""


# the server's context_length_exceeded message for a completion that does not fit (app/api/sampling)
_ROOM = re.compile(r"maximum context length is (\d+) tokens.*?\((\d+) in the prompt")


def completion_room(error: ApiError) -> int | None:
    """The tokens left for the answer when `error` refused max_tokens for not fitting the
    context; None for any other error (or no room at all)."""
    about_max_tokens = error.param in ("max_tokens", "max_completion_tokens")
    found = _ROOM.search(str(error)) if about_max_tokens else None
    room = int(found.group(1)) - int(found.group(2)) if found else 0
    return room if room > 0 else None


@dataclass(slots=True)
class Readiness:
    """What GET /ready said: not ready means degraded (store down, outbox full, model loading)."""
    ready: bool
    reasons: list[str] = field(default_factory=list)  # one sentence each, from the server


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


def _error_param(response: httpx.Response) -> str | None:
    try:
        param = response.json()["error"].get("param")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return param if isinstance(param, str) else None


@dataclass(slots=True)
class ApiClient:
    base_url: str = field(default_factory=api_url_from_env)
    token: str | None = None
    timeout_s: float = 30.0

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = httpx.request(method, f"{self.base_url}{path}", headers=self._headers(),
                                     timeout=self.timeout_s, **kwargs)
        except httpx.HTTPError as e:
            raise ApiError(f"The API at {self.base_url} is not reachable ({type(e).__name__}).") from e
        if response.status_code >= 400:
            raise ApiError(f"{_error_message(response)} (HTTP {response.status_code})",
                           response.status_code, _error_param(response))
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One JSON call; returns the decoded body (None for an empty one) or raises ApiError."""
        response = self._send(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as e:
            raise ApiError(f"The API answered {path} with something that is not JSON.") from e

    def text(self, path: str) -> str:
        """A plain-text download (dataset JSONL files)."""
        return self._send("GET", path).text

    def readiness(self) -> Readiness | None:
        """The server's /ready verdict; None when it cannot say (API down: the pages already
        report that, or a server without /ready)."""
        try:
            response = httpx.get(f"{self.base_url}/ready", timeout=min(self.timeout_s, 3.0))
            body = response.json() if response.status_code in (200, 503) else None
        except (httpx.HTTPError, ValueError):
            return None
        if not isinstance(body, dict) or not isinstance(body.get("ready"), bool):
            return None
        return Readiness(ready=body["ready"], reasons=[str(r) for r in body.get("reasons") or []])

    # -- auth ------------------------------------------------------------------------------------
    def login(self, username: str, password: str) -> dict:
        return self.request("POST", "/v1/auth/login", json={"username": username, "password": password})

    def auth_status(self) -> dict | None:
        """{"login_required", "needs_admin"} from the server; None when it cannot say (API down:
        the pages report that, or a server without the route)."""
        try:
            return self.request("GET", "/v1/auth/status")
        except ApiError:
            return None

    def setup_admin(self, username: str, password: str) -> dict:
        """Create the first admin account (a new install) and sign it in: {"token", "role", ...}."""
        return self.request("POST", "/v1/auth/setup", json={"username": username, "password": password})

    # -- chat ------------------------------------------------------------------------------------
    def models(self) -> list[str]:
        return [m["id"] for m in self.model_cards()]

    def model_cards(self) -> list[dict]:
        """GET /v1/models entries: id, version, status (and canary on the public name)."""
        return self.request("GET", "/v1/models").get("data", [])

    def conversations(self) -> list[dict]:
        return self.request("GET", "/v1/conversations").get("data", [])

    def conversation(self, conversation_id: str) -> dict:
        return self.request("GET", f"/v1/conversations/{conversation_id}")

    def delete_conversation(self, conversation_id: str) -> None:
        self.request("DELETE", f"/v1/conversations/{conversation_id}")

    def stream_chat(self, messages: list[dict], ids: ChatIds, *, model: str, sampling: dict,
                    extra: dict) -> Iterator[str]:
        """Yield answer text as it streams; fills `ids` from the chunks (their extra fields, the
        raw text, tool-call deltas). `extra` fields go into the body as they are (`tools`,
        `tool_choice`, the conversation fields)."""
        import openai  # here, not at the top: it adds seconds to the UI's first paint

        # Without a token no Authorization header is sent (an open server acts as its local user).
        client = openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=self.token or "unused",
                               timeout=self.timeout_s, max_retries=0)
        no_auth = None if self.token else {"Authorization": openai.Omit()}
        try:
            stream = client.chat.completions.create(model=model, messages=messages, stream=True,
                                                    extra_body={k: v for k, v in extra.items() if v is not None},
                                                    extra_headers=no_auth, **sampling)
            for chunk in stream:
                fields = chunk.model_extra or {}
                ids.conversation_id = fields.get("conversation_id", ids.conversation_id)
                ids.message_id = fields.get("message_id", ids.message_id)
                ids.model_version = fields.get("model_version", ids.model_version)
                delta = chunk.choices[0].delta if chunk.choices else None
                for entry in (delta.tool_calls or ()) if delta else ():
                    ids.add_call_delta(entry)
                if delta and delta.content:
                    ids.text += delta.content
                    yield delta.content
        except openai.APIConnectionError as e:
            raise ApiError(f"The API at {self.base_url} is not reachable.") from e
        except openai.APIStatusError as e:
            raise ApiError(f"{_error_message(e.response)} (HTTP {e.status_code})", e.status_code,
                           _error_param(e.response)) from e

    def send_feedback(self, message_id: str, **fields: Any) -> dict:
        return self.request("POST", "/v1/feedback", json={"message_id": message_id, **fields})

    # -- review and datasets ---------------------------------------------------------------------
    def review_queue(self, **filters: Any) -> list[dict]:
        params = {k: v for k, v in filters.items() if v not in (None, "", [])}
        return self.request("GET", "/v1/review/queue", params=params).get("data", [])

    def siblings(self, message_id: str) -> list[dict]:
        return self.request("GET", f"/v1/review/siblings/{message_id}").get("data", [])

    def label(self, message_id: str, verdict: str, rewrite: str | None = None,
              preferred_message_id: str | None = None) -> dict:
        body = {"message_id": message_id, "verdict": verdict, "rewrite": rewrite,
                "preferred_message_id": preferred_message_id}
        return self.request("POST", "/v1/review/labels", json=body)

    def agreement(self) -> dict:
        return self.request("GET", "/v1/review/agreement")

    def create_snapshot(self) -> dict:
        return self.request("POST", "/v1/datasets/snapshots", json={})

    def snapshots(self) -> list[dict]:
        return self.request("GET", "/v1/datasets/snapshots").get("data", [])

    def snapshot_file(self, snapshot_id: str, kind: str) -> str:
        return self.text(f"/v1/datasets/snapshots/{snapshot_id}/{kind}.jsonl")

    # -- models and report -----------------------------------------------------------------------
    def model_versions(self) -> list[dict]:
        return self.request("GET", "/v1/model-versions").get("data", [])

    def promote(self, version_id: str) -> dict:
        return self.request("POST", f"/v1/model-versions/{version_id}/promote")

    def rollback(self, version_id: str) -> dict:
        return self.request("POST", f"/v1/model-versions/{version_id}/rollback")

    def flywheel_runs(self) -> list[dict]:
        return self.request("GET", "/v1/flywheel/runs").get("data", [])

    def iterate(self) -> dict:
        return self.request("POST", "/v1/flywheel/iterate")

    def report(self, days: int = 30) -> dict:
        return self.request("GET", "/v1/report", params={"days": days})

    # -- eval sets (the gate's regression suites) -----------------------------------------------
    def eval_sets(self) -> list[dict]:
        return self.request("GET", "/v1/eval-sets").get("data", [])

    def add_eval_set(self, name: str, items: list[dict], description: str = "",
                     replace: bool = False) -> dict:
        body = {"name": name, "description": description, "replace": replace, "items": items}
        return self.request("POST", "/v1/eval-sets", json=body)

    def remove_eval_set(self, name: str) -> dict:
        return self.request("DELETE", f"/v1/eval-sets/{quote(name, safe='')}")
