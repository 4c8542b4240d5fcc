"""How an OpenAI-compatible server's failures map onto :class:`ErrorClass`: pure functions, no I/O.

OpenAI, vLLM, Ollama and friends agree on status codes but not on error bodies, so the body is read
leniently (``{"error": {...}}``, ``{"error": "..."}``, a flat ``{"message", "type", "code"}``, or a
FastAPI ``{"detail": ...}``) and classified by the words in its ``code``, ``type`` and ``message``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from atelier_provider_router.app.ports import ErrorClass, ProviderError

MALFORMED = "malformed answer"

# Lower-case fragments searched in the error's code, type and message.
_CONTENT_POLICY = (
    "content_policy",
    "content policy",
    "content_filter",
    "content filter",
    "safety",
    "moderation",
)
_CONTEXT_TOO_LONG = ("context_length_exceeded", "maximum context length", "context length", "context window")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
# A bare number this large in a reset header is a Unix timestamp, not a number of seconds.
_EPOCH_THRESHOLD = 1_000_000_000


def classify(
    status: int, headers: Mapping[str, str], body: bytes | str, *, now: datetime | None = None
) -> ProviderError:
    """The error for a non-2xx answer; ``now`` (UTC) is only needed to read an HTTP-date Retry-After."""
    lowered = {key.lower(): value for key, value in headers.items()}
    code, kind, message = _error_fields(body)
    message = message or _body_excerpt(body) or f"HTTP {status}"
    said = f"{code} {kind} {message}".lower()
    if status == 429:
        # An exhausted quota or billing limit does not end with a cooldown: treat it like bad credentials.
        if "insufficient_quota" in said:
            return ProviderError(ErrorClass.AUTH, message, status)
        return ProviderError(ErrorClass.RATE_LIMITED, message, status, rate_limit_wait_s(lowered, now))
    if status in (401, 403):
        return ProviderError(ErrorClass.AUTH, message, status)
    if status == 408:
        # The server gave up waiting for us: the same failure as a client-side timeout, worth a retry.
        return ProviderError(ErrorClass.TIMEOUT, message, status)
    if status in (400, 422) and any(word in said for word in _CONTENT_POLICY):
        return ProviderError(ErrorClass.CONTENT_POLICY, message, status)
    if status in (400, 422) and any(word in said for word in _CONTEXT_TOO_LONG):
        return ProviderError(ErrorClass.CONTEXT_TOO_LONG, message, status)
    if 400 <= status < 500:
        return ProviderError(ErrorClass.INVALID_REQUEST, message, status)
    # 5xx, and anything else we did not ask for (a redirect, a 1xx), is the server's fault.
    return ProviderError(ErrorClass.SERVER_ERROR, message, status, retry_after(lowered, now))


def from_exception(exc: BaseException) -> ProviderError:
    """The error for an exception raised while calling (never for one raised while reading an answer)."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return ProviderError(ErrorClass.TIMEOUT, f"no answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx.TransportError | httpx.InvalidURL):
        # Refused, reset, closed mid-answer, unreachable proxy, unsupported scheme: no answer to judge.
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return ProviderError(ErrorClass.CONNECTION, detail)
    # DecodingError (a corrupt gzip body), TooManyRedirects: the server answered, but not usefully.
    return ProviderError(ErrorClass.SERVER_ERROR, f"{MALFORMED} ({type(exc).__name__}: {exc})")


def malformed(detail: str = "", status: int | None = None) -> ProviderError:
    """A 2xx whose body is not the expected shape: the router treats it as a server fault."""
    return ProviderError(ErrorClass.SERVER_ERROR, f"{MALFORMED}: {detail}" if detail else MALFORMED, status)


def retry_after(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (delta-seconds or HTTP-date).

    ``headers`` must have lower-case keys (``httpx.Headers`` does not need to).
    """
    if (ms := _seconds(headers.get("retry-after-ms"))) is not None:
        return ms / 1000
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    if (seconds := _seconds(value)) is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC without saying so
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def rate_limit_wait_s(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Retry-After when given, else OpenAI's ``x-ratelimit-reset-requests``/``-tokens`` durations."""
    if (explicit := retry_after(headers, now)) is not None:
        return explicit
    resets: dict[str, float] = {}
    for limit in ("requests", "tokens"):
        wait = parse_duration(headers.get(f"x-ratelimit-reset-{limit}", ""), now)
        if wait is not None:
            resets[limit] = wait
    # The exhausted limit is the one whose reset matters; when unsure, wait for the later one.
    exhausted = [
        limit for limit in resets if headers.get(f"x-ratelimit-remaining-{limit}", "").strip() == "0"
    ]
    chosen = [resets[limit] for limit in exhausted] or list(resets.values())
    return max(chosen) if chosen else None


def parse_duration(value: str, now: datetime | None = None) -> float | None:
    """``"1s"``, ``"250ms"``, ``"6m0s"``, ``"1h2m3.5s"``, or a bare number of seconds (or a Unix time)."""
    value = value.strip().lower()
    if not value:
        return None
    if (seconds := _seconds(value)) is not None:
        if seconds >= _EPOCH_THRESHOLD:
            return max(0.0, seconds - (now or datetime.now(UTC)).timestamp())
        return seconds
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(number + unit for number, unit in parts) != value:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(number) * scale[unit] for number, unit in parts)


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _error_fields(body: bytes | str) -> tuple[str, str, str]:
    """``(code, type, message)`` from whichever error shape the server uses; empty when unreadable."""
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        return "", "", ""
    if not isinstance(data, dict):
        return "", "", ""
    error = data.get("error", data)
    if isinstance(error, str):
        return "", "", error
    if not isinstance(error, dict):
        return "", "", ""
    message = error.get("message", error.get("detail", ""))
    if not isinstance(message, str):
        message = json.dumps(message)
    return str(error.get("code") or ""), str(error.get("type") or ""), message


def _body_excerpt(body: bytes | str, limit: int = 300) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
