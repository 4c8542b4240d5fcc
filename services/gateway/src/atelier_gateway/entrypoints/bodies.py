"""Request bodies of the job-lifecycle and tag routes (unknown fields are refused)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from atelier_gateway.app.batch import MAX_BATCH
from atelier_gateway.app.job_query import JobFilter
from atelier_gateway.entrypoints.schemas import (
    IsoDatetime,
    JobStatusName,
    KindName,
    Priority,
    Tag,
    TagQuery,
    Title,
)

T = TypeVar("T")


def _listed(value: Any) -> Any:
    """A single value where a list is expected is a list of one."""
    return [value] if isinstance(value, str | int) else value


OneOrMany = Annotated[list[T], BeforeValidator(_listed)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CancelBody(Strict):
    reason: str = Field(default="", max_length=500, description="Why; recorded with the cancellation.")


class ReviewBody(Strict):
    verdict: Literal["approve", "reject"]
    feedback: str = Field(
        default="", max_length=2000, description="On a rejection, what to do differently: the steps get it."
    )
    reviewer: str = Field(default="", max_length=100, description="Who decides (recorded with the verdict).")


class UpdateJobBody(Strict):
    """Fields to change; a field left out (or null) stays as it is."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"title": "The fox, revised", "priority": 7, "tags": ["bedtime"]}]},
    )

    title: Title | None = None
    priority: Priority | None = None
    tags: list[Tag] | None = Field(default=None, max_length=20, description="The job's whole new tag list.")

    @model_validator(mode="after")
    def _changes_something(self) -> UpdateJobBody:
        if self.title is None and self.priority is None and self.tags is None:
            raise ValueError("give at least one of title, priority and tags")
        return self


class JobFilterBody(Strict):
    """The filters of ``GET /v1/jobs``, as JSON."""

    status: OneOrMany[JobStatusName] = []
    kind: OneOrMany[KindName] = []
    priority: OneOrMany[Priority] = []
    priority_min: Priority | None = None
    priority_max: Priority | None = None
    tag: OneOrMany[TagQuery] = Field(default=[], description="The job must carry all of these.")
    created_after: IsoDatetime | None = Field(default=None, description="Inclusive.")
    created_before: IsoDatetime | None = Field(default=None, description="Exclusive.")
    q: str | None = Field(default=None, min_length=1, max_length=200, description="Substring of the title.")

    def to_filter(self) -> JobFilter:
        return JobFilter(
            statuses=tuple(self.status),
            kinds=tuple(self.kind),
            priorities=tuple(self.priority),
            priority_min=self.priority_min,
            priority_max=self.priority_max,
            tags=tuple(self.tag),
            created_after=self.created_after,
            created_before=self.created_before,
            q=self.q,
        )


class BatchBody(Strict):
    """Exactly one of ``ids`` and ``filter``; ``dry_run`` only counts."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"filter": {"status": ["queued"], "tag": ["bedtime"]}, "dry_run": True}],
            # What _one_selection checks, said in the schema for clients and generators.
            "oneOf": [{"required": ["ids"]}, {"required": ["filter"]}],
        },
    )

    ids: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        None, min_length=1, max_length=MAX_BATCH
    )
    filter: JobFilterBody | None = None
    dry_run: bool = False

    @model_validator(mode="after")
    def _one_selection(self) -> BatchBody:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give exactly one of ids and filter")
        return self


class BatchCancelBody(BatchBody):
    reason: str = Field(default="", max_length=500)


class TagBody(Strict):
    name: Tag
