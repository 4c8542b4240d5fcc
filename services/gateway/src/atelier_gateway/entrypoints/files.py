"""Downloads behind signed, expiring links."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
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
        **problem_responses(404, 422, 500, 503),
    },
)
async def download(
    asset_id: str,
    deps: DepsDep,
    # Plain strings: a malformed link must get the same 404 as a forged one, never a 422.
    expires: Annotated[str | None, Query(description="Unix time the link expires.")] = None,
    sig: Annotated[str | None, Query(description="HMAC-SHA256 signature, hex.")] = None,
) -> FileResponse:
    found = await open_file(
        OpenFileInput(tenant=deps.settings.tenant, asset_id=asset_id, expires=expires, sig=sig),
        reader=deps.reader,
        signer=deps.signer,
        blobs=deps.blobs,
        now=deps.clock(),
    )
    return FileResponse(found.path, media_type=found.content_type, filename=found.filename)
