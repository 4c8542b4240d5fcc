"""A tenant's saved studio templates, in SQL (``studio_templates``)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from atelier_contracts.readmodel import studio_templates
from atelier_gateway.adapters.sql import SqlAdapter, utc
from atelier_gateway.app.studio import SavedTemplate

_t = studio_templates


class SqlStudioTemplates(SqlAdapter):
    async def put(self, tenant: str, template: SavedTemplate, now: datetime) -> SavedTemplate:
        """Saves it under its name (replacing one of that name), and answers it as stored."""
        values = {"operation": template.operation, "prompt": template.prompt, "chip": template.chip}
        key = sa.and_(_t.c.tenant == tenant, _t.c.name == template.name)
        for _ in range(3):  # an insert that loses a race to another becomes an update
            try:
                async with self._connect() as conn, conn.begin():
                    created = (await conn.execute(sa.select(_t.c.created_at).where(key))).scalar()
                    if created is None:
                        await conn.execute(
                            _t.insert().values(
                                tenant=tenant, name=template.name, created_at=now, updated_at=now, **values
                            )
                        )
                        created = now
                    else:
                        await conn.execute(_t.update().where(key).values(updated_at=now, **values))
                return dataclasses.replace(template, created_at=utc(created), updated_at=now)
            except sa.exc.IntegrityError:
                continue
        raise RuntimeError("the template could not be saved")

    async def list(self, tenant: str) -> list[SavedTemplate]:
        query = sa.select(_t).where(_t.c.tenant == tenant).order_by(_t.c.updated_at.desc(), _t.c.name)
        async with self._connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_template(r) for r in rows]

    async def get(self, tenant: str, name: str) -> SavedTemplate | None:
        query = sa.select(_t).where(_t.c.tenant == tenant, _t.c.name == name)
        async with self._connect() as conn:
            r = (await conn.execute(query)).first()
        return _template(r) if r is not None else None

    async def delete(self, tenant: str, name: str) -> bool:
        async with self._connect() as conn, conn.begin():
            done = await conn.execute(_t.delete().where(_t.c.tenant == tenant, _t.c.name == name))
        return bool(done.rowcount)


def _template(r: Any) -> SavedTemplate:
    return SavedTemplate(
        name=r.name,
        operation=r.operation,
        prompt=r.prompt,
        chip=r.chip,
        created_at=utc(r.created_at),
        updated_at=utc(r.updated_at),
    )
