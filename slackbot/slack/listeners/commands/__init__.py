from slack_bolt.async_app import AsyncApp

from ...deps import Deps
from ..actions import automation_modal, settings_modal
from . import agent, automation


def register(app: AsyncApp, deps: Deps) -> None:
    app.command("/agent")(agent.handler(deps))
    app.command("/automation")(automation.handler(deps))
    app.view(automation_modal.CALLBACK_ID)(automation_modal.handler(deps, automation.create))
    app.view(settings_modal.CALLBACK_ID)(settings_modal.handler(deps))
    app.action(settings_modal.ACTION_ID)(settings_modal.button_handler(deps))
