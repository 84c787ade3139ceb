"""Persistence: SQLModel tables and an async store over a bounded executor."""

from .coord import Coord
from .migrations import SchemaState, SchemaTooNew
from .models import (
    AgentThread, ChannelRepo, EventRow, HistoryRow, InboxRow, RepoBinding, Repository, SeenRow, Task, WorkerRow,
)
from .queue import Limits, Queue
from .repos import LinkedRepo, RepoConflict, RepoStore
from .store import Store

__all__ = ["AgentThread", "ChannelRepo", "Coord", "EventRow", "HistoryRow", "InboxRow", "Limits", "LinkedRepo",
           "Queue", "RepoBinding", "RepoConflict", "RepoStore", "Repository", "SchemaState", "SchemaTooNew",
           "SeenRow", "Store", "Task", "WorkerRow"]
