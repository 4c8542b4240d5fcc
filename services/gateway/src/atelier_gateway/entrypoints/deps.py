"""FastAPI dependencies: the wired adapters the lifespan built."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from atelier_gateway.bootstrap import Deps


async def get_deps(request: Request) -> Deps:
    # async: FastAPI runs a plain ``def`` dependency in a thread pool, a hop on every request
    return cast(Deps, request.app.state.deps)


DepsDep = Annotated[Deps, Depends(get_deps)]
