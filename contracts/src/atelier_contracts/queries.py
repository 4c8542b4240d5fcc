"""Questions the gateway asks the orchestrator over core NATS request-reply (not stored).

``JobAt`` (on ``JOB_AT_SUBJECT``): the job as it stood after the commit at stream sequence
``at`` — folded from its log, so any past state can be shown ("time travel").
"""

from __future__ import annotations

import msgspec

from atelier_contracts.snapshot import JobView

JOB_AT_SUBJECT = "atelier.query.job-at"
"""One orchestrator replica answers (a queue group)."""


class JobAt(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    tenant: str
    at: int
    """A stream sequence: the job after every commit of its log up to and including this one."""


class JobAtAnswer(msgspec.Struct, frozen=True, kw_only=True):
    job: JobView | None
    """None: no such job of the tenant, or it did not exist yet at ``at``."""
    error: str = ""
    """Set when the orchestrator could not answer (the asker says so at once, not after a timeout)."""


job_at_decoder = msgspec.json.Decoder(JobAt)
job_at_answer_decoder = msgspec.json.Decoder(JobAtAnswer)
