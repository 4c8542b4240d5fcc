"""What the appended commits say about jobs, as metrics: how long jobs took, by kind and model.

Observed where a commit is appended (once per commit, whatever the replicas), not in the
handlers. A job's model is its primary step's (the one it is ``partial_ready`` after, or its
first step): the model that made what the job is for.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from atelier_contracts.events import Commit, JobCancelled, JobFailed, JobSucceeded
from atelier_orchestrator.domain.snapshot import JobSnapshot

JOB_LATENCY = Histogram(
    "job_latency_seconds",
    "From a job's submit to its end, by kind and the model of its primary step",
    ["kind", "model", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
JOBS_ENDED = Counter(
    "jobs_ended_total", "Jobs that ended, by kind and status (the failure rate)", ["kind", "status"]
)

_ENDS = {JobSucceeded: "succeeded", JobFailed: "failed", JobCancelled: "cancelled"}


def observe(commit: Commit, job: JobSnapshot) -> None:
    for record in commit.events:
        status = _ENDS.get(type(record.event))
        if status is None:
            continue
        JOBS_ENDED.labels(job.kind, status).inc()
        JOB_LATENCY.labels(job.kind, primary_model(job), status).observe(
            max((commit.at - job.created_at).total_seconds(), 0.0)
        )


def primary_model(job: JobSnapshot) -> str:
    name = job.partial_ready_after or next(iter(job.steps), None)
    step = job.steps.get(name) if name else None
    return (step.model if step is not None else None) or "none"
