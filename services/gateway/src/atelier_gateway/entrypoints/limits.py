"""Request bodies capped before they are read, and bodies that trickle in timed out.

FastAPI reads a body whole before it validates it, so without a cap a 50 MB body costs the
gateway its size in memory several times over before it is refused. Here a declared
``Content-Length`` over the limit is answered 413 at once, without reading; a body without one
(chunked) is counted as it arrives and refused as soon as it passes the limit; and a body whose
next chunk takes longer than ``read_timeout_s`` is answered 408. Each of these closes the
connection, since the rest of the body would otherwise be read as the next request.

A body that is not JSON is refused as such here too (415, not misread as invalid JSON: 422),
except on the paths that take other bodies (uploads are multipart): checked before anything is
read, and without a dependency solved on every route.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from atelier_gateway.entrypoints.problems import problem

CLOSE = {"Connection": "close"}
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class BodyLimits:
    """``max_bytes`` for every body, except the paths ``larger`` names (uploads) with their own."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        read_timeout_s: float,
        larger: Mapping[str, int] | None = None,
        not_json: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.default_max = max_bytes
        self.larger = dict(larger or {})
        self.not_json = not_json
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].rstrip("/")
        max_bytes = self.larger.get(path, self.default_max)
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            refusal = problem(
                413 if declared.isdigit() else 400,
                "input_too_large" if declared.isdigit() else "validation_failed",
                instance=scope["path"],
                detail=f"The body may be at most {max_bytes} bytes; this one declares {declared}.",
                headers=CLOSE,
            )
            await refusal(scope, receive, send)
            return
        if scope["method"] in _WITH_BODY and path not in self.not_json:
            has_body = (declared is not None and declared != "0") or "transfer-encoding" in headers
            media = headers.get("content-type", "").split(";")[0].strip().lower()
            if has_body and not _is_json(media):
                refusal = problem(
                    415,
                    "unsupported_media_type",
                    instance=scope["path"],
                    detail=f"Content-Type {media or '(none)'} is not JSON; send application/json.",
                    headers=CLOSE,
                )
                await refusal(scope, receive, send)
                return
        received = 0
        body_done = False

        async def limited() -> Message:
            nonlocal received, body_done
            if body_done:  # what is asked now is whether the client left (a stream's listener)
                return await receive()
            try:
                async with asyncio.timeout(self.read_timeout_s):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408, f"No part of the body came for {self.read_timeout_s:g} s.", headers=CLOSE
                ) from None
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise HTTPException(413, f"The body may be at most {max_bytes} bytes.", headers=CLOSE)
            return message

        await self.app(scope, limited, send)


def _is_json(media: str) -> bool:
    """``application/json`` or ``application/<anything>+json``: what FastAPI parses as JSON."""
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
