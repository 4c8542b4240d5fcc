"""1,000 jobs through the whole platform while the primary provider misbehaves (issue 4).

The primary of text, images and speech is the fake OpenAI server (``atelier_devstack.fake_openai``),
reached through the OpenAI-compatible adapter, answering ~30 % 429 (with a short Retry-After),
~10 % 500/503 and ~5 % answers slower than the route's timeout; the offline provider is the
fallback. What must hold:

- at least 99 % of the jobs succeed;
- nothing is billed twice: the fake charged each idempotency key (one per work item and route) at
  most once, and each job's log holds exactly one successful provider call;
- the ledger is honest: every request the fake received is a call in some job's log; every call
  the logs say succeeded was billed; a billed call the logs do not count as a success is one the
  router abandoned on its timeout (answered after the router stopped waiting), and a logged call
  the fake never received is one the router saw time out or lose its connection;
- ``/v1/usage`` and ``/v1/analytics/providers`` agree with the sums over the job event logs.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from atelier_devstack.fake_openai import FakeOpenAI, Faults
from atelier_devstack.stack import Stack
from tests.support import eventually

pytestmark = pytest.mark.e2e

JOBS = 1000
PRIMARY = "fakeai"
FALLBACK = "offline"
API_KEY_ENV = "ATELIER_TEST_FAKEAI_KEY"
API_KEY = "sk-e2e-fault-test"
# Eight in ten jobs are text, one an image, one speech (offline images cost ~0.1 s of CPU each).
CAPABILITIES = ["text.generate"] * 8 + ["image.generate", "tts"]
ROUTE_TIMEOUT_S = 0.5
# Rolls are drawn in this order per request: 429 first, then 500, 503, then slow.
# 0.3 + 0.7 * (0.1 + 0.9 * 0.05) ≈ 10 % 5xx; 0.7 * 0.855 * 0.08 ≈ 5 % slow (→ router timeouts).
FAULTS = Faults(
    seed=4,
    rate_429=0.3,
    retry_after_s=0.25,
    rate_500=0.1,
    rate_503=0.05,
    slow_s=3.0,
    rate_slow=0.08,
    api_key=API_KEY,
)
MATRIX = """
strategy = "prefer_quality"

[providers.{primary}]
adapter = "openai"
base_url = "{base_url}"
api_key_env = "{api_key_env}"
cooldown_s = 0.5

[providers.{fallback}]
adapter = "offline"

[[capabilities."text.generate"]]
provider = "{primary}"
model = "fake-chat-1"
timeout_s = {timeout}
price = {{ input_token = 0.000002, output_token = 0.000008 }}

[[capabilities."text.generate"]]
provider = "{fallback}"
model = "offline-storyteller-1"
timeout_s = 30

[[capabilities."image.generate"]]
provider = "{primary}"
model = "fake-image-1"
timeout_s = {timeout}
price = {{ image = 0.04 }}

[[capabilities."image.generate"]]
provider = "{fallback}"
model = "offline-painter-1"
timeout_s = 60
price = {{ image = 0.001 }}

[[capabilities.tts]]
provider = "{primary}"
model = "fake-tts-1"
timeout_s = {timeout}
price = {{ character = 0.000015 }}

[[capabilities.tts]]
provider = "{fallback}"
model = "offline-voice-1"
timeout_s = 60
price = {{ audio_second = 0.0001 }}
"""


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(FAULTS) as server:
        yield server


@pytest.fixture
def faulty_stack(tmp_path: Path, fake: FakeOpenAI) -> Iterator[Stack]:
    matrix = tmp_path / "providers.toml"
    matrix.write_text(
        MATRIX.format(
            primary=PRIMARY,
            fallback=FALLBACK,
            base_url=fake.base_url,
            api_key_env=API_KEY_ENV,
            timeout=ROUTE_TIMEOUT_S,
        )
    )
    s = Stack.with_free_ports(
        tmp_path / "state",
        ATELIER_PROVIDERS_FILE=str(matrix),
        # Most of a work item's time is waiting on the fake or on offline rendering threads.
        ATELIER_PROVIDER_ROUTER_CONCURRENCY="32",
        # A submit answers 202 at once instead of waiting up to 2 s for the read model: the test
        # follows the jobs through /v1/ops/summary anyway.
        ATELIER_SUBMIT_WAIT_S="0",
        **{API_KEY_ENV: API_KEY},
    )
    try:
        s.start()
        yield s
    finally:
        s.stop()


def task(i: int) -> dict[str, Any]:
    capability = CAPABILITIES[i % len(CAPABILITIES)]
    prompt = f"a lighthouse keeper's cat, number {i}, who counts the waves"
    return {
        "kind": "task",
        "title": f"Fault test {i}",
        "input": {"capability": capability, "prompt": prompt, "seed": i, "project": f"p{i % 3}"},
        "tags": ["faults"],
    }


def work_key(job_id: str, data: dict[str, Any]) -> str:
    """The Idempotency-Key the router sends for a call: ``<work_id>:<provider>/<model>``."""
    call = data["call"]
    return f"{job_id}.{data['step']}.{data['attempt']}:{call['provider']}/{call['model']}"


Call = tuple[str, dict[str, Any]]
"""A job id and the data of one of its ``provider_called`` events (a call or a skip)."""


class Api:
    """The gateway over HTTP as a careful client uses it: a lost connection is retried (a submit
    carries an Idempotency-Key, so its retry cannot make a second job); ``retried`` counts why."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.retried: Counter[str] = Counter()

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(1, 6):
            try:
                r = await self.client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if attempt == 5:
                    raise
                self.retried[f"{method} {type(exc).__name__}"] += 1
            else:
                if r.status_code != 409 or r.json().get("code") != "idempotency_request_in_progress":
                    return r
                self.retried["in_progress"] += 1  # the lost attempt is still running: ask again shortly
            await asyncio.sleep(0.1 * attempt)
        raise AssertionError("unreachable")

    async def get_json(self, url: str, **params: Any) -> Any:
        r = await self.request("GET", url, params=params)
        assert r.status_code == 200, r.text
        return r.json()


async def submit_all(api: Api) -> dict[str, int]:
    """Submits the jobs as a client would, a few at a time; job id → its number."""
    sem = asyncio.Semaphore(24)

    async def one(i: int) -> tuple[str, int]:
        async with sem:
            r = await api.request(
                "POST", "/v1/jobs", json=task(i), headers={"Idempotency-Key": f"faults-{i}"}
            )
        assert r.status_code == 202, r.text
        return str(r.json()["id"]), i

    return dict(await asyncio.gather(*(one(i) for i in range(JOBS))))


async def read_logs(api: Api, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each job's event log, read over the API."""
    sem = asyncio.Semaphore(16)

    async def one(job_id: str) -> tuple[str, list[dict[str, Any]]]:
        async with sem:
            return job_id, list((await api.get_json(f"/v1/jobs/{job_id}/events"))["events"])

    return dict(await asyncio.gather(*(one(i) for i in ids)))


def check_log(job_id: str, events: list[dict[str, Any]]) -> str:
    """One job's log is whole and has at most one paid answer; its final status."""
    assert len({e["event_id"] for e in events}) == len(events), job_id
    finals = [e["type"] for e in events if e["type"] in ("job_succeeded", "job_failed", "job_cancelled")]
    assert len(finals) == 1, (job_id, finals)
    wins = [
        e["data"]["call"]
        for e in events
        if e["type"] == "provider_called" and e["data"]["call"]["outcome"] == "succeeded"
    ]
    steps = [e["data"] for e in events if e["type"] == "step_succeeded"]
    if finals[0] == "job_succeeded":
        assert len(wins) == len(steps) == 1, (job_id, wins, steps)
        assert steps[0]["provider"] == wins[0]["provider"], (job_id, steps, wins)
    else:
        assert wins == steps == [], (job_id, wins, steps)
    return str(finals[0]).removeprefix("job_")


def check_bill(calls: list[Call], stats: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The fake's requests and charges against the calls the logs record, key by key.

    Exact but for what the router cannot know: a call it gave up on at its timeout, or that failed on
    the connection, may never have reached the fake (the request was still queued on our side, or the
    server closed an idle pooled connection as it was reused); and a call it gave up on may have been
    answered — and charged — after it stopped waiting. Returns those keys: (never received, billed late).
    """
    made = [
        (job_id, d)
        for job_id, d in calls
        if d["call"]["provider"] == PRIMARY and d["call"]["outcome"] != "skipped"
    ]
    logged = Counter(work_key(job_id, d) for job_id, d in made)
    succeeded = {work_key(job_id, d) for job_id, d in made if d["call"]["outcome"] == "succeeded"}
    timed_out = {work_key(job_id, d) for job_id, d in made if d["call"]["error_class"] == "timeout"}
    lost = {work_key(job_id, d) for job_id, d in made if d["call"]["error_class"] == "connection"}
    received = Counter(stats["idempotency_keys"])
    billed: dict[str, int] = stats["billed"]
    assert max(logged.values(), default=0) <= 1, "a work item called the same route twice"
    assert max(received.values(), default=0) <= 1, {key: n for key, n in received.items() if n > 1}
    assert received.keys() <= logged.keys(), f"requests no log shows: {received.keys() - logged.keys()}"
    unseen = logged.keys() - received.keys()
    assert unseen <= timed_out | lost, f"calls the fake never received: {unseen - timed_out - lost}"
    assert max(billed.values(), default=0) <= 1, {key: n for key, n in billed.items() if n > 1}
    assert succeeded <= billed.keys(), f"successes the fake did not bill: {succeeded - billed.keys()}"
    late = billed.keys() - succeeded
    assert late <= timed_out, f"billed, yet neither a success nor a timeout: {late - timed_out}"
    assert sum(billed.values()) == len(succeeded) + len(late)
    return unseen, late


def check_usage(calls: list[Call], usage: dict[str, list[dict[str, Any]]], projects: dict[str, str]) -> None:
    """``/v1/usage`` by provider, capability and project: sums over the logs' calls (a skip is no call)."""
    group_of: dict[str, Callable[[str, dict[str, Any]], str]] = {
        "provider": lambda job_id, d: str(d["call"]["provider"]),
        "capability": lambda job_id, d: str(d["capability"]),
        "project": lambda job_id, d: projects[job_id],
    }
    for group, key in group_of.items():
        expected: dict[str, dict[str, Any]] = defaultdict(
            lambda: {"calls": 0, "succeeded": 0, "cost_usd": 0.0, "units": Counter()}
        )
        for job_id, d in calls:
            if d["call"]["outcome"] == "skipped":
                continue
            sums = expected[key(job_id, d)]
            sums["calls"] += 1
            sums["succeeded"] += d["call"]["outcome"] == "succeeded"
            sums["cost_usd"] += d["call"]["usage"]["cost_usd"]
            sums["units"].update(d["call"]["usage"]["units"])
        reported = {row[group]: row for row in usage[group]}
        assert reported.keys() == expected.keys(), (group, reported.keys(), expected.keys())
        for name, want in expected.items():
            got = reported[name]
            assert (got["calls"], got["succeeded"]) == (want["calls"], want["succeeded"]), (group, name)
            assert got["cost_usd"] == pytest.approx(want["cost_usd"], abs=1e-6), (group, name)
            assert got["units"] == pytest.approx(dict(want["units"]), abs=1e-3), (group, name)


def check_analytics(calls: list[Call], analytics: list[dict[str, Any]]) -> None:
    """``/v1/analytics/providers`` per provider and model: calls, skips, success and fallback ratios,
    failure reasons and cost (a success is a fallback when its attempt tried another route first)."""
    per_model: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    tried: set[tuple[str, str, int]] = set()  # (job, step, attempt) that called or skipped a provider
    for job_id, d in calls:  # in log order
        attempt = (job_id, d["step"], d["attempt"])
        fallback = d["call"]["outcome"] == "succeeded" and attempt in tried
        per_model[(d["call"]["provider"], d["call"]["model"])].append({**d["call"], "fallback": fallback})
        tried.add(attempt)
    assert {(row["provider"], row["model"]) for row in analytics} == per_model.keys()
    for row in analytics:
        logged = per_model[(row["provider"], row["model"])]
        made = [c for c in logged if c["outcome"] != "skipped"]
        failures = Counter(c["error_class"] for c in made if c["outcome"] == "failed")
        ok = sum(c["outcome"] == "succeeded" for c in made)
        assert (row["calls"], row["skipped"], row["failures"]) == (
            len(made),
            len(logged) - len(made),
            failures,
        ), row
        assert row["success_rate"] == pytest.approx(ok / len(made) if made else 0.0, abs=1e-4), row
        fallbacks = sum(c["fallback"] for c in made)
        assert row["fallback_ratio"] == pytest.approx(fallbacks / ok if ok else 0.0, abs=1e-4), row
        assert row["cost_usd"] == pytest.approx(sum(c["usage"]["cost_usd"] for c in made), abs=1e-6), row


async def test_a_thousand_jobs_through_a_faulty_primary(faulty_stack: Stack, fake: FakeOpenAI) -> None:
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=faulty_stack.gateway_url, timeout=30) as client:
        api = Api(client)
        numbers = await submit_all(api)
        submitted = time.monotonic()

        async def all_terminal() -> dict[str, int] | None:
            counts: dict[str, int] = (await api.get_json("/v1/ops/summary"))["jobs_by_status"]
            done = counts["succeeded"] + counts["failed"] + counts["cancelled"]
            return counts if done == JOBS else None

        by_status = await eventually(all_terminal, within=240, every=0.5)
        finished = time.monotonic()
        logs = await read_logs(api, list(numbers))
        usage = {
            group: (await api.get_json("/v1/usage", group_by=group))["groups"]
            for group in ("provider", "capability", "project")
        }
        analytics = (await api.get_json("/v1/analytics/providers", days=1))["providers"]

    # The router abandons a slow call at its timeout; the fake notices the hang-up a little later.
    async def fake_idle() -> dict[str, Any] | None:
        stats = fake.stats()
        return stats if stats["in_flight"] == 0 else None

    stats = await eventually(fake_idle, within=30)

    statuses = Counter(check_log(job_id, events) for job_id, events in logs.items())
    assert statuses == {s: n for s, n in by_status.items() if n}, (statuses, by_status)
    assert statuses["succeeded"] >= 0.99 * JOBS, statuses
    calls = [
        (job_id, e["data"])
        for job_id, events in logs.items()
        for e in events
        if e["type"] == "provider_called"
    ]
    unseen, late = check_bill(calls, stats)
    check_usage(calls, usage, {job_id: task(i)["input"]["project"] for job_id, i in numbers.items()})
    check_analytics(calls, analytics)

    # The faults happened, and both providers answered: the test tested something.
    primary = [d["call"] for _, d in calls if d["call"]["provider"] == PRIMARY]
    errors = Counter(c["error_class"] for c in primary if c["outcome"] != "succeeded")
    wins = Counter(d["call"]["provider"] for _, d in calls if d["call"]["outcome"] == "succeeded")
    for error_class in ("rate_limited", "server_error", "timeout", "cooling_down"):
        assert errors[error_class] > 0, errors
    assert wins[PRIMARY] > 0, wins
    assert wins[FALLBACK] > 0, wins
    assert sum(row["cost_usd"] for row in usage["provider"]) > 0
    fell_back = sum(
        bool(e["data"]["fallbacks"])
        for events in logs.values()
        for e in events
        if e["type"] == "step_succeeded"
    )
    print(
        f"\n{JOBS} jobs {dict(statuses)}: submitted in {submitted - started:.1f}s, all terminal after "
        f"{finished - started:.1f}s, checked after {time.monotonic() - started:.1f}s\n"
        f"answered by {dict(wins)} (primary share {wins[PRIMARY] / sum(wins.values()):.1%}), "
        f"{fell_back} after a fallback\nprimary: {len(primary)} calls and skips, {dict(errors)}; "
        f"fake outcomes {stats['outcomes']}; billed {sum(stats['billed'].values())}, "
        f"{len(late)} of them after the router's timeout; {len(unseen)} calls never reached it"
        f"\nclient retries {dict(api.retried)}"
    )
