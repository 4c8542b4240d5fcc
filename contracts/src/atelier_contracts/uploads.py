"""Uploads: what a client's file may be, and the ingest request between gateway and media.

The gateway streams an upload into the blob store's staging area, refusing it as soon as it is
too large or its first bytes show a type that is not allowed; the media service then ingests it
(``INGEST_SUBJECT``, request and reply over core NATS): the type read again from the content,
the image decoded with only that format's decoder and encoded anew without any metadata. What
it answers, the sanitised original and its thumbnail, is the upload.

The type always comes from the content (``sniff``), never from the file name or the declared
content type.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

import msgspec
import puremagic

from atelier_contracts.common import BlobRef

INGEST_SUBJECT = "atelier.media.ingest"
"""Core NATS request/reply, served by the media service's replicas as one queue group."""
INGEST_QUEUE = "media-ingest"

SNIFF_BYTES = 8192
"""How much of the start of a file ``sniff`` needs to name its type."""

IMAGE_TYPES: Mapping[str, str] = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
}
"""Image content types an upload may have, with the one Pillow decoder each is opened with."""
AUDIO_TYPES: Mapping[str, str] = {
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "audio/ogg": "ogg",
    "audio/flac": "flac",
}
"""Audio content types an upload may have, with the one demuxer each is opened with."""
DEFAULT_TYPES = (*IMAGE_TYPES, *AUDIO_TYPES)

# What the sniffer says for the allowed types, under each name it uses.
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "audio/wave": "audio/wav",
    "audio/x-wav": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/mp3": "audio/mpeg",
    "audio/x-flac": "audio/flac",
    "application/ogg": "audio/ogg",
    "audio/vorbis": "audio/ogg",
    "audio/opus": "audio/ogg",
}


def sniff(head: bytes) -> str | None:
    """The content type the first bytes of a file show, or None when nothing is recognised.

    Only the signature at the start counts: a file that merely contains an image, or an image
    with something appended (a polyglot), is named by its start — the decode and re-encode that
    follow are what strip anything appended.
    """
    if not head:
        return None
    try:
        found = puremagic.from_string(head[:SNIFF_BYTES], mime=True)
    except (puremagic.PureError, ValueError):
        return None
    if not found:
        return None
    mime = found.lower()
    return _ALIASES.get(mime, mime)


def allowed_types(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """``ATELIER_UPLOAD_TYPES`` (comma-separated content types), limited to the types there is a
    decoder for; all of them by default."""
    env = os.environ if env is None else env
    raw = env.get("ATELIER_UPLOAD_TYPES", "")
    if not raw.strip():
        return frozenset(DEFAULT_TYPES)
    asked = {t.strip().lower() for t in raw.split(",") if t.strip()}
    unknown = asked - set(DEFAULT_TYPES)
    if unknown:
        raise ValueError(
            f"ATELIER_UPLOAD_TYPES names types no decoder is allowed for: {', '.join(sorted(unknown))}; "
            f"choose from {', '.join(DEFAULT_TYPES)}"
        )
    return frozenset(asked)


class IngestRequest(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    staged: str
    """The staging key the gateway wrote the bytes under; the media service discards it."""
    filename: str = ""


class Ingested(msgspec.Struct, frozen=True, kw_only=True, tag="ingested"):
    """A sanitised upload: the re-encoded original and a thumbnail (images), or the audio master."""

    kind: Literal["image", "audio"]
    original: BlobRef
    thumbnail: BlobRef | None = None
    format: str
    """``jpeg``, ``png``, ``webp`` (images, as stored), ``wav`` (audio)."""
    source_type: str
    """The content type the upload's bytes showed."""
    width: int = 0
    height: int = 0
    has_alpha: bool = False
    duration_s: float = 0.0
    sample_rate: int = 0
    channels: int = 0


class IngestRefused(msgspec.Struct, frozen=True, kw_only=True, tag="refused"):
    """Why an upload cannot be taken: ``code`` is an error code, ``status`` its HTTP status."""

    code: str
    status: int
    detail: str


IngestReply = Ingested | IngestRefused
ingest_reply_decoder: msgspec.json.Decoder[IngestReply] = msgspec.json.Decoder(IngestReply)
