"""The tag registry: list, create, rename and delete tags (renames and deletes reach every job)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from atelier_gateway.app.ports import TagInfo
from atelier_gateway.app.tags import TagChange, create_tag, delete_tag, list_tags, rename_tag
from atelier_gateway.entrypoints.bodies import TagBody
from atelier_gateway.entrypoints.context import current_request_id
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.idempotency import IdempotentRoute
from atelier_gateway.entrypoints.problems import problem_responses
from atelier_gateway.entrypoints.schemas import TagChangeOut, TagList, TagOut

router = APIRouter(prefix="/v1/tags", tags=["tags"], route_class=IdempotentRoute)

TagName = Annotated[str, Path(min_length=1, max_length=50)]
_JOBS_LATER = "Jobs carrying the tag get an UpdateJob each; their tags change once those are decided."


def _out(tag: TagInfo) -> TagOut:
    return TagOut(name=tag.name, job_count=tag.job_count, created_at=tag.created_at)


def _change(change: TagChange) -> TagChangeOut:
    return TagChangeOut(name=change.name, jobs_updated=len(change.jobs_updated), job_ids=change.jobs_updated)


@router.get(
    "", summary="List tags: registered ones and those used on jobs", responses=problem_responses(500, 503)
)
async def list_(deps: DepsDep) -> TagList:
    return TagList(items=[_out(t) for t in await list_tags(deps.settings.tenant, registry=deps.tags)])


@router.post("", status_code=201, summary="Create a tag", responses=problem_responses(409, 422, 500, 503))
async def create(body: TagBody, deps: DepsDep) -> TagOut:
    tag = await create_tag(deps.settings.tenant, body.name, registry=deps.tags, clock=deps.clock)
    return _out(tag)


@router.patch(
    "/{name}",
    status_code=202,
    summary="Rename a tag, on every job too",
    description=_JOBS_LATER,
    responses=problem_responses(404, 409, 422, 500, 503),
)
async def rename(name: TagName, body: TagBody, deps: DepsDep) -> TagChangeOut:
    change = await rename_tag(
        deps.settings.tenant,
        name,
        body.name,
        request_id=current_request_id(),
        registry=deps.tags,
        search=deps.search,
        publisher=deps.publisher,
        clock=deps.clock,
    )
    return _change(change)


@router.delete(
    "/{name}",
    status_code=202,
    summary="Delete a tag, from every job too",
    description=_JOBS_LATER,
    responses=problem_responses(404, 422, 500, 503),
)
async def delete(name: TagName, deps: DepsDep) -> TagChangeOut:
    change = await delete_tag(
        deps.settings.tenant,
        name,
        request_id=current_request_id(),
        registry=deps.tags,
        search=deps.search,
        publisher=deps.publisher,
        clock=deps.clock,
    )
    return _change(change)
