"""Values admins save in Slack, for the workspace or one channel; they beat the environment's
defaults. Read per task (and per digest), so every process sees a change at its next read."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, col, select

from .models import SettingRow, utcnow
from .store import Store

WORKSPACE = ""  # the scope of workspace-wide values


class SavedSettings:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def save(self, key: str, value: Any, *, scope: str = WORKSPACE, by: str = "") -> None:
        """`value` None removes the saved value (the default applies again)."""
        def fn(s: Session) -> None:
            row = s.exec(select(SettingRow).where(SettingRow.scope == scope, SettingRow.key == key)).first()
            if value is None:
                if row is not None:
                    s.delete(row)
            else:
                row = row or SettingRow(scope=scope, key=key, value="")
                row.value, row.updated_by, row.updated_at = json.dumps(value), by, utcnow()
                s.add(row)
            s.commit()
        await self.store.run(fn)

    async def values(self, channel: str = "") -> dict[str, Any]:
        """Workspace values, overlaid with the channel's."""
        workspace, own = await self.scoped(channel)
        return {**workspace, **own}

    async def scoped(self, channel: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
        """The workspace's values and the channel's, apart."""
        def fn(s: Session) -> list[SettingRow]:
            scopes = [WORKSPACE] + ([channel] if channel else [])
            return list(s.exec(select(SettingRow).where(col(SettingRow.scope).in_(scopes))).all())
        workspace: dict[str, Any] = {}
        own: dict[str, Any] = {}
        for row in await self.store.run(fn):
            (workspace if row.scope == WORKSPACE else own)[row.key] = json.loads(row.value)
        return workspace, own

    async def channels_with(self, key: str) -> dict[str, Any]:
        """Channels that override `key`, with their values."""
        rows = await self.store.run(lambda s: list(s.exec(
            select(SettingRow).where(SettingRow.key == key, SettingRow.scope != WORKSPACE)).all()))
        return {r.scope: json.loads(r.value) for r in rows}
