"""Schedules: their commands and reads (``app/aggregates.py``), and what only they check: the
cron expression and time zone, and the template's job input against its kind."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from atelier_contracts.aggregates import Outcome
from atelier_contracts.faults import FaultInjection
from atelier_contracts.schedules import CreateSchedule, ScheduleSpec, ScheduleView
from atelier_contracts.subjects import SCHEDULES_STREAM, schedule_command_subject, schedule_subject
from atelier_gateway.app.aggregates import Aggregate, Call
from atelier_gateway.app.errors import InputInvalid, ScheduleNotFound
from atelier_gateway.app.submit_job import check_input, kind_named

SCHEDULES = Aggregate[ScheduleView](
    name="schedule",
    stream=SCHEDULES_STREAM,
    log_subject=schedule_subject,
    command_subject=schedule_command_subject,
    outcome=msgspec.json.Decoder(Outcome[ScheduleView]),
    not_found=ScheduleNotFound,
    version=lambda view: view.version,
)


def pending(call: Call, command: CreateSchedule, now: datetime) -> ScheduleView:
    """A create stored and not decided in time: the schedule as it will read."""
    upcoming = [] if command.paused else command.spec.fire_times(after=now, limit=1)
    return ScheduleView(
        id=call.key,
        tenant=call.tenant,
        spec=command.spec,
        status="paused" if command.paused else "active",
        next_fire_at=upcoming[0] if upcoming else None,
        created_at=now,
        updated_at=now,
    )


def checked_spec(fields: dict[str, Any], faults: FaultInjection) -> ScheduleSpec:
    """The schedule a request body describes, or a 422 naming each field that is wrong."""
    try:
        spec = msgspec.convert(fields, ScheduleSpec)
    except msgspec.ValidationError as exc:
        raise InputInvalid([{"loc": ["body"], "msg": str(exc), "type": "value_error"}], str(exc)) from None
    problems: list[dict[str, object]] = [
        {"loc": ["body", field], "msg": msg, "type": "value_error"} for field, msg in spec.problems()
    ]
    if problems:
        raise InputInvalid(problems, "; ".join(str(p["msg"]) for p in problems))
    kind_named(spec.template.kind, ("body", "template", "kind"))
    try:
        check_input(spec.template.kind, spec.template.input, faults)  # each firing's job must be valid
    except InputInvalid as exc:
        for error in exc.errors:  # ["body", "input", ...] → ["body", "template", "input", ...]
            loc = error.get("loc")
            if isinstance(loc, list) and loc[:2] == ["body", "input"]:
                error["loc"] = ["body", "template", *loc[1:]]
        raise
    return spec
