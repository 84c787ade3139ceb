"""Tables. Every agent event and every model message is stored as it happens."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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
    created_at: datetime = Field(default_factory=utcnow)


class Task(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    thread_id: int = Field(index=True, foreign_key="agent_thread.id")
    channel: str = Field(index=True)
    requester: str = Field(index=True)
    requester_name: str = ""
    prompt: str = Field(default="", sa_column=Column(Text, default=""))
    # pending: recorded, status message not yet posted; then queued → running → a final status
    status: str = Field(default="pending", index=True)
    status_ts: str = ""
    mention_ts: str = ""
    model: str = ""
    worker: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    answer: str = Field(default="", sa_column=Column(Text, default=""))
    error: str = ""
    stopped_by: str = ""


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


class SeenRow(SQLModel, table=True):
    """Deliveries already handled (event ids, channel+ts), so retries never start twice."""

    __tablename__ = "seen"

    key: str = Field(primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
