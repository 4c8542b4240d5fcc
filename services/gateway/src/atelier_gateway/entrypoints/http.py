"""The FastAPI application. Nothing connects until the lifespan starts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version

from fastapi import FastAPI

from atelier_gateway import bootstrap
from atelier_gateway.bootstrap import Deps
from atelier_gateway.config import Settings
from atelier_gateway.entrypoints import (
    analytics,
    audio_cache,
    batch,
    budgets,
    composites,
    files,
    gallery,
    job_commands,
    job_list,
    jobs,
    kinds,
    ops,
    package,
    presets,
    problems,
    project_schedule,
    projects,
    schedules,
    sessions,
    streams,
    studio,
    styles,
    tags,
    uploads,
    webhooks,
)
from atelier_gateway.entrypoints.hot_routes import HotRoutes
from atelier_gateway.entrypoints.limits import BodyLimits
from atelier_gateway.entrypoints.middleware import RequestContextMiddleware

log = logging.getLogger(__name__)

DepsFactory = Callable[[Settings], AbstractAsyncContextManager[Deps]]

DESCRIPTION = """Submit AI generation jobs, follow them, and download what they made.

Every error is an RFC 9457 `application/problem+json` document with a stable `code`."""


def gateway_version() -> str:
    try:
        return package_version("atelier-gateway")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0.0.0+unknown"


def create_app(settings: Settings, build_deps: DepsFactory = bootstrap.build) -> FastAPI:
    """The gateway app; ``build_deps`` lets tests wire fakes instead of NATS and SQL."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.dev_secret:
            log.warning("ATELIER_DEV_MODE: download links are signed with the public dev secret")
        async with build_deps(settings) as deps:
            app.state.deps = deps
            log.info(
                "gateway started",
                extra={"nats_url": settings.nats_url, "tenant": settings.tenant, "version": app.version},
            )
            yield
        log.info("gateway stopped")

    app = FastAPI(
        title="Atelier",
        version=gateway_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=problems.problem_responses(500),
        # The request's span, metrics and access line are RequestContextMiddleware's, with the
        # request id; FastAPI's own would add a second root span per request, in another trace.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.add_middleware(HotRoutes)  # added first: innermost, inside the limits and the request id
    app.add_middleware(
        BodyLimits,
        max_bytes=settings.max_body_bytes,
        read_timeout_s=settings.body_timeout_s,
        larger={uploads.UPLOADS_PATH: settings.upload_max_bytes},
        not_json=frozenset({uploads.UPLOADS_PATH}),
    )
    app.add_middleware(RequestContextMiddleware)  # added last: outermost, so limits see the request id
    problems.install(app)
    # FastAPI tries the routers in turn (~3 µs a route): the hot ones first. Submit and read
    # are exact paths, so no route after them is shadowed.
    app.include_router(jobs.router)
    app.include_router(batch.router)  # before the per-job routes: "batch" is no job id
    app.include_router(package.router)  # before the per-job routes' catch-alls
    app.include_router(streams.router)  # before the per-job routes too
    app.include_router(job_list.router)
    app.include_router(job_commands.router)
    app.include_router(tags.router)
    app.include_router(kinds.router)
    app.include_router(files.router)
    app.include_router(analytics.router)
    app.include_router(budgets.router)
    app.include_router(sessions.router)
    app.include_router(studio.router)
    app.include_router(gallery.router)
    app.include_router(projects.router)
    app.include_router(composites.router)
    app.include_router(project_schedule.router)
    app.include_router(styles.router)
    app.include_router(schedules.router)
    app.include_router(uploads.router)
    app.include_router(presets.router)
    app.include_router(audio_cache.router)
    app.include_router(webhooks.router)
    app.include_router(ops.router)
    return app
