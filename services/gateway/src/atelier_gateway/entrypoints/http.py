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
from atelier_gateway.entrypoints import batch, files, job_commands, job_list, jobs, ops, problems, tags
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
    )
    app.add_middleware(RequestContextMiddleware)
    problems.install(app)
    app.include_router(batch.router)  # before the per-job routes: "batch" is no job id
    app.include_router(jobs.router)
    app.include_router(job_list.router)
    app.include_router(job_commands.router)
    app.include_router(tags.router)
    app.include_router(files.router)
    app.include_router(ops.router)
    return app
