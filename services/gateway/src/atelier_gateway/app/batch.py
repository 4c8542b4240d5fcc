"""One command for many jobs: chosen by id or by filter, counted first, then published.

Commands are published without waiting for outcomes; each is decided on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from atelier_contracts.commands import Command
from atelier_gateway.app.errors import InvalidRequest
from atelier_gateway.app.job_query import JobFilter
from atelier_gateway.app.ports import CommandPublisher, JobSearch
from atelier_gateway.app.send_command import command_envelope

MAX_BATCH = 1000
"""Jobs one call may touch; a larger selection must be narrowed (or split) by the client."""
_IN_FLIGHT = 32


@dataclass(frozen=True)
class BatchInput:
    tenant: str
    request_id: str
    body: Command
    ids: tuple[str, ...] | None = None
    filter: JobFilter | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class BatchResult:
    matched: int
    submitted: list[str]
    """Ids a command was published for (empty on a dry run)."""


async def batch_command(
    cmd: BatchInput,
    *,
    search: JobSearch,
    publisher: CommandPublisher,
    clock: Callable[[], datetime],
) -> BatchResult:
    if (cmd.ids is None) == (cmd.filter is None):
        raise InvalidRequest("Give exactly one of ids and filter.")
    if cmd.ids is not None:
        wanted = list(dict.fromkeys(cmd.ids))
        if len(wanted) > MAX_BATCH:
            raise InvalidRequest(f"At most {MAX_BATCH} jobs per call.")
        matched = await search.existing(cmd.tenant, wanted)
    else:
        assert cmd.filter is not None
        matched = await search.match(cmd.tenant, cmd.filter, MAX_BATCH + 1)
        if len(matched) > MAX_BATCH:
            raise InvalidRequest(f"The filter matches more than {MAX_BATCH} jobs; narrow it.")
    if cmd.dry_run:
        return BatchResult(matched=len(matched), submitted=[])
    await publish_each(cmd.tenant, cmd.request_id, matched, lambda _: cmd.body, publisher, clock)
    return BatchResult(matched=len(matched), submitted=matched)


async def publish_each(
    tenant: str,
    request_id: str,
    job_ids: list[str],
    body_for: Callable[[str], Command],
    publisher: CommandPublisher,
    clock: Callable[[], datetime],
) -> None:
    """Publish a command per job, a bounded number at a time; the first failure is raised."""
    for start in range(0, len(job_ids), _IN_FLIGHT):
        chunk = job_ids[start : start + _IN_FLIGHT]
        await asyncio.gather(
            *(
                publisher.publish(command_envelope(tenant, job_id, request_id, body_for(job_id), clock()))
                for job_id in chunk
            )
        )
