"""What the session and schedule routes share: the call a request makes, and its answer body."""

from __future__ import annotations

from typing import TypeVar

import msgspec
from fastapi import Request, Response

from atelier_contracts import ids
from atelier_gateway.app.aggregates import Call, Documents, Ports
from atelier_gateway.bootstrap import Deps
from atelier_gateway.entrypoints.context import current_request_id
from atelier_gateway.entrypoints.idempotency import idempotent_request

V = TypeVar("V")
_encode = msgspec.json.Encoder()


def call_of(deps: Deps, request: Request, key: str) -> Call:
    # Under an Idempotency-Key the command's message id comes from the key and the request, so a
    # client's retry after a lost answer is the same message: de-duplicated, decided once.
    idempotent = idempotent_request(request)
    msg_id = (
        ids.derived_id("cmd", deps.settings.tenant, idempotent.key, idempotent.request_hash)
        if idempotent
        else None
    )
    return Call(deps.settings.tenant, key, current_request_id(), msg_id)


def ports_of(deps: Deps, documents: Documents[V]) -> Ports[V]:
    return Ports(
        deps.publisher,
        documents,
        deps.joblog,
        deps.clock,
        wait_s=deps.settings.command_wait_s,
        read_wait_s=deps.settings.read_wait_s,
    )


def body(view: object, status_code: int = 200) -> Response:
    """A contract's struct as the JSON answer (its schema is in the OpenAPI document)."""
    return Response(_encode.encode(view), status_code=status_code, media_type="application/json")
