"""Downloads behind signed, expiring links."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from atelier_gateway.app.open_file import OpenFileInput, open_file
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.problems import problem_responses

router = APIRouter(prefix="/v1/files", tags=["files"])


# HEAD answers like GET without the bytes (curl -I on a link); one documented operation is enough.
@router.head("/{asset_id}", include_in_schema=False)
@router.get(
    "/{asset_id}",
    name="download_file",
    summary="Download a file by its signed link",
    response_class=FileResponse,
    responses={
        200: {"description": "The file's bytes, with its stored content type.", "content": {"*/*": {}}},
        206: {"description": "The byte range asked for (`Range`)."},
        304: {"description": "Not modified: the `If-None-Match` tag is the file's."},
        **problem_responses(403, 404, 422, 500, 503),
    },
)
async def download(
    asset_id: str,
    request: Request,
    deps: DepsDep,
    # Plain strings: a malformed link must get the same 403 url_invalid as a forged one, never a 422.
    expires: Annotated[str | None, Query(description="Unix time the link expires.")] = None,
    sig: Annotated[str | None, Query(description="HMAC-SHA256 signature, hex.")] = None,
) -> Response:
    found = await open_file(
        OpenFileInput(tenant=deps.settings.tenant, asset_id=asset_id, expires=expires, sig=sig),
        reader=deps.reader,
        signer=deps.signer,
        blobs=deps.blobs,
        now=deps.clock(),
    )
    headers = {"ETag": found.etag, "Cache-Control": "private, max-age=3600"}
    if not_modified(request.headers.get("if-none-match", ""), found.etag):
        return Response(status_code=304, headers=headers)
    # Starlette answers Range (206, 416) and HEAD, and writes Content-Disposition for the name.
    return FileResponse(found.path, media_type=found.content_type, filename=found.filename, headers=headers)


def not_modified(if_none_match: str, etag: str) -> bool:
    """RFC 9110's weak comparison, as If-None-Match asks: ``*``, or any listed tag."""
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))
