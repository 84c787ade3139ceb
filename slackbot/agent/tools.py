"""The agent's tools: their schemas, and turning their results into text for the model."""

from __future__ import annotations

from ..protocol import ExecResult, TodoEntry
from .untrusted import fence

SHELL = {
    "type": "function",
    "function": {
        "name": "shell",
        "description": (
            "Run a bash command in the task's workspace (the repository checkout, /workspace) inside "
            "the sandbox. Returns the exit code and the output (stdout and stderr merged, long output "
            "shortened in the middle). Use it to read, search, edit (e.g. with cat <<'EOF' > file, sed, "
            "python) and test code."),
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string", "description": "The bash command to run."}},
            "required": ["command"],
        },
    },
}

UPDATE_PLAN = {
    "type": "function",
    "function": {
        "name": "update_plan",
        "description": "Share or update your step-by-step plan; people watching the task see it.",
        "parameters": {
            "type": "object",
            "properties": {
                "plan": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "step": {"type": "string"},
                            "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
                        },
                        "required": ["step", "status"],
                    },
                },
            },
            "required": ["plan"],
        },
    },
}

# Offered to automation runs only: an automation that found nothing says so here, not in prose.
REPORT = {
    "type": "function",
    "function": {
        "name": "report",
        "description": (
            "End this automated run with your final message. Set nothing_to_report to true when the "
            "run found nothing worth telling people (no new issues, nothing failing, nothing changed): "
            "the run then collapses to one line or is not shown at all."),
        "parameters": {
            "type": "object",
            "properties": {
                "message": {"type": "string", "description": "Your final message (Markdown)."},
                "nothing_to_report": {"type": "boolean"},
            },
            "required": ["message", "nothing_to_report"],
        },
    },
}

TOOLS = [SHELL, UPDATE_PLAN]
AUTOMATION_TOOLS = [SHELL, UPDATE_PLAN, REPORT]


def load_skill(names: tuple[str, ...]) -> dict:
    """Offered when the task has skills: the catalogue in the system prompt names them."""
    return {
        "type": "function",
        "function": {
            "name": "load_skill",
            "description": ("Load a skill's instructions (its SKILL.md body) before you follow it. Its files "
                            "are read-only in /skills/<name>/."),
            "parameters": {
                "type": "object",
                "properties": {"name": {"type": "string", "enum": list(names)}},
                "required": ["name"],
            },
        },
    }


def truncate(text: str, limit: int) -> str:
    """Keeps the head and the tail: errors tend to sit at the end, context at the start."""
    if len(text) <= limit:
        return text
    head = limit * 2 // 5
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n… [{cut} characters omitted] …\n{text[-tail:]}"


def shell_result(result: ExecResult, timeout_s: float, limit: int) -> str:
    note = f" (killed: timed out after {timeout_s:g}s)" if result.timed_out else ""
    return f"exit code: {result.exit_code}{note}\n{fence(truncate(result.output, limit), 'command output')}"


def plan_entries(arguments: dict) -> tuple[TodoEntry, ...]:
    plan = arguments.get("plan")
    if not isinstance(plan, list):
        raise ValueError("`plan` must be a list of {step, status}")
    return tuple(TodoEntry(text=str(p.get("step", "")), completed=p.get("status") == "completed")
                 for p in plan if isinstance(p, dict))
