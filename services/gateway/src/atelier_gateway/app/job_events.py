"""A job's history: the events the orchestrator appended, in log order."""

from __future__ import annotations

from atelier_gateway.app.errors import JobNotFound
from atelier_gateway.app.ports import JobReader, StoredEvent


async def job_events(
    tenant: str,
    job_id: str,
    *,
    reader: JobReader,
    after: tuple[int, int] | None = None,
    limit: int | None = None,
) -> list[StoredEvent]:
    events = await reader.events(tenant, job_id, after, limit)
    if events is None:
        raise JobNotFound(f"No job {job_id!r}.")
    return events
