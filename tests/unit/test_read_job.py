"""Read your writes (``read_job``) over fakes: how often it reads SQL, and what it answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from atelier_contracts.snapshot import JobView
from atelier_gateway.app.errors import Unavailable
from atelier_gateway.app.ports import LogHead
from atelier_gateway.app.read_job import ANNOUNCED_WAIT_S, read_job

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def job(version: int) -> JobView:
    return JobView(
        id="job_1",
        tenant="t",
        kind="task",
        title="t",
        input={},
        created_at=NOW,
        updated_at=NOW,
        version=version,
    )


@dataclass
class Sql:
    """The read model: the job at ``version`` (None: no row); counts its reads."""

    version: int | None
    reads: int = 0

    async def job(self, tenant: str, job_id: str) -> JobView | None:
        self.reads += 1
        return None if self.version is None else job(self.version)

    async def last_seq(self, tenant: str, job_id: str) -> int | None:
        return self.version


@dataclass
class Log:
    """The job's log ends at ``head``; the projector announced ``announced_seq`` lately (None:
    the notices show nothing) and, asked to wait, projects up to the head (or never, with
    ``stuck``)."""

    sql: Sql
    head_seq: int | None
    announced_seq: int | None = None
    stuck: bool = False
    down: bool = False
    waits: list[int] = field(default_factory=list)
    timeouts: list[float] = field(default_factory=list)

    async def head(self, job_id: str) -> LogHead | None:
        if self.down:
            raise Unavailable("NATS is down")
        return None if self.head_seq is None else LogHead(seq=self.head_seq, at=NOW)

    async def command_pending(self, job_id: str) -> bool:
        return False

    async def projected(self, job_id: str, seq: int, timeout_s: float) -> bool:
        self.waits.append(seq)
        self.timeouts.append(timeout_s)
        if self.stuck:
            return False
        self.sql.version = seq
        return True

    def behind(self, job_id: str, head: LogHead) -> bool:
        return self.announced_seq is not None and self.announced_seq < head.seq


async def read(sql: Sql, log: Log) -> JobView | None:
    return await read_job("t", "job_1", reader=sql, joblog=log, wait_s=0.5)  # type: ignore[arg-type]


async def test_a_read_right_after_the_last_commit_waits_then_reads_sql_once() -> None:
    sql = Sql(version=3)
    log = Log(sql, head_seq=5, announced_seq=3)  # the projector is at 3, the log at 5
    found = await read(sql, log)
    assert found is not None
    assert found.version == 5
    assert sql.reads == 1, "no read of the version about to change"
    assert log.waits == [5]


async def test_a_job_the_notices_have_not_named_is_read_first_then_waited_for() -> None:
    sql = Sql(version=3)
    log = Log(sql, head_seq=5, announced_seq=None)  # e.g. projected before this gateway started
    found = await read(sql, log)
    assert found is not None
    assert found.version == 5
    assert (sql.reads, log.waits) == (2, [5])


async def test_a_read_model_that_has_caught_up_is_read_once_without_waiting() -> None:
    for announced in (5, None):
        sql = Sql(version=5)
        log = Log(sql, head_seq=5, announced_seq=announced)
        found = await read(sql, log)
        assert found is not None
        assert found.version == 5
        assert (sql.reads, log.waits) == (1, [])


@pytest.mark.parametrize(
    ("in_sql", "waits", "timeouts"),
    [
        # The projector is slow: a moment for the notice, then as long as a read may wait.
        (3, [5, 5], [ANNOUNCED_WAIT_S, 0.5]),
        # The notice was lost (core messages can be): SQL is current, the gateway's notices are
        # one behind; the read pays a moment, not its whole wait.
        (5, [5], [ANNOUNCED_WAIT_S]),
    ],
)
async def test_no_notice_in_time_leaves_what_sql_has(
    in_sql: int, waits: list[int], timeouts: list[float]
) -> None:
    sql = Sql(version=in_sql)
    log = Log(sql, head_seq=5, announced_seq=3, stuck=True)
    found = await read(sql, log)
    assert found is not None
    assert found.version == in_sql
    assert (log.waits, log.timeouts) == (waits, timeouts)
    assert ANNOUNCED_WAIT_S < 0.5


async def test_with_nats_down_sql_is_all_there_is() -> None:
    sql = Sql(version=3)
    found = await read(sql, Log(sql, head_seq=5, announced_seq=3, down=True))
    assert found is not None
    assert found.version == 3


async def test_a_job_neither_sql_nor_the_log_knows_is_none() -> None:
    sql = Sql(version=None)
    assert await read(sql, Log(sql, head_seq=None)) is None
