"""The gateway's view of the job log (``JetStreamJobLog``) on a real nats-server: where a job's
log ends, and whether the projector's notices show the read model about to reach it."""

from __future__ import annotations

from datetime import timedelta

from nats.aio.client import Client

from atelier_contracts.envelope import encode
from atelier_contracts.ids import new_job_id
from atelier_contracts.runtime.nats import ensure_streams
from atelier_contracts.snapshot import Projected
from atelier_contracts.subjects import PROJECTED_SUBJECT, job_subject
from atelier_gateway.adapters.joblog import JetStreamJobLog
from atelier_gateway.app.ports import LogHead


async def _listening(nc: Client) -> JetStreamJobLog:
    joblog = JetStreamJobLog(nc, nc.jetstream(), clock_margin_s=0.0)  # one clock here
    await joblog.start()
    await nc.flush()  # the subscription is in place before anything is published
    return joblog


async def test_a_fresh_commit_no_notice_named_is_behind_until_its_notice_comes(nc: Client) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    joblog = await _listening(nc)
    job_id = new_job_id()
    await js.publish(job_subject(job_id), b"{}")
    head = await joblog.head(job_id)
    assert head is not None
    assert joblog.behind(job_id, head), "stored after the reader began to listen, and no notice yet"

    await nc.publish(PROJECTED_SUBJECT, encode(Projected(jobs={job_id: head.seq})))
    assert await joblog.projected(job_id, head.seq, timeout_s=5.0)
    assert not joblog.behind(job_id, head), "the notice says SQL has it"


async def test_commits_older_than_the_reader_or_than_a_second_are_left_to_sql(nc: Client) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    job_id = new_job_id()
    await js.publish(job_subject(job_id), b"{}")
    joblog = await _listening(nc)  # its notice, if any, came before this reader listened
    head = await joblog.head(job_id)
    assert head is not None
    assert not joblog.behind(job_id, head)

    later = await _listening(nc)
    other = new_job_id()
    await js.publish(job_subject(other), b"{}")
    fresh = await later.head(other)
    assert fresh is not None
    stale = LogHead(seq=fresh.seq, at=fresh.at - timedelta(seconds=5))
    assert later.behind(other, fresh)
    assert not later.behind(other, stale), "a commit unannounced for seconds: its notice was lost"


async def test_a_notice_of_an_earlier_commit_shows_the_read_model_behind(nc: Client) -> None:
    js = nc.jetstream()
    await ensure_streams(js)
    job_id = new_job_id()
    first = await js.publish(job_subject(job_id), b"{}")
    joblog = await _listening(nc)
    await nc.publish(PROJECTED_SUBJECT, encode(Projected(jobs={job_id: first.seq})))
    assert await joblog.projected(job_id, first.seq, timeout_s=5.0)
    await js.publish(job_subject(job_id), b"{}")
    head = await joblog.head(job_id)
    assert head is not None
    assert head.seq > first.seq
    assert joblog.behind(job_id, head)
