"""The job log as readers need it: where each job's log ends, and when the projector caught up.

The projector publishes a ``Projected`` notice after each transaction; a gateway keeps the latest
sequence it heard of for recent jobs, and wakes the reads that wait for one.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from datetime import UTC, datetime

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from atelier_contracts.envelope import encode
from atelier_contracts.queries import JOB_AT_SUBJECT, JobAt, job_at_answer_decoder
from atelier_contracts.snapshot import JobView, projected_decoder
from atelier_contracts.subjects import (
    COMMANDS_STREAM,
    JOBS_STREAM,
    PROJECTED_SUBJECT,
    command_subject,
    job_subject,
)
from atelier_gateway.adapters.natsio import reachable
from atelier_gateway.app.errors import Unavailable
from atelier_gateway.app.ports import LogHead

ANNOUNCED_FRESH_S = 1.0
"""How long a projector's notice of a job counts as where SQL is, and how long after a commit
its notice is still expected (``behind``)."""

CLOCK_MARGIN_S = 0.5
"""Commits stored this close to when this reader began to listen may have been announced before
it did (the stream's clock and ours may differ a little)."""

_UNKNOWN = datetime.fromtimestamp(0, UTC)

QUERY_TIMEOUT_S = 5.0
"""How long a job-at query waits for an orchestrator (folding a long log takes a while)."""


class JetStreamJobLog:
    def __init__(
        self, nc: Client, js: JetStreamContext, remember: int = 10_000, clock_margin_s: float = CLOCK_MARGIN_S
    ) -> None:
        self.nc = nc
        self.js = js
        self.clock_margin_s = clock_margin_s
        self._remember = remember
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._heard: dict[str, float] = {}  # when each job's last notice came (loop time)
        self._waiters: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}
        self._sub: Subscription | None = None
        self._since: float | None = None  # since when (wall clock) every notice reached us
        self._reconnects = 0

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(PROJECTED_SUBJECT, cb=self._on_projected)
        self._since, self._reconnects = time.time(), self.nc.stats["reconnects"]

    async def head(self, job_id: str) -> LogHead | None:
        async with reachable(self.nc, "job log", timeout_s=1.0):
            try:
                msg = await self.js.get_last_msg(JOBS_STREAM, job_subject(job_id), direct=True)
            except NotFoundError:
                return None
        assert msg.seq is not None  # a direct get's answer always names it
        return LogHead(seq=msg.seq, at=msg.time or _UNKNOWN)  # unknown: no notice to expect

    async def log_head(self, stream: str, subject: str) -> int | None:
        """Where any log subject ends (a session's, a schedule's; None: empty)."""
        async with reachable(self.nc, "the log", timeout_s=1.0):
            try:
                msg = await self.js.get_last_msg(stream, subject, direct=True)
            except NotFoundError:
                return None
        return msg.seq

    async def command_pending(self, job_id: str) -> bool:
        async with reachable(self.nc, "command stream", timeout_s=1.0):
            try:
                await self.js.get_last_msg(COMMANDS_STREAM, command_subject(job_id))
            except NotFoundError:
                return False
        return True

    async def projected(self, job_id: str, seq: int, timeout_s: float) -> bool:
        if self._seen.get(job_id, 0) >= seq:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(job_id, [])
        waiters.append((seq, future))
        try:
            await asyncio.wait_for(future, timeout_s)
            return True
        except TimeoutError:
            return False
        finally:
            waiters.remove((seq, future))
            if not waiters:
                self._waiters.pop(job_id, None)

    def behind(self, job_id: str, head: LogHead) -> bool:
        # Only what the last second shows: notices are core messages and can be lost (a
        # reconnect, a slow consumer), and an old one says little about what SQL has now.
        if self._seen.get(job_id, 0) >= head.seq:
            return False
        heard = self._heard.get(job_id)
        if heard is not None and asyncio.get_running_loop().time() - heard <= ANNOUNCED_FRESH_S:
            return True  # a recent notice of an earlier commit
        if self.nc.stats["reconnects"] != self._reconnects:  # notices of the gap are lost
            self._since, self._reconnects = time.time(), self.nc.stats["reconnects"]
        stored = head.at.timestamp()
        listening = self._since is not None and stored > self._since + self.clock_margin_s
        return listening and time.time() - stored <= ANNOUNCED_FRESH_S

    async def job_at(self, tenant: str, job_id: str, at: int) -> JobView | None:
        query = encode(JobAt(job_id=job_id, tenant=tenant, at=at))
        async with reachable(self.nc, "the orchestrator", timeout_s=QUERY_TIMEOUT_S + 1):
            reply = await self.nc.request(JOB_AT_SUBJECT, query, timeout=QUERY_TIMEOUT_S)
        answer = job_at_answer_decoder.decode(reply.data)
        if answer.error:
            raise Unavailable(f"The orchestrator could not fold the job's log: {answer.error}")
        return answer.job

    async def _on_projected(self, msg: Msg) -> None:
        notice = projected_decoder.decode(msg.data)
        now = asyncio.get_running_loop().time()
        for job_id, seq in notice.jobs.items():
            self._seen[job_id] = seq
            self._seen.move_to_end(job_id)
            self._heard[job_id] = now
            for wanted, future in self._waiters.get(job_id, ()):
                if wanted <= seq and not future.done():
                    future.set_result(None)
        while len(self._seen) > self._remember:
            forgotten, _ = self._seen.popitem(last=False)
            self._heard.pop(forgotten, None)
