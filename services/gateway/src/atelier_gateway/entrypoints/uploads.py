"""Routes under /v1/uploads: a file streamed to the store's staging area, made safe by media.

The multipart body is parsed as it arrives (python-multipart's streaming parser): the file
part's bytes go straight to a staged file, never into memory; the first bytes are sniffed so a
file of a type that is not allowed is refused (415) before the rest is read; the size limit
(``ATELIER_UPLOAD_MAX_BYTES``, enforced by ``BodyLimits``) answers 413 as soon as it is passed.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from atelier_contracts.blobstore import BlobStoreUnavailable, Staging
from atelier_contracts.uploads import SNIFF_BYTES, allowed_types, sniff
from atelier_gateway.app.errors import InvalidRequest, Unavailable, UnsupportedMedia, UploadEmpty
from atelier_gateway.app.ports import Upload
from atelier_gateway.app.uploads import get_upload, ingest_upload
from atelier_gateway.bootstrap import Deps
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.problems import problem_responses
from atelier_gateway.entrypoints.schemas import UploadOut, Uploads

UPLOADS_PATH = "/v1/uploads"
if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

router = APIRouter(prefix=UPLOADS_PATH, tags=["uploads"])
FILE_FIELD = "file"
CLOSE = {"Connection": "close"}


class _FilePart:
    """Collects the ``file`` part of a multipart body into a staged file, sniffing its start."""

    def __init__(self, staging: Staging, allowed: frozenset[str]) -> None:
        self.staging = staging
        self.allowed = allowed
        self.filename = ""
        self.size = 0
        self.found = False
        self._in_file = False
        self._head = bytearray()
        self._checked = False
        self._disposition = b""
        self._header_name = b""
        self._header_value = b""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_part,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._disposition = b""
        self._in_file = False

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_part(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if options.get(b"name") == FILE_FIELD.encode() and not self.found:
            self.found = self._in_file = True
            self.filename = options.get(b"filename", b"").decode("utf-8", "replace")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_file:
            return  # other fields are not read
        chunk = data[start:end]
        self.size += len(chunk)
        if not self._checked:
            self._head += chunk[: SNIFF_BYTES - len(self._head)]
            if len(self._head) >= SNIFF_BYTES:
                self._check()
        self.staging.write(chunk)

    def _part_end(self) -> None:
        if self._in_file and not self._checked and self._head:
            self._check()
        self._in_file = False

    def _check(self) -> None:
        """Refuse early what the media service would refuse anyway (it looks again, wholly)."""
        self._checked = True
        found = sniff(bytes(self._head))
        if found not in self.allowed:
            shown = f"its bytes are {found}" if found else "its bytes are no known type"
            raise UnsupportedMedia(
                f"Not an allowed type ({shown}); allowed: {', '.join(sorted(self.allowed))}."
            )


async def _stage_file(request: Request, deps: Deps) -> tuple[str, str]:
    """Stream the body's ``file`` part into staging; its staging key and file name."""
    media, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if media != b"multipart/form-data" or not boundary:
        raise InvalidRequest(
            "Send the file as multipart/form-data with a part named `file` (curl -F file=@photo.jpg …)."
        )
    try:
        staging = deps.blobs.stage()
    except BlobStoreUnavailable as exc:
        raise Unavailable(f"{exc}; try again.") from None
    part = _FilePart(staging, allowed_types())
    try:
        parser = MultipartParser(boundary, part.callbacks())
        try:
            async for chunk in request.stream():
                parser.write(chunk)
            parser.finalize()
            if parser.state != MultipartState.END:  # finalize() does not check the closing boundary
                raise InvalidRequest("The multipart body ends before its closing boundary.")
            staging.close()
        except FormParserError as exc:
            raise InvalidRequest(f"The multipart body is malformed: {exc}") from None
        except BlobStoreUnavailable as exc:
            raise Unavailable(f"{exc}; try again.") from None
    except BaseException:
        staging.abort()
        raise
    if not part.found:
        deps.blobs.discard_staged(staging.key)
        raise UploadEmpty("The body has no part named `file`.")
    if part.size == 0:
        deps.blobs.discard_staged(staging.key)
        raise UploadEmpty("The file is empty.")
    return staging.key, part.filename


def _out(request: Request, deps: Deps, upload: Upload) -> UploadOut:
    from atelier_gateway.entrypoints import render

    return render.upload(upload, deps.signer, deps.clock(), render.file_urls(request))


@router.post(
    "",
    status_code=201,
    summary="Upload an image or audio file",
    description="Multipart with a part named `file`. The type is read from the bytes; images are "
    "decoded and encoded anew (upright, sRGB, no metadata, long edge capped), audio becomes a WAV "
    "master. The same file uploaded again is the same upload (200).",
    responses={
        200: {"description": "This file was uploaded before: the same upload.", "model": UploadOut},
        **problem_responses(400, 413, 415, 422, 503),
    },
)
async def create(request: Request, deps: DepsDep) -> JSONResponse:
    try:
        staged, filename = await _stage_file(request, deps)
    except (UnsupportedMedia, UploadEmpty, InvalidRequest) as exc:
        exc.close_connection = True  # the rest of the body is not read
        raise
    try:
        upload, new = await ingest_upload(
            deps.settings.tenant, staged, filename, ingest=deps.ingest, store=deps.uploads, now=deps.clock()
        )
    finally:
        with contextlib.suppress(OSError):  # the media service discards it too; either is enough
            deps.blobs.discard_staged(staged)
    body = _out(request, deps, upload).model_dump(mode="json")
    return JSONResponse(
        body, status_code=201 if new else 200, headers={"Location": f"/v1/uploads/{upload.id}"}
    )


@router.get("", summary="Recent uploads", responses=problem_responses(422, 503))
async def recent(request: Request, deps: DepsDep, limit: Annotated[int, Query(ge=1, le=200)] = 50) -> Uploads:
    found = await deps.uploads.recent(deps.settings.tenant, limit)
    return Uploads(uploads=[_out(request, deps, u) for u in found])


@router.get("/{upload_id}", summary="Read an upload", responses=problem_responses(404, 422, 503))
async def read(upload_id: str, request: Request, deps: DepsDep) -> UploadOut:
    return _out(request, deps, await get_upload(deps.settings.tenant, upload_id, deps.uploads))
