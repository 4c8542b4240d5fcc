"""The ports the use cases need: publishing commands, reading the read models, signing links."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from atelier_contracts.blobstore import Staging
from atelier_contracts.budgets import BudgetLimit, BudgetSpend
from atelier_contracts.commands import Command, CommandOutcome
from atelier_contracts.common import Artifact
from atelier_contracts.envelope import Envelope
from atelier_contracts.snapshot import JobView
from atelier_contracts.uploads import Ingested, IngestReply, IngestRequest
from atelier_gateway.app.idempotency import ClaimResult, IdempotencyClaim, StoredResponse
from atelier_gateway.app.job_query import JobFilter, PageRow, Position, SortKey


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


@dataclass(frozen=True)
class TagInfo:
    name: str
    job_count: int
    """Visible jobs carrying the tag."""
    created_at: datetime | None
    """None for a tag used on jobs but never created in the registry."""


class CommandPublisher(Protocol):
    async def publish(self, envelope: Envelope[Command]) -> None:
        """Store the command durably (JetStream acknowledged it) or raise ``Unavailable``."""
        ...

    async def request(self, envelope: Envelope[Command], wait_s: float) -> CommandOutcome | None:
        """Store the command asking for an answer; the orchestrator's outcome, or None if none
        came within ``wait_s`` (the command is stored and will still be decided)."""
        ...

    async def ask(self, subject: str, msg_id: str, payload: bytes, about: str, wait_s: float) -> bytes | None:
        """Store any command (a session's) on ``subject`` asking for an answer: the answer's bytes,
        or None if none came within ``wait_s``."""
        ...


class JobReader(Protocol):
    """Queries over the read models, always scoped to one tenant; raise ``Unavailable`` when SQL is."""

    async def job(self, tenant: str, job_id: str) -> JobView | None:
        """The job's snapshot, or None when the tenant has no such job."""
        ...

    async def last_seq(self, tenant: str, job_id: str) -> int | None:
        """The stream sequence the job's row was projected up to, deleted jobs included."""
        ...

    async def events(
        self, tenant: str, job_id: str, after: tuple[int, int] | None = None, limit: int | None = None
    ) -> list[StoredEvent] | None:
        """The job's events in log order (those after position ``after``, at most ``limit``), or
        None when the tenant has no such job."""
        ...

    async def asset(self, tenant: str, asset_id: str) -> StoredAsset | None:
        """The asset, or None when it does not exist or belongs to another tenant's job."""
        ...


@dataclass(frozen=True)
class FoundJob:
    id: str
    status: str


class JobSearch(Protocol):
    """Filtered, keyset-paginated queries over a tenant's visible (not deleted) jobs."""

    async def page(
        self, tenant: str, flt: JobFilter, sort: SortKey, after: Position | None, limit: int
    ) -> list[PageRow]:
        """Up to ``limit`` jobs in ``sort`` order, strictly after ``after`` (ties broken by id)."""
        ...

    async def match(self, tenant: str, flt: JobFilter, limit: int) -> list[FoundJob]:
        """Up to ``limit`` jobs matching ``flt``, oldest first."""
        ...

    async def existing(self, tenant: str, job_ids: list[str]) -> list[FoundJob]:
        """Those of ``job_ids`` that are visible jobs of the tenant, in the given order."""
        ...

    async def tagged(self, tenant: str, tag: str) -> list[JobView]:
        """Every visible job carrying ``tag``."""
        ...


class TagRegistry(Protocol):
    """The tenant's tag names: the gateway's own registry joined with the tags jobs carry."""

    async def tags(self, tenant: str) -> list[TagInfo]:
        """Registered tags and tags used on visible jobs, by name."""
        ...

    async def in_use(self, tenant: str, name: str) -> bool:
        """True when the tag is registered or carried by a visible job."""
        ...

    async def create(self, tenant: str, name: str, now: datetime) -> bool:
        """Register ``name``; False when it was registered already."""
        ...

    async def rename(self, tenant: str, old: str, new: str) -> bool:
        """Rename the registry row; False when ``old`` was not registered (nothing to rename)."""
        ...

    async def delete(self, tenant: str, name: str) -> bool:
        """Remove the registry row; False when there was none."""
        ...


class IdempotencyStore(Protocol):
    """Requests by (tenant, Idempotency-Key): the first claim wins, later ones see its fate."""

    async def claim(self, claim: IdempotencyClaim) -> ClaimResult:
        """Insert an in-progress row, or report the live row already there (expired ones are absent)."""
        ...

    async def complete(self, claim: IdempotencyClaim, response: StoredResponse) -> None:
        """Store the response of a request this claim still owns."""
        ...

    async def release(self, claim: IdempotencyClaim) -> None:
        """Forget the claim (the request failed with 5xx or an error), so the client may retry."""
        ...

    async def prune(self, now: datetime) -> int:
        """Delete rows expired at ``now``; how many were deleted."""
        ...


LinkCheck = Literal["ok", "expired", "invalid"]


class UrlSigner(Protocol):
    """Makes and checks expiring download links."""

    def sign(self, asset_id: str, now: datetime) -> SignedLink: ...

    def verify(self, asset_id: str, expires: str | None, sig: str | None, now: datetime) -> LinkCheck:
        """``ok`` for a link this deployment signed that has not expired, ``expired`` for one
        that has, ``invalid`` for anything else (altered, forged, malformed: raw query values)."""
        ...


class BlobLocator(Protocol):
    """Where a blob's bytes live on this machine (``atelier_contracts.blobstore.Blobs``)."""

    def path_of(self, key: str) -> Path:
        """The path for ``key``; raises ``BlobNotFound`` for a malformed key."""
        ...

    def stage(self) -> Staging:
        """A file in the store's staging area, for bytes that are not a blob yet (an upload)."""
        ...

    def discard_staged(self, key: str) -> None: ...


@dataclass(frozen=True)
class Upload:
    """A sanitised upload: what the media service made of it, and whose it is."""

    id: str
    tenant: str
    filename: str
    info: Ingested
    created_at: datetime


class UploadStore(Protocol):
    async def add(self, upload: Upload) -> Upload:
        """Store it, or answer the upload stored before with the same id."""
        ...

    async def get(self, tenant: str, upload_id: str) -> Upload | None: ...

    async def recent(self, tenant: str, limit: int) -> list[Upload]: ...

    async def job_file(self, tenant: str, asset_id: str) -> Artifact | None:
        """A file a job of the tenant made, as another job's input (an upload's peer: a kind's
        ``uploads`` may name asset ids); None when there is none, or it is another tenant's."""
        ...


class Ingest(Protocol):
    async def ingest(self, request: IngestRequest) -> IngestReply:
        """The media service's answer; raises ``Unavailable`` when none comes."""
        ...


class Analytics(Protocol):
    """Usage, cost and provider health, aggregated from the provider-call read model."""

    async def usage(
        self, tenant: str, start: datetime | None, end: datetime | None, group_by: str
    ) -> list[dict[str, Any]]: ...

    async def providers(
        self, tenant: str, since: datetime, capability: str | None
    ) -> list[dict[str, Any]]: ...

    async def summary(self, tenant: str, now: datetime) -> dict[str, Any]: ...

    async def provider_states(self, now: datetime) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Budget:
    """A budget and where it stands: ``project`` is "" for the tenant's own."""

    project: str
    limit: BudgetLimit
    spend: BudgetSpend
    period: str
    """The period the limit counts now: this month (``2026-11``) or ``total``."""

    @property
    def spent_usd(self) -> float:
        return self.spend.spent(self.period)

    @property
    def alerted(self) -> bool:
        return self.period in self.spend.alerted


class BudgetStore(Protocol):
    """Budget limits per tenant and project (the routers enforce them and keep the spend)."""

    async def of_tenant(self, tenant: str) -> list[Budget]: ...

    async def put(self, tenant: str, project: str, limit: BudgetLimit) -> Budget: ...

    async def remove(self, tenant: str, project: str) -> bool: ...


@dataclass(frozen=True)
class LogHead:
    """A job's last commit: its stream sequence, and when the stream stored it (its clock)."""

    seq: int
    at: datetime


class JobLog(Protocol):
    """Where each job's event log ends, and the projector's progress towards it."""

    async def head(self, job_id: str) -> LogHead | None:
        """The job's last commit (None: no such job); ``Unavailable`` when NATS is."""
        ...

    async def command_pending(self, job_id: str) -> bool:
        """Whether a command for the job is stored and not yet decided."""
        ...

    async def projected(self, job_id: str, seq: int, timeout_s: float) -> bool:
        """Wait until the read model has the job at ``seq`` or later; False if not within
        ``timeout_s``."""
        ...

    def behind(self, job_id: str, head: LogHead) -> bool:
        """Whether the projector's notices show the read model behind ``head`` and about to
        reach it: a notice of an earlier commit of the job in the last second, or none yet of a
        commit stored in the last second while this reader listened. False says only that the
        notices do not show it (SQL tells)."""
        ...

    async def log_head(self, stream: str, subject: str) -> int | None:
        """Where any log subject ends (a session's, a schedule's; None: empty)."""
        ...

    async def job_at(self, tenant: str, job_id: str, at: int) -> JobView | None:
        """The job as it stood after its commits up to stream sequence ``at``, folded from its log
        by the orchestrator (None: no such job, or not yet); ``Unavailable`` when none answers."""
        ...
