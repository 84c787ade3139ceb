from slack_bolt.async_app import AsyncApp

from ...deps import Deps
from . import app_home_opened, app_mention, message


def register(app: AsyncApp, deps: Deps) -> None:
    app.event("app_mention")(app_mention.handler(deps))
    app.event("message")(message.handler(deps))
    app.event("app_home_opened")(app_home_opened.handler(deps))
