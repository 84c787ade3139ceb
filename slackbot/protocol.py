"""Typed ops and events shared by the core and every surface; no logic, no project imports.

Event and item shapes follow `codex exec --json` (thread/turn/item lifecycle). Events whose
type starts with `task.` are ours: they carry what a chat surface needs beyond one turn
(queue position, phase, the final result). Consumers ignore types they do not know.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Collection, Literal, Protocol, Union

ItemStatus = Literal["in_progress", "completed", "failed"]
FileKind = Literal["add", "delete", "update"]


class TaskStatus(StrEnum):
    """A task's life: recorded (pending, or choosing its repository) → queued → running → final.
    Which moves are allowed is decided in `runs/states.py`, the only writer of a status."""

    PENDING = "pending"  # recorded; its status message is not posted yet
    CHOOSING = "choosing"  # waiting for the requester to pick a repository
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"

    @property
    def final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.STOPPED, TaskStatus.INTERRUPTED})


# ---- items -------------------------------------------------------------------------------

@dataclass(frozen=True)
class AgentMessage:
    id: str
    text: str
    type: str = "agent_message"


@dataclass(frozen=True)
class CommandExecution:
    id: str
    command: str
    aggregated_output: str = ""
    exit_code: int | None = None
    status: ItemStatus = "in_progress"
    type: str = "command_execution"


@dataclass(frozen=True)
class FileChangeEntry:
    path: str
    kind: FileKind


@dataclass(frozen=True)
class FileChange:
    id: str
    changes: tuple[FileChangeEntry, ...]
    status: ItemStatus = "completed"
    type: str = "file_change"


@dataclass(frozen=True)
class TodoEntry:
    text: str
    completed: bool = False


@dataclass(frozen=True)
class TodoList:
    id: str
    items: tuple[TodoEntry, ...]
    type: str = "todo_list"


@dataclass(frozen=True)
class ErrorItem:
    id: str
    message: str
    type: str = "error"


@dataclass(frozen=True)
class UserMessage:
    """A message people wrote into a running task (steering); ours, not codex's."""

    id: str
    text: str
    user: str = ""
    type: str = "user_message"


Item = Union[AgentMessage, CommandExecution, FileChange, TodoList, ErrorItem, UserMessage]


# ---- events ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.input_tokens + other.input_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.output_tokens + other.output_tokens,
        )


@dataclass(frozen=True)
class ThreadStarted:
    thread_id: str
    type: str = "thread.started"


@dataclass(frozen=True)
class TurnStarted:
    type: str = "turn.started"


@dataclass(frozen=True)
class ItemStarted:
    item: Item
    type: str = "item.started"


@dataclass(frozen=True)
class ItemCompleted:
    item: Item
    type: str = "item.completed"


@dataclass(frozen=True)
class TurnCompleted:
    usage: Usage = field(default_factory=Usage)
    type: str = "turn.completed"


@dataclass(frozen=True)
class TurnFailed:
    message: str
    type: str = "turn.failed"

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "error": {"message": self.message}}


@dataclass(frozen=True)
class TaskQueued:
    position: int
    type: str = "task.queued"


@dataclass(frozen=True)
class TaskProgress:
    """A phase of the run outside the model loop: workspace, sandbox, setup, restart notices."""

    text: str
    type: str = "task.progress"


@dataclass(frozen=True)
class TaskSettings:
    """The settings a task runs with (environment and saved values), for its transcript."""

    values: tuple[tuple[str, str], ...]
    type: str = "task.settings"


@dataclass(frozen=True)
class FileStat:
    path: str
    added: int
    removed: int
    kind: FileKind = "update"


@dataclass(frozen=True)
class LeftOut:
    path: str
    size: int


@dataclass(frozen=True)
class TaskFinished:
    status: TaskStatus
    answer: str = ""
    error: str = ""
    files: tuple[FileStat, ...] = ()
    elapsed_s: float = 0.0
    usage: Usage = field(default_factory=Usage)
    stopped_by: str = ""
    branch: str = ""
    repo: str = ""  # the repository's name or URL; empty for a scratch workspace
    has_patch: bool = False  # the task's whole change is stored as a patch (kept out of the events)
    pushable: bool = False  # a branch with commits that can be pushed (the Push button)
    pr_url: str = ""
    push: str = ""  # what an automatic push did (a runs.outcomes.PushCode), empty when none was tried
    push_detail: str = ""  # the push's error, when it failed
    left_out: tuple[LeftOut, ...] = ()  # files too large for the commit
    nothing_to_report: bool = False  # an automation run said so (the `report` tool)
    quiet: str = ""  # how such a run is shown: "collapse" (one line) or "suppress" (removed)
    automation: str = ""  # the name of the automation that started the task
    run_number: int = 0  # its run number, when the thread starts with the bot's own "⏱" post
    plan: str = ""  # "awaiting": the answer is a plan waiting for approval (plan first)
    type: str = "task.finished"


@dataclass(frozen=True)
class PlanDecided:
    """A plan's fate, on the plan task (after its end): "approved", "revised" or "cancelled" by `by`;
    `next_task`: the task that goes on (the edits, or the revised plan); `message_ts`: the message
    whose buttons were pressed, when known."""

    decision: str
    by: str
    next_task: int = 0
    message_ts: str = ""
    type: str = "task.plan"


Event = Union[
    ThreadStarted, TurnStarted, ItemStarted, ItemCompleted, TurnCompleted, TurnFailed, TaskQueued, TaskProgress,
    TaskSettings, TaskFinished, PlanDecided,
]

_ITEMS = {c.__dataclass_fields__["type"].default: c
          for c in (AgentMessage, CommandExecution, FileChange, TodoList, ErrorItem, UserMessage)}
_EVENTS = {c.__dataclass_fields__["type"].default: c
           for c in (ThreadStarted, TurnStarted, ItemStarted, ItemCompleted, TurnCompleted, TurnFailed,
                     TaskQueued, TaskProgress, TaskSettings, TaskFinished, PlanDecided)}


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON shape of `codex exec --json` (and ours for task.* events)."""
    if isinstance(event, TurnFailed):
        return event.to_dict()
    data = dataclasses.asdict(event)
    data["type"] = event.type
    return data


def event_from_dict(data: dict[str, Any]) -> Event:
    kind = data["type"]
    cls = _EVENTS[kind]
    if cls is TurnFailed:
        return TurnFailed(message=data.get("error", {}).get("message", ""))
    # Fields this code does not know (an older event's, a newer one's) are left out.
    kwargs = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "type"}
    if "item" in kwargs:
        kwargs["item"] = _item_from_dict(kwargs["item"])
    if "usage" in kwargs:
        kwargs["usage"] = Usage(**kwargs["usage"])
    if cls is TaskSettings:
        kwargs["values"] = tuple((str(k), str(v)) for k, v in kwargs.get("values", ()))
    if cls is TaskFinished:
        kwargs["status"] = TaskStatus(kwargs["status"])
        kwargs["files"] = tuple(FileStat(**f) for f in kwargs.get("files", ()))
        kwargs["left_out"] = tuple(LeftOut(**f) for f in kwargs.get("left_out", ()))
    return cls(**kwargs)


def _item_from_dict(data: dict[str, Any]) -> Item:
    cls = _ITEMS[data["type"]]
    kwargs = {k: v for k, v in data.items() if k != "type"}
    if cls is FileChange:
        kwargs["changes"] = tuple(FileChangeEntry(**c) for c in kwargs["changes"])
    if cls is TodoList:
        kwargs["items"] = tuple(TodoEntry(**i) for i in kwargs["items"])
    return cls(**kwargs)


# ---- ops (surface → core) ----------------------------------------------------------------

@dataclass(frozen=True)
class Steer:
    """A reply written while a task runs; delivered before the next model call."""

    text: str
    user: str
    user_name: str = ""
    ts: str = ""


# ---- the sandbox, as the agent sees it ---------------------------------------------------

@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str
    timed_out: bool = False
    duration_s: float = 0.0


class Sandbox(Protocol):
    """Where the agent's commands run. The docker backend is the real one."""

    async def exec(self, command: str, *, timeout_s: float) -> ExecResult: ...

    async def disk_usage(self) -> int: ...

    async def close(self) -> None: ...


# ---- containers the runner starts around the agent's ------------------------------------

@dataclass(frozen=True)
class Mount:
    """A host directory (or, with `volume`, a named volume) mounted into a container."""

    source: str
    target: str
    read_only: bool = False
    volume: bool = False


@dataclass(frozen=True)
class Step:
    """A one-shot container: clone, setup, finishing. It runs `argv` and is removed.

    `stdin_path` is streamed to the process; with `stdout_path` the process's stdout is written
    there (at most `stdout_cap` bytes) and only stderr comes back as `output`; otherwise stdout
    and stderr come back merged."""

    task_id: int
    name: str
    argv: tuple[str, ...]
    mounts: tuple[Mount, ...] = ()
    network: str = ""  # a network made by `open_network`; empty: none
    env: tuple[tuple[str, str], ...] = ()
    timeout_s: float = 300.0
    stdin_path: str = ""
    stdout_path: str = ""
    stdout_cap: int = 0


@dataclass(frozen=True)
class StepResult:
    exit_code: int
    output: str
    timed_out: bool = False
    stdout_bytes: int = 0
    stdout_over_cap: bool = False
    duration_s: float = 0.0


class SandboxProvider(Protocol):
    """Starts task containers and cleans up after them (docker, with a warm pool). What it starts is
    labelled with `worker`, the process's identity, so a dead worker's leftovers are found."""

    worker: str

    async def start(self, *, task_id: int, mounts: tuple[Mount, ...], network: str = "",
                    env: dict[str, str] | None = None, cpus: float | None = None,
                    memory: str | None = None) -> Sandbox: ...

    def keep_warm(self) -> None: ...

    async def take_warm(self, *, task_id: int, mounts: tuple[Mount, ...], cpus: float | None = None,
                        memory: str | None = None) -> Sandbox | None: ...

    async def run_step(self, step: Step) -> StepResult: ...

    async def open_network(self, task_id: int, allow: tuple[str, ...]) -> tuple[str, dict[str, str]]: ...

    async def close_network(self, task_id: int) -> None: ...

    async def remove_task(self, task_id: int) -> None: ...

    async def reap(self, live_workers: Collection[str] = ()) -> list[str]: ...

    async def remove_worker(self, worker: str) -> list[str]: ...


# ---- what sinks see ----------------------------------------------------------------------

@dataclass(frozen=True)
class TaskRef:
    """Which task an event belongs to, and where it came from (a Slack thread, or the CLI)."""

    task_id: int
    thread_id: int
    channel: str
    thread_ts: str
    requester: str
    status_ts: str = ""
    prompt: str = ""


class EventSink(Protocol):
    async def handle(self, task: TaskRef, event: Event) -> None: ...
