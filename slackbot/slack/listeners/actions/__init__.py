from slack_bolt.async_app import AsyncApp

from ...deps import Deps
import re

from . import plan_approve, plan_cancel, plan_revise, repo_choose, task_push, task_stop, task_transcript
from ...plan_view import REVISE_CALLBACK
from . import secrets_modal


def register(app: AsyncApp, deps: Deps) -> None:
    app.action("task_stop")(task_stop.handler(deps))
    app.action("task_push")(task_push.handler(deps))
    app.action("task_transcript")(task_transcript.handler(deps))
    app.action(re.compile(r"^repo_choose_\d+$"))(repo_choose.handler(deps))
    app.view(secrets_modal.CALLBACK_ID)(secrets_modal.handler(deps))
    app.action("plan_approve")(plan_approve.handler(deps))
    app.action("plan_revise")(plan_revise.handler(deps))
    app.action("plan_cancel")(plan_cancel.handler(deps))
    app.view(REVISE_CALLBACK)(plan_revise.submitted(deps))
