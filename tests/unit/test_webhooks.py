"""Webhook rules: event types and patterns, the retry schedule, and where deliveries may go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from atelier_gateway.adapters.webhook_http import HttpPoster
from atelier_gateway.app.errors import InvalidRequest
from atelier_gateway.app.webhook_dispatch import Answer, WebhookDispatch
from atelier_gateway.app.webhooks import (
    Attempt,
    Delivery,
    Destinations,
    Endpoint,
    RetryPolicy,
    WebhookUrlRefused,
    check_patterns,
    check_secret,
    matches,
    new_secret,
    webhook_type,
)

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def endpoint(url: str) -> Endpoint:
    return Endpoint(
        id="whk_1", tenant="t", url=url, events=["*"], secret=new_secret(), description="", enabled=True,
        created_at=T0,
    )  # fmt: skip


def delivery() -> Delivery:
    return Delivery(
        id="dlv_1", endpoint_id="whk_1", tenant="t", event_id="e:0", event_type="job.queued", job_id="job_1",
        payload="{}", status="pending", attempts=0, next_attempt_at=T0, created_at=T0,
    )  # fmt: skip


def test_event_types_have_a_family() -> None:
    assert webhook_type("job_submitted", "queued") == "job.queued"
    assert webhook_type("job_succeeded", "succeeded") == "job.succeeded"
    assert webhook_type("job_updated", "updated") == "job.updated"
    assert webhook_type("step_succeeded", "step_succeeded") == "step.succeeded"
    assert webhook_type("provider_called", "log") is None


def test_patterns_match_types_families_or_everything() -> None:
    assert matches(["job.succeeded"], "job.succeeded")
    assert not matches(["job.succeeded"], "job.failed")
    assert matches(["step.*"], "step.started")
    assert not matches(["step.*"], "job.started")
    assert matches(["*"], "job.cancelled")
    assert check_patterns(["job.*", "job.*", "step.failed"]) == ["job.*", "step.failed"]
    for bad in ([], ["jobs.*"], ["job."], ["succeeded"]):
        with pytest.raises(InvalidRequest):
            check_patterns(bad)


def test_retries_double_up_to_the_cap_and_stop_after_a_day() -> None:
    policy = RetryPolicy(base_s=30, cap_s=4 * 3600, give_up_s=26 * 3600)
    waits = [(policy.next_at(n, T0, T0) or T0) - T0 for n in range(1, 12)]
    assert waits[:4] == [timedelta(seconds=s) for s in (30, 60, 120, 240)]
    assert max(waits) == timedelta(hours=4)
    assert policy.next_at(12, T0, T0 + timedelta(hours=23)) is None, "past 26 h: given up"
    assert policy.next_at(12, T0, T0 + timedelta(hours=21)) is not None, "a day and more of trying"


def test_internal_addresses_are_refused_unless_allowed() -> None:
    strict = Destinations()
    for url in ("http://127.0.0.1/", "http://10.1.2.3/", "http://169.254.169.254/", "http://[::1]:8080/"):
        with pytest.raises(WebhookUrlRefused):
            strict.check_url(url)
    for url in ("ftp://example.com/", "http:///nohost", "http://user:pw@example.com/"):
        with pytest.raises(WebhookUrlRefused):
            strict.check_url(url)
    assert strict.check_url("https://93.184.215.14/hook") == "93.184.215.14"
    assert strict.check_url("https://hooks.example.com/x") == "hooks.example.com", "names: judged at delivery"
    lab = Destinations(allow=("10.0.0.0/8", "receiver.internal"))
    assert lab.check_url("http://10.9.9.9/") == "10.9.9.9"
    assert lab.allowed("receiver.internal")
    with pytest.raises(WebhookUrlRefused):
        lab.check_url("http://192.168.1.1/")


async def test_a_name_resolving_to_an_internal_address_gets_no_request() -> None:
    poster = HttpPoster(Destinations(), timeout_s=2.0)
    try:
        answer = await poster.post(endpoint("http://localhost:9/hook"), delivery(), 1)
    finally:
        await poster.close()
    assert answer.status_code is None
    assert answer.error.startswith("refused: 127.0.0.1 is an internal address")


def test_ipv6_forms_that_reach_an_internal_ipv4_are_refused() -> None:
    strict = Destinations()
    for address in (
        "::ffff:127.0.0.1",
        "64:ff9b::a00:1",
        "64:ff9b::a9fe:a9fe",
        "2002:a9fe:a9fe::",
        "::127.0.0.1",
    ):
        with pytest.raises(WebhookUrlRefused):
            strict.check_address(address)
    strict.check_address("64:ff9b::5db8:d70e")  # NAT64 of a public address is public
    with pytest.raises(WebhookUrlRefused):
        strict.check_url("http://" + "a" * 64 + ".example/")  # no resolver takes it: refused, not a crash


def test_a_given_secret_must_be_one_the_signing_library_reads() -> None:
    assert check_secret(new_secret()).startswith("whsec_")
    for bad in ("whsec_" + "A" * 25, "whsec_" + "=" * 24):
        with pytest.raises(InvalidRequest):
            check_secret(bad)


class RecordingStore:
    def __init__(self) -> None:
        self.finished: list[tuple[Attempt, str, datetime | None]] = []

    async def finish_attempt(
        self, delivery: Delivery, attempt: Attempt, *, status: str, next_attempt_at: datetime | None
    ) -> None:
        self.finished.append((attempt, status, next_attempt_at))


class BrokenPoster:
    async def post(self, endpoint: Endpoint, delivery: Delivery, attempt: int) -> Answer:
        raise RuntimeError("a bug in sending")


async def test_a_send_that_crashes_is_an_attempt_in_the_log_with_backoff_not_a_lost_task() -> None:
    store = RecordingStore()
    dispatch = WebhookDispatch(
        store,  # type: ignore[arg-type]
        BrokenPoster(),
        lambda: T0,
        policy=RetryPolicy(base_s=30),
        timeout_s=1.0,
    )
    await dispatch._send(endpoint("https://example.com/h"), delivery())
    [(attempt, status, due)] = store.finished
    assert status == "pending"
    assert due == T0 + timedelta(seconds=30)
    assert "a bug in sending" in attempt.error
