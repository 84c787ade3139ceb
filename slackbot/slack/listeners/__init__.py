"""Bolt listeners, one handler per file; each subpackage has register(app, deps)."""

from slack_bolt.async_app import AsyncApp

from ..deps import Deps
from . import actions, commands, events


def register(app: AsyncApp, deps: Deps) -> None:
    events.register(app, deps)
    actions.register(app, deps)
    commands.register(app, deps)
