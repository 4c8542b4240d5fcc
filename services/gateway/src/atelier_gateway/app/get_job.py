"""Read one job with signed links to the files its succeeded steps produced."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from atelier_contracts import ids
from atelier_contracts.common import Artifact
from atelier_contracts.snapshot import JobView, StepStatus
from atelier_gateway.app.errors import JobNotFound
from atelier_gateway.app.ports import JobLog, JobReader, SignedLink, UrlSigner
from atelier_gateway.app.read_job import read_job


@dataclass(frozen=True)
class JobAsset:
    id: str
    step: str
    name: str
    kind: str
    content_type: str
    size: int
    link: SignedLink


@dataclass(frozen=True)
class JobDetails:
    job: JobView
    assets: list[JobAsset]


async def get_job(
    tenant: str,
    job_id: str,
    *,
    reader: JobReader,
    joblog: JobLog,
    signer: UrlSigner,
    now: datetime,
    wait_s: float,
    at: int | None = None,
) -> JobDetails:
    """The job now (read your writes), or with ``at`` as it stood after the commit at that
    stream sequence (its log folded again: the past is never in SQL)."""
    if at is not None:
        if await reader.job(tenant, job_id) is None:  # deleted, another tenant's, or none at all
            raise JobNotFound(f"No job {job_id!r}.")
        past = await joblog.job_at(tenant, job_id, at)
        if past is None:
            raise JobNotFound(f"The job {job_id!r} did not exist yet at sequence {at}.")
        return JobDetails(job=past, assets=job_assets(past, signer, now))
    job = await read_job(tenant, job_id, reader=reader, joblog=joblog, wait_s=wait_s)
    if job is None:
        raise JobNotFound(f"No job {job_id!r}.")
    return JobDetails(job=job, assets=job_assets(job, signer, now))


def job_assets(job: JobView, signer: UrlSigner, now: datetime) -> list[JobAsset]:
    """The outputs of succeeded steps, in step order; ids match the projector's ``assets`` rows."""
    out: list[JobAsset] = []
    for step in job.steps.values():
        if step.status != StepStatus.SUCCEEDED:
            continue
        for artifact in step.outputs:
            aid = ids.asset_id(job.id, step.name, artifact.name)
            out.append(signed_asset(signer, now, aid, step.name, artifact))
    return out


def signed_asset(signer: UrlSigner, now: datetime, asset_id: str, step: str, artifact: Artifact) -> JobAsset:
    """A file as the API lists it, with a signed link (a job's, a studio candidate, the gallery's)."""
    return JobAsset(
        id=asset_id,
        step=step,
        name=artifact.name,
        kind=artifact.kind,
        content_type=artifact.blob.content_type,
        size=artifact.blob.size,
        link=signer.sign(asset_id, now),
    )
