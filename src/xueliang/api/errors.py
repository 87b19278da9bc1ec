"""One error body for every failure: ``{"error": {"code", "message", "details"}}``.

| status | code            | when                                                          |
|--------|-----------------|---------------------------------------------------------------|
| 401    | unauthenticated | no, invalid or expired token; wrong username or password     |
| 403    | forbidden       | missing permission, or the target is outside the caller's area |
| 404    | not_found       | no such object                                                |
| 409    | conflict        | already exists, still in use                                  |
| 413    | too_large       | upload over the limit                                         |
| 422    | invalid         | malformed or invalid input (body, query, sheet rows)          |
| 423    | locked          | account locked after repeated failed logins (Retry-After)    |
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from xueliang.core import errors

log = logging.getLogger(__name__)

STATUS: dict[type[errors.XueliangError], int] = {
    errors.InvalidInput: 422,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.AuthenticationFailed: 401,
    errors.AccountLocked: 423,
    errors.PermissionDenied: 403,
    errors.ConfigError: 500,
}
_HTTP_CODES = {
    400: "invalid",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    423: "locked",
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details))
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


# Documented on every operation in the OpenAPI description.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody, "description": d}
    for s, d in (
        (401, "Not authenticated"),
        (403, "Forbidden, or outside the caller's area"),
        (404, "Not found"),
        (409, "Conflict"),
        (422, "Invalid input"),
    )
}


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.XueliangError)
    async def _domain(_request: Request, exc: errors.XueliangError) -> JSONResponse:
        status = next((s for t, s in STATUS.items() if isinstance(exc, t)), 500)
        headers = {}
        if isinstance(exc, errors.AuthenticationFailed):
            headers["WWW-Authenticate"] = "Bearer"
        if isinstance(exc, errors.AccountLocked):
            headers["Retry-After"] = str(exc.retry_after)
        if status == 500:
            log.error("configuration error: %s", exc.message)
        return error_response(status, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        return error_response(422, "invalid", "request is not valid", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), None, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal", "internal error; see the server log")
