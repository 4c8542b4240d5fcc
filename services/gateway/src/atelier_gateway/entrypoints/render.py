"""Turns use-case results into the API's JSON shapes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, overload
from urllib.parse import quote, urlencode

import msgspec
from fastapi import Request, Response
from pydantic import BaseModel

from atelier_contracts.common import BlobRef, ErrorInfo, Origin
from atelier_contracts.snapshot import JobStatus, JobView, StepStatus, StepView
from atelier_gateway.app.get_job import JobAsset, JobDetails
from atelier_gateway.app.ports import StoredEvent, Upload, UrlSigner
from atelier_gateway.entrypoints.schemas import (
    AssetOut,
    ErrorOut,
    EventOut,
    Job,
    JobEvents,
    JobLinks,
    JobSummary,
    OriginOut,
    ReviewOut,
    StepOut,
    UploadLinks,
    UploadOut,
)

FileUrl = Callable[[JobAsset], str]


def json_response(
    model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """``model`` as FastAPI would answer it (by alias), serialised once. A route that returns
    its response model has it dumped, validated again and serialised by FastAPI: on the hot
    routes (submit, read a job) that is the larger part of the response's cost."""
    return Response(
        model.model_dump_json(by_alias=True),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


def file_urls(request: Request) -> FileUrl:
    """Absolute signed download links, on the host the client used."""

    # One route lookup per app, not per request or asset (Starlette walks every route, raising
    # an exception at each that does not match: 8 % of a GET's CPU).
    path = getattr(request.app.state, "download_path", None)
    if path is None:
        path = request.app.state.download_path = request.app.url_path_for(
            "download_file", asset_id="__asset__"
        )
    template: str | None = None  # made at the first file: most answers (a submit) have none

    def url(asset: JobAsset) -> str:
        nonlocal template
        if template is None:
            template = str(path.make_absolute_url(base_url=request.base_url))
        query = urlencode({"expires": asset.link.expires, "sig": asset.link.sig})
        return f"{template.replace('__asset__', quote(asset.id, safe=''))}?{query}"

    return url


def job(details: JobDetails, file_url: FileUrl) -> Job:
    snap = details.job
    return Job(
        **_summary_fields(snap),
        input=snap.input,
        assets=[
            AssetOut(
                id=a.id,
                step=a.step,
                name=a.name,
                kind=a.kind,
                content_type=a.content_type,
                size=a.size,
                url=file_url(a),
            )
            for a in details.assets
        ],
        reviews=[ReviewOut(**msgspec.structs.asdict(r)) for r in snap.reviews],
        origin=_origin(snap.origin) if snap.origin else None,
    )


def job_summary(snap: JobView) -> JobSummary:
    return JobSummary(**_summary_fields(snap))


def job_events(job_id: str, events: list[StoredEvent], *, more: bool = False) -> JobEvents:
    """A page of a job's history; ``next`` (when there is more) continues after its last event."""
    last = f"{events[-1].seq}.{events[-1].index}" if events else None
    return JobEvents(
        job_id=job_id,
        events=[
            EventOut(
                event_id=e.event_id,
                seq=e.seq,
                index=e.index,
                position=f"{e.seq}.{e.index}",
                type=e.type,
                at=e.at,
                data=e.data,
            )
            for e in events
        ],
        next=f"{job_path(job_id)}/events?after={last}" if more and last else None,
    )


def job_path(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


def _summary_fields(snap: JobView) -> dict[str, Any]:
    return {
        "id": snap.id,
        "kind": snap.kind,
        "title": snap.title,
        "status": snap.status,
        "priority": snap.priority,
        "tags": snap.tags,
        "created_at": _utc(snap.created_at),
        "updated_at": _utc(snap.updated_at),
        "finished_at": _utc(snap.finished_at),
        "attempts": snap.attempts,
        # An error an earlier attempt met is history (the events keep it), not the job's state.
        "last_error": None if snap.status == JobStatus.SUCCEEDED else _error(snap.last_error),
        "model_used": snap.model_used,
        "steps": [_step(s) for s in snap.steps.values()],
        "links": JobLinks(self_=job_path(snap.id), events=f"{job_path(snap.id)}/events"),
    }


def _step(step: StepView) -> StepOut:
    return StepOut(
        name=step.name,
        capability=step.capability,
        needs=list(step.needs),
        status=step.status,
        attempts=step.attempts,
        provider=step.provider,
        model=step.model,
        fallbacks=list(step.fallbacks),
        last_error=None if step.status == StepStatus.SUCCEEDED else _error(step.last_error),
        started_at=_utc(step.started_at),
        finished_at=_utc(step.finished_at),
    )


def _error(info: ErrorInfo | None) -> ErrorOut | None:
    if info is None:
        return None
    return ErrorOut(code=info.code, message=info.message, at=_utc(info.at))


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: None) -> None: ...
def _utc(value: datetime | None) -> datetime | None:
    # Snapshots carry whatever offset the writer used; the API always answers in UTC.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _origin(origin: Origin) -> OriginOut:
    if origin.schedule:
        return OriginOut(schedule=origin.schedule, fire_time=origin.fire_time)
    return OriginOut(session=origin.session, round=origin.round)


def upload_asset_id(upload_id: str, name: str) -> str:
    """The download id of an upload's file (``original`` or ``thumbnail``)."""
    return f"{upload_id}.{name}"


def upload(found: Upload, signer: UrlSigner, now: datetime, file_url: FileUrl) -> UploadOut:
    info = found.info

    def link(name: str, blob: BlobRef) -> str:
        aid = upload_asset_id(found.id, name)
        asset = JobAsset(
            id=aid,
            step="upload",
            name=name,
            kind=info.kind,
            content_type=blob.content_type,
            size=blob.size,
            link=signer.sign(aid, now),
        )
        return file_url(asset)

    image = info.kind == "image"
    return UploadOut(
        id=found.id,
        kind=info.kind,
        filename=found.filename,
        content_type=info.original.content_type,
        format=info.format,
        source_type=info.source_type,
        size=info.original.size,
        sha256=info.original.key,
        width=info.width if image else None,
        height=info.height if image else None,
        has_alpha=info.has_alpha if image else None,
        duration_s=None if image else info.duration_s,
        sample_rate=None if image else info.sample_rate,
        channels=None if image else info.channels,
        created_at=_utc(found.created_at),
        links=UploadLinks(
            original=link("original", info.original),
            thumbnail=link("thumbnail", info.thumbnail) if info.thumbnail else None,
        ),
    )
