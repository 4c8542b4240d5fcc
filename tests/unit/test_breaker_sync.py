"""Breaker trips shared between router replicas: adopting, publishing, no feedback, a watch that restarts.

The breaker rules take time as arguments; the sync runs over an in-memory stand-in for the KV
bucket (the real bucket is in tests/integration/test_breaker_sync.py).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import cast

import pytest
from nats.js.kv import KeyValue

from atelier_provider_router.adapters.breaker_sync import BreakerSync
from atelier_provider_router.app.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from atelier_provider_router.app.matrix import ProviderConfig, parse
from atelier_provider_router.app.ports import ErrorClass
from atelier_provider_router.app.router import Router
from tests.support import Clock, eventually


def breaker(cooldown_s: float = 10.0) -> Breaker:
    return Breaker(ProviderConfig(adapter="offline", cooldown_s=cooldown_s))


# -- the breaker ------------------------------------------------------------------------------


def test_an_adopted_trip_opens_the_breaker_until_its_end_then_this_replica_probes_once() -> None:
    b = breaker()
    assert b.adopt(130.0, "429", now=100.0, by="replica-a")
    assert (b.state, b.remaining(100.0), b.adopted_from) == (OPEN, 30.0, "replica-a")
    assert b.reason == "tripped by replica-a: 429"
    assert not b.allow(129.9)
    assert b.allow(130.0), "the adopted trip is over: one probe of our own"
    assert b.state == HALF_OPEN
    assert not b.allow(130.0), "one probe at a time"
    b.succeeded()
    assert (b.state, b.adopted_from, b.reason) == (CLOSED, "", "")


def test_a_failed_probe_after_an_adopted_trip_doubles_it_and_is_our_own_trip() -> None:
    b = breaker(cooldown_s=5)
    b.adopt(130.0, "429", now=100.0, by="replica-a")
    assert b.allow(130.0)
    b.failed(ErrorClass.SERVER_ERROR, 130.0)
    assert (b.state, b.remaining(130.0), b.adopted_from) == (OPEN, 60.0, "")
    assert b.reason == "probe: server_error"


def test_adopting_never_shortens_a_longer_trip_and_ignores_an_expired_one() -> None:
    b = breaker()
    b.failed(ErrorClass.RATE_LIMITED, 100.0, retry_after_s=60)
    assert not b.adopt(130.0, "429", now=100.0, by="replica-a")
    assert (b.until, b.reason, b.adopted_from) == (160.0, "429", "")
    assert b.adopt(200.0, "auth", now=100.0, by="replica-a"), "a longer trip elsewhere wins"
    assert (b.until, b.adopted_from) == (200.0, "replica-a")
    assert not b.adopt(200.0, "auth", now=100.0, by="replica-b"), "the same end again changes nothing"
    c = breaker()
    assert not c.adopt(99.0, "429", now=100.0, by="replica-a")
    assert c.state == CLOSED


def test_a_late_failure_of_our_own_does_not_shorten_a_longer_adopted_trip() -> None:
    b = breaker(cooldown_s=5)
    b.adopt(130.0, "429", now=100.0, by="replica-a")
    b.failed(ErrorClass.RATE_LIMITED, 101.0)  # a call that went out before we adopted
    assert (b.until, b.adopted_from) == (130.0, "replica-a")
    b.failed(ErrorClass.RATE_LIMITED, 102.0, retry_after_s=60)
    assert (b.until, b.reason, b.adopted_from) == (162.0, "429", ""), "a longer one of our own wins"


def test_adopting_a_trip_while_probing_keeps_the_breaker_open_whatever_the_probe_says() -> None:
    b = breaker()
    b.failed(ErrorClass.RATE_LIMITED, 0.0, retry_after_s=10)
    assert b.allow(10.0)
    assert b.adopt(40.0, "429", now=10.0, by="replica-a")
    b.succeeded()  # our probe went out before the other replica's 429
    assert (b.state, b.remaining(10.0)) == (OPEN, 30.0)


def test_a_recovery_elsewhere_closes_only_a_breaker_open_because_of_an_adopted_trip() -> None:
    adopted = breaker()
    adopted.adopt(130.0, "429", now=100.0, by="replica-a")
    assert adopted.adopt_closed(110.0, by="replica-b")
    assert adopted.state == CLOSED
    assert adopted.allow(110.0)

    own = breaker()
    own.failed(ErrorClass.RATE_LIMITED, 100.0, retry_after_s=30)
    assert not own.adopt_closed(110.0, by="replica-b"), "our own 429 still stands"
    assert (own.state, own.until) == (OPEN, 130.0)

    closed = breaker()
    assert not closed.adopt_closed(110.0, by="replica-b")

    expired = breaker()
    expired.adopt(130.0, "429", now=100.0, by="replica-a")
    assert expired.allow(130.0)  # half-open, its probe out
    assert expired.adopt_closed(130.5, by="replica-b")
    assert expired.state == CLOSED


def test_a_recovery_elsewhere_leaves_our_own_trip_that_an_adopted_one_covered() -> None:
    b = breaker()
    b.failed(ErrorClass.RATE_LIMITED, 100.0, retry_after_s=20)
    b.adopt(160.0, "auth", now=100.0, by="replica-a")
    assert b.adopt_closed(110.0, by="replica-b")
    assert (b.state, b.until, b.reason, b.adopted_from) == (OPEN, 120.0, "429", "")
    assert not b.adopt_closed(115.0, by="replica-b"), "now it is our own trip"


def test_each_replica_probes_once_when_a_shared_trip_ends() -> None:
    replicas = [breaker() for _ in range(3)]
    replicas[0].failed(ErrorClass.RATE_LIMITED, 100.0, retry_after_s=30)
    for b in replicas[1:]:
        b.adopt(130.0, "429", now=100.0, by="replica-0")
    assert [b.allow(130.0) for b in replicas] == [True, True, True]
    assert [b.allow(130.0) for b in replicas] == [False, False, False]


# -- the sync over an in-memory bucket --------------------------------------------------------

MATRIX = """
[providers.a]
adapter = "offline"
cooldown_s = 5
[providers.b]
adapter = "offline"
[[capabilities."text.generate"]]
provider = "a"
model = "m1"
[[capabilities."text.generate"]]
provider = "b"
model = "m2"
"""


ENDED = KeyValue.Entry("ATELIER_PROVIDERS", "", None, 0, 0, 0, "(the end)")


@dataclass
class FakeWatcher:
    updates: asyncio.Queue[KeyValue.Entry | None] = field(default_factory=asyncio.Queue)
    stopped: bool = False

    def __aiter__(self) -> FakeWatcher:
        return self

    async def __anext__(self) -> KeyValue.Entry | None:
        update = await self.updates.get()
        if update is ENDED:
            raise StopAsyncIteration
        return update

    async def stop(self) -> None:
        self.stopped = True


@dataclass
class FakeKv:
    """Keys with revisions, writes recorded, and watchers that see every write."""

    values: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    writes: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    watchers: list[FakeWatcher] = field(default_factory=list)
    revision: int = 0

    async def put(self, key: str, value: bytes) -> int:
        self.revision += 1
        self.values[key] = (value, self.revision)
        self.writes.append((key, json.loads(value)))
        for w in self.watchers:
            w.updates.put_nowait(self.entry(key))
        return self.revision

    async def get(self, key: str) -> KeyValue.Entry:
        import nats.js.errors

        if key not in self.values:
            raise nats.js.errors.KeyNotFoundError
        return self.entry(key)

    async def create(self, key: str, value: bytes) -> int:
        import nats.js.errors

        if key in self.values:
            raise nats.js.errors.KeyWrongLastSequenceError
        return await self.put(key, value)

    async def update(self, key: str, value: bytes, last: int) -> int:
        import nats.js.errors

        if self.values[key][1] != last:
            raise nats.js.errors.KeyWrongLastSequenceError
        return await self.put(key, value)

    async def watchall(self, **_: object) -> FakeWatcher:
        w = FakeWatcher()
        for key in self.values:
            w.updates.put_nowait(self.entry(key))
        w.updates.put_nowait(None)
        self.watchers.append(w)
        return w

    def entry(self, key: str) -> KeyValue.Entry:
        value, revision = self.values[key]
        return KeyValue.Entry("ATELIER_PROVIDERS", key, value, revision, 0, 0, None)


def replica(name: str, kv: FakeKv, mono: Clock, wall: Clock) -> BreakerSync:
    async def bucket() -> KeyValue:
        return cast(KeyValue, kv)

    router = Router(parse(MATRIX), {}, clock=mono)
    return BreakerSync(router, bucket, name, wall=wall, retry_s=0.01)


def trip(sync: BreakerSync, provider: str = "a", retry_after_s: float = 30.0) -> None:
    sync.router.breakers[provider].failed(ErrorClass.RATE_LIMITED, sync.router.clock(), retry_after_s)


def entry(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_an_entry_of_another_replica_is_adopted_with_its_wall_clock_end_in_our_clock() -> None:
    # Our monotonic clock reads 50 when the wall clock reads 10_000: a trip ending at wall
    # 10_030 ends at monotonic 80 here.
    sync = replica("me", FakeKv(), Clock(50.0), Clock(10_000.0))
    assert sync.apply("a", entry(state="open", reason="429", until=10_030.0, by="other"))
    b = sync.router.breakers["a"]
    assert (b.state, b.until, b.reason) == (OPEN, 80.0, "tripped by other: 429")
    assert sync.router.changed.is_set()


@pytest.mark.parametrize(
    "value",
    [
        entry(state="open", reason="429", until=10_030.0, by="me"),  # our own
        entry(state="open", reason="429", until=9_999.0, by="other"),  # over
        entry(state="half_open", reason="429", until=10_030.0, by="other"),
        entry(state="open", reason="429", by="other"),  # no end
        entry(state="open", reason="429", until="soon", by="other"),
        entry(state="open", reason="429", until=float("inf"), by="other"),
        entry(state="open", reason="429", until=10_030.0),  # nobody's
        b"not json",
        b"[1, 2]",
    ],
)
def test_entries_that_say_nothing_to_adopt_are_ignored(value: bytes) -> None:
    sync = replica("me", FakeKv(), Clock(50.0), Clock(10_000.0))
    assert not sync.apply("a", value)
    assert not sync.apply("unknown-provider", entry(state="open", until=10_030.0, by="other"))
    assert sync.router.breakers["a"].state == CLOSED


def test_only_a_recovery_closes_an_adopted_trip_not_a_replica_starting_up() -> None:
    sync = replica("me", FakeKv(), Clock(50.0), Clock(10_000.0))
    sync.apply("a", entry(state="open", reason="429", until=10_030.0, by="other"))
    assert not sync.apply("a", entry(state="closed", reason="", until=10_000.0, by="new", recovered=False))
    assert sync.router.breakers["a"].state == OPEN
    assert sync.apply("a", entry(state="closed", reason="", until=10_000.0, by="other", recovered=True))
    assert sync.router.breakers["a"].state == CLOSED


async def test_own_changes_are_published_adopted_ones_are_not() -> None:
    kv, mono, wall = FakeKv(), Clock(50.0), Clock(10_000.0)
    a, b = replica("A", kv, mono, wall), replica("B", kv, mono, wall)
    seen_a: dict[str, dict[str, object]] = {}
    seen_b: dict[str, dict[str, object]] = {}
    await a.publish_changes(seen_a)
    await b.publish_changes(seen_b)
    assert [(k, e["state"], e["by"]) for k, e in kv.writes] == [
        ("a", "closed", "A"), ("b", "closed", "A"), ("a", "closed", "B"), ("b", "closed", "B"),
    ]  # fmt: skip
    kv.writes.clear()

    trip(a)
    await a.publish_changes(seen_a)
    assert kv.writes == [
        ("a", {"state": "open", "reason": "429", "until": 10_030.0, "by": "A", "recovered": False}),
    ]  # fmt: skip
    b.apply("a", kv.values["a"][0])
    await b.publish_changes(seen_b)
    assert len(kv.writes) == 1, "B does not publish a trip it adopted"
    mono.now, wall.now = 60.0, 10_010.0
    await a.publish_changes(seen_a)
    assert len(kv.writes) == 1, "a trip going on is no change: no countdown is written"
    cooldown = b.router.breakers["a"].cooldown_s
    assert not b.apply("a", kv.values["a"][0]), "the same trip read again (a resync) changes nothing"
    assert b.router.breakers["a"].cooldown_s == cooldown

    # A's probe succeeds when the trip is over: a recovery, which closes B's adopted trip.
    mono.now, wall.now = 80.0, 10_030.0
    assert a.router.breakers["a"].allow(mono.now)
    a.router.breakers["a"].succeeded()
    await a.publish_changes(seen_a)
    assert kv.writes[-1][1] | {"until": 0} == {
        "state": "closed", "reason": "", "until": 0, "by": "A", "recovered": True,
    }  # fmt: skip
    assert b.apply("a", kv.values["a"][0])
    assert b.router.breakers["a"].state == CLOSED
    await b.publish_changes(seen_b)
    assert len(kv.writes) == 2, "nor a recovery it adopted"


async def test_a_new_replica_does_not_overwrite_a_live_trip_and_adopts_it() -> None:
    kv, mono, wall = FakeKv(), Clock(50.0), Clock(10_000.0)
    a = replica("A", kv, mono, wall)
    trip(a)
    await a.publish_changes({})
    b = replica("B", kv, Clock(7.0), wall)
    await b.publish_changes({})
    assert json.loads(kv.values["a"][0])["by"] == "A"
    assert json.loads(kv.values["b"][0])["by"] == "B"
    stop = asyncio.Event()
    watching = asyncio.create_task(b.watch(stop))
    try:
        await eventually(lambda: _state(b, "a", OPEN), within=5)
    finally:
        stop.set()
        await asyncio.wait_for(watching, 5)
    assert b.router.breakers["a"].remaining(7.0) == 30.0


async def _watchers(kv: FakeKv, n: int) -> bool:
    return len(kv.watchers) >= n


async def _state(sync: BreakerSync, provider: str, state: str) -> bool:
    return sync.router.breakers[provider].state == state


async def test_replicas_adopting_each_other_do_not_feed_back() -> None:
    """Three replicas, every write delivered to every watcher: one trip, one write, and it ends."""
    kv, mono, wall = FakeKv(), Clock(50.0), Clock(10_000.0)
    syncs = [replica(n, kv, mono, wall) for n in ("A", "B", "C")]
    seen: list[dict[str, dict[str, object]]] = [{}, {}, {}]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(s.watch(stop)) for s in syncs]
    try:
        await eventually(lambda: _watchers(kv, 3), within=5)
        for s, mine in zip(syncs, seen, strict=True):
            await s.publish_changes(mine)
        trip(syncs[0])
        for _ in range(5):  # a second passes, everyone publishes, the watchers catch up
            for s, mine in zip(syncs, seen, strict=True):
                await s.publish_changes(mine)
            await eventually(lambda: _drained(kv), within=5)
            mono.now, wall.now = mono.now + 1, wall.now + 1
        opened = [(k, e["by"], e["until"]) for k, e in kv.writes if e["state"] != "closed"]
        assert opened == [("a", "A", 10_030.0)], "A's trip, once; nobody else writes"
        assert [s.router.breakers["a"].until for s in syncs] == [80.0, 80.0, 80.0]
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)


async def _drained(kv: FakeKv) -> bool:
    return all(w.updates.empty() for w in kv.watchers)


async def test_a_failing_watch_is_logged_and_started_again_until_stopped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kv = FakeKv()
    await kv.put("a", entry(state="open", reason="429", until=10_030.0, by="other"))
    failures = 2

    async def flaky_bucket() -> KeyValue:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("nats is reconnecting")
        return cast(KeyValue, kv)

    router = Router(parse(MATRIX), {}, clock=Clock(50.0))
    sync = BreakerSync(router, flaky_bucket, "me", wall=Clock(10_000.0), retry_s=0.01)
    stop = asyncio.Event()
    watching = asyncio.create_task(sync.watch(stop))
    try:
        await eventually(lambda: _state(sync, "a", OPEN), within=5)
        # A delete changes nothing; then the watch ends (say the server dropped it): it is
        # started again, and sees what is written afterwards.
        first = kv.watchers[0]
        first.updates.put_nowait(KeyValue.Entry("ATELIER_PROVIDERS", "a", None, 9, 0, 0, "DEL"))
        first.updates.put_nowait(ENDED)
        await eventually(lambda: _watchers(kv, 2), within=5)
        assert first.stopped
        await kv.put("b", entry(state="open", reason="auth", until=13_600.0, by="other"))
        await eventually(lambda: _state(sync, "b", OPEN), within=5)
        assert sync.router.breakers["a"].state == OPEN
    finally:
        stop.set()
        await asyncio.wait_for(watching, 5)
    assert sum("watching breaker states failed" in r.getMessage() for r in caplog.records) == 2
    assert any("watch ended, starting again" in r.getMessage() for r in caplog.records)
    assert all(w.stopped for w in kv.watchers)
