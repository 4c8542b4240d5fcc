"""Webhooks: which events an endpoint gets, what is sent, when a failed delivery is tried again,
and where deliveries may go.

An event's webhook type is its stream event name with a family: ``job.queued`` …
``job.succeeded`` for the job's status, ``step.started`` … for steps, ``job.updated``; an
endpoint names types or ``family.*`` patterns, or ``*``. A delivery is signed as Standard
Webhooks asks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<HMAC-SHA256 of
id.timestamp.body>``), the id the same on every attempt so a receiver can drop a repeat.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from standardwebhooks import Webhook

from atelier_contracts.events import Commit
from atelier_gateway.app.errors import InvalidRequest
from atelier_gateway.app.streams import job_events

SECRET_PREFIX = "whsec_"
FAMILIES = ("job", "step")


class WebhookUrlRefused(InvalidRequest):
    code = "webhook_url_refused"


@dataclass(frozen=True)
class Endpoint:
    id: str
    tenant: str
    url: str
    events: list[str]
    secret: str
    description: str
    enabled: bool
    created_at: datetime


@dataclass(frozen=True)
class Delivery:
    id: str
    endpoint_id: str
    tenant: str
    event_id: str
    event_type: str
    job_id: str
    payload: str
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Attempt:
    n: int
    at: datetime
    status_code: int | None
    latency_ms: float
    error: str


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 30.0
    cap_s: float = 4 * 3600.0
    give_up_s: float = 26 * 3600.0
    """Attempts go on this long after the event (past a day, as Stripe's three days do)."""

    def next_at(self, attempts: int, created_at: datetime, now: datetime) -> datetime | None:
        """When to try a delivery that failed ``attempts`` times; None: give up."""
        delay = min(self.base_s * 2 ** max(attempts - 1, 0), self.cap_s)
        due = now + timedelta(seconds=delay)
        return due if due - created_at <= timedelta(seconds=self.give_up_s) else None


def new_secret() -> str:
    """``whsec_`` and 24 random bytes in base64, as Standard Webhooks' libraries read it."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def check_secret(secret: str) -> str:
    """A secret Standard Webhooks' libraries can use (``whsec_`` and base64 of some bytes)."""
    try:
        Webhook(secret)
    except Exception as exc:
        raise InvalidRequest(f"The secret is no whsec_ secret: {exc}") from None
    return secret


def webhook_type(kind: str, stream_name: str) -> str | None:
    """The webhook type of a log event (None: not delivered, e.g. log lines)."""
    if kind.startswith("step_") or kind in ("steps_planned", "review_requested"):
        return "step." + kind.removeprefix("step_")
    if kind.startswith("job_"):
        return f"job.{stream_name}"
    return None


def check_patterns(patterns: Sequence[str]) -> list[str]:
    if not patterns:
        raise InvalidRequest("A webhook names at least one event type (or '*').")
    for p in patterns:
        family, _, rest = p.partition(".")
        if p != "*" and (family not in FAMILIES or not rest):
            raise InvalidRequest(
                f"{p!r} is no event type: job.<status>, step.<event>, 'job.*', 'step.*' or '*'."
            )
    return list(dict.fromkeys(patterns))


def matches(patterns: Iterable[str], event_type: str) -> bool:
    family = event_type.partition(".")[0]
    return any(p in ("*", event_type, f"{family}.*") for p in patterns)


def events_of(seq: int, commit: Commit) -> list[tuple[str, str, dict[str, Any]]]:
    """A commit's deliverable events: (event id, webhook type, the body sent)."""
    out = []
    for _, kind, event in job_events(seq, commit):
        wtype = webhook_type(kind, event.event)
        if wtype is not None:
            event_id = str(event.data["event_id"])
            body = {"id": event_id, "type": wtype, "timestamp": event.data["at"], "data": event.data}
            out.append((event_id, wtype, body))
    return out


@dataclass(frozen=True)
class Destinations:
    """Where deliveries may go: hosts named in ``allow`` (names, IPs or CIDR networks) always;
    any other only when every address it resolves to is public (no loopback, private,
    link-local — cloud metadata lives there — or reserved address)."""

    allow: tuple[str, ...] = ()

    def check_url(self, url: str) -> str:
        """The host of an acceptable URL, or ``WebhookUrlRefused``."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebhookUrlRefused(f"{url[:200]!r} is not an http(s) URL with a host.")
        if parts.username or parts.password:
            raise WebhookUrlRefused("A webhook URL may not carry credentials; sign with the secret instead.")
        host = parts.hostname.lower()
        try:
            host.encode("idna")
        except UnicodeError as exc:
            raise WebhookUrlRefused(f"{host[:80]!r} is no host name: {exc}") from None
        if not self.allowed(host):
            with contextlib.suppress(ValueError):  # a name: judged by what it resolves to, each time
                self.check_address(host)
        return host

    def allowed(self, host: str) -> bool:
        for entry in self.allow:
            if host == entry.lower():
                return True
            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        return False

    def check_address(self, address: str) -> None:
        """Refuse an internal address (``ValueError`` when ``address`` is no IP at all), also one
        inside an IPv6 form that reaches IPv4 (mapped, 6to4, Teredo, NAT64, compatible)."""
        ip = ipaddress.ip_address(address)
        if self.allowed(str(ip)):
            return
        inner = _embedded_ipv4(ip)
        if inner is not None and not self.allowed(str(inner)) and (not inner.is_global or inner.is_multicast):
            raise WebhookUrlRefused(f"{address} reaches {inner}, an internal address.")
        if not ip.is_global or ip.is_multicast:
            raise WebhookUrlRefused(
                f"{address} is an internal address; deliveries go there only when "
                "ATELIER_WEBHOOK_ALLOW_HOSTS names it."
            )


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64) or int(ip) >> 32 == 0:  # NAT64, or ::a.b.c.d
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None
