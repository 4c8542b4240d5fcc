"""The session aggregate, pure: decide and evolve with time and ids passed in.

Property: commands and round ends in any order, some delivered twice, decide the same as once;
every round is started once per command and ended by its own job only; each round holds the
context as it stood when it began; replay of the log equals the state folded live.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atelier_contracts.aggregates import LogCommit
from atelier_contracts.common import BlobRef
from atelier_contracts.sessions import (
    AdoptCandidate,
    Candidate,
    CloseSession,
    ContextChanged,
    CreateSession,
    EndRound,
    RoundStarted,
    SessionCommand,
    SessionContext,
    SessionEvent,
    StartRound,
    UpdateSession,
)
from atelier_orchestrator.domain.aggregate import Ctx
from atelier_orchestrator.domain.decide import Rejected
from atelier_orchestrator.domain.session import SessionState, apply_commit, decide, round_job_id

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SID = "ses_test"


class SessionSim:
    def __init__(self) -> None:
        self.state: SessionState | None = None
        self.commits: list[tuple[LogCommit[SessionEvent], int]] = []
        self.clock = 0

    def send(self, command: SessionCommand, msg_id: str) -> list[SessionEvent]:
        self.clock += 1
        now = T0 + timedelta(seconds=self.clock)
        events = decide(self.state, command, Ctx(SID, "t1", now, msg_id))
        if events:
            seq = (self.commits[-1][1] if self.commits else 0) + 2
            prev = self.commits[-1][1] if self.commits else 0
            commit = LogCommit[SessionEvent](
                commit_id=f"c{seq}",
                to=SID,
                tenant="t1",
                causation_id=msg_id,
                prev_seq=prev,
                at=now,
                events=events,
            )
            self.state = apply_commit(self.state, commit, seq)
            self.commits.append((commit, seq))
        return events

    def replay(self) -> SessionState | None:
        state = None
        for commit, seq in self.commits:
            state = apply_commit(state, commit, seq)
        return state

    def events(self) -> list[SessionEvent]:
        return [e for c, _ in self.commits for e in c.events]


def candidate(job_id: str, n: int) -> Candidate:
    return Candidate(
        asset_id=f"ast_{job_id[-6:]}_{n}",
        step="task",
        name=f"image_{n}",
        kind="image",
        blob=BlobRef(key=f"k/{job_id}/{n}", size=10, content_type="image/png"),
    )


def test_a_round_receives_the_context_and_base_as_they_stood_when_it_began() -> None:
    sim = SessionSim()
    sim.send(CreateSession(kind="task", title="Teapot", context=SessionContext(lighting="soft")), "m1")
    [started] = sim.send(StartRound(input={"prompt": "teapot", "capability": "image.generate"}), "m2")
    assert isinstance(started, RoundStarted)
    assert started.job_id == round_job_id(SID, 1)
    assert started.context == SessionContext(lighting="soft")
    assert started.base is None
    [changed] = sim.send(UpdateSession(context=SessionContext(lighting="", color_tone="warm")), "m3")
    assert isinstance(changed, ContextChanged)
    assert changed.changed == ["lighting", "color_tone"]
    assert changed.context == SessionContext(color_tone="warm"), '"" clears a field'
    job_1 = started.job_id
    sim.send(EndRound(round=1, job_id=job_1, status="succeeded", candidates=[candidate(job_1, 1)]), "m4")
    sim.send(AdoptCandidate(round=1, asset_id=candidate(job_1, 1).asset_id), "m5")
    [second] = sim.send(StartRound(input={"prompt": "closer", "capability": "image.generate"}), "m6")
    assert isinstance(second, RoundStarted)
    assert second.context == SessionContext(color_tone="warm")
    assert second.base == candidate(job_1, 1)
    assert sim.state is not None
    assert sim.state.rounds[0].context == SessionContext(lighting="soft"), "the first round keeps its own"
    assert sim.state.rounds[0].adopted == candidate(job_1, 1).asset_id


def test_refusals_name_what_is_wrong() -> None:
    sim = SessionSim()
    with pytest.raises(Rejected) as missing:
        sim.send(StartRound(input={}), "m0")
    assert missing.value.code == "session_not_found"
    sim.send(CreateSession(kind="task", title="T", request_hash="h1"), "m1")
    assert sim.send(CreateSession(kind="task", title="T", request_hash="h1"), "m1b") == [], "the same create"
    with pytest.raises(Rejected) as other:
        sim.send(CreateSession(kind="task", title="U", request_hash="h2"), "m1c")
    assert other.value.code == "idempotency_key_reused"
    with pytest.raises(Rejected) as no_round:
        sim.send(AdoptCandidate(round=1, asset_id="ast_x"), "m2")
    assert no_round.value.code == "round_not_found"
    sim.send(CloseSession(), "m3")
    with pytest.raises(Rejected) as closed:
        sim.send(StartRound(input={}), "m4")
    assert closed.value.code == "session_closed"
    assert sim.send(EndRound(round=1, job_id="job_other", status="failed"), "m5") == [], (
        "not one of its rounds"
    )


@st.composite
def scripts(draw: st.DrawFn) -> list[tuple[str, SessionCommand]]:
    """A client's commands after the create, each with its message id."""
    steps: list[tuple[str, SessionCommand]] = []
    for i in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["round", "round", "context", "adopt", "close"]))
        if kind == "round":
            steps.append((f"c{i}", StartRound(input={"prompt": f"p{i}", "capability": "text.generate"})))
        elif kind == "context":
            tone = draw(st.sampled_from(["warm", "cool", ""]))
            steps.append(
                (f"c{i}", UpdateSession(context=SessionContext(color_tone=tone, extra={"n": str(i)})))
            )
        elif kind == "adopt":
            steps.append((f"c{i}", AdoptCandidate(round=draw(st.integers(1, 4)), asset_id="")))
        else:
            steps.append((f"c{i}", CloseSession()))
    return steps


@settings(max_examples=150, deadline=None)
@given(st.data(), scripts())
def test_any_order_with_duplicates_decides_as_once_and_replays_to_the_state(
    data: st.DataObject, script: list[tuple[str, SessionCommand]]
) -> None:
    sim = SessionSim()
    sim.send(CreateSession(kind="task", title="T", context=SessionContext(lighting="soft")), "create")
    pending: list[tuple[str, SessionCommand]] = list(script)
    delivered: list[str] = []
    started_by: dict[int, str] = {}
    while pending:
        msg_id, command = pending.pop(data.draw(st.integers(0, len(pending) - 1)))
        if isinstance(command, AdoptCandidate) and sim.state is not None:
            # Adopt what the round produced, if it has ended (else the refusal is the answer).
            rounds = sim.state.rounds
            if command.round <= len(rounds) and rounds[command.round - 1].candidates:
                command = AdoptCandidate(
                    round=command.round, asset_id=rounds[command.round - 1].candidates[0].asset_id
                )
        try:
            events = sim.send(command, msg_id)
        except Rejected:
            events = []
        delivered.append(msg_id)
        for event in events:
            if isinstance(event, RoundStarted):
                started_by[event.round] = msg_id
                end = EndRound(
                    round=event.round,
                    job_id=event.job_id,
                    status="succeeded",
                    candidates=[candidate(event.job_id, event.round)],
                )
                pending += [(f"end{event.round}", end)] * (1 + data.draw(st.booleans()))  # relayed twice
        if delivered.count(msg_id) < 3 and data.draw(st.integers(0, 3)) == 3:
            pending.append((msg_id, command))  # redelivered, in any order
    state = sim.state
    assert state is not None
    assert sim.replay() == state
    assert len(set(started_by.values())) == len(started_by) == len(state.rounds), "one round per command"
    assert [r.job_id for r in state.rounds] == [round_job_id(SID, n) for n in range(1, len(state.rounds) + 1)]
    assert all(r.status == "succeeded" for r in state.rounds), "every round's end recorded"
    context = SessionContext(lighting="soft")
    for event in sim.events():
        if isinstance(event, ContextChanged):
            context = event.context
        if isinstance(event, RoundStarted):
            assert event.context == context, "the context as it stood when the round began"
    ends = [e for e in sim.events() if type(e).__name__ == "RoundEnded"]
    assert len(ends) == len(state.rounds), "a round's end recorded once, however often it came"


def test_an_older_end_of_a_rounds_job_never_overwrites_a_newer() -> None:
    sim = SessionSim()
    sim.send(CreateSession(kind="task", title="T"), "m1")
    [started] = sim.send(StartRound(input={"prompt": "p", "capability": "tts"}), "m2")
    assert isinstance(started, RoundStarted)
    job = started.job_id
    sim.send(
        EndRound(round=1, job_id=job, status="succeeded", candidates=[candidate(job, 1)], seq=40), "end40"
    )
    assert sim.send(EndRound(round=1, job_id=job, status="failed", seq=20), "end20") == [], (
        "from before a requeue"
    )
    assert sim.state is not None
    assert sim.state.rounds[0].status == "succeeded"
