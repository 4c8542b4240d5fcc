"""What the session and schedule aggregates share: the context a decision is made in, and the
fold of a commit (each event through ``evolve``, then the cause and version recorded)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

import msgspec
from msgspec.structs import replace

from atelier_contracts.aggregates import LogCommit

RECENT_CAUSES = 64
"""How many commits back a redelivered command is still recognised."""


@dataclass(frozen=True)
class Ctx:
    id: str
    tenant: str
    now: datetime
    msg_id: str = ""
    """The command being decided: one already among the recent causes decides nothing."""


class Versioned(Protocol):
    @property
    def recent_causes(self) -> list[str]: ...

    @property
    def version(self) -> int: ...


S = TypeVar("S", bound=Versioned)
E = TypeVar("E")
Evolve = Callable[[S | None, E, LogCommit[E]], S]


def fold(evolve: Evolve[S, E], state: S | None, commit: LogCommit[E], seq: int) -> S:
    for event in commit.events:
        state = evolve(state, event, commit)
    assert state is not None, "a commit holds at least one event"
    causes = [*state.recent_causes, commit.causation_id][-RECENT_CAUSES:]
    return replace(state, recent_causes=causes, version=seq)  # type: ignore[type-var]


def seen(state: Versioned | None, ctx: Ctx) -> bool:
    """Decided before: a redelivery, which decides nothing."""
    return state is not None and bool(ctx.msg_id) and ctx.msg_id in state.recent_causes


V = TypeVar("V")


def public(state: object, view: type[V]) -> V:
    """The public view of a state that extends it (what deciding needs besides left out)."""
    return msgspec.convert(msgspec.to_builtins(state, builtin_types=(datetime,)), view)
