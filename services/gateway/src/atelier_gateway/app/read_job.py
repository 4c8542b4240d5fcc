"""Read your writes: a job as the read model shows it once it has caught up with the log.

A command's answer comes from the orchestrator's decision, before the projector has written it
into SQL; a read right after must not show the job as it was (or not at all). So a read looks
where the job's log ends (one direct get) and, if SQL is behind, waits for the projector's
notice — briefly: past ``wait_s`` (or with NATS down) it answers with what SQL has.
"""

from __future__ import annotations

import logging

from atelier_contracts.snapshot import JobSnapshot
from atelier_gateway.app.errors import Unavailable
from atelier_gateway.app.ports import JobLog, JobReader

log = logging.getLogger(__name__)


async def read_job(
    tenant: str, job_id: str, *, reader: JobReader, joblog: JobLog, wait_s: float
) -> JobSnapshot | None:
    job = await reader.job(tenant, job_id)
    try:
        head = await joblog.head(job_id)
    except Unavailable:
        return job  # the log is out of reach: SQL is all there is
    if head is None or (job is not None and job.version >= head):
        return job
    if job is None and await reader.last_seq(tenant, job_id) is not None:
        # The row exists: projected since the first read, or deleted (which stays so).
        return await reader.job(tenant, job_id)
    if await joblog.projected(job_id, head, wait_s):
        return await reader.job(tenant, job_id)
    log.warning("the read model is behind the log", extra={"job_id": job_id, "head": head})
    return await reader.job(tenant, job_id)
