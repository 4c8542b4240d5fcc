"""Work that exhausted its deliveries becomes a failed attempt instead of vanishing.

JetStream leaves such a message in the stream and publishes an advisory on core NATS. One
orchestrator replica (a queue group) takes each advisory, reads the work item, and reports a
``WorkFailed`` with the code ``worker_lost`` for it, as a worker would (so a crash after that
loses nothing: the report is in the reports stream); the message is then removed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from atelier_contracts.envelope import work_item_decoder
from atelier_contracts.runtime.workpool import failed_report, publish_report
from atelier_contracts.subjects import WORK_STREAM

log = logging.getLogger(__name__)

MAX_DELIVERIES = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{WORK_STREAM}.>"


class LostWork:
    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.js = nc.jetstream()

    async def on_advisory(self, msg: Msg) -> None:
        seq = int(json.loads(msg.data)["stream_seq"])
        try:
            raw = await self.js.get_msg(WORK_STREAM, seq)
        except NotFoundError:
            return  # another replica handled it already
        assert raw.data is not None
        cause = work_item_decoder.decode(raw.data)
        item = cause.body
        message = "delivered to workers as often as allowed without a result"
        report = failed_report(item, datetime.now(UTC), "worker_lost", message, retryable=True)
        await publish_report(self.js, cause, report, msg_id=f"{item.work_id}.lost")
        await self.js.delete_msg(WORK_STREAM, seq)
        log.warning("work lost after max deliveries", extra={"job_id": item.job_id, "step": item.step})

    async def run(self, stop: asyncio.Event) -> None:
        async def callback(msg: Msg) -> None:
            try:
                await self.on_advisory(msg)
            except Exception:  # the step deadline still catches what this misses
                log.exception("handling a max-deliveries advisory failed")

        sub = await self.nc.subscribe(MAX_DELIVERIES, queue="orchestrator", cb=callback)
        try:
            await stop.wait()
        finally:
            await sub.unsubscribe()
