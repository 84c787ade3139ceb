"""How a task an automation started ends in Slack: the fields its TaskFinished carries."""

from __future__ import annotations

from typing import Any

from ..agent.loop import AgentResult
from ..protocol import TaskStatus
from ..store import AutomationStore, Store, Task
from .workspace import Outcome


def nothing_to_report(status: TaskStatus, result: AgentResult | None, outcome: Outcome) -> bool:
    """The agent said so, and it is true: the run is done and changed no file (a run that changed
    files is never hidden, whatever the model, or data injected into its prompt, says)."""
    return bool(status == TaskStatus.DONE and result and result.nothing_to_report and not outcome.files)


async def automation_fields(store: Store, task: Task, nothing: bool) -> dict[str, Any]:
    """The automation's name and run number, and whether a run that found nothing collapses to a
    line or (notify: only on changes) disappears. Empty for a task no automation started."""
    if task.automation_id is None or task.id is None:
        return {}
    found = await AutomationStore(store).run_of_task(task.id)
    if found is None:
        return {}
    run, automation = found
    ours = run.cause != "message"  # a watched message's thread is a person's, not our post
    quiet = ""
    if nothing:
        quiet = "suppress" if automation and automation.notify == "changes" and ours else "collapse"
    return {"nothing_to_report": nothing, "quiet": quiet, "automation": automation.name if automation else "",
            "run_number": run.number if ours else 0}
