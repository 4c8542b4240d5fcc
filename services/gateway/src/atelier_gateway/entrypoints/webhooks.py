"""Webhook endpoints: register (the secret is shown once), list, change, remove; each endpoint's
delivery log (attempts, statuses, latency), and a delivery sent again."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from atelier_contracts import ids
from atelier_gateway.app.errors import WebhookNotFound
from atelier_gateway.app.webhooks import (
    Attempt,
    Delivery,
    Endpoint,
    check_patterns,
    check_secret,
    new_secret,
)
from atelier_gateway.bootstrap import Deps
from atelier_gateway.entrypoints.bodies import Strict
from atelier_gateway.entrypoints.deps import DepsDep
from atelier_gateway.entrypoints.idempotency import IdempotentRoute
from atelier_gateway.entrypoints.problems import problem_responses

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=IdempotentRoute)

EndpointId = Annotated[str, Path(min_length=1, max_length=64)]


class EndpointBody(Strict):
    url: str = Field(min_length=1, max_length=2048, examples=["https://example.com/atelier-hooks"])
    events: list[str] = Field(
        min_length=1, max_length=64, description="Types (`job.succeeded`), families (`step.*`) or `*`."
    )
    description: str = Field(default="", max_length=500)
    secret: str | None = Field(
        default=None,
        pattern=r"^whsec_[A-Za-z0-9+/=]{24,100}$",
        description="`whsec_` + base64; made for you when absent (and shown only in this answer).",
    )


class EndpointPatch(Strict):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    events: list[str] | None = Field(default=None, min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class EndpointOut(BaseModel):
    id: str
    url: str
    events: list[str]
    description: str
    enabled: bool
    created_at: datetime
    secret: str | None = Field(None, description="Only when the endpoint is made.")


class EndpointList(BaseModel):
    items: list[EndpointOut]


class AttemptOut(BaseModel):
    n: int
    at: datetime
    status_code: int | None
    latency_ms: float
    error: str


class DeliveryOut(BaseModel):
    id: str = Field(description="Sent as `webhook-id`: the same on every attempt.")
    event_id: str
    event_type: str
    job_id: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    log: list[AttemptOut]


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


def _out(e: Endpoint, *, with_secret: bool = False) -> EndpointOut:
    return EndpointOut(
        id=e.id,
        url=e.url,
        events=e.events,
        description=e.description,
        enabled=e.enabled,
        created_at=e.created_at,
        secret=e.secret if with_secret else None,
    )


def _delivery(d: Delivery, attempts: list[Attempt]) -> DeliveryOut:
    return DeliveryOut(
        id=d.id,
        event_id=d.event_id,
        event_type=d.event_type,
        job_id=d.job_id,
        status=d.status,  # type: ignore[arg-type]
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at if d.status == "pending" else None,
        created_at=d.created_at,
        finished_at=d.finished_at,
        log=[
            AttemptOut(n=a.n, at=a.at, status_code=a.status_code, latency_ms=a.latency_ms, error=a.error)
            for a in attempts
        ],
    )


async def _endpoint(deps: Deps, endpoint_id: str) -> Endpoint:
    found = await deps.webhooks.endpoint(deps.settings.tenant, endpoint_id)
    if found is None:
        raise WebhookNotFound(f"No webhook endpoint {endpoint_id!r}.")
    return found


@router.post("", status_code=201, summary="Register a webhook endpoint", responses=problem_responses(422))
async def create(body: EndpointBody, deps: DepsDep, response: Response) -> EndpointOut:
    deps.destinations.check_url(body.url)
    if body.secret is not None:
        check_secret(body.secret)
    endpoint = Endpoint(
        id="whk_" + ids.uuid7().replace("-", ""),
        tenant=deps.settings.tenant,
        url=body.url,
        events=check_patterns(body.events),
        secret=body.secret or new_secret(),
        description=body.description,
        enabled=True,
        created_at=deps.clock(),
    )
    await deps.webhooks.add_endpoint(endpoint)
    deps.dispatch.endpoints_changed()
    response.headers["Location"] = f"/v1/webhooks/{endpoint.id}"
    return _out(endpoint, with_secret=True)


@router.get("", summary="The webhook endpoints")
async def list_endpoints(deps: DepsDep) -> EndpointList:
    return EndpointList(items=[_out(e) for e in await deps.webhooks.endpoints(deps.settings.tenant)])


@router.get("/{endpoint_id}", summary="One webhook endpoint", responses=problem_responses(404, 422))
async def get_endpoint(endpoint_id: EndpointId, deps: DepsDep) -> EndpointOut:
    return _out(await _endpoint(deps, endpoint_id))


@router.patch("/{endpoint_id}", summary="Change a webhook endpoint", responses=problem_responses(404, 422))
async def patch_endpoint(endpoint_id: EndpointId, body: EndpointPatch, deps: DepsDep) -> EndpointOut:
    endpoint = await _endpoint(deps, endpoint_id)
    if body.url is not None:
        deps.destinations.check_url(body.url)
    given = body.model_dump(exclude_none=True)
    if body.events is not None:
        given["events"] = check_patterns(body.events)
    changed = dataclasses.replace(endpoint, **given)
    await deps.webhooks.update_endpoint(changed)
    deps.dispatch.endpoints_changed()
    return _out(changed)


@router.delete("/{endpoint_id}", status_code=204, summary="Remove a webhook endpoint and its log",
               responses=problem_responses(404, 422))  # fmt: skip
async def delete_endpoint(endpoint_id: EndpointId, deps: DepsDep) -> Response:
    if not await deps.webhooks.remove_endpoint(deps.settings.tenant, endpoint_id):
        raise WebhookNotFound(f"No webhook endpoint {endpoint_id!r}.")
    deps.dispatch.endpoints_changed()
    return Response(status_code=204)


@router.get(
    "/{endpoint_id}/deliveries", summary="The endpoint's delivery log", responses=problem_responses(404, 422)
)
async def deliveries(
    endpoint_id: EndpointId,
    deps: DepsDep,
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveryList:
    await _endpoint(deps, endpoint_id)
    found = await deps.webhooks.deliveries(endpoint_id, status, limit)
    return DeliveryList(items=[_delivery(d, attempts) for d, attempts in found])


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/replay",
    status_code=202,
    summary="Send a delivery again now",
    responses=problem_responses(404, 422),
)
async def replay(endpoint_id: EndpointId, delivery_id: EndpointId, deps: DepsDep) -> DeliveryOut:
    await _endpoint(deps, endpoint_id)
    delivery = await deps.webhooks.replay(endpoint_id, delivery_id, deps.clock())
    if delivery is None:
        raise WebhookNotFound(f"No delivery {delivery_id!r} of this endpoint.")
    deps.dispatch.wake()
    return _delivery(delivery, [])
