"""The gateway's lifecycle pieces without servers: request hashes, cursors, settings, and the
command sender over fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from atelier_contracts.commands import CancelJob, Command, CommandOutcome
from atelier_contracts.envelope import Envelope
from atelier_contracts.snapshot import JobView
from atelier_gateway.app.errors import (
    AssetAlreadyRunning,
    IdempotencyKeyInvalid,
    IllegalTransition,
    InvalidRequest,
    JobNotFound,
    StepNotFound,
)
from atelier_gateway.app.idempotency import check_key, request_hash
from atelier_gateway.app.job_query import SORTS, Position, decode_cursor, encode_cursor
from atelier_gateway.app.ports import LogHead, StoredAsset, StoredEvent
from atelier_gateway.app.send_command import (
    CommandTiming,
    JobCommandInput,
    JobCommandResult,
    send_job_command,
)
from atelier_gateway.config import ConfigError, Settings

NOW = datetime(2030, 1, 1, tzinfo=UTC)


# --- idempotency ------------------------------------------------------------------------------


def test_the_request_hash_ignores_json_layout_but_not_content_method_or_path() -> None:
    base = request_hash("POST", "/v1/jobs", b'{"a": 1, "b": [1, 2]}')
    assert request_hash("post", "/v1/jobs", b'{"b":[1,2],"a":1}') == base
    assert request_hash("POST", "/v1/jobs", b'{"a": 1, "b": [2, 1]}') != base
    assert request_hash("PATCH", "/v1/jobs", b'{"a": 1, "b": [1, 2]}') != base
    assert request_hash("POST", "/v1/tags", b'{"a": 1, "b": [1, 2]}') != base
    assert request_hash("POST", "/v1/jobs", b"") != request_hash("POST", "/v1/jobs", b"{}")
    assert len(base) == 64


def test_keys_must_be_1_to_255_characters() -> None:
    assert check_key("k" * 255) == "k" * 255
    for bad in ("", "k" * 256):
        with pytest.raises(IdempotencyKeyInvalid):
            check_key(bad)


# --- cursors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("sort", list(SORTS))
def test_cursors_round_trip_for_every_sort(sort: str) -> None:
    key = SORTS[sort]
    value: datetime | int = 7 if key.field == "priority" else NOW + timedelta(microseconds=5)
    position = Position(sort_value=value, job_id="job_1")
    cursor = encode_cursor(key, position)
    assert "=" not in cursor
    assert decode_cursor(cursor, key) == position


def test_a_cursor_only_works_with_its_own_sort() -> None:
    cursor = encode_cursor(SORTS["-priority"], Position(sort_value=3, job_id="job_1"))
    with pytest.raises(InvalidRequest):
        decode_cursor(cursor, SORTS["priority"])
    with pytest.raises(InvalidRequest):
        decode_cursor(cursor[:-2], SORTS["-priority"])


# --- settings ---------------------------------------------------------------------------------


def test_lifecycle_settings_have_defaults_and_read_the_environment() -> None:
    defaults = Settings.from_env({"ATELIER_DEV_MODE": "1"})
    assert defaults.command_wait_s == 5.0
    assert defaults.idempotency_ttl_s == 86400
    assert defaults.idempotency_prune_every_s == 300.0
    assert defaults.idempotency_lock_s == 60.0
    custom = Settings.from_env(
        {
            "ATELIER_DEV_MODE": "1",
            "ATELIER_COMMAND_WAIT_S": "2.5",
            "ATELIER_IDEMPOTENCY_TTL_S": "3600",
            "ATELIER_IDEMPOTENCY_PRUNE_EVERY_S": "30",
            "ATELIER_IDEMPOTENCY_LOCK_S": "20",
        }
    )
    assert (custom.command_wait_s, custom.idempotency_ttl_s) == (2.5, 3600)
    assert (custom.idempotency_prune_every_s, custom.idempotency_lock_s) == (30.0, 20.0)


@pytest.mark.parametrize(
    "env",
    [
        {"ATELIER_COMMAND_WAIT_S": "-1"},
        {"ATELIER_IDEMPOTENCY_TTL_S": "10"},
        {"ATELIER_IDEMPOTENCY_PRUNE_EVERY_S": "soon"},
        {"ATELIER_IDEMPOTENCY_LOCK_S": "5"},  # shorter than a request may take
    ],
)
def test_bad_lifecycle_settings_stop_start_up(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=next(iter(env))):
        Settings.from_env({"ATELIER_DEV_MODE": "1", **env})


# --- the command sender over fakes ------------------------------------------------------------


def job(job_id: str = "job_1", status: str = "running", deleted: bool = False) -> JobView:
    return JobView(
        deleted=deleted,
        version=1,
        id=job_id,
        tenant="t",
        kind="story",
        title="t",
        input={},
        priority=0,
        tags=[],
        status=status,
        steps={},
        created_at=NOW,
        updated_at=NOW,
    )


class FakeReader:
    def __init__(self, snap: JobView | None, seq: int = 1) -> None:
        self.snap = snap
        self.seq = seq

    async def job(self, tenant: str, job_id: str) -> JobView | None:
        return self.snap

    async def last_seq(self, tenant: str, job_id: str) -> int | None:
        return self.seq

    async def events(
        self, tenant: str, job_id: str, after: tuple[int, int] | None = None, limit: int | None = None
    ) -> list[StoredEvent] | None:
        raise NotImplementedError

    async def asset(self, tenant: str, asset_id: str) -> StoredAsset | None:
        raise NotImplementedError


class FakePublisher:
    def __init__(self, outcome: CommandOutcome | None, reader: FakeReader, after: JobView | None) -> None:
        self.outcome = outcome
        self.sent: list[Envelope[Command]] = []

    async def publish(self, envelope: Envelope[Command]) -> None:
        raise NotImplementedError

    async def request(self, envelope: Envelope[Command], wait_s: float) -> CommandOutcome | None:
        self.sent.append(envelope)
        return self.outcome


class FakeJobLog:
    """A log whose head is what SQL shows: reads never wait."""

    def __init__(self, reader: FakeReader) -> None:
        self.reader = reader

    async def head(self, job_id: str) -> LogHead | None:
        if self.reader.snap is None:
            return None
        return LogHead(seq=self.reader.seq, at=datetime.now(UTC))

    async def command_pending(self, job_id: str) -> bool:
        return False

    async def projected(self, job_id: str, seq: int, timeout_s: float) -> bool:
        return True

    def behind(self, job_id: str, head: LogHead) -> bool:
        return False


async def send(
    outcome: CommandOutcome | None, *, after: JobView | None = None
) -> tuple[JobCommandResult, FakePublisher]:
    reader = FakeReader(job())
    publisher = FakePublisher(outcome, reader, after)
    result = await send_job_command(
        JobCommandInput(tenant="t", job_id="job_1", request_id="r", body=CancelJob()),
        publisher=publisher,
        reader=reader,
        joblog=FakeJobLog(reader),
        clock=lambda: NOW,
        timing=CommandTiming(reply_wait_s=1, read_wait_s=0.5),
    )
    return result, publisher


def outcome(
    accepted: bool,
    code: str = "",
    events: tuple[str, ...] = ("job_cancelled",),
    after: JobView | None = None,
) -> CommandOutcome:
    return CommandOutcome(
        msg_id="m", job_id="job_1", accepted=accepted, code=code, events=list(events), job=after
    )


async def test_an_accepted_command_answers_with_the_job_as_decided() -> None:
    # The read model has not caught up (the fake publisher leaves it as it was): the answer
    # comes from the orchestrator's decision, not from SQL.
    result, publisher = await send(outcome(True, after=job(status="cancelled")))
    assert result.job is not None
    assert result.job.status == "cancelled"
    assert result.decided
    assert publisher.sent[0].correlation_id == "r"


async def test_an_accepted_deletion_answers_with_no_job() -> None:
    result, _ = await send(outcome(True, events=("job_deleted",), after=job(deleted=True)))
    assert result.job is None
    assert result.decided


async def test_no_answer_returns_the_job_as_it_is() -> None:
    result, _ = await send(None)
    assert result.job == job()
    assert not result.decided


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("job_not_found", JobNotFound),
        ("step_not_found", StepNotFound),
        ("illegal_transition", IllegalTransition),
        ("asset_already_running", AssetAlreadyRunning),
        ("something_new", IllegalTransition),
    ],
)
async def test_refusals_raise_their_errors(code: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        await send(outcome(False, code))


async def test_an_unknown_job_is_refused_before_sending() -> None:
    reader = FakeReader(None)
    publisher = FakePublisher(None, reader, None)
    with pytest.raises(JobNotFound):
        await send_job_command(
            JobCommandInput(tenant="t", job_id="job_1", request_id="r", body=CancelJob()),
            publisher=publisher,
            reader=reader,
            joblog=FakeJobLog(reader),
            clock=lambda: NOW,
            timing=CommandTiming(reply_wait_s=1, read_wait_s=0),
        )
    assert publisher.sent == []
