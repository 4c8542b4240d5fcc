"""GET /v1/jobs/{id}/package: a job's files as one ZIP, streamed as it is built.

zipstream-ng writes the ZIP on the fly with every member stored (media is compressed already),
so its size is known before the first byte (``Content-Length``), memory stays constant whatever
the size, and ZIP64 is used where a member or the whole passes 4 GiB. Files are read in 1 MiB
chunks in a worker thread.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from zipstream import ZIP_STORED, ZipStream

from atelier_contracts.packages import MANIFEST_NAME
from atelier_gateway.app.errors import InvalidRequest
from atelier_gateway.app.open_file import download_name
from atelier_gateway.app.package import Package, job_package
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.files import not_modified
from atelier_gateway.entrypoints.problems import problem_responses

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
CHUNK = 1 << 20

_KIND = re.compile(r"[a-z][a-z0-9_.-]{0,31}")


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def zip_stream(package: Package) -> ZipStream:
    zs = ZipStream(compress_type=ZIP_STORED, sized=True)
    zs.add(package.manifest, MANIFEST_NAME)
    for member in package.members:
        zs.add(_chunks(member.path), member.arcname, size=member.size)
    return zs


# HEAD answers like GET without the bytes; one documented operation is enough.
@router.head("/{job_id}/package", include_in_schema=False)
@router.get(
    "/{job_id}/package",
    summary="Download a job's files as one ZIP",
    description="`manifest.json` first, then each file of a succeeded step as `<step>/<name>.<ext>`; "
    "`kind` (repeatable: `image`, `audio`, `text`, `thumbnail`, `bundle`, …) chooses which. "
    "Streamed as it is built, with its size known up front.",
    response_class=StreamingResponse,
    responses={
        200: {"description": "The ZIP.", "content": {"application/zip": {}}},
        304: {"description": "Not modified: the `If-None-Match` tag is this package's."},
        **problem_responses(404, 422, 500, 503),
    },
)
async def package(
    job_id: str, request: Request, deps: DepsDep, kind: Annotated[list[str] | None, Query()] = None
) -> Response:
    kinds = [_checked(k) for k in kind or []]
    built = await job_package(
        deps.settings.tenant,
        job_id,
        kinds,
        reader=deps.reader,
        joblog=deps.joblog,
        blobs=deps.blobs,
        wait_s=deps.settings.read_wait_s,
    )
    headers = {"ETag": built.etag, "Cache-Control": "private, max-age=3600"}
    if not_modified(request.headers.get("if-none-match", ""), built.etag):
        return Response(status_code=304, headers=headers)
    zs = zip_stream(built)
    name = download_name(built.filename.removesuffix(".zip"), "application/zip")
    headers |= {"Content-Length": str(len(zs)), "Content-Disposition": f'attachment; filename="{name}"'}
    if request.method == "HEAD":
        return Response(headers=headers, media_type="application/zip")
    return StreamingResponse(iter(zs), headers=headers, media_type="application/zip")


def _checked(kind: str) -> str:
    if not _KIND.fullmatch(kind):
        raise InvalidRequest(f"`kind` {kind!r} is not an asset kind (e.g. image, audio, text).")
    return kind
