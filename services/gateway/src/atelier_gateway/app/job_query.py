"""What a job list asks for: filters, a sort order, and the opaque cursor of keyset pagination."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from atelier_contracts.snapshot import JobView
from atelier_gateway.app.errors import InvalidRequest

SortField = Literal["created_at", "priority", "updated_at"]


@dataclass(frozen=True)
class SortKey:
    field: SortField
    descending: bool

    @property
    def name(self) -> str:
        return f"{'-' if self.descending else ''}{self.field}"


SORTS: dict[str, SortKey] = {
    key.name: key
    for key in (
        SortKey(field, descending)
        for field in ("created_at", "priority", "updated_at")
        for descending in (True, False)
    )
}
DEFAULT_SORT = "-created_at"


@dataclass(frozen=True)
class JobFilter:
    """Every given criterion must hold; within one list criterion, any value matches — except
    ``tags``: a job must carry all of them."""

    statuses: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    priorities: tuple[int, ...] = ()
    priority_min: int | None = None
    priority_max: int | None = None
    tags: tuple[str, ...] = ()
    created_after: datetime | None = None
    """Inclusive."""
    created_before: datetime | None = None
    """Exclusive."""
    q: str | None = None
    """Case-insensitive substring of the title."""


@dataclass(frozen=True)
class Position:
    """Where a row stands in a sort order: its sort value as stored, then its id to break ties."""

    sort_value: datetime | int
    job_id: str


@dataclass(frozen=True)
class PageRow:
    job: JobView
    position: Position


def encode_cursor(sort: SortKey, position: Position) -> str:
    value = position.sort_value
    raw = json.dumps(
        {
            "s": sort.name,
            "v": value.isoformat() if isinstance(value, datetime) else value,
            "id": position.job_id,
        },
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: SortKey) -> Position:
    """The position a cursor stands for; ``InvalidRequest`` for anything this gateway did not make."""
    invalid = InvalidRequest("The cursor is malformed or belongs to another sort order; start over.")
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error):
        raise invalid from None
    if not isinstance(raw, dict) or set(raw) != {"s", "v", "id"} or raw["s"] != sort.name:
        raise invalid
    job_id, value = raw["id"], raw["v"]
    if not isinstance(job_id, str) or not 0 < len(job_id) <= 64:
        raise invalid
    if sort.field == "priority":
        if type(value) is not int:
            raise invalid
        return Position(sort_value=value, job_id=job_id)
    if not isinstance(value, str):
        raise invalid
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise invalid from None
    return Position(sort_value=as_utc(at), job_id=job_id)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes (SQLite's, or a client's) are taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
