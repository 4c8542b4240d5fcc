"""The JSON shapes of the HTTP API (pydantic models, so OpenAPI documents them)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import msgspec
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from atelier_contracts.kinds import KINDS
from atelier_contracts.snapshot import JobStatus

MAX_INPUT_BYTES = 64 * 1024
"""A job's input travels inside one NATS message; this keeps it far below the payload limit."""

JobStatusName = Literal[
    "queued", "running", "partial_ready", "awaiting_review", "succeeded", "failed", "cancelled"
]
if set(get_args(JobStatusName)) != set(JobStatus.ALL):  # pragma: no cover - guards contract drift
    raise RuntimeError("JobStatusName is out of date with atelier_contracts.snapshot.JobStatus.ALL")

_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _not_a_number(value: object) -> object:
    # pydantic reads a number as seconds since 1970: `to=0.5` would mean the first second of 1970.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO 8601 date-time such as 2026-12-01T10:00:00Z, not a number")
    return value


IsoDatetime = Annotated[datetime, BeforeValidator(_not_a_number)]
"""A date-time parameter: ISO 8601 only."""

TAG_PATTERN = r"^[\w][\w.:-]*$"
Tag = Annotated[
    str,
    Field(
        min_length=1,
        max_length=50,
        pattern=TAG_PATTERN,
        description="1 to 50 characters: letters, digits, `_`, `-`, `.` and `:`, not starting with "
        "`-`, `.` or `:` (no spaces or `/`: a tag is also a path segment, `/v1/tags/{name}`).",
    ),
]
"""A tag a request gives to a job or the registry."""
TagQuery = Annotated[str, Field(min_length=1, max_length=50)]
"""A tag to look for: also one made before names were checked."""


def _no_nul(text: str) -> str:
    if "\x00" in text:  # PostgreSQL text cannot hold it; nothing downstream wants it
        raise ValueError("must not contain NUL characters")
    return text


Title = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_no_nul)]
Priority = Annotated[int, Field(ge=0, le=9, strict=True)]


def _known_kind(name: str) -> str:
    if name not in KINDS:
        raise ValueError(f"unknown job kind {name!r}; known kinds: {', '.join(sorted(KINDS))}")
    return name


KindName = Annotated[
    str,
    Field(min_length=1, max_length=32, json_schema_extra={"enum": sorted(KINDS)}),
    AfterValidator(_known_kind),
]
"""A job kind of the registry (``GET /v1/kinds``)."""


class SubmitJobBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "kind": "story",
                    "title": "The fox and the lantern",
                    "input": {"prompt": "A shy fox finds a lantern in the snow."},
                    "priority": 0,
                    "tags": ["bedtime"],
                }
            ]
        },
    )

    kind: str = Field(min_length=1, max_length=32, description="A job kind, e.g. 'story'.")
    title: Title | None = Field(default=None, description="Shown in lists; the kind's name when left out.")
    input: dict[str, Any] = Field(
        description="What to make, in the shape the kind's input schema gives (`GET /v1/kinds`)."
    )
    priority: Priority = 0
    tags: list[Tag] = Field(default_factory=list, max_length=20)

    @field_validator("input")
    @classmethod
    def _input_fits_a_message(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(msgspec.json.encode(value)) > MAX_INPUT_BYTES:
            raise ValueError(f"input must encode to at most {MAX_INPUT_BYTES} bytes of JSON")
        return value


class ErrorOut(BaseModel):
    code: str
    message: str
    at: datetime


class StepOut(BaseModel):
    name: str
    capability: str
    needs: list[str]
    status: str
    attempts: int
    provider: str | None
    model: str | None
    fallbacks: list[str] = Field(
        default=[],
        description='Why earlier providers were passed over: "fell back to b/m2: a/m1 answered 429".',
    )
    last_error: ErrorOut | None
    started_at: datetime | None
    finished_at: datetime | None


class AssetOut(BaseModel):
    id: str
    step: str
    name: str
    kind: str
    content_type: str
    size: int
    url: str = Field(description="An absolute, signed and expiring download link.")


class JobLinks(BaseModel):
    self_: str = Field(serialization_alias="self")
    events: str


class JobSummary(BaseModel):
    id: str
    kind: str
    title: str
    status: str = Field(
        description="queued, running, partial_ready, awaiting_review, succeeded, failed or cancelled."
    )
    priority: int
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    attempts: int
    last_error: ErrorOut | None
    model_used: dict[str, str] = Field(description="step → 'provider/model' for succeeded steps.")
    steps: list[StepOut]
    links: JobLinks


class ReviewOut(BaseModel):
    step: str
    round: int
    verdict: str = Field(description="approve or reject.")
    feedback: str
    reviewer: str = Field(description='Who decided: a name, "auto:<model>", or "timeout".')
    auto: bool
    at: datetime


class OriginOut(BaseModel):
    """What started the job: a session's round, or a schedule's firing."""

    session: str | None = Field(default=None, description="The session whose round started the job.")
    round: int | None = None
    schedule: str | None = Field(default=None, description="The schedule whose firing started the job.")
    fire_time: datetime | None = None


class Job(JobSummary):
    input: dict[str, Any]
    assets: list[AssetOut]
    reviews: list[ReviewOut] = Field(default=[], description="Every verdict on the job's review gates.")
    origin: OriginOut | None = Field(default=None, description="What started the job, if not a client.")


class JobList(BaseModel):
    items: list[JobSummary]
    count: int = Field(description="Items on this page.")
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class DeletedJob(BaseModel):
    id: str
    deleted: bool = Field(description="True once the read model no longer shows the job.")


class BatchItemOut(BaseModel):
    id: str
    outcome: Literal["submitted", "would_submit", "skipped", "not_found"]
    reason: str | None = Field(default=None, description='Why skipped ("already succeeded") or not found.')


class BatchOut(BaseModel):
    matched: int = Field(description="Jobs found, skipped ones included.")
    dry_run: bool | None = Field(default=None, description="Present (true) on a dry run.")
    submitted: int | None = Field(default=None, description="Commands published (absent on a dry run).")
    skipped: int = Field(
        description="Jobs found that the command cannot change (e.g. cancel a succeeded job)."
    )
    ids: list[str] | None = Field(default=None, description="The jobs a command was published for.")
    results: list[BatchItemOut] = Field(description="One per id asked for (or job matched), in order.")


class TagOut(BaseModel):
    name: str
    job_count: int
    created_at: datetime | None = Field(description="Null for a tag used on jobs but never created.")


class TagList(BaseModel):
    items: list[TagOut]


class TagChangeOut(BaseModel):
    name: str
    jobs_updated: int = Field(description="Jobs an UpdateJob was published for.")
    job_ids: list[str]


class EventOut(BaseModel):
    event_id: str
    seq: int = Field(description="Stream sequence of the commit holding the event.")
    index: int = Field(description="Position of the event inside its commit.")
    position: str = Field(description="`<seq>.<index>`: the event's id in the live streams.")
    type: str
    at: datetime
    data: dict[str, Any]


class JobEvents(BaseModel):
    job_id: str
    events: list[EventOut]
    next: str | None = Field(None, description="The next page, when this one is not the last.")


class Health(BaseModel):
    status: Literal["ok"]
    service: str


class Ready(BaseModel):
    status: Literal["ready"]
    checks: dict[str, str]


class Version(BaseModel):
    service: str
    version: str


class UploadLinks(BaseModel):
    original: str = Field(description="Signed, expiring link to the sanitised original.")
    thumbnail: str | None = Field(default=None, description="Signed link to the 256 px WebP thumbnail.")


class UploadOut(BaseModel):
    id: str = Field(description="Derived from the file's content: the same file is the same upload.")
    kind: Literal["image", "audio"]
    filename: str = Field(description="The client's file name, as a label (never used as a path).")
    content_type: str = Field(description="What the stored original is.")
    format: str = Field(description="`jpeg`, `png` or `webp` (images; GIF is stored as PNG), `wav` (audio).")
    source_type: str = Field(description="The type the uploaded bytes showed.")
    size: int
    sha256: str = Field(description="Of the stored (sanitised) original.")
    width: int | None = None
    height: int | None = None
    has_alpha: bool | None = None
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    created_at: datetime
    links: UploadLinks


class Uploads(BaseModel):
    uploads: list[UploadOut]


class PresetOut(BaseModel):
    name: str
    description: str
    format: Literal["webp", "jpeg", "png"]
    long_edge: int
    quality: int
    png_when_transparent: bool
    upscale: bool


class Presets(BaseModel):
    presets: list[PresetOut]


class AudioCacheEntryOut(BaseModel):
    key: str
    voice: str
    provider: str
    model: str
    text_preview: str = Field(description="The first 80 characters of what was spoken.")
    text_sha256: str
    content_type: str
    size: int = Field(description="Bytes of the stored speech.")
    hits: int = Field(description="Narrations served from this entry instead of a provider call.")
    repairs: int = Field(description="Times its file was gone and the speech made again.")
    created_at: datetime
    updated_at: datetime = Field(description="Last made or served; the TTL counts from here.")


class AudioCacheEntries(BaseModel):
    entries: list[AudioCacheEntryOut]
