"""The steps a job's kind and input make, from the job kinds registry (``atelier_contracts.kinds``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from atelier_contracts.common import ErrorInfo
from atelier_contracts.events import StepSpec
from atelier_contracts.kinds import KINDS, InvalidInput

DEFAULT_JOB_DEADLINE_S = 3600.0


@dataclass(frozen=True)
class Pipeline:
    steps: tuple[StepSpec, ...]
    partial_ready_after: str | None = None


@dataclass(frozen=True)
class NoPipeline:
    """The kind is unknown or the input does not fit it (a command that bypassed the gateway)."""

    code: str
    message: str

    def error(self, at: Any) -> ErrorInfo:
        return ErrorInfo(code=self.code, message=self.message, at=at)


def pipeline_for(kind: str, job_input: dict[str, Any]) -> Pipeline | NoPipeline:
    found = KINDS.get(kind)
    if found is None:
        return NoPipeline("unknown_job_kind", f"no job kind {kind!r}")
    try:
        steps = found.steps(job_input)
    except InvalidInput as exc:
        return NoPipeline(exc.code, f"the input does not fit kind {kind!r}: {exc}")
    return Pipeline(steps=steps, partial_ready_after=found.partial_ready_after)


def default_deadline_s(kind: str) -> float:
    """How long a job of this kind may take from submission (or requeue) to its end."""
    found = KINDS.get(kind)
    return found.deadline_s if found is not None else DEFAULT_JOB_DEADLINE_S
