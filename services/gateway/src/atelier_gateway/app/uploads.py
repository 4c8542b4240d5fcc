"""Uploads: a staged file made safe by the media service, stored, and named by its content.

An upload's id is derived from the tenant and the sanitised original's hash, so the same file
uploaded twice is one upload — and a retried upload (its answer lost) is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from atelier_contracts import ids
from atelier_contracts.common import Artifact
from atelier_contracts.kinds import InvalidInput, JobKind
from atelier_contracts.uploads import IngestRefused, IngestRequest
from atelier_gateway.app.errors import (
    UPLOAD_REFUSALS,
    FileNotFound,
    InputInvalid,
    MediaInvalid,
    Unavailable,
    UploadNotFound,
)
from atelier_gateway.app.ports import Ingest, Upload, UploadStore

MAX_FILENAME = 255


def upload_id(tenant: str, original_key: str) -> str:
    return ids.derived_id("upl", tenant, original_key)


def clean_filename(name: str) -> str:
    """The client's file name as a label only (never a path): its last segment, printable."""
    last = name.replace("\\", "/").rsplit("/", 1)[-1]
    printable = "".join(ch for ch in last if ch.isprintable())
    return printable.strip()[:MAX_FILENAME]


async def ingest_upload(
    tenant: str, staged: str, filename: str, *, ingest: Ingest, store: UploadStore, now: datetime
) -> tuple[Upload, bool]:
    """The upload the staged bytes make, and whether it is new (False: the same file before)."""
    reply = await ingest.ingest(IngestRequest(tenant=tenant, staged=staged, filename=filename))
    if isinstance(reply, IngestRefused):
        refusal = UPLOAD_REFUSALS.get(reply.code) or (Unavailable if reply.status >= 500 else MediaInvalid)
        raise refusal(reply.detail)
    made = Upload(
        id=upload_id(tenant, reply.original.key),
        tenant=tenant,
        filename=clean_filename(filename),
        info=reply,
        created_at=now,
    )
    stored = await store.add(made)
    return stored, stored is made


async def get_upload(tenant: str, upload_id_: str, store: UploadStore) -> Upload:
    found = await store.get(tenant, upload_id_)
    if found is None:
        raise UploadNotFound(f"No upload {upload_id_!r}.")
    return found


def original_artifact(upload: Upload) -> Artifact:
    """The upload as a job's input file (what the steps that need its step receive)."""
    info = upload.info
    meta: dict[str, Any] = {"upload": upload.id, "format": info.format}
    if info.kind == "image":
        meta |= {"width": info.width, "height": info.height, "has_alpha": info.has_alpha}
    else:
        meta |= {"duration_s": info.duration_s, "sample_rate": info.sample_rate}
    return Artifact(name="original", kind=info.kind, blob=info.original, meta=meta)


async def attach_uploads(
    tenant: str, kind: JobKind[Any], job_input: Mapping[str, Any], store: UploadStore
) -> dict[str, Any]:
    """The input with the uploads it names resolved into ``attached`` (``JobKind.uploads``), or
    ``upload_not_found`` naming the field. An input that does not parse is left for
    ``check_input`` to describe."""
    if "attached" in job_input:
        forged: dict[str, object] = {
            "loc": ["body", "input", "attached"],
            "msg": "set by the gateway, not by clients",
            "type": "forbidden",
        }
        raise InputInvalid([forged])
    if kind.uploads is None:
        return dict(job_input)
    try:
        named = kind.uploads(kind.parse(job_input))
    except InvalidInput:
        return dict(job_input)
    attached: dict[str, Any] = {}
    for named_id in named:
        if named_id.startswith("ast_"):  # a file an earlier job of the tenant made
            made = await store.job_file(tenant, named_id)
            if made is None:
                raise FileNotFound(f"No file {named_id!r} of any of your jobs.")
            attached[named_id] = msgspec.to_builtins(made)
            continue
        found = await store.get(tenant, named_id)
        if found is None:
            raise UploadNotFound(f"No upload {named_id!r} (POST /v1/uploads makes one).")
        attached[named_id] = msgspec.to_builtins(original_artifact(found))
    return {**job_input, "attached": attached}
