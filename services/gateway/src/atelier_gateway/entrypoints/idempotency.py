"""The Idempotency-Key header on every mutating route, as a FastAPI route class.

Routers built with ``route_class=IdempotentRoute`` get, on POST, PATCH and DELETE: the header
documented in OpenAPI with its problem answers, and a handler wrapped so that a request with a
key claims it, runs, and stores its 2xx or 4xx response for replay (5xx and errors release it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

from fastapi import Request, Response
from fastapi.routing import APIRoute

from atelier_gateway.app.errors import (
    AppError,
    IdempotencyInProgress,
    IdempotencyKeyInvalid,
    IdempotencyKeyReused,
)
from atelier_gateway.app.idempotency import MAX_KEY_LENGTH, IdempotencyClaim, StoredResponse, new_claim
from atelier_gateway.bootstrap import Deps
from atelier_gateway.entrypoints.problems import app_error_problem, problem_responses

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MUTATING = frozenset({"POST", "PATCH", "DELETE"})
# Per-response headers that must not be replayed as they were.
_NOT_STORED = frozenset({"content-length", "x-request-id", "date", "server"})

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
InProgressAnswer = Callable[[Request, "IdempotentRequest"], Coroutine[Any, Any, Response | None]]
"""For a key whose first request is still marked in progress: an answer if the outcome is known."""

_IN_PROGRESS_ATTR = "idempotency_in_progress"


def while_in_progress(answer: InProgressAnswer) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark an endpoint whose outcome can be known while its key is still claimed (a gateway that
    died mid-request leaves the claim behind): ``answer`` is asked before answering 409."""

    def mark(endpoint: Callable[..., Any]) -> Callable[..., Any]:
        setattr(endpoint, _IN_PROGRESS_ATTR, answer)
        return endpoint

    return mark


@dataclass(frozen=True)
class IdempotentRequest:
    """What a handler may want to know about the key it runs under."""

    key: str
    request_hash: str


_KEY_DESCRIPTION = (
    "Makes retries safe: the first request with a key runs, later ones with the same key and body "
    "get its response again (with `Idempotent-Replayed: true`). Keys are remembered for "
    "ATELIER_IDEMPOTENCY_TTL_S (a day by default)."
)
_KEY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": _KEY_DESCRIPTION,
    "schema": {
        "anyOf": [{"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH}, {"type": "null"}],
        "title": IDEMPOTENCY_HEADER,
        "description": _KEY_DESCRIPTION,
    },
}
"""The header as OpenAPI shows it. Documented, not declared as a header dependency: that cost
every mutating request a dependency solved (~40 µs) for a value ``IdempotentRoute`` reads and
checks (``new_claim``) before the route runs."""


def idempotent_request(request: Request) -> IdempotentRequest | None:
    found = getattr(request.state, "idempotency", None)
    return found if isinstance(found, IdempotentRequest) else None


class IdempotentRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        methods = {m.upper() for m in kwargs.get("methods") or ()}
        if methods & MUTATING:
            extra = dict(kwargs.get("openapi_extra") or {})
            extra["parameters"] = [*extra.get("parameters", ()), _KEY_PARAMETER]
            kwargs["openapi_extra"] = extra
            kwargs["responses"] = {**problem_responses(400, 409, 422), **(kwargs.get("responses") or {})}
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        in_progress: InProgressAnswer | None = getattr(self.endpoint, _IN_PROGRESS_ATTR, None)

        async def idempotent(request: Request) -> Response:
            key = request.headers.get(IDEMPOTENCY_HEADER)
            if key is None or request.method not in MUTATING:
                return await handler(request)
            try:
                return await _run_once(request, key, handler, in_progress)
            except AppError as exc:  # refusals of the key itself; never stored
                return app_error_problem(request, exc)

        return idempotent


async def _run_once(
    request: Request, key: str, handler: Handler, in_progress: InProgressAnswer | None
) -> Response:
    deps = cast(Deps, request.app.state.deps)
    settings = deps.settings
    if not key.strip():
        raise IdempotencyKeyInvalid()
    claim = new_claim(
        tenant=settings.tenant,
        key=key,
        method=request.method,
        path=request.url.path,
        body=await request.body(),
        now=deps.clock(),
        ttl_s=settings.idempotency_ttl_s,
        lock_s=settings.idempotency_lock_s,
    )
    result = await deps.idempotency.claim(claim)
    if result.state == "mismatch":
        if result.used_on is not None:
            raise IdempotencyKeyReused(
                f"This Idempotency-Key was used on another request, {result.used_on}; "
                "a key belongs to one request (method, path and body)."
            )
        raise IdempotencyKeyReused()
    if result.state == "in_progress":
        pending = IdempotentRequest(key=key, request_hash=claim.request_hash)
        answer = await in_progress(request, pending) if in_progress else None
        if answer is None:
            raise IdempotencyInProgress()
        answer.headers[REPLAYED_HEADER] = "true"
        return answer
    if result.state == "completed":
        assert result.response is not None
        return _replay(result.response)
    request.state.idempotency = IdempotentRequest(key=key, request_hash=claim.request_hash)
    try:
        response = await _respond(request, handler)
    except BaseException:
        await _release(deps, claim)
        raise
    if response.status_code >= 500 or not hasattr(response, "body"):
        await _release(deps, claim)
        return response
    try:
        await deps.idempotency.complete(claim, _stored(response))
    except Exception:  # the work is done: answer it; the claim lapses after ATELIER_IDEMPOTENCY_LOCK_S
        log.exception("could not store an idempotent response", extra={"key": claim.key})
    return response


async def _respond(request: Request, handler: Handler) -> Response:
    """The handler's response — its errors turned into responses here, so they can be stored."""
    try:
        return await handler(request)
    except Exception as exc:
        convert = _exception_handler(request, exc)
        if convert is None:
            raise
        return cast(Response, await convert(request, exc))


def _exception_handler(request: Request, exc: Exception) -> Callable[..., Any] | None:
    handlers: dict[Any, Callable[..., Any]] = request.scope.get("starlette.exception_handlers", ({}, {}))[0]
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None


async def _release(deps: Deps, claim: IdempotencyClaim) -> None:
    try:
        await deps.idempotency.release(claim)
    except Exception:  # the claim then lapses after ATELIER_IDEMPOTENCY_LOCK_S
        log.exception("could not release an idempotency claim", extra={"key": claim.key})


def _stored(response: Response) -> StoredResponse:
    headers = [(k, v) for k, v in response.headers.items() if k.lower() not in _NOT_STORED]
    return StoredResponse(status=response.status_code, headers=headers, body=bytes(response.body))


def _replay(stored: StoredResponse) -> Response:
    response = Response(content=stored.body, status_code=stored.status)
    for name, value in stored.headers:
        response.headers.append(name, value)
    response.headers[REPLAYED_HEADER] = "true"
    return response
