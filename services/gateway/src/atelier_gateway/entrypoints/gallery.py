"""``GET /v1/gallery``: the outputs of the tenant's jobs and sessions, newest first, filtered,
each with a signed download link; ``next`` is the cursor of the following page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from atelier_contracts.common import Artifact, BlobRef
from atelier_gateway.app.aggregates import existing
from atelier_gateway.app.gallery import GalleryFilter, GalleryItem, gallery_page, session_jobs
from atelier_gateway.app.get_job import signed_asset
from atelier_gateway.app.sessions import SESSIONS
from atelier_gateway.entrypoints.aggregates import call_of, ports_of
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.problems import problem_responses
from atelier_gateway.entrypoints.render import file_urls
from atelier_gateway.entrypoints.schemas import IsoDatetime

router = APIRouter(prefix="/v1/gallery", tags=["gallery"])


@router.get(
    "",
    summary="Outputs across jobs and sessions, newest first",
    responses=problem_responses(404, 422, 500, 503),
)
async def gallery(
    request: Request,
    deps: DepsDep,
    kind: Annotated[
        list[str] | None, Query(description="The file's kind: image, video, audio, text.")
    ] = None,
    job_kind: Annotated[
        list[str] | None, Query(description="The job's kind: studio, export, clip, ...")
    ] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    session: Annotated[str | None, Query(max_length=64, description="Only a session's rounds.")] = None,
    start: Annotated[IsoDatetime | None, Query(alias="from", description="Inclusive (ISO 8601).")] = None,
    end: Annotated[IsoDatetime | None, Query(alias="to", description="Exclusive (ISO 8601).")] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="In the job's title or the file's name.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    job_ids = None
    if session is not None:  # a session's files are its rounds' jobs' files
        view = await existing(SESSIONS, call_of(deps, request, session), ports_of(deps, deps.sessions))
        job_ids = session_jobs(view)
    flt = GalleryFilter(
        kinds=tuple(kind or ()),
        job_kinds=tuple(job_kind or ()),
        tag=tag,
        job_ids=job_ids,
        created_after=start,
        created_before=end,
        q=q,
    )
    items, nxt = await gallery_page(deps.gallery, deps.settings.tenant, flt, cursor, limit)
    url, now = file_urls(request), deps.clock()

    def link(item: GalleryItem) -> str:
        blob = BlobRef(key="", size=item.size, content_type=item.content_type)
        return url(
            signed_asset(
                deps.signer, now, item.id, item.step, Artifact(name=item.name, kind=item.kind, blob=blob)
            )
        )

    return {
        "items": [
            {
                "id": i.id,
                "job_id": i.job_id,
                "job_kind": i.job_kind,
                "title": i.title,
                "step": i.step,
                "name": i.name,
                "kind": i.kind,
                "content_type": i.content_type,
                "size": i.size,
                "created_at": i.created_at.isoformat(),
                "url": link(i),
            }
            for i in items
        ],
        "next": nxt,
    }
