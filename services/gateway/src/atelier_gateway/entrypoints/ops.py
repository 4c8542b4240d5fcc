"""Liveness, readiness, version and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from atelier_contracts.runtime.ops import run_checks
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.problems import ProblemResponse, problem, problem_responses
from atelier_gateway.entrypoints.schemas import Health, Ready, Version

SERVICE = "gateway"

router = APIRouter(tags=["ops"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> Health:
    return Health(status="ok", service=SERVICE)


@router.get(
    "/ready",
    summary="Readiness: NATS and SQL answer",
    response_model=Ready,
    responses=problem_responses(503),
)
async def ready(request: Request, deps: DepsDep) -> Ready | ProblemResponse:
    checks = await run_checks(deps.checks)
    if all(result == "ok" for result in checks.values()):
        return Ready(status="ready", checks=checks)
    failing = ", ".join(name for name, result in checks.items() if result != "ok")
    return problem(
        503, "service_unavailable", instance=request.url.path, detail=f"Not ready: {failing}.", checks=checks
    )


@router.get("/version", summary="The running version")
async def version(request: Request) -> Version:
    return Version(service=SERVICE, version=request.app.version)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."}},
)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
