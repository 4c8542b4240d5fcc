"""One command for many jobs: chosen by id or by filter, counted first, then published.

Commands are published without waiting for outcomes; each is decided on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from atelier_contracts.commands import CancelJob, Command
from atelier_contracts.snapshot import JobStatus
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


Outcome = Literal["submitted", "would_submit", "skipped", "not_found"]


@dataclass(frozen=True)
class BatchItem:
    id: str
    outcome: Outcome
    reason: str | None = None
    """Why it was skipped (``already succeeded``) or not found."""


@dataclass(frozen=True)
class BatchResult:
    matched: int
    """Jobs found (visible to the tenant), skipped ones included."""
    submitted: list[str]
    """Ids a command was published for (empty on a dry run)."""
    items: list[BatchItem]
    """One per id asked for, or per job the filter matched, in that order."""


def skip_reason(body: Command, status: str) -> str | None:
    """Why the command cannot change a job in this state, judged from the read model (the
    orchestrator decides each published command again on the job's log)."""
    if isinstance(body, CancelJob) and status in JobStatus.TERMINAL:
        return f"already {status}"
    return None


async def batch_command(
    cmd: BatchInput,
    *,
    search: JobSearch,
    publisher: CommandPublisher,
    clock: Callable[[], datetime],
) -> BatchResult:
    if (cmd.ids is None) == (cmd.filter is None):
        raise InvalidRequest("Give exactly one of ids and filter.")
    missing: list[str] = []
    if cmd.ids is not None:
        wanted = list(dict.fromkeys(cmd.ids))
        if len(wanted) > MAX_BATCH:
            raise InvalidRequest(f"At most {MAX_BATCH} jobs per call.")
        found = await search.existing(cmd.tenant, wanted)
        known = {f.id for f in found}
        missing = [job_id for job_id in wanted if job_id not in known]
    else:
        assert cmd.filter is not None
        found = await search.match(cmd.tenant, cmd.filter, MAX_BATCH + 1)
        if len(found) > MAX_BATCH:
            raise InvalidRequest(f"The filter matches more than {MAX_BATCH} jobs; narrow it.")
    skipped = {f.id: reason for f in found if (reason := skip_reason(cmd.body, f.status)) is not None}
    chosen = [f.id for f in found if f.id not in skipped]
    go: Outcome = "would_submit" if cmd.dry_run else "submitted"
    by_id = {
        **{f.id: BatchItem(f.id, go) for f in found if f.id not in skipped},
        **{job_id: BatchItem(job_id, "skipped", reason) for job_id, reason in skipped.items()},
        **{job_id: BatchItem(job_id, "not_found", "no such job") for job_id in missing},
    }
    order = list(dict.fromkeys(cmd.ids)) if cmd.ids is not None else [f.id for f in found]
    items = [by_id[job_id] for job_id in order]
    if not cmd.dry_run:
        await publish_each(cmd.tenant, cmd.request_id, chosen, lambda _: cmd.body, publisher, clock)
    return BatchResult(matched=len(found), submitted=[] if cmd.dry_run else chosen, items=items)


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
