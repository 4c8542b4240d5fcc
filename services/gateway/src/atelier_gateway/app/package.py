"""A job's package: the files its succeeded steps made, chosen by kind, with a manifest.

What goes in is decided here, from the job as read (read your writes); the HTTP layer streams
the ZIP as it is built. Members are named ``<step>/<name>.<ext>``; the manifest lists each one
with its size and SHA-256 (its blob key: the store is content-addressed).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atelier_contracts.blobstore import BlobNotFound, extension_for
from atelier_contracts.packages import manifest, member_name
from atelier_contracts.snapshot import JobView, StepStatus
from atelier_gateway.app.errors import FileNotFound, JobNotFound
from atelier_gateway.app.ports import BlobLocator, JobLog, JobReader
from atelier_gateway.app.read_job import read_job


@dataclass(frozen=True)
class Member:
    arcname: str
    path: Path
    size: int


@dataclass(frozen=True)
class Package:
    manifest: bytes
    members: list[Member]
    filename: str

    @property
    def etag(self) -> str:
        """Strong: the manifest names every member by its hash, so it names the whole ZIP."""
        return f'"{hashlib.sha256(self.manifest).hexdigest()}"'


def choose(job: JobView, kinds: Collection[str]) -> list[tuple[str, str, Any]]:
    """``(step, arcname, artifact)`` of the job's files of these kinds (all when empty)."""
    chosen = []
    for step in job.steps.values():
        if step.status != StepStatus.SUCCEEDED:
            continue
        for artifact in step.outputs:
            if kinds and artifact.kind not in kinds:
                continue
            arcname = member_name(step.name, artifact.name, extension_for(artifact.blob.content_type))
            chosen.append((step.name, arcname, artifact))
    return chosen


async def job_package(
    tenant: str,
    job_id: str,
    kinds: Collection[str],
    *,
    reader: JobReader,
    joblog: JobLog,
    blobs: BlobLocator,
    wait_s: float,
) -> Package:
    job = await read_job(tenant, job_id, reader=reader, joblog=joblog, wait_s=wait_s)
    if job is None:
        raise JobNotFound(f"No job {job_id!r}.")
    members, files = [], []
    for step, arcname, artifact in choose(job, kinds):
        try:
            path = blobs.path_of(artifact.blob.key)
        except BlobNotFound:
            path = None
        if path is None or not path.is_file():
            raise FileNotFound(f"The file {arcname} of job {job_id} is gone (its blob was released).")
        members.append(Member(arcname=arcname, path=path, size=path.stat().st_size))
        files.append(
            {
                "path": arcname,
                "step": step,
                "name": artifact.name,
                "kind": artifact.kind,
                "content_type": artifact.blob.content_type,
                "size": artifact.blob.size,
                "sha256": artifact.blob.key,
            }
        )
    about = {"job_id": job.id, "kind": job.kind, "title": job.title, "kinds": sorted(kinds)}
    text = json.dumps(manifest(about, files), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return Package(manifest=text.encode(), members=members, filename=f"{job.title or job.id}.zip")
