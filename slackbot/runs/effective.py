"""The settings one task runs with: the environment's, overlaid with what admins saved for the
workspace and then for the task's channel (read when the task starts, so a change made in any
process applies to the next task)."""

from __future__ import annotations

import logging
import math
from typing import Any

from ..settings import Settings
from ..store import SavedSettings, Store

log = logging.getLogger(__name__)
# Saved keys a task honours: the type each must have, and its largest value (a string's length).
PER_TASK: dict[str, tuple[type, float]] = {
    "model": (str, 200), "max_steps": (int, 1000), "task_timeout_s": (float, 7 * 86400.0),
    "command_timeout_s": (float, 86400.0)}


async def task_settings(store: Store, settings: Settings, channel: str) -> Settings:
    saved = await SavedSettings(store).values(channel)
    update: dict[str, Any] = {}
    for key, (kind, most) in PER_TASK.items():
        if key not in saved:
            continue
        value = saved[key]
        if not _fits(value, kind, most):
            log.warning("ignoring the saved setting %s=%r (not a %s up to %g)", key, value, kind.__name__, most)
            continue
        update[key] = kind(value)
    return settings.model_copy(update=update) if update else settings


def _fits(value: Any, kind: type, most: float) -> bool:
    if kind is str:
        return isinstance(value, str) and bool(value.strip()) and len(value) <= most
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0 < value <= most and (kind is float or isinstance(value, int)))
