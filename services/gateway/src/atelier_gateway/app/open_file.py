"""Open a file behind a signed link: 403 ``url_invalid`` for a link altered or not ours, 403
``url_expired`` for one of ours past its time, 404 for a file that is gone."""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from atelier_contracts.blobstore import BlobNotFound
from atelier_gateway.app.errors import FileNotFound, UrlExpired, UrlInvalid
from atelier_gateway.app.ports import BlobLocator, JobReader, UrlSigner

# mimetypes answers differently across platforms for these; users expect the common extension.
_EXTENSIONS = {
    "text/plain": "txt",
    "text/markdown": "md",
    "application/json": "json",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/mp4": "m4a",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "video/mp4": "mp4",
    "application/zip": "zip",
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class OpenFileInput:
    tenant: str
    asset_id: str
    expires: str | None
    sig: str | None


@dataclass(frozen=True)
class FileToSend:
    path: Path
    content_type: str
    filename: str
    etag: str
    """Strong: the blob's SHA-256, so the same bytes have the same tag on every machine."""


async def open_file(
    req: OpenFileInput, *, reader: JobReader, signer: UrlSigner, blobs: BlobLocator, now: datetime
) -> FileToSend:
    # The signature is checked before any lookup: an unsigned request learns nothing, not even timing.
    check = signer.verify(req.asset_id, req.expires, req.sig, now)
    if check == "invalid":
        raise UrlInvalid()
    if check == "expired":
        raise UrlExpired()
    asset = await reader.asset(req.tenant, req.asset_id)
    if asset is None:
        raise FileNotFound()
    try:
        path = blobs.path_of(asset.blob_key)
    except BlobNotFound:
        raise FileNotFound() from None
    if not path.is_file():
        raise FileNotFound()
    filename = download_name(asset.name, asset.content_type)
    return FileToSend(
        path=path, content_type=asset.content_type, filename=filename, etag=f'"{asset.blob_key}"'
    )


def download_name(name: str, content_type: str) -> str:
    """``<name>.<ext>``, safe inside a quoted header value whatever the stored name holds."""
    stem = _UNSAFE.sub("_", name).strip("._") or "file"
    return f"{stem}.{extension(content_type)}"


def extension(content_type: str) -> str:
    base = content_type.split(";", 1)[0].strip().lower()
    if base in _EXTENSIONS:
        return _EXTENSIONS[base]
    guessed = mimetypes.guess_extension(base)
    return guessed.lstrip(".") if guessed else "bin"
