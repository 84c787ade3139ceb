from slack_bolt.async_app import AsyncApp

from ...deps import Deps
from . import agent_session, app_home_opened, app_mention, assistant, message


def register(app: AsyncApp, deps: Deps) -> None:
    app.event("app_mention")(app_mention.handler(deps))
    app.event("message")(message.handler(deps))
    started, context_changed, messages_tab = assistant.handlers(deps)
    # Bolt runs the first listener that matches: the Messages tab's before the Home tab's.
    app.event("app_home_opened", matchers=[assistant.is_messages_tab])(messages_tab)
    app.event("app_home_opened")(app_home_opened.handler(deps))
    app.event("assistant_thread_started")(started)
    app.event("assistant_thread_context_changed")(context_changed)
    app.event("agent_session_stopped")(agent_session.handler(deps))
