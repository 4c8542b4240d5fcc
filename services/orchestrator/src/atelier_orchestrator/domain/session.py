"""The session aggregate: pure ``decide`` and ``evolve``, time and ids passed in.

A session's rounds are child jobs. Starting one appends ``RoundStarted`` with the job id derived
from the session and round, and the relay submits that job (a redelivery submits the same job
again, which is no second job); the job's end comes back as ``EndRound``, relayed from the job's
log. No aggregate reads another's state.
"""

from __future__ import annotations

from msgspec.structs import replace

from atelier_contracts import ids
from atelier_contracts.aggregates import LogCommit
from atelier_contracts.sessions import (
    AdoptCandidate,
    CandidateAdopted,
    CloseSession,
    ContextChanged,
    CreateSession,
    EndRound,
    Round,
    RoundEnded,
    RoundStarted,
    SessionClosed,
    SessionCommand,
    SessionCreated,
    SessionEvent,
    SessionRenamed,
    SessionView,
    StartRound,
    UpdateSession,
)
from atelier_orchestrator.domain.aggregate import Ctx, fold, public, seen
from atelier_orchestrator.domain.decide import Rejected

MAX_ROUNDS = 500
"""Rounds per session: a session is a conversation, not a queue."""


class SessionState(SessionView, frozen=True, kw_only=True):
    """The public view, and what deciding needs besides."""

    request_hash: str = ""
    recent_causes: list[str] = []


def round_job_id(session_id: str, number: int) -> str:
    return ids.derived_id("job", session_id, "round", str(number))


def decide(state: SessionState | None, command: SessionCommand, ctx: Ctx) -> list[SessionEvent]:
    if seen(state, ctx):
        return []
    if isinstance(command, CreateSession):
        if state is not None:
            if state.request_hash == command.request_hash:
                return []  # the same create again
            raise Rejected("idempotency_key_reused", "this session was created by another request")
        return [
            SessionCreated(
                kind=command.kind,
                title=command.title,
                context=command.context,
                request_hash=command.request_hash,
            )
        ]
    if state is None:
        raise Rejected("session_not_found", f"no session {ctx.id}")
    match command:
        case EndRound():
            return _end_round(state, command)
        case _ if state.status == "closed":
            raise Rejected("session_closed", "the session is closed")
        case UpdateSession():
            out: list[SessionEvent] = []
            if command.title is not None and command.title != state.title:
                out.append(SessionRenamed(title=command.title))
            if command.context is not None:
                new = state.context.changed_by(command.context)
                if changed := state.context.differs_in(new):
                    out.append(ContextChanged(context=new, changed=changed))
            return out
        case StartRound():
            if len(state.rounds) >= MAX_ROUNDS:
                raise Rejected("limit_exceeded", f"a session has at most {MAX_ROUNDS} rounds")
            number = len(state.rounds) + 1
            return [
                RoundStarted(
                    round=number,
                    job_id=round_job_id(ctx.id, number),
                    input=command.input,
                    context=state.context,
                    base=state.adopted,
                    title=command.title or f"{state.title} · round {number}",
                    priority=command.priority,
                )
            ]
        case AdoptCandidate():
            if not 1 <= command.round <= len(state.rounds):
                raise Rejected("round_not_found", f"no round {command.round}")
            found = [c for c in state.rounds[command.round - 1].candidates if c.asset_id == command.asset_id]
            if not found:
                raise Rejected(
                    "candidate_not_found", f"round {command.round} has no candidate {command.asset_id}"
                )
            if state.adopted == found[0]:
                return []
            adopted: list[SessionEvent] = [CandidateAdopted(round=command.round, candidate=found[0])]
            settled = found[0].settles()
            if settled is not None and (changed := state.context.differs_in(settled)):
                adopted.append(ContextChanged(context=settled, changed=changed))
            return adopted
        case CloseSession():
            return [SessionClosed()]
    raise AssertionError(f"unhandled command {type(command).__name__}")


def _end_round(state: SessionState, command: EndRound) -> list[SessionEvent]:
    """A round's job ended (again, if it was run anew: the round takes its latest end)."""
    if (
        not 1 <= command.round <= len(state.rounds)
        or state.rounds[command.round - 1].job_id != command.job_id
    ):
        return []  # not one of ours: nothing to record
    current = state.rounds[command.round - 1]
    if command.seq and command.seq <= current.end_seq:
        return []  # an end from before the latest one (a requeued job's earlier end, redelivered)
    if (current.status, current.candidates, current.error) == (
        command.status,
        command.candidates,
        command.error,
    ):
        return []
    return [
        RoundEnded(
            round=command.round,
            status=command.status,
            candidates=command.candidates,
            error=command.error,
            error_code=command.error_code,
            seq=command.seq,
        )
    ]


def evolve(state: SessionState | None, event: SessionEvent, commit: LogCommit[SessionEvent]) -> SessionState:
    at = commit.at
    if isinstance(event, SessionCreated):
        return SessionState(
            id=commit.to,
            tenant=commit.tenant,
            kind=event.kind,
            title=event.title,
            status="open",
            context=event.context,
            rounds=[],
            created_at=at,
            updated_at=at,
            request_hash=event.request_hash,
        )
    if state is None:
        raise ValueError(f"{type(event).__name__} before SessionCreated in session {commit.to}")
    state = replace(state, updated_at=at)
    match event:
        case SessionRenamed():
            return replace(state, title=event.title)
        case ContextChanged():
            return replace(state, context=event.context)
        case RoundStarted():
            started = Round(
                round=event.round,
                job_id=event.job_id,
                status="running",
                context=event.context,
                base=event.base,
                title=event.title,
                input={k: v for k, v in event.input.items() if k != "attached"},
                started_at=at,
            )
            return replace(state, rounds=[*state.rounds, started])
        case RoundEnded():
            rounds = list(state.rounds)
            rounds[event.round - 1] = replace(
                rounds[event.round - 1],
                status=event.status,
                candidates=event.candidates,
                error=event.error,
                error_code=event.error_code,
                ended_at=at,
                end_seq=event.seq,
            )
            return replace(state, rounds=rounds)
        case CandidateAdopted():
            rounds = [
                replace(r, adopted=event.candidate.asset_id) if r.round == event.round else r
                for r in state.rounds
            ]
            return replace(state, rounds=rounds, adopted=event.candidate)
        case SessionClosed():
            return replace(state, status="closed")
    raise AssertionError(f"unhandled event {type(event).__name__}")


def apply_commit(state: SessionState | None, commit: LogCommit[SessionEvent], seq: int) -> SessionState:
    return fold(evolve, state, commit, seq)


def view_of(state: SessionState) -> SessionView:
    return public(state, SessionView)
