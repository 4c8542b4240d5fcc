"""``GET /v1/kinds``: the job kinds this deployment runs, each with its input's JSON Schema."""

from __future__ import annotations

import functools
from typing import Any

import msgspec
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from atelier_contracts.capabilities import CAPABILITY_PARAMS
from atelier_contracts.kinds import KINDS, JobKind
from atelier_gateway.entrypoints.problems import problem_responses

router = APIRouter(prefix="/v1/kinds", tags=["kinds"])


class KindOut(BaseModel):
    name: str
    description: str
    partial_ready_after: str | None = Field(description="The step whose success makes a job partial_ready.")
    deadline_s: float = Field(description="How long a job of this kind may take, by default.")
    input_schema: dict[str, Any] = Field(description="JSON Schema of the kind's `input`.")
    example: dict[str, Any] = Field(description="An `input` that fits.")
    steps: list[KindStepOut] = Field(
        description="The steps the example makes (a step with a planner adds more when it succeeds)."
    )


class KindStepOut(BaseModel):
    name: str = Field(description="The name `simulate` keys and `/steps/{step}/...` routes use.")
    capability: str
    needs: list[str]
    plans_more: bool = Field(description="Its result plans more steps (fan-out).")
    review: str | None = Field(description="A review gate's mode (manual, auto, both), if it is one.")
    params: dict[str, Any] = Field(description="The parameters the example binds for the step.")
    params_schema: dict[str, Any] = Field(
        description="JSON Schema of what the step's capability takes (checked before any worker sees it)."
    )


class KindList(BaseModel):
    items: list[KindOut]


def _out(kind: JobKind[Any]) -> KindOut:
    return KindOut(
        name=kind.name,
        description=kind.description,
        partial_ready_after=kind.partial_ready_after,
        deadline_s=kind.deadline_s,
        input_schema=kind.schema(),
        example=dict(kind.example),
        steps=[
            KindStepOut(
                name=s.name,
                capability=s.capability,
                needs=list(s.needs),
                plans_more=s.planner is not None,
                review=s.review.mode if s.review else None,
                params=s.params,
                params_schema=_params_schema(s.capability),
            )
            for s in kind.example_steps()
        ],
    )


@functools.cache
def _params_schema(capability: str) -> dict[str, Any]:
    schema = CAPABILITY_PARAMS.get(capability)
    return msgspec.json.schema(schema) if schema is not None else {}


@router.get("", summary="List job kinds", responses=problem_responses(500))
async def list_kinds() -> KindList:
    return KindList(items=[_out(KINDS[name]) for name in sorted(KINDS)])


@router.get("/{name}", summary="Read a job kind", responses=problem_responses(404, 422, 500))
async def read_kind(name: str) -> KindOut:
    kind = KINDS.get(name)
    if kind is None:
        detail = f"No job kind {name!r}; known kinds: {', '.join(sorted(KINDS))}."
        raise HTTPException(status_code=404, detail=detail)
    return _out(kind)
