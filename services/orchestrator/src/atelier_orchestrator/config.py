"""The orchestrator's settings, read once from the environment at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass

from atelier_contracts.runtime.localenv import with_local_stack


@dataclass(frozen=True)
class Settings:
    nats_url: str
    database_url: str
    ops_host: str
    ops_port: int
    command_concurrency: int
    report_concurrency: int
    log_level: str
    ack_wait_s: float = 10.0
    """How long a message held by a crashed replica waits before redelivery."""
    sweep_interval_s: float = 2.0
    """How often each replica looks for steps and jobs past their deadline."""
    max_fan_out: int = 200
    """The most items one step's result may plan steps for (``ATELIER_MAX_FAN_OUT``)."""
    max_commit_bytes: int = 256 * 1024
    """A decision larger than this is appended as several commits (``ATELIER_MAX_COMMIT_BYTES``)."""
    schedule_tick_s: float = 1.0
    """How often each replica looks for schedules with a fire time due (``ATELIER_SCHEDULE_TICK_S``)."""
    blob_dir: str = ""
    """The blob store the clean-up releases from (``ATELIER_BLOB_DIR``); empty: no clean-up."""
    export_ttl_s: float = 86400.0
    """How long an export job and its files are kept after it ended (``ATELIER_EXPORT_TTL_S``)."""
    retention_every_s: float = 300.0
    """How often expired exports are deleted and unreferenced blobs released
    (``ATELIER_RETENTION_EVERY_S``)."""
    blob_grace_s: float = 3600.0
    """A blob younger than this is never released (``ATELIER_BLOB_GRACE_S``): it may be a step's
    output not recorded yet, or the input of work in flight."""

    @classmethod
    def from_env(cls) -> Settings:
        """``ATELIER_ORCHESTRATOR_CONCURRENCY`` sets both concurrencies; the ``COMMAND_`` and
        ``REPORT_`` variants set one each."""
        env = with_local_stack(os.environ)  # from the checkout: the `make up` stack's NATS and SQL
        both = env.get("ATELIER_ORCHESTRATOR_CONCURRENCY", "16")
        return cls(
            nats_url=env.get("ATELIER_NATS_URL", "nats://127.0.0.1:4222"),
            database_url=env.get("ATELIER_DATABASE_URL", "sqlite+aiosqlite:///.state/atelier.db"),
            ops_host=env.get("ATELIER_OPS_HOST", "127.0.0.1"),
            ops_port=int(env.get("ATELIER_ORCHESTRATOR_OPS_PORT", "8081")),
            command_concurrency=int(env.get("ATELIER_ORCHESTRATOR_COMMAND_CONCURRENCY", both)),
            report_concurrency=int(env.get("ATELIER_ORCHESTRATOR_REPORT_CONCURRENCY", both)),
            log_level=env.get("ATELIER_LOG_LEVEL", "INFO"),
            ack_wait_s=float(env.get("ATELIER_ORCHESTRATOR_ACK_WAIT_S", "10")),
            sweep_interval_s=float(env.get("ATELIER_SWEEP_INTERVAL_S", "2")),
            max_fan_out=int(env.get("ATELIER_MAX_FAN_OUT", "200")),
            max_commit_bytes=int(env.get("ATELIER_MAX_COMMIT_BYTES", str(256 * 1024))),
            schedule_tick_s=float(env.get("ATELIER_SCHEDULE_TICK_S", "1")),
            blob_dir=env.get("ATELIER_BLOB_DIR", ".state/blobs"),
            export_ttl_s=float(env.get("ATELIER_EXPORT_TTL_S", "86400")),
            retention_every_s=float(env.get("ATELIER_RETENTION_EVERY_S", "300")),
            blob_grace_s=float(env.get("ATELIER_BLOB_GRACE_S", "3600")),
        )
