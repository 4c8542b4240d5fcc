"""The ports the use cases need: publishing commands, reading the read models, signing links."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from atelier_contracts.commands import Command
from atelier_contracts.envelope import Envelope
from atelier_contracts.snapshot import JobSnapshot


@dataclass(frozen=True)
class StoredEvent:
    """One row of the job event log as projected into SQL."""

    event_id: str
    seq: int
    index: int
    type: str
    at: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class StoredAsset:
    """A file a succeeded step produced, with the key of its blob."""

    id: str
    job_id: str
    step: str
    name: str
    kind: str
    content_type: str
    blob_key: str
    size: int


@dataclass(frozen=True)
class SignedLink:
    expires: int
    """Unix time after which the link is refused."""
    sig: str


class CommandPublisher(Protocol):
    async def publish(self, envelope: Envelope[Command]) -> None:
        """Store the command durably (JetStream acknowledged it) or raise ``Unavailable``."""
        ...


class JobReader(Protocol):
    """Queries over the read models, always scoped to one tenant; raise ``Unavailable`` when SQL is."""

    async def job(self, tenant: str, job_id: str) -> JobSnapshot | None:
        """The job's snapshot, or None when the tenant has no such job."""
        ...

    async def jobs(
        self, tenant: str, *, statuses: list[str], kinds: list[str], limit: int
    ) -> list[JobSnapshot]:
        """Newest first; an empty filter list means any value."""
        ...

    async def events(self, tenant: str, job_id: str) -> list[StoredEvent] | None:
        """The job's events in log order, or None when the tenant has no such job."""
        ...

    async def asset(self, tenant: str, asset_id: str) -> StoredAsset | None:
        """The asset, or None when it does not exist or belongs to another tenant's job."""
        ...


class UrlSigner(Protocol):
    """Makes and checks expiring download links; checking never says why a link was refused."""

    def sign(self, asset_id: str, now: datetime) -> SignedLink: ...

    def verify(self, asset_id: str, expires: str | None, sig: str | None, now: datetime) -> bool:
        """True only for an untampered, unexpired link (raw query values, possibly malformed)."""
        ...


class BlobLocator(Protocol):
    """Where a blob's bytes live on this machine (``FileBlobStore`` is one)."""

    def path_of(self, key: str) -> Path:
        """The path for ``key``; raises ``BlobNotFound`` for a malformed key."""
        ...
