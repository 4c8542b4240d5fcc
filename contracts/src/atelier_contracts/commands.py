"""Commands: what clients ask the orchestrator to do (imperative names).

Published by the gateway on ``atelier.cmd.<job_id>`` inside an :class:`Envelope`.
"""

from __future__ import annotations

from typing import Any

import msgspec


class SubmitJob(msgspec.Struct, frozen=True, kw_only=True, tag="submit_job"):
    """Create a job of a known kind. The job id comes with the envelope."""

    kind: str
    title: str
    input: dict[str, Any]
    priority: int = 0
    tags: list[str] = []


JOB_KINDS: frozenset[str] = frozenset({"story"})
"""Job kinds the orchestrator has a pipeline for; the gateway refuses others early."""

Command = SubmitJob
"""The union of all commands (a single type for now; new ones join as ``A | B``)."""
