"""List a tenant's jobs, newest first, filtered by status and kind."""

from __future__ import annotations

from dataclasses import dataclass

from atelier_contracts.snapshot import JobSnapshot
from atelier_gateway.app.ports import JobReader


@dataclass(frozen=True)
class ListJobsInput:
    tenant: str
    statuses: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    limit: int = 50


async def list_jobs(query: ListJobsInput, *, reader: JobReader) -> list[JobSnapshot]:
    return await reader.jobs(
        query.tenant, statuses=sorted(set(query.statuses)), kinds=sorted(set(query.kinds)), limit=query.limit
    )
