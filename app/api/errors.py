"""OpenAI-style error bodies for every failure: {"error": {"message", "type", "param", "code"}}.

Routes raise `APIError` (or HTTPException); FastAPI's request validation errors become 400 with
the offending field in `param` and a message in this server's words (`app.api.validation_messages`),
malformed JSON included. A database error that escapes a route is
a 503 `store_unavailable` with Retry-After when the store is down (refused connection, locked
file, pool timeout), else a 500 `store_error`; both are handled inside the app, so the connection
stays open (only errors reaching the catch-all close it).
"""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.validation_messages import describe
from app.store.outage import is_store_outage

logger = logging.getLogger(__name__)

_TYPE_BY_STATUS = {400: "invalid_request_error", 401: "authentication_error",
                   403: "permission_error", 404: "not_found_error", 405: "invalid_request_error",
                   409: "conflict_error", 413: "invalid_request_error", 422: "invalid_request_error",
                   429: "rate_limit_error", 503: "service_unavailable_error"}
STORE_RETRY_AFTER_S = 2  # a short outage (failover, lock held by a checkpoint) is over by then


class APIError(Exception):
    def __init__(self, status_code: int, message: str, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status_code, self.message, self.param, self.code = status_code, message, param, code
        self.headers = headers


def error_body(status_code: int, message: str, param: str | None = None,
               code: str | None = None) -> dict:
    error_type = _TYPE_BY_STATUS.get(status_code, "server_error" if status_code >= 500
                                     else "invalid_request_error")
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(status_code: int, message: str, param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status_code, message, param, code), status_code=status_code,
                        headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(SQLAlchemyError, _store_error)
    app.add_exception_handler(Exception, _unexpected_error)


async def _api_error(_request: Request, exc: APIError) -> JSONResponse:
    return error_response(exc.status_code, exc.message, exc.param, exc.code, exc.headers)


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if not errors:
        return error_response(400, "Invalid request", param="body", code="invalid_request")
    if errors[0].get("type") == "json_invalid":
        return error_response(400, "We could not parse the JSON body of your request.",
                              param="body", code="invalid_json")
    refusal = describe(errors)
    return error_response(400, refusal.message, refusal.param, code=refusal.code)


async def _store_error(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
    if is_store_outage(exc):
        # one line per request, no traceback: an outage would otherwise flood the log
        logger.warning("store unavailable: %s", getattr(exc, "orig", None) or exc)
        return error_response(503, "The store is temporarily unavailable; retry shortly.",
                              code="store_unavailable",
                              headers={"Retry-After": str(STORE_RETRY_AFTER_S)})
    logger.exception("store error", exc_info=exc)
    return error_response(500, "The server had an error while processing your request.",
                          code="store_error")


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "The server had an error while processing your request.")
