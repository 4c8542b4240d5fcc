"""Submitting and reading a job without the framework's routing, dependencies and exception layers.

The two are most of what the gateway answers (a product submits, then polls), and FastAPI's
machinery between the socket and the endpoint (included routers tried in turn, dependencies
solved, the exception and exit-stack middleware, the response wrappers) cost about as much as
the work itself (``docs/benchmarks.md``). ``HotRoutes`` answers the plain forms of the two,
``POST /v1/jobs`` without an ``Idempotency-Key`` and ``GET /v1/jobs/{job_id}`` without a query,
with the routes' own code (``jobs.submit_answer``, ``jobs.read_answer``) and the same problem
answers. Everything else goes on to FastAPI, which answers it as before: a body the model does not
accept (its 422 says what is wrong), a keyed submit, ``?at=``. It sits inside
``RequestContextMiddleware`` and ``BodyLimits``, so the request id, metrics, the access line and
the body's caps apply as on every route; the routes stay FastAPI's for the OpenAPI.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import cast

from fastapi import Request, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atelier_gateway.app.errors import AppError
from atelier_gateway.bootstrap import Deps
from atelier_gateway.entrypoints import jobs
from atelier_gateway.entrypoints.idempotency import IDEMPOTENCY_HEADER
from atelier_gateway.entrypoints.problems import app_error_problem, http_error_problem
from atelier_gateway.entrypoints.schemas import SubmitJobBody

_JOBS = "/v1/jobs"
_ONE_JOB = "/v1/jobs/"
_KEY_HEADER = IDEMPOTENCY_HEADER.lower().encode()
_BODY_NOT_READ = "There was an error parsing the body"  # FastAPI's words, which problems.py knows


def _route_of(endpoint: object) -> BaseRoute:
    """The FastAPI route of ``endpoint``: metrics and the access line name it by its path."""
    return next(r for r in jobs.router.routes if getattr(r, "endpoint", None) is endpoint)


class HotRoutes:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._submit = _route_of(jobs.submit)
        self._read = _route_of(jobs.read)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "POST" and path == _JOBS and not _keyed(scope):
                await self._submit_job(scope, receive, send)
                return
            if method == "GET" and path.startswith(_ONE_JOB) and not scope["query_string"]:
                job_id = path[len(_ONE_JOB) :]
                if job_id and "/" not in job_id:
                    await self._read_job(scope, receive, send, job_id)
                    return
        await self.app(scope, receive, send)

    async def _submit_job(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        scope["route"] = self._submit
        try:
            raw = await request.body()
        except HTTPException as exc:  # the body's caps (BodyLimits): too large, or too slow
            await http_error_problem(request, exc)(scope, receive, send)
            return
        except ClientDisconnect:  # gone mid-body: answered as FastAPI does (a body it could not read)
            await http_error_problem(request, HTTPException(400, _BODY_NOT_READ))(scope, receive, send)
            return
        try:
            body = SubmitJobBody.model_validate_json(raw)
        except ValidationError:
            await self.app(scope, _replay(raw, receive), send)  # FastAPI's 422, as ever
            return
        await _answer(request, send, jobs.submit_answer(body, request, _deps(scope)))

    async def _read_job(self, scope: Scope, receive: Receive, send: Send, job_id: str) -> None:
        request = Request(scope, receive)
        scope["route"] = self._read
        await _answer(request, send, jobs.read_answer(job_id, request, _deps(scope)))


async def _answer(request: Request, send: Send, answer: Awaitable[Response]) -> None:
    """The route's answer, or the problem FastAPI's handlers would have made of its error."""
    try:
        response = await answer
    except AppError as exc:
        response = app_error_problem(request, exc)
    except HTTPException as exc:
        response = http_error_problem(request, exc)
    await response(request.scope, request.receive, send)


def _keyed(scope: Scope) -> bool:
    return any(name == _KEY_HEADER for name, _ in scope["headers"])


def _deps(scope: Scope) -> Deps:
    return cast(Deps, scope["app"].state.deps)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body read already handed out again, for FastAPI to read."""
    replayed = False

    async def again() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
