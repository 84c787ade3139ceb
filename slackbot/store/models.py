"""Tables. Every agent event and every model message is stored as it happens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Column, Text, UniqueConstraint, false, true
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RepoBinding:
    """The repository a new agent thread works on (its columns in `agent_thread`)."""

    repo_id: int | None
    repo_url: str
    base_branch: str = ""
    repo_trusted: bool = True


class AgentThread(SQLModel, table=True):
    __tablename__ = "agent_thread"
    __table_args__ = (UniqueConstraint("channel", "thread_ts"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(index=True)
    thread_ts: str
    requester: str = ""
    workspace: str = ""
    summary: str = Field(default="", sa_column=Column(Text, default=""))
    summary_upto: int = 0  # history rows (by id) the summary replaces
    context_tokens: int = 0  # the history's size as the model's API last counted it
    created_at: datetime = Field(default_factory=utcnow)
    # The repository this thread works on (none: a scratch workspace). Fixed at the first task.
    repo_id: int | None = None
    repo_url: str = ""
    base_branch: str = ""  # asked for, or empty for the remote's default
    branch: str = ""  # the thread's own branch, made at the first task
    pr_url: str = ""
    # Git state, kept in the host mirror: the commit the branch started from, the latest accepted
    # result (refs/slackbot/threads/<id>), a later base commit a follow-up handed into the workspace.
    base_sha: str = Field(default="", sa_column_kwargs={"server_default": ""})
    tip_sha: str = Field(default="", sa_column_kwargs={"server_default": ""})
    latest_base_sha: str = Field(default="", sa_column_kwargs={"server_default": ""})
    setup_hash: str = Field(default="", sa_column_kwargs={"server_default": ""})  # setup command last run here
    # False for a non-admin's ad-hoc repo=URL: fetched without credentials, never pushed with the bot's.
    repo_trusted: bool = Field(default=True, sa_column_kwargs={"server_default": true()})


class Task(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    thread_id: int = Field(index=True, foreign_key="agent_thread.id")
    channel: str = Field(index=True)
    requester: str = Field(index=True)
    requester_name: str = ""
    requester_email: str = ""
    prompt: str = Field(default="", sa_column=Column(Text, default=""))
    status: str = Field(default="pending", index=True)  # a protocol.TaskStatus; moved by runs/states.py
    status_ts: str = ""
    mention_ts: str = ""
    model: str = ""
    worker: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    queued_at: datetime | None = None  # queue order: first come, first served
    started_at: datetime | None = None
    finished_at: datetime | None = None
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    answer: str = Field(default="", sa_column=Column(Text, default=""))
    error: str = ""
    stopped_by: str = ""
    stop_by: str = Field(default="", sa_column_kwargs={"server_default": ""})  # a Stop asked for, by whom
    # A worker that alone may run the task (the terminal's `exec`); empty: any worker.
    pinned: str = Field(default="", sa_column_kwargs={"server_default": ""})
    # The final message was delivered. Tasks older than this column were (hence the server default).
    announced: bool = Field(default=False, sa_column_kwargs={"server_default": true()})
    automation_id: int | None = Field(default=None, index=True)  # started by an automation
    nothing_to_report: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
    # Plan first: "" (edits at once), "plan" (a read-only phase ending in a plan to approve), "approved"
    # (the edits, after approval by `approved_by`).
    plan: str = Field(default="", sa_column_kwargs={"server_default": ""})
    approved_by: str = Field(default="", sa_column_kwargs={"server_default": ""})
    # Files attached in Slack (JSON list of {id, name, size, mimetype, url}), fetched when the task runs.
    files: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]", server_default="[]"))


class EventRow(SQLModel, table=True):
    __tablename__ = "event"

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(index=True)
    type: str
    data: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class HistoryRow(SQLModel, table=True):
    """One model message (chat format) of an agent thread, in order."""

    __tablename__ = "history"

    id: int | None = Field(default=None, primary_key=True)
    thread_id: int = Field(index=True)
    task_id: int
    data: str = Field(sa_column=Column(Text, nullable=False))
    tokens: int = 0  # estimate, for compaction


class InboxRow(SQLModel, table=True):
    """A reply written into a thread; consumed by the running task (or the next one)."""

    __tablename__ = "inbox"

    id: int | None = Field(default=None, primary_key=True)
    thread_id: int = Field(index=True)
    user: str
    user_name: str = ""
    text: str = Field(sa_column=Column(Text, nullable=False))
    ts: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    consumed_by: int | None = None  # task id
    files: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]", server_default="[]"))


class SeenRow(SQLModel, table=True):
    """Deliveries already handled (event ids, channel+ts), so retries never start twice."""

    __tablename__ = "seen"

    key: str = Field(primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)


class Repository(SQLModel, table=True):
    """A repository known to the workspace under a short name; linked to channels."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    url: str
    branch: str = ""  # base branch; empty: the remote's default
    github: str = ""  # owner/name when tied to GitHub
    setup: str = Field(default="", sa_column=Column(Text, default=""))
    network: str = "off"  # off | setup | on
    auto_push: bool = False
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class ChannelRepo(SQLModel, table=True):
    __tablename__ = "channel_repo"
    __table_args__ = (UniqueConstraint("channel", "repo_id"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(index=True)
    repo_id: int = Field(foreign_key="repository.id")
    is_default: bool = False


class PatchRow(SQLModel, table=True):
    """A task's whole change as a patch: kept out of the event table, which is read in bulk."""

    __tablename__ = "patch"

    task_id: int = Field(primary_key=True)
    text: str = Field(sa_column=Column(Text, nullable=False))


class WorkerRow(SQLModel, table=True):
    """A live process (front, worker or a terminal's exec): it renews `seen_at` while it lives."""

    __tablename__ = "worker"

    id: str = Field(primary_key=True)
    kind: str = ""
    host: str = ""
    pid: int = 0
    proc: str = ""  # boot id and process start time: tells a dead process on this host at once
    lease_s: float = 30.0
    started_at: datetime = Field(default_factory=utcnow)
    seen_at: datetime = Field(default_factory=utcnow, index=True)


class Coordination(SQLModel, table=True):
    """Named rows processes share: the claim lock, the queue's change counter, the Slack output
    lease (its holder, until when, and how far it has rendered the event table)."""

    __tablename__ = "coordination"

    name: str = Field(primary_key=True)
    holder: str = ""
    until: datetime | None = None
    counter: int = 0


class Automation(SQLModel, table=True):
    """Work the bot starts by itself: on a schedule, on new messages in a channel, or on a webhook."""

    # Ids are never reused (SQLite reuses the largest after a delete): runs and links keep their owner.
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True)
    name: str
    prompt: str = Field(sa_column=Column(Text, nullable=False))
    channel: str = Field(index=True)  # where its runs are posted
    creator: str  # the requester of its tasks
    trigger: str  # schedule | message | webhook
    cron: str = ""  # schedule: five-field cron in `tz`
    tz: str = "UTC"
    label: str = ""  # the trigger as people read it
    watch_channel: str = ""  # message: the channel watched
    pattern: str = Field(default="", sa_column=Column(Text, default=""))  # message: a regex, empty: every message
    secret_hash: str = ""  # webhook: sha256 of the bearer secret (shown once, never stored)
    repo_id: int | None = None  # none: the channel's default repository, if any
    branch: str = ""
    notify: str = "always"  # always | changes (only when something changed or failed)
    enabled: bool = True
    runs: int = 0  # runs so far: the next one is numbered runs + 1
    last_fire_at: datetime | None = None  # the latest scheduled time claimed (catch-up starts here)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow, index=True)  # schedulers reload on change


class AutomationRun(SQLModel, table=True):
    """One firing. `fire_key` is unique per automation, so a scheduled time runs at most once
    however many schedulers see it (the scheduled time in UTC; a message's ts; a webhook's id)."""

    __tablename__ = "automation_run"
    __table_args__ = (UniqueConstraint("automation_id", "fire_key"),)

    id: int | None = Field(default=None, primary_key=True)
    automation_id: int = Field(index=True)
    fire_key: str
    number: int = 0
    cause: str = ""  # schedule | catch-up | manual | message | webhook
    task_id: int | None = Field(default=None, index=True)
    channel: str = ""
    thread_ts: str = ""
    error: str = ""  # why no task ran
    created_at: datetime = Field(default_factory=utcnow, index=True)


class SettingRow(SQLModel, table=True):
    """A value an admin saved: for the workspace (`scope` empty) or one channel. Beats the
    environment's default; read per task."""

    __tablename__ = "setting"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    scope: str = ""
    key: str
    value: str = Field(sa_column=Column(Text, nullable=False))  # JSON
    updated_by: str = ""
    updated_at: datetime = Field(default_factory=utcnow)


class RepoSecret(SQLModel, table=True):
    """A value a repository's setup command gets in its environment (a registry token, say), sealed
    with SLACKBOT_SECRETS_KEY: only ciphertext is stored. Set and removed by admins."""

    __tablename__ = "repo_secret"
    __table_args__ = (UniqueConstraint("repo_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    repo_id: int = Field(index=True, foreign_key="repository.id")
    name: str  # an environment variable name
    ciphertext: str = Field(sa_column=Column(Text, nullable=False))
    updated_by: str = ""
    updated_at: datetime = Field(default_factory=utcnow)
