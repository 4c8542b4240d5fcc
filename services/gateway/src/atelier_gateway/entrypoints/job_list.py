"""GET /v1/jobs: filters, sort orders and cursor pagination (with an RFC 8288 ``Link`` header)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from atelier_gateway.app.job_query import JobFilter
from atelier_gateway.app.list_jobs import ListJobsInput, list_jobs
from atelier_gateway.entrypoints import render
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.problems import problem_responses
from atelier_gateway.entrypoints.schemas import IsoDatetime, JobList, JobStatusName, KindName, TagQuery

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

Level = Annotated[int, Field(ge=0, le=9)]
"""A priority in a query string (which is text, so not strict like the JSON bodies' ``Priority``)."""
SortName = Literal["-created_at", "created_at", "-priority", "priority", "-updated_at", "updated_at"]


@router.get(
    "",
    summary="List jobs",
    description=(
        "Filters combine with AND; a repeated filter matches any of its values, except `tag`: a job "
        "must carry every tag given. Pages follow `next_cursor` (also in the `Link: rel=next` header)."
    ),
    responses={
        200: {
            "headers": {
                "Link": {"description": 'The next page: `<url>; rel="next"`.', "schema": {"type": "string"}}
            }
        },
        **problem_responses(422, 500, 503),
    },
)
async def list_(
    request: Request,
    response: Response,
    deps: DepsDep,
    status: Annotated[list[JobStatusName] | None, Query(description="Any of these statuses.")] = None,
    kind: Annotated[list[KindName] | None, Query(description="Any of these kinds.")] = None,
    priority: Annotated[list[Level] | None, Query(description="Any of these priorities.")] = None,
    priority_min: Annotated[int | None, Query(ge=0, le=9)] = None,
    priority_max: Annotated[int | None, Query(ge=0, le=9)] = None,
    tag: Annotated[list[TagQuery] | None, Query(description="Carries all of these tags.")] = None,
    created_after: Annotated[IsoDatetime | None, Query(description="Inclusive; ISO 8601.")] = None,
    created_before: Annotated[IsoDatetime | None, Query(description="Exclusive; ISO 8601.")] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=200, description="In the title, any case.")
    ] = None,
    sort: SortName = "-created_at",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512, description="`next_cursor` of a page.")] = None,
) -> JobList:
    page = await list_jobs(
        ListJobsInput(
            tenant=deps.settings.tenant,
            filter=JobFilter(
                statuses=tuple(status or ()),
                kinds=tuple(kind or ()),
                priorities=tuple(priority or ()),
                priority_min=priority_min,
                priority_max=priority_max,
                tags=tuple(tag or ()),
                created_after=created_after,
                created_before=created_before,
                q=q,
            ),
            sort=sort,
            limit=limit,
            cursor=cursor,
        ),
        search=deps.search,
    )
    if page.next_cursor is not None:
        response.headers["Link"] = (
            f'<{request.url.include_query_params(cursor=page.next_cursor)}>; rel="next"'
        )
    return JobList(
        items=[render.job_summary(j) for j in page.jobs],
        count=len(page.jobs),
        has_more=page.next_cursor is not None,
        next_cursor=page.next_cursor,
    )
