"""The gateway's HTTP API against a real nats-server and real SQL, with no orchestrator running.

Read-model rows are written here directly, as the orchestrator's projector would write them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import nats
import nats.js.errors
import pytest
import sqlalchemy as sa
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts import ids
from atelier_contracts.blobstore import FileBlobStore
from atelier_contracts.commands import CommandOutcome, SubmitJob
from atelier_contracts.common import Artifact, ErrorInfo
from atelier_contracts.envelope import command_decoder, encode
from atelier_contracts.errors import ERROR_CODES
from atelier_contracts.events import JobStarted, JobSubmitted, StepDispatched, StepSpec
from atelier_contracts.faults import FaultInjection
from atelier_contracts.readmodel import assets, job_events, jobs, make_engine
from atelier_contracts.snapshot import JobView, StepView
from atelier_contracts.subjects import COMMANDS_STREAM, MSG_ID_HEADER, REPLY_HEADER, command_subject
from atelier_devstack.natsserver import NatsServer
from atelier_gateway import bootstrap
from atelier_gateway.adapters.signer import HmacUrlSigner
from atelier_gateway.app.errors import Unavailable
from atelier_gateway.bootstrap import Deps
from atelier_gateway.config import Settings
from atelier_gateway.entrypoints.http import create_app
from tests.support import eventually

pytestmark = pytest.mark.integration

SECRET = b"integration-test-secret-0123456789"
BASE = "http://gateway.test"
T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class Gateway:
    client: httpx.AsyncClient
    settings: Settings
    engine: AsyncEngine
    blobs: FileBlobStore


@asynccontextmanager
async def open_gateway(
    nats_url: str, database_url: str, tmp_path: Path, build_deps: Any = bootstrap.build, **overrides: Any
) -> AsyncIterator[Gateway]:
    defaults: dict[str, Any] = {"publish_timeout_s": 1.0}  # submits: answered once stored, as deployed
    settings = Settings(
        url_secret=SECRET,
        nats_url=nats_url,
        database_url=database_url,
        blob_dir=tmp_path / "blobs",
        **{**defaults, **overrides},
    )
    app = create_app(settings, build_deps)
    engine = make_engine(database_url)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client,
        ):
            yield Gateway(client, settings, engine, FileBlobStore(settings.blob_dir))
    finally:
        await engine.dispose()


@pytest.fixture
async def gateway(nats_server: NatsServer, database_url: str, tmp_path: Path) -> AsyncIterator[Gateway]:
    async with open_gateway(nats_server.url, database_url, tmp_path) as gw:
        yield gw


@pytest.fixture
async def js(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_server.url)
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


# --- read-model rows, as the projector writes them -------------------------------------------


def story_snapshot(
    job_id: str,
    *,
    blobs: FileBlobStore,
    tenant: str = "default",
    status: str = "partial_ready",
    created_at: datetime = T0,
    kind: str = "story",
) -> JobView:
    text = blobs.put_bytes(b"Once upon a time, a fox found a lantern.", "text/plain")
    later = created_at + timedelta(seconds=3)
    failure = ErrorInfo(code="provider_error", message="tts timed out", at=later)
    return JobView(
        id=job_id,
        tenant=tenant,
        kind=kind,
        title="The fox and the lantern",
        input={"prompt": "A shy fox", "age": 5},
        priority=3,
        tags=["bedtime", "fox"],
        status=status,
        steps={
            "write": StepView(
                name="write",
                capability="text.generate",
                status="succeeded",
                attempts=2,
                # The first attempt failed; the step succeeded since: that is history, not state.
                last_error=ErrorInfo(code="provider_error", message="first try timed out", at=created_at),
                outputs=[Artifact(name="story", kind="text", blob=text)],
                provider="offline",
                model="text-v1",
                started_at=created_at + timedelta(seconds=1),
                finished_at=created_at + timedelta(seconds=2),
            ),
            "narrate": StepView(
                name="narrate",
                capability="tts",
                needs=("write",),
                status="failed",
                attempts=3,
                last_error=failure,
            ),
            "cover": StepView(name="cover", capability="image.generate", needs=("write",)),
        },
        created_at=created_at,
        updated_at=later,
        attempts=1,
        last_error=failure,
        version=7,
    )


def plain_snapshot(job_id: str, *, status: str, created_at: datetime, kind: str = "story") -> JobView:
    return JobView(
        id=job_id,
        tenant="default",
        kind=kind,
        title=f"job {job_id}",
        input={"prompt": "p"},
        priority=0,
        tags=[],
        status=status,
        steps={},
        created_at=created_at,
        updated_at=created_at,
    )


async def insert_job(engine: AsyncEngine, snap: JobView) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(jobs).values(
                id=snap.id,
                tenant=snap.tenant,
                kind=snap.kind,
                title=snap.title,
                status=snap.status,
                priority=snap.priority,
                tags=snap.tags,
                created_at=snap.created_at,
                updated_at=snap.updated_at,
                last_seq=snap.version,
                snapshot=msgspec.json.encode(snap).decode(),
            )
        )
        for step in snap.steps.values():
            if step.status != "succeeded":
                continue
            for artifact in step.outputs:
                await conn.execute(
                    sa.insert(assets).values(
                        id=ids.asset_id(snap.id, step.name, artifact.name),
                        job_id=snap.id,
                        step=step.name,
                        name=artifact.name,
                        kind=artifact.kind,
                        content_type=artifact.blob.content_type,
                        blob_key=artifact.blob.key,
                        size=artifact.blob.size,
                        created_at=snap.updated_at,
                    )
                )


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert code in ERROR_CODES
    assert body["type"] == f"urn:atelier:error:{code}"
    assert body["code"] == code
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["instance"] == urlsplit(str(response.request.url)).path
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def poll(check: Any, deadline_s: float = 10.0) -> Any:
    """Await ``check()`` until it returns something truthy, or fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while True:
        result = await check()
        if result:
            return result
        assert loop.time() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.05)


BODY: dict[str, Any] = {
    "kind": "story",
    "title": "The fox and the lantern",
    "input": {"prompt": "A shy fox finds a lantern.", "age": 5},
    "priority": 2,
    "tags": ["bedtime"],
}


# --- submitting -------------------------------------------------------------------------------


async def test_submit_publishes_one_command_and_answers_queued(
    gateway: Gateway, js: JetStreamContext
) -> None:
    request_id = f"req-{ids.uuid7()}"
    response = await gateway.client.post("/v1/jobs", json=BODY, headers={"X-Request-ID": request_id})

    assert response.status_code == 202, response.text
    assert response.headers["x-request-id"] == request_id
    job = response.json()
    assert job["id"].startswith("job_")
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert (job["kind"], job["title"], job["priority"], job["tags"]) == (
        "story",
        BODY["title"],
        2,
        ["bedtime"],
    )
    assert job["input"] == BODY["input"]
    assert job["steps"] == []
    assert job["assets"] == []
    assert job["links"] == {"self": f"/v1/jobs/{job['id']}", "events": f"/v1/jobs/{job['id']}/events"}

    sub = await js.pull_subscribe(command_subject(job["id"]), stream=COMMANDS_STREAM)
    msgs = await sub.fetch(10, timeout=2)
    assert len(msgs) == 1
    assert (await js.stream_info(COMMANDS_STREAM)).state.messages == 1
    envelope = command_decoder.decode(msgs[0].data)
    assert msgs[0].subject == command_subject(job["id"])
    assert msgs[0].headers is not None
    assert msgs[0].headers[MSG_ID_HEADER] == envelope.msg_id
    assert envelope.job_id == job["id"]
    assert envelope.tenant == "default"
    assert envelope.correlation_id == request_id
    assert envelope.causation_id is None
    assert abs(envelope.sent_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert envelope.body == SubmitJob(
        kind="story", title=BODY["title"], input=BODY["input"], priority=2, tags=["bedtime"]
    )


async def test_submit_answers_with_the_orchestrators_decision(
    nats_server: NatsServer, database_url: str, tmp_path: Path, js: JetStreamContext
) -> None:
    """No wait for SQL: the orchestrator answers with the job as decided (here, before any
    projection exists at all)."""

    async def fake_orchestrator(engine: AsyncEngine) -> str:
        sub = await js.pull_subscribe("atelier.cmd.>", stream=COMMANDS_STREAM)
        msg = (await sub.fetch(1, timeout=10))[0]
        env = command_decoder.decode(msg.data)
        step = StepView(name="write", capability="text.generate", status="dispatched", attempts=1)
        snap = msgspec.structs.replace(
            plain_snapshot(env.job_id, status="running", created_at=env.sent_at), steps={"write": step}
        )
        outcome = CommandOutcome(msg_id=env.msg_id, job_id=env.job_id, accepted=True, job=snap)
        assert msg.headers is not None
        await js._nc.publish(msg.headers[REPLY_HEADER], msgspec.json.encode(outcome))
        await msg.ack()
        return env.job_id

    async with open_gateway(nats_server.url, database_url, tmp_path, submit_wait_s=10.0) as gw:
        response, job_id = await asyncio.gather(
            gw.client.post("/v1/jobs", json=BODY), fake_orchestrator(gw.engine)
        )
    assert response.status_code == 202
    job = response.json()
    assert job["id"] == job_id
    assert job["status"] == "running"
    assert [s["name"] for s in job["steps"]] == ["write"]


async def test_a_task_must_name_a_capability_it_can_run(gateway: Gateway, js: JetStreamContext) -> None:
    missing = await gateway.client.post("/v1/jobs", json={**BODY, "kind": "task", "input": {"prompt": "p"}})
    errors = assert_problem(missing, 422, "validation_failed")["errors"]
    assert errors == [
        {
            "loc": ["body", "input", "capability"],
            "msg": "Object missing required field `capability`",
            "type": "missing",
        }
    ]
    teleport = {"prompt": "p", "capability": "teleport"}
    unknown = await gateway.client.post("/v1/jobs", json={**BODY, "kind": "task", "input": teleport})
    body = assert_problem(unknown, 422, "unknown_capability")
    assert "text.generate" in body["detail"]
    assert [e["loc"] for e in body["errors"]] == [["body", "input", "capability"]]
    ok = await gateway.client.post(
        "/v1/jobs", json={**BODY, "kind": "task", "input": {"prompt": "p", "capability": "tts"}}
    )
    assert ok.status_code == 202, ok.text
    assert (await js.stream_info(COMMANDS_STREAM)).state.messages == 1


async def test_a_body_that_is_not_json_is_unsupported_media_type(
    gateway: Gateway, js: JetStreamContext
) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "text/plain+json", None):
        headers = {"content-type": content_type} if content_type else {}
        response = await gateway.client.post("/v1/jobs", content=json.dumps(BODY), headers=headers)
        assert_problem(response, 415, "unsupported_media_type")
    response = await gateway.client.post(
        "/v1/jobs", content=json.dumps(BODY), headers={"content-type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 202, response.text
    assert (await js.stream_info(COMMANDS_STREAM)).state.messages == 1


async def test_unknown_kind_is_refused_before_publishing(gateway: Gateway, js: JetStreamContext) -> None:
    response = await gateway.client.post("/v1/jobs", json={**BODY, "kind": "sonnet"})
    body = assert_problem(response, 422, "unknown_job_kind")
    assert "sonnet" in body["detail"]
    assert (await js.stream_info(COMMANDS_STREAM)).state.messages == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"input": {}}, "prompt"),
        ({"input": {"prompt": "x" * 4001}}, "prompt"),
        ({"priority": 10}, "priority"),
        ({"priority": "3"}, "priority"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"tags": ["x" * 51]}, "tags"),
        ({"tags": ["night/owl"]}, "tags"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_bodies_are_validation_problems(
    gateway: Gateway, change: dict[str, Any], field: str
) -> None:
    response = await gateway.client.post("/v1/jobs", json={**BODY, **change})
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"], body
    assert any(field in issue["loc"] for issue in body["errors"]), body["errors"]
    assert all(set(issue) == {"loc", "msg", "type"} for issue in body["errors"])


@pytest.mark.parametrize(
    ("change", "loc", "error_type"),
    [
        ({"capability": "tts", "seed": "abc"}, ["seed"], "type_error"),
        ({"timeout_s": -1}, ["timeout_s"], "out_of_range"),
        ({"max_attempts": 0}, ["max_attempts"], "out_of_range"),
        ({"max_attempts": 1000000}, ["max_attempts"], "out_of_range"),
        ({"max_attempts": "3"}, ["max_attempts"], "type_error"),
        ({"backoff_s": 0}, ["backoff_s"], "out_of_range"),
        ({"colour": "red"}, ["colour"], "extra_forbidden"),
        ({"prompt": ""}, ["prompt"], "out_of_range"),
    ],
)
async def test_a_task_input_is_checked_against_its_kind_before_it_is_sent(
    gateway: Gateway, js: JetStreamContext, change: dict[str, Any], loc: list[str], error_type: str
) -> None:
    job_input = {"prompt": "p", "capability": "text.generate", **change}
    response = await gateway.client.post("/v1/jobs", json={**BODY, "kind": "task", "input": job_input})
    errors = assert_problem(response, 422, "validation_failed")["errors"]
    assert [(e["loc"], e["type"]) for e in errors] == [(["body", "input", *loc], error_type)]
    assert (await js.stream_info(COMMANDS_STREAM)).state.messages == 0


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"title": "t\u0000"}, ["body", "title"]),
        ({"input": {"prompt": "p\u0000", "capability": "tts"}}, ["body", "input", "prompt"]),
        ({"input": {"prompt": "p", "capability": "tts", "text": "x" * 70_000}}, ["body", "input"]),
    ],
)
async def test_nul_characters_and_oversized_inputs_are_refused_with_their_field(
    gateway: Gateway, change: dict[str, Any], loc: list[str]
) -> None:
    body = {**BODY, "kind": "task", "input": {"prompt": "p", "capability": "tts"}, **change}
    errors = assert_problem(await gateway.client.post("/v1/jobs", json=body), 422, "validation_failed")[
        "errors"
    ]
    assert [e["loc"] for e in errors] == [loc]
    assert not any(e["msg"].startswith("Value error") for e in errors)


async def test_a_title_may_be_left_out_and_an_unknown_kind_names_its_field(gateway: Gateway) -> None:
    untitled = await gateway.client.post(
        "/v1/jobs", json={"kind": "task", "input": {"prompt": "p", "capability": "tts"}}
    )
    assert untitled.status_code == 202, untitled.text
    assert untitled.json()["title"] == "task"
    unknown = assert_problem(
        await gateway.client.post("/v1/jobs", json={**BODY, "kind": "opera"}), 422, "unknown_job_kind"
    )
    assert [e["loc"] for e in unknown["errors"]] == [["body", "kind"]]


async def test_a_job_list_by_an_unknown_kind_is_a_validation_problem(gateway: Gateway) -> None:
    response = await gateway.client.get("/v1/jobs", params={"kind": "bogus"})
    errors = assert_problem(response, 422, "validation_failed")["errors"]
    assert errors[0]["loc"] == ["query", "kind", 0]
    assert (await gateway.client.get("/v1/jobs", params={"kind": "task"})).status_code == 200


async def test_the_kinds_and_their_input_schemas_are_listed(gateway: Gateway) -> None:
    listed = (await gateway.client.get("/v1/kinds")).json()["items"]
    assert [k["name"] for k in listed] == [
        "clip",
        "cut",
        "episode",
        "export",
        "gallery",
        "package",
        "reel",
        "stills",
        "story",
        "studio",
        "task",
    ]
    task = (await gateway.client.get("/v1/kinds/task")).json()
    schema = task["input_schema"]
    definition = schema["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    assert set(definition["required"]) == {"prompt", "capability"}
    assert definition["properties"]["max_attempts"]["anyOf"][0] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 20,
    }
    gallery = (await gateway.client.get("/v1/kinds/gallery")).json()
    steps = {s["name"]: s for s in gallery["steps"]}
    assert list(steps) == ["ideas", "review", "package"]
    assert (steps["ideas"]["plans_more"], steps["review"]["review"]) == (True, "manual")
    ideas = steps["ideas"]
    assert ideas["params"]["format"] == "list"
    text_params = ideas["params_schema"]["$defs"]["TextParams"]["properties"]
    assert text_params["format"]["enum"] == ["list", "prose", "shots"], "what text.generate takes"
    for kind in listed:  # every example is an input its kind takes (an export's names no real upload)
        ok = await gateway.client.post("/v1/jobs", json={"kind": kind["name"], "input": kind["example"]})
        if kind["name"] in ("clip", "export", "studio"):
            assert_problem(ok, 404, "upload_not_found")
            continue
        if kind["name"] in ("cut", "package"):  # they name files of earlier jobs
            assert_problem(ok, 404, "file_not_found")
            continue
        assert ok.status_code == 202, ok.text
    assert_problem(await gateway.client.get("/v1/kinds/sonnet"), 404, "not_found")


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"kind": "\xff\xfe"}', '{"title": "é"}'.encode("latin-1"), b"\xff\xfe\x00{"],
)
async def test_malformed_json_is_a_validation_problem(gateway: Gateway, content: bytes) -> None:
    """Broken JSON and broken encoding alike: 422 (FastAPI alone answers the second 400)."""
    response = await gateway.client.post(
        "/v1/jobs", content=content, headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["type"] == "json_invalid"


SLOW = {"slow": {"task": 1}, "slow_s": 10}
TASK = {"kind": "task", "title": "t", "input": {"prompt": "p", "capability": "text.generate"}}


def with_simulate(simulate: object) -> dict[str, Any]:
    return {**TASK, "input": {**TASK["input"], "simulate": simulate}}  # type: ignore[dict-item]


async def test_fault_injection_is_refused_where_the_deployment_does_not_allow_it(
    gateway: Gateway, js: JetStreamContext
) -> None:
    assert not gateway.settings.faults.enabled, "off unless switched on"
    response = await gateway.client.post("/v1/jobs", json=with_simulate(SLOW))
    assert_problem(response, 422, "simulate_disabled")
    assert (await js.stream_info(COMMANDS_STREAM)).state.messages == 0


@pytest.mark.parametrize(
    ("simulate", "status", "loc"),
    [
        (SLOW, 202, None),
        ({"fail": {"task": 2}}, 202, None),
        ({**SLOW, "slow_s": 31}, 422, ["body", "input", "simulate", "slow_s"]),
        # A bad value in a map: "..." stands for its key (the parser does not say which).
        ({"fail": {"task": "two"}}, 422, ["body", "input", "simulate", "fail", "..."]),
        ({"fail": {"task": 101}}, 422, ["body", "input", "simulate", "fail", "..."]),
        ({"crash": True}, 422, ["body", "input", "simulate", "crash"]),
    ],
)
async def test_where_fault_injection_is_allowed_it_is_bounded(
    nats_server: NatsServer,
    database_url: str,
    tmp_path: Path,
    simulate: object,
    status: int,
    loc: list[str] | None,
) -> None:
    faults = FaultInjection(enabled=True, max_delay_s=30)
    async with open_gateway(nats_server.url, database_url, tmp_path, faults=faults) as gw:
        response = await gw.client.post("/v1/jobs", json=with_simulate(simulate))
    assert response.status_code == status, response.text
    if loc is not None:
        body = assert_problem(response, 422, "validation_failed")
        assert [issue["loc"] for issue in body["errors"]] == [loc]


async def nats_ready(gateway: Gateway, ready: bool) -> bool:
    checks = (await gateway.client.get("/ready")).json()["checks"]
    return (checks["nats"] == "ok") == ready


async def test_a_503_while_nats_is_down_means_nothing_was_sent(
    gateway: Gateway, nats_server: NatsServer
) -> None:
    """The client library buffers what is published while it reconnects and sends it once NATS
    is back: a submit answered 503 must not become a job then (a retry would make a second)."""
    nats_server.stop()
    await eventually(lambda: nats_ready(gateway, False))
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await gateway.client.post("/v1/jobs", json=BODY)
    assert_problem(response, 503, "service_unavailable")
    assert response.headers["retry-after"] == "1"
    assert loop.time() - started < 1.0, "answered at once, not after the publish timeout"

    nats_server.start()
    await eventually(lambda: nats_ready(gateway, True))
    retried = await gateway.client.post("/v1/jobs", json=BODY)
    assert retried.status_code == 202, retried.text
    # Anything buffered during the outage went out before the retry, on the same connection.
    nc = await nats.connect(nats_server.url)
    try:
        stored = await nc.jetstream().stream_info(COMMANDS_STREAM)
    finally:
        await nc.close()
    assert stored.state.messages == 1, "only the retry was stored"


async def stored_commands(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return int((await nc.jetstream().stream_info(COMMANDS_STREAM)).state.messages)
    finally:
        await nc.close()


async def test_a_command_refused_while_nats_is_down_is_never_sent(
    gateway: Gateway, nats_server: NatsServer
) -> None:
    job_id = ids.new_job_id()
    await insert_job(gateway.engine, plain_snapshot(job_id, status="running", created_at=T0))
    nats_server.stop()
    await eventually(lambda: nats_ready(gateway, False))
    assert_problem(await gateway.client.post(f"/v1/jobs/{job_id}/cancel"), 503, "service_unavailable")
    nats_server.start()
    await eventually(lambda: nats_ready(gateway, True))
    ok = await gateway.client.post("/v1/jobs", json=BODY)  # goes out after anything buffered
    assert ok.status_code == 202, ok.text
    assert await stored_commands(nats_server.url) == 1, "only the submit, never the refused cancel"


def _stopped(pid: int) -> bool:
    """Every thread of the process stopped. A SIGSTOP only starts the stop: each thread stops as it
    next enters the kernel, and a server thread still running meanwhile can answer (the likely
    cause of a 202 here on CI, where the test wanted the 504)."""
    states = [
        stat.read_text().rsplit(")", 1)[1].split()[0] for stat in Path(f"/proc/{pid}/task").glob("*/stat")
    ]
    return bool(states) and all(state in ("T", "t") for state in states)


async def test_a_command_sent_but_not_confirmed_is_504_and_names_its_job(
    gateway: Gateway, nats_server: NatsServer
) -> None:
    """The connection is up but the server does not answer (frozen): the outcome is unknown, and
    indeed the command is stored once the server goes on."""
    assert nats_server.proc is not None
    nats_server.proc.send_signal(signal.SIGSTOP)
    pid = nats_server.proc.pid
    try:

        async def frozen() -> bool:
            return _stopped(pid)

        await eventually(frozen, within=10.0)
        response = await gateway.client.post("/v1/jobs", json=BODY)
    finally:
        nats_server.proc.send_signal(signal.SIGCONT)
    body = assert_problem(response, 504, "outcome_unknown")
    assert body["job_id"].startswith("job_")

    async def stored() -> bool:
        nc = await nats.connect(nats_server.url)
        try:
            msg = await nc.jetstream().get_last_msg(COMMANDS_STREAM, command_subject(body["job_id"]))
        except nats.js.errors.NotFoundError:
            return False
        finally:
            await nc.close()
        return msg is not None

    assert await eventually(stored), "it did take effect: 'unknown' was the honest answer"


# --- reading ----------------------------------------------------------------------------------


def without_urls(job: dict[str, Any]) -> dict[str, Any]:
    """A job's answer without its signed links (they carry the second they were signed in)."""
    return {**job, "assets": [{k: v for k, v in a.items() if k != "url"} for a in job["assets"]]}


async def test_the_hot_routes_answer_as_the_framework_routes_do(
    gateway: Gateway, js: JetStreamContext
) -> None:
    # A query (any) or an Idempotency-Key sends a request through FastAPI's routing; without
    # them HotRoutes answers: the two must not be told apart.
    job_id = ids.new_job_id()
    await insert_job(gateway.engine, story_snapshot(job_id, blobs=gateway.blobs))
    hot = await gateway.client.get(f"/v1/jobs/{job_id}")
    framework = await gateway.client.get(f"/v1/jobs/{job_id}?unused=1")
    assert hot.status_code == framework.status_code == 200
    assert hot.headers["content-type"] == framework.headers["content-type"]
    assert without_urls(hot.json()) == without_urls(framework.json())

    missing = ids.new_job_id()
    hot = await gateway.client.get(f"/v1/jobs/{missing}")
    framework = await gateway.client.get(f"/v1/jobs/{missing}?unused=1")
    assert_problem(hot, 404, "job_not_found")
    assert {**hot.json(), "request_id": ""} == {**framework.json(), "request_id": ""}

    plain = await gateway.client.post("/v1/jobs", json=BODY)
    keyed = await gateway.client.post("/v1/jobs", json=BODY, headers={"Idempotency-Key": "hot-or-not"})
    assert plain.status_code == keyed.status_code == 202
    assert plain.headers["location"] == f"/v1/jobs/{plain.json()['id']}"
    assert keyed.headers["location"] == f"/v1/jobs/{keyed.json()['id']}"
    same = {"id", "created_at", "updated_at"}
    assert {k: v for k, v in plain.json().items() if k not in same | {"links"}} == {
        k: v for k, v in keyed.json().items() if k not in same | {"links"}
    }
    assert (await js.stream_info(COMMANDS_STREAM)).state.messages == 2

    # A body the model refuses goes on to FastAPI, whose 422 names what is wrong; nothing is sent.
    refused = await gateway.client.post("/v1/jobs", json={**BODY, "priority": "high", "extra": 1})
    assert_problem(refused, 422, "validation_failed")
    assert {tuple(e["loc"]) for e in refused.json()["errors"]} == {("body", "priority"), ("body", "extra")}
    broken = await gateway.client.post(
        "/v1/jobs", content=b'{"kind": "story", "input": {', headers={"content-type": "application/json"}
    )
    assert_problem(broken, 422, "validation_failed")
    assert (await js.stream_info(COMMANDS_STREAM)).state.messages == 2

    # Metrics and the access line name the route by its template, whichever path answered.
    metrics = (await gateway.client.get("/metrics")).text
    assert 'route="/v1/jobs/{job_id}",status="200"' in metrics
    assert 'method="POST",route="/v1/jobs",status="202"' in metrics


async def test_get_job_builds_the_representation_from_the_snapshot(gateway: Gateway) -> None:
    job_id = ids.new_job_id()
    await insert_job(gateway.engine, story_snapshot(job_id, blobs=gateway.blobs))

    response = await gateway.client.get(f"/v1/jobs/{job_id}")

    assert response.status_code == 200, response.text
    job = response.json()
    assert job["id"] == job_id
    assert job["status"] == "partial_ready"
    assert (job["kind"], job["priority"], job["tags"]) == ("story", 3, ["bedtime", "fox"])
    assert job["input"] == {"prompt": "A shy fox", "age": 5}
    assert job["created_at"] == "2030-01-02T03:04:05Z"
    assert job["updated_at"] == "2030-01-02T03:04:08Z"
    assert job["finished_at"] is None
    assert job["attempts"] == 1
    assert job["last_error"] == {
        "code": "provider_error",
        "message": "tts timed out",
        "at": "2030-01-02T03:04:08Z",
    }
    assert job["model_used"] == {"write": "offline/text-v1"}
    assert [s["name"] for s in job["steps"]] == ["write", "narrate", "cover"]
    assert job["steps"][0] == {
        "name": "write",
        "capability": "text.generate",
        "needs": [],
        "status": "succeeded",
        "attempts": 2,
        "provider": "offline",
        "model": "text-v1",
        "fallbacks": [],
        "last_error": None,
        "started_at": "2030-01-02T03:04:06Z",
        "finished_at": "2030-01-02T03:04:07Z",
    }
    assert job["steps"][1]["needs"] == ["write"]
    assert job["steps"][1]["last_error"]["code"] == "provider_error"
    assert job["links"] == {"self": f"/v1/jobs/{job_id}", "events": f"/v1/jobs/{job_id}/events"}

    [asset] = job["assets"]
    assert {k: v for k, v in asset.items() if k != "url"} == {
        "id": ids.asset_id(job_id, "write", "story"),
        "step": "write",
        "name": "story",
        "kind": "text",
        "content_type": "text/plain",
        "size": 40,
    }
    url = urlsplit(asset["url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{BASE}/v1/files/{asset['id']}"
    query = parse_qs(url.query)
    assert int(query["expires"][0]) > datetime.now(UTC).timestamp() + 3000
    assert len(query["sig"][0]) == 64

    download = await gateway.client.get(asset["url"])
    assert download.status_code == 200
    assert download.content == b"Once upon a time, a fox found a lantern."
    assert download.headers["content-type"].startswith("text/plain")
    assert download.headers["content-disposition"] == 'attachment; filename="story.txt"'
    head = await gateway.client.head(asset["url"])
    assert head.status_code == 200
    assert head.headers["content-length"] == "40"
    assert head.content == b""


async def test_unknown_job_is_a_job_not_found_problem(gateway: Gateway) -> None:
    missing = ids.new_job_id()
    assert_problem(await gateway.client.get(f"/v1/jobs/{missing}"), 404, "job_not_found")
    assert_problem(await gateway.client.get(f"/v1/jobs/{missing}/events"), 404, "job_not_found")


async def test_other_tenants_jobs_and_files_are_invisible(gateway: Gateway) -> None:
    job_id = ids.new_job_id()
    await insert_job(gateway.engine, story_snapshot(job_id, blobs=gateway.blobs, tenant="someone-else"))
    asset = ids.asset_id(job_id, "write", "story")
    link = HmacUrlSigner(SECRET, 60).sign(asset, datetime.now(UTC))

    assert_problem(await gateway.client.get(f"/v1/jobs/{job_id}"), 404, "job_not_found")
    assert_problem(await gateway.client.get(f"/v1/jobs/{job_id}/events"), 404, "job_not_found")
    assert (await gateway.client.get("/v1/jobs")).json() == {
        "items": [],
        "count": 0,
        "has_more": False,
        "next_cursor": None,
    }
    file = await gateway.client.get(f"/v1/files/{asset}", params={"expires": link.expires, "sig": link.sig})
    assert_problem(file, 404, "file_not_found")


async def test_list_is_newest_first_and_filters_by_status_and_kind(gateway: Gateway) -> None:
    rows = [
        ("queued", "story", T0),
        ("running", "story", T0 + timedelta(minutes=1)),
        ("succeeded", "story", T0 + timedelta(minutes=2)),
        ("failed", "anime", T0 + timedelta(minutes=2)),  # same instant: the larger id comes first
    ]
    job_ids = [ids.new_job_id() for _ in rows]
    for job_id, (status, kind, at) in zip(job_ids, rows, strict=True):
        await insert_job(gateway.engine, plain_snapshot(job_id, status=status, created_at=at, kind=kind))

    async def listed(params: dict[str, Any]) -> list[str]:
        response = await gateway.client.get("/v1/jobs", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == len(body["items"])
        return [item["id"] for item in body["items"]]

    # Two jobs share an instant, and ids made in one millisecond are not ordered: sort like the API.
    newest_first = [j for _, j in sorted(zip([r[2] for r in rows], job_ids, strict=True), reverse=True)]
    by_id = dict(zip(job_ids, rows, strict=True))
    assert await listed({}) == newest_first
    assert await listed({"limit": 2}) == newest_first[:2]
    assert await listed({"status": ["queued", "failed"]}) == [job_ids[3], job_ids[0]]
    assert await listed({"kind": "story"}) == [j for j in newest_first if by_id[j][1] == "story"]
    assert await listed({"kind": "story", "status": "failed"}) == []

    summary = (await gateway.client.get("/v1/jobs", params={"limit": 1})).json()["items"][0]
    assert {"id", "status", "steps", "model_used", "links", "created_at"} <= set(summary)


async def test_a_usage_window_takes_iso_dates_not_numbers(gateway: Gateway) -> None:
    errors = assert_problem(
        await gateway.client.get("/v1/usage", params={"to": "0.5"}), 422, "validation_failed"
    )
    assert errors["errors"][0]["loc"] == ["query", "to"]
    ok = await gateway.client.get("/v1/usage", params={"from": "2026-01-01T00:00:00Z"})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 201},
        {"limit": "many"},
        {"status": "sleeping"},
        {"created_after": "0.5"},  # not seconds since 1970: date-times are ISO 8601 only
        {"created_before": "1733000000"},
    ],
)
async def test_bad_list_parameters_are_validation_problems(gateway: Gateway, params: dict[str, Any]) -> None:
    body = assert_problem(await gateway.client.get("/v1/jobs", params=params), 422, "validation_failed")
    assert body["errors"][0]["loc"][0] == "query"


async def test_events_are_listed_in_log_order_with_their_data(gateway: Gateway) -> None:
    job_id = ids.new_job_id()
    await insert_job(gateway.engine, plain_snapshot(job_id, status="running", created_at=T0))
    submitted = JobSubmitted(
        kind="story",
        title="t",
        input={"prompt": "p"},
        priority=0,
        tags=[],
        steps=[StepSpec(name="write", capability="text.generate")],
    )
    dispatched = StepDispatched(
        step="write", attempt=1, work_id=f"{job_id}.write.1", capability="text.generate"
    )
    stored = [(4, 0, submitted), (4, 1, JobStarted()), (9, 0, dispatched)]
    async with gateway.engine.begin() as conn:
        for seq, idx, event in reversed(stored):  # inserted out of order on purpose
            await conn.execute(
                sa.insert(job_events).values(
                    job_id=job_id,
                    seq=seq,
                    idx=idx,
                    event_id=f"{job_id}-{seq}-{idx}",
                    type=type(event).__struct_config__.tag,
                    at=T0 + timedelta(seconds=seq),
                    data=encode(event).decode(),
                )
            )

    response = await gateway.client.get(f"/v1/jobs/{job_id}/events")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["job_id"] == job_id
    assert [(e["seq"], e["index"], e["type"]) for e in body["events"]] == [
        (4, 0, "job_submitted"),
        (4, 1, "job_started"),
        (9, 0, "step_dispatched"),
    ]
    first = body["events"][0]
    assert first["event_id"] == f"{job_id}-4-0"
    assert first["at"] == "2030-01-02T03:04:09Z"
    assert first["data"] == json.loads(encode(submitted))
    assert body["events"][2]["data"]["work_id"] == f"{job_id}.write.1"


# --- downloads --------------------------------------------------------------------------------


async def test_file_links_tell_an_altered_link_from_an_expired_one(gateway: Gateway) -> None:
    job_id = ids.new_job_id()
    await insert_job(gateway.engine, story_snapshot(job_id, blobs=gateway.blobs))
    asset = ids.asset_id(job_id, "write", "story")
    signer = HmacUrlSigner(SECRET, 60)
    good = signer.sign(asset, datetime.now(UTC))
    expired = signer.sign(asset, datetime.now(UTC) - timedelta(seconds=61))
    other = ids.asset_id(job_id, "write", "other")
    flipped = ("0" if good.sig[0] != "0" else "1") + good.sig[1:]
    forged = HmacUrlSigner(b"w" * 32, 60).sign(asset, datetime.now(UTC))

    assert (
        await gateway.client.get(f"/v1/files/{asset}?expires={good.expires}&sig={good.sig}")
    ).status_code == 200
    refused = [
        f"/v1/files/{asset}?expires={good.expires}&sig={flipped}",
        f"/v1/files/{asset}?expires={good.expires + 1}&sig={good.sig}",
        f"/v1/files/{asset}?expires=soon&sig={good.sig}",
        f"/v1/files/{asset}?sig={good.sig}",
        f"/v1/files/{asset}",
        f"/v1/files/{other}?expires={good.expires}&sig={good.sig}",
        f"/v1/files/{asset}?expires={forged.expires}&sig={forged.sig}",
    ]
    for url in refused:
        assert_problem(await gateway.client.get(url), 403, "url_invalid")
    # Only a link this deployment signed learns that it expired (so its client asks for a new one).
    late = f"/v1/files/{asset}?expires={expired.expires}&sig={expired.sig}"
    assert_problem(await gateway.client.get(late), 403, "url_expired")


async def test_downloads_answer_etags_ranges_and_head(gateway: Gateway) -> None:
    job_id = ids.new_job_id()
    await insert_job(gateway.engine, story_snapshot(job_id, blobs=gateway.blobs))
    asset = ids.asset_id(job_id, "write", "story")
    link = HmacUrlSigner(SECRET, 60).sign(asset, datetime.now(UTC))
    url = f"/v1/files/{asset}?expires={link.expires}&sig={link.sig}"
    text = b"Once upon a time, a fox found a lantern."

    whole = await gateway.client.get(url)
    etag = whole.headers["etag"]
    assert etag == f'"{hashlib.sha256(text).hexdigest()}"'  # the content's hash: the same everywhere
    assert whole.headers["accept-ranges"] == "bytes"

    again = await gateway.client.get(url, headers={"If-None-Match": f'W/"x", {etag}'})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    changed = await gateway.client.get(url, headers={"If-None-Match": '"something-else"'})
    assert (changed.status_code, changed.content) == (200, text)

    part = await gateway.client.get(url, headers={"Range": "bytes=5-8"})
    assert (part.status_code, part.content) == (206, text[5:9])
    assert part.headers["content-range"] == f"bytes 5-8/{len(text)}"
    beyond = await gateway.client.get(url, headers={"Range": f"bytes={len(text) + 10}-"})
    assert beyond.status_code == 416

    head = await gateway.client.head(url)
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", str(len(text)))


async def test_a_signed_link_to_a_missing_blob_is_not_found(gateway: Gateway) -> None:
    job_id = ids.new_job_id()
    await insert_job(gateway.engine, story_snapshot(job_id, blobs=gateway.blobs))
    asset = ids.asset_id(job_id, "write", "story")
    async with gateway.engine.begin() as conn:
        await conn.execute(sa.update(assets).where(assets.c.id == asset).values(blob_key="ab" * 32))
    link = HmacUrlSigner(SECRET, 60).sign(asset, datetime.now(UTC))
    response = await gateway.client.get(
        f"/v1/files/{asset}", params={"expires": link.expires, "sig": link.sig}
    )
    assert_problem(response, 404, "file_not_found")


# --- problems for the rest --------------------------------------------------------------------


async def test_unknown_routes_and_methods_are_problems(gateway: Gateway) -> None:
    assert_problem(await gateway.client.get("/v2/nothing"), 404, "not_found")
    response = await gateway.client.delete("/v1/jobs")
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, POST", "every method of the path, not one route's"
    response = await gateway.client.put("/v1/jobs/job_x")
    assert response.headers["allow"] == "DELETE, GET, PATCH"


async def test_request_ids_are_echoed_or_made(gateway: Gateway) -> None:
    mine = await gateway.client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    made = await gateway.client.get("/health")
    insane = await gateway.client.get("/health", headers={"X-Request-ID": "x" * 129})
    for response in (made, insane):
        assert len(response.headers["x-request-id"]) == 36  # a fresh uuid7


async def test_unexpected_errors_are_internal_error_problems(
    nats_server: NatsServer, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenReader:
        async def job(self, tenant: str, job_id: str) -> None:
            raise RuntimeError("boom")

        async def events(self, tenant: str, job_id: str, *_: object) -> None:
            raise Unavailable()

    @asynccontextmanager
    async def broken(settings: Settings) -> AsyncIterator[Deps]:
        async with bootstrap.build(settings) as deps:
            yield dataclasses.replace(deps, reader=BrokenReader())  # type: ignore[arg-type]

    async with open_gateway(nats_server.url, database_url, tmp_path, build_deps=broken) as gw:
        with caplog.at_level(logging.ERROR):
            response = await gw.client.get(f"/v1/jobs/{ids.new_job_id()}")
        body = assert_problem(response, 500, "internal_error")
        assert "boom" not in response.text
        logged = [r for r in caplog.records if getattr(r, "request_id", None) == body["request_id"]]
        [record] = [r for r in logged if r.exc_info]
        assert record.exc_info
        assert record.exc_info[0] is RuntimeError, "logged with its trace"

        unavailable = await gw.client.get(f"/v1/jobs/{ids.new_job_id()}/events")
        assert_problem(unavailable, 503, "service_unavailable")


# --- ops --------------------------------------------------------------------------------------


async def test_health_version_and_readiness_follow_nats(gateway: Gateway, nats_server: NatsServer) -> None:
    assert (await gateway.client.get("/health")).json() == {"status": "ok", "service": "gateway"}
    version = (await gateway.client.get("/version")).json()
    assert version["service"] == "gateway"
    assert version["version"]
    ready = await gateway.client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"nats": "ok", "sql": "ok"}}

    nats_server.stop()

    async def not_ready() -> httpx.Response | None:
        response = await gateway.client.get("/ready")
        return response if response.status_code == 503 else None

    body = assert_problem(await poll(not_ready), 503, "service_unavailable")
    assert body["checks"]["sql"] == "ok"
    assert body["checks"]["nats"].startswith("error")


async def test_metrics_count_requests_by_route_template(gateway: Gateway) -> None:
    await gateway.client.get(f"/v1/jobs/{ids.new_job_id()}")
    text = (await gateway.client.get("/metrics")).text
    assert 'atelier_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="404"}' in text
    assert 'atelier_http_request_duration_seconds_count{method="GET",route="/v1/jobs/{job_id}"}' in text


async def test_openapi_lists_every_route_with_problem_responses(gateway: Gateway) -> None:
    schema = (await gateway.client.get("/openapi.json")).json()
    paths = schema["paths"]
    expected = {
        ("post", "/v1/jobs"),
        ("get", "/v1/jobs"),
        ("get", "/v1/jobs/{job_id}"),
        ("get", "/v1/jobs/{job_id}/events"),
        ("post", "/v1/jobs/{job_id}/cancel"),
        ("post", "/v1/jobs/{job_id}:cancel"),
        ("post", "/v1/jobs/{job_id}/requeue"),
        ("post", "/v1/jobs/{job_id}/steps/{step}/retry"),
        ("post", "/v1/jobs/{job_id}/steps/{step}/review"),
        ("patch", "/v1/jobs/{job_id}"),
        ("delete", "/v1/jobs/{job_id}"),
        ("post", "/v1/jobs/batch/cancel"),
        ("post", "/v1/jobs/batch/delete"),
        ("post", "/v1/sessions"),
        ("get", "/v1/sessions"),
        ("get", "/v1/sessions/{session_id}"),
        ("patch", "/v1/sessions/{session_id}"),
        ("post", "/v1/sessions/{session_id}/rounds"),
        ("post", "/v1/sessions/{session_id}/rounds/{round}/adopt"),
        ("post", "/v1/sessions/{session_id}/close"),
        ("post", "/v1/studio/sessions"),
        ("get", "/v1/studio/sessions/{session_id}"),
        ("post", "/v1/studio/sessions/{session_id}/edit"),
        ("post", "/v1/studio/sessions/{session_id}/refine"),
        ("post", "/v1/studio/sessions/{session_id}/adopt"),
        ("post", "/v1/studio/sessions/{session_id}/export"),
        ("get", "/v1/studio/chips"),
        ("get", "/v1/studio/platforms"),
        ("get", "/v1/studio/prompts"),
        ("get", "/v1/studio/templates"),
        ("put", "/v1/studio/templates/{name}"),
        ("delete", "/v1/studio/templates/{name}"),
        ("get", "/v1/gallery"),
        ("post", "/v1/projects"),
        ("get", "/v1/projects"),
        ("get", "/v1/projects/{project_id}"),
        ("patch", "/v1/projects/{project_id}"),
        ("delete", "/v1/projects/{project_id}"),
        ("post", "/v1/projects/{project_id}/episodes"),
        ("get", "/v1/projects/{project_id}/episodes"),
        ("get", "/v1/projects/{project_id}/episodes/{episode_id}"),
        ("patch", "/v1/projects/{project_id}/episodes/{episode_id}"),
        ("delete", "/v1/projects/{project_id}/episodes/{episode_id}"),
        ("post", "/v1/projects/{project_id}/episodes/{episode_id}/render"),
        ("post", "/v1/projects/{project_id}/episodes/{episode_id}/review"),
        ("put", "/v1/projects/{project_id}/schedule"),
        ("get", "/v1/projects/{project_id}/schedule"),
        ("delete", "/v1/projects/{project_id}/schedule"),
        ("post", "/v1/projects/{project_id}/episodes/{episode_id}/package"),
        ("get", "/v1/projects/{project_id}/episodes/{episode_id}/composite"),
        ("patch", "/v1/projects/{project_id}/episodes/{episode_id}/composite"),
        ("post", "/v1/projects/{project_id}/episodes/{episode_id}/composite/export"),
        ("post", "/v1/projects/{project_id}/improve-prompt"),
        ("get", "/v1/styles"),
        ("post", "/v1/schedules"),
        ("get", "/v1/schedules"),
        ("get", "/v1/schedules/{schedule_id}"),
        ("put", "/v1/schedules/{schedule_id}"),
        ("delete", "/v1/schedules/{schedule_id}"),
        ("get", "/v1/jobs/{job_id}/stream"),
        ("get", "/v1/stream"),
        ("post", "/v1/webhooks"),
        ("get", "/v1/webhooks"),
        ("get", "/v1/webhooks/{endpoint_id}"),
        ("patch", "/v1/webhooks/{endpoint_id}"),
        ("delete", "/v1/webhooks/{endpoint_id}"),
        ("get", "/v1/webhooks/{endpoint_id}/deliveries"),
        ("post", "/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/replay"),
        ("post", "/v1/schedules/{schedule_id}/pause"),
        ("post", "/v1/schedules/{schedule_id}/resume"),
        ("post", "/v1/schedules/{schedule_id}/trigger"),
        ("get", "/v1/kinds"),
        ("get", "/v1/kinds/{name}"),
        ("get", "/v1/tags"),
        ("post", "/v1/tags"),
        ("patch", "/v1/tags/{name}"),
        ("delete", "/v1/tags/{name}"),
        ("get", "/v1/files/{asset_id}"),
        ("get", "/v1/jobs/{job_id}/package"),
        ("post", "/v1/uploads"),
        ("get", "/v1/uploads"),
        ("get", "/v1/uploads/{upload_id}"),
        ("get", "/v1/presets"),
        ("get", "/v1/audio-cache"),
        ("get", "/v1/audio-cache/{key}"),
        ("delete", "/v1/audio-cache/{key}"),
        ("get", "/v1/usage"),
        ("get", "/v1/analytics/providers"),
        ("get", "/v1/providers"),
        ("get", "/v1/ops/summary"),
        ("get", "/v1/budgets"),
        ("put", "/v1/budgets/tenant"),
        ("delete", "/v1/budgets/tenant"),
        ("put", "/v1/budgets/projects/{project}"),
        ("delete", "/v1/budgets/projects/{project}"),
        ("get", "/health"),
        ("get", "/ready"),
        ("get", "/version"),
        ("get", "/metrics"),
    }
    assert {(method, path) for path, ops in paths.items() for method in ops} == expected
    problem_ref = {"schema": {"$ref": "#/components/schemas/Problem"}}
    for path, ops in paths.items():
        for operation in ops.values():
            errors = {code: r for code, r in operation["responses"].items() if int(code) >= 400}
            assert errors, path
            for response in errors.values():
                assert response["content"] == {"application/problem+json": problem_ref}, path
    assert "Problem" in schema["components"]["schemas"]
    for path, ops in paths.items():
        for method, operation in ops.items():
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            # An upload is idempotent by its content (its id is the file's); a key would need
            # the whole body read to hash it, which a streamed upload never is.
            mutating = method in {"post", "patch", "delete"} and path != "/v1/uploads"
            assert ("Idempotency-Key" in headers) == mutating, (method, path)
            if mutating:
                assert {"400", "409", "422"} <= set(operation["responses"]), (method, path)
    assert (await gateway.client.get("/docs")).status_code == 200
    batch = schema["components"]["schemas"]["BatchBody"]
    assert batch["oneOf"] == [{"required": ["ids"]}, {"required": ["filter"]}], "exactly one of them"


# --- usage and operations -------------------------------------------------------------------


async def test_usage_analytics_and_ops_summary_over_http(gateway: Gateway) -> None:
    from atelier_contracts.readmodel import provider_calls

    rows = [
        ("a", "m1", "failed", "rate_limited", False, 0.0),
        ("b", "m2", "succeeded", "", True, 0.25),
        ("a", "m1", "succeeded", "", False, 0.5),
        ("a", "m1", "skipped", "cooling_down", False, 0.0),
    ]
    async with gateway.engine.begin() as conn:
        for i, (provider, model, outcome, error, fallback, cost) in enumerate(rows):
            row = {"event_id": f"e{i}", "job_id": "job_x", "tenant": "default", "project": "p1"}
            row |= {"capability": "text.generate", "step": "story", "attempt": 1, "provider": provider}
            row |= {"model": model, "outcome": outcome, "error_class": error, "fallback": fallback}
            row |= {"latency_ms": 100.0 * (i + 1), "cost_usd": cost, "units": '{"output_tokens": 10}'}
            await conn.execute(
                sa.insert(provider_calls).values(**row, at=datetime.now(UTC) - timedelta(minutes=5))
            )
    usage = (await gateway.client.get("/v1/usage", params={"group_by": "provider"})).json()
    groups = {g["provider"]: g for g in usage["groups"]}
    assert (groups["a"]["calls"], groups["a"]["cost_usd"]) == (2, 0.5), "a skip is not a call"
    assert groups["b"]["units"] == {"output_tokens": 10}
    by_project = (await gateway.client.get("/v1/usage", params={"group_by": "project"})).json()["groups"]
    assert [(g["project"], g["calls"]) for g in by_project] == [("p1", 3)]
    assert_problem(
        await gateway.client.get("/v1/usage", params={"group_by": "colour"}), 422, "validation_failed"
    )
    stats = (await gateway.client.get("/v1/analytics/providers", params={"days": 1})).json()["providers"]
    a = next(s for s in stats if s["provider"] == "a")
    assert (a["calls"], a["skipped"], a["success_rate"], a["failures"]) == (2, 1, 0.5, {"rate_limited": 1})
    b = next(s for s in stats if s["provider"] == "b")
    assert b["fallback_ratio"] == 1.0
    summary = (await gateway.client.get("/v1/ops/summary")).json()
    assert summary["recent_failures"][0]["provider"] == "a"
    assert set(summary["jobs_by_status"]) == {
        "queued",
        "running",
        "partial_ready",
        "awaiting_review",
        "succeeded",
        "failed",
        "cancelled",
    }
    assert summary["unavailable"] == []
    assert (await gateway.client.get("/v1/providers")).status_code == 200


async def test_provider_states_show_the_time_left_of_a_trip_as_of_the_request(
    gateway: Gateway, js: JetStreamContext
) -> None:
    """The routers write a trip once, with its wall-clock end; the time left is worked out on reading."""
    from atelier_contracts.runtime.nats import provider_states

    kv = await provider_states(js)
    now = datetime.now(UTC).timestamp()
    for name, state, until in [("a", "open", now + 60), ("b", "open", now - 1), ("c", "closed", 0)]:
        entry = {"state": state, "reason": "429", "until": until, "by": "r1", "recovered": False}
        await kv.put(name, json.dumps(entry).encode())
    shown = (await gateway.client.get("/v1/providers")).json()["providers"]
    assert shown["a"]["state"] == "open"
    assert 55 < shown["a"]["remaining_s"] <= 60
    assert (shown["b"]["state"], shown["b"]["remaining_s"]) == ("half_open", 0), "cooled down: probe next"
    assert (shown["c"]["state"], shown["c"]["remaining_s"]) == ("closed", 0)
    summary = (await gateway.client.get("/v1/ops/summary")).json()
    assert summary["providers"]["b"]["state"] == "half_open"


async def test_the_ops_summary_counts_dead_letters_per_consumer(
    gateway: Gateway, js: JetStreamContext
) -> None:
    from nats.aio.msg import Msg

    from atelier_contracts.runtime import deadletter

    assert (await gateway.client.get("/v1/ops/summary")).json()["dead_letters"] == {
        "total": 0,
        "by_consumer": {},
    }
    nc = js._nc
    for i in range(2):
        reply = f"$JS.ACK.ATELIER_COMMANDS.orchestrator-commands.1.{i + 1}.{i + 1}.0.0"
        msg = Msg(_client=nc, subject="atelier.cmd.job_x", reply=reply, data=b"{", headers=None)
        await deadletter.bury(nc, "orchestrator-commands", msg, "undecodable", 1)
    await nc.close()
    summary = (await gateway.client.get("/v1/ops/summary")).json()
    assert summary["dead_letters"] == {"total": 2, "by_consumer": {"orchestrator-commands": 2}}


async def test_without_nats_the_ops_summary_says_what_it_does_not_know(
    gateway: Gateway, nats_server: NatsServer
) -> None:
    """The summary is wanted most when something is down: it keeps what SQL knows."""
    nats_server.stop()
    summary = (await gateway.client.get("/v1/ops/summary")).json()
    assert (summary["backlog"], summary["providers"], summary["unavailable"]) == (None, None, ["nats"])
    assert summary["dead_letters"] is None
    assert summary["jobs_by_status"]["queued"] == 0
    assert_problem(await gateway.client.get("/v1/providers"), 503, "service_unavailable")
