from slack_bolt.async_app import AsyncApp

from ...deps import Deps
from ..actions import automation_modal
from . import agent, automation


def register(app: AsyncApp, deps: Deps) -> None:
    app.command("/agent")(agent.handler(deps))
    app.command("/automation")(automation.handler(deps))
    app.view(automation_modal.CALLBACK_ID)(automation_modal.handler(deps, automation.create))
