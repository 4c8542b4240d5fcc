"""Read your writes: a job as the read model shows it once it has caught up with the log.

A submit is answered once its command is stored, a command once the orchestrator decided it —
before the projector has written either into SQL; a read right after must not show the job as
it was (or not at all). So a read looks where the job's log ends (one direct get; for a job
unknown to SQL and the log, whether its submit waits in the command stream) and, if SQL is
behind, waits for the projector's notice — briefly: past ``wait_s`` (or with NATS down) it
answers with what SQL has. Where the notices already say SQL is behind, it waits before it
reads, and reads once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from atelier_contracts.snapshot import JobView
from atelier_gateway.app.errors import Unavailable
from atelier_gateway.app.ports import JobLog, JobReader, LogHead

log = logging.getLogger(__name__)

ANNOUNCED_WAIT_S = 0.25
"""How long a read waits for the notice it expects before it looks at SQL itself."""


async def read_job(
    tenant: str, job_id: str, *, reader: JobReader, joblog: JobLog, wait_s: float
) -> JobView | None:
    try:
        head = await joblog.head(job_id)
    except Unavailable:
        return await reader.job(tenant, job_id)  # the log is out of reach: SQL is all there is
    # The notices show the projector about to write the job's last commit: wait a moment for it
    # and read once (a read now would be of what is about to change; read right after a job's
    # end, as clients do, it was a read in two or three, ~0.4 ms of the gateway's CPU each, for
    # nothing). No notice in time (lost, or the projector is slow): look at SQL as below.
    if (
        head is not None
        and joblog.behind(job_id, head)
        and await joblog.projected(job_id, head.seq, min(wait_s, ANNOUNCED_WAIT_S))
    ):
        return await reader.job(tenant, job_id)
    job = await reader.job(tenant, job_id)
    if head is None and job is None:
        # Submitted but not decided yet (its command waits in the stream): its first commit is
        # what to wait for. Or decided between the two looks: look again.
        try:
            pending = await joblog.command_pending(job_id)
            head = LogHead(seq=1, at=datetime.now(UTC)) if pending else await joblog.head(job_id)
        except Unavailable:
            return job
    if head is None or (job is not None and job.version >= head.seq):
        return job
    if job is None and await reader.last_seq(tenant, job_id) is not None:
        # The row exists: projected since the first read, or deleted (which stays so).
        return await reader.job(tenant, job_id)
    if await joblog.projected(job_id, head.seq, wait_s):
        return await reader.job(tenant, job_id)
    log.warning("the read model is behind the log", extra={"job_id": job_id, "head": head.seq})
    return await reader.job(tenant, job_id)
