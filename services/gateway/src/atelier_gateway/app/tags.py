"""The tag registry: create, list, rename and delete tags; renames and deletes reach every job.

A job's tags live in its event log, so changing them on jobs is an ``UpdateJob`` per job
(published without waiting; each carries the job's whole new tag list, computed from the read
model). The registry row changes at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from atelier_contracts.commands import UpdateJob
from atelier_contracts.snapshot import JobView
from atelier_gateway.app.batch import publish_each
from atelier_gateway.app.errors import TagExists, TagNotFound
from atelier_gateway.app.ports import CommandPublisher, JobSearch, TagInfo, TagRegistry


@dataclass(frozen=True)
class TagChange:
    name: str
    """The tag's name after the change (the removed name for a delete)."""
    jobs_updated: list[str]


async def list_tags(tenant: str, *, registry: TagRegistry) -> list[TagInfo]:
    return await registry.tags(tenant)


async def create_tag(
    tenant: str, name: str, *, registry: TagRegistry, clock: Callable[[], datetime]
) -> TagInfo:
    """Register a tag; one jobs already carry (never registered) is registered as it is."""
    now = clock()
    if not await registry.create(tenant, name, now):
        raise TagExists(f"The tag {name!r} exists already.")
    carried = next((t.job_count for t in await registry.tags(tenant) if t.name == name), 0)
    return TagInfo(name=name, job_count=carried, created_at=now)


async def rename_tag(
    tenant: str,
    old: str,
    new: str,
    *,
    request_id: str,
    registry: TagRegistry,
    search: JobSearch,
    publisher: CommandPublisher,
    clock: Callable[[], datetime],
) -> TagChange:
    if not await registry.in_use(tenant, old):
        raise TagNotFound(f"No tag {old!r}.")
    if new == old:
        return TagChange(name=new, jobs_updated=[])
    if await registry.in_use(tenant, new):
        raise TagExists(f"The tag {new!r} exists already.")
    await registry.rename(tenant, old, new)
    jobs = await search.tagged(tenant, old)
    changed = {job.id: _retagged(job, old, new) for job in jobs}
    await publish_each(
        tenant, request_id, list(changed), lambda j: UpdateJob(tags=changed[j]), publisher, clock
    )
    return TagChange(name=new, jobs_updated=list(changed))


async def delete_tag(
    tenant: str,
    name: str,
    *,
    request_id: str,
    registry: TagRegistry,
    search: JobSearch,
    publisher: CommandPublisher,
    clock: Callable[[], datetime],
) -> TagChange:
    if not await registry.in_use(tenant, name):
        raise TagNotFound(f"No tag {name!r}.")
    await registry.delete(tenant, name)
    jobs = await search.tagged(tenant, name)
    changed = {job.id: _retagged(job, name, None) for job in jobs}
    await publish_each(
        tenant, request_id, list(changed), lambda j: UpdateJob(tags=changed[j]), publisher, clock
    )
    return TagChange(name=name, jobs_updated=list(changed))


def _retagged(job: JobView, old: str, new: str | None) -> list[str]:
    """The job's tags with ``old`` replaced by ``new`` (or dropped), order kept, no duplicates."""
    tags = [new if tag == old else tag for tag in job.tags]
    return list(dict.fromkeys(t for t in tags if t is not None))
