"""List a tenant's jobs: filtered, sorted, a page at a time (keyset pagination, no OFFSET)."""

from __future__ import annotations

from dataclasses import dataclass, field

from atelier_contracts.snapshot import JobView
from atelier_gateway.app.errors import InvalidRequest
from atelier_gateway.app.job_query import (
    DEFAULT_SORT,
    SORTS,
    JobFilter,
    decode_cursor,
    encode_cursor,
)
from atelier_gateway.app.ports import JobSearch


@dataclass(frozen=True)
class ListJobsInput:
    tenant: str
    filter: JobFilter = field(default_factory=JobFilter)
    sort: str = DEFAULT_SORT
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True)
class JobPage:
    jobs: list[JobView]
    next_cursor: str | None
    """Where the next page starts; None on the last page."""


async def list_jobs(query: ListJobsInput, *, search: JobSearch) -> JobPage:
    sort = SORTS.get(query.sort)
    if sort is None:
        raise InvalidRequest(f"sort must be one of {', '.join(SORTS)}.")
    flt = query.filter
    if flt.priority_min is not None and flt.priority_max is not None and flt.priority_min > flt.priority_max:
        raise InvalidRequest("priority_min must not be greater than priority_max.")
    after = decode_cursor(query.cursor, sort) if query.cursor else None
    # One row more than asked tells whether another page exists, without a count query.
    rows = await search.page(query.tenant, flt, sort, after, query.limit + 1)
    page = rows[: query.limit]
    next_cursor = encode_cursor(sort, page[-1].position) if len(rows) > query.limit else None
    return JobPage(jobs=[row.job for row in page], next_cursor=next_cursor)
