"""Subject names and stream definitions. Services create streams idempotently at start."""

from __future__ import annotations

from dataclasses import dataclass, field

COMMANDS_STREAM = "ATELIER_COMMANDS"
JOBS_STREAM = "ATELIER_JOBS"
WORK_STREAM = "ATELIER_WORK"
REPORTS_STREAM = "ATELIER_REPORTS"
SESSIONS_STREAM = "ATELIER_SESSIONS"
SCHEDULES_STREAM = "ATELIER_SCHEDULES"
LOG_STREAMS = (JOBS_STREAM, SESSIONS_STREAM, SCHEDULES_STREAM)
"""The event logs: appended only by the orchestrator, each commit guarded by its prev_seq."""
DEAD_STREAM = "ATELIER_DEAD"
"""Messages a consumer gave up on (undecodable, too large, failing every delivery), with why."""

MSG_ID_HEADER = "Nats-Msg-Id"
REPLY_HEADER = "Atelier-Reply-To"
"""On a command: a core NATS subject where the orchestrator answers with a CommandOutcome."""
EXPECTED_LAST_SUBJECT_SEQ_HEADER = "Nats-Expected-Last-Subject-Sequence"

PROJECTED_SUBJECT = "atelier.projected"
"""Core NATS (not stored): the projector's ``Projected`` notices, after each transaction."""

# Which worker pool serves a capability. A pool is one service's durable consumer.
CAPABILITY_POOLS: dict[str, str] = {
    "text.generate": "ai",
    "image.generate": "ai",
    "tts": "ai",
    "video.from_image": "ai",
    "video.from_text": "ai",
    "image.optimize": "ai",
    "image.bg_replace": "ai",
    "image.refine": "ai",
    "image.platform": "ai",
    "image.thumbnail": "media",
    "image.variant": "media",
    "audio.deliver": "media",
    "review.auto": "media",
    "bundle.zip": "export",
    "video.composite": "export",
}


def command_subject(job_id: str) -> str:
    return f"atelier.cmd.{job_id}"


def job_subject(job_id: str) -> str:
    return f"atelier.job.{job_id}"


def session_subject(session_id: str) -> str:
    return f"atelier.session.{session_id}"


def session_command_subject(session_id: str) -> str:
    return f"atelier.sessioncmd.{session_id}"


def schedule_subject(schedule_id: str) -> str:
    return f"atelier.schedule.{schedule_id}"


def schedule_command_subject(schedule_id: str) -> str:
    return f"atelier.schedulecmd.{schedule_id}"


def report_subject(job_id: str) -> str:
    return f"atelier.report.{job_id}"


def work_subject(capability: str, priority: int = 0) -> str:
    return f"atelier.work.{CAPABILITY_POOLS[capability]}.{priority_band(priority)}.{capability}"


PRIORITY_BANDS = ("high", "normal", "low")
"""Work subjects carry a band; workers take from the higher bands first."""

CANCELLED_BUCKET = "ATELIER_CANCELLED"
"""KV bucket: a key per cancelled (or deleted) job id, so workers skip its queued work."""
CANCELLED_TTL_S = 7 * 24 * 3600.0

LIMITS_BUCKET = "ATELIER_LIMITS"
"""KV bucket: the token buckets of provider rate limits, shared by the router replicas."""

BUDGETS_BUCKET = "ATELIER_BUDGETS"
"""KV bucket: budget limits per tenant and project (set by the gateway) and their spend (kept by
the routers); see :mod:`atelier_contracts.budgets`."""

AUDIO_CACHE_BUCKET = "ATELIER_AUDIO_CACHE"
"""KV bucket: narrations already made, by (text, voice, provider, model); see ``atelier_contracts.audio``."""

VARIANTS_BUCKET = "ATELIER_VARIANTS"
"""KV bucket: rendered variants by (original blob, preset digest), so none is rendered twice."""
VARIANTS_TTL_S = 30 * 24 * 3600.0

PROVIDERS_BUCKET = "ATELIER_PROVIDERS"
"""KV bucket: each provider's circuit-breaker state as its routers last saw it (for the API)."""


def priority_band(priority: int) -> str:
    """Priorities 0..9: 7 and up are high, 3..6 normal, below 3 low."""
    if priority >= 7:
        return "high"
    return "normal" if priority >= 3 else "low"


def cancel_subject(job_id: str) -> str:
    """Core NATS (not stored): tells workers to abandon the job's work in flight now.

    An empty payload means all of the job's work; a work id, just that attempt (it timed out).
    """
    return f"atelier.cancel.{job_id}"


def dead_subject(durable: str) -> str:
    """Where the consumer ``durable`` puts the messages it gives up on."""
    return f"atelier.dead.{durable}"


def pool_filter(pool: str, band: str | None = None) -> str:
    return f"atelier.work.{pool}.{band}.>" if band else f"atelier.work.{pool}.>"


@dataclass(frozen=True)
class StreamSpec:
    """What a stream must look like; the runtime kit turns it into a JetStream config."""

    name: str
    subjects: list[str]
    work_queue: bool
    duplicate_window_s: float = 120.0
    allow_direct: bool = False
    max_age_s: float | None = None
    description: str = ""
    extra: dict[str, object] = field(default_factory=dict)


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec(
        name=COMMANDS_STREAM,
        subjects=["atelier.cmd.>", "atelier.sessioncmd.>", "atelier.schedulecmd.>"],
        work_queue=True,
        description="Commands for the orchestrator: of jobs, sessions, schedules (gateway → orchestrator)",
    ),
    StreamSpec(
        name=JOBS_STREAM,
        subjects=["atelier.job.>"],
        work_queue=False,
        allow_direct=True,
        description="Job event log: one subject per job, commits appended by the orchestrator",
    ),
    StreamSpec(
        name=SESSIONS_STREAM,
        subjects=["atelier.session.>"],
        work_queue=False,
        allow_direct=True,
        description="Session event log: one subject per session, commits appended by the orchestrator",
    ),
    StreamSpec(
        name=SCHEDULES_STREAM,
        subjects=["atelier.schedule.>"],
        work_queue=False,
        allow_direct=True,
        description="Schedule event log: one subject per schedule, commits appended by the orchestrator",
    ),
    StreamSpec(
        name=WORK_STREAM,
        subjects=["atelier.work.>"],
        work_queue=True,
        description="Work items (orchestrator → worker pools)",
    ),
    StreamSpec(
        name=REPORTS_STREAM,
        subjects=["atelier.report.>"],
        work_queue=True,
        description="Work reports (workers → orchestrator)",
    ),
    StreamSpec(
        name=DEAD_STREAM,
        subjects=["atelier.dead.>"],
        work_queue=False,
        max_age_s=30 * 86400.0,
        description="Dead letters: messages a consumer gave up on, each with its error (kept 30 days)",
    ),
)
