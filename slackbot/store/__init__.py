"""Persistence: SQLModel tables and an async store over a bounded executor."""

from .migrations import SchemaState, SchemaTooNew
from .models import AgentThread, ChannelRepo, EventRow, HistoryRow, InboxRow, Repository, SeenRow, Task
from .repos import LinkedRepo, RepoConflict, RepoStore
from .store import Limits, Store

__all__ = ["AgentThread", "ChannelRepo", "EventRow", "HistoryRow", "InboxRow", "Limits", "LinkedRepo",
           "RepoConflict", "RepoStore", "Repository", "SchemaState", "SchemaTooNew", "SeenRow", "Store", "Task"]
