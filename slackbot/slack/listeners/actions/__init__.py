from slack_bolt.async_app import AsyncApp

from ...deps import Deps
from . import task_stop


def register(app: AsyncApp, deps: Deps) -> None:
    app.action("task_stop")(task_stop.handler(deps))
