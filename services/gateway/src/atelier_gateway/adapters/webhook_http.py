"""Webhook deliveries over HTTP: signed as Standard Webhooks asks, sent only where allowed.

The host is resolved before each attempt and every address it gives is checked, so a name that
points at an internal address (or is changed to, later) gets no request. (A resolver that
answers differently a moment later could still slip through; pinning the connection to the
checked address closes that, and is left for a deployment that needs it.) Redirects are not
followed: a receiver that redirects has not received.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from atelier_gateway.app.webhook_dispatch import Answer
from atelier_gateway.app.webhooks import Delivery, Destinations, Endpoint, WebhookUrlRefused

USER_AGENT = "Atelier-Webhooks/1"
SAID_MAX = 1024
"""Of a receiver's answer, only this much is read (for the delivery log): a hostile receiver
cannot make us hold more."""


async def _first(response: httpx.Response, limit: int) -> bytes:
    got = b""
    async for chunk in response.aiter_raw():
        got += chunk
        if len(got) >= limit:
            break
    return got[:limit]


class HttpPoster:
    def __init__(self, destinations: Destinations, timeout_s: float) -> None:
        self.destinations = destinations
        self.timeout_s = timeout_s
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, trust_env=False)

    async def close(self) -> None:
        await self._client.aclose()

    async def post(self, endpoint: Endpoint, delivery: Delivery, attempt: int) -> Answer:
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._check(endpoint.url)
                sent_at = datetime.now(UTC)
                signature = Webhook(endpoint.secret).sign(delivery.id, sent_at, delivery.payload)
                request = self._client.build_request(
                    "POST",
                    endpoint.url,
                    content=delivery.payload.encode(),
                    headers={
                        "content-type": "application/json",
                        "user-agent": USER_AGENT,
                        "webhook-id": delivery.id,
                        "webhook-timestamp": str(int(sent_at.timestamp())),
                        "webhook-signature": signature,
                        "atelier-event-type": delivery.event_type,
                        "atelier-attempt": str(attempt),
                    },
                )
                response = await self._client.send(request, stream=True)
                try:
                    said = await _first(response, SAID_MAX)
                finally:
                    await response.aclose()
        except WebhookUrlRefused as exc:
            return Answer(None, f"refused: {exc}")
        except TimeoutError:
            return Answer(None, f"no answer within {self.timeout_s:g} s")
        except httpx.HTTPError as exc:
            return Answer(None, f"{type(exc).__name__}: {exc}"[:500])
        except (ValueError, UnicodeError) as exc:  # a host no resolver takes, a secret not base64
            return Answer(None, f"refused: {type(exc).__name__}: {exc}"[:500])
        return Answer(response.status_code, "" if response.is_success else said.decode(errors="replace"))

    async def _check(self, url: str) -> None:
        host = self.destinations.check_url(url)
        if self.destinations.allowed(host):
            return
        try:
            self.destinations.check_address(host)
            return  # an IP, and a public one
        except ValueError:
            pass
        port = httpx.URL(url).port or 443
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise WebhookUrlRefused(f"{host} does not resolve: {exc}") from exc
        for *_, address in infos:
            self.destinations.check_address(str(address[0]))
