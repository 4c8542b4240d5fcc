"""The gateway's settings, read once from the environment at start-up."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from atelier_contracts.faults import FaultInjection

# Only for ATELIER_DEV_MODE=1: links signed with a public secret can be forged by anyone.
DEV_URL_SECRET = b"atelier-dev-secret-do-not-use-in-production"
MIN_SECRET_LEN = 16


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable and the fix."""


@dataclass(frozen=True)
class Settings:
    url_secret: bytes = field(repr=False)
    nats_url: str = "nats://127.0.0.1:4222"
    database_url: str = "sqlite+aiosqlite:///.state/atelier.db"
    blob_dir: Path = Path(".state/blobs")
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    url_ttl_s: int = 3600
    tenant: str = "default"
    log_level: str = "INFO"
    dev_secret: bool = False
    """True when ``url_secret`` is the public development secret (warned about at start-up)."""
    submit_wait_s: float = 0.0
    """0: POST /v1/jobs answers once the command is stored, with the job as submitted (queued).
    Above 0: it waits up to this long for the orchestrator's decision and answers with the job as
    decided (steps dispatched), at the cost of two more round trips on the way."""
    read_wait_s: float = 2.0
    """How long a read waits for the read model to catch up with the job's log (read your writes)."""
    publish_timeout_s: float = 5.0
    """How long a command publish waits for JetStream's acknowledgement before answering 503."""
    startup_timeout_s: float = 30.0
    """How long start-up waits for NATS; past it the process exits and its supervisor restarts it."""
    command_wait_s: float = 5.0
    """How long a job command (cancel, retry, ...) waits for the orchestrator's outcome."""
    max_body_bytes: int = 1 << 20
    """The largest request body; a larger one is refused (413) before or as it is read."""
    upload_max_bytes: int = 25 << 20
    """The largest upload (``POST /v1/uploads``); refused (413) as soon as it is passed."""
    upload_timeout_s: float = 60.0
    """How long an upload waits for the media service to make it safe (503 past it)."""
    body_timeout_s: float = 10.0
    """How long the gateway waits for the next part of a request body (408 past it)."""
    header_timeout_s: float = 10.0
    """How long a client may take to send a request's headers (408 and closed past it)."""
    idempotency_ttl_s: int = 86400
    """How long an Idempotency-Key is remembered."""
    idempotency_prune_every_s: float = 300.0
    """How often expired idempotency records are deleted."""
    faults: FaultInjection = field(default_factory=FaultInjection)
    """Whether jobs may ask the offline providers for failures and delays (``input.simulate``)."""
    idempotency_lock_s: float = 60.0
    """An idempotent request still in progress after this long is taken as abandoned (its gateway
    died), so a retry with the same key may run instead of getting 409 until the key expires."""
    stream_ping_s: float = 10.0
    """How often an idle stream sends a ``: ping`` comment (proxies close silent connections)."""
    stream_retry_ms: int = 3000
    """The ``retry:`` an event stream sets: how long a browser waits before it reconnects."""
    stream_poll_s: float = 5.0
    """How often a followed log is read even without a notice (one lost in a reconnect)."""
    stream_queue_max: int = 10_000
    """Events a stream may fall behind before it is closed (its client resumes where it was)."""
    webhooks: bool = True
    """Whether this gateway fans the log out to webhook endpoints and sends their deliveries."""
    webhook_timeout_s: float = 10.0
    """How long a receiver has to answer one delivery."""
    webhook_retry_base_s: float = 30.0
    """The wait after a delivery's first failure; it doubles after each, up to ``webhook_retry_cap_s``."""
    webhook_retry_cap_s: float = 4 * 3600.0
    webhook_give_up_s: float = 26 * 3600.0
    """A delivery is tried until this long after its event (over a day), then marked failed."""
    webhook_allow_hosts: tuple[str, ...] = ()
    """Hosts (names, IPs, CIDR networks) deliveries may go to although they are internal; any
    other internal address is refused (no requests to the cloud's metadata, or to us)."""
    webhook_per_endpoint: int = 4
    """Deliveries in flight to one endpoint at most: a slow receiver holds no more than these."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        dev_mode = env.get("ATELIER_DEV_MODE", "") == "1"
        secret = env.get("ATELIER_URL_SECRET", "")
        if secret and len(secret) < MIN_SECRET_LEN:
            raise ConfigError(f"ATELIER_URL_SECRET must be at least {MIN_SECRET_LEN} characters long")
        if not secret and not dev_mode:
            raise ConfigError(
                "ATELIER_URL_SECRET is required: it signs download links. Set it to a long random "
                "string (e.g. `openssl rand -hex 32`), or set ATELIER_DEV_MODE=1 for a local dev secret."
            )
        settings = cls(
            url_secret=secret.encode() if secret else DEV_URL_SECRET,
            dev_secret=not secret,
            nats_url=env.get("ATELIER_NATS_URL", cls.nats_url),
            database_url=env.get("ATELIER_DATABASE_URL", cls.database_url),
            blob_dir=Path(env.get("ATELIER_BLOB_DIR", str(cls.blob_dir))),
            http_host=env.get("ATELIER_HTTP_HOST", cls.http_host),
            http_port=_int(env, "ATELIER_HTTP_PORT", cls.http_port, low=0, high=65535),
            url_ttl_s=_int(env, "ATELIER_URL_TTL_S", cls.url_ttl_s, low=1, high=7 * 24 * 3600),
            tenant=env.get("ATELIER_TENANT", cls.tenant) or cls.tenant,
            log_level=_log_level(env.get("ATELIER_LOG_LEVEL", cls.log_level)),
            submit_wait_s=_float(env, "ATELIER_SUBMIT_WAIT_S", cls.submit_wait_s, low=0.0, high=30.0),
            read_wait_s=_float(env, "ATELIER_READ_WAIT_S", cls.read_wait_s, low=0.0, high=30.0),
            publish_timeout_s=_float(
                env, "ATELIER_PUBLISH_TIMEOUT_S", cls.publish_timeout_s, low=0.1, high=60.0
            ),
            startup_timeout_s=_float(
                env, "ATELIER_STARTUP_TIMEOUT_S", cls.startup_timeout_s, low=1.0, high=3600.0
            ),
            command_wait_s=_float(env, "ATELIER_COMMAND_WAIT_S", cls.command_wait_s, low=0.0, high=60.0),
            max_body_bytes=_int(env, "ATELIER_MAX_BODY_BYTES", cls.max_body_bytes, low=1024, high=1 << 30),
            body_timeout_s=_float(env, "ATELIER_BODY_TIMEOUT_S", cls.body_timeout_s, low=0.1, high=3600.0),
            upload_max_bytes=_int(
                env, "ATELIER_UPLOAD_MAX_BYTES", cls.upload_max_bytes, low=1024, high=1 << 34
            ),
            upload_timeout_s=_float(
                env, "ATELIER_UPLOAD_TIMEOUT_S", cls.upload_timeout_s, low=0.1, high=3600.0
            ),
            header_timeout_s=_float(
                env, "ATELIER_HEADER_TIMEOUT_S", cls.header_timeout_s, low=0.1, high=3600.0
            ),
            idempotency_ttl_s=_int(
                env, "ATELIER_IDEMPOTENCY_TTL_S", cls.idempotency_ttl_s, low=60, high=30 * 24 * 3600
            ),
            idempotency_prune_every_s=_float(
                env,
                "ATELIER_IDEMPOTENCY_PRUNE_EVERY_S",
                cls.idempotency_prune_every_s,
                low=0.01,
                high=86400.0,
            ),
            idempotency_lock_s=_float(
                env, "ATELIER_IDEMPOTENCY_LOCK_S", cls.idempotency_lock_s, low=1.0, high=86400.0
            ),
            faults=_faults(env),
            stream_ping_s=_float(env, "ATELIER_STREAM_PING_S", cls.stream_ping_s, low=0.05, high=300.0),
            stream_retry_ms=_int(env, "ATELIER_STREAM_RETRY_MS", cls.stream_retry_ms, low=100, high=600_000),
            stream_poll_s=_float(env, "ATELIER_STREAM_POLL_S", cls.stream_poll_s, low=0.05, high=300.0),
            webhooks=env.get("ATELIER_WEBHOOKS", "1") != "0",
            webhook_timeout_s=_float(
                env, "ATELIER_WEBHOOK_TIMEOUT_S", cls.webhook_timeout_s, low=0.05, high=120.0
            ),
            webhook_retry_base_s=_float(
                env, "ATELIER_WEBHOOK_RETRY_BASE_S", cls.webhook_retry_base_s, low=0.01, high=3600.0
            ),
            webhook_retry_cap_s=_float(
                env, "ATELIER_WEBHOOK_RETRY_CAP_S", cls.webhook_retry_cap_s, low=0.01, high=86400.0
            ),
            webhook_give_up_s=_float(
                env, "ATELIER_WEBHOOK_GIVE_UP_S", cls.webhook_give_up_s, low=1.0, high=30 * 86400.0
            ),
            webhook_allow_hosts=tuple(
                h.strip() for h in env.get("ATELIER_WEBHOOK_ALLOW_HOSTS", "").split(",") if h.strip()
            ),
            webhook_per_endpoint=_int(
                env, "ATELIER_WEBHOOK_PER_ENDPOINT", cls.webhook_per_endpoint, low=1, high=256
            ),
            stream_queue_max=_int(
                env, "ATELIER_STREAM_QUEUE_MAX", cls.stream_queue_max, low=10, high=1_000_000
            ),
        )
        longest = (
            settings.read_wait_s
            + settings.publish_timeout_s
            + max(settings.command_wait_s, settings.submit_wait_s)
        )
        if settings.idempotency_lock_s <= longest:
            raise ConfigError(
                f"ATELIER_IDEMPOTENCY_LOCK_S ({settings.idempotency_lock_s}s) must exceed the longest "
                f"request (read wait + publish timeout + command or submit wait = {longest}s)"
            )
        return settings


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _log_level(raw: str) -> str:
    level = raw.upper() or "INFO"
    if not isinstance(logging.getLevelName(level), int):
        raise ConfigError(f"ATELIER_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {raw!r}")
    return level


def _faults(env: Mapping[str, str]) -> FaultInjection:
    try:
        return FaultInjection.from_env(env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
