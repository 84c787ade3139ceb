from slack_bolt.async_app import AsyncApp

from ...deps import Deps
from . import agent


def register(app: AsyncApp, deps: Deps) -> None:
    app.command("/agent")(agent.handler(deps))
