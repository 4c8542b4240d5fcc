"""The gallery: outputs (images, clips, audio, exports) across jobs and sessions, filtered, in
keyset pages whose cursor is the last item's (created_at, id)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from atelier_contracts.sessions import SessionView
from atelier_gateway.app.job_query import Position, SortKey, decode_cursor, encode_cursor

GALLERY_SORT = SortKey("created_at", descending=True)


@dataclass(frozen=True)
class GalleryFilter:
    kinds: tuple[str, ...] = ()
    """The file's kind: image, video, audio, text, ..."""
    job_kinds: tuple[str, ...] = ()
    tag: str | None = None
    job_ids: tuple[str, ...] | None = None
    """A session's: its rounds' jobs."""
    created_after: datetime | None = None
    created_before: datetime | None = None
    q: str | None = None
    """Case-insensitive, in the job's title or the file's name."""


@dataclass(frozen=True)
class GalleryItem:
    id: str
    job_id: str
    job_kind: str
    title: str
    step: str
    name: str
    kind: str
    content_type: str
    size: int
    created_at: datetime


class Gallery(Protocol):
    async def page(
        self, tenant: str, flt: GalleryFilter, after: Position | None, limit: int
    ) -> list[GalleryItem]: ...


def session_jobs(view: SessionView) -> tuple[str, ...]:
    return tuple(r.job_id for r in view.rounds)


async def gallery_page(
    gallery: Gallery, tenant: str, flt: GalleryFilter, cursor: str | None, limit: int
) -> tuple[list[GalleryItem], str | None]:
    """A page, and the cursor of the next one (None: this was the last)."""
    after = decode_cursor(cursor, GALLERY_SORT) if cursor else None
    items = await gallery.page(tenant, flt, after, limit + 1)
    more = len(items) > limit
    items = items[:limit]
    nxt = (
        encode_cursor(GALLERY_SORT, Position(items[-1].created_at, items[-1].id)) if more and items else None
    )
    return items, nxt
