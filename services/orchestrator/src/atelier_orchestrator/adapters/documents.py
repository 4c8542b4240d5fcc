"""The read model of an aggregate other than the job: one row per aggregate holding its state as
JSON, written with the sequence of the commit applied (sessions; ``docs/architecture.md``).

A commit is applied only onto the row whose ``last_seq`` is its ``prev_seq``, in the same
transaction: a redelivered commit is a duplicate, one that arrives before its predecessor waits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from atelier_contracts.aggregates import LogCommit
from atelier_contracts.envelope import encode
from atelier_contracts.readmodel import SqlUnits
from atelier_orchestrator.adapters.projection import INLINE_COMMITS, Applied

S = TypeVar("S")
E = TypeVar("E")


class DocumentProjection(Generic[S, E]):
    def __init__(
        self,
        engine: AsyncEngine,
        table: sa.Table,
        decoder: msgspec.json.Decoder[S],
        apply: Callable[[S | None, LogCommit[E], int], S],
    ) -> None:
        self.table = table
        self.decoder = decoder
        self.apply = apply
        self.columns = [c.name for c in table.columns if c.name not in ("id", "last_seq", "state")]
        """Filter and order columns: each the state's attribute of that name."""
        self._units = SqlUnits(engine, threads=1, name=f"{table.name}-projector", inline=True)

    async def apply_batch(self, commits: Sequence[tuple[LogCommit[E], int]]) -> list[Applied]:
        """Apply commits (in stream order) in one transaction; one outcome per commit."""
        return await self._units.run(
            lambda conn: self._apply_in(conn, commits), write=True, inline=len(commits) <= INLINE_COMMITS
        )

    def _apply_in(self, conn: sa.Connection, commits: Sequence[tuple[LogCommit[E], int]]) -> list[Applied]:
        t = self.table
        keys = sorted({c.to for c, _ in commits})
        rows = conn.execute(sa.select(t.c.id, t.c.last_seq, t.c.state).where(t.c.id.in_(keys))).all()
        current: dict[str, tuple[S | None, int]] = {
            r.id: (self.decoder.decode(r.state), r.last_seq) for r in rows
        }
        read = {key: seq for key, (_, seq) in current.items()}
        changed: set[str] = set()
        outcomes = []
        for commit, seq in commits:
            state, last = current.get(commit.to, (None, 0))
            if seq <= last or commit.prev_seq < last:
                outcomes.append(Applied.DUPLICATE)
            elif commit.prev_seq > last:
                outcomes.append(Applied.OUT_OF_ORDER)
            else:
                current[commit.to] = (self.apply(state, commit, seq), seq)
                changed.add(commit.to)
                outcomes.append(Applied.APPLIED)
        for key in sorted(changed):
            state, seq = current[key]
            assert state is not None
            values = {name: getattr(state, name) for name in self.columns}
            values.update(last_seq=seq, state=encode(state).decode())
            if key in read:  # only over the row as read: another replica's write makes the batch retry
                done = conn.execute(
                    sa.update(t).where(t.c.id == key, t.c.last_seq == read[key]).values(values)
                )
                if done.rowcount != 1:
                    raise RuntimeError(f"{t.name} row {key} moved on while its commits were applied")
            else:
                conn.execute(sa.insert(t).values(id=key, **values))
        return outcomes

    def close(self) -> None:
        self._units.close()
