"""The request id of the request being served, for problems, logs and command correlation."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("atelier_request_id", default="")


def current_request_id() -> str:
    return request_id_var.get()
