"""RFC 9457 problem details: every non-2xx answer is ``application/problem+json``."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from atelier_contracts.errors import ERROR_CODES
from atelier_contracts.schedules import ScheduleList, ScheduleView
from atelier_contracts.sessions import SessionList, SessionView
from atelier_contracts.studio import StudioView
from atelier_gateway.app.errors import (
    AppError,
    AssetAlreadyRunning,
    BudgetNotFound,
    CacheEntryNotFound,
    CandidateNotFound,
    ChipNotFound,
    CompositeChanged,
    CompositeExporting,
    EpisodeNotFound,
    EpisodeNotRendered,
    FileNotFound,
    IdempotencyInProgress,
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
    IllegalTransition,
    ImageTooLarge,
    InputInvalid,
    InputTooLarge,
    InvalidRequest,
    JobDeleted,
    JobNotFound,
    LimitExceeded,
    MediaInvalid,
    NothingAdopted,
    NothingMarked,
    OutcomeUnknown,
    PlatformNotFound,
    PresetNotFound,
    ProjectNotFound,
    RefineNotUnderstood,
    RefineOneChange,
    RoundNotFound,
    ScheduleNotFound,
    SessionClosed,
    SessionNotFound,
    ShotNotFound,
    SimulateDisabled,
    StepNotFound,
    TagExists,
    TagNotFound,
    TakeNotFound,
    TemplateNotFound,
    Unavailable,
    UnknownJobKind,
    UnsupportedMedia,
    UploadEmpty,
    UploadNotFound,
    UrlExpired,
    UrlInvalid,
    WebhookNotFound,
)
from atelier_gateway.entrypoints.context import current_request_id

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

STATUS_OF: dict[type[AppError], int] = {
    JobNotFound: 404,
    SessionNotFound: 404,
    ScheduleNotFound: 404,
    RoundNotFound: 404,
    CandidateNotFound: 404,
    SessionClosed: 409,
    ChipNotFound: 404,
    ProjectNotFound: 404,
    EpisodeNotFound: 404,
    EpisodeNotRendered: 409,
    ShotNotFound: 404,
    TakeNotFound: 404,
    CompositeExporting: 409,
    CompositeChanged: 409,
    NothingMarked: 409,
    TemplateNotFound: 404,
    PlatformNotFound: 404,
    NothingAdopted: 409,
    RefineNotUnderstood: 422,
    RefineOneChange: 422,
    LimitExceeded: 409,
    FileNotFound: 404,
    StepNotFound: 404,
    TagNotFound: 404,
    BudgetNotFound: 404,
    IllegalTransition: 409,
    AssetAlreadyRunning: 409,
    JobDeleted: 409,
    TagExists: 409,
    IdempotencyInProgress: 409,
    IdempotencyKeyInvalid: 400,
    IdempotencyKeyReused: 422,
    UnknownJobKind: 422,
    SimulateDisabled: 422,
    InputInvalid: 422,
    InvalidRequest: 422,
    Unavailable: 503,
    OutcomeUnknown: 504,
    UnsupportedMedia: 415,
    UploadEmpty: 400,
    MediaInvalid: 422,
    ImageTooLarge: 413,
    InputTooLarge: 413,
    UploadNotFound: 404,
    CacheEntryNotFound: 404,
    PresetNotFound: 422,
    UrlExpired: 403,
    UrlInvalid: 403,
    WebhookNotFound: 404,
}
_CODE_OF_STATUS = {
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "input_too_large",
    503: "service_unavailable",
}


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="Where the problem is, e.g. ['body', 'title'].")
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem; ``code`` is one of Atelier's stable error codes."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:atelier:error:job_not_found"])
    title: str
    status: int
    detail: str
    instance: str
    code: str = Field(examples=sorted(ERROR_CODES))
    request_id: str
    errors: list[ValidationIssue] | None = Field(None, description="Only for validation_failed.")


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def _instance(request: Request) -> str:
    """The request's path as a URI reference (RFC 9457 ``instance``): percent-encoded, as sent."""
    raw = request.scope.get("raw_path")
    return raw.decode("ascii", "replace") if raw else quote(request.url.path, safe="/:@!$&'()*+,;=")


def problem(
    status: int,
    code: str,
    *,
    instance: str,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> ProblemResponse:
    if code not in ERROR_CODES:
        raise ValueError(f"error code {code!r} is not in atelier_contracts.errors.ERROR_CODES")
    body: dict[str, Any] = {
        "type": f"urn:atelier:error:{code}",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "detail": detail or ERROR_CODES[code],
        "instance": instance,
        "code": code,
        "request_id": current_request_id(),
        **extensions,
    }
    return ProblemResponse(body, status_code=status, headers=headers)


def status_of(exc: AppError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500


async def _app_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, AppError)
    return app_error_problem(request, exc)


def app_error_problem(request: Request, exc: AppError) -> ProblemResponse:
    status = status_of(exc)
    retry = isinstance(exc, Unavailable | IdempotencyInProgress)
    headers = {"Retry-After": "1"} if retry else {}
    if exc.close_connection:
        headers["Connection"] = "close"
    if status >= 500:
        log.warning("%s: %s", exc.code, exc.detail, extra={"request_id": current_request_id()})
    return problem(
        status,
        exc.code,
        instance=_instance(request),
        detail=exc.detail,
        headers=headers or None,
        **exc.extensions,
    )


async def _validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    # Only loc/msg/type: ``input`` and ``ctx`` may echo large or non-JSON values back.
    issues = [
        {
            "loc": list(e.get("loc", ())),
            "msg": str(e.get("msg", "")).removeprefix("Value error, "),  # pydantic's, for ValueError
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    detail = f"{len(issues)} problem(s) with the request; see errors."
    return problem(422, "validation_failed", instance=_instance(request), detail=detail, errors=issues)


_BODY_NOT_PARSED = "There was an error parsing the body"
"""FastAPI's 400 for a JSON body it could not decode (e.g. invalid UTF-8 inside a string)."""


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    return http_error_problem(request, exc)


def http_error_problem(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
    status = exc.status_code
    if status == 400 and exc.detail == _BODY_NOT_PARSED:
        # One answer for a broken body, whether its JSON or its encoding is broken: 422, as for
        # malformed JSON (FastAPI answers the one 422 and the other 400).
        why = "the body could not be read as JSON (its syntax or UTF-8 is broken, or it nests too deep)"
        issue = {"loc": ["body"], "msg": why, "type": "json_invalid"}
        why = "1 problem(s) with the request; see errors."
        return problem(422, "validation_failed", instance=_instance(request), detail=why, errors=[issue])
    code = _CODE_OF_STATUS.get(status, "internal_error" if status >= 500 else "validation_failed")
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != HTTPStatus(status).phrase else None
    headers = dict(exc.headers or {})
    if status == 405:  # Starlette names the methods of the first route on the path, not of all
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem(status, code, instance=_instance(request), detail=detail, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on the request's path."""
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(request.app.state, "methods_by_path", None)
    if table is None:
        table = request.app.state.methods_by_path = [
            (compile_path(rc.path)[0], set(rc.methods or ()))
            for rc in iter_route_contexts(request.app.routes)
            if rc.path is not None
        ]
    path = request.url.path
    return sorted({m for pattern, methods in table if pattern.match(path) for m in methods})


def install(app: FastAPI) -> None:
    """Answer every error as a problem, and document the problem schema in OpenAPI."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    _document_problem_schema(app)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry declaring ``statuses`` as problem+json answers in OpenAPI."""
    ref = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {"description": HTTPStatus(status).phrase, "content": {PROBLEM_MEDIA_TYPE: {"schema": ref}}}
        for status in statuses
    }


CONTRACT_BODIES: tuple[type, ...] = (SessionView, SessionList, ScheduleView, ScheduleList, StudioView)
"""Answers whose schema is a contract's msgspec struct, named by it under components/schemas."""


def contract_body(name: str, description: str) -> dict[str, Any]:
    """A ``responses=`` entry: an application/json answer whose schema is ``name``'s."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
    }


def _document_problem_schema(app: FastAPI) -> None:
    # Routes point at Problem by $ref under problem+json (FastAPI's ``model=`` would say application/json),
    # so the schema itself is added to the components here.
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(problem_schema.pop("$defs", {}))
            schemas["Problem"] = problem_schema
            # Bodies rendered straight from a contract's msgspec struct (sessions) keep its schema.
            _, contract_schemas = msgspec.json.schema_components(
                CONTRACT_BODIES, ref_template="#/components/schemas/{name}"
            )
            schemas.update(contract_schemas)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
