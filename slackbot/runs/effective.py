"""The settings one task runs with: the environment's, overlaid with what admins saved for the
workspace and then for the task's channel (read when the task starts, so a change made in any
process applies to the next task)."""

from __future__ import annotations

import logging
from typing import Any

from ..settings import Settings
from ..store import SavedSettings, Store

log = logging.getLogger(__name__)
# Saved keys a task honours, with the type each must have.
PER_TASK: dict[str, type] = {"model": str, "max_steps": int, "task_timeout_s": float, "command_timeout_s": float}


async def task_settings(store: Store, settings: Settings, channel: str) -> Settings:
    saved = await SavedSettings(store).values(channel)
    update: dict[str, Any] = {}
    for key, kind in PER_TASK.items():
        if key not in saved:
            continue
        value = saved[key]
        if not _fits(value, kind):
            log.warning("ignoring the saved setting %s=%r (not a positive %s)", key, value, kind.__name__)
            continue
        update[key] = kind(value)
    return settings.model_copy(update=update) if update else settings


def _fits(value: Any, kind: type) -> bool:
    if kind is str:
        return isinstance(value, str) and bool(value.strip())
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and (
        kind is float or isinstance(value, int))
