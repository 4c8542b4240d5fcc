"""Projects, episodes and composites in SQL (``projects``, ``episodes``, ``composites``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
import sqlalchemy as sa

from atelier_contracts.readmodel import composites, episodes, projects
from atelier_gateway.adapters.sql import SqlAdapter, utc
from atelier_gateway.app.composites import Composite, Cut, Export, Source
from atelier_gateway.app.projects import Episode, Project


def _project(r: Any) -> Project:
    return Project(
        id=r.id,
        name=r.name,
        style=r.style,
        review=r.review,
        shot_template=r.shot_template,
        budget_usd=r.budget_usd,
        schedule_id=r.schedule_id,
        created_at=utc(r.created_at),
        updated_at=utc(r.updated_at),
    )


def _episode(r: Any) -> Episode:
    return Episode(
        id=r.id,
        project_id=r.project_id,
        title=r.title,
        script=r.script,
        job_id=r.job_id,
        package_kinds=tuple(msgspec.json.decode(r.package_kinds)) if r.package_kinds else None,
        marked=bool(r.marked),
        created_at=utc(r.created_at),
        updated_at=utc(r.updated_at),
    )


class SqlProjects(SqlAdapter):
    async def _upsert(self, table: sa.Table, key: sa.ColumnElement[bool], row: dict[str, Any]) -> None:
        async with self._connect() as conn, conn.begin():
            if (await conn.execute(table.update().where(key).values(**row))).rowcount == 0:
                await conn.execute(table.insert().values(**row))

    async def put_project(self, tenant: str, project: Project) -> None:
        row = {**dataclasses.asdict(project), "tenant": tenant}
        await self._upsert(projects, sa.and_(projects.c.tenant == tenant, projects.c.id == project.id), row)

    async def project(self, tenant: str, project_id: str) -> Project | None:
        query = sa.select(projects).where(projects.c.tenant == tenant, projects.c.id == project_id)
        async with self._connect() as conn:
            r = (await conn.execute(query)).first()
        return _project(r) if r is not None else None

    async def projects(self, tenant: str) -> list[Project]:
        query = sa.select(projects).where(projects.c.tenant == tenant).order_by(projects.c.created_at.desc())
        async with self._connect() as conn:
            return [_project(r) for r in (await conn.execute(query)).all()]

    async def delete_project(self, tenant: str, project_id: str) -> bool:
        async with self._connect() as conn, conn.begin():
            await conn.execute(
                episodes.delete().where(episodes.c.tenant == tenant, episodes.c.project_id == project_id)
            )
            await conn.execute(
                composites.delete().where(
                    composites.c.tenant == tenant, composites.c.project_id == project_id
                )
            )
            done = await conn.execute(
                projects.delete().where(projects.c.tenant == tenant, projects.c.id == project_id)
            )
        return bool(done.rowcount)

    async def put_episode(self, tenant: str, episode: Episode) -> None:
        kinds = episode.package_kinds
        row = {
            **dataclasses.asdict(episode),
            "tenant": tenant,
            "package_kinds": msgspec.json.encode(kinds).decode() if kinds is not None else None,
        }
        await self._upsert(episodes, sa.and_(episodes.c.tenant == tenant, episodes.c.id == episode.id), row)

    async def episode(self, tenant: str, project_id: str, episode_id: str) -> Episode | None:
        query = sa.select(episodes).where(
            episodes.c.tenant == tenant, episodes.c.project_id == project_id, episodes.c.id == episode_id
        )
        async with self._connect() as conn:
            r = (await conn.execute(query)).first()
        return _episode(r) if r is not None else None

    async def episodes(self, tenant: str, project_id: str) -> list[Episode]:
        query = (
            sa.select(episodes)
            .where(episodes.c.tenant == tenant, episodes.c.project_id == project_id)
            .order_by(episodes.c.created_at)
        )
        async with self._connect() as conn:
            return [_episode(r) for r in (await conn.execute(query)).all()]

    async def delete_episode(self, tenant: str, project_id: str, episode_id: str) -> bool:
        async with self._connect() as conn, conn.begin():
            await conn.execute(
                composites.delete().where(
                    composites.c.tenant == tenant, composites.c.episode_id == episode_id
                )
            )
            done = await conn.execute(
                episodes.delete().where(
                    episodes.c.tenant == tenant,
                    episodes.c.project_id == project_id,
                    episodes.c.id == episode_id,
                )
            )
        return bool(done.rowcount)


class SqlComposites(SqlAdapter):
    """Episodes' composites: the sources, the timeline and the exports as JSON columns."""

    async def put(self, tenant: str, composite: Composite, expected: int | None) -> bool:
        row = {
            "tenant": tenant,
            "episode_id": composite.episode_id,
            "project_id": composite.project_id,
            "render_job": composite.render_job,
            "sources": msgspec.json.encode(composite.sources).decode(),
            "timeline": msgspec.json.encode(composite.timeline).decode(),
            "exports": msgspec.json.encode(composite.exports).decode(),
            "fps": composite.fps,
            "width": composite.width,
            "height": composite.height,
            "version": composite.version,
            "created_at": composite.created_at,
            "updated_at": composite.updated_at,
        }
        key = sa.and_(composites.c.tenant == tenant, composites.c.episode_id == composite.episode_id)
        try:
            async with self._connect() as conn, conn.begin():
                if expected is None:
                    await conn.execute(composites.insert().values(**row))
                    return True
                done = await conn.execute(
                    composites.update().where(key, composites.c.version == expected).values(**row)
                )
                return bool(done.rowcount)
        except sa.exc.IntegrityError:  # made by a concurrent first read
            return False

    async def get(self, tenant: str, episode_id: str) -> Composite | None:
        query = sa.select(composites).where(
            composites.c.tenant == tenant, composites.c.episode_id == episode_id
        )
        async with self._connect() as conn:
            r = (await conn.execute(query)).first()
        if r is None:
            return None
        return Composite(
            episode_id=r.episode_id,
            project_id=r.project_id,
            render_job=r.render_job,
            sources=msgspec.json.decode(r.sources, type=tuple[Source, ...]),
            timeline=msgspec.json.decode(r.timeline, type=tuple[Cut, ...]),
            exports=msgspec.json.decode(r.exports, type=tuple[Export, ...]),
            fps=r.fps,
            width=r.width,
            height=r.height,
            version=r.version,
            created_at=utc(r.created_at),
            updated_at=utc(r.updated_at),
        )
