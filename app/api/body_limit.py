"""ASGI middleware: request bodies over `max_body_bytes` get 413 with OpenAI's error body before
the app parses any of them.

A declared Content-Length over the limit is refused without reading the body into memory; a
chunked body is buffered only up to the limit. The refused body is read and discarded (up to
DRAIN_LIMIT_BYTES) before answering, because HTTP clients such as httpx and openai send the whole
body before they read a response: closing on them mid-upload would surface as a connection reset
instead of the 413.
"""
from __future__ import annotations

import json

from app.api.errors import error_body

# A body declared larger than this is not read at all: the connection just drops.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


class BodyLimitMiddleware:
    def __init__(self, app, max_body_bytes: int) -> None:
        self.app, self.max_body_bytes = app, max_body_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._refuse(receive, send, drain=declared <= DRAIN_LIMIT_BYTES)
            return
        if declared is None and _is_chunked(scope):
            body, more_body = await self._read_bounded(receive)
            if body is None:
                await self._refuse(receive, send, drain=more_body)
                return
            receive = _replay(body, receive)
        # With a Content-Length within the limit the HTTP server delivers no more than it says.
        await self.app(scope, receive, send)

    async def _read_bounded(self, receive) -> tuple[bytes | None, bool]:
        """(the whole body, False), or (None, whether more is coming) once it passes the limit."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), False  # a disconnect: the app sees what came
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more_body = message.get("more_body", False)
            if size > self.max_body_bytes:
                return None, more_body
            if not more_body:
                return b"".join(chunks), False

    async def _refuse(self, receive, send, drain: bool) -> None:
        drained = 0
        while drain and drained <= DRAIN_LIMIT_BYTES:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
            drained += len(message.get("body", b""))
        body = json.dumps(error_body(
            413, f"Request body too large: the limit is {self.max_body_bytes} bytes.",
            code="request_too_large")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP server rejects a malformed length itself
    return None


def _is_chunked(scope) -> bool:
    return any(name == b"transfer-encoding" and b"chunked" in value.lower()
               for name, value in scope.get("headers", ()))


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return await receive()  # after the body: wait for the disconnect like the server would
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
