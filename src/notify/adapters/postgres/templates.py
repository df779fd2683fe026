"""TemplateStore on PostgreSQL (asyncpg)."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from notify.domain.errors import Conflict, FieldError
from notify.domain.model import Channel
from notify.domain.templates import Template

_COLUMNS = "id, tenant_id, name, channel, subject, body, created_at, updated_at"
_UNIQUE_NAME = "templates_tenant_name"  # the constraint in migrations/0003.templates.sql


def _template(row: asyncpg.Record) -> Template:
    return Template(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        channel=Channel(row["channel"]),
        body=row["body"],
        subject=row["subject"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"A template named '{name}' already exists.",
        [FieldError("name", "is already used by another template", "duplicate_name")],
    )


class PgTemplateStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, template: Template) -> None:
        t = template
        try:
            await self._pool.execute(
                f"INSERT INTO templates ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                t.id,
                t.tenant_id,
                t.name,
                t.channel.value,
                t.subject,
                t.body,
                t.created_at,
                t.updated_at,
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != _UNIQUE_NAME:
                raise  # an id collision: a bug, not the client's doing
            raise _name_taken(t.name) from None

    async def get(self, tenant_id: str, template_id: UUID) -> Template | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM templates WHERE id = $1 AND tenant_id = $2", template_id, tenant_id
        )
        return _template(row) if row else None

    async def search(
        self, tenant_id: str, after_id: UUID | None, page_size: int
    ) -> tuple[list[Template], UUID | None]:
        # One row more than a page tells whether another page follows. Ids are time-ordered, so id order is
        # creation order and the (tenant_id, id) index serves both forms.
        if after_id is None:
            rows = await self._pool.fetch(
                f"SELECT {_COLUMNS} FROM templates WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2",
                tenant_id,
                page_size + 1,
            )
        else:
            rows = await self._pool.fetch(
                f"SELECT {_COLUMNS} FROM templates WHERE tenant_id = $1 AND id < $2 "
                "ORDER BY id DESC LIMIT $3",
                tenant_id,
                after_id,
                page_size + 1,
            )
        items = [_template(r) for r in rows[:page_size]]
        return items, items[-1].id if len(rows) > page_size else None

    async def update(self, template: Template) -> Template | None:
        t = template
        try:
            row = await self._pool.fetchrow(
                f"""UPDATE templates SET name = $3, channel = $4, subject = $5, body = $6, updated_at = $7
                     WHERE id = $1 AND tenant_id = $2
                 RETURNING {_COLUMNS}""",
                t.id,
                t.tenant_id,
                t.name,
                t.channel.value,
                t.subject,
                t.body,
                t.updated_at,
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != _UNIQUE_NAME:
                raise  # an id collision: a bug, not the client's doing
            raise _name_taken(t.name) from None
        return _template(row) if row else None

    async def delete(self, tenant_id: str, template_id: UUID) -> bool:
        status = await self._pool.execute(
            "DELETE FROM templates WHERE id = $1 AND tenant_id = $2", template_id, tenant_id
        )
        return str(status) == "DELETE 1"
